//! Unstructured magnitude pruning: in every Conv and MatMul weight, the `ratio` of entries with
//! the smallest magnitude become zero. The graph keeps its shape (dense ONNX storage does not
//! shrink); what it buys is sparsity that compresses well and that sparse kernels can skip.

use kestrel_onnx::OnnxModel;
use serde::Serialize;

use crate::graph;
use crate::CompressError;

#[derive(Debug, Clone, Serialize)]
pub struct SparsityLayer {
    pub node: String,
    pub weights: usize,
    /// Fraction of zero weights after the pass.
    pub sparsity: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MagnitudeReport {
    pub ratio: f32,
    pub layers: Vec<SparsityLayer>,
}

pub fn prune_magnitude(model: &OnnxModel, ratio: f32) -> Result<(OnnxModel, MagnitudeReport), CompressError> {
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(CompressError::Pass {
            pass: "prune-magnitude",
            message: format!("ratio {ratio} must be within (0, 1)"),
        });
    }
    let mut out = model.clone();
    let g = graph::graph_mut(&mut out.proto)?;
    let targets: Vec<(String, String)> = g
        .node
        .iter()
        .filter(|n| matches!(n.op_type.as_str(), "Conv" | "MatMul" | "Gemm") && n.input.len() >= 2)
        .map(|n| (if n.name.is_empty() { n.output[0].clone() } else { n.name.clone() }, n.input[1].clone()))
        .collect();
    let mut layers = Vec::new();
    for (node, weight) in targets {
        let Some(t) = g.initializer.iter_mut().find(|t| t.name == weight && t.data_type == graph::FLOAT) else {
            continue;
        };
        let (dims, mut w) = graph::f32_values(t)?;
        let mut mags: Vec<f32> = w.iter().map(|v| v.abs()).collect();
        let cut = ((w.len() as f32) * ratio) as usize;
        if cut > 0 {
            let (_, &mut threshold, _) = mags.select_nth_unstable_by(cut - 1, f32::total_cmp);
            let mut zeroed = 0;
            for v in w.iter_mut() {
                if v.abs() <= threshold && zeroed < cut {
                    *v = 0.0;
                    zeroed += 1;
                }
            }
        }
        let zeros = w.iter().filter(|v| **v == 0.0).count();
        *t = graph::f32_tensor(&weight, &dims, &w);
        layers.push(SparsityLayer { node, weights: w.len(), sparsity: zeros as f64 / w.len().max(1) as f64 });
    }
    Ok((out, MagnitudeReport { ratio, layers }))
}
