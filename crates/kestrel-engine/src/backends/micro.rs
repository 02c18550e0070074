//! The integer runtime as a backend: the model is exported to `.kmodel` at prepare time and run
//! by `kestrel-micro` in an arena allocated once; `run` itself never allocates in the runtime.

use kestrel_micro::{DType, Interpreter, Model, Serial, Spread};
use kestrel_onnx::OnnxModel;

use super::pool::Pool;
use crate::export_kmodel::{declared_input_shape, export_kmodel, INPUTS_KEY, OUTPUTS_KEY};
use crate::tensor::TensorData;
use std::sync::Arc;
use std::time::Instant;

use crate::{Backend, EngineError, OpTime, PrepareOptions, Prepared, Tensor, TensorSpec};

#[derive(Debug, Default)]
pub struct Micro;

/// A validated model with this CPU's constants, shared by every handle on it
/// ([`Prepared::share`]). The model borrows its bytes, which this struct owns: they are leaked
/// into a `'static` slice at prepare time and reclaimed in `Drop`, so `run` does not re-validate
/// (CRC and all) on every call.
struct Shared {
    model: Model<'static>,
    bytes: *mut [u8],
    /// This CPU's fast kernels' constants (repacked filters), computed once here.
    prepared: Vec<u8>,
    threads: usize,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

// SAFETY: the raw pointer is the unique owner of an immutable heap slice (from `Box::leak`);
// nothing writes through it or through anything else here after `prepare_kmodel` returns, so
// moving it to, and reading it from, other threads is sound.
unsafe impl Send for Shared {}
// SAFETY: as above: every field is read-only once built.
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: `bytes` came from `Box::into_raw` in `prepare_kmodel` and is freed exactly
        // once, here; `model`, its only borrower, is never used again once drop has begun.
        unsafe { drop(Box::from_raw(self.bytes)) }
    }
}

/// One caller's handle: the shared model, and the arena and workers of its own runs.
struct MicroPrepared {
    shared: Arc<Shared>,
    arena: Vec<u8>,
    /// Workers for the parts of large ops (`threads` > 1), made once per handle.
    pool: Option<Pool>,
}

impl MicroPrepared {
    fn new(shared: Arc<Shared>) -> MicroPrepared {
        let arena = vec![0u8; shared.model.arena_len()];
        let pool = (shared.threads > 1).then(|| Pool::new(shared.threads));
        MicroPrepared { shared, arena, pool }
    }
}

fn spec(m: &Model<'_>, t: usize, name: &str) -> TensorSpec {
    let info = m.tensor(t);
    let dtype = match info.dtype {
        DType::F32 => "float32",
        DType::U8 => "uint8",
        DType::I8 => "int8",
        DType::I32 => "int32",
    };
    TensorSpec {
        name: name.to_string(),
        dtype: dtype.into(),
        shape: info.dims[..info.rank].iter().map(|&d| Some(d)).collect(),
    }
}

impl Backend for Micro {
    fn name(&self) -> &'static str {
        "micro"
    }

    fn check(&self) -> Result<(), EngineError> {
        Ok(())
    }

    fn prepare(&self, model: &OnnxModel, options: &PrepareOptions) -> Result<Box<dyn Prepared>, EngineError> {
        let shape = options.input_shapes.first().cloned().unwrap_or_else(|| declared_input_shape(model));
        let exported = export_kmodel(model, &shape, None)?;
        prepare_kmodel(exported.bytes, options.threads).map_err(|e| match e {
            EngineError::Kmodel(e) => EngineError::Internal { backend: "micro", message: e.to_string() },
            e => e,
        })
    }
}

