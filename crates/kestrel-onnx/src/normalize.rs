//! Rewrites that let valid models load in tract despite its known pitfalls (DESIGN.md §4).

use crate::pb;
use crate::raw::{tensor_raw_le, RawTensor};

/// Applies every normalization to all graphs, subgraphs included.
pub fn normalize(model: &mut pb::ModelProto) {
    let ir_version = model.ir_version;
    if let Some(graph) = model.graph.as_mut() {
        normalize_graph(graph);
        // Initializers need not be graph inputs from IR 4 on.
        if ir_version >= 4 {
            constants_to_initializers(graph);
        }
        scalar_pad_values(graph);
        pads_into_max_pools(graph);
    }
}

/// A Pad with -inf around H and W that feeds only a MaxPool (how TensorFlow exports a padded
/// max-pool: PadV2 then MaxPool) becomes that MaxPool's own `pads`, which it ignores just as
/// -inf is ignored: one op fewer, and the integer runtime has no float Pad by a value.
fn pads_into_max_pools(graph: &mut pb::GraphProto) {
    let ints = |r: RawTensor| -> Option<Vec<i64>> {
        (r.elem.code == 7)
            .then(|| r.bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
    };
    let minus_infinity = |r: RawTensor| r.elem.code == 1 && r.bytes == f32::NEG_INFINITY.to_le_bytes();
    let outputs: std::collections::HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let mut folded = Vec::new();
    for (i, pad) in graph.node.iter().enumerate() {
        let constant = pad.attribute.iter().all(|a| a.name != "mode" || a.s == b"constant");
        if pad.op_type != "Pad" || !constant || pad.input.len() < 3 || outputs.contains(pad.output[0].as_str()) {
            continue;
        }
        let init = |name: &str| graph.initializer.iter().find(|t| t.name == name).and_then(|t| tensor_raw_le(t).ok());
        let (Some(pads), Some(value)) = (init(&pad.input[1]).and_then(ints), init(&pad.input[2])) else { continue };
        let spatial_only =
            pads.len() == 8 && pads[..2] == [0, 0] && pads[4..6] == [0, 0] && pads.iter().all(|&p| p >= 0);
        let readers: Vec<usize> =
            (0..graph.node.len()).filter(|&j| graph.node[j].input.contains(&pad.output[0])).collect();
        let [pool] = readers[..] else { continue };
        let p = &graph.node[pool];
        let attr = |name: &str| p.attribute.iter().find(|a| a.name == name);
        let kernel = attr("kernel_shape").map(|a| a.ints.clone()).unwrap_or_default();
        let plain = attr("auto_pad").is_none_or(|a| matches!(&a.s[..], b"" | b"NOTSET"));
        let old = attr("pads").map_or(vec![0; 4], |a| a.ints.clone());
        let new: Vec<i64> = old.iter().zip([pads[2], pads[3], pads[6], pads[7]]).map(|(a, b)| a + b).collect();
        let fits = kernel.len() == 2 && old.len() == 4 && (0..4).all(|k| new[k] < kernel[k % 2]);
        if spatial_only
            && minus_infinity(value)
            && p.op_type == "MaxPool"
            && p.input[0] == pad.output[0]
            && plain
            && fits
        {
            folded.push((i, pool, new));
        }
    }
    for &(i, pool, ref new) in &folded {
        let source = graph.node[i].input[0].clone();
        let p = &mut graph.node[pool];
        p.input[0] = source;
        p.attribute.retain(|a| a.name != "pads");
        p.attribute.push(pb::AttributeProto {
            name: "pads".into(),
            r#type: pb::attribute_proto::AttributeType::Ints as i32,
            ints: new.clone(),
            ..Default::default()
        });
    }
    let dead: std::collections::HashSet<usize> = folded.iter().map(|f| f.0).collect();
    let mut at = 0;
    graph.node.retain(|_| {
        at += 1;
        !dead.contains(&(at - 1))
    });
}

/// A Pad's `constant_value` is a scalar, but tf2onnx writes a one-element vector (onnxruntime
/// accepts it; tract refuses: "Impossible to unify 1 with 0"): such an initializer becomes a
/// scalar, or a scalar copy where other nodes read it too.
fn scalar_pad_values(graph: &mut pb::GraphProto) {
    let one_value = |t: &pb::TensorProto| !t.dims.is_empty() && t.dims.iter().all(|&d| d == 1);
    for i in 0..graph.node.len() {
        let node = &graph.node[i];
        let Some(name) = node.input.get(2).filter(|n| node.op_type == "Pad" && !n.is_empty()).cloned() else {
            continue;
        };
        let Some(at) = graph.initializer.iter().position(|t| t.name == name && one_value(t)) else { continue };
        let shared = graph.node.iter().filter(|n| n.input.contains(&name)).count() > 1;
        if shared {
            let mut copy = graph.initializer[at].clone();
            copy.name = format!("{name}__scalar");
            copy.dims.clear();
            graph.node[i].input[2].clone_from(&copy.name);
            if !graph.initializer.iter().any(|t| t.name == copy.name) {
                graph.initializer.push(copy);
            }
        } else {
            graph.initializer[at].dims.clear();
        }
    }
}

/// `Constant` nodes holding a tensor become initializers (Paddle and TensorFlow exports keep
/// their weights in Constant nodes): passes and backends that look for constant weights then
/// find them. A Constant that is itself a graph output stays a node.
fn constants_to_initializers(graph: &mut pb::GraphProto) {
    let outputs: std::collections::HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut kept = Vec::with_capacity(graph.node.len());
    for mut node in std::mem::take(&mut graph.node) {
        let movable = node.op_type == "Constant"
            && node.domain.is_empty()
            && node.output.len() == 1
            && !outputs.contains(&node.output[0])
            && node.attribute.len() == 1
            && node.attribute[0].name == "value";
        match node.attribute.first_mut().and_then(|a| a.t.take()) {
            Some(mut t) if movable => {
                t.name.clone_from(&node.output[0]);
                graph.initializer.push(t);
            }
            taken => {
                if let (Some(t), Some(a)) = (taken, node.attribute.first_mut()) {
                    a.t = Some(t);
                }
                kept.push(node);
            }
        }
    }
    graph.node = kept;
}

fn normalize_graph(graph: &mut pb::GraphProto) {
    // Symbolic value_info dims fail to unify with concrete input shapes in tract
    // ("Impossible to unify Sym(batch) with Val(1)"); they are hints only, so drop them.
    graph.value_info.retain(|v| !has_symbolic_dim(v));
    for node in &mut graph.node {
        // The spec's default for ConstantOfShape is a float32 zero; tract reads a missing
        // `value` as f64, so make the default explicit.
        if node.op_type == "ConstantOfShape" && !node.attribute.iter().any(|a| a.name == "value") {
            node.attribute.push(pb::AttributeProto {
                name: "value".into(),
                r#type: pb::attribute_proto::AttributeType::Tensor as i32,
                t: Some(pb::TensorProto {
                    dims: vec![1],
                    data_type: pb::tensor_proto::DataType::Float as i32,
                    float_data: vec![0.0],
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        for attr in &mut node.attribute {
            for g in attr.g.iter_mut().chain(attr.graphs.iter_mut()) {
                normalize_graph(g);
            }
        }
    }
}

fn has_symbolic_dim(info: &pb::ValueInfoProto) -> bool {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(tt)) = info.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return false;
    };
    tt.shape.as_ref().is_some_and(|s| s.dim.iter().any(|d| !matches!(d.value, Some(Value::DimValue(_)))))
}
