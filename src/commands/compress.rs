//! `kestrel compress`: int8 quantization calibrated on real data, ONNX in, ONNX out.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use kestrel_compress::calibrate::RangeMethod;
use kestrel_compress::passes::prune_channels::prune_channels;
use kestrel_compress::passes::prune_magnitude::prune_magnitude;
use kestrel_compress::passes::quantize_int8::{quantize_int8, QuantizeConfig};
use kestrel_compress::passes::reconstruct::reconstruct;
use kestrel_engine::Tensor;
use kestrel_vision::config::Decoder;
use kestrel_vision::{image_io, preprocess, ModelConfig};
use serde_json::json;

use super::bench::{image_agreement, image_outcomes};
use super::eval::{batch_tensor, load_calibration};
use crate::cli::CompressArgs;
use crate::models::{config_to_carry, load_config, load_model, CONFIG_METADATA_KEY};

/// Calibration inputs: a named dataset's calibration split, or every image in a folder.
fn calibration_samples(src: &str, config: &ModelConfig, count: usize) -> Result<Vec<Tensor>> {
    if count == 0 {
        bail!("--calib-count must be at least 1");
    }
    let path = Path::new(src);
    if !path.is_dir() {
        let data = load_calibration(src)
            .with_context(|| format!("--calib `{src}` is neither a folder nor a known dataset"))?;
        let n = count.min(data.len());
        if n == 0 {
            bail!("the calibration split of `{src}` is empty");
        }
        // Batches of up to 32 images.
        let sizes: Vec<usize> = (0..n).step_by(32).map(|s| (s + 32).min(n) - s).collect();
        let full = sizes[0];
        return (0..n)
            .step_by(full)
            .filter(|s| s + full <= n)
            .map(|s| batch_tensor(&data, s..s + full, &config.preprocess))
            .collect();
    }
    let mut images = super::bench::images_in(path, "--calib")?;
    images.truncate(count);
    images
        .iter()
        .map(|p| {
            let rgb = image_io::load_rgb(p)?;
            let x = preprocess::preprocess(&rgb, &config.preprocess);
            Ok(Tensor::f32(x.shape, x.data)?)
        })
        .collect()
}

