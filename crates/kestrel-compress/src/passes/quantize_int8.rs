//! Static post-training int8 quantization to ONNX's QOperator form.
//!
//! Conv and MatMul with constant weights become `QLinearConv` / `QLinearMatMul`: per-channel
//! symmetric int8 weights (Conv: axis 0; MatMul B[K, N]: axis 1), uint8 activations with a
//! calibrated zero-point, int32 bias, round half to even. A Relu that is a Conv's only consumer
//! is folded into the uint8 output range. MaxPool/Reshape/Transpose/Flatten/Squeeze/Unsqueeze run
//! on the quantized tensor, and back-to-back Dequantize→Quantize pairs cancel, so chains of
//! layers stay in integers. Everything else stays float between Dequantize/Quantize.
//!
//! A layer output read only by an activation that saturates (SiLU, HardSwish, Sigmoid,
//! HardSigmoid) is quantized over the part of its range the activation tells apart.
//!
//! Sensitive-layer guard: each candidate is quantized alone and the model's output SQNR measured
//! against the float model on the calibration data (the lowest over the outputs, and over the
//! parts of an output concatenated from parts of unlike magnitude: boxes beside scores); layers
//! below the threshold stay float, and while the whole model is below it the worst remaining
//! layer is reverted.
//!
//! Integer-only (`integer_only`, for the integer runtime): every candidate is quantized, and
//! every other reader of a quantized layer input reads it through Dequantize(Quantize(·)) too, so
//! residual branches (MaxPool, channel Pad) run on the integers and each residual Add sees two
//! dequantized uint8 tensors and is followed by a Quantize: the QDQ form of an integer Add. Only
//! the model's edges stay float.

use std::collections::{BTreeMap, HashMap, HashSet};

use kestrel_engine::Tensor;
use kestrel_onnx::{pb, OnnxModel};
use serde::Serialize;

use super::lower_for_int8::lower_for_int8;
use super::qdq_float_ops;
use crate::calibrate::{self, RangeMethod};
use crate::graph::{self, Names};
use crate::CompressError;

const PASS: &str = "quantize-int8";
/// Ops that commute with an affine uint8 quantization, so they can run on the integers.
const PASSTHROUGH: &[&str] = &[
    "MaxPool",
    "Reshape",
    "Transpose",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Slice",
    "Split",
    "DepthToSpace",
    "Identity",
];

#[derive(Debug, Clone, Serialize)]
pub struct QuantizeConfig {
    pub method: RangeMethod,
    /// A layer whose quantization alone brings the model output below this SQNR stays float.
    pub min_layer_sqnr_db: f64,
    /// The whole model's output must reach this SQNR; the worst layers are reverted until it does.
    pub min_model_sqnr_db: f64,
    /// Keep layers that feed a model output without another quantizable layer in between in
    /// float (detector box/score heads: rare, decisive values that calibration rarely covers).
    pub keep_output_heads_float: bool,
    /// No float layers at all (see the module doc): the guard and the head rule do not apply.
    pub integer_only: bool,
}

