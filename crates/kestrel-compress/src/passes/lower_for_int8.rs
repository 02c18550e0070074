//! Rewrites two ops that have an int8 equivalent under another name, before quantization, so that
//! TensorFlow/TFLite exports quantize like PyTorch ones:
//!
//! - `Gemm(A, B, C)` with constant B and C, `transA = 0`, `alpha = beta = 1` → `MatMul(A, B')`
//!   then `Add(C)` (B' = Bᵀ when `transB`): the MatMul is quantized, the Add is the bias the
//!   integer runtime adds after it.
//! - `ReduceMean` over H and W of a 4-D tensor → `GlobalAveragePool` (then `Flatten` when
//!   `keepdims = 0`), which has an integer kernel.
//! - A constant per-channel `Mul`, then `Add`, then `BatchNormalization` after a `Conv` or
//!   `ConvTranspose` (Paddle exports keep bias, normalization and PP-LCNet's learnable affine
//!   blocks apart) → folded into the convolution's weights and bias.
//! - `ConvTranspose` of stride s (one group, no dilation) → a `Conv` to s·s·M channels, one
//!   group of M per output phase (its kernel the taps of the transposed kernel that write that
//!   phase, flipped), then `DepthToSpace` (blocksize s) and, where padding cuts the border, a
//!   `Slice`: a Conv quantizes, and the rearrangement and the crop move bytes. Kernel = stride
//!   (the k× upsampling of DB text detectors) gives a 1×1 Conv and no crop.
//! - `Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)` (HardSwish spelled out) → `HardSwish(x)`, one
//!   function the integer runtime runs as a table.
//!
//! All are rewrites of the same function in float (up to rounding).

use std::collections::{HashMap, HashSet};

use kestrel_onnx::pb;

use crate::graph::{self, Names};
use crate::CompressError;

/// Rewrites `g` in place; `shapes` gives each tensor's concrete shape (for the ranks).
/// Returns whether the graph now needs opset 14 (it holds a HardSwish).
pub fn lower_for_int8(g: &mut pb::GraphProto, shapes: &HashMap<String, Vec<usize>>) -> Result<bool, CompressError> {
    fold_affine(g, "Mul")?;
    fold_affine(g, "Add")?;
    fold_batch_norms(g)?;
    let hard_swish = fuse_hard_swish(g);
    let mut names = Names::new(g);
    let mut nodes = Vec::with_capacity(g.node.len());
    let mut inits = Vec::new();
    for n in std::mem::take(&mut g.node) {
        match n.op_type.as_str() {
            "Gemm" => match gemm_weights(g, &n)? {
                Some((b, c)) => {
                    let mm = names.fresh(&format!("{}_matmul", n.output[0]));
                    let (b_name, c_name) = (names.fresh(&format!("{mm}_b")), names.fresh(&format!("{mm}_c")));
                    inits.push(graph::f32_tensor(&b_name, &b.0, &b.1));
                    inits.push(graph::f32_tensor(&c_name, &c.0, &c.1));
                    nodes.push(graph::node("MatMul", &format!("{}_matmul", n.name), &[&n.input[0], &b_name], &[&mm]));
                    nodes.push(graph::node("Add", &format!("{}_bias", n.name), &[&mm, &c_name], &[&n.output[0]]));
                }
                None => nodes.push(n),
            },
            "ConvTranspose" => match transposed_as_conv(g, &n)? {
                Some(t) => t.rewrite(&n, &mut names, &mut nodes, &mut inits),
                None => nodes.push(n),
            },
            "ReduceMean" if spatial_mean(g, &n, shapes) => {
                let keep = graph::attr_int(&n, "keepdims").unwrap_or(1) != 0;
                if keep {
                    nodes.push(graph::node("GlobalAveragePool", &n.name, &[&n.input[0]], &[&n.output[0]]));
                } else {
                    let pooled = names.fresh(&format!("{}_pooled", n.output[0]));
                    nodes.push(graph::node("GlobalAveragePool", &n.name, &[&n.input[0]], &[&pooled]));
                    let mut flatten =
                        graph::node("Flatten", &format!("{}_flatten", n.name), &[&pooled], &[&n.output[0]]);
                    flatten.attribute.push(graph::int_attr("axis", 1));
                    nodes.push(flatten);
                }
            }
            _ => nodes.push(n),
        }
    }
    g.node = nodes;
    g.initializer.extend(inits);
    Ok(hard_swish)
}

