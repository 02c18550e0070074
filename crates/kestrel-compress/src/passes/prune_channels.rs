//! Structured channel pruning: removes whole output channels (filters) of Conv and MatMul
//! layers, and the matching input channels of every consumer, so the output model really has
//! fewer parameters and MACs.
//!
//! A layer's channels are followed through ops that keep them (Relu, Clip, pooling,
//! BatchNormalization and per-channel constant Add/Mul, whose parameters are sliced too) and
//! through depthwise convolutions (whose groups shrink with them) to the consumers that end
//! them (a Conv's or MatMul's input channels). A layer whose channels reach anything else
//! (an Add of two activations, a Concat, a Reshape, a model output) is skipped, with the reason.
//!
//! Which channels: the smallest L1 norms. How many per layer: a sensitivity scan prunes each
//! layer alone at 1/4, 1/2 and 3/4 and measures the model-output SQNR against the full model on
//! the calibration data; a greedy allocation then takes the cheapest steps until the global
//! ratio of channels is removed.

use std::collections::{HashMap, HashSet};

use kestrel_engine::Tensor;
use kestrel_onnx::{pb, OnnxModel};
use serde::Serialize;

use crate::calibrate;
use crate::graph;
use crate::CompressError;

const PASS: &str = "prune-channels";
const STEPS: [f32; 3] = [0.25, 0.5, 0.75];
/// Ops that carry channels through unchanged.
const CHANNEL_WISE: &[&str] =
    &["Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "MaxPool", "AveragePool", "Dropout", "Identity", "HardSwish"];

#[derive(Debug, Clone, Serialize)]
pub struct PrunedLayer {
    pub node: String,
    pub op: String,
    /// The layer's output tensor, and the original indices of the channels it keeps.
    pub output: String,
    pub kept: Vec<usize>,
    pub channels_before: usize,
    pub channels_after: usize,
    /// Model-output SQNR (dB) with only this layer pruned at 1/4, 1/2, 3/4 of its channels.
    pub sensitivity_db: Vec<(f32, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SkippedLayer {
    pub node: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub ratio: f32,
    pub layers: Vec<PrunedLayer>,
    pub skipped: Vec<SkippedLayer>,
    pub parameters_before: u64,
    pub parameters_after: u64,
    pub output_sqnr_db: f64,
}

/// Everything that changes when one layer loses channels.
#[derive(Debug, Clone)]
struct Plan {
    name: String,
    output: String,
    op: String,
    channels: usize,
    /// Initializers sliced along an axis by the kept channels.
    slices: Vec<(String, usize)>,
    /// Depthwise Conv nodes whose `group` becomes the kept count.
    groups: Vec<usize>,
    /// L1 norm of each output channel's weights.
    norms: Vec<f32>,
}

/// Prunes `ratio` of the prunable channels, allocated by sensitivity on `samples`.
pub fn prune_channels(
    model: &OnnxModel,
    samples: &[Tensor],
    ratio: f32,
) -> Result<(OnnxModel, PruneReport), CompressError> {
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(CompressError::Pass { pass: PASS, message: format!("ratio {ratio} must be within (0, 1)") });
    }
    let g = graph::graph(&model.proto)?;
    let (plans, skipped) = plans(g)?;
    if plans.is_empty() {
        let reasons: Vec<String> = skipped.iter().take(3).map(|s| format!("`{}`: {}", s.node, s.reason)).collect();
        return Err(CompressError::Pass {
            pass: PASS,
            message: format!(
                "no layer can be pruned structurally; {} skipped, e.g. {}",
                skipped.len(),
                reasons.join("; ")
            ),
        });
    }
    let reference = calibrate::reference_outputs(model, samples)?;
    let score = |levels: &[f32]| -> Result<f64, CompressError> {
        let pruned = apply(model, &plans, levels)?;
        let got = calibrate::reference_outputs(&pruned, samples)?;
        Ok(reference.iter().zip(&got).map(|(r, t)| calibrate::sqnr_db(r, t)).fold(f64::INFINITY, f64::min))
    };
    let mut sensitivity = Vec::new();
    for i in 0..plans.len() {
        let mut row = Vec::new();
        for step in STEPS {
            let mut levels = vec![0.0; plans.len()];
            levels[i] = step;
            row.push((step, score(&levels)?));
        }
        sensitivity.push(row);
    }
    // Greedy: remove channels in the steps that hurt the output least until the target is met.
    let total: usize = plans.iter().map(|p| p.channels).sum();
    let target = (ratio * total as f32).round() as usize;
    let mut levels = vec![0usize; plans.len()]; // index into [0] ++ STEPS
    let removed = |levels: &[usize]| -> usize {
        plans
            .iter()
            .zip(levels)
            .map(|(p, &l)| if l == 0 { 0 } else { p.channels - kept_count(p.channels, STEPS[l - 1]) })
            .sum()
    };
    while removed(&levels) < target {
        let next = (0..plans.len())
            .filter(|&i| levels[i] < STEPS.len())
            .max_by(|&a, &b| sensitivity[a][levels[a]].1.total_cmp(&sensitivity[b][levels[b]].1));
        let Some(i) = next else { break };
        levels[i] += 1;
    }
    let chosen: Vec<f32> = levels.iter().map(|&l| if l == 0 { 0.0 } else { STEPS[l - 1] }).collect();
    let pruned = apply(model, &plans, &chosen)?;
    let output_sqnr_db = score(&chosen)?;
    let params = |m: &OnnxModel| kestrel_onnx::summarize(&m.proto).parameters;
    let report = PruneReport {
        ratio,
        layers: plans
            .iter()
            .zip(&chosen)
            .zip(sensitivity)
            .map(|((p, &r), sens)| PrunedLayer {
                node: p.name.clone(),
                op: p.op.clone(),
                output: p.output.clone(),
                kept: if r == 0.0 { (0..p.channels).collect() } else { kept(p, r) },
                channels_before: p.channels,
                channels_after: if r == 0.0 { p.channels } else { kept_count(p.channels, r) },
                sensitivity_db: sens,
            })
            .collect(),
        skipped,
        parameters_before: params(model),
        parameters_after: params(&pruned),
        output_sqnr_db,
    };
    Ok((pruned, report))
}

fn kept_count(channels: usize, ratio: f32) -> usize {
    ((channels as f32 * (1.0 - ratio)).round() as usize).clamp(1, channels)
}

/// The channels a plan keeps at `ratio`: the largest L1 norms, in their original order.
fn kept(plan: &Plan, ratio: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..plan.channels).collect();
    order.sort_by(|&a, &b| plan.norms[b].total_cmp(&plan.norms[a]).then(a.cmp(&b)));
    let mut keep: Vec<usize> = order.into_iter().take(kept_count(plan.channels, ratio)).collect();
    keep.sort_unstable();
    keep
}

/// Finds every prunable layer and what pruning it touches; the rest with a reason.
fn plans(g: &pb::GraphProto) -> Result<(Vec<Plan>, Vec<SkippedLayer>), CompressError> {
    let consumers = graph::consumers(g);
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let init_dims =
        |name: &str| graph::initializer(g, name).filter(|t| t.data_type == graph::FLOAT).map(|t| t.dims.clone());
    let mut plans = Vec::new();
    let mut skipped = Vec::new();
    for n in &g.node {
        let name = if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() };
        let (weight, axis) = match n.op_type.as_str() {
            "Conv" if n.input.len() >= 2 && init_dims(&n.input[1]).is_some_and(|d| d.len() == 4) => {
                if graph::attr_int(n, "group").unwrap_or(1) != 1 {
                    continue; // depthwise/grouped convs follow their input's channels
                }
                (n.input[1].clone(), 0)
            }
            "MatMul" if n.input.len() == 2 && init_dims(&n.input[1]).is_some_and(|d| d.len() == 2) => {
                (n.input[1].clone(), 1)
            }
            _ => continue,
        };
        let dims = init_dims(&weight).unwrap_or_default();
        let channels = dims[axis] as usize;
        let mut plan = Plan {
            name: name.clone(),
            output: n.output[0].clone(),
            op: n.op_type.clone(),
            channels,
            slices: vec![(weight.clone(), axis)],
            groups: vec![],
            norms: channel_norms(g, &weight, axis)?,
        };
        if n.op_type == "Conv" && n.input.len() > 2 && !n.input[2].is_empty() {
            plan.slices.push((n.input[2].clone(), 0));
        }
        match follow(g, &consumers, &outputs, &n.output[0], channels, &mut plan) {
            Ok(()) if channels > 1 => plans.push(plan),
            Ok(()) => skipped.push(SkippedLayer { node: name, reason: "a single channel".into() }),
            Err(reason) => skipped.push(SkippedLayer { node: name, reason }),
        }
    }
    Ok((plans, skipped))
}