pub fn compress(args: &CompressArgs) -> Result<()> {
    let (summary, lines) = run(args)?;
    if args.json {
        println!("{summary}");
        return Ok(());
    }
    println!(
        "{} -> {} ({} -> {} bytes, {:.2}x smaller; MACs {} -> {}) in {:.1} s",
        args.model.display(),
        args.out.display(),
        summary["bytes_in"],
        summary["bytes_out"],
        summary["bytes_in"].as_f64().unwrap_or(0.0) / summary["bytes_out"].as_f64().unwrap_or(1.0),
        summary["macs_in"],
        summary["macs_out"],
        summary["seconds"].as_f64().unwrap_or(0.0)
    );
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

/// Runs the passes and writes the model (and report); returns the summary and report lines.
pub fn run(args: &CompressArgs) -> Result<(serde_json::Value, Vec<String>)> {
    if !args.int8 && args.prune.is_none() {
        bail!("nothing to do: choose a compression (--int8 and/or --prune RATIO)");
    }
    if let Some(r) = args.prune {
        if !(r > 0.0 && r < 1.0) {
            bail!("--prune {r}: the ratio must be within (0, 1)");
        }
    }
    if args.reconstruct && args.prune.is_none() {
        bail!("--reconstruct refits layers changed by pruning: add --prune RATIO");
    }
    let model = load_model(&args.model)?;
    let config = load_config(&args.model, &model, &args.model_config)?;
    // A model of unknown kind (raw outputs) is treated as a detector.
    let classifier = matches!(config.decoder, Decoder::Classifier { .. });
    let method = match args.calibration.as_str() {
        "minmax" => RangeMethod::MinMax,
        "percentile" => RangeMethod::Percentile(99.99),
        "auto" if classifier => RangeMethod::Percentile(99.99),
        "auto" => RangeMethod::MinMax,
        other => bail!("unknown --calibration `{other}` (auto, minmax or percentile)"),
    };
    let samples = calibration_samples(&args.calib, &config, args.calib_count)?;
    let start = Instant::now();
    let mut current = model.clone();
    let mut passes = Vec::new();
    let mut lines = Vec::new();
    let mut kept = std::collections::HashMap::new();
    let mut float_layers: Vec<String> = Vec::new();
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    if let Some(ratio) = args.prune {
        if args.unstructured {
            bar.set_message("pruning the smallest weights");
            let (m, r) = prune_magnitude(&current, ratio)?;
            let sparsity: Vec<String> =
                r.layers.iter().map(|l| format!("{} {:.0}%", l.node, l.sparsity * 100.0)).collect();
            lines.push(format!("prune-magnitude: sparsity per layer: {}", sparsity.join(", ")));
            passes.push(json!({"name": "prune-magnitude", "report": r}));
            current = m;
        } else {
            bar.set_message("scanning each layer's pruning sensitivity");
            let (m, r) = prune_channels(&current, &samples, ratio).context("pruning channels")?;
            lines.push(format!(
                "prune-channels: parameters {} -> {}, output SQNR {:.1} dB",
                r.parameters_before, r.parameters_after, r.output_sqnr_db
            ));
            for l in &r.layers {
                let who = match l.producers.as_slice() {
                    [one] => one.clone(),
                    many => format!("{} layers sharing channels ({} ...)", many.len(), many[0]),
                };
                lines.push(format!("  {who:<60} channels {} -> {}", l.channels_before, l.channels_after));
            }
            for s in &r.skipped {
                lines.push(format!("  {:<40} skipped: {}", s.node, s.reason));
            }
            kept = r.kept_channels.iter().map(|k| (k.tensor.clone(), k.kept.clone())).collect();
            passes.push(json!({"name": "prune-channels", "report": r}));
            current = m;
        }
    }
    if args.reconstruct {
        bar.set_message("refitting changed layers to the full model");
        let (m, r) = reconstruct(&model, &current, &samples, &kept).context("reconstructing")?;
        lines.push(format!(
            "reconstruct: output SQNR {:.1} dB -> {:.1} dB",
            r.output_sqnr_before_db, r.output_sqnr_after_db
        ));
        for l in &r.layers {
            lines.push(format!(
                "  {:<40} {:<7} layer SQNR {:.1} dB -> {:.1} dB ({} rows)",
                l.node, l.op, l.sqnr_before_db, l.sqnr_after_db, l.rows
            ));
        }
        passes.push(json!({"name": "reconstruct", "report": r}));
        current = m;
    }
    if args.int8 {
        bar.set_message("calibrating and measuring each layer's int8 sensitivity");
        let quant_config = QuantizeConfig {
            method,
            min_layer_sqnr_db: args.min_layer_sqnr,
            // Detector heads carry rare, decisive values (a face's score) that calibration on
            // mostly-background images does not cover; classifier heads are fine in int8.
            keep_output_heads_float: !args.integer_only && !classifier,
            integer_only: args.integer_only,
            ..Default::default()
        };
        let (m, r) = quantize_int8(&current, int8_subset(&samples), &quant_config).context("quantizing")?;
        let int8 = r.layers.iter().filter(|l| l.quantized).count();
        lines.push(format!(
            "quantize-int8: {int8} of {} layers in int8 ({} activation ranges), output SQNR {:.1} dB vs its input model",
            r.layers.len(),
            match method {
                RangeMethod::MinMax => "min-max".to_string(),
                RangeMethod::Percentile(p) => format!("{p}th percentile"),
            },
            r.output_sqnr_db
        ));
        for l in &r.layers {
            let verdict = if l.quantized {
                "int8".to_string()
            } else {
                format!("float ({})", l.kept_float_because.clone().unwrap_or_default())
            };
            let alone = l.isolated_sqnr_db.map_or("alone      -   ".to_string(), |db| format!("alone {db:>6.1} dB"));
            lines.push(format!("  {:<40} {:<7} {alone}  {verdict}", l.node, l.op));
        }
        if !r.float_ops.is_empty() {
            let ops: Vec<String> = r.float_ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
            lines.push(format!("  ops left in float: {}", ops.join(", ")));
        }
        float_layers = r.layers.iter().filter(|l| !l.quantized).map(|l| l.node.clone()).collect();
        passes.push(json!({"name": "quantize-int8", "report": r}));
        current = m;
    }
    bar.finish_and_clear();
    // The output carries its preprocessing config, so `kestrel run` works on it anywhere.
    current.proto.metadata_props.retain(|e| e.key != CONFIG_METADATA_KEY);
    current.proto.metadata_props.push(kestrel_onnx::pb::StringStringEntryProto {
        key: CONFIG_METADATA_KEY.into(),
        value: config_to_carry(&args.model, &model, &config, &args.model_config)?,
    });
    kestrel_onnx::validate(&current, &kestrel_onnx::Limits::default())
        .context("the compressed model failed validation (a bug)")?;
    kestrel_onnx::save(&current.proto, &args.out)?;
    let (bytes_in, bytes_out) = (std::fs::metadata(&args.model)?.len(), std::fs::metadata(&args.out)?.len());
    let shape = [config.preprocess.shape()];
    let macs = |m: &kestrel_onnx::OnnxModel| kestrel_engine::count_macs(m, &shape).ok();
    let mut shape = samples[0].shape.clone();
    shape[0] = 1;
    let (integer_runtime, where_it_runs) = where_it_runs(&current, &shape, &float_layers);
    lines.push(where_it_runs.clone());
    // The model is written by now: a check that cannot run says why and fails nothing.
    let mut agreement = serde_json::Value::Null;
    if Path::new(&args.calib).is_dir() {
        match calibration_agreement(args, integer_runtime, &mut lines) {
            Ok(a) => agreement = a,
            Err(e) => {
                lines.push(format!("agreement with the float model not measured: {e:#}"));
                agreement = json!({ "not_measured": format!("{e:#}") });
            }
        }
    }
    let summary = json!({
        "model": args.model.display().to_string(),
        "out": args.out.display().to_string(),
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "macs_in": macs(&model),
        "macs_out": macs(&current),
        "calibration_samples": samples.iter().map(|t| t.shape[0]).sum::<usize>(),
        "integer_runtime": integer_runtime,
        "where_it_runs": where_it_runs,
        "calibration_agreement": agreement,
        "seconds": start.elapsed().as_secs_f64(),
        "passes": passes,
    });
    if let Some(path) = &args.report {
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing --report `{}`", path.display()))?;
        f.write_all(serde_json::to_string_pretty(&summary)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
    }
    Ok((summary, lines))
}

/// Calibration images the compressed model's boxes are compared on.
const AGREEMENT_IMAGES: usize = 64;

/// How the compressed model's boxes (or top classes) agree with the float model's on the first
/// calibration images, decoded as the config says: the layer SQNRs the guard reads do not show
/// a box lost at the score threshold or one that moved. Adds a line (and a hint under 90%).
fn calibration_agreement(
    args: &CompressArgs,
    integer_runtime: bool,
    lines: &mut Vec<String>,
) -> Result<serde_json::Value> {
    let mut images = super::bench::images_in(Path::new(&args.calib), "--calib")?;
    images.truncate(AGREEMENT_IMAGES);
    // Each where `--backend auto` will run it.
    let outcomes = |model: &Path, config: &crate::cli::ConfigArgs, backend: &str| {
        let engine = crate::cli::EngineArgs { backend: backend.into(), threads: 1, mcu: None };
        image_outcomes(model, config, &engine, &images)
    };
    let full = outcomes(&args.model, &args.model_config, "cpu").context("decoding the float model's boxes")?;
    let carried = crate::cli::ConfigArgs { config: None, input_shape: args.model_config.input_shape.clone() };
    let backend = if integer_runtime { "micro" } else { "cpu" };
    let compressed = outcomes(&args.out, &carried, backend).context("decoding the compressed model's boxes")?;
    let a = image_agreement(&full, &compressed);
    let Some(quality) = a.quality else {
        return Ok(serde_json::Value::Null); // raw outputs, or no box on these images
    };
    let boxes: usize = full.iter().map(|i| i.detections.len()).sum();
    let iou = a.mean_iou.map_or(String::new(), |v| format!(", mean IoU {v:.3}"));
    let mut line = format!(
        "on {} calibration image(s): {:.1}% {}{iou}",
        images.len(),
        quality * 100.0,
        if boxes > 0 {
            format!("of the float model's {boxes} boxes found (same class, IoU >= 0.5)")
        } else {
            a.kind.clone()
        }
    );
    if let Some(s) = &a.sure {
        let iou = s.mean_iou.map_or(String::new(), |v| format!(", mean IoU {v:.3}"));
        line.push_str(&format!("; the {} it scores >= 0.5: {:.1}%{iou}", s.boxes, s.found * 100.0));
    }
    lines.push(line);
    if quality < 0.9 || a.mean_iou.is_some_and(|v| v < 0.9) {
        lines.push(match (args.int8, args.integer_only) {
            (true, true) => "  under 90%: without --integer-only the most sensitive layers stay float".to_string(),
            (true, false) => format!(
                "  under 90%: a higher --min-layer-sqnr (now {} dB; +5 dB at a time) keeps more layers float",
                args.min_layer_sqnr
            ),
            _ if args.reconstruct => "  under 90%: a smaller --prune ratio keeps more of the model".to_string(),
            _ => "  under 90%: a smaller --prune ratio, or --reconstruct, keeps more of the model".to_string(),
        });
    }
    Ok(json!({
        "images": images.len(),
        "kind": a.kind,
        "quality": quality,
        "mean_iou": a.mean_iou,
        "sure_boxes": a.sure,
    }))
}

/// Whether the compressed model runs whole on the integer runtime (what `--backend auto` will
/// choose), and a line for the user saying so, or what keeps it on the float path and what
/// would change that.
fn where_it_runs(model: &kestrel_onnx::OnnxModel, shape: &[usize], float_layers: &[String]) -> (bool, String) {
    if !kestrel_engine::is_quantized(model) {
        return (false, "runs on: the CPU backend, or CUDA where a GPU is usable (a float model; add --int8 for the integer runtime)".into());
    }
    match kestrel_engine::export_kmodel::export_kmodel(model, shape, None) {
        Ok(_) => {
            let float = match float_layers.len() {
                0 => String::new(),
                n => format!(", {n} float layer(s) on its float kernels"),
            };
            let line = format!(
                "runs on: the integer runtime, whole{float} (`--backend auto` chooses it; `kestrel export` makes a .kmodel)"
            );
            (true, line)
        }
        Err(e) => {
            let mut line =
                format!("runs on: the CPU backend, or CUDA where a GPU is usable, not the integer runtime: {e}");
            if !float_layers.is_empty() {
                let shown: Vec<&str> = float_layers.iter().take(4).map(String::as_str).collect();
                let more = if float_layers.len() > 4 { ", …" } else { "" };
                line.push_str(&format!(
                    "; {} layer(s) stayed float ({}{more}): --integer-only quantizes every layer",
                    float_layers.len(),
                    shown.join(", ")
                ));
            }
            (false, line)
        }
    }
}

/// Int8 ranges and sensitivity settle long before reconstruction's least squares do:
/// the first 512 calibration images are enough for them.
fn int8_subset(samples: &[Tensor]) -> &[Tensor] {
    let mut images = 0;
    let n = samples.iter().take_while(|t| {
        images += t.shape[0];
        images <= 512
    });
    &samples[..n.count().max(1)]
}