impl Default for QuantizeConfig {
    fn default() -> Self {
        QuantizeConfig {
            method: RangeMethod::Percentile(99.99),
            min_layer_sqnr_db: 30.0,
            min_model_sqnr_db: 20.0,
            keep_output_heads_float: false,
            integer_only: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub node: String,
    pub op: String,
    pub quantized: bool,
    /// Model-output SQNR with only this layer quantized: measured where it decides (not for
    /// integer-only models, where every layer is quantized, nor output heads kept float).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolated_sqnr_db: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_float_because: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuantizeReport {
    pub config: QuantizeConfig,
    pub layers: Vec<LayerReport>,
    /// Ops that were not candidates for integer execution and stay float, by type.
    pub float_ops: BTreeMap<String, usize>,
    /// Model-output SQNR of the final model against the float model on the calibration data.
    pub output_sqnr_db: f64,
}

#[derive(Debug, Clone)]
struct Candidate {
    node: usize,
    name: String,
    op: String,
    input: String,
    /// The float tensor its integer output stands for (after a folded activation).
    output: String,
    /// A Relu or Clip(0, max) after a Conv, folded in: the output's range, from 0 to at most
    /// the clip's max, clamps as it does.
    activation: Option<usize>,
}

/// Quantizes `model`, calibrating on `samples` (each a full model input).
pub fn quantize_int8(
    model: &OnnxModel,
    samples: &[Tensor],
    config: &QuantizeConfig,
) -> Result<(OnnxModel, QuantizeReport), CompressError> {
    let g = graph::graph(&model.proto)?;
    // Element types and shapes (tract's inference at the calibration shape): integer-only mode
    // leaves shape arithmetic alone, and ReduceMean is lowered only on 4-D tensors.
    let typed = match samples.first() {
        Some(s) if config.integer_only || g.node.iter().any(|n| n.op_type == "ReduceMean") => {
            kestrel_engine::backends::cpu::tensor_shapes(model, std::slice::from_ref(&s.shape))?
        }
        _ => HashMap::new(),
    };
    let non_float: HashSet<String> =
        typed.iter().filter(|(_, (dtype, _))| *dtype != "float32").map(|(name, _)| name.clone()).collect();
    let model = &lowered(model, &typed)?;
    let g = graph::graph(&model.proto)?;
    let cands = candidates(g);
    if cands.is_empty() {
        return Err(CompressError::Pass {
            pass: PASS,
            message: "no Conv or MatMul with constant weights to quantize".into(),
        });
    }
    let mut names: Vec<String> = cands.iter().flat_map(|c| [c.input.clone(), c.output.clone()]).collect();
    for c in &cands {
        names.push(c.output.clone());
        let mut t = c.input.clone();
        while let Some(p) = passthrough_input(g, &t) {
            names.push(p.clone());
            t = p;
        }
    }
    if config.integer_only {
        for n in &g.node {
            let inputs = qdq_float_ops::quantized_inputs(g, n, &non_float);
            if !inputs.is_empty() {
                names.extend(inputs.iter().map(|&i| n.input[i].clone()).chain(n.output.iter().cloned()));
            }
        }
    }
    names.sort();
    names.dedup();
    let mut ranges = calibrate::ranges(model, samples, &names, config.method)?;
    if config.integer_only && config.method != RangeMethod::MinMax {
        // A score head's rare large values are the detections: a percentile would clip them.
        let heads: Vec<String> =
            score_head_tensors(g, &cands, &non_float).into_iter().filter(|t| ranges.contains_key(t)).collect();
        if !heads.is_empty() {
            ranges.extend(calibrate::ranges(model, samples, &heads, RangeMethod::MinMax)?);
        }
    }
    let consumers = graph::consumers(g);
    for c in &cands {
        if let (Some((floor, ceiling)), Some(r)) = (useful_range(g, &consumers, &c.output), ranges.get_mut(&c.output)) {
            *r = (r.0.max(floor).min(0.0), r.1.min(ceiling).max(0.0));
        }
    }
    let (judged, reference) = judged_tensors(model, samples)?;
    let integer_only = config.integer_only.then_some(&non_float);
    let score = |set: &HashSet<usize>| -> Result<f64, CompressError> {
        let q = build(model, &cands, set, &ranges, integer_only)?;
        let got = calibrate::values(&q, samples, &judged)?;
        Ok(reference.iter().zip(&got).map(|(r, t)| calibrate::sqnr_db(r, t)).fold(f64::INFINITY, f64::min))
    };

    let heads = output_heads(g, &cands);
    let mut layers = Vec::new();
    let mut chosen = HashSet::new();
    for (i, c) in cands.iter().enumerate() {
        let mut alone = None;
        let why = if config.integer_only {
            chosen.insert(i);
            None
        } else if config.keep_output_heads_float && heads.contains(&i) {
            Some("output head (feeds a model output directly)".to_string())
        } else {
            let sqnr = *alone.insert(score(&HashSet::from([i]))?);
            if sqnr < config.min_layer_sqnr_db {
                Some(format!("alone it drops the output to {sqnr:.1} dB (< {} dB)", config.min_layer_sqnr_db))
            } else {
                chosen.insert(i);
                None
            }
        };
        layers.push(LayerReport {
            node: c.name.clone(),
            op: c.op.clone(),
            quantized: why.is_none(),
            isolated_sqnr_db: alone,
            kept_float_because: why,
        });
    }
    let mut output_sqnr = score(&chosen)?;
    while output_sqnr < config.min_model_sqnr_db && !config.integer_only {
        let Some(&worst) = chosen.iter().min_by(|&&a, &&b| {
            let alone = |l: usize| layers[l].isolated_sqnr_db.unwrap_or(f64::INFINITY);
            alone(a).total_cmp(&alone(b))
        }) else {
            break;
        };
        chosen.remove(&worst);
        layers[worst].quantized = false;
        layers[worst].kept_float_because =
            Some(format!("reverted: the whole model was at {output_sqnr:.1} dB (< {} dB)", config.min_model_sqnr_db));
        output_sqnr = score(&chosen)?;
    }
    let quantized = build(model, &cands, &chosen, &ranges, integer_only)?;
    let in_candidates: HashSet<usize> =
        cands.iter().flat_map(|c| std::iter::once(c.node).chain(c.activation)).collect();
    let mut float_ops = BTreeMap::new();
    let qg = graph::graph(&quantized.proto)?;
    let producers = graph::producers(qg);
    // A float op left: one that reads a float tensor other than through a Dequantize.
    for (ix, n) in g.node.iter().enumerate() {
        let integer = in_candidates.contains(&ix)
            || PASSTHROUGH.contains(&n.op_type.as_str())
            || (config.integer_only && qdq_integer(qg, &producers, n, &non_float));
        if !integer {
            *float_ops.entry(n.op_type.clone()).or_default() += 1;
        }
    }
    Ok((quantized, QuantizeReport { config: config.clone(), layers, float_ops, output_sqnr_db: output_sqnr }))
}

/// The tensors the quantized model's output is judged on, and their float values: each model
/// output, or, where an output is a Concat of parts whose magnitudes differ tenfold or more, each
/// part. One SQNR over a detector's boxes beside its scores would let the part with the large
/// values hide the noise in the other (YOLOv8's class scores, 0..1, beside box coordinates in
/// pixels: 27–40 dB over the whole, 5–24 dB on the scores); parts alike (each feature level's
/// anchors) are judged as the whole they make.
fn judged_tensors(model: &OnnxModel, samples: &[Tensor]) -> Result<(Vec<String>, Vec<Vec<f32>>), CompressError> {
    let g = graph::graph(&model.proto)?;
    let producers = graph::producers(g);
    // Each output with the parts a Concat made it from (none otherwise), all run in one pass.
    let split: Vec<(String, Vec<String>)> = g
        .output
        .iter()
        .map(|o| {
            let parts = match producers.get(o.name.as_str()).map(|&p| &g.node[p]) {
                Some(n) if n.op_type == "Concat" => {
                    n.input.iter().filter(|i| !i.is_empty() && graph::initializer(g, i).is_none()).cloned().collect()
                }
                _ => Vec::new(),
            };
            (o.name.clone(), if parts.len() > 1 { parts } else { Vec::new() })
        })
        .collect();
    let mut names: Vec<String> = split.iter().flat_map(|(o, parts)| std::iter::once(o).chain(parts)).cloned().collect();
    names.sort();
    names.dedup();
    let all: HashMap<String, Vec<f32>> =
        names.iter().cloned().zip(calibrate::values(model, samples, &names)?).collect();
    let rms = |v: &[f32]| (v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt();
    let mut judged = Vec::new();
    for (output, parts) in split {
        let levels: Vec<f64> = parts.iter().map(|p| rms(&all[p])).collect();
        let (lo, hi) = levels.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        if !parts.is_empty() && hi >= 10.0 * lo {
            judged.extend(parts);
        } else {
            judged.push(output);
        }
    }
    judged.dedup();
    let reference = judged.iter().map(|n| all[n].clone()).collect();
    Ok((judged, reference))
}

/// The tensors of score heads: those from which a model output is reached through an activation
/// function put on the integers (a Sigmoid over class logits, say) without passing another
/// layer: the wrapped op's input and output and, upstream of it, everything back to and
/// including the layers' outputs.
fn score_head_tensors(g: &pb::GraphProto, cands: &[Candidate], non_float: &HashSet<String>) -> HashSet<String> {
    let producers = graph::producers(g);
    let candidate_outputs: HashSet<&str> = cands.iter().map(|c| c.output.as_str()).collect();
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    // Tensors that reach a model output without passing a layer.
    let mut reaches = HashSet::new();
    let mut stack: Vec<&str> = outputs.iter().copied().collect();
    while let Some(t) = stack.pop() {
        if !reaches.insert(t.to_string()) || candidate_outputs.contains(t) {
            continue;
        }
        if let Some(&p) = producers.get(t) {
            stack.extend(g.node[p].input.iter().map(String::as_str).filter(|i| !i.is_empty()));
        }
    }
    let mut found = HashSet::new();
    for n in g.node.iter().filter(|n| n.output.first().is_some_and(|o| reaches.contains(o))) {
        let inputs = qdq_float_ops::quantized_inputs(g, n, non_float);
        if inputs.is_empty() || n.op_type == "Mul" {
            continue;
        }
        found.extend(n.output.iter().cloned());
        let mut stack: Vec<&str> = inputs.iter().map(|&i| n.input[i].as_str()).collect();
        while let Some(t) = stack.pop() {
            if !found.insert(t.to_string()) || candidate_outputs.contains(t) {
                continue;
            }
            if let Some(&p) = producers.get(t) {
                stack.extend(
                    g.node[p]
                        .input
                        .iter()
                        .map(String::as_str)
                        .filter(|i| graph::initializer(g, i).is_none() && !i.is_empty()),
                );
            }
        }
    }
    found
}

/// `model` with Gemm and spatial ReduceMean in the forms that quantize (see [`lower_for_int8`]).
fn lowered(model: &OnnxModel, typed: &HashMap<String, (&str, Vec<usize>)>) -> Result<OnnxModel, CompressError> {
    let mut out = model.clone();
    let shapes = typed.iter().map(|(name, (_, dims))| (name.clone(), dims.clone())).collect();
    let g = graph::graph_mut(&mut out.proto)?;
    // Every node named (names are optional in ONNX): the report finds each op of the float model
    // again in the quantized one by its name, after passes that rename its tensors.
    let mut names = Names::new(g);
    for n in g.node.iter_mut().filter(|n| n.name.is_empty()) {
        n.name = names.fresh(n.output.first().map_or("node", String::as_str));
    }
    if lower_for_int8(g, &shapes)? {
        graph::require_opset(&mut out.proto, 14);
    }
    Ok(out)
}

/// Whether `n` (a node of the float model) runs on integers in the integer-only model `qg`: a
/// Pad or MaxPool hoisted onto uint8, or an Add (and its Relu) between Dequantize and Quantize.
fn qdq_integer(
    qg: &pb::GraphProto,
    producers: &HashMap<String, usize>,
    n: &pb::NodeProto,
    non_float: &HashSet<String>,
) -> bool {
    let Some(out) = n.output.first() else { return false };
    let q_node = qg.node.iter().find(|m| m.output.first() == Some(out));
    match (n.op_type.as_str(), q_node) {
        // Put between a Dequantize and a Quantize: its output is now a Dequantize's.
        ("Pad", Some(m)) if m.op_type == "DequantizeLinear" => true,
        // Hoisted onto the integers: it writes a quantized tensor of a new name.
        ("Pad", _) => qg.node.iter().any(|m| m.name == n.name && m.op_type == "Pad" && m.output.first() != Some(out)),
        (op, _) if qdq_float_ops::WRAPPED.contains(&op) => qdq_float_ops::in_qdq_form(qg, producers, n, non_float),
        ("Add", _) if !qdq_float_ops::quantized_inputs(qg, n, non_float).is_empty() => {
            qdq_float_ops::in_qdq_form(qg, producers, n, non_float)
        }
        ("Add", Some(m)) => {
            m.input.iter().all(|i| producers.get(i).is_some_and(|&p| qg.node[p].op_type == "DequantizeLinear"))
        }
        ("Relu", Some(m)) => producers.get(&m.input[0]).is_some_and(|&p| qg.node[p].op_type == "Add"),
        ("Concat", _) => true, // data movement at the edge, after the heads' Dequantize
        _ => false,
    }
}

fn candidates(g: &pb::GraphProto) -> Vec<Candidate> {
    let consumers = graph::consumers(g);
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let const_f32 = |name: &str, rank: usize| {
        graph::initializer(g, name).is_some_and(|t| t.data_type == graph::FLOAT && t.dims.len() == rank)
    };
    let mut out = Vec::new();
    for (ix, n) in g.node.iter().enumerate() {
        let ok = match n.op_type.as_str() {
            "Conv" => {
                n.input.len() >= 2
                    && const_f32(&n.input[1], 4)
                    && (n.input.len() < 3 || n.input[2].is_empty() || const_f32(&n.input[2], 1))
            }
            "MatMul" => n.input.len() == 2 && const_f32(&n.input[1], 2) && graph::initializer(g, &n.input[0]).is_none(),
            _ => false,
        };
        if !ok || n.output.len() != 1 {
            continue;
        }
        let out_name = &n.output[0];
        let activation = match consumers.get(out_name).map(Vec::as_slice) {
            Some([only])
                if n.op_type == "Conv" && clamps_at_zero(g, &g.node[*only]) && !outputs.contains(out_name.as_str()) =>
            {
                Some(*only)
            }
            _ => None,
        };
        out.push(Candidate {
            node: ix,
            name: n.name.clone(), // every node is named by `lowered`
            op: n.op_type.clone(),
            input: n.input[0].clone(),
            output: activation.map_or_else(|| out_name.clone(), |r| g.node[r].output[0].clone()),
            activation,
        });
    }
    out
}

/// Where an activation function that saturates is all that reads `t`, the part of `t`'s range
/// it tells apart: below the floor (and above the ceiling) the function is flat, so uint8 steps
/// spent there are wasted. Exact for HardSwish and HardSigmoid (flat there); within 0.0027 for
/// SiLU (x·sigmoid(x)) and 0.00034 for Sigmoid at ±8. YOLOv8's convolutions output down to −40
/// into a SiLU that returns −0.0000 there.
fn useful_range(g: &pb::GraphProto, consumers: &HashMap<String, Vec<usize>>, t: &str) -> Option<(f32, f32)> {
    const SIGMOID_FLAT: f32 = 8.0;
    if g.output.iter().any(|o| o.name == t) {
        return None;
    }
    let readers: Vec<&pb::NodeProto> = consumers.get(t)?.iter().map(|&i| &g.node[i]).collect();
    let f = |n: &pb::NodeProto, name: &str, default: f32| {
        n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.f)
    };
    // A gate's flat ends: (floor, ceiling) of its input.
    let gate = |n: &pb::NodeProto| match n.op_type.as_str() {
        "Sigmoid" => Some((-SIGMOID_FLAT, SIGMOID_FLAT)),
        "HardSigmoid" => {
            let (alpha, beta) = (f(n, "alpha", 0.2), f(n, "beta", 0.5));
            (alpha > 0.0).then(|| (-beta / alpha, (1.0 - beta) / alpha))
        }
        _ => None,
    };
    match readers.as_slice() {
        [n] if n.op_type == "HardSwish" => Some((-3.0, f32::INFINITY)),
        [n] => gate(n),
        // x · gate(x): SiLU, or HardSwish written out; flat (zero) only below the gate's floor.
        [a, b] => {
            let (gate_node, mul) = if a.op_type == "Mul" { (b, a) } else { (a, b) };
            let gated = gate_node.output.first()?;
            let reads = |x: &str| mul.input.iter().any(|i| i == x);
            (mul.op_type == "Mul" && mul.input.len() == 2 && reads(t) && reads(gated))
                .then(|| gate(gate_node).map(|(floor, _)| (floor, f32::INFINITY)))
                .flatten()
        }
        _ => None,
    }
}

/// Relu, or a Clip from 0 to a positive max (Relu6): what a quantized output of range
/// [0, hi], hi at most the max, computes by saturating.
fn clamps_at_zero(g: &pb::GraphProto, n: &pb::NodeProto) -> bool {
    let bound = |i: usize, attr: &str| match n.input.get(i).filter(|t| !t.is_empty()) {
        Some(t) => graph::scalar(g, t),
        None => n.attribute.iter().find(|a| a.name == attr).map(|a| a.f),
    };
    n.op_type == "Relu"
        || (n.op_type == "Clip" && bound(1, "min") == Some(0.0) && bound(2, "max").is_some_and(|m| m > 0.0))
}

/// Candidates from which a model output is reachable without passing another candidate.
fn output_heads(g: &pb::GraphProto, cands: &[Candidate]) -> HashSet<usize> {
    let consumers = graph::consumers(g);
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let cand_nodes: HashSet<usize> = cands.iter().map(|c| c.node).collect();
    let mut heads = HashSet::new();
    for (i, c) in cands.iter().enumerate() {
        let mut stack = vec![c.output.clone()];
        let mut seen = HashSet::new();
        while let Some(t) = stack.pop() {
            if outputs.contains(t.as_str()) {
                heads.insert(i);
                break;
            }
            for &n in consumers.get(&t).into_iter().flatten() {
                if !cand_nodes.contains(&n) && seen.insert(n) {
                    stack.extend(g.node[n].output.iter().cloned());
                }
            }
        }
    }
    heads
}

/// The data input of the passthrough op producing `t`, if any.
fn passthrough_input(g: &pb::GraphProto, t: &str) -> Option<String> {
    g.node
        .iter()
        .find(|n| n.output.iter().any(|o| o == t) && PASSTHROUGH.contains(&n.op_type.as_str()))
        .map(|n| n.input[0].clone())
}

/// uint8 affine parameters covering `(lo, hi)` (which contains 0).
fn activation_params(lo: f32, hi: f32) -> (f32, u8) {
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zp = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    (scale, zp)
}

/// Per-channel symmetric int8: channel `c` holds the values whose index along `axis` is `c`.
fn quantize_weights(dims: &[usize], w: &[f32], axis: usize) -> (Vec<i8>, Vec<f32>) {
    let channels = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let channel_of = |i: usize| (i / inner) % channels;
    let mut max = vec![0f32; channels];
    for (i, &v) in w.iter().enumerate() {
        max[channel_of(i)] = max[channel_of(i)].max(v.abs());
    }
    let scales: Vec<f32> = max.iter().map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 }).collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &v)| (v / scales[channel_of(i)]).round_ties_even().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scales)
}

