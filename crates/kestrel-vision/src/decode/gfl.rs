//! Generalized Focal Loss heads (PicoDet, NanoDet): per level, class scores and, per box side,
//! a distribution over `reg_max + 1` distance bins whose expectation (softmax-weighted mean) is
//! the distance from the cell centre in strides. Decoded as PaddleDetection's PicoHead does:
//! the best `pre_nms_top_k` cells of each level, every class above the threshold a candidate
//! (a box may carry several classes), per-class NMS; boxes clamped to the input before NMS and
//! to the source image after (NanoDet's post-processing is the same with its own settings).

use serde::{Deserialize, Serialize};

use super::nms::{next_slot, Nms, Suppress};
use super::Detection;
use crate::preprocess::FrameMap;
use crate::VisionError;

/// The `gfl` decoder's config (defaults: PaddleDetection's PicoDet, as rapid-layout decodes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GflConfig {
    pub labels: Vec<String>,
    /// Stride of each level, finest first.
    pub strides: Vec<usize>,
    /// Bins per side minus one (PicoDet: 7, NanoDet: 7 or 10).
    #[serde(default = "default_reg_max")]
    pub reg_max: usize,
    /// Cell centres at `(i + offset) * stride` (PicoDet: 0.5; NanoDet-Plus: 0).
    #[serde(default = "default_center_offset")]
    pub center_offset: f32,
    /// Scores are logits (apply a sigmoid); most exports apply it inside.
    #[serde(default)]
    pub sigmoid: bool,
    #[serde(default = "default_score")]
    pub score_threshold: f32,
    #[serde(default = "default_iou")]
    pub iou_threshold: f32,
    /// Cells kept per level before NMS, by their best score.
    #[serde(default = "default_pre_nms_top_k")]
    pub pre_nms_top_k: usize,
    #[serde(default = "default_max")]
    pub max_detections: usize,
    #[serde(default)]
    pub class_agnostic: bool,
}

fn default_reg_max() -> usize {
    7
}
fn default_center_offset() -> f32 {
    0.5
}
fn default_score() -> f32 {
    0.4
}
fn default_iou() -> f32 {
    0.5
}
fn default_pre_nms_top_k() -> usize {
    1000
}
fn default_max() -> usize {
    100
}

impl GflConfig {
    /// PicoDet's defaults for these labels and strides.
    pub fn new(labels: Vec<String>, strides: Vec<usize>) -> GflConfig {
        GflConfig {
            labels,
            strides,
            reg_max: default_reg_max(),
            center_offset: default_center_offset(),
            sigmoid: false,
            score_threshold: default_score(),
            iou_threshold: default_iou(),
            pre_nms_top_k: default_pre_nms_top_k(),
            max_detections: default_max(),
            class_agnostic: false,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        super::check_thresholds(self.score_threshold, self.iou_threshold)?;
        let sane = !self.labels.is_empty()
            && self.labels.len() <= 100_000
            && (1..=8).contains(&self.strides.len())
            && self.strides.iter().all(|s| (1..=1024).contains(s))
            && (1..=64).contains(&self.reg_max)
            && (0.0..=1.0).contains(&self.center_offset)
            && (1..=100_000).contains(&self.pre_nms_top_k)
            && (1..=100_000).contains(&self.max_detections);
        if !sane {
            return Err(format!(
                "needs labels (one per class), 1 to 8 strides within 1..=1024 (got {:?}), reg_max within 1..=64 \
                 (got {}), center_offset within [0, 1] (got {}), pre_nms_top_k and max_detections within 1..=100000",
                self.strides, self.reg_max, self.center_offset
            ));
        }
        Ok(())
    }
}

/// One level's scores and box distributions.
pub struct Level<'t> {
    pub scores: &'t [f32],
    pub boxes: &'t [f32],
    /// Scores and boxes interleaved per cell in one output (`boxes` starts `classes` values in):
    /// said by [`levels`], which knows, not guessed from lengths, which can coincide.
    pub interleaved: bool,
}

