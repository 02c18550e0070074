/// Errors of the compression passes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressError {
    #[error("calibration: {0}")]
    Calibration(String),
    #[error("pass `{pass}`: {message}")]
    Pass { pass: &'static str, message: String },
    #[error("tensor `{name}`: {message}")]
    Tensor { name: String, message: String },
    #[error(transparent)]
    Engine(#[from] kestrel_engine::EngineError),
    #[error(transparent)]
    Onnx(#[from] kestrel_onnx::OnnxError),
}
