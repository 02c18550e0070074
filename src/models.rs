//! Finding and opening models, their configs and the bundled data.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kestrel_engine::{BackendKind, Engine, PrepareOptions};
use kestrel_onnx::{Limits, OnnxModel};
use kestrel_vision::config::{Layout, Preprocess};
use kestrel_vision::{guess, ModelConfig};

use crate::cli::{ConfigArgs, EngineArgs};

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
/// metadata (compressed models carry one), else `kestrel.toml` beside the model, else guessed
/// from the input's shape (each guess stated on stderr); then `--input-shape` sets the size.
pub fn load_config(path: &Path, model: &OnnxModel, args: &ConfigArgs) -> Result<ModelConfig> {
    let shape = (!args.input_shape.is_empty()).then_some(args.input_shape.as_slice());
    let beside = ModelConfig::path_for(path);
    let (mut config, origin) = if let Some(file) = &args.config {
        (ModelConfig::load(file)?, format!("`{}`", file.display()))
    } else if let Some(entry) = model.proto.metadata_props.iter().find(|e| e.key == CONFIG_METADATA_KEY) {
        (ModelConfig::from_toml(&entry.value, path)?, "the config the model carries".to_string())
    } else if beside.exists() {
        (ModelConfig::load(&beside)?, format!("`{}`", beside.display()))
    } else {
        let g = guess_config(path, model, shape)?;
        eprintln!(
            "no kestrel.toml for `{}`: guessed {} (`kestrel init {}` writes it down to edit)",
            path.display(),
            g.notes.join("; "),
            path.display()
        );
        return Ok(g.config);
    };
    let origin = match shape {
        Some(shape) => {
            apply_input_shape(&mut config.preprocess, shape)?;
            "--input-shape".to_string()
        }
        None => origin,
    };
    check_declared(path, model, &config.preprocess.shape(), &origin)?;
    Ok(config)
}

/// The input shape a config makes must agree with every fixed dimension the model declares.
fn check_declared(path: &Path, model: &OnnxModel, shape: &[usize], origin: &str) -> Result<()> {
    let summary = kestrel_onnx::summarize(&model.proto);
    let Some(input) = summary.inputs.first() else { return Ok(()) };
    let fits = input.shape.len() == shape.len()
        && input.shape.iter().zip(shape).all(|(d, &s)| d.is_none_or(|d| d == s as u64));
    if !fits {
        let declared: Vec<String> = input.shape.iter().map(|d| d.map_or("?".into(), |d| d.to_string())).collect();
        bail!(
            "{origin} makes input shape {shape:?}, but `{}` declares input `{}` as [{}]",
            path.display(),
            input.name,
            declared.join(", ")
        );
    }
    Ok(())
}

/// The guessed config of a model's first input.
pub fn guess_config(path: &Path, model: &OnnxModel, shape: Option<&[usize]>) -> Result<guess::Guess> {
    let summary = kestrel_onnx::summarize(&model.proto);
    let input = summary.inputs.first().with_context(|| format!("`{}` declares no input", path.display()))?;
    if summary.inputs.len() > 1 {
        bail!(
            "`{}` has {} inputs ({}): only single-image models are run; write a kestrel.toml",
            path.display(),
            summary.inputs.len(),
            summary.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let metadata: Vec<(&str, &str)> =
        model.proto.metadata_props.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
    Ok(guess::guess(&input.name, &input.shape, shape, &metadata)?)
}

/// `--input-shape` on a configured model: the size it sets, checked against the layout.
fn apply_input_shape(p: &mut Preprocess, shape: &[usize]) -> Result<()> {
    let channels = p.color.channels();
    let (c, h, w) = match (shape.len(), p.layout) {
        (4, Layout::Nchw) => (shape[1], shape[2], shape[3]),
        (4, Layout::Nhwc) => (shape[3], shape[1], shape[2]),
        _ => bail!("--input-shape {shape:?}: an image input has 4 dimensions"),
    };
    if shape[0] != 1 || c != channels {
        bail!(
            "--input-shape {shape:?} does not fit the config: batch 1 and {channels} channel(s) in {:?} layout",
            p.layout
        );
    }
    if !(1..=8192).contains(&h) || !(1..=8192).contains(&w) {
        bail!("--input-shape {shape:?}: height and width must be within 1..=8192");
    }
    (p.width, p.height) = (w as u32, h as u32);
    Ok(())
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
