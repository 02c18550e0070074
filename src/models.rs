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

/// Loads an ONNX model; a `.kmodel` is refused by name (it cannot be compressed or inspected).
pub fn load_model(path: &Path) -> Result<OnnxModel> {
    if is_kmodel(path) {
        bail!(
            "`{}` is a .kmodel (the integer runtime's format): this command takes the ONNX model it was exported from",
            path.display()
        );
    }
    let limits = LIMITS.get().copied().unwrap_or_default();
    kestrel_onnx::load(path, &limits).with_context(|| format!("loading model `{}`", path.display()))
}

/// A model file as the commands that run models take it: ONNX, or a `.kmodel` (told apart by
/// its magic bytes, not its name) that runs on the integer runtime.
pub enum ModelFile {
    Onnx(Box<OnnxModel>),
    /// The file's bytes, validated.
    Kmodel(Vec<u8>),
}

fn is_kmodel(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && magic == kestrel_engine::micro::MAGIC
}

/// Opens an ONNX model or a `.kmodel`.
pub fn open_model(path: &Path) -> Result<ModelFile> {
    if !is_kmodel(path) {
        return load_model(path).map(|m| ModelFile::Onnx(Box::new(m)));
    }
    let limits = LIMITS.get().copied().unwrap_or_default();
    let len = std::fs::metadata(path).with_context(|| format!("loading model `{}`", path.display()))?.len();
    if len > limits.max_file_bytes {
        bail!("loading model `{}`: {len} bytes, over the limit of {} bytes", path.display(), limits.max_file_bytes);
    }
    let bytes = std::fs::read(path).with_context(|| format!("loading model `{}`", path.display()))?;
    kestrel_engine::micro::Model::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("loading model `{}`: not a valid .kmodel: {e}", path.display()))?;
    Ok(ModelFile::Kmodel(bytes))
}

/// What the config and engine need to know of a model file, whichever its format.
#[derive(Clone, Copy)]
pub enum ModelView<'a> {
    Onnx(&'a OnnxModel),
    /// A `.kmodel`'s bytes, validated by [`open_model`].
    Kmodel(&'a [u8]),
}

impl<'a> From<&'a OnnxModel> for ModelView<'a> {
    fn from(m: &'a OnnxModel) -> Self {
        ModelView::Onnx(m)
    }
}

impl<'a> From<&'a ModelFile> for ModelView<'a> {
    fn from(m: &'a ModelFile) -> Self {
        match m {
            ModelFile::Onnx(m) => ModelView::Onnx(m),
            ModelFile::Kmodel(bytes) => ModelView::Kmodel(bytes),
        }
    }
}

