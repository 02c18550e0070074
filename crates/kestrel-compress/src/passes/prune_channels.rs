//! Structured channel pruning: removes whole channels from Conv and MatMul outputs and the
//! matching input channels of every consumer, so the output model really has fewer parameters
//! and MACs.
//!
//! Channels live in *channel spaces*. A Conv (groups = 1) or MatMul output starts one; ops that
//! keep channels (Relu, Clip, pooling, BatchNormalization, per-channel constant Add/Mul) and
//! depthwise convolutions stay in it; an Add of two activations joins its inputs' spaces into
//! one (residual streams). A channel Pad or a Concat along the channels embeds its inputs'
//! spaces into a larger one at an offset. A family of spaces joined this way is pruned as one
//! unit: channels are chosen in its largest space and every member keeps its share, so every
//! producer's filters, consumer's input channels, depthwise group, BatchNorm parameter and Pad
//! amount stay consistent. A family whose channels reach anything else (a Reshape, a Transpose,
//! a Softmax, a model input or output) is skipped, with the reason.
//!
//! Which channels: the smallest L1 norms of the producers' filters. How many per family: a
//! sensitivity scan prunes each family alone at 1/4, 1/2 and 3/4 and measures the model-output
//! SQNR against the full model on the calibration data; a greedy allocation then takes the
//! cheapest steps until the global ratio of channels is removed.

use std::collections::{BTreeMap, HashMap, HashSet};

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

