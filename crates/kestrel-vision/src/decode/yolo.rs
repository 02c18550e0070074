//! Ultralytics YOLO exports (v5, v8/v11, and end-to-end exports with NMS inside): boxes as
//! centre and size in input pixels, class scores after sigmoid (v5: times an objectness),
//! best class per box, per-class NMS — as Ultralytics' `non_max_suppression` does.

use serde::{Deserialize, Serialize};

use super::nms::{next_slot, Nms, Suppress};
use super::Detection;
use crate::preprocess::FrameMap;
use crate::VisionError;

/// How the output tensor is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum YoloLayout {
    /// Told from the output's shape and the number of labels.
    #[default]
    Auto,
    /// `[1, 4 + classes (+ extra), boxes]`: YOLOv8/v11 (and v9).
    V8,
    /// `[1, boxes, 5 + classes]`: YOLOv5/v7, with an objectness score.
    V5,
    /// `[1, boxes, 6]`: x1, y1, x2, y2, score, class after the model's own NMS (v10, `nms=True`).
    End2end,
}

/// The `yolo` decoder's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YoloConfig {
    /// One per class (may be empty: then the classes are numbered from the shape).
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default = "default_score")]
    pub score_threshold: f32,
    #[serde(default = "default_iou")]
    pub iou_threshold: f32,
    #[serde(default = "default_max")]
    pub max_detections: usize,
    /// Boxes of different classes suppress each other too.
    #[serde(default)]
    pub class_agnostic: bool,
    #[serde(default)]
    pub layout: YoloLayout,
    /// Pose models: keypoints per box and values per keypoint (2: x, y; 3: with visibility).
    #[serde(default)]
    pub keypoints: usize,
    #[serde(default = "default_keypoint_values")]
    pub keypoint_values: usize,
    /// Mask coefficients after the class scores (segmentation models: 32); skipped.
    #[serde(default)]
    pub mask_coefficients: usize,
}

fn default_score() -> f32 {
    0.25
}
fn default_iou() -> f32 {
    0.45
}
fn default_max() -> usize {
    300
}
fn default_keypoint_values() -> usize {
    3
}

impl YoloConfig {
    /// Ultralytics' defaults for these labels (threshold 0.25, IoU 0.45, 300 boxes).
    pub fn new(labels: Vec<String>) -> YoloConfig {
        YoloConfig {
            labels,
            score_threshold: default_score(),
            iou_threshold: default_iou(),
            max_detections: default_max(),
            class_agnostic: false,
            layout: YoloLayout::Auto,
            keypoints: 0,
            keypoint_values: default_keypoint_values(),
            mask_coefficients: 0,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        super::check_thresholds(self.score_threshold, self.iou_threshold)?;
        if !(1..=100_000).contains(&self.max_detections)
            || self.keypoints > 1000
            || !(2..=3).contains(&self.keypoint_values)
            || self.mask_coefficients > 1000
        {
            return Err(format!(
                "max_detections {} (1..=100000), keypoints {} (at most 1000), keypoint_values {} (2 or 3), \
                 mask_coefficients {} (at most 1000)",
                self.max_detections, self.keypoints, self.keypoint_values, self.mask_coefficients
            ));
        }
        Ok(())
    }
}

/// Where each value of box `i` lives in the output.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    layout: YoloLayout,
    boxes: usize,
    /// Values per box.
    values: usize,
    classes: usize,
}

impl Geometry {
    fn at(&self, i: usize, v: usize) -> usize {
        match self.layout {
            YoloLayout::V8 => v * self.boxes + i,
            _ => i * self.values + v,
        }
    }
}