/// A Conv's or one-group ConvTranspose's constant weights and bias, which what follows it can be
/// folded into.
struct FoldTarget {
    dims: Vec<usize>,
    w: Vec<f32>,
    bias: Vec<f32>,
    /// Output channels: a Conv's weights are [M, C/g, kh, kw], a ConvTranspose's [C, M, kh, kw].
    m: usize,
    transposed: bool,
}

impl FoldTarget {
    /// Node `ci` as a fold target, when it is one and (`private`) its output has one reader.
    fn of(g: &pb::GraphProto, ci: usize, private: bool) -> Result<Option<FoldTarget>, CompressError> {
        let conv = &g.node[ci];
        let transposed = conv.op_type == "ConvTranspose" && graph::attr_int(conv, "group").unwrap_or(1) == 1;
        let weights = conv.input.get(1).and_then(|w| graph::initializer(g, w)).filter(|w| w.data_type == graph::FLOAT);
        let Some((dims, w)) =
            weights.filter(|_| private && (conv.op_type == "Conv" || transposed)).map(graph::f32_values).transpose()?
        else {
            return Ok(None);
        };
        let [a, b, _, _] = dims[..] else { return Ok(None) };
        let m = if transposed { b } else { a };
        let Some(bias) = conv_bias(g, conv, m)? else { return Ok(None) };
        Ok(Some(FoldTarget { dims, w, bias, m, transposed }))
    }

    /// The weights, each multiplied by `k` of its output channel.
    fn scaled(&self, k: impl Fn(usize) -> f32) -> Vec<f32> {
        let (taps, per) = (self.dims[2] * self.dims[3], self.w.len() / self.m);
        let channel = |i: usize| if self.transposed { i / taps % self.m } else { i / per };
        self.w.iter().enumerate().map(|(i, &v)| v * k(channel(i))).collect()
    }
}

/// A fold: convolution `conv` takes `weights` (when they change) and `bias`, and writes what node
/// `absorbed` wrote; `absorbed` goes.
struct Fold {
    conv: usize,
    absorbed: usize,
    weights: Option<(Vec<usize>, Vec<f32>)>,
    bias: Vec<f32>,
}

fn apply(g: &mut pb::GraphProto, folds: Vec<Fold>) {
    let mut names = Names::new(g);
    let mut drop = HashSet::new();
    for f in folds {
        let conv_name = g.node[f.conv].name.clone();
        let out = g.node[f.absorbed].output[0].clone();
        let weights = f.weights.map(|(dims, w)| {
            let name = names.fresh(&format!("{conv_name}_folded_w"));
            g.initializer.push(graph::f32_tensor(&name, &dims, &w));
            name
        });
        let bias = names.fresh(&format!("{conv_name}_folded_b"));
        g.initializer.push(graph::f32_tensor(&bias, &[f.bias.len()], &f.bias));
        let conv = &mut g.node[f.conv];
        conv.input.resize(3, String::new());
        if let Some(weights) = weights {
            conv.input[1] = weights;
        }
        conv.input[2] = bias;
        conv.output[0] = out;
        drop.insert(f.absorbed);
    }
    let mut ix = 0;
    g.node.retain(|_| {
        ix += 1;
        !drop.contains(&(ix - 1))
    });
}

/// A convolution's bias (input 2) of `m` values, zeros when it has none; None when it is not a
/// constant of `m` values.
fn conv_bias(g: &pb::GraphProto, n: &pb::NodeProto, m: usize) -> Result<Option<Vec<f32>>, CompressError> {
    Ok(match n.input.get(2).filter(|b| !b.is_empty()) {
        None => Some(vec![0.0; m]),
        Some(b) => {
            graph::initializer(g, b).map(graph::f32_values).transpose()?.map(|(_, b)| b).filter(|b| b.len() == m)
        }
    })
}

/// Whether tensor `t` is read by one node and is no graph output.
fn private(g: &pb::GraphProto, consumers: &HashMap<String, Vec<usize>>, t: &str) -> bool {
    consumers.get(t).is_some_and(|r| r.len() == 1) && !g.output.iter().any(|o| o.name == t)
}

