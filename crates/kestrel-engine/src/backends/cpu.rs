//! CPU backend on tract: optimized plan, concrete input shapes, optional thread pool.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use kestrel_onnx::OnnxModel;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{anyhow, bail, DimLike, TractErrorContext};
use tract_onnx::tract_core::plan::{SimplePlan, SimpleState};
use tract_onnx::tract_core::runtime::State;
use tract_onnx::tract_hir::infer::Factoid;

use crate::tensor::TensorData;
use crate::{Backend, EngineError, PrepareOptions, Prepared, Tensor, TensorSpec};

/// Runs ONNX models in float (and tract's integer ops) on the host CPU.
#[derive(Debug, Default)]
pub struct Cpu;

type Plan = SimplePlan<TypedFact, Box<dyn TypedOp>>;
type PlanState = SimpleState<TypedFact, Box<dyn TypedOp>>;

struct CpuPrepared {
    /// The optimized graph with its weights, shared by every handle ([`Prepared::share`]).
    plan: Arc<Plan>,
    state: PlanState,
    /// tract's thread pool (`threads` > 1): each run happens on it, see `run`.
    executor: Option<Executor>,
    threads: usize,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn check(&self) -> Result<(), EngineError> {
        Ok(())
    }

    fn prepare(&self, model: &OnnxModel, options: &PrepareOptions) -> Result<Box<dyn Prepared>, EngineError> {
        let typed = typed_model(model, &options.input_shapes)?;
        guard(|| {
            let inputs = specs(&typed, &typed.inputs)?;
            let outputs = specs(&typed, &typed.outputs)?;
            let threaded = options.threads > 1 && typed_macs(&typed)? >= MIN_THREADED_MACS;
            let optimized = typed.into_optimized()?;
            // The pool is the handle's, not the plan's: see `share`.
            let executor = threaded.then(|| Executor::multithread(options.threads));
            let plan = optimized.into_runnable()?;
            let state = SimpleState::new(&plan)?;
            let threads = options.threads;
            Ok(Box::new(CpuPrepared { plan, state, executor, threads, inputs, outputs }) as Box<dyn Prepared>)
        })
        .map_err(|e| e.into_prepare())
    }
}

impl Prepared for CpuPrepared {
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// On more than one thread the whole run happens on tract's pool: its matrix products then
    /// split their work from inside the pool, where the calling worker takes part, instead of
    /// handing each product over from this thread and sleeping until it is done (which made
    /// two threads slower than one on small models). tract's ops find the pool through
    /// `multithread_tract_scope`.
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, EngineError> {
        let (state, specs) = (&mut self.state, &self.inputs);
        match &self.executor {
            Some(executor @ Executor::MultiThread(pool)) => {
                pool.install(|| multithread_tract_scope(executor.clone(), || run_state(state, specs, inputs)))
            }
            _ => run_state(state, specs, inputs),
        }
    }

    /// A new state over the same plan, with a pool of its own: two callers running at once on
    /// one pool panic inside tract ("RefCell already borrowed": a worker waiting on one run's
    /// product picks up the other's, which takes the same thread-local scratch).
    fn share(&self) -> Option<Result<Box<dyn Prepared>, EngineError>> {
        let state = guard(|| SimpleState::new(&self.plan)).map_err(|e| e.into_prepare());
        Some(state.map(|state| {
            Box::new(CpuPrepared {
                plan: Arc::clone(&self.plan),
                state,
                executor: self.executor.as_ref().map(|_| Executor::multithread(self.threads)),
                threads: self.threads,
                inputs: self.inputs.clone(),
                outputs: self.outputs.clone(),
            }) as Box<dyn Prepared>
        }))
    }
}