fn geometry(shape: &[usize], p: &YoloConfig) -> Result<Geometry, VisionError> {
    let fail = |why: String| Err(VisionError::Decode(format!("YOLO decoder: output shape {shape:?}: {why}")));
    let (a, b) = match shape {
        [1, a, b] | [a, b] => (*a, *b),
        _ => return fail("expected [1, values, boxes] or [1, boxes, values]".into()),
    };
    let extra = p.mask_coefficients + p.keypoints * p.keypoint_values;
    let labels = p.labels.len();
    let fits = |values: usize, head: usize| labels == 0 || values == head + labels + extra;
    let layout = match p.layout {
        YoloLayout::Auto if labels > 0 && a == 4 + labels + extra => YoloLayout::V8,
        YoloLayout::Auto if labels > 0 && b == 5 + labels + extra => YoloLayout::V5,
        YoloLayout::Auto if b == 6 && a != 4 + labels + extra => YoloLayout::End2end,
        YoloLayout::Auto if labels == 0 && a > 4 + extra && a < b => YoloLayout::V8,
        YoloLayout::Auto => {
            return fail(format!(
                "fits no YOLO layout for {labels} labels ({extra} extra values per box): v8 wants [1, {}, N], \
                 v5 [1, N, {}], end-to-end [1, N, 6]; set `layout` and `labels`",
                4 + labels + extra,
                5 + labels + extra
            ))
        }
        explicit => explicit,
    };
    let g = match layout {
        YoloLayout::V8 if a > 4 + extra && fits(a, 4) => {
            Geometry { layout, boxes: b, values: a, classes: a - 4 - extra }
        }
        YoloLayout::V5 if b > 5 + extra && fits(b, 5) => {
            Geometry { layout, boxes: a, values: b, classes: b - 5 - extra }
        }
        YoloLayout::End2end if b == 6 => Geometry { layout, boxes: a, values: 6, classes: labels },
        _ => return fail(format!("does not fit layout {layout:?} with {labels} labels and {extra} extra values")),
    };
    Ok(g)
}

/// The decoder with its scratch kept between frames.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    candidates: Vec<Detection>,
    nms: Nms,
}

