//! MediaPipe BlazeFace (short range): one configuration of the SSD-anchor decoder, the one of
//! MediaPipe's face_detection_short_range graph.

use super::ssd_anchors::{Decoder, SsdOptions};
use super::Detection;
use crate::preprocess::FrameMap;
use crate::VisionError;

/// Values per anchor in the regressor output: box (cx, cy, w, h) + 6 keypoints (x, y).
pub const VALUES_PER_ANCHOR: usize = 16;

/// Decodes BlazeFace's outputs into boxes in source pixels (weighted NMS).
pub fn decode(
    regressors: &[f32],
    scores: &[f32],
    frame: &FrameMap,
    score_threshold: f32,
    iou_threshold: f32,
) -> Result<Vec<Detection>, VisionError> {
    let mut out = Vec::new();
    let options = SsdOptions::blazeface_short_range(score_threshold, iou_threshold);
    Decoder::default().decode(regressors, scores, frame, &options, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn one_confident_anchor_becomes_one_box_in_source_pixels() {
        let frame = FrameMap::scaled((128.0, 128.0), (2.0, 2.0));
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
        assert_eq!(d[0].keypoints.len(), 6);
    }

    #[test]
    fn wrong_output_sizes_are_an_error() {
        let frame = FrameMap::scaled((128.0, 128.0), (1.0, 1.0));
        assert!(decode(&[0.0; 16], &[0.0; 1], &frame, 0.5, 0.3).is_err());
    }
}
