//! MediaPipe-style SSD detectors: anchors generated as `SsdAnchorsCalculator` does, boxes and
//! keypoints decoded as `TensorsToDetectionsCalculator` does, then (weighted) NMS. The options
//! carry MediaPipe's own names, so a user copies them from a MediaPipe graph file.

use serde::{Deserialize, Serialize};

use super::nms::{next_slot, Nms, Suppress};
use super::Detection;
use crate::preprocess::FrameMap;
use crate::VisionError;

/// `SsdAnchorsCalculatorOptions` + `TensorsToDetectionsCalculatorOptions` (+ the NMS step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsdOptions {
    pub num_layers: usize,
    pub min_scale: f32,
    pub max_scale: f32,
    pub input_size_width: usize,
    pub input_size_height: usize,
    #[serde(default = "half")]
    pub anchor_offset_x: f32,
    #[serde(default = "half")]
    pub anchor_offset_y: f32,
    pub strides: Vec<usize>,
    #[serde(default = "unit_ratio")]
    pub aspect_ratios: Vec<f32>,
    #[serde(default)]
    pub fixed_anchor_size: bool,
    #[serde(default)]
    pub reduce_boxes_in_lowest_layer: bool,
    #[serde(default = "one")]
    pub interpolated_scale_aspect_ratio: f32,
    pub num_classes: usize,
    pub num_boxes: usize,
    pub num_coords: usize,
    #[serde(default)]
    pub box_coord_offset: usize,
    #[serde(default)]
    pub keypoint_coord_offset: usize,
    #[serde(default)]
    pub num_keypoints: usize,
    #[serde(default = "two")]
    pub num_values_per_keypoint: usize,
    #[serde(default)]
    pub sigmoid_score: bool,
    #[serde(default)]
    pub score_clipping_thresh: Option<f32>,
    #[serde(default)]
    pub reverse_output_order: bool,
    pub x_scale: f32,
    pub y_scale: f32,
    pub w_scale: f32,
    pub h_scale: f32,
    #[serde(default)]
    pub apply_exponential_on_box_size: bool,
    #[serde(default = "half")]
    pub min_score_thresh: f32,
    /// `NonMaxSuppressionCalculatorOptions.min_suppression_threshold`.
    #[serde(default = "default_suppression")]
    pub min_suppression_threshold: f32,
    /// MediaPipe's `WEIGHTED` algorithm (else `DEFAULT`: plain greedy NMS).
    #[serde(default = "yes")]
    pub weighted_nms: bool,
    /// Class names, one per class (optional).
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub max_num_detections: Option<usize>,
}

fn half() -> f32 {
    0.5
}
fn one() -> f32 {
    1.0
}
fn two() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn unit_ratio() -> Vec<f32> {
    vec![1.0]
}
fn default_suppression() -> f32 {
    0.3
}

impl SsdOptions {
    /// MediaPipe's face_detection_short_range graph (BlazeFace, 128x128, 896 anchors).
    pub fn blazeface_short_range(score_threshold: f32, iou_threshold: f32) -> SsdOptions {
        SsdOptions {
            num_layers: 4,
            min_scale: 0.148_437_5,
            max_scale: 0.75,
            input_size_width: 128,
            input_size_height: 128,
            anchor_offset_x: 0.5,
            anchor_offset_y: 0.5,
            strides: vec![8, 16, 16, 16],
            aspect_ratios: vec![1.0],
            fixed_anchor_size: true,
            reduce_boxes_in_lowest_layer: false,
            interpolated_scale_aspect_ratio: 1.0,
            num_classes: 1,
            num_boxes: 896,
            num_coords: 16,
            box_coord_offset: 0,
            keypoint_coord_offset: 4,
            num_keypoints: 6,
            num_values_per_keypoint: 2,
            sigmoid_score: true,
            score_clipping_thresh: Some(100.0),
            reverse_output_order: true,
            x_scale: 128.0,
            y_scale: 128.0,
            w_scale: 128.0,
            h_scale: 128.0,
            apply_exponential_on_box_size: false,
            min_score_thresh: score_threshold,
            min_suppression_threshold: iou_threshold,
            weighted_nms: true,
            labels: Vec::new(),
            max_num_detections: None,
        }
    }

