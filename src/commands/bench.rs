//! `kestrel bench`: the full model and its compressed candidates side by side. Each model is
//! measured in a fresh process (so peak memory is its own), on the same workload.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use kestrel_engine::Tensor;
use kestrel_vision::decode::Detection;
use kestrel_vision::{image_io, preprocess};
use serde::{Deserialize, Serialize};

use super::eval::{batch_tensor, evaluate, load_dataset};
use super::run::ImageModel;
use crate::cli::{BenchArgs, BenchWorkerArgs, ConfigArgs, EngineArgs, EvalArgs, Workload};
use crate::models::{engine, load_config, open_model, ModelFile};

const WARM_UP: usize = 20;

/// What one model measured in its own process (one round; see [`compare`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    pub model: String,
    /// The backend it ran on, and why there (`auto`'s reason, or "asked for").
    pub backend: String,
    pub backend_reason: String,
    pub threads: usize,
    /// Conv/MatMul/Gemm layers that run in float, and in int8.
    pub float_layers: usize,
    pub int8_layers: usize,
    pub file_bytes: u64,
    pub parameters: u64,
    pub macs: Option<u64>,
    /// Load, validate and prepare, in milliseconds.
    pub load_ms: f64,
    /// One timed inference (batch 1) per entry, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Peak resident memory of the measuring process (VmHWM), in KiB.
    pub peak_rss_kib: Option<u64>,
    /// Top-1 accuracy on the labeled dataset, when one was given.
    pub top1: Option<f64>,
    /// Per-image results, when a folder of images was given.
    pub images: Vec<ImageOutcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageOutcome {
    pub image: String,
    pub top_class: Option<usize>,
    pub detections: Vec<Detection>,
}

/// One row of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub model: String,
    pub backend: String,
    pub backend_reason: String,
    pub threads: usize,
    pub float_layers: usize,
    pub int8_layers: usize,
    pub file_bytes: u64,
    pub parameters: u64,
    pub macs: Option<u64>,
    pub load_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub throughput_per_s: f64,
    pub peak_rss_mib: Option<f64>,
    /// Top-1 accuracy (dataset), or agreement with the full model (images), in [0, 1].
    pub quality: Option<f64>,
    pub quality_kind: String,
    /// Detectors: mean IoU and mean |score drift| of boxes matched to the full model's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_iou: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_score_drift: Option<f64>,
    /// Detectors: the same on the boxes the full model is sure of (score >= 0.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sure_boxes: Option<SureBoxes>,
    pub latencies_ms: Vec<f64>,
}

impl Row {
    /// The numbers of a row as shown (size KB, params, MMACs, load, p50, p90, p99, per second,
    /// peak MB, quality): one formatting for the terminal table and the HTML page.
    pub fn cells(&self) -> [String; 10] {
        [
            format!("{:.1}", self.file_bytes as f64 / 1024.0),
            self.parameters.to_string(),
            self.macs.map_or("-".into(), |m| format!("{:.2}", m as f64 / 1e6)),
            format!("{:.1}", self.load_ms),
            format!("{:.3}", self.p50_ms),
            format!("{:.3}", self.p90_ms),
            format!("{:.3}", self.p99_ms),
            format!("{:.0}", self.throughput_per_s),
            self.peak_rss_mib.map_or("-".into(), |m| format!("{m:.1}")),
            self.quality.map_or("-".into(), |q| format!("{:.2}%", q * 100.0)),
        ]
    }
}

/// The machine a report was measured on, so that two reports can be compared.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub arch: &'static str,
    /// Cores this process may use.
    pub cores: usize,
    /// The integer runtime's convolution kernel on this CPU (avx512-vnni, avx2, aarch64-sdot, portable).
    pub micro_kernel: &'static str,
}