/// Pairs the outputs into levels: `shapes[i]` is output `i`'s shape. Score outputs have
/// `classes` values per cell and box outputs `4 * (reg_max + 1)`; a single output may hold
/// both, concatenated per cell, for every level (NanoDet-Plus exports).
pub fn levels<'t>(
    outputs: &[(&'t [f32], &[usize])],
    p: &GflConfig,
    input: (usize, usize),
) -> Result<Vec<Level<'t>>, VisionError> {
    let fail = |why: String| Err(VisionError::Decode(format!("GFL decoder: {why}")));
    let classes = p.labels.len();
    let bins = 4 * (p.reg_max + 1);
    let cells: Vec<usize> = p.strides.iter().map(|s| input.0.div_ceil(*s) * input.1.div_ceil(*s)).collect();
    let shapes: Vec<String> = outputs.iter().map(|(_, s)| format!("{s:?}")).collect();
    let per_cell = |shape: &[usize]| match shape {
        [1, n, v] | [n, v] => Some((*n, *v)),
        _ => None,
    };
    if let [(data, shape)] = outputs {
        let Some((n, v)) = per_cell(shape) else { return fail(format!("output shape {shape:?}")) };
        if v != classes + bins || n != cells.iter().sum::<usize>() {
            return fail(format!(
                "one output {shape:?}: expected [1, {}, {}] ({classes} classes + 4 x {} bins over strides {:?})",
                cells.iter().sum::<usize>(),
                classes + bins,
                p.reg_max + 1,
                p.strides
            ));
        }
        // Split by level; scores and boxes interleave per cell, read through `Level::stride`.
        let mut at = 0;
        return Ok(cells
            .iter()
            .map(|&c| {
                let level = &data[at * v..(at + c) * v];
                at += c;
                Level { scores: level, boxes: &level[classes..], interleaved: true }
            })
            .collect());
    }
    let mut found = Vec::with_capacity(cells.len());
    for &c in &cells {
        let find = |values: usize| outputs.iter().find(|(_, s)| per_cell(s) == Some((c, values))).map(|(d, _)| *d);
        match (find(classes), find(bins)) {
            (Some(scores), Some(boxes)) => found.push(Level { scores, boxes, interleaved: false }),
            _ => {
                return fail(format!(
                    "no [1, {c}, {classes}] scores and [1, {c}, {bins}] boxes for a {}x{} input at strides {:?} \
                     (outputs {})",
                    input.0,
                    input.1,
                    p.strides,
                    shapes.join(", ")
                ))
            }
        }
    }
    Ok(found)
}

/// The decoder with its scratch kept between frames.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    order: Vec<(f32, usize)>,
    softmax: Vec<f32>,
    candidates: Vec<Detection>,
    nms: Nms,
}

impl Decoder {
    /// Decodes the levels into boxes in source pixels, best first, into `out`.
    pub fn decode(
        &mut self,
        levels: &[Level],
        frame: &FrameMap,
        p: &GflConfig,
        out: &mut Vec<Detection>,
    ) -> Result<(), VisionError> {
        let classes = p.labels.len();
        let bins = p.reg_max + 1;
        let (w, h) = (frame.input_width, frame.input_height);
        let mut n = 0;
        for (level, &stride) in levels.iter().zip(&p.strides) {
            let step = if level.interleaved { classes + 4 * bins } else { classes };
            let box_step = if level.interleaved { step } else { 4 * bins };
            let cols = (w as usize).div_ceil(stride);
            let cells = level.scores.len() / step.max(1);
            let boxes_needed =
                if level.interleaved { level.scores.len().saturating_sub(classes) } else { cells * box_step };
            if classes == 0 || level.scores.len() % step != 0 || level.boxes.len() < boxes_needed {
                return Err(VisionError::Decode(format!(
                    "GFL decoder: a level of {} score and {} box values does not fit {classes} classes and {bins} bins",
                    level.scores.len(),
                    level.boxes.len()
                )));
            }
            let score = |cell: usize, c: usize| {
                let s = level.scores[cell * step + c];
                if p.sigmoid {
                    1.0 / (1.0 + (-s).exp())
                } else {
                    s
                }
            };
            // The best cells of this level, by their best class (ties: earlier cell first).
            self.order.clear();
            for cell in 0..cells {
                let best = (0..classes).map(|c| score(cell, c)).fold(f32::NEG_INFINITY, f32::max);
                if best > p.score_threshold {
                    self.order.push((best, cell));
                }
            }
            self.order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            self.order.truncate(p.pre_nms_top_k);
            for &(_, cell) in &self.order {
                let (cx, cy) = (
                    ((cell % cols) as f32 + p.center_offset) * stride as f32,
                    ((cell / cols) as f32 + p.center_offset) * stride as f32,
                );
                let dist = &level.boxes[cell * box_step..][..4 * bins];
                let mut side = [0.0f32; 4];
                for (s, d) in side.iter_mut().zip(dist.chunks_exact(bins)) {
                    *s = expectation(d, &mut self.softmax) * stride as f32;
                }
                let (x0, y0, x1, y1) = (cx - side[0], cy - side[1], cx + side[2], cy + side[3]);
                if !(x0.is_finite() && y0.is_finite() && x1.is_finite() && y1.is_finite()) {
                    continue;
                }
                for c in 0..classes {
                    let s = score(cell, c);
                    if s.partial_cmp(&p.score_threshold) != Some(std::cmp::Ordering::Greater) {
                        continue;
                    }
                    let d = next_slot(&mut self.candidates, n);
                    n += 1;
                    (d.x_min, d.y_min, d.x_max, d.y_max, d.score) = (x0 / w, y0 / h, x1 / w, y1 / h, s);
                    // Inside the input, as both upstreams' distance2bbox clamps before NMS.
                    d.clip(1.0, 1.0);
                    d.class = Some(c);
                    d.label.clone_from(&p.labels[c]);
                    d.keypoints.clear();
                }
            }
        }
        let how = Suppress { iou_threshold: p.iou_threshold, weighted: false, agnostic: p.class_agnostic };
        self.nms.run(&self.candidates[..n], how, out);
        out.truncate(p.max_detections);
        // In the source image, as NanoDet's warp_boxes clips after undoing the resize.
        out.iter_mut().for_each(|d| {
            d.to_source(frame);
            d.clip(frame.source_width, frame.source_height);
        });
        Ok(())
    }
}