/// Follows `tensor`'s channels to the consumers that end them, recording what must be sliced.
fn follow(
    g: &pb::GraphProto,
    consumers: &HashMap<String, Vec<usize>>,
    outputs: &HashSet<&str>,
    tensor: &str,
    channels: usize,
    plan: &mut Plan,
) -> Result<(), String> {
    let mut frontier = vec![tensor.to_string()];
    let mut seen = HashSet::new();
    let per_channel = |name: &str| -> Option<usize> {
        // A constant whose only non-1 dimension holds `channels` values: its axis.
        let t = graph::initializer(g, name)?;
        let big: Vec<usize> = t.dims.iter().enumerate().filter(|(_, &d)| d != 1).map(|(i, _)| i).collect();
        match big.as_slice() {
            [a] if t.dims[*a] as usize == channels => Some(*a),
            [] => None,
            _ => None,
        }
    };
    while let Some(t) = frontier.pop() {
        if outputs.contains(t.as_str()) {
            return Err(format!("its channels reach the model output `{t}`"));
        }
        for &c in consumers.get(&t).into_iter().flatten() {
            if !seen.insert((c, t.clone())) {
                continue;
            }
            let n = &g.node[c];
            let who = format!("{} `{}`", n.op_type, if n.name.is_empty() { &n.output[0] } else { &n.name });
            let is_const = |i: usize| n.input.get(i).is_some_and(|x| graph::initializer(g, x).is_some());
            match n.op_type.as_str() {
                op if CHANNEL_WISE.contains(&op) => {
                    if n.input.iter().skip(1).any(|i| !i.is_empty() && graph::initializer(g, i).is_none()) {
                        return Err(format!("{who} has non-constant parameters"));
                    }
                    frontier.push(n.output[0].clone());
                }
                "BatchNormalization" => {
                    for p in &n.input[1..] {
                        plan.slices.push((p.clone(), 0));
                    }
                    frontier.push(n.output[0].clone());
                }
                "Add" | "Mul" | "Sub" | "Div" if n.input.len() == 2 && (is_const(0) || is_const(1)) => {
                    let other = if is_const(1) { &n.input[1] } else { &n.input[0] };
                    let t = graph::initializer(g, other).map(|t| t.dims.clone()).unwrap_or_default();
                    if t.iter().product::<i64>() > 1 {
                        match per_channel(other) {
                            Some(axis) => plan.slices.push((other.clone(), axis)),
                            None => return Err(format!("{who} has a constant that is not per-channel")),
                        }
                    }
                    frontier.push(n.output[0].clone());
                }
                "Conv" if n.input[0] == t => {
                    let group = graph::attr_int(n, "group").unwrap_or(1);
                    if group == 1 {
                        plan.slices.push((n.input[1].clone(), 1));
                    } else if group as usize == channels {
                        plan.slices.push((n.input[1].clone(), 0));
                        if n.input.len() > 2 && !n.input[2].is_empty() {
                            plan.slices.push((n.input[2].clone(), 0));
                        }
                        plan.groups.push(c);
                        frontier.push(n.output[0].clone());
                    } else {
                        return Err(format!("{who} is a grouped convolution ({group} groups)"));
                    }
                }
                "MatMul" if n.input[0] == t && is_const(1) => {
                    let rows = graph::initializer(g, &n.input[1]).map(|t| t.dims.clone()).unwrap_or_default();
                    if rows.len() != 2 || rows[0] as usize != channels {
                        return Err(format!("{who} does not read the channels as its rows"));
                    }
                    plan.slices.push((n.input[1].clone(), 0));
                }
                _ => return Err(format!("its channels reach {who}, which cannot be pruned through yet")),
            }
        }
    }
    Ok(())
}

