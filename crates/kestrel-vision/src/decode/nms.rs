//! Non-maximum suppression.

use super::Detection;

/// Greedy NMS, best score first. With `weighted`, each kept box is the score-weighted mean
/// of the boxes it suppresses (MediaPipe's blending, steadier on faces). Boxes of different
/// classes never suppress each other unless `agnostic`.
pub fn nms(dets: Vec<Detection>, iou_threshold: f32, weighted: bool) -> Vec<Detection> {
    let mut out = Vec::new();
    Nms::default().run(&dets, Suppress { iou_threshold, weighted, agnostic: false }, &mut out);
    out
}

/// How boxes suppress each other.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Suppress {
    /// A box overlapping a better one by more than this IoU is suppressed.
    pub iou_threshold: f32,
    /// Kept boxes are the score-weighted mean of the boxes they suppress.
    pub weighted: bool,
    /// Boxes of different classes suppress each other too.
    pub agnostic: bool,
}

/// NMS with its scratch kept between calls: after warm-up it allocates nothing.
#[derive(Debug, Default, Clone)]
pub struct Nms {
    order: Vec<usize>,
    taken: Vec<bool>,
    group: Vec<usize>,
}

impl Nms {
    /// Writes the kept boxes of `dets` into `out` (whose detections are reused).
    pub fn run(&mut self, dets: &[Detection], how: Suppress, out: &mut Vec<Detection>) {
        let Suppress { iou_threshold, weighted, agnostic } = how;
        // Best first; equal scores keep their order (what a stable sort gives).
        self.order.clear();
        self.order.extend(0..dets.len());
        self.order.sort_unstable_by(|&a, &b| {
            dets[b].score.partial_cmp(&dets[a].score).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b))
        });
        self.taken.clear();
        self.taken.resize(dets.len(), false);
        let mut kept = 0;
        for (rank, &i) in self.order.iter().enumerate() {
            if self.taken[rank] {
                continue;
            }
            self.group.clear();
            self.group.push(i);
            for (later, &j) in self.order.iter().enumerate().skip(rank + 1) {
                let rivals = agnostic || dets[i].class == dets[j].class;
                if !self.taken[later] && rivals && dets[i].iou(&dets[j]) > iou_threshold {
                    self.taken[later] = true;
                    self.group.push(j);
                }
            }
            let slot = next_slot(out, kept);
            kept += 1;
            let best = &dets[i];
            if !weighted || self.group.len() == 1 {
                assign(slot, best);
                continue;
            }
            let group = &self.group;
            let total: f32 = group.iter().map(|&g| dets[g].score).sum();
            let avg =
                |f: &dyn Fn(&Detection) -> f32| group.iter().map(|&g| f(&dets[g]) * dets[g].score).sum::<f32>() / total;
            slot.x_min = avg(&|d| d.x_min);
            slot.y_min = avg(&|d| d.y_min);
            slot.x_max = avg(&|d| d.x_max);
            slot.y_max = avg(&|d| d.y_max);
            slot.score = best.score;
            slot.class = best.class;
            slot.label.clone_from(&best.label);
            slot.polygon.clone_from(&best.polygon);
            slot.keypoints.clear();
            slot.keypoints
                .extend((0..best.keypoints.len()).map(|k| (avg(&|d| d.keypoints[k].0), avg(&|d| d.keypoints[k].1))));
        }
        out.truncate(kept);
    }
}

/// The `k`th detection of `out`, reused if there is one.
pub(crate) fn next_slot(out: &mut Vec<Detection>, k: usize) -> &mut Detection {
    if k == out.len() {
        out.push(Detection::empty());
    }
    &mut out[k]
}

/// `dst = src`, keeping `dst`'s keypoint storage.
fn assign(dst: &mut Detection, src: &Detection) {
    (dst.x_min, dst.y_min, dst.x_max, dst.y_max, dst.score) = (src.x_min, src.y_min, src.x_max, src.y_max, src.score);
    dst.keypoints.clone_from(&src.keypoints);
    dst.polygon.clone_from(&src.polygon);
    dst.class = src.class;
    dst.label.clone_from(&src.label);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f32, score: f32) -> Detection {
        Detection { x_min: x, x_max: x + 10.0, y_max: 10.0, score, ..Detection::empty() }
    }

    #[test]
    fn classes_suppress_only_their_own_unless_agnostic() {
        let (cat, dog) = (Detection { class: Some(0), ..d(0.0, 0.9) }, Detection { class: Some(1), ..d(1.0, 0.8) });
        let mut out = Vec::new();
        let how = Suppress { iou_threshold: 0.3, weighted: false, agnostic: false };
        Nms::default().run(&[cat.clone(), dog.clone()], how, &mut out);
        assert_eq!(out.len(), 2);
        Nms::default().run(&[cat, dog], Suppress { agnostic: true, ..how }, &mut out);
        assert_eq!((out.len(), out[0].class), (1, Some(0)));
    }

    #[test]
    fn overlapping_boxes_collapse_to_the_best() {
        let out = nms(vec![d(0.0, 0.6), d(1.0, 0.9), d(50.0, 0.7)], 0.3, false);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[0].x_min, 1.0);
        assert_eq!(out[1].x_min, 50.0);
    }

    #[test]
    fn weighted_nms_blends_coordinates() {
        let out = nms(vec![d(0.0, 1.0), d(2.0, 1.0)], 0.3, true);
        assert_eq!(out.len(), 1);
        assert!((out[0].x_min - 1.0).abs() < 1e-6);
    }
}
