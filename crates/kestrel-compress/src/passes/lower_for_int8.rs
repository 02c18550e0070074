//! Rewrites two ops that have an int8 equivalent under another name, before quantization, so that
//! TensorFlow/TFLite exports quantize like PyTorch ones:
//!
//! - `Gemm(A, B, C)` with constant B and C, `transA = 0`, `alpha = beta = 1` → `MatMul(A, B')`
//!   then `Add(C)` (B' = Bᵀ when `transB`): the MatMul is quantized, the Add is the bias the
//!   integer runtime adds after it.
//! - `ReduceMean` over H and W of a 4-D tensor → `GlobalAveragePool` (then `Flatten` when
//!   `keepdims = 0`), which has an integer kernel.
//!
//! Both are exact rewrites: the same sums in float.

use std::collections::HashMap;

use kestrel_onnx::pb;

use crate::graph::{self, Names};
use crate::CompressError;

/// Rewrites `g` in place; `shapes` gives each tensor's concrete shape (for the ranks).
pub fn lower_for_int8(g: &mut pb::GraphProto, shapes: &HashMap<String, Vec<usize>>) -> Result<(), CompressError> {
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
            "ReduceMean" if spatial_mean(g, &n, shapes) => {
                let keep = graph::attr_int(&n, "keepdims").unwrap_or(1) != 0;
                if keep {
                    nodes.push(graph::node("GlobalAveragePool", &n.name, &[&n.input[0]], &[&n.output[0]]));
                } else {
                    let pooled = names.fresh(&format!("{}_pooled", n.output[0]));
                    nodes.push(graph::node("GlobalAveragePool", &n.name, &[&n.input[0]], &[&pooled]));
                    let mut flatten =
                        graph::node("Flatten", &format!("{}_flatten", n.name), &[&pooled], &[&n.output[0]]);
                    flatten.attribute.push(pb::AttributeProto {
                        name: "axis".into(),
                        r#type: pb::attribute_proto::AttributeType::Int as i32,
                        i: 1,
                        ..Default::default()
                    });
                    nodes.push(flatten);
                }
            }
            _ => nodes.push(n),
        }
    }
    g.node = nodes;
    g.initializer.extend(inits);
    Ok(())
}

const INT64: i32 = 7;

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

/// A ReduceMean over exactly axes 2 and 3 of a 4-D tensor (axes as attribute or constant input).
fn spatial_mean(g: &pb::GraphProto, n: &pb::NodeProto, shapes: &HashMap<String, Vec<usize>>) -> bool {
    let axes: Option<Vec<i64>> = match graph::attr_ints(n, "axes") {
        Some(a) => Some(a.to_vec()),
        None => n.input.get(1).and_then(|a| graph::initializer(g, a)).filter(|t| t.data_type == INT64).map(|t| {
            let mut v = t.int64_data.clone();
            v.extend(
                t.raw_data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
            );
            v
        }),
    };
    let rank4 = n.input.first().and_then(|x| shapes.get(x)).is_some_and(|s| s.len() == 4);
    let axes = axes.map(|a| {
        let mut a: Vec<i64> = a.iter().map(|&x| if x < 0 { x + 4 } else { x }).collect();
        a.sort_unstable();
        a
    });
    rank4 && axes.as_deref() == Some(&[2, 3])
}
