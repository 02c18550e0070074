//! `kestrel run`: images through a model, decoded into classes or boxes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use kestrel_engine::{Engine, Tensor, TensorSpec};
use kestrel_vision::config::Decoder;
use kestrel_vision::decode::raw::{self, OutputSummary};
use kestrel_vision::decode::ssd_anchors::{self, SsdOptions};
use kestrel_vision::decode::{classify, gfl, landmarks, segmentation, yolo, Detection};
use kestrel_vision::image::RgbImage;
use kestrel_vision::preprocess::FrameMap;
use kestrel_vision::{draw, image_io, preprocess, ModelConfig};
use serde::Serialize;

use crate::cli::{ConfigArgs, RunArgs};
use crate::models::{engine, load_config, open_model, ModelFile};

/// What one image gave.
#[derive(Debug, Serialize)]
pub struct ImageResult {
    pub image: String,
    pub backend: &'static str,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<classify::Class>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detections: Option<Vec<Detection>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<OutputSummary>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotated: Option<String>,
    /// The .npy files written (`--save-outputs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub saved: Vec<String>,
}

impl ImageResult {
    pub fn describe(&self) -> String {
        if let Some(outputs) = &self.outputs {
            let lines: Vec<String> = outputs.iter().map(|o| format!("\n  {}", o.describe())).collect();
            return format!(
                "{}: {} output(s) ({:.2} ms){}",
                self.image,
                outputs.len(),
                self.latency_ms,
                lines.concat()
            );
        }
        if let Some(classes) = &self.classes {
            let top: Vec<String> = classes.iter().take(3).map(|c| format!("{} {:.3}", c.label, c.score)).collect();
            format!("{}: {} ({:.2} ms)", self.image, top.join(", "), self.latency_ms)
        } else {
            let dets = self.detections.as_deref().unwrap_or_default();
            let boxes: Vec<String> = dets
                .iter()
                .map(|d| {
                    let label = if d.label.is_empty() { String::new() } else { format!("{} ", d.label) };
                    format!(
                        "{label}[{:.0}, {:.0}, {:.0}, {:.0}] score {:.3}",
                        d.x_min, d.y_min, d.x_max, d.y_max, d.score
                    )
                })
                .collect();
            format!("{}: {} detection(s) {} ({:.2} ms)", self.image, dets.len(), boxes.join(" "), self.latency_ms)
        }
    }
}

/// A model with its config, prepared for single images.
pub struct ImageModel {
    pub config: ModelConfig,
    pub engine: Engine,
    /// Writes every output as .npy into this folder (`--save-outputs`).
    pub save_outputs: Option<PathBuf>,
}

impl ImageModel {
    pub fn open(model: &Path, config: &ConfigArgs, args: &crate::cli::EngineArgs) -> Result<ImageModel> {
        let file = open_model(model)?;
        let config = load_config(model, &file, config)?;
        let engine = match (&args.mcu, &file) {
            (Some(port), ModelFile::Kmodel(bytes)) => super::mcu::engine(port, bytes, &config.preprocess)?,
            (Some(_), ModelFile::Onnx(_)) => {
                bail!("--mcu needs the .kmodel the device runs, not `{}`", model.display())
            }
            (None, _) => engine(&file, args, config.preprocess.shape())
                .with_context(|| format!("preparing `{}`", model.display()))?,
        };
        Ok(ImageModel { config, engine, save_outputs: None })
    }

    /// A decoder that knows this model's output names.
    pub fn decoder(&self) -> ResultDecoder {
        ResultDecoder { names: self.engine.outputs().iter().map(|o| o.name.clone()).collect(), ..Default::default() }
    }

