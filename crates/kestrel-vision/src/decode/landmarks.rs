//! Regressed landmarks (MediaPipe hand, face and pose landmark models): one output of
//! `num_landmarks × values_per_landmark` coordinates (x, y first; z and visibility ignored), in
//! input pixels or normalized, and optionally a presence score. Reported as one detection: the
//! landmarks as keypoints, their bounding box, the presence as its score.

use serde::{Deserialize, Serialize};

use super::Detection;
use crate::preprocess::FrameMap;
use crate::VisionError;

/// The `landmarks` decoder's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandmarksConfig {
    pub num_landmarks: usize,
    #[serde(default = "default_values")]
    pub values_per_landmark: usize,
    /// Coordinates are fractions of the input (else input pixels).
    #[serde(default)]
    pub normalized: bool,
    /// No detection when the presence score is at or under this.
    #[serde(default = "default_presence")]
    pub presence_threshold: f32,
    /// The presence output is a logit.
    #[serde(default)]
    pub presence_sigmoid: bool,
    /// Output names (default: the first output of the right size; the first single value).
    #[serde(default)]
    pub landmarks_output: Option<String>,
    #[serde(default)]
    pub presence_output: Option<String>,
}

fn default_values() -> usize {
    3
}
fn default_presence() -> f32 {
    0.5
}

impl LandmarksConfig {
    /// `num_landmarks` of (x, y, z) in input pixels, MediaPipe's presence threshold 0.5.
    pub fn new(num_landmarks: usize) -> LandmarksConfig {
        LandmarksConfig {
            num_landmarks,
            values_per_landmark: default_values(),
            normalized: false,
            presence_threshold: default_presence(),
            presence_sigmoid: false,
            landmarks_output: None,
            presence_output: None,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if !(1..=100_000).contains(&self.num_landmarks)
            || !(2..=16).contains(&self.values_per_landmark)
            || !self.presence_threshold.is_finite()
        {
            return Err(format!(
                "num_landmarks {} (1..=100000), values_per_landmark {} (2..=16), presence_threshold finite",
                self.num_landmarks, self.values_per_landmark
            ));
        }
        Ok(())
    }
}

/// Decodes `landmarks` (and `presence`, one value) into `out`: one detection, or none when the
/// presence is too low.
pub fn decode(
    landmarks: &[f32],
    presence: Option<f32>,
    frame: &FrameMap,
    p: &LandmarksConfig,
    out: &mut Vec<Detection>,
) -> Result<(), VisionError> {
    if p.values_per_landmark < 2 || landmarks.len() != p.num_landmarks * p.values_per_landmark {
        return Err(VisionError::Decode(format!(
            "landmarks decoder: {} values; {} landmarks of {} values need {}",
            landmarks.len(),
            p.num_landmarks,
            p.values_per_landmark,
            p.num_landmarks * p.values_per_landmark
        )));
    }
    let score = presence.map_or(1.0, |s| if p.presence_sigmoid { 1.0 / (1.0 + (-s).exp()) } else { s });
    out.truncate(1);
    if score.partial_cmp(&p.presence_threshold) != Some(std::cmp::Ordering::Greater) {
        out.clear();
        return Ok(());
    }
    if out.is_empty() {
        out.push(Detection::empty());
    }
    let d = &mut out[0];
    let (sx, sy) = if p.normalized { (1.0, 1.0) } else { (frame.input_width, frame.input_height) };
    d.keypoints.clear();
    d.keypoints.extend(landmarks.chunks_exact(p.values_per_landmark).map(|l| frame.to_source(l[0] / sx, l[1] / sy)));
    let finite = d.keypoints.iter().all(|k| k.0.is_finite() && k.1.is_finite());
    if !finite || d.keypoints.is_empty() {
        out.clear();
        return Ok(());
    }
    let (mut x0, mut y0, mut x1, mut y1) = (f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &(x, y) in &d.keypoints {
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    (d.x_min, d.y_min, d.x_max, d.y_max, d.score, d.class) = (x0, y0, x1, y1, score, None);
    d.label.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> LandmarksConfig {
        LandmarksConfig::new(2)
    }

    fn frame() -> FrameMap {
        FrameMap::scaled((100.0, 50.0), (2.0, 4.0))
    }

    #[test]
    fn landmarks_become_keypoints_and_their_box() {
        let mut out = Vec::new();
        decode(&[10.0, 5.0, 0.3, 40.0, 25.0, -1.0], Some(0.9), &frame(), &p(), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].keypoints, vec![(20.0, 20.0), (80.0, 100.0)]);
        assert_eq!(
            (out[0].x_min, out[0].y_min, out[0].x_max, out[0].y_max, out[0].score),
            (20.0, 20.0, 80.0, 100.0, 0.9)
        );
        let normalized = LandmarksConfig { normalized: true, presence_sigmoid: true, ..p() };
        decode(&[0.1, 0.1, 0.0, 0.5, 0.5, 0.0], Some(0.0), &frame(), &normalized, &mut out).unwrap();
        assert!(out.is_empty(), "sigmoid(0) = 0.5 is not above 0.5");
    }

    #[test]
    fn wrong_sizes_are_an_error_and_nan_gives_nothing() {
        let mut out = Vec::new();
        assert!(decode(&[0.0; 5], None, &frame(), &p(), &mut out).is_err());
        decode(&[f32::NAN; 6], None, &frame(), &p(), &mut out).unwrap();
        assert!(out.is_empty());
    }
}
