//! `kestrel eval`: top-1 accuracy on a labeled dataset.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kestrel_engine::Tensor;
use kestrel_vision::config::{Color, Decoder, Layout, Preprocess};
use kestrel_vision::dataset::LabeledImages;
use kestrel_vision::decode::classify::argmax;
use serde::Serialize;

use crate::cli::EvalArgs;
use crate::models::{engine, load_config, models_dir, open_model, ModelFile};

#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub model: String,
    pub dataset: String,
    pub backend: &'static str,
    pub samples: usize,
    pub correct: usize,
    pub top1: f64,
    pub seconds: f64,
}

impl EvalReport {
    pub fn describe(&self) -> String {
        format!(
            "{}: top-1 {:.2}% ({}/{}) on {} ({} backend, {:.2} s)",
            self.model,
            self.top1 * 100.0,
            self.correct,
            self.samples,
            self.dataset,
            self.backend,
            self.seconds
        )
    }
}

/// Loads a named dataset's test split from `data_dir` (default: the bundled copy).
pub fn load_dataset(name: &str, data_dir: Option<&Path>) -> Result<LabeledImages> {
    load_split(name, data_dir, "t10k")
}

/// Loads a named dataset's calibration split (a slice of its training set, never the test set).
pub fn load_calibration(name: &str) -> Result<LabeledImages> {
    load_split(name, None, "calib")
}

fn load_split(name: &str, data_dir: Option<&Path>, split: &str) -> Result<LabeledImages> {
    match name {
        "fashion-mnist" => {
            let dir: PathBuf = data_dir.map(Path::to_path_buf).unwrap_or_else(|| models_dir().join("fashion-cnn/data"));
            LabeledImages::read_idx(
                &dir.join(format!("{split}-images-idx3-ubyte.gz")),
                &dir.join(format!("{split}-labels-idx1-ubyte.gz")),
            )
            .with_context(|| {
                format!("reading fashion-mnist from `{}` (use --data-dir to point elsewhere)", dir.display())
            })
        }
        other => bail!("unknown dataset `{other}` (available: fashion-mnist)"),
    }
}

/// Packs gray images `range` into one batch tensor laid out as the config says.
pub fn batch_tensor(data: &LabeledImages, range: std::ops::Range<usize>, p: &Preprocess) -> Result<Tensor> {
    let (w, h) = (data.width, data.height);
    let n = range.len();
    let mut values = Vec::with_capacity(n * w * h);
    for i in range {
        values.extend(data.image(i).iter().map(|&v| p.value(v, 0)));
    }
    let shape = match p.layout {
        Layout::Nhwc => vec![n, h, w, 1],
        Layout::Nchw => vec![n, 1, h, w],
    };
    Ok(Tensor::f32(shape, values)?)
}

pub fn evaluate(args: &EvalArgs) -> Result<EvalReport> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let model = open_model(&args.model)?;
    let config = load_config(&args.model, &model, &args.model_config)?;
    let data = load_dataset(&args.dataset, args.data_dir.as_deref())?;
    let p = &config.preprocess;
    if p.color != Color::Gray || p.width as usize != data.width || p.height as usize != data.height {
        bail!(
            "the model takes {}x{} {:?} images; {} has {}x{} gray images",
            p.width,
            p.height,
            p.color,
            args.dataset,
            data.width,
            data.height
        );
    }
    // Top-1 needs only the argmax, the same before and after a softmax.
    let Decoder::Classifier { .. } = &config.decoder else {
        bail!("eval measures classifiers; this model's decoder is not a classifier");
    };
    let total = args.limit.unwrap_or(data.len()).min(data.len());
    if total == 0 {
        bail!("nothing to evaluate (--limit 0 or an empty dataset)");
    }
    // A .kmodel's batch was fixed when it was exported (the config's shape, checked above).
    let batch = if matches!(model, ModelFile::Kmodel(_)) { p.shape()[0] } else { args.batch.min(total) };
    let shape_of = |n: usize| batch_tensor(&data, 0..n, p).map(|t| t.shape);
    let mut full = engine(&model, &args.engine, shape_of(batch)?)?;
    let rest = total % batch;
    let mut tail = if rest > 0 { Some(engine(&model, &args.engine, shape_of(rest)?)?) } else { None };
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed}").unwrap_or(ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let mut correct = 0;
    let mut at = 0;
    while at < total {
        let n = batch.min(total - at);
        let eng = if n == batch { &mut full } else { tail.as_mut().context("no engine for the last batch")? };
        let out = eng.run(&[batch_tensor(&data, at..at + n, p)?])?;
        let scores = out.first().and_then(|t| t.as_f32()).context("the model's first output is not float32")?;
        let classes = scores.len() / n;
        if classes == 0 || scores.len() != n * classes {
            bail!("output of {} values cannot be split over {n} images", scores.len());
        }
        for (i, row) in scores.chunks(classes).enumerate() {
            if argmax(row) == Some(usize::from(data.labels[at + i])) {
                correct += 1;
            }
        }
        at += n;
        bar.set_position(at as u64);
    }
    bar.finish_and_clear();
    Ok(EvalReport {
        model: args.model.display().to_string(),
        dataset: args.dataset.clone(),
        backend: full.backend(),
        samples: total,
        correct,
        top1: correct as f64 / total as f64,
        seconds: start.elapsed().as_secs_f64(),
    })
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    let report = evaluate(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.describe());
    }
    Ok(())
}
