//! Finding and opening models, their configs and the bundled data.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kestrel_engine::{BackendKind, Engine, PrepareOptions};
use kestrel_onnx::{Limits, OnnxModel};
use kestrel_vision::ModelConfig;

use crate::cli::EngineArgs;

/// The bundled `models/` folder: `$KESTREL_MODELS`, else `./models`, else the source tree's.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KESTREL_MODELS") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("models");
    if local.join("blazeface").is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Limits for every model this process loads (the CLI may change the file size limit).
pub static LIMITS: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();

pub fn load_model(path: &Path) -> Result<OnnxModel> {
    let limits = LIMITS.get().copied().unwrap_or_default();
    kestrel_onnx::load(path, &limits).with_context(|| format!("loading model `{}`", path.display()))
}

/// Key of the ONNX metadata entry that carries a model's `kestrel.toml` inside the file.
pub const CONFIG_METADATA_KEY: &str = "kestrel.config";

/// The model's preprocessing/decoding config: `--config`, else the copy embedded in the model's
/// metadata (compressed models carry one), else `kestrel.toml` beside the model.
pub fn load_config(path: &Path, model: &OnnxModel, explicit: Option<&Path>) -> Result<ModelConfig> {
    if let Some(file) = explicit {
        return Ok(ModelConfig::load(file)?);
    }
    if let Some(entry) = model.proto.metadata_props.iter().find(|e| e.key == CONFIG_METADATA_KEY) {
        return Ok(ModelConfig::from_toml(&entry.value, path)?);
    }
    let beside = ModelConfig::path_for(path);
    if !beside.exists() {
        anyhow::bail!(
            "no preprocessing config for `{}`: expected `{}` beside the model (or pass --config FILE)",
            path.display(),
            beside.display()
        );
    }
    Ok(ModelConfig::load(&beside)?)
}

/// Prepares `model` on the requested backend with the given input shape.
pub fn engine(model: &OnnxModel, args: &EngineArgs, input_shape: Vec<usize>) -> Result<Engine> {
    if args.threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    let kind: BackendKind = args.backend.parse().context("--backend")?;
    let options = PrepareOptions { threads: args.threads, input_shapes: vec![input_shape] };
    let engine = Engine::new(kind, model, &options)?;
    if kind == BackendKind::Auto {
        eprintln!("backend {}: {}", engine.backend(), engine.reason());
    }
    Ok(engine)
}