/// The model with the candidates in `set` quantized; `integer_only` holds the tensors that are
/// not float (shape arithmetic), which integer-only mode leaves alone.
fn build(
    model: &OnnxModel,
    cands: &[Candidate],
    set: &HashSet<usize>,
    ranges: &HashMap<String, (f32, f32)>,
    integer_only: Option<&HashSet<String>>,
) -> Result<OnnxModel, CompressError> {
    let mut out = model.clone();
    graph::require_opset(&mut out.proto, 13);
    let g = graph::graph_mut(&mut out.proto)?;
    let mut names = Names::new(g);
    let range = |t: &str| {
        ranges
            .get(t)
            .copied()
            .ok_or_else(|| CompressError::Pass { pass: PASS, message: format!("no calibrated range for `{t}`") })
    };
    // Quantized outputs' parameters, so inputs reached through passthrough ops reuse them.
    let mut params: HashMap<String, (f32, u8)> = HashMap::new();
    for &i in set {
        let (lo, hi) = range(&cands[i].output)?;
        params.insert(cands[i].output.clone(), activation_params(lo, hi));
    }
    if integer_only.is_some() {
        // The layers concatenated into one tensor (a detector's heads) share one quantization,
        // the union of their ranges: one output, one scale — and a head that calibration never
        // saw fire keeps the range its siblings saw.
        for n in g.node.iter().filter(|n| n.op_type == "Concat") {
            let sources: Vec<&String> = n
                .input
                .iter()
                .filter_map(|t| {
                    let mut cur = t.clone();
                    loop {
                        if let Some(i) = set.iter().find(|&&i| cands[i].output == cur) {
                            return Some(&cands[*i].output);
                        }
                        cur = passthrough_input(g, &cur)?;
                    }
                })
                .collect();
            if sources.len() < 2 {
                continue;
            }
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for t in &sources {
                let (l, h) = range(t)?;
                (lo, hi) = (lo.min(l), hi.max(h));
            }
            for t in sources {
                params.insert(t.clone(), activation_params(lo, hi));
            }
        }
    }
    let input_params = |t: &str, g: &pb::GraphProto| -> Result<(f32, u8), CompressError> {
        let mut cur = t.to_string();
        loop {
            if let Some(p) = params.get(&cur) {
                return Ok(*p);
            }
            match passthrough_input(g, &cur) {
                Some(prev) => cur = prev,
                None => break,
            }
        }
        let (lo, hi) = range(t)?;
        Ok(activation_params(lo, hi))
    };

    let by_node: HashMap<usize, &Candidate> = set.iter().map(|&i| (cands[i].node, &cands[i])).collect();
    let skip: HashSet<usize> = set.iter().filter_map(|&i| cands[i].activation).collect();
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    // Float layer input → its Quantize's output, scale and zero point.
    let mut quantized_inputs: HashMap<String, (String, String, String)> = HashMap::new();
    for (ix, n) in g.node.iter().enumerate() {
        if skip.contains(&ix) {
            continue;
        }
        let Some(c) = by_node.get(&ix) else {
            nodes.push(n.clone());
            continue;
        };
        let (xs, xz) = input_params(&c.input, g)?;
        let (ys, yz) = params[&c.output];
        let x_q = match quantized_inputs.get(&c.input) {
            Some(q) => q.0.clone(),
            None => {
                let q = names.fresh(&format!("{}_quantized", c.input));
                let (s, z) = (names.fresh(&format!("{q}_scale")), names.fresh(&format!("{q}_zero_point")));
                inits.push(graph::f32_tensor(&s, &[], &[xs]));
                inits.push(graph::u8_tensor(&z, &[], &[xz]));
                nodes.push(graph::node(
                    "QuantizeLinear",
                    &names.fresh(&format!("{q}_node")),
                    &[&c.input, &s, &z],
                    &[&q],
                ));
                quantized_inputs.insert(c.input.clone(), (q.clone(), s, z));
                q
            }
        };
        let base = names.fresh(&format!("{}_int8", c.name));
        let (wdims, w) = graph::f32_values(graph::initializer(g, &n.input[1]).ok_or_else(|| CompressError::Pass {
            pass: PASS,
            message: format!("weight `{}` vanished", n.input[1]),
        })?)?;
        let axis = if c.op == "Conv" { 0 } else { 1 };
        let (wq, wscales) = quantize_weights(&wdims, &w, axis);
        let channels = wdims[axis];
        let tensor_name = |suffix: &str, names: &mut Names| names.fresh(&format!("{base}_{suffix}"));
        let (xs_n, xz_n, w_n, ws_n, wz_n, ys_n, yz_n) = (
            tensor_name("x_scale", &mut names),
            tensor_name("x_zero_point", &mut names),
            tensor_name("w", &mut names),
            tensor_name("w_scale", &mut names),
            tensor_name("w_zero_point", &mut names),
            tensor_name("y_scale", &mut names),
            tensor_name("y_zero_point", &mut names),
        );
        inits.push(graph::f32_tensor(&xs_n, &[], &[xs]));
        inits.push(graph::u8_tensor(&xz_n, &[], &[xz]));
        inits.push(graph::i8_tensor(&w_n, &wdims, &wq));
        inits.push(graph::f32_tensor(&ws_n, &[channels], &wscales));
        inits.push(graph::i8_tensor(&wz_n, &[channels], &vec![0; channels]));
        inits.push(graph::f32_tensor(&ys_n, &[], &[ys]));
        inits.push(graph::u8_tensor(&yz_n, &[], &[yz]));
        let y_q = names.fresh(&format!("{}_quantized", c.output));
        let mut inputs: Vec<String> = vec![x_q, xs_n, xz_n, w_n, ws_n, wz_n, ys_n.clone(), yz_n.clone()];
        if c.op == "Conv" && n.input.len() > 2 && !n.input[2].is_empty() {
            let (_, b) = graph::f32_values(graph::initializer(g, &n.input[2]).ok_or_else(|| CompressError::Pass {
                pass: PASS,
                message: format!("bias `{}` vanished", n.input[2]),
            })?)?;
            let bq: Vec<i32> = b
                .iter()
                .zip(&wscales)
                .map(|(&v, &s)| {
                    (f64::from(v) / (f64::from(xs) * f64::from(s))).round_ties_even().clamp(-2147483648.0, 2147483647.0)
                        as i32
                })
                .collect();
            let b_n = tensor_name("bias", &mut names);
            inits.push(graph::i32_tensor(&b_n, &[channels], &bq));
            inputs.push(b_n);
        }
        let mut q = pb::NodeProto {
            op_type: if c.op == "Conv" { "QLinearConv" } else { "QLinearMatMul" }.into(),
            name: base.clone(),
            input: inputs,
            output: vec![y_q.clone()],
            ..Default::default()
        };
        if c.op == "Conv" {
            q.attribute = n.attribute.clone();
        }
        nodes.push(q);
        nodes.push(graph::node(
            "DequantizeLinear",
            &names.fresh(&format!("{base}_dequantize")),
            &[&y_q, &ys_n, &yz_n],
            &[&c.output],
        ));
    }
    if integer_only.is_some() {
        // Every other reader of a quantized layer input reads Dequantize(Quantize(input)).
        let outputs: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
        for (float, (q, s, z)) in &quantized_inputs {
            let dq = names.fresh(&format!("{float}_dequantized"));
            let mut used = false;
            for n in nodes.iter_mut().filter(|n| n.output.first() != Some(q)) {
                for i in n.input.iter_mut().filter(|i| *i == float) {
                    *i = dq.clone();
                    used = true;
                }
            }
            if used && !outputs.contains(float) {
                nodes.push(graph::node("DequantizeLinear", &names.fresh(&format!("{dq}_node")), &[q, s, z], &[&dq]));
            }
        }
    }
    g.node = nodes;
    g.initializer.extend(inits);
    if let Some(non_float) = integer_only {
        let params = |t: &str| match params.get(t) {
            Some(&p) => Ok(p),
            None => range(t).map(|(lo, hi)| activation_params(lo, hi)),
        };
        sort_topologically(g)?;
        qdq_float_ops::wrap(g, &mut names, non_float, params)?;
    }
    g.value_info.clear();
    hoist_passthrough(g, &mut names, integer_only.is_some());
    cancel_requantization(g);
    remove_dead(g);
    sort_topologically(g)?;
    Ok(out)
}