/// Σ i · softmax(d)_i: the expected bin of one side's distribution.
fn expectation(d: &[f32], scratch: &mut Vec<f32>) -> f32 {
    let max = d.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    scratch.clear();
    scratch.extend(d.iter().map(|v| (v - max).exp()));
    let sum: f32 = scratch.iter().sum();
    scratch.iter().enumerate().map(|(i, e)| i as f32 * e).sum::<f32>() / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(labels: &[String], strides: &[usize]) -> GflConfig {
        GflConfig { reg_max: 3, ..GflConfig::new(labels.to_vec(), strides.to_vec()) }
    }

    #[test]
    fn a_confident_cell_becomes_its_expected_box() {
        let labels: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let strides = [8, 16];
        // 32x16 input: level 0 has 4x2 cells, level 1 has 2x1.
        let p = params(&labels, &strides);
        let mut s0 = vec![0.0; 8 * 2];
        s0[5 * 2 + 1] = 0.9; // cell 5 = column 1, row 1 of level 0, class b
        let mut b0 = vec![-100.0; 8 * 16];
        for side in 0..4 {
            b0[5 * 16 + side * 4 + 2] = 100.0; // every side: bin 2 → 2 strides
        }
        let (s1, b1) = (vec![0.0; 2 * 2], vec![0.0; 2 * 16]);
        let outputs: [(&[f32], &[usize]); 4] =
            [(&s0, &[1, 8, 2]), (&b1, &[1, 2, 16]), (&b0, &[1, 8, 16]), (&s1, &[1, 2, 2])];
        let levels = levels(&outputs, &p, (32, 16)).unwrap();
        let frame = FrameMap::scaled((32.0, 16.0), (1.0, 1.0));
        let mut out = Vec::new();
        Decoder::default().decode(&levels, &frame, &p, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        // Centre (12, 12), 16 px to each side: (-4, -4, 28, 28), clamped to the 32x16 input.
        let d = &out[0];
        assert_eq!((d.x_min, d.y_min, d.x_max, d.y_max), (0.0, 0.0, 28.0, 16.0), "{d:?}");
        assert_eq!((d.class, d.label.as_str(), d.score), (Some(1), "b", 0.9));
    }

    #[test]
    fn outputs_that_do_not_fit_the_strides_are_an_error() {
        let labels: Vec<String> = vec!["a".into()];
        let p = params(&labels, &[8]);
        let s = vec![0.0; 4];
        let outputs: [(&[f32], &[usize]); 1] = [(&s, &[1, 4, 1])];
        let e = levels(&outputs, &p, (32, 32)).err().unwrap().to_string();
        assert!(e.contains("one output [1, 4, 1]"), "{e}");
        let outputs: [(&[f32], &[usize]); 2] = [(&s, &[1, 4, 1]), (&s, &[1, 4, 1])];
        let e = levels(&outputs, &p, (16, 16)).err().unwrap().to_string();
        assert!(e.contains("no [1, 4, 1] scores and [1, 4, 16] boxes"), "{e}");
    }
}
