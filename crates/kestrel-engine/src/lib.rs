#![doc = include_str!("../README.md")]

mod backend;
pub mod backends;
mod error;
pub mod export_kmodel;
mod npy;
pub mod preprocess_kernel;
mod tensor;

use std::str::FromStr;

use kestrel_onnx::OnnxModel;

pub use backend::{Backend, OpTime, PrepareOptions, Prepared, TensorSpec};
pub use backends::cpu::count_macs;
pub use error::EngineError;
/// The integer runtime's crate, for reading `.kmodel` files.
pub use kestrel_micro as micro;
/// The integer runtime's convolution kernel on this CPU (for reports).
pub use kestrel_micro::conv_kernel as micro_conv_kernel;
pub use tensor::{Tensor, TensorData};

/// Which backend to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The fastest for this model: the integer runtime for an int8 model it has a kernel for
    /// every op of; otherwise CUDA when a GPU is usable, else the CPU.
    Auto,
    Cpu,
    Cuda,
    Micro,
}

impl FromStr for BackendKind {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        match s {
            "auto" => Ok(BackendKind::Auto),
            "cpu" => Ok(BackendKind::Cpu),
            "cuda" => Ok(BackendKind::Cuda),
            "micro" => Ok(BackendKind::Micro),
            other => Err(EngineError::UnknownBackend(other.to_string())),
        }
    }
}

/// The backend for `kind`; `Auto` resolves, without looking at a model, to CUDA when its
/// `check()` passes, else the CPU ([`Engine::new`] looks at the model first).
pub fn backend(kind: BackendKind) -> Box<dyn Backend> {
    match kind {
        BackendKind::Cpu => Box::new(backends::cpu::Cpu),
        #[cfg(feature = "cuda-backend")]
        BackendKind::Cuda => Box::new(backends::cuda::Cuda),
        #[cfg(not(feature = "cuda-backend"))]
        BackendKind::Cuda => Box::new(backends::unavailable::Unavailable {
            name: "cuda",
            reason: "this build has no CUDA support (rebuild with `--features cuda`)",
        }),
        BackendKind::Micro => Box::new(backends::micro::Micro),
        BackendKind::Auto => {
            let cuda = backend(BackendKind::Cuda);
            if cuda.check().is_ok() {
                cuda
            } else {
                backend(BackendKind::Cpu)
            }
        }
    }
}

/// The most threads a prepared model runs on (a 12-core Jetson AGX Orin, a large server many
/// times over): a thread pool is made at prepare time, and an absurd count would exhaust the
/// system's threads instead of failing with a clear error.
pub const MAX_THREADS: usize = 256;

fn check_threads(threads: usize) -> Result<(), EngineError> {
    if threads > MAX_THREADS {
        return Err(EngineError::Prepare(format!("{threads} threads: at most {MAX_THREADS}")));
    }
    Ok(())
}

/// A model prepared on one backend.
///
/// `Send` (a camera's inference thread owns it), not `Sync`: `run` takes `&mut self` because
/// each backend keeps per-run state beside the weights (tract's plan state and its value
/// buffers, the integer runtime's arena). Several callers (cameras) share one prepared model
/// through [`Engine::share`]: each gets an `Engine` of its own over the same weights.
pub struct Engine {
    backend: &'static str,
    reason: String,
    prepared: Box<dyn Prepared>,
}

