//! Structural validation of a decoded model, done before any tensor is materialized.
//!
//! Every check here exists because something downstream (tract, our own passes) would
//! otherwise allocate a size read from the file, index out of bounds, divide by zero or panic.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path};

use crate::dtype::ElemType;
use crate::pb;
use crate::{Limits, OnnxError};

/// Op domains whose ops we map by name onto our backends' registries.
const KNOWN_DOMAINS: &[&str] = &["", "ai.onnx", "ai.onnx.ml", "com.microsoft"];

/// Ops whose `pads` attribute must be non-negative (they pad the input, never crop it).
const PADDED_OPS: &[&str] =
    &["Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "MaxUnpool"];

pub(crate) struct Validator<'a> {
    limits: &'a Limits,
    model_dir: Option<&'a Path>,
    known_ops: &'a HashSet<String>,
    total_weight_bytes: u64,
    nodes: usize,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(limits: &'a Limits, model_dir: Option<&'a Path>, known_ops: &'a HashSet<String>) -> Self {
        Validator { limits, model_dir, known_ops, total_weight_bytes: 0, nodes: 0 }
    }

    pub(crate) fn model(&mut self, model: &pb::ModelProto) -> Result<(), OnnxError> {
        let graph = model.graph.as_ref().ok_or(OnnxError::NoGraph)?;
        self.graph(graph, &HashSet::new(), 0)
    }

    fn graph(&mut self, graph: &pb::GraphProto, outer: &HashSet<&str>, depth: usize) -> Result<(), OnnxError> {
        if depth > self.limits.max_subgraph_depth {
            return Err(OnnxError::LimitExceeded {
                what: "subgraph nesting of graph",
                name: graph.name.clone(),
                value: depth as u64,
                limit: self.limits.max_subgraph_depth as u64,
            });
        }
        if let Some(sparse) = graph.sparse_initializer.first() {
            let name = sparse.values.as_ref().map(|v| v.name.clone()).unwrap_or_default();
            return Err(OnnxError::Invalid {
                what: "sparse initializer",
                name,
                reason: "sparse initializers are not supported; densify the model first".into(),
            });
        }
        let mut scope: HashSet<&str> = outer.clone();
        for init in &graph.initializer {
            let bytes = self.tensor(init, "initializer")?;
            self.add_weight_bytes(&init.name, bytes)?;
            scope.insert(&init.name);
        }
        for input in &graph.input {
            self.value_info(input, "graph input")?;
            scope.insert(&input.name);
        }
        self.nodes = self.nodes.saturating_add(graph.node.len());
        if self.nodes > self.limits.max_nodes {
            return Err(OnnxError::LimitExceeded {
                what: "node count of graph",
                name: graph.name.clone(),
                value: self.nodes as u64,
                limit: self.limits.max_nodes as u64,
            });
        }

        // Single assignment: each name is produced once, by one node.
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (ix, node) in graph.node.iter().enumerate() {
            for out in node.output.iter().filter(|o| !o.is_empty()) {
                if producer.insert(out, ix).is_some() || graph.initializer.iter().any(|i| &i.name == out) {
                    return Err(OnnxError::Invalid {
                        what: "tensor",
                        name: out.clone(),
                        reason: format!("defined more than once (again by node `{}`)", node_name(node, ix)),
                    });
                }
            }
        }
        let mut full_scope = scope.clone();
        full_scope.extend(producer.keys().copied());

        for (ix, node) in graph.node.iter().enumerate() {
            self.node(node, ix, &full_scope, depth)?;
        }

        // Every input is defined; then Kahn's algorithm finds cycles.
        let mut indegree = vec![0usize; graph.node.len()];
        let mut consumers: Vec<Vec<usize>> = vec![vec![]; graph.node.len()];
        for (ix, node) in graph.node.iter().enumerate() {
            for input in node.input.iter().filter(|i| !i.is_empty()) {
                if scope.contains(input.as_str()) {
                    continue;
                }
                match producer.get(input.as_str()) {
                    Some(&p) => {
                        indegree[ix] += 1;
                        consumers[p].push(ix);
                    }
                    None => return Err(OnnxError::UndefinedInput { node: node_name(node, ix), input: input.clone() }),
                }
            }
        }
        let mut ready: Vec<usize> = (0..graph.node.len()).filter(|&i| indegree[i] == 0).collect();
        let mut done = 0;
        while let Some(n) = ready.pop() {
            done += 1;
            for &c in &consumers[n] {
                indegree[c] -= 1;
                if indegree[c] == 0 {
                    ready.push(c);
                }
            }
        }
        if done != graph.node.len() {
            let ix = indegree.iter().position(|&d| d > 0).unwrap_or(0);
            return Err(OnnxError::Cycle { node: node_name(&graph.node[ix], ix) });
        }

        for output in &graph.output {
            if !full_scope.contains(output.name.as_str()) {
                return Err(OnnxError::UndefinedOutput { output: output.name.clone() });
            }
            self.value_info(output, "graph output")?;
        }
        Ok(())
    }

    fn node(&mut self, node: &pb::NodeProto, ix: usize, scope: &HashSet<&str>, depth: usize) -> Result<(), OnnxError> {
        let name = node_name(node, ix);
        if !KNOWN_DOMAINS.contains(&node.domain.as_str()) || !self.known_ops.contains(&node.op_type) {
            return Err(OnnxError::UnsupportedOp { op: node.op_type.clone(), domain: node.domain.clone(), node: name });
        }
        for attr in &node.attribute {
            self.attribute(node, &name, attr)?;
            if let Some(t) = &attr.t {
                let bytes = self.tensor(t, "attribute tensor")?;
                self.add_weight_bytes(&name, bytes)?;
            }
            for t in &attr.tensors {
                let bytes = self.tensor(t, "attribute tensor")?;
                self.add_weight_bytes(&name, bytes)?;
            }
            if attr.sparse_tensor.is_some() || !attr.sparse_tensors.is_empty() {
                return Err(OnnxError::BadAttribute {
                    node: name,
                    op: node.op_type.clone(),
                    attribute: attr.name.clone(),
                    value: "sparse tensor".into(),
                    reason: "sparse tensors are not supported",
                });
            }
            for g in attr.g.iter().chain(attr.graphs.iter()) {
                self.graph(g, scope, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Attribute values that would divide by zero or make no sense for any op.
    fn attribute(&self, node: &pb::NodeProto, name: &str, attr: &pb::AttributeProto) -> Result<(), OnnxError> {
        let bad = |value: String, reason: &'static str| OnnxError::BadAttribute {
            node: name.to_string(),
            op: node.op_type.clone(),
            attribute: attr.name.clone(),
            value,
            reason,
        };
        match attr.name.as_str() {
            "strides" | "dilations" | "kernel_shape" => {
                if let Some(v) = attr.ints.iter().find(|&&v| v <= 0) {
                    return Err(bad(format!("{:?} ({v})", attr.ints), "must be positive"));
                }
                if let Some(v) = attr.ints.iter().find(|&&v| v > i64::from(i32::MAX)) {
                    return Err(bad(format!("{v}"), "is absurdly large"));
                }
                if attr.ints.len() > self.limits.max_rank {
                    return Err(bad(format!("{} values", attr.ints.len()), "has more entries than the maximum rank"));
                }
            }
            "group" | "blocksize" => {
                if attr.i <= 0 {
                    return Err(bad(attr.i.to_string(), "must be positive"));
                }
                if attr.i > i64::from(i32::MAX) {
                    return Err(bad(attr.i.to_string(), "is absurdly large"));
                }
            }
            "pads" if PADDED_OPS.contains(&node.op_type.as_str()) => {
                if let Some(v) = attr.ints.iter().find(|&&v| v < 0) {
                    return Err(bad(format!("{:?} ({v})", attr.ints), "must not be negative"));
                }
                if let Some(v) = attr.ints.iter().find(|&&v| v > i64::from(i32::MAX)) {
                    return Err(bad(format!("{v}"), "is absurdly large"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn add_weight_bytes(&mut self, name: &str, bytes: u64) -> Result<(), OnnxError> {
        self.total_weight_bytes = self.total_weight_bytes.saturating_add(bytes);
        if self.total_weight_bytes > self.limits.max_total_weight_bytes {
            return Err(OnnxError::LimitExceeded {
                what: "total weight bytes at tensor",
                name: name.to_string(),
                value: self.total_weight_bytes,
                limit: self.limits.max_total_weight_bytes,
            });
        }
        Ok(())
    }

    /// Checks a tensor's type, shape and data length; returns its size in bytes.
    pub(crate) fn tensor(&self, t: &pb::TensorProto, what: &'static str) -> Result<u64, OnnxError> {
        let invalid = |reason: String| OnnxError::Invalid { what, name: t.name.clone(), reason };
        let elem =
            ElemType::from_code(t.data_type).ok_or_else(|| invalid(format!("unknown data type {}", t.data_type)))?;
        let count = self.shape(&t.dims, what, &t.name)?;
        let bytes = elem.raw_bytes(count).ok_or_else(|| OnnxError::LimitExceeded {
            what: "byte size (overflows) of tensor",
            name: t.name.clone(),
            value: u64::MAX,
            limit: self.limits.max_tensor_bytes,
        })?;
        if bytes > self.limits.max_tensor_bytes {
            return Err(OnnxError::LimitExceeded {
                what: "byte size of tensor",
                name: t.name.clone(),
                value: bytes,
                limit: self.limits.max_tensor_bytes,
            });
        }
        if t.segment.is_some() {
            return Err(invalid("segmented tensors are not supported".into()));
        }
        let external = t.data_location == Some(pb::tensor_proto::DataLocation::External as i32);
        if external {
            if !t.raw_data.is_empty() {
                return Err(invalid("has both inline and external data".into()));
            }
            self.external(t, bytes)?;
            return Ok(bytes);
        }
        if !t.raw_data.is_empty() {
            if elem.code == 8 {
                return Err(invalid("string tensors cannot use raw_data".into()));
            }
            if t.raw_data.len() as u64 != bytes {
                return Err(invalid(format!(
                    "raw data is {} bytes but dims {:?} of {} need {bytes}",
                    t.raw_data.len(),
                    t.dims,
                    elem.name
                )));
            }
            return Ok(bytes);
        }
        let entries = match elem.code {
            1 | 14 => t.float_data.len(),
            7 => t.int64_data.len(),
            8 => t.string_data.len(),
            11 | 15 => t.double_data.len(),
            12 | 13 => t.uint64_data.len(),
            _ => t.int32_data.len(),
        } as u64;
        let expected = elem.typed_entries(count);
        if entries != expected {
            return Err(invalid(format!(
                "holds {entries} values but dims {:?} of {} need {expected}",
                t.dims, elem.name
            )));
        }
        Ok(bytes)
    }

    /// Checks dims (rank, sign, overflow, limit); returns the element count.
    fn shape(&self, dims: &[i64], what: &'static str, name: &str) -> Result<u64, OnnxError> {
        if dims.len() > self.limits.max_rank {
            return Err(OnnxError::LimitExceeded {
                what: "rank of",
                name: format!("{what} {name}"),
                value: dims.len() as u64,
                limit: self.limits.max_rank as u64,
            });
        }
        let mut count: u64 = 1;
        for &d in dims {
            if d < 0 {
                return Err(OnnxError::Invalid {
                    what,
                    name: name.to_string(),
                    reason: format!("negative dimension {d} in {dims:?}"),
                });
            }
            count = count.checked_mul(d as u64).ok_or_else(|| OnnxError::LimitExceeded {
                what: "element count (overflows) of",
                name: format!("{what} {name}"),
                value: u64::MAX,
                limit: self.limits.max_tensor_elements,
            })?;
        }
        if count > self.limits.max_tensor_elements {
            return Err(OnnxError::LimitExceeded {
                what: "element count of",
                name: format!("{what} {name}"),
                value: count,
                limit: self.limits.max_tensor_elements,
            });
        }
        Ok(count)
    }

    fn value_info(&self, info: &pb::ValueInfoProto, what: &'static str) -> Result<(), OnnxError> {
        let Some(pb::type_proto::Value::TensorType(tt)) = info.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            return Ok(());
        };
        if tt.elem_type != 0 && ElemType::from_code(tt.elem_type).is_none() {
            return Err(OnnxError::Invalid {
                what,
                name: info.name.clone(),
                reason: format!("unknown data type {}", tt.elem_type),
            });
        }
        if let Some(shape) = &tt.shape {
            use pb::tensor_shape_proto::dimension::Value;
            let known: Vec<i64> = shape
                .dim
                .iter()
                .filter_map(|d| match d.value {
                    Some(Value::DimValue(v)) => Some(v),
                    _ => None,
                })
                .collect();
            if shape.dim.len() > self.limits.max_rank {
                return Err(OnnxError::LimitExceeded {
                    what: "rank of",
                    name: format!("{what} {}", info.name),
                    value: shape.dim.len() as u64,
                    limit: self.limits.max_rank as u64,
                });
            }
            self.shape(&known, what, &info.name)?;
        }
        Ok(())
    }

    /// External data must be a regular file inside the model's folder, big enough for the tensor.
    fn external(&self, t: &pb::TensorProto, bytes: u64) -> Result<(), OnnxError> {
        let err = |reason: String| OnnxError::ExternalData { tensor: t.name.clone(), reason };
        let get = |key: &str| t.external_data.iter().find(|e| e.key == key).map(|e| e.value.as_str());
        let location = get("location").ok_or_else(|| err("no `location` entry".into()))?;
        let parse = |key: &str| -> Result<Option<u64>, OnnxError> {
            get(key)
                .map(|v| v.parse::<u64>().map_err(|_| err(format!("`{key}` = `{v}` is not a byte count"))))
                .transpose()
        };
        let offset = parse("offset")?.unwrap_or(0);
        let length = parse("length")?;
        let rel = Path::new(location);
        if rel.as_os_str().is_empty()
            || rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(err(format!(
                "location `{location}` must be a relative path inside the model's folder (no `..`, no absolute path)"
            )));
        }
        let dir = self
            .model_dir
            .ok_or_else(|| err("the model was not loaded from a file, so external data cannot be resolved".into()))?;
        let canon_dir = dir.canonicalize().map_err(|e| err(format!("model folder `{}`: {e}", dir.display())))?;
        let file = dir.join(rel).canonicalize().map_err(|e| err(format!("`{location}`: {e}")))?;
        if !file.starts_with(&canon_dir) {
            return Err(err(format!("`{location}` resolves outside the model's folder (symlink?)")));
        }
        let meta = std::fs::metadata(&file).map_err(|e| err(format!("`{location}`: {e}")))?;
        if !meta.is_file() {
            return Err(err(format!("`{location}` is not a regular file")));
        }
        let available = meta
            .len()
            .checked_sub(offset)
            .ok_or_else(|| err(format!("offset {offset} is past the end of `{location}` ({} bytes)", meta.len())))?;
        let length = length.unwrap_or(available);
        if length > available {
            return Err(err(format!(
                "offset {offset} + length {length} is past the end of `{location}` ({} bytes)",
                meta.len()
            )));
        }
        if length != bytes {
            return Err(err(format!("holds {length} bytes but the tensor's dims need {bytes}")));
        }
        Ok(())
    }
}

pub(crate) fn node_name(node: &pb::NodeProto, ix: usize) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else if let Some(out) = node.output.iter().find(|o| !o.is_empty()) {
        out.clone()
    } else {
        format!("#{ix} ({})", node.op_type)
    }
}
