//! The backend lifecycle, as in tract: `check()` → `prepare(model)` → `run(inputs)`.

use kestrel_onnx::OnnxModel;

use crate::{EngineError, Tensor};

/// Name, element type and shape of a model input or output, as the prepared plan sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: String,
    /// `None` where a dimension is only known at run time.
    pub shape: Vec<Option<usize>>,
}

/// How to prepare a model.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// Worker threads for the backend (0 or 1: the calling thread only).
    pub threads: usize,
    /// Concrete shape of each input, in order. Empty: the declared shapes, with every
    /// symbolic dimension (usually the batch) set to 1.
    pub input_shapes: Vec<Vec<usize>>,
}

/// A way to run models: the CPU, a GPU, the integer runtime.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    /// Is this backend usable on this machine? Never panics.
    fn check(&self) -> Result<(), EngineError>;
    /// Turns a validated model into something that runs.
    fn prepare(&self, model: &OnnxModel, options: &PrepareOptions) -> Result<Box<dyn Prepared>, EngineError>;
}

/// A model ready to run on one backend.
pub trait Prepared: Send {
    fn inputs(&self) -> &[TensorSpec];
    fn outputs(&self) -> &[TensorSpec];
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, EngineError>;
    /// Like `run`, writing into `outputs`; a backend that can reuses the tensors already there
    /// (same shapes and types), so a steady stream of frames allocates nothing.
    fn run_into(&mut self, inputs: &[Tensor], outputs: &mut Vec<Tensor>) -> Result<(), EngineError> {
        *outputs = self.run(inputs)?;
        Ok(())
    }
    /// Each op's mean time over `runs` runs of `inputs`, in the order the ops run; `None` where
    /// the backend cannot time its ops one by one.
    fn op_times(&mut self, _inputs: &[Tensor], _runs: usize) -> Option<Result<Vec<OpTime>, EngineError>> {
        None
    }
    /// Another handle on this prepared model, for another caller (another camera's thread): the
    /// weights and the plan are shared, not copied; the handle gets its own run state (and its own
    /// workers). `None` where the backend cannot share a prepared model.
    fn share(&self) -> Option<Result<Box<dyn Prepared>, EngineError>> {
        None
    }
}

/// One op of a per-op profile.
#[derive(Debug, Clone, PartialEq)]
pub struct OpTime {
    /// The op's kind, as the backend names it (e.g. `Conv`, `Dequantize`).
    pub op: String,
    /// What it works on: its tensors' shapes.
    pub detail: String,
    /// Mean seconds per run.
    pub seconds: f64,
}