/// Folds each `op` (Mul or Add) of a constant with one value per channel (shape [1, M, 1, 1],
/// [M, 1, 1], or one value) and a Conv's or ConvTranspose's output read by nothing else into
/// that convolution: a product scales its weights and bias, a sum adds to its bias.
fn fold_affine(g: &mut pb::GraphProto, op: &str) -> Result<(), CompressError> {
    let consumers = graph::consumers(g);
    let producers = graph::producers(g);
    let mut folds = Vec::new();
    for (ai, node) in g.node.iter().enumerate().filter(|(_, n)| n.op_type == op && n.input.len() == 2) {
        for (x, c) in [(0, 1), (1, 0)] {
            let Some(&ci) = producers.get(&node.input[x]) else { continue };
            let Some(t) = FoldTarget::of(g, ci, private(g, &consumers, &node.input[x]))? else { continue };
            let Some(k) = graph::initializer(g, &node.input[c]).filter(|k| k.data_type == graph::FLOAT) else {
                continue;
            };
            let (dims, values) = graph::f32_values(k)?;
            let per_channel =
                matches!(dims[..], [1, n, 1, 1] | [n, 1, 1] if n == t.m) || (values.len() == 1 && dims.len() <= 4);
            if !per_channel || node.output.len() != 1 {
                continue;
            }
            let k = |i: usize| values[if values.len() == 1 { 0 } else { i }];
            let fold = if op == "Mul" {
                let bias = (0..t.m).map(|i| t.bias[i] * k(i)).collect();
                Fold { conv: ci, absorbed: ai, weights: Some((t.dims.clone(), t.scaled(k))), bias }
            } else {
                Fold { conv: ci, absorbed: ai, weights: None, bias: (0..t.m).map(|i| t.bias[i] + k(i)).collect() }
            };
            folds.push(fold);
            break;
        }
    }
    apply(g, folds);
    Ok(())
}

/// Folds each BatchNormalization whose input is a Conv's (or a one-group ConvTranspose's) output
/// read by nothing else, with constant weights and statistics, into that convolution.
fn fold_batch_norms(g: &mut pb::GraphProto) -> Result<(), CompressError> {
    let consumers = graph::consumers(g);
    let producers = graph::producers(g);
    let mut folds = Vec::new();
    for (bi, bn) in g.node.iter().enumerate().filter(|(_, n)| n.op_type == "BatchNormalization") {
        let Some(&ci) = bn.input.first().and_then(|x| producers.get(x)) else { continue };
        let consts: Option<Vec<Vec<f32>>> = bn.input[1..]
            .iter()
            .map(|i| graph::initializer(g, i).and_then(|t| graph::f32_values(t).ok()).map(|v| v.1))
            .collect();
        let Some(t) = FoldTarget::of(g, ci, private(g, &consumers, &bn.input[0]))? else { continue };
        let Some(consts) = consts.filter(|c| c.len() == 4 && c.iter().all(|c| c.len() == t.m)) else { continue };
        if bn.output.len() != 1 {
            continue;
        }
        let eps = bn.attribute.iter().find(|a| a.name == "epsilon").map_or(1e-5, |a| a.f);
        let [gamma, beta, mean, var] = [&consts[0], &consts[1], &consts[2], &consts[3]];
        let k: Vec<f32> = (0..t.m).map(|c| gamma[c] / (var[c] + eps).sqrt()).collect();
        let bias = (0..t.m).map(|c| (t.bias[c] - mean[c]) * k[c] + beta[c]).collect();
        folds.push(Fold { conv: ci, absorbed: bi, weights: Some((t.dims.clone(), t.scaled(|c| k[c]))), bias });
    }
    apply(g, folds);
    Ok(())
}

