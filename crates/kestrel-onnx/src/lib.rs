#![doc = include_str!("../README.md")]

mod dtype;
mod error;
mod limits;
mod normalize;
mod prescan;
mod raw;
mod summary;
mod validate;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prost::Message;

pub use dtype::ElemType;
pub use error::OnnxError;
pub use limits::Limits;
pub use normalize::normalize;
pub use raw::{tensor_raw_le, RawTensor};
pub use summary::{element_count, summarize, IoInfo, Summary};
/// The ONNX protobuf types (prost), shared with tract.
pub use tract_onnx::pb;

/// A decoded, validated and normalized model, with the folder its external data lives in.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    pub proto: pb::ModelProto,
    /// Folder of the file it was loaded from; `None` when loaded from bytes.
    pub dir: Option<PathBuf>,
}

/// Op types some Kestrel backend can execute (tract's ONNX registry).
pub fn known_ops() -> &'static HashSet<String> {
    static OPS: OnceLock<HashSet<String>> = OnceLock::new();
    OPS.get_or_init(|| tract_onnx::onnx().op_register.0.keys().cloned().collect())
}

/// Reads, decodes, validates and normalizes a model file.
///
/// The file size is checked before it is read, and every size in the file before
/// anything of that size is allocated.
pub fn load(path: &Path, limits: &Limits) -> Result<OnnxModel, OnnxError> {
    let io = |source| OnnxError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(OnnxError::Invalid {
            what: "model path",
            name: path.display().to_string(),
            reason: "is a directory, not an .onnx file".into(),
        });
    }
    if meta.len() > limits.max_file_bytes {
        return Err(OnnxError::LimitExceeded {
            what: "file size in bytes (raise it with --max-model-bytes) of",
            name: path.display().to_string(),
            value: meta.len(),
            limit: limits.max_file_bytes,
        });
    }
    if meta.len() == 0 {
        return Err(OnnxError::EmptyFile { path: path.to_path_buf() });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let dir = path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p });
    from_bytes(&bytes, dir, limits)
}

/// Decodes, validates and normalizes a model held in memory.
/// `dir` is where external data would be looked up (none allowed when `None`).
pub fn from_bytes(bytes: &[u8], dir: Option<&Path>, limits: &Limits) -> Result<OnnxModel, OnnxError> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(OnnxError::LimitExceeded {
            what: "size (bytes) of",
            name: "model buffer".into(),
            value: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    prescan::prescan(bytes, limits)?;
    let mut proto = pb::ModelProto::decode(bytes)?;
    validate::Validator::new(limits, dir, known_ops()).model(&proto)?;
    normalize(&mut proto);
    Ok(OnnxModel { proto, dir: dir.map(Path::to_path_buf) })
}

/// Validates a model built or changed in memory (e.g. by a compression pass).
pub fn validate(model: &OnnxModel, limits: &Limits) -> Result<(), OnnxError> {
    validate::Validator::new(limits, model.dir.as_deref(), known_ops()).model(&model.proto)
}

/// Decodes and checks one standalone tensor (`.pb` test fixtures, calibration dumps).
pub fn load_tensor(path: &Path, limits: &Limits) -> Result<pb::TensorProto, OnnxError> {
    let io = |source| OnnxError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > limits.max_tensor_bytes.saturating_mul(2) {
        return Err(OnnxError::LimitExceeded {
            what: "file size (bytes) of",
            name: path.display().to_string(),
            value: meta.len(),
            limit: limits.max_tensor_bytes.saturating_mul(2),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let t = pb::TensorProto::decode(bytes.as_slice())?;
    validate::Validator::new(limits, path.parent(), known_ops()).tensor(&t, "tensor")?;
    Ok(t)
}

/// Writes a model atomically: a temporary file in the same folder, fsync, then rename,
/// so a failed write never leaves a half-written model behind.
pub fn save(model: &pb::ModelProto, path: &Path) -> Result<(), OnnxError> {
    let err = |source| OnnxError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&model.encode_to_vec())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests;