    /// Preprocess, infer, decode; optionally write an annotated PNG into `annotate`.
    /// With `repeat > 1`, inference is timed `repeat` times after warm-up and the median kept.
    /// A `.npy` file is the model input itself (float32, the model's shape): no preprocessing,
    /// boxes in input pixels.
    pub fn infer(&mut self, image: &Path, annotate: Option<&Path>, repeat: usize) -> Result<ImageResult> {
        let (mut rgb, tensor, frame) = if image.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
            if annotate.is_some() {
                bail!("`{}` is a tensor, not an image: --annotate needs images", image.display());
            }
            let bytes = std::fs::read(image).with_context(|| format!("reading `{}`", image.display()))?;
            let tensor = Tensor::from_npy(&bytes).with_context(|| format!("`{}`", image.display()))?;
            let p = &self.config.preprocess;
            let frame = FrameMap::scaled((p.width as f32, p.height as f32), (1.0, 1.0));
            (None, tensor, frame)
        } else {
            let rgb = image_io::load_rgb(image)?;
            let input = preprocess::preprocess(&rgb, &self.config.preprocess);
            (Some(rgb), Tensor::f32(input.shape.clone(), input.data)?, input.frame)
        };
        let tensor = [tensor];
        let warm_up = if repeat > 1 { repeat.min(20) } else { 0 };
        let mut times = Vec::with_capacity(repeat);
        let mut outputs = Vec::new();
        for i in 0..warm_up + repeat.max(1) {
            let start = Instant::now();
            outputs = self.engine.run(&tensor).with_context(|| format!("running on `{}`", image.display()))?;
            if i >= warm_up {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        let latency_ms = times[times.len() / 2];
        let mut result = ImageResult {
            image: image.display().to_string(),
            backend: self.engine.backend(),
            latency_ms,
            classes: None,
            detections: None,
            outputs: None,
            annotated: None,
            saved: Vec::new(),
        };
        let mut decoded = Decoded::Detections(Vec::new());
        let mut decoder = self.decoder();
        decoder.decode(&self.config, &outputs, &frame, &mut decoded)?;
        match decoded {
            Decoded::Classes(classes) => result.classes = Some(classes),
            Decoded::Detections(dets) => result.detections = Some(dets),
            Decoded::Raw(summaries) => result.outputs = Some(summaries),
        }
        if let Some(dir) = &self.save_outputs {
            result.saved = save_outputs(dir, image, self.engine.outputs(), &outputs)?;
        }
        if let (Some(dir), Some(rgb)) = (annotate, rgb.as_mut()) {
            if matches!(self.config.decoder, Decoder::Segmentation(_)) {
                decoder.regions.overlay(rgb, &frame);
            }
            draw_results(rgb, result.classes.as_deref(), result.detections.as_deref());
            std::fs::create_dir_all(dir).with_context(|| format!("creating --annotate folder `{}`", dir.display()))?;
            let stem = image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
            let out: PathBuf = dir.join(format!("{stem}.png"));
            image_io::save_png(rgb, &out)?;
            result.annotated = Some(out.display().to_string());
        }
        Ok(result)
    }
}

/// Writes each output as `STEM.NAME.npy` into `dir`; returns the paths.
fn save_outputs(dir: &Path, image: &Path, specs: &[TensorSpec], outputs: &[Tensor]) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating --save-outputs folder `{}`", dir.display()))?;
    let stem = image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let mut saved = Vec::with_capacity(outputs.len());
    for (i, t) in outputs.iter().enumerate() {
        let name = specs.get(i).map_or_else(|| format!("output{i}"), |s| s.name.clone());
        // Output names may hold `/` or `:` (TensorFlow exports): keep file names plain.
        let safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
        let path = dir.join(format!("{stem}.{safe}.npy"));
        std::fs::write(&path, t.to_npy()).with_context(|| format!("writing `{}`", path.display()))?;
        saved.push(path.display().to_string());
    }
    Ok(saved)
}

/// What a model's outputs say, as its config's decoder reads them.
pub enum Decoded {
    Classes(Vec<classify::Class>),
    Detections(Vec<Detection>),
    /// Every output summarized (decoder `raw`).
    Raw(Vec<OutputSummary>),
}

/// The decoders with their scratch, for a stream of frames: after warm-up, decoding into the
/// same [`Decoded`] allocates nothing (the raw decoder aside).
#[derive(Default)]
pub struct ResultDecoder {
    ssd: ssd_anchors::Decoder,
    /// The `blazeface` decoder's SSD options.
    blazeface: Option<SsdOptions>,
    yolo: yolo::Decoder,
    gfl: gfl::Decoder,
    regions: segmentation::Decoder,
    top: classify::TopK,
    /// Output names, for the raw decoder.
    names: Vec<String>,
}