/// `op(DequantizeLinear(q))` → `DequantizeLinear(op(q))` for ops that commute with it; with
/// `pad_too`, also a constant Pad of zeros, which pads the integers with the zero point.
fn hoist_passthrough(g: &mut pb::GraphProto, names: &mut Names, pad_too: bool) {
    loop {
        let producers = graph::producers(g);
        let found = g.node.iter().enumerate().find_map(|(ix, n)| {
            let ok = PASSTHROUGH.contains(&n.op_type.as_str()) || (pad_too && zero_pad(g, n));
            if !ok || (n.output.len() != 1 && n.op_type != "Split") {
                return None;
            }
            let d = *producers.get(n.input.first()?)?;
            (g.node[d].op_type == "DequantizeLinear").then_some((ix, d))
        });
        let Some((ix, d)) = found else { return };
        let dq = g.node[d].clone();
        let op = &mut g.node[ix];
        op.input[0] = dq.input[0].clone();
        if op.op_type == "Pad" {
            // 0.0 is the zero point on the integers.
            op.input.resize(2, String::new());
            op.input.push(dq.input[2].clone());
        }
        // Each output (a Split has several) now quantized, dequantized for its readers.
        let mut dequantize = Vec::new();
        for out in op.output.iter_mut().filter(|o| !o.is_empty()) {
            let out_q = names.fresh(&format!("{out}_quantized"));
            let name = names.fresh(&format!("{out}_dequantize"));
            dequantize.push(graph::node("DequantizeLinear", &name, &[&out_q, &dq.input[1], &dq.input[2]], &[out]));
            *out = out_q;
        }
        g.node.splice(ix + 1..ix + 1, dequantize);
    }
}

