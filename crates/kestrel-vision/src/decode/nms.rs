//! Non-maximum suppression.

use super::Detection;

/// Greedy NMS, best score first. With `weighted`, each kept box is the score-weighted mean
/// of the boxes it suppresses (MediaPipe's blending, steadier on faces).
pub fn nms(mut dets: Vec<Detection>, iou_threshold: f32, weighted: bool) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal));
    let mut kept = Vec::new();
    let mut taken = vec![false; dets.len()];
    for i in 0..dets.len() {
        if taken[i] {
            continue;
        }
        let mut group = vec![i];
        for j in i + 1..dets.len() {
            if !taken[j] && dets[i].iou(&dets[j]) > iou_threshold {
                taken[j] = true;
                group.push(j);
            }
        }
        let best = &dets[i];
        if !weighted || group.len() == 1 {
            kept.push(best.clone());
            continue;
        }
        let total: f32 = group.iter().map(|&g| dets[g].score).sum();
        let avg =
            |f: &dyn Fn(&Detection) -> f32| group.iter().map(|&g| f(&dets[g]) * dets[g].score).sum::<f32>() / total;
        let keypoints =
            (0..best.keypoints.len()).map(|k| (avg(&|d| d.keypoints[k].0), avg(&|d| d.keypoints[k].1))).collect();
        kept.push(Detection {
            x_min: avg(&|d| d.x_min),
            y_min: avg(&|d| d.y_min),
            x_max: avg(&|d| d.x_max),
            y_max: avg(&|d| d.y_max),
            score: best.score,
            keypoints,
        });
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f32, score: f32) -> Detection {
        Detection { x_min: x, y_min: 0.0, x_max: x + 10.0, y_max: 10.0, score, keypoints: vec![] }
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
