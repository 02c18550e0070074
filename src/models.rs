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

pub fn load_config(model: &Path, explicit: Option<&Path>) -> Result<ModelConfig> {
    let path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ModelConfig::path_for(model));
    if explicit.is_none() && !path.exists() {
        anyhow::bail!(
            "no preprocessing config for `{}`: expected `{}` beside the model (or pass --config FILE)",
            model.display(),
            path.display()
        );
    }
    Ok(ModelConfig::load(&path)?)
}

/// Prepares `model` on the requested backend with the given input shape.
pub fn engine(model: &OnnxModel, args: &EngineArgs, input_shape: Vec<usize>) -> Result<Engine> {
    if args.threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    let kind: BackendKind = args.backend.parse().context("--backend")?;
    let options = PrepareOptions {
        threads: args.threads,
        input_shapes: vec![input_shape],
    };
    let engine = Engine::new(kind, model, &options)?;
    if kind == BackendKind::Auto {
        eprintln!("backend auto: using {}", engine.backend());
    }
    Ok(engine)
}
