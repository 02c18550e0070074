#![doc = include_str!("../README.md")]

mod backend;
pub mod backends;
mod error;
pub mod export_kmodel;
pub mod preprocess_kernel;
mod tensor;

use std::str::FromStr;

use kestrel_onnx::OnnxModel;

pub use backend::{Backend, PrepareOptions, Prepared, TensorSpec};
pub use backends::cpu::count_macs;
pub use error::EngineError;
pub use tensor::{Tensor, TensorData};

/// Which backend to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The fastest available: CUDA when a GPU is usable, else the CPU.
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

/// The backend for `kind`; `Auto` resolves to the first one whose `check()` passes.
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

/// A model prepared on one backend.
pub struct Engine {
    backend: &'static str,
    prepared: Box<dyn Prepared>,
}

impl Engine {
    /// Checks the backend, then prepares the model on it.
    pub fn new(kind: BackendKind, model: &OnnxModel, options: &PrepareOptions) -> Result<Engine, EngineError> {
        let backend = backend(kind);
        backend.check()?;
        let prepared = backend.prepare(model, options)?;
        Ok(Engine { backend: backend.name(), prepared })
    }

    /// Name of the backend it runs on (what `Auto` chose).
    pub fn backend(&self) -> &'static str {
        self.backend
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
}