/// Replaces `Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)` (intermediates read by nothing else) with
/// `HardSwish(x)`; returns whether it did.
fn fuse_hard_swish(g: &mut pb::GraphProto) -> bool {
    let producers = graph::producers(g);
    let consumers = graph::consumers(g);
    let scalar = |name: &str| graph::scalar(g, name);
    let node_of = |t: &str, op: &str| producers.get(t).copied().filter(|&p| g.node[p].op_type == op);
    let mut found = Vec::new();
    for (di, div) in g.node.iter().enumerate().filter(|(_, n)| n.op_type == "Div" && n.input.len() == 2) {
        let Some(mi) = node_of(&div.input[0], "Mul").filter(|_| scalar(&div.input[1]) == Some(6.0)) else { continue };
        let mul = &g.node[mi];
        for (x, c) in [(0, 1), (1, 0)] {
            let Some(ci) = node_of(&mul.input[c], "Clip") else { continue };
            let clip = &g.node[ci];
            let bounds =
                clip.input.len() == 3 && scalar(&clip.input[1]) == Some(0.0) && scalar(&clip.input[2]) == Some(6.0);
            let Some(ai) = node_of(&clip.input[0], "Add") else { continue };
            let add = &g.node[ai];
            let plus3 = add.input.len() == 2
                && ((add.input[0] == mul.input[x] && scalar(&add.input[1]) == Some(3.0))
                    || (add.input[1] == mul.input[x] && scalar(&add.input[0]) == Some(3.0)));
            if bounds
                && plus3
                && [&mul.output[0], &clip.output[0], &add.output[0]].iter().all(|t| private(g, &consumers, t))
            {
                found.push((di, [mi, ci, ai], mul.input[x].clone()));
                break;
            }
        }
    }
    let mut drop = Vec::new();
    for (di, absorbed, x) in found {
        let div = &mut g.node[di];
        div.op_type = "HardSwish".into();
        div.input = vec![x];
        drop.extend(absorbed);
    }
    let mut ix = 0;
    g.node.retain(|_| {
        ix += 1;
        !drop.contains(&(ix - 1))
    });
    !drop.is_empty()
}

type Values = (Vec<usize>, Vec<f32>);

/// A Gemm this pass rewrites: its weights as [K, N] and its bias as [N] (zeros when absent).
fn gemm_weights(g: &pb::GraphProto, n: &pb::NodeProto) -> Result<Option<(Values, Values)>, CompressError> {
    let attr_f = |name: &str| n.attribute.iter().find(|a| a.name == name).map_or(1.0, |a| a.f);
    let plain = graph::attr_int(n, "transA").unwrap_or(0) == 0 && attr_f("alpha") == 1.0 && attr_f("beta") == 1.0;
    let Some(b) = n.input.get(1).and_then(|b| graph::initializer(g, b)).filter(|_| plain && n.output.len() == 1) else {
        return Ok(None);
    };
    let (dims, values) = graph::f32_values(b)?;
    let [rows, cols] = dims[..] else { return Ok(None) };
    let (k, m) = if graph::attr_int(n, "transB").unwrap_or(0) != 0 { (cols, rows) } else { (rows, cols) };
    let weights = if graph::attr_int(n, "transB").unwrap_or(0) != 0 {
        (0..k).flat_map(|i| (0..m).map(move |j| (i, j))).map(|(i, j)| values[j * cols + i]).collect()
    } else {
        values
    };
    let bias = match n.input.get(2).filter(|c| !c.is_empty()) {
        None => vec![0.0; m],
        Some(c) => match graph::initializer(g, c).map(graph::f32_values).transpose()? {
            Some((cdims, c)) if c.len() == m && cdims.last() == Some(&m) => c,
            _ => return Ok(None),
        },
    };
    Ok(Some(((vec![k, m], weights), (vec![m], bias))))
}

/// A ConvTranspose as a Conv, DepthToSpace and crop (see the module doc).
struct Transposed {
    /// [s·s·M, C, KH, KW], output channels in DepthToSpace's DCR order (phase y, phase x, m).
    weights: Values,
    bias: Vec<f32>,
    stride: usize,
    /// The Conv's pads (top, left, bottom, right).
    pads: [usize; 4],
    /// Slice starts and ends on axes 2 and 3 (ends from the end, negative), where the
    /// ConvTranspose's padding cuts the full output.
    crop: Option<([i64; 2], [i64; 2])>,
}