/// Checks `inputs` against the prepared specs, runs a tract state and converts its outputs;
/// the CPU and CUDA backends share it.
pub(crate) fn run_state(
    state: &mut dyn State,
    specs: &[TensorSpec],
    inputs: &[Tensor],
) -> Result<Vec<Tensor>, EngineError> {
    if inputs.len() != specs.len() {
        return Err(EngineError::Shape(format!("the model takes {} input(s), got {}", specs.len(), inputs.len())));
    }
    for (t, spec) in inputs.iter().zip(specs) {
        let fits = t.shape.len() == spec.shape.len()
            && t.shape.iter().zip(&spec.shape).all(|(&d, s)| s.is_none_or(|s| s == d));
        if !fits || t.dtype_name() != spec.dtype {
            return Err(EngineError::Shape(format!(
                "input `{}` expects {} {}, got {} {:?}",
                spec.name,
                spec.dtype,
                show_shape(&spec.shape),
                t.dtype_name(),
                t.shape
            )));
        }
    }
    guard(|| {
        let values = inputs.iter().map(|t| Ok(to_tract(t)?.into_tvalue())).collect::<TractResult<TVec<_>>>()?;
        let outputs = state.run(values)?;
        outputs.iter().map(|t| from_tract(t)).collect::<TractResult<Vec<_>>>()
    })
    .map_err(|e| e.into_run())
}

/// Multiply-accumulates of one inference, from tract's cost model of the decluttered graph.
pub fn count_macs(model: &OnnxModel, input_shapes: &[Vec<usize>]) -> Result<u64, EngineError> {
    let typed = typed_model(model, input_shapes)?;
    guard(|| typed_macs(&typed)).map_err(|e| e.into_prepare())
}

fn typed_macs(typed: &TypedModel) -> TractResult<u64> {
    let mut macs = 0u64;
    for node in typed.nodes() {
        let facts = typed.node_input_facts(node.id)?;
        for (cost, count) in node.op.cost(&facts)? {
            if matches!(cost, tract_onnx::tract_core::ops::Cost::FMA(_)) {
                macs = macs.saturating_add(count.to_i64().unwrap_or(0).max(0) as u64);
            }
        }
    }
    Ok(macs)
}

/// Below this many multiply-accumulates a model runs on the calling thread whatever `threads`
/// says: handing its work to a pool costs more than it saves (the Fashion CNN, 2.8 M: 0.156 ms on
/// one thread, 0.193 ms on two; BlazeFace, 31 M: 2.55 and 2.31 ms).
const MIN_THREADED_MACS: u64 = 10_000_000;

/// Each named tensor of the ONNX graph, as tract infers it for the given input shapes, mapped by
/// `f` (tensors it maps to `None` are left out).
fn each_tensor<T>(
    model: &OnnxModel,
    input_shapes: &[Vec<usize>],
    mut f: impl FnMut(&TypedFact) -> TractResult<Option<T>>,
) -> Result<std::collections::HashMap<String, T>, EngineError> {
    let dir = model.dir.as_ref().and_then(|d| d.to_str().map(str::to_owned));
    guard(|| {
        let m = inference_model(model, dir.as_deref(), input_shapes)?.into_typed()?;
        let mut out = std::collections::HashMap::new();
        for node in m.nodes() {
            for ix in 0..node.outputs.len() {
                let outlet = OutletId::new(node.id, ix);
                if let Some(v) = f(m.outlet_fact(outlet)?)? {
                    let name = m.outlet_label(outlet).map(str::to_owned).unwrap_or_else(|| node.name.clone());
                    out.insert(name, v);
                }
            }
        }
        Ok(out)
    })
    .map_err(|e| e.into_prepare())
}

/// The element type and concrete shape of every named tensor of the ONNX graph, as tract infers
/// them for the given input shapes.
pub fn tensor_shapes(
    model: &OnnxModel,
    input_shapes: &[Vec<usize>],
) -> Result<std::collections::HashMap<String, (&'static str, Vec<usize>)>, EngineError> {
    each_tensor(model, input_shapes, |fact| Ok(shape_of(fact)))
}

/// A tensor's value folded at a fixed input shape: ONNX element type (1 float, 7 int64), dims
/// and little-endian bytes.
pub type FoldedValue = (i32, Vec<usize>, Vec<u8>);

