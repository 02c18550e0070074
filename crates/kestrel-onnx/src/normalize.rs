//! Rewrites that let valid models load in tract despite its known pitfalls (DESIGN.md §4).

use crate::pb;

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
    }
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
