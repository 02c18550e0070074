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
    let mut out = Vec::new();
    TopK::default().run(scores, labels, k, softmax, &mut out);
    out
}

/// [`top_k`] with its scratch kept between calls: after warm-up it allocates nothing (labels
/// are copied into the reused strings of `out`).
#[derive(Debug, Default, Clone)]
pub struct TopK {
    probs: Vec<f32>,
    order: Vec<usize>,
}

impl TopK {
    pub fn run(&mut self, scores: &[f32], labels: &[String], k: usize, softmax: bool, out: &mut Vec<Class>) {
        self.probs.clear();
        self.probs.extend_from_slice(scores);
        if softmax {
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            self.probs.iter_mut().for_each(|v| *v = (*v - max).exp());
            let sum: f32 = self.probs.iter().sum();
            self.probs.iter_mut().for_each(|v| *v /= sum);
        }
        let probs = &self.probs;
        self.order.clear();
        self.order.extend(0..probs.len());
        self.order.sort_unstable_by(|&a, &b| {
            let (x, y) = (probs[a], probs[b]);
            y.partial_cmp(&x).unwrap_or_else(|| x.is_nan().cmp(&y.is_nan())).then(a.cmp(&b))
        });
        let n = k.min(self.order.len());
        out.truncate(n);
        for (rank, &i) in self.order[..n].iter().enumerate() {
            if rank == out.len() {
                out.push(Class { index: 0, label: String::new(), score: 0.0 });
            }
            let c = &mut out[rank];
            (c.index, c.score) = (i, probs[i]);
            c.label.clear();
            match labels.get(i) {
                Some(l) => c.label.push_str(l),
                None => {
                    use std::fmt::Write;
                    let _ = write!(c.label, "class {i}");
                }
            }
        }
    }
}

/// Index of the best score (first on ties), `None` for an empty slice.
pub fn argmax(scores: &[f32]) -> Option<usize> {
    top_k(scores, &[], 1, false).first().map(|c| c.index)
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