    /// Checks the options, including that they generate exactly `num_boxes` anchors (counted
    /// without generating them, so absurd options cannot allocate).
    pub fn check(&self) -> Result<(), String> {
        let finite = [self.min_scale, self.max_scale, self.anchor_offset_x, self.anchor_offset_y]
            .iter()
            .chain(&self.aspect_ratios)
            .chain(&[self.interpolated_scale_aspect_ratio, self.min_score_thresh, self.min_suppression_threshold])
            .all(|v| v.is_finite());
        let scales = [self.x_scale, self.y_scale, self.w_scale, self.h_scale];
        if !finite || scales.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err("scales, offsets, ratios and thresholds must be finite; x/y/w/h_scale non-zero".into());
        }
        if self.num_layers == 0 || self.num_layers > 16 || self.strides.len() != self.num_layers {
            return Err(format!(
                "num_layers {} needs that many strides (1 to 16), got {:?}",
                self.num_layers, self.strides
            ));
        }
        if self.strides.iter().any(|s| !(1..=1024).contains(s))
            || !(1..=8192).contains(&self.input_size_width)
            || !(1..=8192).contains(&self.input_size_height)
        {
            return Err(format!(
                "strides {:?} must be within 1..=1024 and the input size {}x{} within 1..=8192",
                self.strides, self.input_size_width, self.input_size_height
            ));
        }
        if self.aspect_ratios.iter().any(|r| *r <= 0.0) || self.aspect_ratios.len() > 16 {
            return Err(format!("aspect_ratios {:?} must be positive (at most 16)", self.aspect_ratios));
        }
        let keypoints_end = self.keypoint_coord_offset + self.num_keypoints * self.num_values_per_keypoint;
        if !(1..=100_000).contains(&self.num_classes)
            || self.num_coords > 10_000
            || self.num_coords < self.box_coord_offset + 4
            || self.num_values_per_keypoint < 2
            || (self.num_keypoints > 0 && self.num_coords < keypoints_end)
        {
            return Err(format!(
                "num_classes {} (1..=100000); num_coords {} must hold the box at box_coord_offset {} and {} \
                 keypoints of {} values at keypoint_coord_offset {}",
                self.num_classes,
                self.num_coords,
                self.box_coord_offset,
                self.num_keypoints,
                self.num_values_per_keypoint,
                self.keypoint_coord_offset
            ));
        }
        if !self.labels.is_empty() && self.labels.len() != self.num_classes {
            return Err(format!("{} labels for num_classes {}", self.labels.len(), self.num_classes));
        }
        let count = self.layers().iter().map(|l| l.cells.0 * l.cells.1 * l.sizes.len()).sum::<usize>();
        if count != self.num_boxes {
            return Err(format!("these anchor options generate {count} anchors; num_boxes says {}", self.num_boxes));
        }
        Ok(())
    }

    /// Each group of layers sharing a stride: its feature map size and its anchor sizes.
    fn layers(&self) -> Vec<AnchorLayer> {
        let scale = |i: usize| {
            if self.num_layers == 1 {
                (self.min_scale + self.max_scale) * 0.5
            } else {
                self.min_scale + (self.max_scale - self.min_scale) * i as f32 / (self.num_layers - 1) as f32
            }
        };
        let mut layers = Vec::new();
        let mut layer = 0;
        while layer < self.num_layers {
            let (mut ratios, mut scales) = (Vec::new(), Vec::new());
            let mut last = layer;
            while last < self.strides.len() && self.strides[last] == self.strides[layer] {
                let s = scale(last);
                if last == 0 && self.reduce_boxes_in_lowest_layer {
                    ratios.extend([1.0, 2.0, 0.5]);
                    scales.extend([0.1, s, s]);
                } else {
                    for &r in &self.aspect_ratios {
                        ratios.push(r);
                        scales.push(s);
                    }
                    if self.interpolated_scale_aspect_ratio > 0.0 {
                        let next = if last == self.strides.len() - 1 { 1.0 } else { scale(last + 1) };
                        scales.push((s * next).sqrt());
                        ratios.push(self.interpolated_scale_aspect_ratio);
                    }
                }
                last += 1;
            }
            let sizes = ratios.iter().zip(&scales).map(|(r, s)| (s * r.sqrt(), s / r.sqrt())).collect();
            let stride = self.strides[layer];
            let cells = (self.input_size_width.div_ceil(stride), self.input_size_height.div_ceil(stride));
            layers.push(AnchorLayer { cells, sizes });
            layer = last;
        }
        layers
    }

    /// The anchors, in MediaPipe's order (layer, row, column, anchor).
    pub fn anchors(&self) -> Vec<Anchor> {
        let mut out = Vec::new();
        for l in self.layers() {
            let (fw, fh) = l.cells;
            for y in 0..fh {
                for x in 0..fw {
                    for &(w, h) in &l.sizes {
                        let (w, h) = if self.fixed_anchor_size { (1.0, 1.0) } else { (w, h) };
                        out.push(Anchor {
                            x: (x as f32 + self.anchor_offset_x) / fw as f32,
                            y: (y as f32 + self.anchor_offset_y) / fh as f32,
                            w,
                            h,
                        });
                    }
                }
            }
        }
        out
    }
}