/// ONNX ops that only a quantized model holds.
const QUANTIZED_OPS: &[&str] =
    &["QLinearConv", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear", "ConvInteger", "MatMulInteger"];

/// Whether the model is quantized (holds any of [`QUANTIZED_OPS`]).
pub fn is_quantized(model: &OnnxModel) -> bool {
    model.proto.graph.as_ref().is_some_and(|g| g.node.iter().any(|n| QUANTIZED_OPS.contains(&n.op_type.as_str())))
}

impl Engine {
    /// Checks the backend, then prepares the model on it. `Auto` chooses by the model: see
    /// [`BackendKind::Auto`]; [`Engine::reason`] says why.
    pub fn new(kind: BackendKind, model: &OnnxModel, options: &PrepareOptions) -> Result<Engine, EngineError> {
        check_threads(options.threads)?;
        if kind == BackendKind::Auto {
            return Self::auto(model, options);
        }
        let backend = backend(kind);
        backend.check()?;
        let prepared = backend.prepare(model, options)?;
        Ok(Engine { backend: backend.name(), reason: "asked for".into(), prepared })
    }

    /// An engine over a backend that lives outside this crate (e.g. a microcontroller
    /// co-processor on a serial link, `kestrel … --mcu`).
    pub fn from_prepared(backend: &'static str, reason: impl Into<String>, prepared: Box<dyn Prepared>) -> Engine {
        Engine { backend, reason: reason.into(), prepared }
    }

    /// Prepares a `.kmodel` file's bytes: only the integer runtime runs those (`Auto` and
    /// `Micro`); any other backend needs the ONNX model it was exported from.
    pub fn from_kmodel(kind: BackendKind, bytes: Vec<u8>, threads: usize) -> Result<Engine, EngineError> {
        check_threads(threads)?;
        match kind {
            BackendKind::Auto | BackendKind::Micro => {
                let reason = if kind == BackendKind::Auto { "a .kmodel runs on the integer runtime" } else { "asked for" };
                Ok(Engine { backend: "micro", reason: reason.into(), prepared: backends::micro::prepare_kmodel(bytes, threads)? })
            }
            other => Err(EngineError::Prepare(format!(
                "a .kmodel runs only on the integer runtime (`--backend micro` or `auto`), not `{}`: give the ONNX model it was exported from",
                backend(other).name()
            ))),
        }
    }

    /// An int8 model goes to the integer runtime when it has a kernel for every op (the model is
    /// exported once, here, and kept); anything else to CUDA when usable, else the CPU.
    fn auto(model: &OnnxModel, options: &PrepareOptions) -> Result<Engine, EngineError> {
        let why_not_micro = if is_quantized(model) {
            match backends::micro::Micro.prepare(model, options) {
                Ok(prepared) => {
                    let g = model.proto.graph.as_ref();
                    let nodes = g.map_or(0, |g| g.node.len());
                    let float = g.map_or(0, |g| g.node.iter().filter(|n| n.op_type == "Conv").count());
                    let mut reason = format!("int8 model, the integer runtime runs all its {nodes} nodes");
                    if float > 0 {
                        reason.push_str(&format!(" ({float} float Conv layers on its float kernels)"));
                    }
                    return Ok(Engine { backend: "micro", reason, prepared });
                }
                Err(EngineError::UnsupportedOp { op, node, why, .. }) => {
                    format!("int8 model, but the integer runtime cannot run op `{op}` (node `{node}`): {why}")
                }
                Err(e) => format!("int8 model, but the integer runtime cannot take it ({e})"),
            }
        } else {
            "float model".to_string()
        };
        let cuda = backend(BackendKind::Cuda);
        let (backend, reason) = match cuda.check() {
            Ok(()) => (cuda, format!("{why_not_micro}; a GPU is usable")),
            Err(_) => (backend(BackendKind::Cpu), why_not_micro),
        };
        let prepared = backend.prepare(model, options)?;
        Ok(Engine { backend: backend.name(), reason, prepared })
    }

    /// Name of the backend it runs on (what `Auto` chose).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Why it runs there: "asked for", or what `Auto` saw in the model.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn inputs(&self) -> &[TensorSpec] {
        self.prepared.inputs()
    }

    pub fn outputs(&self) -> &[TensorSpec] {
        self.prepared.outputs()
    }

    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, EngineError> {
        self.prepared.run(inputs)
    }

    /// Runs into `outputs`, reusing its tensors where the backend can (the integer runtime does).
    pub fn run_into(&mut self, inputs: &[Tensor], outputs: &mut Vec<Tensor>) -> Result<(), EngineError> {
        self.prepared.run_into(inputs, outputs)
    }

    /// Another `Engine` over the same prepared model, for another thread: the weights and the
    /// plan (tract's optimized graph, the integer runtime's model and repacked filters) are
    /// shared, not copied; the new engine has its own run state and workers, so both run at
    /// once. The CPU and integer runtime backends share; the others say so in the error.
    pub fn share(&self) -> Result<Engine, EngineError> {
        let backend = self.backend;
        let prepared = self.prepared.share().unwrap_or(Err(EngineError::NoSharing { backend }))?;
        Ok(Engine { backend, reason: self.reason.clone(), prepared })
    }

    /// Each op's mean time over `runs` runs (see [`Prepared::op_times`]); an error names the
    /// backend when it cannot time its ops.
    pub fn op_times(&mut self, inputs: &[Tensor], runs: usize) -> Result<Vec<OpTime>, EngineError> {
        let backend = self.backend;
        self.prepared.op_times(inputs, runs.max(1)).unwrap_or(Err(EngineError::NoOpTimes { backend }))
    }
}

/// `Engine` moves to another thread (the watch pipeline's inference stage takes it there).
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Engine>();
};
