//! How a model wants its pixels and how its outputs are read: `kestrel.toml` beside the model.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::decode::check_thresholds;
use crate::decode::gfl::GflConfig;
use crate::decode::landmarks::LandmarksConfig;
use crate::decode::segmentation::SegmentationConfig;
use crate::decode::ssd_anchors::SsdOptions;
use crate::decode::yolo::YoloConfig;
use crate::VisionError;

/// Preprocessing and decoding for one model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Human-readable task name.
    #[serde(default)]
    pub name: String,
    pub preprocess: Preprocess,
    pub decoder: Decoder,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Scale each axis independently to the input size.
    Stretch,
    /// Keep the aspect ratio, center, pad with `pad_value`.
    Letterbox,
    /// Keep the aspect ratio, cover the input and cut the centre out (classifiers' centre crop).
    Crop,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Rgb,
    /// Three channels in blue, green, red order (OpenCV-trained models).
    Bgr,
    Gray,
}

impl Color {
    pub fn channels(self) -> usize {
        match self {
            Color::Rgb | Color::Bgr => 3,
            Color::Gray => 1,
        }
    }
}

/// Pixels (0..=255) of channel `c` become
/// `(value / 255 * (range.1 - range.0) + range.0 - mean[c]) / std[c]`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub color: Color,
    pub resize: Resize,
    pub range: (f32, f32),
    /// Per-channel mean subtracted after `range` (one value for every channel, or one each).
    #[serde(default = "zeros", deserialize_with = "per_channel")]
    pub mean: [f32; 3],
    /// Per-channel divisor applied after `mean` (ImageNet style: mean/std in `range` units).
    #[serde(default = "ones", deserialize_with = "per_channel")]
    pub std: [f32; 3],
    /// Pixel value (0..=255, every channel) of the letterbox border.
    #[serde(default)]
    pub pad_value: u8,
    /// Invert gray values (Fashion-MNIST is light-on-dark; photos are dark-on-light).
    #[serde(default)]
    pub invert: bool,
}

impl Preprocess {
    /// The plain preprocessing of a `width`×`height` input: RGB values in [0, 1], stretched.
    pub fn plain(width: u32, height: u32, layout: Layout, color: Color) -> Preprocess {
        Preprocess {
            width,
            height,
            layout,
            color,
            resize: Resize::Stretch,
            range: (0.0, 1.0),
            mean: zeros(),
            std: ones(),
            pad_value: 0,
            invert: false,
        }
    }

    /// The model-input value of pixel value `v` in channel `c` (of the model's channel order).
    pub fn value(&self, v: u8, c: usize) -> f32 {
        let v = if self.invert { 255 - v } else { v };
        let (lo, hi) = self.range;
        (f32::from(v) / 255.0 * (hi - lo) + lo - self.mean[c]) / self.std[c]
    }

    /// True when mean and std change nothing (what the CUDA kernel can write).
    pub fn has_mean_std(&self) -> bool {
        self.mean != zeros() || self.std != ones()
    }

    /// The input tensor's shape (batch of one).
    pub fn shape(&self) -> Vec<usize> {
        let (c, h, w) = (self.color.channels(), self.height as usize, self.width as usize);
        match self.layout {
            Layout::Nchw => vec![1, c, h, w],
            Layout::Nhwc => vec![1, h, w, c],
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return Err(format!("input size {}x{} must be within 1..=8192", self.width, self.height));
        }
        let (lo, hi) = self.range;
        if !(lo.is_finite() && hi.is_finite()) || lo == hi {
            return Err(format!("range [{lo}, {hi}] must be two different finite numbers"));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(format!("mean {:?} must be finite", self.mean));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err(format!("std {:?} must be finite and non-zero", self.std));
        }
        if self.color == Color::Gray && (self.mean[1..] != self.mean[..2] || self.std[1..] != self.std[..2]) {
            return Err("a gray input has one channel: give mean and std one value each".into());
        }
        Ok(())
    }
}

fn zeros() -> [f32; 3] {
    [0.0; 3]
}
fn ones() -> [f32; 3] {
    [1.0; 3]
}