impl Decoder {
    /// Decodes `output` (of `shape`) into boxes in source pixels, best first, into `out`.
    pub fn decode(
        &mut self,
        output: &[f32],
        shape: &[usize],
        frame: &FrameMap,
        p: &YoloConfig,
        out: &mut Vec<Detection>,
    ) -> Result<(), VisionError> {
        let g = geometry(shape, p)?;
        if output.len() != g.boxes * g.values {
            return Err(VisionError::Decode(format!("YOLO decoder: {} values for shape {shape:?}", output.len())));
        }
        let (w, h) = (frame.input_width, frame.input_height);
        let value = |i: usize, v: usize| output[g.at(i, v)];
        let mut n = 0;
        for i in 0..g.boxes {
            let (class, score, corners) = match g.layout {
                YoloLayout::End2end => {
                    let c = value(i, 5);
                    let class = (c >= 0.0 && c.fract() == 0.0).then_some(c as usize);
                    (class, value(i, 4), [value(i, 0), value(i, 1), value(i, 2), value(i, 3)])
                }
                _ => {
                    let first = if g.layout == YoloLayout::V5 { 5 } else { 4 };
                    let mut best = (0, f32::NEG_INFINITY);
                    for c in 0..g.classes {
                        let s = value(i, first + c);
                        if s > best.1 {
                            best = (c, s);
                        }
                    }
                    let score = if g.layout == YoloLayout::V5 { best.1 * value(i, 4) } else { best.1 };
                    let (cx, cy, bw, bh) = (value(i, 0), value(i, 1), value(i, 2), value(i, 3));
                    (Some(best.0), score, [cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0])
                }
            };
            // NaN scores and boxes that are not boxes (NaN, infinite, inside out) are skipped.
            let [x0, y0, x1, y1] = corners;
            let sane = corners.iter().all(|c| c.is_finite()) && x1 > x0 && y1 > y0;
            let above = score.partial_cmp(&p.score_threshold) == Some(std::cmp::Ordering::Greater);
            if !above || !sane {
                continue;
            }
            let d = next_slot(&mut self.candidates, n);
            n += 1;
            (d.x_min, d.y_min, d.x_max, d.y_max, d.score) = (x0 / w, y0 / h, x1 / w, y1 / h, score);
            d.class = class;
            d.label.clear();
            if let Some(label) = class.and_then(|c| p.labels.get(c)) {
                d.label.push_str(label);
            }
            d.keypoints.clear();
            if p.keypoints > 0 && g.layout != YoloLayout::End2end {
                let first = g.values - p.keypoints * p.keypoint_values;
                d.keypoints.extend((0..p.keypoints).map(|k| {
                    let at = first + k * p.keypoint_values;
                    (value(i, at) / w, value(i, at + 1) / h)
                }));
            }
        }
        let how = Suppress { iou_threshold: p.iou_threshold, weighted: false, agnostic: p.class_agnostic };
        if g.layout == YoloLayout::End2end {
            // The model suppressed already: keep its boxes, best first.
            std::mem::swap(&mut self.candidates, out);
            out.truncate(n);
            out.sort_by(|a, b| b.score.total_cmp(&a.score));
        } else {
            self.nms.run(&self.candidates[..n], how, out);
        }
        out.truncate(p.max_detections);
        out.iter_mut().for_each(|d| d.to_source(frame));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> FrameMap {
        FrameMap {
            input_width: 64.0,
            input_height: 64.0,
            scale_x: 2.0,
            scale_y: 2.0,
            pad_x: 0.0,
            pad_y: 8.0,
            source_width: 128.0,
            source_height: 96.0,
        }
    }

    fn params(labels: &[String]) -> YoloConfig {
        YoloConfig { max_detections: 10, ..YoloConfig::new(labels.to_vec()) }
    }

    #[test]
    fn v8_v5_and_end_to_end_give_the_same_box() {
        let labels: Vec<String> = ["cat", "dog"].map(String::from).to_vec();
        // One box at centre (32, 40), 16x8 input pixels, class 1 at 0.9; a second box scores 0.1.
        let boxes = [[32.0, 40.0, 16.0, 8.0, 0.05, 0.9], [10.0, 10.0, 4.0, 4.0, 0.1, 0.0]];
        let v8: Vec<f32> = (0..6).flat_map(|v| boxes.iter().map(move |b| b[v])).collect();
        let v5: Vec<f32> = boxes.iter().flat_map(|b| [b[0], b[1], b[2], b[3], 1.0, b[4], b[5]]).collect();
        let e2e = [24.0, 36.0, 40.0, 44.0, 0.9, 1.0, 8.0, 8.0, 12.0, 12.0, 0.1, 0.0];
        let mut out = Vec::new();
        for (data, shape) in [(&v8[..], vec![1, 6, 2]), (&v5[..], vec![1, 2, 7]), (&e2e[..], vec![1, 2, 6])] {
            Decoder::default().decode(data, &shape, &frame(), &params(&labels), &mut out).unwrap();
            assert_eq!(out.len(), 1, "{shape:?}");
            let d = &out[0];
            // (24..40, 36..44) input px, minus 8 rows of padding, times 2.
            assert_eq!((d.x_min, d.y_min, d.x_max, d.y_max), (48.0, 56.0, 80.0, 72.0), "{shape:?}");
            assert_eq!((d.score, d.class, d.label.as_str()), (0.9, Some(1), "dog"));
        }
    }

    #[test]
    fn shapes_that_fit_no_layout_and_bad_values_are_handled() {
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut out = Vec::new();
        let e = Decoder::default().decode(&[0.0; 10], &[1, 5, 2], &frame(), &params(&labels), &mut out);
        assert!(e.unwrap_err().to_string().contains("fits no YOLO layout"));
        let e = Decoder::default().decode(&[0.0; 3], &[1, 7, 2], &frame(), &params(&labels), &mut out);
        assert!(e.unwrap_err().to_string().contains("3 values"));
        // NaN and infinite boxes and scores are skipped, not kept or panicked on.
        let v8 =
            [f32::NAN, 8.0, f32::INFINITY, 8.0, 8.0, 8.0, 4.0, 4.0, 0.9, f32::NAN, f32::NAN, f32::NAN, 0.0, f32::NAN];
        Decoder::default().decode(&v8, &[1, 7, 2], &frame(), &params(&labels), &mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
    }
}