/// Every named tensor's element type and shape (as [`tensor_shapes`]) and, in the same analysis,
/// the float32 and int64 tensors whose values do not depend on the model's input at the given
/// input shapes (anchor grids and strides computed from shapes, for instance), as tract folds
/// them, by name.
#[allow(clippy::type_complexity)]
pub fn shapes_and_constants(
    model: &OnnxModel,
    input_shapes: &[Vec<usize>],
) -> Result<
    (std::collections::HashMap<String, (&'static str, Vec<usize>)>, std::collections::HashMap<String, FoldedValue>),
    EngineError,
> {
    let both = each_tensor(model, input_shapes, |fact| {
        let folded = match fact.konst.as_ref() {
            None => None,
            Some(k) if k.datum_type() == DatumType::F32 => Some((
                1,
                k.shape().to_vec(),
                k.to_plain_array_view::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )),
            Some(k) if matches!(k.datum_type(), DatumType::I64 | DatumType::TDim) => {
                let ints = k.cast_to::<i64>()?;
                Some((
                    7,
                    k.shape().to_vec(),
                    ints.to_plain_array_view::<i64>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ))
            }
            Some(_) => None,
        };
        Ok(Some((shape_of(fact), folded)))
    })?;
    let mut shapes = std::collections::HashMap::new();
    let mut constants = std::collections::HashMap::new();
    for (name, (shape, folded)) in both {
        if let Some(folded) = folded {
            constants.insert(name.clone(), folded);
        }
        if let Some(shape) = shape {
            shapes.insert(name, shape);
        }
    }
    Ok((shapes, constants))
}

/// A tensor's element type and shape, when the shape is concrete.
fn shape_of(fact: &TypedFact) -> Option<(&'static str, Vec<usize>)> {
    fact.shape.as_concrete().map(|shape| (dtype_name(fact.datum_type), shape.to_vec()))
}

/// Parses the validated proto with tract, fixes input shapes, and declutters.
pub(crate) fn typed_model(model: &OnnxModel, input_shapes: &[Vec<usize>]) -> Result<TypedModel, EngineError> {
    let dir = model.dir.as_ref().and_then(|d| d.to_str().map(str::to_owned));
    guard(|| inference_model(model, dir.as_deref(), input_shapes)?.into_typed()?.into_decluttered())
        .map_err(|e| e.into_prepare())
}

/// tract's inference model of the proto with concrete input facts.
fn inference_model(model: &OnnxModel, dir: Option<&str>, input_shapes: &[Vec<usize>]) -> TractResult<InferenceModel> {
    let parsed = tract_onnx::onnx().parse(&model.proto, dir)?;
    if !parsed.unresolved_inputs.is_empty() {
        bail!("inputs that nothing defines: {:?}", parsed.unresolved_inputs);
    }
    let mut m = parsed.model;
    let count = m.inputs.len();
    if !input_shapes.is_empty() && input_shapes.len() != count {
        bail!("{} input shape(s) given for {count} model input(s)", input_shapes.len());
    }
    for ix in 0..count {
        let fact = m.input_fact(ix)?.clone();
        let name = m.node(m.inputs[ix].node).name.clone();
        let dt = fact.datum_type.concretize().with_context(|| format!("input `{name}` has no element type"))?;
        let shape: Vec<usize> = match input_shapes.get(ix) {
            Some(s) => s.clone(),
            None => {
                if fact.shape.is_open() {
                    bail!("input `{name}` has an unknown rank; give its shape explicitly");
                }
                fact.shape.dims().map(|d| d.concretize().and_then(|d| d.to_usize().ok()).unwrap_or(1)).collect()
            }
        };
        m.set_input_fact(ix, InferenceFact::dt_shape(dt, &shape))?;
    }
    Ok(m)
}

pub(crate) fn specs(model: &TypedModel, outlets: &[OutletId]) -> TractResult<Vec<TensorSpec>> {
    outlets
        .iter()
        .map(|&o| {
            let fact = model.outlet_fact(o)?;
            let name = model.outlet_label(o).map(str::to_owned).unwrap_or_else(|| model.node(o.node).name.clone());
            Ok(TensorSpec {
                name,
                dtype: dtype_name(fact.datum_type).to_string(),
                shape: fact.shape.iter().map(|d| d.to_usize().ok()).collect(),
            })
        })
        .collect()
}

fn dtype_name(dt: DatumType) -> &'static str {
    match dt {
        DatumType::F32 => "float32",
        DatumType::F64 => "float64",
        DatumType::F16 => "float16",
        DatumType::I8 => "int8",
        DatumType::U8 => "uint8",
        DatumType::I16 => "int16",
        DatumType::U16 => "uint16",
        DatumType::I32 => "int32",
        DatumType::U32 => "uint32",
        DatumType::I64 | DatumType::TDim => "int64",
        DatumType::U64 => "uint64",
        DatumType::Bool => "bool",
        DatumType::QI8(_) => "int8",
        DatumType::QU8(_) => "uint8",
        DatumType::QI32(_) => "int32",
        _ => "unsupported",
    }
}

pub(crate) fn show_shape(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.map_or("?".to_string(), |d| d.to_string())).collect();
    format!("[{}]", dims.join(", "))
}