impl Transposed {
    /// The Conv, the DepthToSpace (stride > 1) and the Slice (where cut) standing for `n`.
    fn rewrite(
        self,
        n: &pb::NodeProto,
        names: &mut Names,
        nodes: &mut Vec<pb::NodeProto>,
        inits: &mut Vec<pb::TensorProto>,
    ) {
        let out = &n.output[0];
        let depth = names.fresh(&format!("{out}_depth"));
        let (w_name, b_name) = (names.fresh(&format!("{depth}_w")), names.fresh(&format!("{depth}_b")));
        inits.push(graph::f32_tensor(&w_name, &self.weights.0, &self.weights.1));
        inits.push(graph::f32_tensor(&b_name, &[self.bias.len()], &self.bias));
        let conv_out = if self.stride == 1 && self.crop.is_none() { out.clone() } else { depth.clone() };
        let mut conv = graph::node("Conv", &format!("{}_conv", n.name), &[&n.input[0], &w_name, &b_name], &[&conv_out]);
        conv.attribute.push(graph::ints_attr("pads", &self.pads.map(|p| p as i64)));
        nodes.push(conv);
        let spread = match (self.stride, &self.crop) {
            (1, _) => depth.clone(),
            (_, None) => out.clone(),
            (_, Some(_)) => names.fresh(&format!("{out}_full")),
        };
        if self.stride > 1 {
            let mut d2s = graph::node("DepthToSpace", &n.name, &[&depth], &[&spread]);
            d2s.attribute.push(graph::int_attr("blocksize", self.stride as i64));
            nodes.push(d2s);
        }
        if let Some((starts, ends)) = self.crop {
            let bounds = [("starts", starts), ("ends", ends), ("axes", [2, 3])]
                .map(|(what, v)| (names.fresh(&format!("{spread}_{what}")), v));
            inits.extend(bounds.iter().map(|(name, v)| graph::i64_tensor(name, &[2], v)));
            let [(starts, _), (ends, _), (axes, _)] = &bounds;
            nodes.push(graph::node("Slice", &format!("{}_crop", n.name), &[&spread, starts, ends, axes], &[out]));
        }
    }
}

/// The Conv, DepthToSpace and crop that compute ConvTranspose `n` (2-D, one group, the same
/// stride on both axes, no dilation, explicit pads; constant weights [C, M, kh, kw] and bias),
/// or None for any other.
///
/// Output pixel u of the full (uncut) output gets x[q − j]·w[r + s·j] for u = q·s + r: for
/// each phase r a correlation of x with that phase's taps, reversed — one Conv over the input
/// padded by K − 1 (K = ⌈k / s⌉ taps a phase), its phases interleaved by DepthToSpace.
fn transposed_as_conv(g: &pb::GraphProto, n: &pb::NodeProto) -> Result<Option<Transposed>, CompressError> {
    let weights = n.input.get(1).and_then(|w| graph::initializer(g, w)).filter(|w| w.data_type == graph::FLOAT);
    let Some((dims, w)) = weights.map(graph::f32_values).transpose()? else { return Ok(None) };
    let [c, m, kh, kw] = dims[..] else { return Ok(None) };
    let all = |name: &str, v: i64| graph::attr_ints(n, name).is_none_or(|a| a.iter().all(|&x| x == v));
    let strides = graph::attr_ints(n, "strides").unwrap_or(&[1, 1]);
    let pads = graph::attr_ints(n, "pads").unwrap_or(&[0, 0, 0, 0]);
    let output_padding = graph::attr_ints(n, "output_padding").unwrap_or(&[0, 0]);
    let kernel_ok = graph::attr_ints(n, "kernel_shape").is_none_or(|k| k == [kh as i64, kw as i64]);
    let plain = graph::attr_int(n, "group").unwrap_or(1) == 1
        && strides.len() == 2
        && strides[0] == strides[1]
        && (1..=16).contains(&strides[0])
        && kernel_ok
        && pads.len() == 4
        && pads.iter().all(|&p| p >= 0)
        && output_padding.len() == 2
        && output_padding.iter().all(|&p| (0..strides[0]).contains(&p))
        && all("dilations", 1)
        && graph::attr_ints(n, "output_shape").is_none()
        && n.attribute.iter().all(|a| a.name != "auto_pad" || a.s == b"NOTSET")
        && n.output.len() == 1;
    if !plain {
        return Ok(None);
    }
    let Some(bias) = conv_bias(g, n, m)? else { return Ok(None) };
    let s = strides[0] as usize;
    let (taps_h, taps_w) = (kh.div_ceil(s), kw.div_ceil(s));
    let mut conv = vec![0f32; s * s * m * c * taps_h * taps_w];
    for (at, v) in conv.iter_mut().enumerate() {
        // at = (((phase · M + o) · C + ci) · K_h + ty) · K_w + tx, phase = ry · s + rx.
        let (tx, ty, ci) = (at % taps_w, at / taps_w % taps_h, at / (taps_w * taps_h) % c);
        let (o, phase) = (at / (taps_w * taps_h * c) % m, at / (taps_w * taps_h * c * m));
        let (ky, kx) = (phase / s + s * (taps_h - 1 - ty), phase % s + s * (taps_w - 1 - tx));
        if ky < kh && kx < kw {
            *v = w[((ci * m + o) * kh + ky) * kw + kx];
        }
    }
    // Beyond the K − 1 each side, more rows at the bottom (right) when output padding asks for
    // outputs past the last tap; what the output then holds past the ConvTranspose's is cut.
    let (p, op) = (pads.iter().map(|&v| v as usize).collect::<Vec<_>>(), output_padding);
    let extra = |k: usize, taps: usize, end_pad: usize, op: i64| {
        (k + op as usize).saturating_sub(end_pad + s * taps).div_ceil(s)
    };
    let (eh, ew) = (extra(kh, taps_h, p[2], op[0]), extra(kw, taps_w, p[3], op[1]));
    // Rows of the full output past the ConvTranspose's last: s·(K + e) − k − op + end pad.
    let tail =
        |k: usize, taps: usize, e: usize, end_pad: usize, op: i64| (s * (taps + e) + end_pad) as i64 - k as i64 - op;
    let (th, tw) = (tail(kh, taps_h, eh, p[2], op[0]), tail(kw, taps_w, ew, p[3], op[1]));
    let end = |t: i64| if t == 0 { i64::MAX } else { -t };
    let crop = (p[0] + p[1] > 0 || th > 0 || tw > 0).then(|| ([p[0] as i64, p[1] as i64], [end(th), end(tw)]));
    let bias = (0..s * s).flat_map(|_| bias.iter().copied()).collect();
    Ok(Some(Transposed {
        weights: (vec![s * s * m, c, taps_h, taps_w], conv),
        bias,
        stride: s,
        pads: [taps_h - 1, taps_w - 1, taps_h - 1 + eh, taps_w - 1 + ew],
        crop,
    }))
}