impl ResultDecoder {
    pub fn decode(
        &mut self,
        config: &ModelConfig,
        outputs: &[Tensor],
        frame: &FrameMap,
        into: &mut Decoded,
    ) -> Result<()> {
        match &config.decoder {
            Decoder::Classifier { labels, top_k, softmax } => {
                if !matches!(into, Decoded::Classes(_)) {
                    *into = Decoded::Classes(Vec::new());
                }
                if let Decoded::Classes(classes) = into {
                    self.top.run(f32_output(outputs, 0)?, labels, *top_k, *softmax, classes);
                }
            }
            Decoder::Blazeface { score_threshold, iou_threshold } => {
                // Made once (its anchor options are vectors): no allocation per frame.
                let options = self
                    .blazeface
                    .get_or_insert_with(|| SsdOptions::blazeface_short_range(*score_threshold, *iou_threshold));
                (options.min_score_thresh, options.min_suppression_threshold) = (*score_threshold, *iou_threshold);
                let (boxes, scores) = ssd_outputs(outputs, options)?;
                self.ssd.decode(boxes, scores, frame, options, detections(into))?;
            }
            Decoder::SsdAnchors(options) => {
                let (boxes, scores) = ssd_outputs(outputs, options)?;
                self.ssd.decode(boxes, scores, frame, options, detections(into))?;
            }
            Decoder::Yolo(c) => {
                let shape = &outputs.first().context("the model has no output")?.shape;
                self.yolo.decode(f32_output(outputs, 0)?, shape, frame, c, detections(into))?;
            }
            Decoder::Gfl(c) => {
                let tensors = (0..outputs.len())
                    .map(|i| Ok((f32_output(outputs, i)?, outputs[i].shape.as_slice())))
                    .collect::<Result<Vec<_>>>()?;
                let input = (frame.input_width as usize, frame.input_height as usize);
                let levels = gfl::levels(&tensors, c, input)?;
                self.gfl.decode(&levels, frame, c, detections(into))?;
            }
            Decoder::Segmentation(c) => {
                let shape = &outputs.first().context("the model has no output")?.shape;
                self.regions.decode(f32_output(outputs, 0)?, shape, frame, c, detections(into))?;
            }
            Decoder::Landmarks(c) => {
                let values = c.num_landmarks * c.values_per_landmark;
                let l = self.output(outputs, c.landmarks_output.as_deref(), |t| t.len() == values, None).with_context(
                    || {
                        format!(
                            "landmarks decoder: no output of {values} values ({} x {})",
                            c.num_landmarks, c.values_per_landmark
                        )
                    },
                )?;
                let presence = match self.output(outputs, c.presence_output.as_deref(), |t| t.len() == 1, Some(l)) {
                    Some(i) => Some(*f32_output(outputs, i)?.first().context("empty presence output")?),
                    None if c.presence_output.is_some() => {
                        bail!("landmarks decoder: no output named {:?}", c.presence_output)
                    }
                    None => None,
                };
                landmarks::decode(f32_output(outputs, l)?, presence, frame, c, detections(into))?;
            }
            Decoder::Raw { top } => {
                let summaries = outputs
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let name = self.names.get(i).map_or_else(|| format!("output{i}"), Clone::clone);
                        match t.as_f32() {
                            Some(v) => raw::summarize(&name, t.dtype_name(), &t.shape, v, *top),
                            None => raw::summarize(&name, t.dtype_name(), &t.shape, &t.to_f64_vec(), *top),
                        }
                    })
                    .collect();
                *into = Decoded::Raw(summaries);
            }
        }
        Ok(())
    }
}

impl ResultDecoder {
    /// The output named `name`, else the first (other than `skip`) that `fits`.
    fn output(
        &self,
        outputs: &[Tensor],
        name: Option<&str>,
        fits: impl Fn(&Tensor) -> bool,
        skip: Option<usize>,
    ) -> Option<usize> {
        match name {
            Some(name) => self.names.iter().position(|n| n == name).filter(|&i| i < outputs.len()),
            None => outputs.iter().enumerate().position(|(i, t)| Some(i) != skip && fits(t)),
        }
    }
}

/// The detections `into` holds (made empty ones if it held something else).
fn detections(into: &mut Decoded) -> &mut Vec<Detection> {
    if !matches!(into, Decoded::Detections(_)) {
        *into = Decoded::Detections(Vec::new());
    }
    match into {
        Decoded::Detections(dets) => dets,
        _ => unreachable!("set just above"),
    }
}

/// Annotates an image: labelled boxes, or a bar as long as the top class's score with its label.
pub fn draw_results(rgb: &mut RgbImage, classes: Option<&[classify::Class]>, detections: Option<&[Detection]>) {
    if let Some(classes) = classes {
        if let Some(top) = classes.first() {
            draw::draw_score_bar(rgb, &top.label, top.score);
        }
    }
    if let Some(dets) = detections {
        draw::draw_detections(rgb, dets);
    }
}

fn f32_output(outputs: &[Tensor], ix: usize) -> Result<&[f32]> {
    let t = outputs.get(ix).with_context(|| format!("the model has no output #{ix}"))?;
    t.as_f32().with_context(|| format!("output #{ix} is {}, expected float32", t.dtype_name()))
}

/// An SSD model's box and score outputs, told apart by their last dimension (`num_coords`
/// box values vs `num_classes` scores); in output order when those are equal.
fn ssd_outputs<'t>(outputs: &'t [Tensor], o: &SsdOptions) -> Result<(&'t [f32], &'t [f32])> {
    let find = |last: usize, skip: Option<usize>| {
        outputs.iter().enumerate().position(|(i, t)| Some(i) != skip && t.shape.last() == Some(&last)).with_context(
            || {
                format!(
                "SSD decoder: no output with last dimension {last} (num_coords {}, num_classes {}; got shapes {:?})",
                o.num_coords,
                o.num_classes,
                outputs.iter().map(|t| &t.shape).collect::<Vec<_>>()
            )
            },
        )
    };
    let b = find(o.num_coords, None)?;
    let s = find(o.num_classes, Some(b))?;
    Ok((f32_output(outputs, b)?, f32_output(outputs, s)?))
}

pub fn run(args: &RunArgs) -> Result<()> {
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let mut model = ImageModel::open(&args.model, &args.model_config, &args.engine)?;
    model.save_outputs.clone_from(&args.save_outputs);
    let mut failed = 0;
    for image in &args.images {
        match model.infer(image, args.annotate.as_deref(), args.repeat) {
            Ok(r) if args.json => println!("{}", serde_json::to_string(&r)?),
            Ok(r) => println!("{}", r.describe()),
            Err(e) => {
                failed += 1;
                eprintln!("Error: {}", format!("{e:#}").replace('\n', " "));
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} image(s) failed", args.images.len());
    }
    Ok(())
}
