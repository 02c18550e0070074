//! Calibration: run the float model on real samples and record the range of chosen tensors.

use std::collections::HashMap;

use kestrel_engine::{BackendKind, Engine, PrepareOptions, Tensor};
use kestrel_onnx::{pb, OnnxModel};
use serde::Serialize;

use crate::graph;
use crate::CompressError;

/// How an activation range is chosen from what calibration saw.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum RangeMethod {
    /// The smallest and largest value seen.
    MinMax,
    /// The given percentile at each end (e.g. 99.99): robust to rare outliers.
    Percentile(f32),
}

const BINS: usize = 2048;

/// Runs `model` on every sample with `names` exposed as outputs; `visit(name index, values)`.
pub fn observe(
    model: &OnnxModel,
    samples: &[Tensor],
    names: &[String],
    mut visit: impl FnMut(usize, &[f32]),
) -> Result<(), CompressError> {
    observe_shaped(model, samples, names, |ix, _, values| visit(ix, values))
}

/// As [`observe`], also passing each tensor's shape: `visit(name index, shape, values)`.
pub fn observe_shaped(
    model: &OnnxModel,
    samples: &[Tensor],
    names: &[String],
    mut visit: impl FnMut(usize, &[usize], &[f32]),
) -> Result<(), CompressError> {
    let first = samples.first().ok_or_else(|| CompressError::Calibration("no calibration samples".into()))?;
    let mut probe = model.clone();
    let g = graph::graph_mut(&mut probe.proto)?;
    // The graph input is read from the sample itself: tract would erase an input's declared
    // type if the same name were also an output.
    let input_name = g.input.iter().map(|i| i.name.clone()).find(|n| !g.initializer.iter().any(|t| &t.name == n));
    let exposed: Vec<usize> = (0..names.len()).filter(|&i| Some(&names[i]) != input_name.as_ref()).collect();
    g.output = exposed.iter().map(|&i| pb::ValueInfoProto { name: names[i].clone(), ..Default::default() }).collect();
    let options = PrepareOptions { threads: 1, input_shapes: vec![first.shape.clone()] };
    let mut engine = Engine::new(BackendKind::Cpu, &probe, &options)?;
    for sample in samples {
        if sample.shape != first.shape {
            return Err(CompressError::Calibration(format!(
                "samples differ in shape ({:?} vs {:?})",
                sample.shape, first.shape
            )));
        }
        let as_f32 = |t: &Tensor, name: &str| {
            t.as_f32().map(<[f32]>::to_vec).ok_or_else(|| CompressError::Tensor {
                name: name.to_string(),
                message: format!("is {}, only float32 tensors are calibrated", t.dtype_name()),
            })
        };
        if let Some(ix) = names.iter().position(|n| Some(n) == input_name.as_ref()) {
            visit(ix, &sample.shape, &as_f32(sample, &names[ix])?);
        }
        let outputs = engine.run(std::slice::from_ref(sample))?;
        for (t, &ix) in outputs.iter().zip(&exposed) {
            visit(ix, &t.shape, &as_f32(t, &names[ix])?);
        }
    }
    Ok(())
}

/// The float outputs of the model on every sample, concatenated per output.
pub fn reference_outputs(model: &OnnxModel, samples: &[Tensor]) -> Result<Vec<Vec<f32>>, CompressError> {
    let names: Vec<String> = graph::graph(&model.proto)?.output.iter().map(|o| o.name.clone()).collect();
    values(model, samples, &names)
}

/// The named tensors' values on every sample, concatenated per name.
pub fn values(model: &OnnxModel, samples: &[Tensor], names: &[String]) -> Result<Vec<Vec<f32>>, CompressError> {
    let mut out = vec![Vec::new(); names.len()];
    observe(model, samples, names, |ix, v| out[ix].extend_from_slice(v))?;
    Ok(out)
}

/// The calibrated range (lo <= 0 <= hi) of each named tensor.
pub fn ranges(
    model: &OnnxModel,
    samples: &[Tensor],
    names: &[String],
    method: RangeMethod,
) -> Result<HashMap<String, (f32, f32)>, CompressError> {
    let mut minmax = vec![(f32::INFINITY, f32::NEG_INFINITY); names.len()];
    observe(model, samples, names, |ix, v| {
        for &x in v.iter().filter(|x| x.is_finite()) {
            minmax[ix].0 = minmax[ix].0.min(x);
            minmax[ix].1 = minmax[ix].1.max(x);
        }
    })?;
    if let Some((ix, _)) = minmax.iter().enumerate().find(|(_, r)| r.0 > r.1) {
        return Err(CompressError::Calibration(format!("tensor `{}` had no finite value", names[ix])));
    }
    let chosen = match method {
        RangeMethod::MinMax => minmax,
        RangeMethod::Percentile(p) => {
            if !(50.0..=100.0).contains(&p) {
                return Err(CompressError::Calibration(format!("percentile {p} must be within 50..=100")));
            }
            let mut hist = vec![vec![0u64; BINS]; names.len()];
            observe(model, samples, names, |ix, v| {
                let (lo, hi) = minmax[ix];
                let width = (hi - lo).max(f32::MIN_POSITIVE);
                for &x in v.iter().filter(|x| x.is_finite()) {
                    let bin = (((x - lo) / width) * BINS as f32) as usize;
                    hist[ix][bin.min(BINS - 1)] += 1;
                }
            })?;
            minmax
                .iter()
                .zip(&hist)
                .map(|(&(lo, hi), h)| {
                    let total: u64 = h.iter().sum();
                    let cut = ((1.0 - f64::from(p) / 100.0) * total as f64) as u64;
                    let width = (hi - lo) / BINS as f32;
                    let (mut below, mut first) = (0u64, 0usize);
                    while first < BINS - 1 && below + h[first] <= cut {
                        below += h[first];
                        first += 1;
                    }
                    let (mut above, mut last) = (0u64, BINS - 1);
                    while last > first && above + h[last] <= cut {
                        above += h[last];
                        last -= 1;
                    }
                    (lo + first as f32 * width, lo + (last + 1) as f32 * width)
                })
                .collect()
        }
    };
    Ok(names.iter().cloned().zip(chosen.into_iter().map(|(lo, hi)| (lo.min(0.0), hi.max(0.0)))).collect())
}

/// Signal-to-quantization-noise ratio in dB of `test` against `reference` (∞ when identical).
pub fn sqnr_db(reference: &[f32], test: &[f32]) -> f64 {
    let signal: f64 = reference.iter().map(|&x| f64::from(x).powi(2)).sum();
    let noise: f64 = reference.iter().zip(test).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}