/// One pruned unit: a family of channel spaces.
#[derive(Debug, Clone, Serialize)]
pub struct PrunedLayer {
    /// The layers producing the family's channels.
    pub producers: Vec<String>,
    pub channels_before: usize,
    pub channels_after: usize,
    /// Model-output SQNR (dB) with only this family pruned at 1/4, 1/2, 3/4 of its channels.
    pub sensitivity_db: Vec<(f32, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SkippedLayer {
    pub node: String,
    pub reason: String,
}

/// The original indices of the channels a producer's output keeps.
#[derive(Debug, Clone, Serialize)]
pub struct KeptChannels {
    pub tensor: String,
    pub kept: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub ratio: f32,
    pub layers: Vec<PrunedLayer>,
    pub skipped: Vec<SkippedLayer>,
    pub kept_channels: Vec<KeptChannels>,
    pub parameters_before: u64,
    pub parameters_after: u64,
    pub output_sqnr_db: f64,
}

/// Channel spaces of one graph and everything that depends on their kept channels.
#[derive(Debug, Default, Clone)]
struct Spaces {
    parent: Vec<usize>,
    size: Vec<usize>,
    /// (child, parent, offset): the child's channel i is the parent's channel offset + i.
    embeds: Vec<(usize, usize, usize)>,
    /// Initializers sliced along an axis by a space's kept channels.
    slices: Vec<(usize, String, usize)>,
    /// Weights whose L1 norms along an axis score a space's channels.
    norms: Vec<(usize, String, usize)>,
    /// Depthwise Conv nodes whose `group` is a space's kept count.
    groups: Vec<(usize, usize)>,
    /// Channel Pad nodes: (node, child space, parent space).
    pads: Vec<(usize, usize, usize)>,
    /// Producer outputs: (tensor, space, producing node name).
    outputs: Vec<(String, usize, String)>,
    blocked: Vec<(usize, String)>,
}

impl Spaces {
    fn new_space(&mut self, size: usize) -> usize {
        self.parent.push(self.parent.len());
        self.size.push(size);
        self.parent.len() - 1
    }

    fn find(&self, mut s: usize) -> usize {
        while self.parent[s] != s {
            s = self.parent[s];
        }
        s
    }

    fn union(&mut self, a: usize, b: usize) -> Result<usize, String> {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            if self.size[ra] != self.size[rb] {
                return Err(format!("joins spaces of {} and {} channels", self.size[ra], self.size[rb]));
            }
            self.parent[rb] = ra;
        }
        Ok(ra)
    }
}

/// A prunable family: a root space and its members with their offsets in the root.
#[derive(Debug, Clone)]
struct Family {
    root: usize,
    /// (member space root, offset in the family root).
    members: Vec<(usize, usize)>,
    producers: Vec<String>,
    channels: usize,
    /// L1 norm per root channel.
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
    let spaces = spaces(g);
    let (families, skipped) = families(g, &spaces)?;
    if families.is_empty() {
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
        let (pruned, _) = apply(model, &spaces, &families, levels)?;
        let got = calibrate::reference_outputs(&pruned, samples)?;
        Ok(reference.iter().zip(&got).map(|(r, t)| calibrate::sqnr_db(r, t)).fold(f64::INFINITY, f64::min))
    };
    let mut sensitivity = Vec::new();
    for i in 0..families.len() {
        let mut row = Vec::new();
        for step in STEPS {
            let mut levels = vec![0.0; families.len()];
            levels[i] = step;
            row.push((step, score(&levels)?));
        }
        sensitivity.push(row);
    }
    // Greedy: remove channels in the steps that hurt the output least until the target is met.
    let total: usize = families.iter().map(|f| f.channels).sum();
    let target = (ratio * total as f32).round() as usize;
    let mut levels = vec![0usize; families.len()]; // index into [0] ++ STEPS
    let removed = |levels: &[usize]| -> usize {
        families
            .iter()
            .zip(levels)
            .map(|(f, &l)| if l == 0 { 0 } else { f.channels - kept_count(f.channels, STEPS[l - 1]) })
            .sum()
    };
    while removed(&levels) < target {
        let next = (0..families.len())
            .filter(|&i| levels[i] < STEPS.len())
            .max_by(|&a, &b| sensitivity[a][levels[a]].1.total_cmp(&sensitivity[b][levels[b]].1));
        let Some(i) = next else { break };
        levels[i] += 1;
    }
    let chosen: Vec<f32> = levels.iter().map(|&l| if l == 0 { 0.0 } else { STEPS[l - 1] }).collect();
    let (pruned, kept_by_space) = apply(model, &spaces, &families, &chosen)?;
    let output_sqnr_db = score(&chosen)?;
    let params = |m: &OnnxModel| kestrel_onnx::summarize(&m.proto).parameters;
    let kept_channels = spaces
        .outputs
        .iter()
        .filter_map(|(t, s, _)| {
            kept_by_space.get(&spaces.find(*s)).map(|k| KeptChannels { tensor: t.clone(), kept: k.clone() })
        })
        .collect();
    let report = PruneReport {
        ratio,
        layers: families
            .iter()
            .zip(&chosen)
            .zip(sensitivity)
            .map(|((f, &r), sens)| PrunedLayer {
                producers: f.producers.clone(),
                channels_before: f.channels,
                channels_after: kept_by_space.get(&f.root).map_or(f.channels, Vec::len),
                sensitivity_db: if r.is_nan() { vec![] } else { sens },
            })
            .collect(),
        skipped,
        kept_channels,
        parameters_before: params(model),
        parameters_after: params(&pruned),
        output_sqnr_db,
    };
    Ok((pruned, report))
}

fn kept_count(channels: usize, ratio: f32) -> usize {
    ((channels as f32 * (1.0 - ratio)).round() as usize).clamp(1, channels)
}

/// Walks the graph once, building channel spaces and what depends on them.
fn spaces(g: &pb::GraphProto) -> Spaces {
    let mut sp = Spaces::default();
    let mut of: HashMap<String, usize> = HashMap::new();
    let init = |name: &str| graph::initializer(g, name);
    let const_f32 = |name: &str| init(name).filter(|t| t.data_type == graph::FLOAT);
    for i in &g.input {
        if init(&i.name).is_some() {
            continue;
        }
        let s = sp.new_space(0);
        sp.blocked.push((s, format!("its channels come from the model input `{}`", i.name)));
        of.insert(i.name.clone(), s);
    }
    for (ix, n) in g.node.iter().enumerate() {
        let who =
            format!("{} `{}`", n.op_type, if n.name.is_empty() { n.output.first().map_or("", |o| o) } else { &n.name });
        let input_space = n.input.first().and_then(|i| of.get(i)).copied();
        let out = n.output.first().cloned().unwrap_or_default();
        let block_inputs = |sp: &mut Spaces, why: String| {
            for i in &n.input {
                if let Some(&s) = of.get(i) {
                    sp.blocked.push((s, why.clone()));
                }
            }
        };
        let group = graph::attr_int(n, "group").unwrap_or(1);
        match n.op_type.as_str() {
            "Conv" if n.input.len() >= 2 && const_f32(&n.input[1]).is_some_and(|t| t.dims.len() == 4) => {
                let dims = &const_f32(&n.input[1]).map(|t| t.dims.clone()).unwrap_or_default();
                let bias = n.input.get(2).filter(|b| !b.is_empty()).cloned();
                if group == 1 {
                    if let Some(s) = input_space {
                        sp.slices.push((s, n.input[1].clone(), 1));
                    }
                    let s = sp.new_space(dims[0] as usize);
                    sp.slices.push((s, n.input[1].clone(), 0));
                    sp.norms.push((s, n.input[1].clone(), 0));
                    if let Some(b) = bias {
                        sp.slices.push((s, b, 0));
                    }
                    sp.outputs.push((out.clone(), s, who.clone()));
                    of.insert(out, s);
                } else if let Some(s) = input_space.filter(|_| dims[1] == 1 && group == dims[0]) {
                    if sp.size[sp.find(s)] != 0 && sp.size[sp.find(s)] != dims[0] as usize {
                        sp.blocked.push((s, format!("{who} does not match its channel count")));
                    }
                    sp.slices.push((s, n.input[1].clone(), 0));
                    if let Some(b) = bias {
                        sp.slices.push((s, b, 0));
                    }
                    sp.groups.push((s, ix));
                    sp.outputs.push((out.clone(), s, who.clone()));
                    of.insert(out, s);
                } else {
                    block_inputs(&mut sp, format!("its channels reach {who}, a grouped convolution"));
                }
            }
            "MatMul" if n.input.len() == 2 && const_f32(&n.input[1]).is_some_and(|t| t.dims.len() == 2) => {
                let dims = const_f32(&n.input[1]).map(|t| t.dims.clone()).unwrap_or_default();
                if let Some(s) = input_space {
                    sp.slices.push((s, n.input[1].clone(), 0));
                }
                let s = sp.new_space(dims[1] as usize);
                sp.slices.push((s, n.input[1].clone(), 1));
                sp.norms.push((s, n.input[1].clone(), 1));
                sp.outputs.push((out.clone(), s, who.clone()));
                of.insert(out, s);
            }
            op if CHANNEL_WISE.contains(&op) => {
                let Some(s) = input_space else { continue };
                if n.input.iter().skip(1).any(|i| !i.is_empty() && init(i).is_none()) {
                    block_inputs(&mut sp, format!("{who} has non-constant parameters"));
                    continue;
                }
                of.insert(out, s);
            }
            "BatchNormalization" => {
                let Some(s) = input_space else { continue };
                for p in &n.input[1..] {
                    sp.slices.push((s, p.clone(), 0));
                }
                of.insert(out, s);
            }
            "Add" | "Mul" | "Sub" | "Div" if n.input.len() == 2 => {
                let spaces_in: Vec<usize> = n.input.iter().filter_map(|i| of.get(i).copied()).collect();
                let consts: Vec<&String> = n.input.iter().filter(|i| init(i).is_some()).collect();
                match (spaces_in.as_slice(), consts.as_slice()) {
                    ([s], [c]) => {
                        let dims = init(c).map(|t| t.dims.clone()).unwrap_or_default();
                        let big: Vec<usize> =
                            dims.iter().enumerate().filter(|(_, &d)| d != 1).map(|(i, _)| i).collect();
                        match big.as_slice() {
                            [] => {}
                            [a] if dims.len() == 1 || dims.len() >= 3 => sp.slices.push((*s, (*c).clone(), *a)),
                            _ => {
                                sp.blocked.push((*s, format!("{who} has a constant that is not per-channel")));
                            }
                        }
                        of.insert(out, *s);
                    }
                    ([a, b], []) => match sp.union(*a, *b) {
                        Ok(s) => {
                            of.insert(out, s);
                        }
                        Err(e) => block_inputs(&mut sp, format!("{who} {e}")),
                    },
                    _ => block_inputs(&mut sp, format!("its channels reach {who}")),
                }
            }
            "Pad" => {
                let Some(s) = input_space else { continue };
                let pads = n.input.get(1).and_then(|p| init(p)).and_then(|t| kestrel_onnx::tensor_raw_le(t).ok());
                let mode_ok = n.attribute.iter().all(|a| a.name != "mode" || a.s == b"constant");
                let value_ok = n.input.get(2).is_none_or(|v| v.is_empty());
                let p: Option<Vec<i64>> = pads.filter(|r| r.elem.code == 7).map(|r| {
                    r.bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
                });
                match p {
                    Some(p) if p.len() == 8 && mode_ok && value_ok => {
                        if p[1] == 0 && p[5] == 0 {
                            of.insert(out, s); // spatial padding only
                        } else if p[1] == 0 && p[5] > 0 && p[0] == 0 && p[4] == 0 {
                            let child = sp.find(s);
                            let parent = sp.new_space(sp.size[child] + p[5] as usize);
                            sp.embeds.push((child, parent, 0));
                            sp.pads.push((ix, child, parent));
                            of.insert(out, parent);
                        } else {
                            block_inputs(&mut sp, format!("its channels reach {who}, which pads in front of them"));
                        }
                    }
                    _ => block_inputs(&mut sp, format!("its channels reach {who}, a non-constant or non-zero Pad")),
                }
            }
            "Concat" if graph::attr_int(n, "axis") == Some(1) && n.input.iter().all(|i| of.contains_key(i)) => {
                let members: Vec<usize> = n.input.iter().map(|i| sp.find(of[i])).collect();
                let total = members.iter().map(|&m| sp.size[m]).sum();
                let parent = sp.new_space(total);
                let mut offset = 0;
                for m in members {
                    sp.embeds.push((m, parent, offset));
                    offset += sp.size[m];
                }
                of.insert(out, parent);
            }
            _ => block_inputs(&mut sp, format!("its channels reach {who}, which cannot be pruned through yet")),
        }
    }
    for o in &g.output {
        if let Some(&s) = of.get(&o.name) {
            sp.blocked.push((s, format!("its channels reach the model output `{}`", o.name)));
        }
    }
    sp
}

/// Groups spaces into families (a root and everything embedded in it) and keeps the prunable ones.
fn families(g: &pb::GraphProto, sp: &Spaces) -> Result<(Vec<Family>, Vec<SkippedLayer>), CompressError> {
    let roots: Vec<usize> = (0..sp.parent.len()).map(|s| sp.find(s)).collect();
    let mut parent_of: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut multi: HashSet<usize> = HashSet::new();
    for &(c, p, o) in &sp.embeds {
        let (c, p) = (roots[c], roots[p]);
        if let Some(&(q, oo)) = parent_of.get(&c) {
            if (q, oo) != (p, o) {
                multi.insert(c);
            }
        }
        parent_of.insert(c, (p, o));
    }
    // The family root of each space and its offset in it.
    let top = |mut s: usize| -> (usize, usize) {
        let mut offset = 0;
        let mut hops = 0;
        while let Some(&(p, o)) = parent_of.get(&s) {
            offset += o;
            s = p;
            hops += 1;
            if hops > parent_of.len() {
                break;
            }
        }
        (s, offset)
    };
    let mut by_family: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for &r in &roots {
        if seen.insert(r) {
            let (f, o) = top(r);
            by_family.entry(f).or_default().push((r, o));
        }
    }
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (root, members) in by_family {
        let member_set: HashSet<usize> = members.iter().map(|m| m.0).collect();
        let producers: Vec<String> =
            sp.outputs.iter().filter(|(_, s, _)| member_set.contains(&roots[*s])).map(|(_, _, w)| w.clone()).collect();
        let has_norms = sp.norms.iter().any(|(s, _, _)| member_set.contains(&roots[*s]));
        if !has_norms {
            continue; // no layer makes these channels (a model input's space)
        }
        let name = producers.first().cloned().unwrap_or_default();
        let reason = sp
            .blocked
            .iter()
            .find(|(s, _)| member_set.contains(&roots[*s]))
            .map(|(_, r)| r.clone())
            .or_else(|| {
                members.iter().any(|m| multi.contains(&m.0)).then(|| "its channels are embedded in two places".into())
            })
            .or_else(|| (sp.size[root] < 2).then(|| "a single channel".into()));
        if let Some(reason) = reason {
            skipped.push(SkippedLayer { node: name, reason });
            continue;
        }
        // Mean L1 norm over the producers that write each root channel: in a residual family
        // the first channels are written by many more layers than the last ones.
        let mut norms = vec![0f32; sp.size[root]];
        let mut writers = vec![0u32; sp.size[root]];
        for (s, w, axis) in &sp.norms {
            if let Some(&(_, o)) = members.iter().find(|m| m.0 == roots[*s]) {
                let t = graph::initializer(g, w)
                    .ok_or_else(|| CompressError::Tensor { name: w.clone(), message: "missing".into() })?;
                let (dims, v) = graph::f32_values(t)?;
                let inner: usize = dims[axis + 1..].iter().product();
                for (i, x) in v.iter().enumerate() {
                    norms[o + (i / inner) % dims[*axis]] += x.abs();
                }
                for c in 0..dims[*axis] {
                    writers[o + c] += 1;
                }
            }
        }
        for (n, &w) in norms.iter_mut().zip(&writers) {
            *n /= w.max(1) as f32;
        }
        out.push(Family { root, members, producers, channels: sp.size[root], norms });
    }
    Ok((out, skipped))
}

/// The root channels a family keeps at `ratio`: the largest norms, with at least one channel
/// in every member, in their original order.
fn kept_root(f: &Family, sp: &Spaces, ratio: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..f.channels).collect();
    order.sort_by(|&a, &b| f.norms[b].total_cmp(&f.norms[a]).then(a.cmp(&b)));
    let mut keep: Vec<usize> = order.iter().copied().take(kept_count(f.channels, ratio)).collect();
    for &(m, o) in &f.members {
        let range = o..o + sp.size[m];
        if sp.size[m] > 0 && !keep.iter().any(|k| range.contains(k)) {
            if let Some(&best) = order.iter().find(|c| range.contains(c)) {
                keep.push(best);
            }
        }
    }
    keep.sort_unstable();
    keep
}