struct AnchorLayer {
    /// Feature map width and height.
    cells: (usize, usize),
    /// (width, height) of each anchor of a cell.
    sizes: Vec<(f32, f32)>,
}

/// An anchor box, normalized to the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

/// The decoder with its anchors and scratch kept between frames: after warm-up it allocates
/// nothing.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    anchors: Vec<Anchor>,
    anchors_for: Option<SsdOptions>,
    candidates: Vec<Detection>,
    nms: Nms,
}

impl Decoder {
    /// Decodes `boxes` (`[num_boxes, num_coords]`) and `scores` (`[num_boxes, num_classes]`)
    /// into detections in source pixels, best first, into `out`.
    pub fn decode(
        &mut self,
        boxes: &[f32],
        scores: &[f32],
        frame: &FrameMap,
        o: &SsdOptions,
        out: &mut Vec<Detection>,
    ) -> Result<(), VisionError> {
        if self.anchors_for.as_ref() != Some(o) {
            o.check().map_err(|e| VisionError::Decode(format!("SSD decoder: {e}")))?;
            self.anchors = o.anchors();
            self.anchors_for = Some(o.clone());
        }
        if boxes.len() != o.num_boxes * o.num_coords || scores.len() != o.num_boxes * o.num_classes {
            return Err(VisionError::Decode(format!(
                "SSD decoder: outputs hold {} box values and {} scores; num_boxes {} needs {} ({} coords) and {} \
                 ({} classes)",
                boxes.len(),
                scores.len(),
                o.num_boxes,
                o.num_boxes * o.num_coords,
                o.num_coords,
                o.num_boxes * o.num_classes,
                o.num_classes
            )));
        }
        let mut n = 0;
        for (i, a) in self.anchors.iter().enumerate() {
            let mut best = (0, f32::NEG_INFINITY);
            for (c, &raw) in scores[i * o.num_classes..(i + 1) * o.num_classes].iter().enumerate() {
                let raw = o.score_clipping_thresh.map_or(raw, |t| raw.clamp(-t, t));
                let s = if o.sigmoid_score { 1.0 / (1.0 + (-raw).exp()) } else { raw };
                if s > best.1 {
                    best = (c, s);
                }
            }
            let (class, score) = best;
            if score.partial_cmp(&o.min_score_thresh) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            let r = &boxes[i * o.num_coords..(i + 1) * o.num_coords];
            let b = &r[o.box_coord_offset..];
            let (xc, yc, w, h) =
                if o.reverse_output_order { (b[0], b[1], b[2], b[3]) } else { (b[1], b[0], b[3], b[2]) };
            let (xc, yc) = (xc / o.x_scale * a.w + a.x, yc / o.y_scale * a.h + a.y);
            let (w, h) = if o.apply_exponential_on_box_size {
                ((w / o.w_scale).exp() * a.w, (h / o.h_scale).exp() * a.h)
            } else {
                (w / o.w_scale * a.w, h / o.h_scale * a.h)
            };
            // Boxes that are not boxes (NaN, infinite, empty) are skipped.
            if !(w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite() && xc.is_finite() && yc.is_finite()) {
                continue;
            }
            let d = next_slot(&mut self.candidates, n);
            n += 1;
            (d.x_min, d.y_min, d.x_max, d.y_max, d.score) =
                (xc - w / 2.0, yc - h / 2.0, xc + w / 2.0, yc + h / 2.0, score);
            (d.class, d.label) = (None, String::new());
            if o.num_classes > 1 {
                d.class = Some(class);
            }
            if let Some(label) = o.labels.get(class) {
                d.label.push_str(label);
            }
            d.keypoints.clear();
            d.keypoints.extend((0..o.num_keypoints).map(|k| {
                let p = &r[o.keypoint_coord_offset + k * o.num_values_per_keypoint..];
                let (kx, ky) = if o.reverse_output_order { (p[0], p[1]) } else { (p[1], p[0]) };
                (kx / o.x_scale * a.w + a.x, ky / o.y_scale * a.h + a.y)
            }));
        }
        let how = Suppress { iou_threshold: o.min_suppression_threshold, weighted: o.weighted_nms, agnostic: false };
        self.nms.run(&self.candidates[..n], how, out);
        if let Some(max) = o.max_num_detections {
            out.truncate(max);
        }
        out.iter_mut().for_each(|d| d.to_source(frame));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mediapipe_graphs_give_their_anchor_counts() {
        let face = SsdOptions::blazeface_short_range(0.5, 0.3);
        let a = face.anchors();
        assert_eq!(a.len(), 896);
        assert_eq!((a[0].x, a[0].y), (0.5 / 16.0, 0.5 / 16.0));
        assert_eq!((a[512].x, a[512].y), (0.5 / 8.0, 0.5 / 8.0));
        face.check().unwrap();
        // pose_detection.pbtxt: 224x224, 5 layers, strides [8, 16, 32, 32, 32] → 2254 anchors.
        let pose = SsdOptions {
            num_layers: 5,
            input_size_width: 224,
            input_size_height: 224,
            strides: vec![8, 16, 32, 32, 32],
            num_boxes: 2254,
            num_coords: 12,
            num_keypoints: 4,
            ..face.clone()
        };
        pose.check().unwrap();
        assert_eq!(pose.anchors().len(), 2254);
        // face_detection_full_range: 192x192, one layer of stride 4, no interpolated anchor.
        let full = SsdOptions {
            num_layers: 1,
            input_size_width: 192,
            input_size_height: 192,
            strides: vec![4],
            interpolated_scale_aspect_ratio: 0.0,
            num_boxes: 2304,
            ..face.clone()
        };
        full.check().unwrap();
        // Not fixed size: SSD MobileNet's (w, h) follow scale and ratio.
        let ssd = SsdOptions {
            fixed_anchor_size: false,
            aspect_ratios: vec![1.0, 2.0],
            num_layers: 1,
            strides: vec![64],
            min_scale: 0.2,
            max_scale: 0.2,
            interpolated_scale_aspect_ratio: 0.0,
            num_boxes: 8,
            ..face.clone()
        };
        let a = ssd.anchors();
        assert_eq!(a.len(), 8);
        assert!((a[1].w - 0.2 * 2f32.sqrt()).abs() < 1e-6 && (a[1].h - 0.2 / 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn absurd_options_are_refused_before_anything_is_allocated() {
        let face = SsdOptions::blazeface_short_range(0.5, 0.3);
        for bad in [
            SsdOptions { num_boxes: 900, ..face.clone() },
            SsdOptions { strides: vec![1, 1, 1, 1], input_size_width: 8192, input_size_height: 8192, ..face.clone() },
            SsdOptions { x_scale: 0.0, ..face.clone() },
            SsdOptions { num_layers: 3, ..face.clone() },
            SsdOptions { num_keypoints: 7, ..face.clone() },
            SsdOptions { min_scale: f32::NAN, ..face.clone() },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        let frame = FrameMap::scaled((128.0, 128.0), (1.0, 1.0));
        let e = Decoder::default().decode(&[0.0; 16], &[0.0], &frame, &face, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("num_boxes 896"), "{e}");
    }
}
