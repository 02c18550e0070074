//! How a model wants its pixels and how its outputs are read: `kestrel.toml` beside the model.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::VisionError;

/// Preprocessing and decoding for one model.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Human-readable task name.
    #[serde(default)]
    pub name: String,
    pub preprocess: Preprocess,
    pub decoder: Decoder,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Scale each axis independently to the input size.
    Stretch,
    /// Keep the aspect ratio, center, pad with black.
    Letterbox,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Rgb,
    Gray,
}

/// Pixels (0..=255) become `value / 255 * (range.1 - range.0) + range.0`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub color: Color,
    pub resize: Resize,
    pub range: (f32, f32),
    /// Invert gray values (Fashion-MNIST is light-on-dark; photos are dark-on-light).
    #[serde(default)]
    pub invert: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
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
        let cfg: ModelConfig = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
        let p = &cfg.preprocess;
        if p.width == 0 || p.height == 0 || p.width > 8192 || p.height > 8192 {
            return Err(err(format!("input size {}x{} must be within 1..=8192", p.width, p.height)));
        }
        if let Decoder::Classifier { labels, top_k, .. } = &cfg.decoder {
            if labels.is_empty() || *top_k == 0 {
                return Err(err("a classifier needs labels and top_k >= 1".into()));
            }
        }
        Ok(cfg)
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
