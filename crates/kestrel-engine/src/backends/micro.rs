//! The integer runtime as a backend: the model is exported to `.kmodel` at prepare time and run
//! by `kestrel-micro` in an arena allocated once; `run` itself never allocates in the runtime.

use kestrel_micro::{DType, Interpreter, Model};
use kestrel_onnx::OnnxModel;

use crate::export_kmodel::{declared_input_shape, export_kmodel};
use crate::tensor::TensorData;
use crate::{Backend, EngineError, PrepareOptions, Prepared, Tensor, TensorSpec};

#[derive(Debug, Default)]
pub struct Micro;

/// A validated model and its arena. The model borrows its bytes, which this struct owns: they
/// are leaked into a `'static` slice at prepare time and reclaimed in `Drop`, so `run` does not
/// re-validate (CRC and all) on every call.
struct MicroPrepared {
    model: Model<'static>,
    bytes: *mut [u8],
    arena: Vec<u8>,
    /// This CPU's fast kernels' constants (repacked filters), computed once here.
    prepared: Vec<u8>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

// SAFETY: the raw pointer is the unique owner of an immutable heap slice (from `Box::leak`);
// nothing else aliases it mutably, so moving the struct to another thread is sound.
unsafe impl Send for MicroPrepared {}

impl Drop for MicroPrepared {
    fn drop(&mut self) {
        // SAFETY: `bytes` came from `Box::into_raw` in `prepare` and is freed exactly once, here;
        // `model`, its only borrower, is never used again once drop has begun.
        unsafe { drop(Box::from_raw(self.bytes)) }
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
        let g = model.proto.graph.as_ref().ok_or(EngineError::Onnx(kestrel_onnx::OnnxError::NoGraph))?;
        let shape = options.input_shapes.first().cloned().unwrap_or_else(|| declared_input_shape(model));
        let exported = export_kmodel(model, &shape)?;
        let bytes: *mut [u8] = Box::into_raw(exported.bytes.into_boxed_slice());
        // SAFETY: `bytes` is a valid, uniquely owned allocation that lives until `Drop` frees it,
        // after the last use of `model`.
        let leaked: &'static [u8] = unsafe { &*bytes };
        let m = match Model::parse(leaked) {
            Ok(m) => m,
            Err(e) => {
                // SAFETY: nothing borrows the bytes any more; free them once.
                unsafe { drop(Box::from_raw(bytes)) };
                return Err(EngineError::Internal { backend: "micro", message: e.to_string() });
            }
        };
        let inputs = vec![spec(&m, m.input(0), &g.input[0].name)];
        let outputs = (0..m.output_count()).map(|i| spec(&m, m.output(i), &g.output[i].name)).collect();
        let arena = vec![0u8; m.arena_len()];
        let prepared = vec![0u8; Interpreter::prepared_len(&m)];
        // Built first, so that an error below frees the model bytes (in `Drop`).
        let mut p = MicroPrepared { model: m, bytes, arena, prepared, inputs, outputs };
        Interpreter::prepare(&p.model, &mut p.prepared)
            .map_err(|e| EngineError::Internal { backend: "micro", message: e.to_string() })?;
        Ok(Box::new(p))
    }
}

impl Prepared for MicroPrepared {
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, EngineError> {
        let [input] = inputs else {
            return Err(EngineError::Shape(format!("the model takes 1 input, got {}", inputs.len())));
        };
        let want: Vec<usize> = self.inputs[0].shape.iter().map(|d| d.unwrap_or(0)).collect();
        let Some(values) = input.as_f32().filter(|_| input.shape == want) else {
            return Err(EngineError::Shape(format!(
                "input expects float32 {want:?}, got {} {:?}",
                input.dtype_name(),
                input.shape
            )));
        };
        let err = |e: kestrel_micro::Error| EngineError::Run(e.to_string());
        let mut it = Interpreter::with_prepared(self.model, &mut self.arena, &self.prepared).map_err(err)?;
        let slot = it.input_mut(0).ok_or_else(|| EngineError::Run("no input 0".into()))?;
        for (dst, v) in slot.chunks_exact_mut(4).zip(values) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        it.run().map_err(err)?;
        self.outputs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let bytes = it.output(i).ok_or_else(|| EngineError::Run(format!("no output {i}")))?;
                let shape: Vec<usize> = spec.shape.iter().map(|d| d.unwrap_or(0)).collect();
                let data = match spec.dtype.as_str() {
                    "float32" => {
                        // A plain loop over a zeroed vector compiles to a copy; collecting the
                        // mapped chunks did not (50 µs on the conv stack's 200 k values).
                        let mut values = vec![0f32; bytes.len() / 4];
                        for (v, c) in values.iter_mut().zip(bytes.chunks_exact(4)) {
                            *v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                        }
                        TensorData::F32(values)
                    }
                    _ => TensorData::U8(bytes.to_vec()),
                };
                Tensor::new(shape, data)
            })
            .collect()
    }
}