impl<'a> ModelView<'a> {
    fn kmodel(bytes: &'a [u8]) -> kestrel_engine::micro::Model<'a> {
        kestrel_engine::micro::Model::parse(bytes).expect("validated by open_model")
    }

    /// The config text the file carries (compressed and exported models do).
    fn embedded_config(&self) -> Option<String> {
        match self {
            ModelView::Onnx(m) => {
                m.proto.metadata_props.iter().find(|e| e.key == CONFIG_METADATA_KEY).map(|e| e.value.clone())
            }
            ModelView::Kmodel(bytes) => Self::kmodel(bytes)
                .metadata_value(kestrel_engine::export_kmodel::CONFIG_KEY)
                .map(|v| String::from_utf8_lossy(v).into_owned()),
        }
    }

    /// The declared inputs: names and dims (`None` where symbolic); a `.kmodel`'s are fixed.
    pub fn inputs(&self) -> Vec<(String, Vec<Option<u64>>)> {
        match self {
            ModelView::Onnx(m) => {
                kestrel_onnx::summarize(&m.proto).inputs.into_iter().map(|i| (i.name, i.shape)).collect()
            }
            ModelView::Kmodel(bytes) => {
                let m = Self::kmodel(bytes);
                let names = m.metadata_value(kestrel_engine::export_kmodel::INPUTS_KEY).unwrap_or(b"input0");
                let info = m.tensor(m.input(0));
                let dims = info.dims[..info.rank].iter().map(|&d| Some(d as u64)).collect();
                vec![(String::from_utf8_lossy(names).lines().next().unwrap_or("input0").to_string(), dims)]
            }
        }
    }

    fn metadata(&self) -> Vec<(&'a str, &'a str)> {
        match self {
            ModelView::Onnx(m) => m.proto.metadata_props.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect(),
            ModelView::Kmodel(_) => Vec::new(),
        }
    }
}

/// Key of the ONNX metadata entry that carries a model's `kestrel.toml` inside the file.
pub const CONFIG_METADATA_KEY: &str = "kestrel.config";

/// The model's preprocessing/decoding config: `--config`, else the copy embedded in the model's
/// metadata (compressed models carry one), else `kestrel.toml` beside the model, else guessed
/// from the input's shape (each guess stated on stderr); then `--input-shape` sets the size.
pub fn load_config<'a>(path: &Path, model: impl Into<ModelView<'a>>, args: &ConfigArgs) -> Result<ModelConfig> {
    let model = model.into();
    let shape = (!args.input_shape.is_empty()).then_some(args.input_shape.as_slice());
    let beside = ModelConfig::path_for(path);
    let (mut config, origin) = if let Some(file) = &args.config {
        (ModelConfig::load(file)?, format!("`{}`", file.display()))
    } else if let Some(text) = model.embedded_config() {
        (ModelConfig::from_toml(&text, path)?, "the config the model carries".to_string())
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
    check_declared(path, &model, &config.preprocess.shape(), &origin)?;
    Ok(config)
}

/// The config text a compressed or exported model carries: the file `load_config` used, comments
/// kept; the resolved config as TOML when it was guessed or `--input-shape` changed it.
pub fn config_to_carry(path: &Path, model: &OnnxModel, config: &ModelConfig, args: &ConfigArgs) -> Result<String> {
    if !args.input_shape.is_empty() {
        return Ok(config.to_toml()?);
    }
    if args.config.is_none() {
        if let Some(text) = ModelView::Onnx(model).embedded_config() {
            return Ok(text);
        }
    }
    let file = args.config.clone().unwrap_or_else(|| ModelConfig::path_for(path));
    if args.config.is_none() && !file.exists() {
        return Ok(config.to_toml()?);
    }
    std::fs::read_to_string(&file).with_context(|| format!("reading config `{}`", file.display()))
}

/// The input shape a config makes must agree with every fixed dimension the model declares.
fn check_declared(path: &Path, model: &ModelView<'_>, shape: &[usize], origin: &str) -> Result<()> {
    let inputs = model.inputs();
    let Some((name, dims)) = inputs.first() else { return Ok(()) };
    let fits = dims.len() == shape.len() && dims.iter().zip(shape).all(|(d, &s)| d.is_none_or(|d| d == s as u64));
    if !fits {
        let declared: Vec<String> = dims.iter().map(|d| d.map_or("?".into(), |d| d.to_string())).collect();
        let kmodel = if matches!(model, ModelView::Kmodel(_)) { " (fixed when it was exported)" } else { "" };
        bail!(
            "{origin} makes input shape {shape:?}, but `{}` declares input `{name}` as [{}]{kmodel}",
            path.display(),
            declared.join(", ")
        );
    }
    Ok(())
}

/// The guessed config of a model's first input.
pub fn guess_config<'a>(path: &Path, model: impl Into<ModelView<'a>>, shape: Option<&[usize]>) -> Result<guess::Guess> {
    let model = model.into();
    let inputs = model.inputs();
    let (name, dims) = inputs.first().with_context(|| format!("`{}` declares no input", path.display()))?;
    if inputs.len() > 1 {
        bail!(
            "`{}` has {} inputs ({}): only single-image models are run; write a kestrel.toml",
            path.display(),
            inputs.len(),
            inputs.iter().map(|i| i.0.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(guess::guess(name, dims, shape, &model.metadata())?)
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
pub fn engine<'a>(model: impl Into<ModelView<'a>>, args: &EngineArgs, input_shape: Vec<usize>) -> Result<Engine> {
    if !(1..=kestrel_engine::MAX_THREADS).contains(&args.threads) {
        anyhow::bail!("--threads must be within 1..={}", kestrel_engine::MAX_THREADS);
    }
    if args.mcu.is_some() {
        anyhow::bail!("--mcu works with `kestrel run` and `kestrel watch`");
    }
    let kind: BackendKind = args.backend.parse().context("--backend")?;
    let engine = match model.into() {
        ModelView::Onnx(model) => {
            let options = PrepareOptions { threads: args.threads, input_shapes: vec![input_shape] };
            Engine::new(kind, model, &options)?
        }
        ModelView::Kmodel(bytes) => Engine::from_kmodel(kind, bytes.to_vec(), args.threads)?,
    };
    if kind == BackendKind::Auto {
        eprintln!("backend {}: {}", engine.backend(), engine.reason());
    }
    Ok(engine)
}
