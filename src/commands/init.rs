//! `kestrel init`: a commented `kestrel.toml` beside a model — the guessed preprocessing, raw
//! outputs, and the choices a user edits — so a new model is described once, not on every command.

use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use kestrel_vision::config::{Color, Layout, Resize};
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
    let mut t = String::new();
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
    writeln!(t, "# How kestrel feeds `{model}` and reads its outputs (written by `kestrel init`).")?;
    writeln!(t, "# Guessed from the input's shape: {}.", g.notes.join("; "))?;
    writeln!(t, "# Check every value against how the model was trained; each command reads this file.")?;
    writeln!(t, "name = \"\"")?;
    writeln!(t)?;
    writeln!(t, "[preprocess]")?;
    writeln!(t, "width = {}", p.width)?;
    writeln!(t, "height = {}", p.height)?;
    writeln!(t, "layout = \"{layout}\"            # nchw (channels first) or nhwc")?;
    writeln!(t, "color = \"{color}\"              # rgb, bgr (OpenCV-trained models) or gray")?;
    writeln!(t, "resize = \"{resize}\"          # stretch, letterbox (keep aspect, pad) or crop (centre crop)")?;
    writeln!(t, "range = [{:?}, {:?}]          # pixel 0..255 maps onto this range", p.range.0, p.range.1)?;
    writeln!(t, "# mean = [0.485, 0.456, 0.406]  # per channel, subtracted after range (ImageNet style)")?;
    writeln!(t, "# std = [0.229, 0.224, 0.225]   # per channel, divides after mean")?;
    writeln!(t, "# pad_value = 114               # letterbox border, pixel value 0..255")?;
    writeln!(t, "# invert = false                # gray only: light-on-dark training images")?;
    writeln!(t)?;
    writeln!(t, "# The model's outputs:")?;
    for o in outputs {
        let dims: Vec<String> =
            o.shape.iter().zip(&o.dim_names).map(|(d, n)| d.map_or_else(|| n.clone(), |d| d.to_string())).collect();
        writeln!(t, "#   {} {} [{}]", o.name, o.dtype, dims.join(", "))?;
    }
    writeln!(t, "[decoder]")?;
    writeln!(t, "kind = \"raw\"                   # print every output; `kestrel run --save-outputs DIR` writes .npy")?;
    writeln!(t, "top = 5")?;
    writeln!(t, "# Other decoders (replace the two lines above):")?;
    writeln!(t, "# kind = \"classifier\"")?;
    writeln!(t, "# labels = [\"cat\", \"dog\"]     # one per class, in output order")?;
    writeln!(t, "# top_k = 5")?;
    writeln!(t, "# softmax = true               # when the output is logits")?;
    writeln!(t, "#")?;
    writeln!(t, "# kind = \"blazeface\"           # MediaPipe BlazeFace short-range (128x128, 896 anchors)")?;
    writeln!(t, "# score_threshold = 0.5")?;
    writeln!(t, "# iou_threshold = 0.3")?;
    Ok(t)
}
