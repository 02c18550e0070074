//! Top-k classes from one score vector.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Class {
    pub index: usize,
    pub label: String,
    pub score: f32,
}

/// The `k` highest scores, best first (ties: lower index first). NaN scores rank last.
pub fn top_k(scores: &[f32], labels: &[String], k: usize, softmax: bool) -> Vec<Class> {
    let probs: Vec<f32> = if softmax { softmax_of(scores) } else { scores.to_vec() };
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (probs[a], probs[b]);
        y.partial_cmp(&x).unwrap_or_else(|| x.is_nan().cmp(&y.is_nan())).then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|i| Class {
            index: i,
            label: labels.get(i).cloned().unwrap_or_else(|| format!("class {i}")),
            score: probs[i],
        })
        .collect()
}

/// Index of the best score (first on ties), `None` for an empty slice.
pub fn argmax(scores: &[f32]) -> Option<usize> {
    top_k(scores, &[], 1, false).first().map(|c| c.index)
}

fn softmax_of(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_best_first_and_breaks_ties_by_index() {
        let labels: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let r = top_k(&[0.1, 0.5, 0.5, f32::NAN], &labels, 3, false);
        assert_eq!(r.iter().map(|c| c.index).collect::<Vec<_>>(), vec![1, 2, 0]);
        assert_eq!(r[0].label, "b");
    }

    #[test]
    fn softmax_sums_to_one() {
        let r = top_k(&[1.0, 2.0, 3.0], &[], 3, true);
        let sum: f32 = r.iter().map(|c| c.score).sum();
        assert!((sum - 1.0).abs() < 1e-6);
        assert_eq!(r[0].index, 2);
    }
}
