//! What a model declares and weighs, read from the protobuf alone (no execution).

use std::collections::BTreeMap;

use crate::dtype::ElemType;
use crate::pb;

/// One graph input or output as declared in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct IoInfo {
    pub name: String,
    pub dtype: String,
    /// `None` for a symbolic or missing dimension.
    pub shape: Vec<Option<u64>>,
    /// Names of symbolic dimensions, aligned with `shape` (empty string when concrete).
    pub dim_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub ir_version: i64,
    pub opset: i64,
    pub producer: String,
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<IoInfo>,
    /// Op type → node count, over the main graph and its subgraphs.
    pub ops: BTreeMap<String, usize>,
    pub nodes: usize,
    /// Elements in initializers and Constant nodes.
    pub parameters: u64,
    pub weight_bytes: u64,
}

/// Summarizes a validated model.
pub fn summarize(model: &pb::ModelProto) -> Summary {
    let mut s = Summary {
        ir_version: model.ir_version,
        opset: model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .unwrap_or(0),
        producer: format!("{} {}", model.producer_name, model.producer_version).trim().to_string(),
        inputs: vec![],
        outputs: vec![],
        ops: BTreeMap::new(),
        nodes: 0,
        parameters: 0,
        weight_bytes: 0,
    };
    if let Some(g) = &model.graph {
        let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|i| i.name.as_str()).collect();
        s.inputs = g.input.iter().filter(|i| !inits.contains(i.name.as_str())).map(io_info).collect();
        s.outputs = g.output.iter().map(io_info).collect();
        walk(g, &mut s);
    }
    s
}

fn walk(g: &pb::GraphProto, s: &mut Summary) {
    for t in &g.initializer {
        add_tensor(t, s);
    }
    for n in &g.node {
        s.nodes += 1;
        *s.ops.entry(n.op_type.clone()).or_default() += 1;
        for a in &n.attribute {
            if let Some(t) = &a.t {
                add_tensor(t, s);
            }
            for sub in a.g.iter().chain(a.graphs.iter()) {
                walk(sub, s);
            }
        }
    }
}

fn add_tensor(t: &pb::TensorProto, s: &mut Summary) {
    let count = element_count(&t.dims);
    s.parameters = s.parameters.saturating_add(count);
    let bytes = ElemType::from_code(t.data_type).and_then(|e| e.raw_bytes(count)).unwrap_or(0);
    s.weight_bytes = s.weight_bytes.saturating_add(bytes);
}

/// Element count of validated dims (saturating, so it is safe on unvalidated ones too).
pub fn element_count(dims: &[i64]) -> u64 {
    dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(d.max(0) as u64))
}

fn io_info(v: &pb::ValueInfoProto) -> IoInfo {
    use pb::tensor_shape_proto::dimension::Value;
    let mut info = IoInfo { name: v.name.clone(), dtype: "?".into(), shape: vec![], dim_names: vec![] };
    if let Some(pb::type_proto::Value::TensorType(tt)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        info.dtype = ElemType::from_code(tt.elem_type).map(|e| e.name.to_string()).unwrap_or_else(|| "?".into());
        for d in tt.shape.iter().flat_map(|s| s.dim.iter()) {
            match &d.value {
                Some(Value::DimValue(v)) => {
                    info.shape.push(Some(*v as u64));
                    info.dim_names.push(String::new());
                }
                Some(Value::DimParam(p)) => {
                    info.shape.push(None);
                    info.dim_names.push(p.clone());
                }
                None => {
                    info.shape.push(None);
                    info.dim_names.push("?".into());
                }
            }
        }
    }
    info
}