/// Prepares a `.kmodel` file's bytes: validated once here, then run without re-validation, on
/// `threads` threads (the caller's and `threads - 1` workers made here). Input and output
/// names come from the file's metadata (`kestrel export` writes them), else `input0`, ….
pub fn prepare_kmodel(bytes: Vec<u8>, threads: usize) -> Result<Box<dyn Prepared>, EngineError> {
    let bytes: *mut [u8] = Box::into_raw(bytes.into_boxed_slice());
    // SAFETY: `bytes` is a valid, uniquely owned allocation that lives until `Drop` frees it,
    // after the last use of `model`.
    let leaked: &'static [u8] = unsafe { &*bytes };
    let m = match Model::parse(leaked) {
        Ok(m) => m,
        Err(e) => {
            // SAFETY: nothing borrows the bytes any more; free them once.
            unsafe { drop(Box::from_raw(bytes)) };
            return Err(EngineError::Kmodel(e));
        }
    };
    let names = |key: &str, prefix: &str, n: usize| -> Vec<String> {
        let listed: Vec<String> = m
            .metadata_value(key)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(|v| v.lines().map(str::to_string).collect())
            .unwrap_or_default();
        (0..n).map(|i| listed.get(i).cloned().unwrap_or_else(|| format!("{prefix}{i}"))).collect()
    };
    let input_names = names(INPUTS_KEY, "input", m.input_count());
    let inputs = vec![spec(&m, m.input(0), &input_names[0])];
    let output_names = names(OUTPUTS_KEY, "output", m.output_count());
    let outputs = (0..m.output_count()).map(|i| spec(&m, m.output(i), &output_names[i])).collect();
    let mut shared = Shared { model: m, bytes, prepared: Vec::new(), threads, inputs, outputs };
    // Made with the model in place, so that an error frees the model bytes (in `Drop`).
    shared.prepared = vec![0u8; Interpreter::prepared_len(&shared.model)];
    Interpreter::prepare(&shared.model, &mut shared.prepared).map_err(EngineError::Kmodel)?;
    Ok(Box::new(MicroPrepared::new(Arc::new(shared))))
}

impl Prepared for MicroPrepared {
    fn inputs(&self) -> &[TensorSpec] {
        &self.shared.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.shared.outputs
    }

    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, EngineError> {
        let mut outputs = Vec::new();
        self.run_into(inputs, &mut outputs)?;
        Ok(outputs)
    }

    fn run_into(&mut self, inputs: &[Tensor], outputs: &mut Vec<Tensor>) -> Result<(), EngineError> {
        let values = self.input_values(inputs)?;
        let spread: &dyn Spread = match &self.pool {
            Some(pool) => pool,
            None => &Serial,
        };
        let shared = &*self.shared;
        let mut it = Interpreter::with_prepared(shared.model, &mut self.arena, &shared.prepared).map_err(run_error)?;
        write_input(&mut it, values)?;
        it.run_with(spread, |_| {}).map_err(run_error)?;
        outputs.truncate(shared.outputs.len());
        for (i, spec) in shared.outputs.iter().enumerate() {
            let bytes = it.output(i).ok_or_else(|| EngineError::Run(format!("no output {i}")))?;
            let float = spec.dtype == "float32";
            match outputs.get_mut(i).map(|t| &mut t.data) {
                Some(TensorData::F32(v)) if float && v.len() * 4 == bytes.len() => read_f32s_into(bytes, v),
                Some(TensorData::U8(v)) if !float && v.len() == bytes.len() => v.copy_from_slice(bytes),
                _ => {
                    let shape: Vec<usize> = spec.shape.iter().map(|d| d.unwrap_or(0)).collect();
                    let data = if float { TensorData::F32(read_f32s(bytes)) } else { TensorData::U8(bytes.to_vec()) };
                    let tensor = Tensor::new(shape, data)?;
                    match outputs.get_mut(i) {
                        Some(t) => *t = tensor,
                        None => outputs.push(tensor),
                    }
                }
            }
        }
        Ok(())
    }

    fn op_times(&mut self, inputs: &[Tensor], runs: usize) -> Option<Result<Vec<OpTime>, EngineError>> {
        Some(self.time_ops(inputs, runs))
    }

    /// The same model and constants; a new arena and pool.
    fn share(&self) -> Option<Result<Box<dyn Prepared>, EngineError>> {
        Some(Ok(Box::new(MicroPrepared::new(Arc::clone(&self.shared)))))
    }
}

