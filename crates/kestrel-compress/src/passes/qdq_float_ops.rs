//! Integer-only quantization of the float ops between the layers: each op the integer runtime runs
//! on uint8 when it sits between a Dequantize and a Quantize (a 256-entry table for an activation
//! function or a product or sum with a scalar constant, a requantizing kernel for pooling, Resize,
//! PRelu and the product of two activations) is put in that form, `Quantize(f(Dequantize(x)))`,
//! with its output's calibrated range. Each op gets a Dequantize of its own (the exporter fuses
//! only private ones); the Quantize before the next layer then cancels against the one added here.

use std::collections::{HashMap, HashSet};

use kestrel_onnx::pb;

use crate::graph::{self, Names};

/// Ops put between a Dequantize and a Quantize.
pub const WRAPPED: &[&str] = &[
    "Clip",
    "LeakyRelu",
    "HardSigmoid",
    "HardSwish",
    "Sigmoid",
    "Tanh",
    "AveragePool",
    "GlobalAveragePool",
    "PRelu",
    "Resize",
    "Mul",
];

/// The inputs of `n` that are quantized: both of a product of two activations, the activation
/// of a product or sum with a scalar constant (PP-LCNet's learnable affine blocks), else the
/// first; none when `n` is not wrapped (a product with a tensor constant stays float, and so does
/// shape arithmetic: tensors in `non_float` are integers).
pub fn quantized_inputs(g: &pb::GraphProto, n: &pb::NodeProto, non_float: &HashSet<String>) -> Vec<usize> {
    if !(WRAPPED.contains(&n.op_type.as_str()) || n.op_type == "Add")
        || n.output.len() != 1
        || n.input.is_empty()
        || non_float.contains(&n.output[0])
    {
        return vec![];
    }
    let activation = |i: &String| !i.is_empty() && graph::initializer(g, i).is_none() && !non_float.contains(i);
    let scalar = |i: &String| {
        graph::initializer(g, i).is_some_and(|t| t.data_type == graph::FLOAT && t.dims.iter().product::<i64>() == 1)
    };
    match (n.op_type.as_str(), &n.input[..]) {
        ("Mul", [a, b]) if activation(a) && activation(b) => vec![0, 1],
        ("Mul" | "Add", [a, b]) if activation(a) && scalar(b) => vec![0],
        ("Mul" | "Add", [a, b]) if scalar(a) && activation(b) => vec![1],
        ("Mul" | "Add", _) => vec![],
        _ if activation(&n.input[0]) => vec![0],
        _ => vec![],
    }
}

/// Whether the node named as `n` (and of its type) in the quantized graph `qg` reads only
/// Dequantize outputs and is read only by Quantize nodes.
pub fn in_qdq_form(
    qg: &pb::GraphProto,
    producers: &HashMap<String, usize>,
    n: &pb::NodeProto,
    non_float: &HashSet<String>,
) -> bool {
    let Some(m) = qg.node.iter().find(|m| !n.name.is_empty() && m.name == n.name && m.op_type == n.op_type) else {
        return false;
    };
    let consumers = graph::consumers(qg);
    quantized_inputs(qg, m, non_float)
        .iter()
        .all(|&i| producers.get(&m.input[i]).is_some_and(|&p| qg.node[p].op_type == "DequantizeLinear"))
        && consumers.get(&m.output[0]).is_some_and(|c| c.iter().all(|&r| qg.node[r].op_type == "QuantizeLinear"))
}

/// Wraps every op of `g` that [`quantized_inputs`] selects; `params` gives a tensor's uint8
/// scale and zero point.
pub fn wrap<E>(
    g: &mut pb::GraphProto,
    names: &mut Names,
    non_float: &HashSet<String>,
    params: impl Fn(&str) -> Result<(f32, u8), E>,
) -> Result<(), E> {
    // Tensor → the uint8 tensor, scale and zero point it is the Dequantize of.
    let mut dequantized: HashMap<String, [String; 3]> = g
        .node
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear" && n.input.len() == 3)
        .map(|n| (n.output[0].clone(), [n.input[0].clone(), n.input[1].clone(), n.input[2].clone()]))
        .collect();
    let consumers = graph::consumers(g);
    let mut inits = Vec::new();
    let mut nodes = Vec::with_capacity(g.node.len());
    let old = std::mem::take(&mut g.node);
    for mut n in old.iter().cloned() {
        let inputs = quantized_inputs(g, &n, non_float);
        let out = n.output.first().cloned().unwrap_or_default();
        // Already `Quantize(f(Dequantize(x)))` with Dequantizes of its own: nothing to do.
        let private_dequantized = |i: &usize| {
            dequantized.contains_key(&n.input[*i]) && consumers.get(&n.input[*i]).is_some_and(|c| c.len() == 1)
        };
        let output_quantized =
            consumers.get(&out).is_some_and(|c| c.iter().all(|&r| old[r].op_type == "QuantizeLinear"));
        if inputs.is_empty() || (inputs.iter().all(private_dequantized) && output_quantized) {
            nodes.push(n);
            continue;
        }
        for i in inputs {
            let source = match dequantized.get(&n.input[i]) {
                Some(source) => source.clone(),
                None => {
                    let source = quantize(&n.input[i], params(&n.input[i])?, names, &mut inits, &mut nodes);
                    dequantized.insert(n.input[i].clone(), source.clone());
                    source
                }
            };
            let dq = names.fresh(&format!("{}_dequantized", n.input[i]));
            let [q, s, z] = &source;
            nodes.push(graph::node("DequantizeLinear", &names.fresh(&format!("{dq}_node")), &[q, s, z], &[&dq]));
            n.input[i] = dq;
        }
        if output_quantized {
            nodes.push(n);
            continue;
        }
        let float = names.fresh(&format!("{out}_float"));
        n.output[0] = float.clone();
        nodes.push(n);
        let [q, s, z] = quantize(&float, params(&out)?, names, &mut inits, &mut nodes);
        nodes.push(graph::node("DequantizeLinear", &names.fresh(&format!("{out}_dequantize")), &[&q, &s, &z], &[&out]));
        dequantized.insert(out, [q, s, z]);
    }
    g.node = nodes;
    g.initializer.extend(inits);
    Ok(())
}

/// Appends `QuantizeLinear(t)` with `scale` and `zero_point`; returns its output and parameters.
fn quantize(
    t: &str,
    (scale, zero_point): (f32, u8),
    names: &mut Names,
    inits: &mut Vec<pb::TensorProto>,
    nodes: &mut Vec<pb::NodeProto>,
) -> [String; 3] {
    let q = names.fresh(&format!("{t}_quantized"));
    let (s, z) = (names.fresh(&format!("{q}_scale")), names.fresh(&format!("{q}_zero_point")));
    inits.push(graph::f32_tensor(&s, &[], &[scale]));
    inits.push(graph::u8_tensor(&z, &[], &[zero_point]));
    nodes.push(graph::node("QuantizeLinear", &names.fresh(&format!("{q}_node")), &[t, &s, &z], &[&q]));
    [q, s, z]
}