/// The model with each family pruned at its ratio (0: untouched), and the kept channels of
/// every pruned space (by space root).
fn apply(
    model: &OnnxModel,
    sp: &Spaces,
    families: &[Family],
    ratios: &[f32],
) -> Result<(OnnxModel, HashMap<usize, Vec<usize>>), CompressError> {
    let mut kept: HashMap<usize, Vec<usize>> = HashMap::new();
    for (f, &r) in families.iter().zip(ratios) {
        if r == 0.0 {
            continue;
        }
        let root_keep = kept_root(f, sp, r);
        for &(m, o) in &f.members {
            let k = root_keep.iter().filter(|&&c| c >= o && c < o + sp.size[m]).map(|&c| c - o).collect();
            kept.insert(m, k);
        }
    }
    let mut out = model.clone();
    let g = graph::graph_mut(&mut out.proto)?;
    let mut done: HashSet<(String, usize)> = HashSet::new();
    for (s, name, axis) in &sp.slices {
        let Some(keep) = kept.get(&sp.find(*s)) else { continue };
        if !done.insert((name.clone(), *axis)) {
            continue;
        }
        let t = g
            .initializer
            .iter_mut()
            .find(|t| &t.name == name)
            .ok_or_else(|| CompressError::Tensor { name: name.clone(), message: "missing".into() })?;
        let (dims, values) = graph::f32_values(t)?;
        let (new_dims, new_values) = slice_axis(&dims, &values, *axis, keep);
        *t = graph::f32_tensor(name, &new_dims, &new_values);
    }
    for &(s, n) in &sp.groups {
        if let Some(keep) = kept.get(&sp.find(s)) {
            if let Some(a) = g.node[n].attribute.iter_mut().find(|a| a.name == "group") {
                a.i = keep.len() as i64;
            }
        }
    }
    for &(n, child, parent) in &sp.pads {
        let Some(keep) = kept.get(&sp.find(parent)) else { continue };
        let size = sp.size[sp.find(child)];
        let padded = keep.iter().filter(|&&c| c >= size).count() as i64;
        let name = format!("{}_pruned_pads", if g.node[n].name.is_empty() { "pad" } else { &g.node[n].name });
        let pads = [0i64, 0, 0, 0, 0, padded, 0, 0];
        g.initializer.retain(|t| t.name != name);
        g.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![8],
            data_type: 7,
            raw_data: pads.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        g.node[n].input[1] = name;
    }
    // Pads whose original amounts are no longer read.
    let used: HashSet<String> = g.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    g.initializer.retain(|t| used.contains(&t.name) || g.output.iter().any(|o| o.name == t.name));
    g.value_info.clear();
    Ok((out, kept))
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
}
