//! Model outputs → results: classes, boxes.

pub mod blazeface;
pub mod classify;
pub mod gfl;
pub mod landmarks;
pub mod nms;
pub mod raw;
pub mod segmentation;
pub mod ssd_anchors;
pub mod yolo;

use serde::{Deserialize, Serialize};

use crate::preprocess::FrameMap;

/// Scores and IoUs are fractions.
pub(crate) fn check_thresholds(score: f32, iou: f32) -> Result<(), String> {
    if !(0.0..=1.0).contains(&score) || !(0.0..=1.0).contains(&iou) {
        return Err(format!("score_threshold {score} and iou_threshold {iou} must be within [0, 1]"));
    }
    Ok(())
}

/// An axis-aligned box in source-image pixels with a score and optional keypoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
    pub score: f32,
    #[serde(default)]
    pub keypoints: Vec<(f32, f32)>,
    /// Index of the class, for detectors of several classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<usize>,
    /// The class's name, when the config has labels.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// The region's outline (segmentation: its convex hull, grown as the box is), clockwise in
    /// image coordinates; empty for box detectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub polygon: Vec<(f32, f32)>,
}

impl Detection {
    /// An empty box (a slot to fill).
    pub fn empty() -> Detection {
        Detection {
            x_min: 0.0,
            y_min: 0.0,
            x_max: 0.0,
            y_max: 0.0,
            score: 0.0,
            keypoints: Vec::new(),
            class: None,
            label: String::new(),
            polygon: Vec::new(),
        }
    }

    pub fn area(&self) -> f32 {
        (self.x_max - self.x_min).max(0.0) * (self.y_max - self.y_min).max(0.0)
    }

    /// Maps the box, keypoints and polygon from normalized model coordinates to source pixels.
    pub fn to_source(&mut self, frame: &FrameMap) {
        (self.x_min, self.y_min) = frame.to_source(self.x_min, self.y_min);
        (self.x_max, self.y_max) = frame.to_source(self.x_max, self.y_max);
        for k in self.keypoints.iter_mut().chain(&mut self.polygon) {
            *k = frame.to_source(k.0, k.1);
        }
    }

    /// Clamps the box's corners into `[0, width] x [0, height]`.
    pub fn clip(&mut self, width: f32, height: f32) {
        (self.x_min, self.x_max) = (self.x_min.clamp(0.0, width), self.x_max.clamp(0.0, width));
        (self.y_min, self.y_max) = (self.y_min.clamp(0.0, height), self.y_max.clamp(0.0, height));
    }

    /// Intersection over union with another box.
    pub fn iou(&self, other: &Detection) -> f32 {
        let w = (self.x_max.min(other.x_max) - self.x_min.max(other.x_min)).max(0.0);
        let h = (self.y_max.min(other.y_max) - self.y_min.max(other.y_min)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
}