/// A ReduceMean over exactly axes 2 and 3 of a 4-D tensor (axes as attribute or constant input).
fn spatial_mean(g: &pb::GraphProto, n: &pb::NodeProto, shapes: &HashMap<String, Vec<usize>>) -> bool {
    let axes: Option<Vec<i64>> = match graph::attr_ints(n, "axes") {
        Some(a) => Some(a.to_vec()),
        None => {
            n.input.get(1).and_then(|a| graph::initializer(g, a)).filter(|t| t.data_type == graph::INT64).map(|t| {
                let mut v = t.int64_data.clone();
                v.extend(
                    t.raw_data
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
                );
                v
            })
        }
    };
    let rank4 = n.input.first().and_then(|x| shapes.get(x)).is_some_and(|s| s.len() == 4);
    let axes = axes.map(|a| {
        let mut a: Vec<i64> = a.iter().map(|&x| if x < 0 { x + 4 } else { x }).collect();
        a.sort_unstable();
        a
    });
    rank4 && axes.as_deref() == Some(&[2, 3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_engine::Tensor;
    use kestrel_onnx::OnnxModel;

    fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
        use pb::tensor_shape_proto::{dimension::Value, Dimension};
        let dim = dims.iter().map(|&d| Dimension { value: Some(Value::DimValue(d)), ..Default::default() }).collect();
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: 1,
                    shape: Some(pb::TensorShapeProto { dim }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 250.0 - 2.0).collect()
    }

    /// A BatchNormalization's gamma, beta, mean and var over 4 channels.
    const BATCH_NORM: [(&str, [f32; 4]); 4] = [
        ("gamma", [0.5, 1.5, -1.0, 2.0]),
        ("beta", [0.1, -0.2, 0.3, 0.0]),
        ("mean", [0.2, -0.1, 0.0, 0.4]),
        ("var", [1.0, 0.5, 2.0, 0.25]),
    ];

    fn opset13(g: pb::GraphProto) -> OnnxModel {
        let proto = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
            graph: Some(g),
            ..Default::default()
        };
        OnnxModel { proto, dir: None }
    }

    /// Runs both models on `x` (tract) and checks every output within 1e-5 (relative above 1);
    /// returns the outputs' lengths.
    fn same_outputs(before: &OnnxModel, after: &OnnxModel, x: Tensor) -> Vec<usize> {
        let (want, got) = (
            crate::calibrate::reference_outputs(before, std::slice::from_ref(&x)).unwrap(),
            crate::calibrate::reference_outputs(after, &[x]).unwrap(),
        );
        for (w, g) in want.iter().flatten().zip(got.iter().flatten()) {
            assert!((w - g).abs() <= 1e-5 * w.abs().max(1.0), "{w} vs {g}");
        }
        want.iter().map(Vec::len).collect()
    }

    /// x [1, 2, 5, 5] → Conv → BatchNormalization → HardSwish spelled out → ReduceMean over H, W
    /// (keepdims 0) → Gemm (transB) → y [1, 3].
    fn model() -> OnnxModel {
        let mut g = pb::GraphProto { name: "lowering".into(), ..Default::default() };
        let mut init = |name: &str, dims: &[usize], v: Vec<f32>| g.initializer.push(graph::f32_tensor(name, dims, &v));
        init("w", &[4, 2, 3, 3], values(72, 1));
        for (name, v) in BATCH_NORM {
            init(name, &[4], v.to_vec());
        }
        init("three", &[], vec![3.0]);
        init("zero", &[], vec![0.0]);
        init("six", &[], vec![6.0]);
        init("gb", &[3, 4], values(12, 2));
        init("gc", &[3], vec![0.5, -0.5, 1.0]);
        g.initializer.push(pb::TensorProto {
            name: "axes".into(),
            dims: vec![2],
            data_type: graph::INT64,
            int64_data: vec![2, 3],
            ..Default::default()
        });
        let mut conv = graph::node("Conv", "conv", &["x", "w"], &["c"]);
        conv.attribute.push(pb::AttributeProto {
            name: "pads".into(),
            r#type: 7,
            ints: vec![1; 4],
            ..Default::default()
        });
        let mut gemm = graph::node("Gemm", "gemm", &["m", "gb", "gc"], &["y"]);
        gemm.attribute.push(pb::AttributeProto { name: "transB".into(), r#type: 2, i: 1, ..Default::default() });
        let mut mean = graph::node("ReduceMean", "mean", &["h"], &["m"]);
        mean.attribute.push(pb::AttributeProto {
            name: "axes".into(),
            r#type: 7,
            ints: vec![2, 3],
            ..Default::default()
        });
        mean.attribute.push(pb::AttributeProto { name: "keepdims".into(), r#type: 2, i: 0, ..Default::default() });
        g.node = vec![
            conv,
            graph::node("BatchNormalization", "bn", &["c", "gamma", "beta", "mean", "var"], &["b"]),
            graph::node("Add", "add", &["b", "three"], &["a"]),
            graph::node("Clip", "clip", &["a", "zero", "six"], &["r"]),
            graph::node("Mul", "mul", &["b", "r"], &["p"]),
            graph::node("Div", "div", &["p", "six"], &["h"]),
            mean,
            gemm,
        ];
        g.input.push(value_info("x", &[1, 2, 5, 5]));
        g.output.push(value_info("y", &[1, 3]));
        opset13(g)
    }

    #[test]
    fn lowering_keeps_the_function_and_leaves_the_ops_that_quantize() {
        let before = model();
        let mut after = before.clone();
        let shapes = HashMap::from([("h".to_string(), vec![1, 4, 5, 5])]);
        let g = graph::graph_mut(&mut after.proto).unwrap();
        assert!(lower_for_int8(g, &shapes).unwrap(), "HardSwish needs opset 14");
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Conv", "HardSwish", "GlobalAveragePool", "Flatten", "MatMul", "Add"]);
        graph::require_opset(&mut after.proto, 14);
        let x = Tensor::f32(vec![1, 2, 5, 5], values(50, 3)).unwrap();
        assert_eq!(same_outputs(&before, &after, x), [3]);
    }

    /// x [1, 3, 4, 5] → ConvTranspose (k = s = 2) → Add of a [1, 4, 1, 1] bias (Paddle's) →
    /// BatchNormalization → Relu, and Conv → Mul, Add by scalars (PP-LCNet's learnable affine
    /// block), beside ConvTransposes whose taps overlap: k 3 s 2; k 4 s 2 pads 1 (with a bias);
    /// k 3 × 2 s 2 pads (1, 0, 0, 1) output padding (1, 1); k 3 s 1 pads 1.
    fn upsampling_model() -> OnnxModel {
        let mut g = pb::GraphProto { name: "upsampling".into(), ..Default::default() };
        let mut init = |name: &str, dims: &[usize], v: Vec<f32>| g.initializer.push(graph::f32_tensor(name, dims, &v));
        init("w", &[3, 4, 2, 2], values(48, 5));
        init("b", &[1, 4, 1, 1], vec![0.3, -0.1, 0.0, 0.7]);
        init("w3", &[3, 2, 3, 3], values(54, 6));
        init("wc", &[2, 3, 1, 1], values(6, 8));
        init("scale", &[1], vec![1.7]);
        init("shift", &[1], vec![-0.3]);
        for (name, v) in BATCH_NORM {
            init(name, &[4], v.to_vec());
        }
        let ints = |name: &str, v: &[i64]| pb::AttributeProto {
            name: name.into(),
            r#type: pb::attribute_proto::AttributeType::Ints as i32,
            ints: v.to_vec(),
            ..Default::default()
        };
        let mut up = graph::node("ConvTranspose", "up", &["x", "w"], &["t"]);
        up.attribute.extend([ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])]);
        let mut overlap = graph::node("ConvTranspose", "overlap", &["x", "w3"], &["o"]);
        overlap.attribute.extend([ints("strides", &[2, 2])]);
        init("w4", &[3, 2, 4, 4], values(96, 9));
        init("b4", &[2], vec![0.25, -0.5]);
        init("w32", &[3, 2, 3, 2], values(36, 10));
        let mut padded = graph::node("ConvTranspose", "padded", &["x", "w4", "b4"], &["p"]);
        padded.attribute.extend([ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])]);
        let mut uneven = graph::node("ConvTranspose", "uneven", &["x", "w32"], &["q"]);
        uneven.attribute.extend([
            ints("strides", &[2, 2]),
            ints("pads", &[1, 0, 0, 1]),
            ints("output_padding", &[1, 1]),
        ]);
        let mut same = graph::node("ConvTranspose", "same", &["x", "w3"], &["r"]);
        same.attribute.extend([ints("pads", &[1, 1, 1, 1])]);
        g.node = vec![
            up,
            graph::node("Add", "bias", &["t", "b"], &["u"]),
            graph::node("BatchNormalization", "bn", &["u", "gamma", "beta", "mean", "var"], &["n"]),
            graph::node("Relu", "relu", &["n"], &["y"]),
            overlap,
            padded,
            uneven,
            same,
            graph::node("Conv", "conv", &["x", "wc"], &["c"]),
            graph::node("Mul", "scale", &["scale", "c"], &["s"]),
            graph::node("Add", "shift", &["s", "shift"], &["a"]),
        ];
        g.input.push(value_info("x", &[1, 3, 4, 5]));
        g.output.push(value_info("y", &[1, 4, 8, 10]));
        g.output.push(value_info("o", &[1, 2, 9, 11]));
        g.output.push(value_info("p", &[1, 2, 8, 10]));
        g.output.push(value_info("q", &[1, 2, 9, 10]));
        g.output.push(value_info("r", &[1, 2, 4, 5]));
        g.output.push(value_info("a", &[1, 2, 4, 5]));
        opset13(g)
    }

    #[test]
    fn conv_transposes_become_a_conv_and_depth_to_space_and_affines_fold() {
        let before = upsampling_model();
        let mut after = before.clone();
        let g = graph::graph_mut(&mut after.proto).unwrap();
        assert!(!lower_for_int8(g, &HashMap::new()).unwrap());
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        let cut = ["Conv", "DepthToSpace", "Slice"];
        let want = [&["Conv", "DepthToSpace", "Relu"][..], &cut, &cut, &cut, &["Conv", "Slice", "Conv"]].concat();
        assert_eq!(ops, want);
        let x = Tensor::f32(vec![1, 3, 4, 5], values(60, 7)).unwrap();
        let sizes = [4 * 8 * 10, 2 * 9 * 11, 2 * 8 * 10, 2 * 9 * 10, 2 * 4 * 5, 2 * 4 * 5];
        assert_eq!(same_outputs(&before, &after, x), sizes);
    }
}