fn channel_norms(g: &pb::GraphProto, weight: &str, axis: usize) -> Result<Vec<f32>, CompressError> {
    let t = graph::initializer(g, weight)
        .ok_or_else(|| CompressError::Tensor { name: weight.into(), message: "missing".into() })?;
    let (dims, w) = graph::f32_values(t)?;
    let inner: usize = dims[axis + 1..].iter().product();
    let mut norms = vec![0f32; dims[axis]];
    for (i, v) in w.iter().enumerate() {
        norms[(i / inner) % dims[axis]] += v.abs();
    }
    Ok(norms)
}

/// The model with each plan pruned at its ratio (0: untouched).
fn apply(model: &OnnxModel, plans: &[Plan], ratios: &[f32]) -> Result<OnnxModel, CompressError> {
    let mut out = model.clone();
    let g = graph::graph_mut(&mut out.proto)?;
    let mut done: HashSet<(String, usize)> = HashSet::new();
    for (plan, &ratio) in plans.iter().zip(ratios) {
        if ratio == 0.0 {
            continue;
        }
        let keep = kept(plan, ratio);
        for (name, axis) in &plan.slices {
            if !done.insert((name.clone(), *axis)) {
                continue;
            }
            let t = g
                .initializer
                .iter_mut()
                .find(|t| &t.name == name)
                .ok_or_else(|| CompressError::Tensor { name: name.clone(), message: "missing".into() })?;
            let (dims, values) = graph::f32_values(t)?;
            let (new_dims, new_values) = slice_axis(&dims, &values, *axis, &keep);
            *t = graph::f32_tensor(name, &new_dims, &new_values);
        }
        for &n in &plan.groups {
            if let Some(a) = g.node[n].attribute.iter_mut().find(|a| a.name == "group") {
                a.i = keep.len() as i64;
            }
        }
    }
    g.value_info.clear();
    Ok(out)
}