/// One number for every channel, or a list of one or three.
fn per_channel<'de, D: Deserializer<'de>>(d: D) -> Result<[f32; 3], D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(f32),
        Many(Vec<f32>),
    }
    match OneOrMany::deserialize(d)? {
        OneOrMany::One(v) => Ok([v; 3]),
        OneOrMany::Many(v) if v.len() == 1 => Ok([v[0]; 3]),
        OneOrMany::Many(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
        OneOrMany::Many(v) => {
            Err(serde::de::Error::custom(format!("expected one value or three (one per channel), got {}", v.len())))
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Decoder {
    /// One output of class scores; report the `top_k` best.
    Classifier {
        labels: Vec<String>,
        #[serde(default = "default_top_k")]
        top_k: usize,
        /// Apply softmax first (when the model outputs logits).
        #[serde(default)]
        softmax: bool,
    },
    /// MediaPipe BlazeFace: regressors [1, N, 16] + classificators [1, N, 1] over SSD anchors.
    Blazeface {
        #[serde(default = "default_score")]
        score_threshold: f32,
        #[serde(default = "default_iou")]
        iou_threshold: f32,
    },
    /// MediaPipe-style SSD detectors, with MediaPipe's option names.
    #[serde(rename = "ssd_anchors")]
    SsdAnchors(SsdOptions),
    /// Ultralytics YOLO exports (v5, v8/v11, end-to-end): one output of boxes and class scores.
    Yolo(YoloConfig),
    /// GFL heads (PicoDet, NanoDet): per-level class scores and distance distributions.
    Gfl(GflConfig),
    /// A probability map (DB text detectors) or class map: regions to boxes.
    Segmentation(SegmentationConfig),
    /// Regressed landmarks (MediaPipe hand/face/pose landmark models) and a presence score.
    Landmarks(LandmarksConfig),
    /// No decoding: every output summarized (shape, min/max/mean, the largest values).
    Raw {
        /// How many of each output's largest values to report.
        #[serde(default = "default_top_k")]
        top: usize,
    },
}

impl Decoder {
    /// The class names, index by index (empty when the model names none).
    pub fn labels(&self) -> &[String] {
        match self {
            Decoder::Classifier { labels, .. } => labels,
            Decoder::SsdAnchors(o) => &o.labels,
            Decoder::Yolo(c) => &c.labels,
            Decoder::Gfl(c) => &c.labels,
            Decoder::Segmentation(c) => &c.labels,
            Decoder::Blazeface { .. } | Decoder::Landmarks(_) | Decoder::Raw { .. } => &[],
        }
    }

    /// The score below which results are dropped, where the decoder has one.
    pub fn score_threshold(&self) -> Option<f32> {
        match self {
            Decoder::Blazeface { score_threshold, .. } => Some(*score_threshold),
            Decoder::SsdAnchors(o) => Some(o.min_score_thresh),
            Decoder::Yolo(c) => Some(c.score_threshold),
            Decoder::Gfl(c) => Some(c.score_threshold),
            Decoder::Segmentation(c) => Some(c.threshold),
            Decoder::Classifier { .. } | Decoder::Landmarks(_) | Decoder::Raw { .. } => None,
        }
    }
}

fn default_top_k() -> usize {
    5
}
fn default_score() -> f32 {
    0.5
}
fn default_iou() -> f32 {
    0.3
}

impl ModelConfig {
    pub fn from_toml(text: &str, path: &Path) -> Result<ModelConfig, VisionError> {
        let err = |message: String| VisionError::Config { path: path.to_path_buf(), message };
        let cfg: ModelConfig = toml::from_str(text).map_err(|e| {
            // One line naming where: `line 7 (pad_value = 300): invalid value …`.
            let at = e.span().map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count();
                format!("line {} ({}): ", line + 1, text.lines().nth(line).unwrap_or("").trim())
            });
            err(format!("{}{}", at.unwrap_or_default(), e.message()))
        })?;
        cfg.preprocess.check().map_err(err)?;
        if let Decoder::Classifier { labels, top_k, .. } = &cfg.decoder {
            if labels.is_empty() || *top_k == 0 {
                return Err(err("a classifier needs labels and top_k >= 1".into()));
            }
        }
        let checked = match &cfg.decoder {
            Decoder::SsdAnchors(o) => o.check().map_err(|e| format!("ssd_anchors decoder: {e}")),
            Decoder::Yolo(c) => c.check().map_err(|e| format!("yolo decoder: {e}")),
            Decoder::Gfl(c) => c.check().map_err(|e| format!("gfl decoder: {e}")),
            Decoder::Segmentation(c) => c.check().map_err(|e| format!("segmentation decoder: {e}")),
            Decoder::Landmarks(c) => c.check().map_err(|e| format!("landmarks decoder: {e}")),
            Decoder::Blazeface { score_threshold, iou_threshold } => check_thresholds(*score_threshold, *iou_threshold),
            _ => Ok(()),
        };
        checked.map_err(err)?;
        if let Decoder::Raw { top } = &cfg.decoder {
            if *top > 1000 {
                return Err(err(format!("raw decoder: top = {top} (at most 1000)")));
            }
        }
        Ok(cfg)
    }

    /// The config as TOML (what a compressed model carries in its metadata).
    pub fn to_toml(&self) -> Result<String, VisionError> {
        toml::to_string(self)
            .map_err(|e| VisionError::Write { path: PathBuf::from("kestrel.toml"), message: e.to_string() })
    }

    pub fn load(path: &Path) -> Result<ModelConfig, VisionError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| VisionError::Io { path: path.to_path_buf(), source })?;
        ModelConfig::from_toml(&text, path)
    }

    /// Where the config of `model` lives: `kestrel.toml` in the model's folder.
    pub fn path_for(model: &Path) -> PathBuf {
        model.parent().unwrap_or(Path::new(".")).join("kestrel.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "[preprocess]\nwidth = 8\nheight = 8\nlayout = \"nchw\"\nresize = \"crop\"\nrange = [0.0, 1.0]\n";

    fn parse(extra: &str, color: &str) -> Result<ModelConfig, VisionError> {
        let text = format!("{HEAD}color = \"{color}\"\n{extra}\n[decoder]\nkind = \"raw\"\n");
        ModelConfig::from_toml(&text, Path::new("kestrel.toml"))
    }

    #[test]
    fn mean_and_std_take_one_value_or_one_per_channel() {
        let c = parse("mean = [0.485, 0.456, 0.406]\nstd = 0.5", "bgr").unwrap();
        assert_eq!((c.preprocess.mean, c.preprocess.std), ([0.485, 0.456, 0.406], [0.5; 3]));
        assert_eq!(c.preprocess.color, Color::Bgr);
        assert_eq!(c.decoder, Decoder::Raw { top: 5 });
        // Channel 0 of a BGR input is blue: (255/255 - 0.485) / 0.5.
        assert!((c.preprocess.value(255, 0) - 1.03).abs() < 1e-6);
        assert_eq!(parse("", "rgb").unwrap().preprocess.value(51, 2), 0.2);
    }

    #[test]
    fn bad_normalization_is_refused_in_words() {
        for (extra, color, what) in [
            ("mean = [1.0, 2.0]", "rgb", "one value or three"),
            ("std = [1.0, 0.0, 1.0]", "rgb", "non-zero"),
            ("mean = [0.1, 0.2, 0.3]", "gray", "one channel"),
            ("pad_value = 300", "rgb", "pad_value"),
        ] {
            let e = parse(extra, color).unwrap_err().to_string();
            assert!(e.contains(what), "{extra}: {e}");
        }
    }

    #[test]
    fn a_config_survives_its_own_toml() {
        let c = parse("mean = 0.5\npad_value = 114", "rgb").unwrap();
        let text = c.to_toml().unwrap();
        assert_eq!(ModelConfig::from_toml(&text, Path::new("x")).unwrap(), c);
    }
}
