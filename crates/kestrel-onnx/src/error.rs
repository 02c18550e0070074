use std::path::PathBuf;

/// Everything that can be wrong with an ONNX file, each variant naming the thing at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is empty (0 bytes): not an ONNX model")]
    EmptyFile { path: PathBuf },
    #[error("not an ONNX model: protobuf decoding failed ({0})")]
    Decode(String),
    #[error("the model has no graph")]
    NoGraph,
    #[error("{what} `{name}`: {value} exceeds the limit of {limit}")]
    LimitExceeded { what: &'static str, name: String, value: u64, limit: u64 },
    #[error("{what} `{name}`: {reason}")]
    Invalid { what: &'static str, name: String, reason: String },
    #[error("unsupported op `{op}`{} in node `{node}`", domain_suffix(.domain))]
    UnsupportedOp { op: String, domain: String, node: String },
    #[error("node `{node}` reads `{input}`, which no graph input, initializer or node defines")]
    UndefinedInput { node: String, input: String },
    #[error("graph output `{output}` is never produced")]
    UndefinedOutput { output: String },
    #[error("the graph has a cycle through node `{node}`")]
    Cycle { node: String },
    #[error("node `{node}` ({op}): attribute `{attribute}` = {value}: {reason}")]
    BadAttribute { node: String, op: String, attribute: String, value: String, reason: &'static str },
    #[error("external data of tensor `{tensor}`: {reason}")]
    ExternalData { tensor: String, reason: String },
}

fn domain_suffix(domain: &str) -> String {
    if domain.is_empty() || domain == "ai.onnx" {
        String::new()
    } else {
        format!(" (domain `{domain}`)")
    }
}

impl From<prost::DecodeError> for OnnxError {
    fn from(e: prost::DecodeError) -> Self {
        OnnxError::Decode(decode_reason(&e))
    }
}

/// prost lists every enclosing field before the reason; the reason and its field are what help.
fn decode_reason(e: &prost::DecodeError) -> String {
    let text = e.to_string();
    let mut parts = text.rsplit(": ");
    let reason = parts.next().unwrap_or_default();
    match parts.next() {
        Some(field) if !field.starts_with("failed to decode") => format!("{reason} in {field}"),
        _ => reason.to_string(),
    }
}
