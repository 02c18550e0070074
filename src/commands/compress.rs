//! `kestrel compress`: int8 quantization calibrated on real data, ONNX in, ONNX out.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use kestrel_compress::calibrate::RangeMethod;
use kestrel_compress::passes::quantize_int8::{quantize_int8, QuantizeConfig};
use kestrel_engine::Tensor;
use kestrel_vision::{image_io, preprocess, ModelConfig};
use serde_json::json;

use super::eval::{batch_tensor, load_calibration};
use crate::cli::CompressArgs;
use crate::models::{load_config, load_model, CONFIG_METADATA_KEY};

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
    let mut images: Vec<_> = std::fs::read_dir(path)
        .with_context(|| format!("reading --calib folder `{src}`"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| matches!(e.to_string_lossy().to_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    images.sort();
    images.truncate(count);
    if images.is_empty() {
        bail!("--calib folder `{src}` holds no PNG or JPEG images");
    }
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
    if !args.int8 {
        bail!("nothing to do: choose a compression (--int8)");
    }
    let method = match args.calibration.as_str() {
        "minmax" => RangeMethod::MinMax,
        "percentile" => RangeMethod::Percentile(99.99),
        other => bail!("unknown --calibration `{other}` (minmax or percentile)"),
    };
    let model = load_model(&args.model)?;
    let config = load_config(&args.model, &model, args.config.as_deref())?;
    let samples = calibration_samples(&args.calib, &config, args.calib_count)?;
    let bar = ProgressBar::new_spinner().with_message("calibrating and measuring each layer's sensitivity");
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let start = Instant::now();
    let quant_config = QuantizeConfig {
        method,
        min_layer_sqnr_db: args.min_layer_sqnr,
        // Detector heads carry rare, decisive values (a face's score) that calibration on
        // mostly-background images does not cover; classifier heads are fine in int8.
        keep_output_heads_float: matches!(config.decoder, kestrel_vision::config::Decoder::Blazeface { .. }),
        ..Default::default()
    };
    let (mut quantized, report) = quantize_int8(&model, &samples, &quant_config).context("quantizing")?;
    // The output carries its preprocessing config, so `kestrel run` works on it anywhere.
    quantized.proto.metadata_props.retain(|e| e.key != CONFIG_METADATA_KEY);
    quantized.proto.metadata_props.push(kestrel_onnx::pb::StringStringEntryProto {
        key: CONFIG_METADATA_KEY.into(),
        value: config_text(&args.model, &model, args.config.as_deref())?,
    });
    bar.finish_and_clear();
    kestrel_onnx::validate(&quantized, &kestrel_onnx::Limits::default())
        .context("the quantized model failed validation (a bug)")?;
    kestrel_onnx::save(&quantized.proto, &args.out)?;
    let summary = json!({
        "model": args.model.display().to_string(),
        "out": args.out.display().to_string(),
        "bytes_in": std::fs::metadata(&args.model)?.len(),
        "bytes_out": std::fs::metadata(&args.out)?.len(),
        "calibration_samples": samples.iter().map(|t| t.shape[0]).sum::<usize>(),
        "seconds": start.elapsed().as_secs_f64(),
        "passes": [{"name": "quantize-int8", "report": report}],
    });
    if let Some(path) = &args.report {
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing --report `{}`", path.display()))?;
        f.write_all(serde_json::to_string_pretty(&summary)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
    }
    if args.json {
        println!("{summary}");
        return Ok(());
    }
    let quantized_layers = report.layers.iter().filter(|l| l.quantized).count();
    println!(
        "{} -> {} ({} -> {} bytes, {:.2}x smaller) in {:.1} s",
        args.model.display(),
        args.out.display(),
        summary["bytes_in"],
        summary["bytes_out"],
        summary["bytes_in"].as_f64().unwrap_or(0.0) / summary["bytes_out"].as_f64().unwrap_or(1.0),
        start.elapsed().as_secs_f64()
    );
    println!(
        "int8 layers {quantized_layers} of {}; output SQNR {:.1} dB vs the float model",
        report.layers.len(),
        report.output_sqnr_db
    );
    for l in &report.layers {
        let verdict = if l.quantized {
            "int8".to_string()
        } else {
            format!("float ({})", l.kept_float_because.clone().unwrap_or_default())
        };
        println!("  {:<40} {:<7} alone {:>6.1} dB  {verdict}", l.node, l.op, l.isolated_sqnr_db);
    }
    if !report.float_ops.is_empty() {
        let ops: Vec<String> = report.float_ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("ops left in float: {}", ops.join(", "));
    }
    Ok(())
}

/// The TOML text of the config `load_config` would use.
fn config_text(path: &Path, model: &kestrel_onnx::OnnxModel, explicit: Option<&Path>) -> Result<String> {
    if let Some(entry) = model.proto.metadata_props.iter().find(|e| e.key == CONFIG_METADATA_KEY) {
        if explicit.is_none() {
            return Ok(entry.value.clone());
        }
    }
    let file = explicit.map(Path::to_path_buf).unwrap_or_else(|| ModelConfig::path_for(path));
    std::fs::read_to_string(&file).with_context(|| format!("reading config `{}`", file.display()))
}
