//! Small helpers for editing ONNX graphs: initializers as f32, new tensors, names, consumers.

use std::collections::{HashMap, HashSet};

use kestrel_onnx::pb;

use crate::CompressError;

/// ONNX element type codes used here.
pub const FLOAT: i32 = 1;
pub const UINT8: i32 = 2;
pub const INT8: i32 = 3;
pub const INT32: i32 = 6;
pub const INT64: i32 = 7;

/// The main graph of a model (validated models always have one).
pub fn graph_mut(model: &mut pb::ModelProto) -> Result<&mut pb::GraphProto, CompressError> {
    model.graph.as_mut().ok_or(CompressError::Onnx(kestrel_onnx::OnnxError::NoGraph))
}

pub fn graph(model: &pb::ModelProto) -> Result<&pb::GraphProto, CompressError> {
    model.graph.as_ref().ok_or(CompressError::Onnx(kestrel_onnx::OnnxError::NoGraph))
}

pub fn initializer<'a>(g: &'a pb::GraphProto, name: &str) -> Option<&'a pb::TensorProto> {
    g.initializer.iter().find(|t| t.name == name)
}

/// The value of a one-element float32 initializer.
pub fn scalar(g: &pb::GraphProto, name: &str) -> Option<f32> {
    initializer(g, name).and_then(|t| f32_values(t).ok()).and_then(|(_, v)| (v.len() == 1).then(|| v[0]))
}

/// A float32 initializer's values and dims.
pub fn f32_values(t: &pb::TensorProto) -> Result<(Vec<usize>, Vec<f32>), CompressError> {
    let raw = kestrel_onnx::tensor_raw_le(t)?;
    if raw.elem.code != FLOAT {
        return Err(CompressError::Tensor {
            name: t.name.clone(),
            message: format!("is {}, not float32", raw.elem.name),
        });
    }
    let values = raw.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((raw.dims, values))
}

fn tensor(name: &str, dims: &[usize], data_type: i32, raw_data: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type,
        raw_data,
        ..Default::default()
    }
}

pub fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> pb::TensorProto {
    tensor(name, dims, FLOAT, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

pub fn i8_tensor(name: &str, dims: &[usize], values: &[i8]) -> pb::TensorProto {
    tensor(name, dims, INT8, values.iter().map(|&v| v as u8).collect())
}

pub fn u8_tensor(name: &str, dims: &[usize], values: &[u8]) -> pb::TensorProto {
    tensor(name, dims, UINT8, values.to_vec())
}

pub fn i64_tensor(name: &str, dims: &[usize], values: &[i64]) -> pb::TensorProto {
    tensor(name, dims, INT64, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

pub fn i32_tensor(name: &str, dims: &[usize], values: &[i32]) -> pb::TensorProto {
    tensor(name, dims, INT32, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Node indices reading each tensor name.
pub fn consumers(g: &pb::GraphProto) -> HashMap<String, Vec<usize>> {
    let mut map: HashMap<String, Vec<usize>> = HashMap::new();
    for (ix, n) in g.node.iter().enumerate() {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            map.entry(i.clone()).or_default().push(ix);
        }
    }
    map
}

/// Node index producing each tensor name.
pub fn producers(g: &pb::GraphProto) -> HashMap<String, usize> {
    let mut map = HashMap::new();
    for (ix, n) in g.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            map.insert(o.clone(), ix);
        }
    }
    map
}

/// Hands out tensor/node names that do not collide with any in the graph.
pub struct Names {
    used: HashSet<String>,
}

impl Names {
    pub fn new(g: &pb::GraphProto) -> Names {
        let mut used: HashSet<String> = HashSet::new();
        used.extend(g.initializer.iter().map(|t| t.name.clone()));
        used.extend(g.input.iter().map(|t| t.name.clone()));
        for n in &g.node {
            used.insert(n.name.clone());
            used.extend(n.output.iter().cloned());
        }
        Names { used }
    }

    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

/// Sets the default-domain opset to at least `version`.
pub fn require_opset(model: &mut pb::ModelProto, version: i64) {
    match model.opset_import.iter_mut().find(|o| o.domain.is_empty() || o.domain == "ai.onnx") {
        Some(o) => o.version = o.version.max(version),
        None => model.opset_import.push(pb::OperatorSetIdProto { domain: String::new(), version }),
    }
}

/// Attribute helpers.
pub fn attr_ints<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a [i64]> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.ints.as_slice())
}

pub fn attr_int(n: &pb::NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// An integer attribute, to push onto a node.
pub fn int_attr(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

pub fn ints_attr(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}