/// A Pad in constant mode whose value is 0 (absent, or a zero float constant).
fn zero_pad(g: &pb::GraphProto, n: &pb::NodeProto) -> bool {
    let constant_mode = n.attribute.iter().all(|a| a.name != "mode" || a.s == b"constant");
    let zero = match n.input.get(2).filter(|v| !v.is_empty()) {
        None => true,
        Some(v) => graph::initializer(g, v)
            .and_then(|t| graph::f32_values(t).ok())
            .is_some_and(|(_, values)| values.iter().all(|&x| x == 0.0)),
    };
    n.op_type == "Pad" && n.input.len() >= 2 && constant_mode && zero
}

/// `QuantizeLinear(DequantizeLinear(q, s, z), s, z)` is `q`.
fn cancel_requantization(g: &mut pb::GraphProto) {
    let producers = graph::producers(g);
    let value = |name: &str| graph::initializer(g, name).map(|t| (t.data_type, t.raw_data.clone()));
    let mut rename: HashMap<String, String> = HashMap::new();
    for n in g.node.iter().filter(|n| n.op_type == "QuantizeLinear" && n.input.len() == 3) {
        let Some(&d) = producers.get(&n.input[0]) else {
            continue;
        };
        let dq = &g.node[d];
        if dq.op_type == "DequantizeLinear"
            && dq.input.len() == 3
            && value(&dq.input[1]) == value(&n.input[1])
            && value(&dq.input[2]) == value(&n.input[2])
        {
            rename.insert(n.output[0].clone(), dq.input[0].clone());
        }
    }
    for n in &mut g.node {
        for i in &mut n.input {
            if let Some(r) = rename.get(i) {
                *i = r.clone();
            }
        }
    }
}

