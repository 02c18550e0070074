//! Stand-in for a backend that is not compiled into this build: it says so, it never panics.

use kestrel_onnx::OnnxModel;

use crate::{Backend, EngineError, PrepareOptions, Prepared};

pub struct Unavailable {
    pub name: &'static str,
    pub reason: &'static str,
}

impl Unavailable {
    fn error(&self) -> EngineError {
        EngineError::BackendUnavailable { backend: self.name, reason: self.reason.to_string() }
    }
}

impl Backend for Unavailable {
    fn name(&self) -> &'static str {
        self.name
    }
    fn check(&self) -> Result<(), EngineError> {
        Err(self.error())
    }
    fn prepare(&self, _: &OnnxModel, _: &PrepareOptions) -> Result<Box<dyn Prepared>, EngineError> {
        Err(self.error())
    }
}