impl Machine {
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |key: &str| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        let cpu = field("model name")
            .or_else(|| field("CPU part").map(|p| format!("{} CPU part {p}", std::env::consts::ARCH)))
            .unwrap_or_else(|| "unknown CPU".into());
        Machine {
            cpu,
            arch: std::env::consts::ARCH,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            micro_kernel: kestrel_engine::micro_conv_kernel(),
        }
    }

    pub fn describe(&self) -> String {
        format!("{} ({}, {} core(s)); integer runtime kernel: {}", self.cpu, self.arch, self.cores, self.micro_kernel)
    }
}

fn check_workload(w: &Workload) -> Result<()> {
    if w.dataset.is_none() && w.images.is_none() {
        bail!("give a workload: --dataset NAME or --images DIR");
    }
    if w.runs == 0 || w.threads == 0 {
        bail!("--runs and --threads must be at least 1");
    }
    Ok(())
}

/// The PNG and JPEG files in `dir`, in name order; none is an error naming the folder as the
/// option (or thing) `what` that gave it.
pub(crate) fn images_in(dir: &Path, what: &str) -> Result<Vec<PathBuf>> {
    let mut images: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {what} folder `{}`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| matches!(e.to_string_lossy().to_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    images.sort();
    if images.is_empty() {
        bail!("{what} folder `{}` holds no PNG or JPEG images", dir.display());
    }
    Ok(images)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A `.kmodel`'s float and integer layers, its parameters (the elements of its constant
/// tensors) and the MACs of its convolutions and matrix products (each output element takes
/// one filter: the weights' elements over the output channels, the last dim in either layout).
fn kmodel_counts(bytes: &[u8]) -> (usize, usize, u64, Option<u64>) {
    use kestrel_engine::micro::{Model, OpCode, Storage};
    let Ok(m) = Model::parse(bytes) else { return (0, 0, 0, None) };
    let count = |codes: &[OpCode]| (0..m.op_count()).filter(|&o| codes.contains(&m.op(o).code)).count();
    let parameters = (0..m.tensor_count())
        .map(|t| m.tensor(t))
        .filter(|t| t.storage == Storage::Weights)
        .map(|t| t.elements() as u64)
        .sum();
    let macs = (0..m.op_count())
        .map(|o| m.op(o))
        .filter(|op| matches!(op.code, OpCode::Conv | OpCode::ConvF32 | OpCode::FullyConnected))
        .map(|op| {
            let (out, w) = (m.tensor(usize::from(op.outputs[0])), m.tensor(usize::from(op.inputs[1])));
            (out.elements() * (w.elements() / out.dims[out.rank - 1])) as u64
        })
        .sum();
    (count(&[OpCode::ConvF32]), count(&[OpCode::Conv, OpCode::FullyConnected]), parameters, Some(macs))
}

/// Measures one model in this process.
fn measure(path: &Path, w: &Workload, latency_only: bool) -> Result<Measurement> {
    check_workload(w)?;
    let engine_args = EngineArgs { backend: w.backend.clone(), threads: w.threads, mcu: None };
    let start = Instant::now();
    let file = open_model(path)?;
    let config_args = ConfigArgs { config: None, input_shape: w.input_shape.clone() };
    let config = load_config(path, &file, &config_args)?;
    let image_paths = w.images.as_deref().map(|dir| images_in(dir, "--images")).transpose()?;
    let input = match (&w.dataset, &image_paths) {
        (Some(name), _) => batch_tensor(&load_dataset(name, None)?, 0..1, &config.preprocess)?,
        (None, Some(paths)) => {
            let x = preprocess::preprocess(&image_io::load_rgb(&paths[0])?, &config.preprocess);
            Tensor::f32(x.shape, x.data)?
        }
        (None, None) => unreachable!("checked above"),
    };
    let mut eng = engine(&file, &engine_args, input.shape.clone())?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let inputs = [input];
    let mut latencies_ms = Vec::with_capacity(w.runs);
    for i in 0..WARM_UP + w.runs {
        let t = Instant::now();
        eng.run(&inputs)?;
        if i >= WARM_UP {
            latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let (float_layers, int8_layers, parameters, macs) = match &file {
        ModelFile::Onnx(onnx) => {
            let summary = kestrel_onnx::summarize(&onnx.proto);
            let layers =
                |ops: &[&str]| summary.ops.iter().filter(|(op, _)| ops.contains(&op.as_str())).map(|(_, n)| n).sum();
            (
                layers(&["Conv", "MatMul", "Gemm", "ConvTranspose"]),
                layers(&["QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"]),
                summary.parameters,
                kestrel_engine::count_macs(onnx, std::slice::from_ref(&inputs[0].shape)).ok(),
            )
        }
        ModelFile::Kmodel(bytes) => kmodel_counts(bytes),
    };
    let mut m = Measurement {
        model: path.display().to_string(),
        backend: eng.backend().to_string(),
        backend_reason: eng.reason().to_string(),
        threads: w.threads,
        float_layers,
        int8_layers,
        file_bytes: std::fs::metadata(path)?.len(),
        parameters,
        macs,
        load_ms,
        latencies_ms,
        peak_rss_kib: None,
        top1: None,
        images: vec![],
    };
    // A later round times the runs only: the first measured the quality.
    let (dataset, image_paths) = if latency_only { (None, None) } else { (w.dataset.as_ref(), image_paths) };
    if let Some(name) = dataset {
        let report = evaluate(&EvalArgs {
            model: path.to_path_buf(),
            dataset: name.clone(),
            data_dir: None,
            limit: w.limit,
            batch: 100,
            model_config: config_args.clone(),
            json: true,
            engine: engine_args,
        })?;
        m.top1 = Some(report.top1);
    } else if let Some(paths) = image_paths {
        m.images = image_outcomes(path, &config_args, &engine_args, &paths)?;
    }
    m.peak_rss_kib = peak_rss_kib();
    Ok(m)
}

/// What `model` makes of each image: its top class, or its boxes.
pub(crate) fn image_outcomes(
    model: &Path,
    config: &ConfigArgs,
    engine: &EngineArgs,
    images: &[PathBuf],
) -> Result<Vec<ImageOutcome>> {
    let mut m = ImageModel::open(model, config, engine)?;
    images
        .iter()
        .map(|p| {
            let r = m.infer(p, None, 1)?;
            Ok(ImageOutcome {
                image: p.display().to_string(),
                top_class: r.classes.as_ref().and_then(|c| c.first()).map(|c| c.index),
                detections: r.detections.unwrap_or_default(),
            })
        })
        .collect()
}

pub fn worker(args: &BenchWorkerArgs) -> Result<()> {
    println!("{}", serde_json::to_string(&measure(&args.model, &args.workload, args.latency_only)?)?);
    Ok(())
}

/// Runs the worker for `model` in a fresh process (`runs` timed runs; with `latency_only`, no
/// quality measured).
fn measure_in_child(model: &Path, w: &Workload, backend: &str, runs: usize, latency_only: bool) -> Result<Measurement> {
    let exe = std::env::current_exe().context("finding the kestrel executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("bench-worker").arg(model).args(["--runs", &runs.to_string(), "--threads", &w.threads.to_string()]);
    if latency_only {
        cmd.arg("--latency-only");
    }
    cmd.args(["--backend", backend]);
    if !w.input_shape.is_empty() {
        let dims: Vec<String> = w.input_shape.iter().map(usize::to_string).collect();
        cmd.args(["--input-shape", &dims.join(",")]);
    }
    if let Some(d) = &w.dataset {
        cmd.args(["--dataset", d]);
    }
    if let Some(i) = &w.images {
        cmd.arg("--images").arg(i);
    }
    if let Some(l) = w.limit {
        cmd.args(["--limit", &l.to_string()]);
    }
    let out = cmd.output().context("starting the bench worker")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| l.starts_with("Error: ")).unwrap_or(err.trim());
        bail!("measuring `{}`: {}", model.display(), line.trim_start_matches("Error: "));
    }
    serde_json::from_slice(&out.stdout).context("reading the bench worker's report")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A score the full model is sure of: boxes at the decoder's threshold come and go with any
/// change (a quantized model's, or another photo's), so agreement is also shown above this.
const SURE_SCORE: f32 = 0.5;

/// How many of the full model's boxes scoring at least `min_score` a box of `m` of the same
/// class finds at IoU >= 0.5: (boxes, found, mean IoU, mean |score drift|).
fn boxes_found(full: &[ImageOutcome], m: &[ImageOutcome], min_score: f32) -> (usize, usize, Option<f64>, Option<f64>) {
    let (mut total, mut matched, mut iou_sum, mut drift_sum) = (0usize, 0usize, 0f64, 0f64);
    for (a, b) in full.iter().zip(m) {
        for d in a.detections.iter().filter(|d| d.score >= min_score) {
            total += 1;
            let same_class = b.detections.iter().filter(|e| e.class == d.class);
            let best = same_class.map(|e| (d.iou(e), e)).max_by(|x, y| x.0.total_cmp(&y.0));
            if let Some((iou, e)) = best.filter(|(iou, _)| *iou >= 0.5) {
                matched += 1;
                iou_sum += f64::from(iou);
                drift_sum += f64::from((d.score - e.score).abs());
            }
        }
    }
    let mean = |s: f64| (matched > 0).then(|| s / matched as f64);
    (total, matched, mean(iou_sum), mean(drift_sum))
}

/// Agreement of `m` with the full model on the same images (none: `m`'s top-1 accuracy).
fn agreement(full: &Measurement, m: &Measurement) -> Agreement {
    if full.images.is_empty() {
        return Agreement { quality: m.top1, kind: "top-1 accuracy".into(), ..Default::default() };
    }
    image_agreement(&full.images, &m.images)
}

/// Agreement of a model's outcomes `m` with the full model's on the same images: top-1 for
/// classifiers, boxes found for detectors.
pub(crate) fn image_agreement(full: &[ImageOutcome], m: &[ImageOutcome]) -> Agreement {
    if full.iter().all(|i| i.top_class.is_some()) {
        let same = full.iter().zip(m).filter(|(a, b)| a.top_class == b.top_class).count();
        return Agreement {
            quality: Some(same as f64 / full.len().max(1) as f64),
            kind: "top-1 agreement with full".into(),
            ..Default::default()
        };
    }
    let (total, found, mean_iou, mean_drift) = boxes_found(full, m, f32::NEG_INFINITY);
    let (sure, sure_found, sure_iou, _) = boxes_found(full, m, SURE_SCORE);
    Agreement {
        quality: (total > 0).then(|| found as f64 / total as f64),
        kind: "full model's boxes found (same class, IoU >= 0.5)".into(),
        mean_iou,
        mean_score_drift: mean_drift,
        sure: (sure > 0).then(|| SureBoxes { boxes: sure, found: sure_found as f64 / sure as f64, mean_iou: sure_iou }),
    }
}

#[derive(Default)]
pub(crate) struct Agreement {
    pub quality: Option<f64>,
    pub kind: String,
    pub mean_iou: Option<f64>,
    pub mean_score_drift: Option<f64>,
    pub sure: Option<SureBoxes>,
}

/// Agreement on the boxes the full model scores at least [`SURE_SCORE`].
#[derive(Debug, Clone, Serialize)]
pub struct SureBoxes {
    pub boxes: usize,
    pub found: f64,
    pub mean_iou: Option<f64>,
}

fn rows(ms: &[Measurement]) -> Vec<Row> {
    ms.iter()
        .map(|m| {
            let mut sorted = m.latencies_ms.clone();
            sorted.sort_by(f64::total_cmp);
            let agreement = agreement(&ms[0], m);
            let p50 = percentile(&sorted, 50.0);
            Row {
                model: m.model.clone(),
                backend: m.backend.clone(),
                backend_reason: m.backend_reason.clone(),
                threads: m.threads,
                float_layers: m.float_layers,
                int8_layers: m.int8_layers,
                file_bytes: m.file_bytes,
                parameters: m.parameters,
                macs: m.macs,
                load_ms: m.load_ms,
                p50_ms: p50,
                p90_ms: percentile(&sorted, 90.0),
                p99_ms: percentile(&sorted, 99.0),
                throughput_per_s: 1e3 * sorted.len() as f64 / sorted.iter().sum::<f64>().max(f64::MIN_POSITIVE),
                peak_rss_mib: m.peak_rss_kib.map(|k| k as f64 / 1024.0),
                quality: agreement.quality,
                quality_kind: agreement.kind,
                mean_iou: agreement.mean_iou,
                mean_score_drift: agreement.mean_score_drift,
                sure_boxes: agreement.sure,
                latencies_ms: m.latencies_ms.clone(),
            }
        })
        .collect()
}

pub fn table(rows: &[Row]) -> String {
    let mut t = format!(
        "{:<44} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9}\n",
        "model", "size KB", "params", "MMACs", "load ms", "p50 ms", "p90 ms", "p99 ms", "per sec", "peak MB", "quality"
    );
    let full = &rows[0];
    for r in rows {
        let c = r.cells();
        let _ = writeln!(
            t,
            "{:<44} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9}",
            shorten(&format!("{} ({})", r.model, r.backend), 44),
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            c[6],
            c[7],
            c[8],
            c[9]
        );
    }
    let _ = writeln!(t, "quality: {}", full.quality_kind);
    for r in &rows[1..] {
        let _ = writeln!(t, "{}", verdict(r, full));
        if let (Some(iou), Some(drift)) = (r.mean_iou, r.mean_score_drift) {
            let _ = writeln!(t, "  matched boxes: mean IoU {iou:.3}, mean |score drift| {drift:.3}");
        }
        if let Some(s) = &r.sure_boxes {
            let iou = s.mean_iou.map_or("-".into(), |v| format!("{v:.3}"));
            let _ = writeln!(
                t,
                "  the {} box(es) the full model scores >= {SURE_SCORE}: {:.1}% found, mean IoU {iou}",
                s.boxes,
                s.found * 100.0
            );
        }
        if r.p50_ms > full.p50_ms {
            let _ = writeln!(t, "  slower because: {}", why_slower(r));
        }
    }
    if let Some(best) = fastest_acceptable(rows) {
        let _ = writeln!(
            t,
            "fastest within {ACCEPTABLE_LOSS_PT} pt of the full model's quality: {} ({:.3} ms on {})",
            shorten(&best.model, 60),
            best.p50_ms,
            best.backend
        );
    }
    t
}

/// Quality a candidate may lose and still count as acceptable, in percentage points.
pub const ACCEPTABLE_LOSS_PT: f64 = 1.0;

/// The fastest row (by p50) whose quality is within [`ACCEPTABLE_LOSS_PT`] of the full model's.
pub fn fastest_acceptable(rows: &[Row]) -> Option<&Row> {
    let full = rows.first()?.quality?;
    rows.iter()
        .filter(|r| r.quality.is_some_and(|q| (full - q) * 100.0 <= ACCEPTABLE_LOSS_PT + 1e-9))
        .min_by(|a, b| a.p50_ms.total_cmp(&b.p50_ms))
}

/// A candidate against the full model in one line: "N× smaller, N× faster, ±x pt".
pub fn verdict(r: &Row, full: &Row) -> String {
    let speed = full.p50_ms / r.p50_ms;
    let speed = if speed >= 1.0 { format!("{speed:.2}x faster") } else { format!("{:.2}x slower", 1.0 / speed) };
    format!(
        "{}: {:.2}x smaller, {speed} ({} vs {}), {}",
        shorten(&r.model, 60),
        full.file_bytes as f64 / r.file_bytes as f64,
        r.backend,
        full.backend,
        match (r.quality, full.quality) {
            (Some(q), Some(f)) if full.quality_kind.starts_with("top-1 accuracy") =>
                format!("{:+.2} pt top-1", (q - f) * 100.0),
            (Some(q), _) => format!("{:.1}% {}", q * 100.0, r.quality_kind),
            _ => "no quality measure".into(),
        }
    )
}

/// Why a candidate ran slower than the full model: where it ran, why there, what stayed float.
pub fn why_slower(r: &Row) -> String {
    let mut why = format!("it ran on {} ({})", r.backend, r.backend_reason);
    let layers = r.float_layers + r.int8_layers;
    if layers > 0 {
        let _ = write!(why, "; {} of its {layers} Conv/MatMul layers are float", r.float_layers);
    }
    if r.backend == "cpu" && r.int8_layers > 0 {
        why.push_str(
            "; the CPU backend (tract) runs int8 layers slower than float ones — \
             `kestrel compress --int8 --integer-only` makes a model the integer runtime runs whole",
        );
    }
    if r.backend == "micro" {
        let _ = write!(why, "; `kestrel profile {}` times its ops one by one", r.model);
    }
    why
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("…{}", s.chars().rev().take(n - 1).collect::<Vec<_>>().into_iter().rev().collect::<String>())
    }
}

pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().map(|e| e.to_string_lossy()).unwrap_or_default()));
    std::fs::write(&tmp, text).with_context(|| format!("writing `{}`", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing `{}`", path.display()))
}

/// Rounds in which the models take turns, each timing its share of the runs in a fresh
/// process: a shared machine that slows down for a while (a neighbour, a clock change) then
/// slows every model alike, and their ratios hold (timed one after the other, a 1.5× swing
/// between two models' turns showed up as a 1.5× ratio).
pub const ROUNDS: usize = 5;

/// Measures every model (the first is the full one) in [`ROUNDS`] rounds. With `--backend
/// micro` the full model, a float one the integer runtime cannot run, is measured on the CPU
/// backend.
pub fn compare(models: &[PathBuf], workload: &Workload) -> Result<Vec<Row>> {
    check_workload(workload)?;
    let rounds = ROUNDS.min(workload.runs);
    let mut measured: Vec<Measurement> = Vec::new();
    for round in 0..rounds {
        let runs = workload.runs / rounds + usize::from(round < workload.runs % rounds);
        for (i, model) in models.iter().enumerate() {
            let backend = if i == 0 && workload.backend == "micro" { "cpu" } else { &workload.backend };
            if round == 0 {
                eprintln!("[{}/{}] measuring {} ({backend})", i + 1, models.len(), model.display());
                measured.push(measure_in_child(model, workload, backend, runs, false)?);
                continue;
            }
            let later = measure_in_child(model, workload, backend, runs, true)?;
            let m = &mut measured[i];
            m.latencies_ms.extend(later.latencies_ms);
            m.peak_rss_kib = m.peak_rss_kib.max(later.peak_rss_kib);
        }
        if round == 0 && rounds > 1 {
            eprintln!("timing rounds 2–{rounds}: the models take turns");
        }
    }
    Ok(rows(&measured))
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let rows = compare(&args.models, &args.workload)?;
    let machine = Machine::this();
    println!("machine: {}", machine.describe());
    print!("{}", table(&rows));
    if let Some(path) = &args.json {
        write_atomically(
            path,
            &serde_json::to_string_pretty(&serde_json::json!({
                "machine": machine,
                "runs": args.workload.runs,
                "threads": args.workload.threads,
                "workload": args.workload.dataset.clone().or(args.workload.images.as_ref().map(|p| p.display().to_string())),
                "models": rows,
            }))?,
        )?;
    }
    if let Some(path) = &args.html {
        write_atomically(path, &super::bench_html::page(&rows, &args.workload, &machine))?;
    }
    Ok(())
}