/// Drops Quantize/Dequantize nodes nobody reads, then initializers nobody reads.
fn remove_dead(g: &mut pb::GraphProto) {
    loop {
        let consumers = graph::consumers(g);
        let outputs: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
        let before = g.node.len();
        g.node.retain(|n| {
            !matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear")
                || n.output.iter().any(|o| consumers.contains_key(o) || outputs.contains(o))
        });
        if g.node.len() == before {
            break;
        }
    }
    let used: HashSet<String> =
        g.node.iter().flat_map(|n| n.input.iter().cloned()).chain(g.output.iter().map(|o| o.name.clone())).collect();
    g.initializer.retain(|t| used.contains(&t.name));
    g.input.retain(|i| used.contains(&i.name) || !g.initializer.iter().any(|t| t.name == i.name));
}

/// Orders nodes so every input is produced before it is read.
fn sort_topologically(g: &mut pb::GraphProto) -> Result<(), CompressError> {
    let producers = graph::producers(g);
    let mut done = vec![false; g.node.len()];
    let mut order = Vec::with_capacity(g.node.len());
    fn visit(
        ix: usize,
        g: &pb::GraphProto,
        producers: &HashMap<String, usize>,
        done: &mut [bool],
        order: &mut Vec<usize>,
        depth: usize,
    ) -> Result<(), CompressError> {
        if done[ix] {
            return Ok(());
        }
        if depth > g.node.len() {
            return Err(CompressError::Pass { pass: PASS, message: "the rewritten graph has a cycle".into() });
        }
        for i in &g.node[ix].input {
            if let Some(&p) = producers.get(i) {
                visit(p, g, producers, done, order, depth + 1)?;
            }
        }
        if !done[ix] {
            done[ix] = true;
            order.push(ix);
        }
        Ok(())
    }
    for ix in 0..g.node.len() {
        visit(ix, g, &producers, &mut done, &mut order, 0)?;
    }
    let old = std::mem::take(&mut g.node);
    let mut slots: Vec<Option<pb::NodeProto>> = old.into_iter().map(Some).collect();
    g.node = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_params_cover_the_range_and_zero() {
        let (s, z) = activation_params(0.0, 6.0);
        assert_eq!(z, 0);
        assert!((s - 6.0 / 255.0).abs() < 1e-7);
        // Scale exactly 1, so -lo = 2.5 is an exact tie: half to even gives 2.
        let (s, z) = activation_params(-2.5, 252.5);
        assert_eq!((s, z), (1.0, 2));
    }

    #[test]
    fn weights_are_symmetric_per_channel_with_ties_to_even() {
        // Two output channels (axis 0); channel 0 has scale exactly 1 so ±2.5 and 3.5 are ties.
        let (q, s) = quantize_weights(&[2, 4], &[127.0, 2.5, -2.5, 3.5, 0.02, 0.01, 0.0, -0.02], 0);
        assert_eq!(s, vec![1.0, 0.02 / 127.0]);
        assert_eq!(&q[..4], &[127, 2, -2, 4]);
        assert_eq!(&q[4..], &[127, 63, 0, -127]); // 0.01 is 63.499998 in f32 arithmetic
                                                  // Axis 1: columns of a [K, N] MatMul weight.
        let (q, s) = quantize_weights(&[2, 2], &[127.0, 0.5, -254.0, 0.25], 1);
        assert_eq!(s, vec![2.0, 0.5 / 127.0]);
        assert_eq!(q, vec![64, 127, -127, 64]); // 63.5 → 64 (tie, to even)
    }

    #[test]
    fn only_the_range_a_saturating_activation_tells_apart_is_kept() {
        let range = |nodes: Vec<pb::NodeProto>| {
            let g = pb::GraphProto { node: nodes, ..Default::default() };
            useful_range(&g, &graph::consumers(&g), "x")
        };
        let node = |op: &str, inputs: &[&str], output: &str| graph::node(op, output, inputs, &[output]);
        assert_eq!(range(vec![node("HardSwish", &["x"], "y")]), Some((-3.0, f32::INFINITY)));
        assert_eq!(range(vec![node("HardSigmoid", &["x"], "y")]), Some((-2.5, 2.5)));
        assert_eq!(range(vec![node("Sigmoid", &["x"], "y")]), Some((-8.0, 8.0)));
        // SiLU: x · sigmoid(x), either operand order.
        let silu = |a: &str, b: &str| vec![node("Sigmoid", &["x"], "s"), node("Mul", &[a, b], "y")];
        assert_eq!(range(silu("x", "s")), Some((-8.0, f32::INFINITY)));
        assert_eq!(range(silu("s", "x")), Some((-8.0, f32::INFINITY)));
        // Another reader (a residual Add) needs the whole range; so does a product with anything else.
        let mut read_twice = silu("x", "s");
        read_twice.push(node("Add", &["x", "z"], "w"));
        assert_eq!(range(read_twice), None);
        assert_eq!(range(vec![node("Sigmoid", &["x"], "s"), node("Mul", &["x", "z"], "y")]), None);
        assert_eq!(range(vec![node("Relu", &["x"], "y")]), None);
    }
}