impl MicroPrepared {
    /// The input's values, if it is the one float32 tensor of the shape the model takes.
    fn input_values<'t>(&self, inputs: &'t [Tensor]) -> Result<&'t [f32], EngineError> {
        let [input] = inputs else {
            return Err(EngineError::Shape(format!("the model takes 1 input, got {}", inputs.len())));
        };
        let want = &self.shared.inputs[0].shape;
        let fits = input.shape.len() == want.len() && input.shape.iter().zip(want).all(|(&d, w)| d == w.unwrap_or(0));
        input.as_f32().filter(|_| fits).ok_or_else(|| {
            let want: Vec<usize> = want.iter().map(|d| d.unwrap_or(0)).collect();
            EngineError::Shape(format!("input expects float32 {want:?}, got {} {:?}", input.dtype_name(), input.shape))
        })
    }

    fn time_ops(&mut self, inputs: &[Tensor], runs: usize) -> Result<Vec<OpTime>, EngineError> {
        let values = self.input_values(inputs)?;
        let model = self.shared.model;
        let mut seconds = vec![0f64; model.op_count()];
        let mut it = Interpreter::with_prepared(model, &mut self.arena, &self.shared.prepared).map_err(run_error)?;
        for _ in 0..runs {
            write_input(&mut it, values)?;
            let mut last = Instant::now();
            it.run_observed(|o| {
                let now = Instant::now();
                seconds[o] += (now - last).as_secs_f64();
                last = now;
            })
            .map_err(run_error)?;
        }
        let dims = |t: u16| format!("{:?}", &model.tensor(usize::from(t)).dims[..model.tensor(usize::from(t)).rank]);
        Ok((0..model.op_count())
            .map(|o| {
                let op = model.op(o);
                let ins: Vec<String> = op.inputs[..op.n_inputs].iter().map(|&t| dims(t)).collect();
                let outs: Vec<String> = op.outputs[..op.n_outputs].iter().map(|&t| dims(t)).collect();
                OpTime {
                    op: format!("{:?}", op.code),
                    detail: format!("{} -> {}", ins.join(" "), outs.join(" ")),
                    seconds: seconds[o] / runs as f64,
                }
            })
            .collect())
    }
}

fn run_error(e: kestrel_micro::Error) -> EngineError {
    EngineError::Run(e.to_string())
}

/// `values` into the interpreter's input slot.
fn write_input(it: &mut Interpreter<'_, '_>, values: &[f32]) -> Result<(), EngineError> {
    let slot = it.input_mut(0).ok_or_else(|| EngineError::Run("no input 0".into()))?;
    write_f32s(values, slot);
    Ok(())
}

/// `values` into `slot` as little-endian bytes: one memcpy on a little-endian host (the conv
/// stack's 800 kB input: 1.1% of its run as a per-value loop).
fn write_f32s(values: &[f32], slot: &mut [u8]) {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: the bytes of initialized f32s, read only; u8 has alignment 1 and the length
        // is the values' size in bytes.
        let bytes = unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) };
        let n = bytes.len().min(slot.len());
        slot[..n].copy_from_slice(&bytes[..n]);
    }
    #[cfg(not(target_endian = "little"))]
    for (dst, v) in slot.chunks_exact_mut(4).zip(values) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

/// Little-endian float32 bytes into `values` (as many as both hold).
fn read_f32s_into(bytes: &[u8], values: &mut [f32]) {
    for (v, c) in values.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

/// Little-endian float32 bytes as values: one memcpy into the vector on a little-endian host
/// (a zeroed vector and a per-value loop took 1.5% of the conv stack's run).
fn read_f32s(bytes: &[u8]) -> Vec<f32> {
    let n = bytes.len() / 4;
    let mut values: Vec<f32> = Vec::with_capacity(n);
    #[cfg(target_endian = "little")]
    // SAFETY: the vector has room for n values = 4·n bytes, all written by the copy before
    // set_len; every bit pattern is a valid f32.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), values.as_mut_ptr().cast::<u8>(), 4 * n);
        values.set_len(n);
    }
    #[cfg(not(target_endian = "little"))]
    values.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    values
}
