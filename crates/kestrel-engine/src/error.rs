/// Errors of the engine and its backends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("backend `{backend}` is not available: {reason}")]
    BackendUnavailable { backend: &'static str, reason: String },
    #[error("unknown backend `{0}` (choose cpu, cuda, micro or auto)")]
    UnknownBackend(String),
    #[error("the {backend} backend cannot run op `{op}` in node `{node}`: {why}")]
    UnsupportedOp { backend: &'static str, op: String, node: String, why: String },
    #[error("the model cannot be prepared: {0}")]
    Prepare(String),
    #[error("inference failed: {0}")]
    Run(String),
    #[error("{0}")]
    Shape(String),
    #[error("unsupported element type: {0}")]
    UnsupportedType(String),
    #[error("internal error in {backend} (a bug, please report it): {message}")]
    Internal { backend: &'static str, message: String },
    #[error("the {backend} backend cannot time its ops one by one (a per-op profile needs the integer runtime: --backend micro)")]
    NoOpTimes { backend: &'static str },
    #[error("the {backend} backend cannot share a prepared model between callers: prepare one per caller")]
    NoSharing { backend: &'static str },
    #[error("not a valid .kmodel: {0}")]
    Kmodel(kestrel_micro::Error),
    #[error(transparent)]
    Onnx(#[from] kestrel_onnx::OnnxError),
}