/// Keeps only the indices `keep` along `axis`.
pub fn slice_axis(dims: &[usize], values: &[f32], axis: usize, keep: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * keep.len() * inner);
    for o in 0..outer {
        for &k in keep {
            let start = (o * dims[axis] + k) * inner;
            out.extend_from_slice(&values[start..start + inner]);
        }
    }
    let mut new_dims = dims.to_vec();
    new_dims[axis] = keep.len();
    (new_dims, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slicing_keeps_the_chosen_indices_on_any_axis() {
        let v: Vec<f32> = (0..12).map(|x| x as f32).collect();
        assert_eq!(slice_axis(&[3, 4], &v, 0, &[0, 2]), (vec![2, 4], vec![0., 1., 2., 3., 8., 9., 10., 11.]));
        assert_eq!(slice_axis(&[3, 4], &v, 1, &[1, 3]), (vec![3, 2], vec![1., 3., 5., 7., 9., 11.]));
    }

    #[test]
    fn the_largest_norms_are_kept_in_order() {
        let p = Plan {
            name: "c".into(),
            output: "y".into(),
            op: "Conv".into(),
            channels: 4,
            slices: vec![],
            groups: vec![],
            norms: vec![0.1, 3.0, 2.0, 0.5],
        };
        assert_eq!(kept(&p, 0.5), vec![1, 2]);
        assert_eq!(kept(&p, 0.75), vec![1]);
    }
}
