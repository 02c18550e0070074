//! The decoder for a model nobody has described yet: every output summarized — its shape, its
//! range and mean, and where its largest values are — so a user can tell a score map from box
//! regressions before writing a config.

use serde::{Deserialize, Serialize};

/// One output tensor, summarized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSummary {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Over the finite values (`None` when there is none).
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Values that are NaN or infinite.
    pub non_finite: usize,
    /// The largest finite values, largest first, with their index along every axis.
    pub top: Vec<TopValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopValue {
    pub index: Vec<usize>,
    pub value: f64,
}

/// Summarizes `values` (row-major, of `shape`), keeping the `top` largest.
pub fn summarize<T: Copy + Into<f64>>(
    name: &str,
    dtype: &str,
    shape: &[usize],
    values: &[T],
    top: usize,
) -> OutputSummary {
    let (mut min, mut max, mut sum, mut finite, mut non_finite) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize, 0);
    // The best `top` so far, smallest first, so the one to replace is at the front.
    let mut best: Vec<(f64, usize)> = Vec::with_capacity(top + 1);
    for (i, v) in values.iter().enumerate() {
        let v: f64 = (*v).into();
        if !v.is_finite() {
            non_finite += 1;
            continue;
        }
        (min, max, sum, finite) = (min.min(v), max.max(v), sum + v, finite + 1);
        if best.len() < top || best.first().is_some_and(|&(b, _)| v > b) {
            let at = best.partition_point(|&(b, _)| b < v);
            best.insert(at, (v, i));
            if best.len() > top {
                best.remove(0);
            }
        }
    }
    let known = |v: f64| (finite > 0).then_some(v);
    OutputSummary {
        name: name.to_string(),
        dtype: dtype.to_string(),
        shape: shape.to_vec(),
        min: known(min),
        max: known(max),
        mean: known(sum / finite.max(1) as f64),
        non_finite,
        top: best.iter().rev().map(|&(value, flat)| TopValue { index: unravel(flat, shape), value }).collect(),
    }
}

/// A flat row-major index as one index per axis.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (axis, &dim) in shape.iter().enumerate().rev() {
        if dim > 0 {
            index[axis] = flat % dim;
            flat /= dim;
        }
    }
    index
}

impl OutputSummary {
    /// One line for people: `name f32 [1, 896, 1]: min … max … mean …; top 0.93 at [0, 412, 0], …`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        let stats = match (self.min, self.max, self.mean) {
            (Some(lo), Some(hi), Some(mean)) => format!("min {lo:.4} max {hi:.4} mean {mean:.4}"),
            _ => "no finite value".to_string(),
        };
        let bad = if self.non_finite > 0 { format!(", {} NaN/inf", self.non_finite) } else { String::new() };
        let top: Vec<String> = self.top.iter().map(|t| format!("{:.4} at {:?}", t.value, t.index)).collect();
        format!("{} {} [{}]: {stats}{bad}; top {}", self.name, self.dtype, dims.join(", "), top.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_finds_range_mean_and_largest_with_indices() {
        let values = [0.5f32, -2.0, 3.0, f32::NAN, 1.0, 3.5];
        let s = summarize("scores", "f32", &[1, 2, 3], &values, 2);
        assert_eq!((s.min, s.max), (Some(-2.0), Some(3.5)));
        assert!((s.mean.unwrap() - 1.2).abs() < 1e-9);
        assert_eq!(s.non_finite, 1);
        assert_eq!(
            s.top,
            vec![TopValue { index: vec![0, 1, 2], value: 3.5 }, TopValue { index: vec![0, 0, 2], value: 3.0 }]
        );
        assert!(s.describe().contains("top 3.5000 at [0, 1, 2], 3.0000 at [0, 0, 2]"), "{}", s.describe());
    }

    #[test]
    fn all_nan_or_empty_outputs_have_no_statistics() {
        let s = summarize("x", "f32", &[2], &[f32::NAN, f32::INFINITY], 3);
        assert_eq!((s.min, s.mean, s.non_finite, s.top.len()), (None, None, 2, 0));
        let e = summarize::<f32>("y", "f32", &[0, 4], &[], 3);
        assert_eq!(e.describe(), "y f32 [0, 4]: no finite value; top ");
    }
}