pub(crate) fn to_tract(t: &Tensor) -> TractResult<tract_onnx::prelude::Tensor> {
    let s = &t.shape;
    match &t.data {
        TensorData::F32(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
        TensorData::F64(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
        TensorData::F16(v) => {
            let h: Vec<half::f16> = v.iter().map(|&b| half::f16::from_bits(b)).collect();
            tract_onnx::prelude::Tensor::from_shape(s, &h)
        }
        TensorData::I8(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
        TensorData::U8(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
        TensorData::I16(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
        TensorData::U16(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
        TensorData::I32(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
        TensorData::U32(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
        TensorData::I64(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
        TensorData::U64(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
        TensorData::Bool(v) => tract_onnx::prelude::Tensor::from_shape(s, v),
    }
}

pub(crate) fn from_tract(t: &tract_onnx::prelude::Tensor) -> TractResult<Tensor> {
    fn plain<T: Datum + Copy>(t: &tract_onnx::prelude::Tensor) -> TractResult<Vec<T>> {
        Ok(t.to_plain_array_view::<T>()?.iter().copied().collect())
    }
    let data = match t.datum_type().unquantized() {
        DatumType::F32 => TensorData::F32(plain(t)?),
        DatumType::F64 => TensorData::F64(plain(t)?),
        DatumType::F16 => TensorData::F16(plain::<half::f16>(t)?.iter().map(|h| h.to_bits()).collect()),
        DatumType::I8 => TensorData::I8(plain(t)?),
        DatumType::U8 => TensorData::U8(plain(t)?),
        DatumType::I16 => TensorData::I16(plain(t)?),
        DatumType::U16 => TensorData::U16(plain(t)?),
        DatumType::I32 => TensorData::I32(plain(t)?),
        DatumType::U32 => TensorData::U32(plain(t)?),
        DatumType::I64 => TensorData::I64(plain(t)?),
        DatumType::U64 => TensorData::U64(plain(t)?),
        DatumType::Bool => TensorData::Bool(plain(t)?),
        DatumType::TDim => TensorData::I64(plain(&*t.cast_to::<i64>()?)?),
        other => bail!("output element type {other:?} is not supported"),
    };
    Tensor::new(t.shape().to_vec(), data).map_err(|e| anyhow!("{e}"))
}

/// What went wrong inside tract: an error, or a panic caught at the boundary.
pub(crate) enum Failure {
    Error(String),
    Panic(String),
}

impl Failure {
    pub(crate) fn into_prepare(self) -> EngineError {
        match self {
            Failure::Error(e) => EngineError::Prepare(e),
            Failure::Panic(message) => EngineError::Internal { backend: "tract", message },
        }
    }
    pub(crate) fn into_run(self) -> EngineError {
        match self {
            Failure::Error(e) => EngineError::Run(e),
            Failure::Panic(message) => EngineError::Internal { backend: "tract", message },
        }
    }
}

/// Runs tract code, turning its errors into one line and its panics into errors:
/// bad input must never take the process down.
pub(crate) fn guard<T>(f: impl FnOnce() -> TractResult<T>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Error(one_line(&e))),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(Failure::Panic(message))
        }
    }
}

/// tract's error chain, outermost first, on one line; each link cut at 300 characters (on an
/// absurd input shape tract prints its whole symbolic shape expression, over 100 kB).
fn one_line(e: &TractError) -> String {
    const LINK: usize = 300;
    let cut = |s: String| if s.chars().count() > LINK { s.chars().take(LINK).chain(['…']).collect() } else { s };
    e.chain().map(|c| cut(c.to_string())).collect::<Vec<_>>().join(": ")
}
