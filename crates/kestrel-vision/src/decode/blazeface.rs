//! MediaPipe BlazeFace (short range) decoding: SSD anchors, box regression, sigmoid scores.
//! Follows mediapipe's ssd_anchors_calculator and tflite_tensors_to_detections_calculator.

use super::nms::{next_slot, Nms, Suppress};
use super::Detection;
use crate::preprocess::FrameMap;
use crate::VisionError;

/// Values per anchor in the regressor output: box (cx, cy, w, h) + 6 keypoints (x, y).
pub const VALUES_PER_ANCHOR: usize = 16;
/// MediaPipe clips raw scores so the sigmoid cannot overflow.
const RAW_SCORE_LIMIT: f32 = 80.0;

/// Anchor centers (normalized) of the short-range model: strides [8, 16, 16, 16],
/// two anchors per cell (aspect ratio 1 plus the interpolated scale), offset 0.5.
pub fn anchors(input_width: usize, input_height: usize) -> Vec<(f32, f32)> {
    let strides = [8usize, 16, 16, 16];
    let mut out = Vec::new();
    let mut layer = 0;
    while layer < strides.len() {
        let mut last = layer;
        let mut repeats = 0;
        while last < strides.len() && strides[last] == strides[layer] {
            last += 1;
            repeats += 2;
        }
        let (fh, fw) = (input_height / strides[layer], input_width / strides[layer]);
        for y in 0..fh {
            for x in 0..fw {
                let center = ((x as f32 + 0.5) / fw as f32, (y as f32 + 0.5) / fh as f32);
                out.extend(std::iter::repeat_n(center, repeats));
            }
        }
        layer = last;
    }
    out
}

/// Decodes BlazeFace's outputs into boxes in source pixels (weighted NMS).
pub fn decode(
    regressors: &[f32],
    scores: &[f32],
    frame: &FrameMap,
    score_threshold: f32,
    iou_threshold: f32,
) -> Result<Vec<Detection>, VisionError> {
    let mut out = Vec::new();
    Decoder::default().decode(regressors, scores, frame, (score_threshold, iou_threshold), &mut out)?;
    Ok(out)
}

/// The decoder with its anchors and scratch kept between frames: after warm-up it allocates
/// nothing.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    anchors: Vec<(f32, f32)>,
    anchors_for: (usize, usize),
    candidates: Vec<Detection>,
    nms: Nms,
}

impl Decoder {
    /// Writes the faces into `out` (its detections are reused); `thresholds` are the score and
    /// the NMS IoU thresholds.
    pub fn decode(
        &mut self,
        regressors: &[f32],
        scores: &[f32],
        frame: &FrameMap,
        (score_threshold, iou_threshold): (f32, f32),
        out: &mut Vec<Detection>,
    ) -> Result<(), VisionError> {
        let (w, h) = (frame.input_width, frame.input_height);
        if self.anchors_for != (w as usize, h as usize) || self.anchors.is_empty() {
            self.anchors = anchors(w as usize, h as usize);
            self.anchors_for = (w as usize, h as usize);
        }
        let anchors = &self.anchors;
        if scores.len() != anchors.len() || regressors.len() != anchors.len() * VALUES_PER_ANCHOR {
            return Err(VisionError::Decode(format!(
                "BlazeFace outputs hold {} scores and {} box values; a {}x{} input needs {} and {}",
                scores.len(),
                regressors.len(),
                w,
                h,
                anchors.len(),
                anchors.len() * VALUES_PER_ANCHOR
            )));
        }
        let mut n = 0;
        for (i, &(ax, ay)) in anchors.iter().enumerate() {
            let score = sigmoid(scores[i].clamp(-RAW_SCORE_LIMIT, RAW_SCORE_LIMIT));
            if score.is_nan() || score <= score_threshold {
                continue;
            }
            let r = &regressors[i * VALUES_PER_ANCHOR..(i + 1) * VALUES_PER_ANCHOR];
            let (cx, cy) = (r[0] / w + ax, r[1] / h + ay);
            let (bw, bh) = (r[2] / w, r[3] / h);
            if !(bw > 0.0 && bh > 0.0) {
                continue;
            }
            let d = next_slot(&mut self.candidates, n);
            n += 1;
            (d.x_min, d.y_min, d.x_max, d.y_max, d.score) =
                (cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0, score);
            d.keypoints.clear();
            d.keypoints.extend((2..VALUES_PER_ANCHOR / 2).map(|k| (r[2 * k] / w + ax, r[2 * k + 1] / h + ay)));
        }
        self.nms.run(&self.candidates[..n], Suppress { iou_threshold, weighted: true, agnostic: true }, out);
        for d in out.iter_mut() {
            (d.x_min, d.y_min) = frame.to_source(d.x_min, d.y_min);
            (d.x_max, d.y_max) = frame.to_source(d.x_max, d.y_max);
            for k in &mut d.keypoints {
                *k = frame.to_source(k.0, k.1);
            }
        }
        Ok(())
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_range_has_896_anchors() {
        let a = anchors(128, 128);
        assert_eq!(a.len(), 896);
        assert_eq!(a[0], (0.5 / 16.0, 0.5 / 16.0));
        assert_eq!(a[512], (0.5 / 8.0, 0.5 / 8.0));
    }

    #[test]
    fn one_confident_anchor_becomes_one_box_in_source_pixels() {
        let frame =
            FrameMap { input_width: 128.0, input_height: 128.0, scale_x: 2.0, scale_y: 2.0, pad_x: 0.0, pad_y: 0.0 };
        let mut reg = vec![0.0; 896 * 16];
        let mut scores = vec![-10.0; 896];
        scores[0] = 5.0;
        reg[2] = 16.0; // width 16 model px
        reg[3] = 16.0;
        let d = decode(&reg, &scores, &frame, 0.5, 0.3).unwrap();
        assert_eq!(d.len(), 1);
        // anchor (4, 4) model px, 16 px box → (-4..12) model px → ×2 source px
        assert!((d[0].x_min + 8.0).abs() < 1e-4 && (d[0].x_max - 24.0).abs() < 1e-4, "{:?}", d[0]);
        assert!((d[0].score - sigmoid(5.0)).abs() < 1e-6);
    }

    #[test]
    fn wrong_output_sizes_are_an_error() {
        let frame =
            FrameMap { input_width: 128.0, input_height: 128.0, scale_x: 1.0, scale_y: 1.0, pad_x: 0.0, pad_y: 0.0 };
        assert!(decode(&[0.0; 16], &[0.0; 1], &frame, 0.5, 0.3).is_err());
    }
}
