//! `kestrel init`: a commented `kestrel.toml` beside a model — the guessed preprocessing, raw
//! outputs, and the choices a user edits — so a new model is described once, not on every command.

use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use kestrel_vision::config::{Color, Decoder, Layout, Resize};
use kestrel_vision::ModelConfig;

use crate::cli::InitArgs;
use crate::models::{guess_config, load_model};

pub fn init(args: &InitArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let path = ModelConfig::path_for(&args.model);
    if path.exists() && !args.force {
        bail!("`{}` exists: pass --force to replace it", path.display());
    }
    let shape = (!args.input_shape.is_empty()).then_some(args.input_shape.as_slice());
    let g = guess_config(&args.model, &model, shape)?;
    let summary = kestrel_onnx::summarize(&model.proto);
    let text = render(&args.model.display().to_string(), &g, &summary.outputs)?;
    // What is written must load: parse it back before replacing anything.
    ModelConfig::from_toml(&text, &path).context("the generated config does not load (a bug)")?;
    std::fs::write(&path, &text).with_context(|| format!("writing `{}`", path.display()))?;
    println!("wrote {} ({})", path.display(), g.notes.join("; "));
    Ok(())
}

fn render(model: &str, g: &kestrel_vision::guess::Guess, outputs: &[kestrel_onnx::IoInfo]) -> Result<String> {
    let p = &g.config.preprocess;
    let list = |v: [f32; 3]| format!("[{:?}, {:?}, {:?}]", v[0], v[1], v[2]);
    let layout = if p.layout == Layout::Nchw { "nchw" } else { "nhwc" };
    let color = match p.color {
        Color::Rgb => "rgb",
        Color::Bgr => "bgr",
        Color::Gray => "gray",
    };
    let resize = match p.resize {
        Resize::Stretch => "stretch",
        Resize::Letterbox => "letterbox",
        Resize::Crop => "crop",
    };
    let mut t = String::new();
    writeln!(t, "# How kestrel feeds `{model}` and reads its outputs (written by `kestrel init`).")?;
    writeln!(t, "# Guessed: {}.", g.notes.join("; "))?;
    writeln!(t, "# Check every value against how the model was trained; every command reads this file.")?;
    writeln!(t, "name = {:?}", g.config.name)?;
    writeln!(t)?;
    writeln!(t, "[preprocess]")?;
    for (line, comment) in [
        (format!("width = {}", p.width), "model input size"),
        (format!("height = {}", p.height), ""),
        (format!("layout = \"{layout}\""), "nchw (channels first) or nhwc"),
        (format!("color = \"{color}\""), "rgb, bgr (OpenCV-trained models) or gray"),
        (format!("resize = \"{resize}\""), "stretch, letterbox (keep aspect, pad) or crop (centre crop)"),
        (format!("range = [{:?}, {:?}]", p.range.0, p.range.1), "pixel values 0..255 map onto this range"),
        (format!("mean = {}", list(p.mean)), "per channel, subtracted after range (ImageNet: [0.485, 0.456, 0.406])"),
        (format!("std = {}", list(p.std)), "per channel, divides after mean (ImageNet: [0.229, 0.224, 0.225])"),
        (format!("pad_value = {}", p.pad_value), "letterbox border, pixel value 0..255 (Ultralytics: 114)"),
    ] {
        let comment = if comment.is_empty() { String::new() } else { format!("# {comment}") };
        writeln!(t, "{}", format!("{line:<32}{comment}").trim_end())?;
    }
    writeln!(t)?;
    writeln!(t, "# The model's outputs:")?;
    for o in outputs {
        let dims: Vec<String> =
            // A symbolic dim may be a whole formula (Ultralytics exports): `?` says enough.
            o.shape.iter().zip(&o.dim_names).map(|(d, n)| d.map_or_else(|| if n.len() > 16 { "?".into() } else { n.clone() }, |d| d.to_string())).collect();
        writeln!(t, "#   {} {} [{}]", o.name, o.dtype, dims.join(", "))?;
    }
    writeln!(t, "[decoder]")?;
    if let Decoder::Raw { top } = g.config.decoder {
        writeln!(
            t,
            "kind = \"raw\"                    # every output summarized; `kestrel run --save-outputs DIR` writes .npy"
        )?;
        writeln!(t, "top = {top}")?;
    } else {
        #[derive(serde::Serialize)]
        struct Only<'a> {
            decoder: &'a Decoder,
        }
        let text = toml::to_string(&Only { decoder: &g.config.decoder })?;
        t.push_str(text.trim_start_matches("[decoder]\n"));
    }
    writeln!(t, "# Decoders (kind = …): raw; classifier (labels, top_k, softmax); blazeface (score_threshold,")?;
    writeln!(t, "# iou_threshold); yolo (labels, score_threshold, iou_threshold, max_detections, class_agnostic,")?;
    writeln!(t, "# layout = auto|v8|v5|end2end, keypoints, keypoint_values, mask_coefficients); gfl for PicoDet/")?;
    writeln!(t, "# NanoDet heads (labels, strides = [8, 16, 32, 64], reg_max = 7, center_offset = 0.5, sigmoid,")?;
    writeln!(t, "# score_threshold, iou_threshold, pre_nms_top_k, max_detections, class_agnostic).")?;
    Ok(t)
}
