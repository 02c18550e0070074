//! Layer-wise reconstruction against the full model: after pruning (or any change upstream),
//! each Conv/MatMul whose input no longer matches the full model's is refit by ridge least
//! squares so that, fed the changed model's own activations, its outputs match the full
//! model's outputs on the calibration data. Layers are refit in order, each seeing the
//! already-refit layers before it. No training framework: normal equations and Cholesky.

use std::collections::HashMap;

use kestrel_engine::Tensor;
use kestrel_onnx::{pb, OnnxModel};
use serde::Serialize;

use crate::calibrate;
use crate::graph;
use crate::linalg::NormalEquations;
use crate::passes::prune_channels::slice_axis;
use crate::CompressError;

const PASS: &str = "reconstruct";
/// A layer whose output already matches the full model this well is left alone.
const UNCHANGED_DB: f64 = 60.0;
const RIDGE: f64 = 1e-4;
/// Upper bound on least-squares rows per layer (patches are subsampled evenly beyond it).
const MAX_ROWS: usize = 40_000;

#[derive(Debug, Clone, Serialize)]
pub struct RefitLayer {
    pub node: String,
    pub op: String,
    /// SQNR (dB) of this layer's output against the full model's, before and after the refit.
    pub sqnr_before_db: f64,
    pub sqnr_after_db: f64,
    pub rows: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReconstructReport {
    pub layers: Vec<RefitLayer>,
    pub skipped: Vec<(String, String)>,
    pub output_sqnr_before_db: f64,
    pub output_sqnr_after_db: f64,
}

#[derive(Debug, Clone)]
struct Layer {
    name: String,
    op: String,
    input: String,
    output: String,
}

/// Refits the layers of `changed` to match `full` on `samples`. `kept` maps the output tensor of
/// each pruned layer to the original indices of the channels it kept (its targets are those
/// channels of the full model's output).
pub fn reconstruct(
    full: &OnnxModel,
    changed: &OnnxModel,
    samples: &[Tensor],
    kept: &HashMap<String, Vec<usize>>,
) -> Result<(OnnxModel, ReconstructReport), CompressError> {
    let reference = calibrate::reference_outputs(full, samples)?;
    let output_sqnr = |m: &OnnxModel| -> Result<f64, CompressError> {
        let got = calibrate::reference_outputs(m, samples)?;
        Ok(reference.iter().zip(&got).map(|(r, t)| calibrate::sqnr_db(r, t)).fold(f64::INFINITY, f64::min))
    };
    let output_sqnr_before_db = output_sqnr(changed)?;
    let mut model = changed.clone();
    let mut report =
        ReconstructReport { layers: vec![], skipped: vec![], output_sqnr_before_db, output_sqnr_after_db: 0.0 };
    let fg = graph::graph(&full.proto)?;
    let cg = graph::graph(&changed.proto)?;
    let layers: Vec<Layer> = cg
        .node
        .iter()
        .filter(|n| {
            matches!(n.op_type.as_str(), "Conv" | "MatMul")
                && n.input.get(1).is_some_and(|w| graph::initializer(cg, w).is_some())
        })
        .map(|n| Layer {
            name: if n.name.is_empty() { n.output[0].clone() } else { n.name.clone() },
            op: n.op_type.clone(),
            input: n.input[0].clone(),
            output: n.output[0].clone(),
        })
        .collect();
    for layer in layers {
        if !fg.node.iter().any(|n| n.output.first() == Some(&layer.output)) {
            report.skipped.push((layer.name.clone(), "the full model has no such output".into()));
            continue;
        }
        let mut targets: Vec<(Vec<usize>, Vec<f32>)> = Vec::new();
        calibrate::observe_shaped(full, samples, std::slice::from_ref(&layer.output), |_, s, v| {
            targets.push((s.to_vec(), v.to_vec()))
        })?;
        if let Some(keep) = kept.get(&layer.output) {
            // Channels are axis 1 of a Conv output, the last axis of a MatMul output.
            for (shape, values) in &mut targets {
                let axis = if layer.op == "Conv" { 1 } else { shape.len() - 1 };
                let (s, v) = slice_axis(shape, values, axis, keep);
                (*shape, *values) = (s, v);
            }
        }
        let mut current: Vec<(Vec<usize>, Vec<f32>)> = Vec::new();
        let mut inputs: Vec<(Vec<usize>, Vec<f32>)> = Vec::new();
        calibrate::observe_shaped(&model, samples, &[layer.input.clone(), layer.output.clone()], |ix, s, v| {
            if ix == 0 { &mut inputs } else { &mut current }.push((s.to_vec(), v.to_vec()))
        })?;
        if targets.iter().zip(&current).any(|(t, c)| t.0 != c.0) {
            report
                .skipped
                .push((layer.name.clone(), "its output shape differs from the full model's (pruned layer)".into()));
            continue;
        }
        let flat = |v: &[(Vec<usize>, Vec<f32>)]| v.iter().flat_map(|x| x.1.iter().copied()).collect::<Vec<f32>>();
        let before = calibrate::sqnr_db(&flat(&targets), &flat(&current));
        if before >= UNCHANGED_DB {
            continue;
        }
        let refit = match layer.op.as_str() {
            "Conv" => refit_conv(&mut model, &layer, &inputs, &targets),
            _ => refit_matmul(&mut model, &layer, &inputs, &targets),
        };
        let (rows, judged_at) = match refit {
            Ok(r) => r,
            Err(reason) => {
                report.skipped.push((layer.name.clone(), reason));
                continue;
            }
        };
        // Judged where the refit lands: the layer output, or its bias Add's for a MatMul.
        let (mut want, mut after) = (Vec::new(), Vec::new());
        calibrate::observe_shaped(full, samples, std::slice::from_ref(&judged_at), |_, s, v| {
            match kept.get(&layer.output) {
                Some(keep) => {
                    let axis = if layer.op == "Conv" { 1 } else { s.len() - 1 };
                    want.extend(slice_axis(s, v, axis, keep).1)
                }
                None => want.extend_from_slice(v),
            }
        })?;
        calibrate::observe(&model, samples, std::slice::from_ref(&judged_at), |_, v| after.extend_from_slice(v))?;
        let sqnr_after_db = calibrate::sqnr_db(&want, &after);
        report.layers.push(RefitLayer { node: layer.name, op: layer.op, sqnr_before_db: before, sqnr_after_db, rows });
    }
    report.output_sqnr_after_db = output_sqnr(&model)?;
    Ok((model, report))
}

fn node_of<'a>(g: &'a mut pb::GraphProto, output: &str) -> Result<&'a mut pb::NodeProto, CompressError> {
    g.node
        .iter_mut()
        .find(|n| n.output.first().is_some_and(|o| o == output))
        .ok_or_else(|| CompressError::Pass { pass: PASS, message: format!("no node produces `{output}`") })
}

/// Evenly spaced row indices, at most `MAX_ROWS` of `total`.
fn row_stride(total: usize) -> usize {
    total.div_ceil(MAX_ROWS).max(1)
}

fn refit_conv(
    model: &mut OnnxModel,
    layer: &Layer,
    inputs: &[(Vec<usize>, Vec<f32>)],
    targets: &[(Vec<usize>, Vec<f32>)],
) -> Result<(usize, String), String> {
    let g = graph::graph_mut(&mut model.proto).map_err(|e| e.to_string())?;
    let node = node_of(g, &layer.output).map_err(|e| e.to_string())?.clone();
    if graph::attr_int(&node, "group").unwrap_or(1) != 1 {
        return Err("grouped convolutions are not refit".into());
    }
    if node.attribute.iter().any(|a| a.name == "auto_pad" && !a.s.is_empty() && a.s != b"NOTSET") {
        return Err("auto_pad convolutions are not refit".into());
    }
    let w_name = node.input[1].clone();
    let (wd, _) =
        graph::f32_values(graph::initializer(g, &w_name).ok_or("weight missing")?).map_err(|e| e.to_string())?;
    let (m, c, kh, kw) = (wd[0], wd[1], wd[2], wd[3]);
    let strides = graph::attr_ints(&node, "strides").map(<[i64]>::to_vec).unwrap_or(vec![1, 1]);
    let dil = graph::attr_ints(&node, "dilations").map(<[i64]>::to_vec).unwrap_or(vec![1, 1]);
    let pads = graph::attr_ints(&node, "pads").map(<[i64]>::to_vec).unwrap_or(vec![0, 0, 0, 0]);
    let k = c * kh * kw + 1;
    let total: usize = targets.iter().map(|(s, _)| s[0] * s[2] * s[3]).sum();
    let stride = row_stride(total);
    let mut ne = NormalEquations::new(k, m);
    let (mut x, mut y) = (vec![0f64; k], vec![0f64; m]);
    let mut row = 0usize;
    for ((xs, xv), (ys, yv)) in inputs.iter().zip(targets) {
        let (n, h, w) = (xs[0], xs[2], xs[3]);
        let (oh, ow) = (ys[2], ys[3]);
        if xs[1] != c || ys[1] != m {
            return Err(format!("activation shapes {xs:?} → {ys:?} do not fit weight {wd:?}"));
        }
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    row += 1;
                    if !row.is_multiple_of(stride) {
                        continue;
                    }
                    let mut i = 0;
                    for ci in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy as i64) * strides[0] - pads[0] + (ky as i64) * dil[0];
                                let ix = (ox as i64) * strides[1] - pads[1] + (kx as i64) * dil[1];
                                x[i] = if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    f64::from(xv[((b * c + ci) * h + iy as usize) * w + ix as usize])
                                } else {
                                    0.0
                                };
                                i += 1;
                            }
                        }
                    }
                    x[k - 1] = 1.0;
                    for (mi, yo) in y.iter_mut().enumerate() {
                        *yo = f64::from(yv[((b * m + mi) * oh + oy) * ow + ox]);
                    }
                    ne.add(&x, &y);
                }
            }
        }
    }
    let theta = ne.solve(RIDGE).ok_or("the least-squares system is singular")?;
    // Θ is k×m: weight for output mi at input position i is theta[i*m + mi].
    let new_w: Vec<f32> =
        (0..m).flat_map(|mi| (0..k - 1).map(move |i| (mi, i))).map(|(mi, i)| theta[i * m + mi] as f32).collect();
    let new_b: Vec<f32> = (0..m).map(|mi| theta[(k - 1) * m + mi] as f32).collect();
    set_initializer(g, &w_name, &wd, &new_w);
    match node.input.get(2).filter(|b| !b.is_empty()) {
        Some(b) => set_initializer(g, b, &[m], &new_b),
        None => {
            let b = format!("{}_reconstructed_bias", layer.name);
            g.initializer.push(graph::f32_tensor(&b, &[m], &new_b));
            node_of(g, &layer.output).map_err(|e| e.to_string())?.input.push(b);
        }
    }
    Ok((ne.rows, layer.output.clone()))
}

fn refit_matmul(
    model: &mut OnnxModel,
    layer: &Layer,
    inputs: &[(Vec<usize>, Vec<f32>)],
    targets: &[(Vec<usize>, Vec<f32>)],
) -> Result<(usize, String), String> {
    let g = graph::graph_mut(&mut model.proto).map_err(|e| e.to_string())?;
    let node = node_of(g, &layer.output).map_err(|e| e.to_string())?.clone();
    let b_name = node.input[1].clone();
    let (bd, _) =
        graph::f32_values(graph::initializer(g, &b_name).ok_or("weight missing")?).map_err(|e| e.to_string())?;
    let (kin, m) = (bd[0], bd[1]);
    // The intercept goes into a following constant bias Add, when there is one.
    let consumers = graph::consumers(g);
    let (bias_add, judged_at) = match consumers.get(&layer.output).map(Vec::as_slice) {
        Some([only]) if g.node[*only].op_type == "Add" => (
            g.node[*only]
                .input
                .iter()
                .find(|i| graph::initializer(g, i).is_some_and(|t| t.dims.iter().product::<i64>() as usize == m))
                .cloned(),
            g.node[*only].output[0].clone(),
        ),
        _ => (None, layer.output.clone()),
    };
    let judged_at = if bias_add.is_some() { judged_at } else { layer.output.clone() };
    let k = kin + usize::from(bias_add.is_some());
    let total: usize = targets.iter().map(|(_, v)| v.len() / m).sum();
    let stride = row_stride(total);
    let mut ne = NormalEquations::new(k, m);
    let (mut x, mut y) = (vec![0f64; k], vec![0f64; m]);
    let mut row = 0usize;
    for ((_, xv), (_, yv)) in inputs.iter().zip(targets) {
        if xv.len() % kin != 0 || xv.len() / kin != yv.len() / m {
            return Err("activation sizes do not fit the weight".into());
        }
        for (xr, yr) in xv.chunks(kin).zip(yv.chunks(m)) {
            row += 1;
            if !row.is_multiple_of(stride) {
                continue;
            }
            for (d, &s) in x.iter_mut().zip(xr) {
                *d = f64::from(s);
            }
            if bias_add.is_some() {
                x[k - 1] = 1.0;
            }
            for (d, &s) in y.iter_mut().zip(yr) {
                *d = f64::from(s);
            }
            ne.add(&x, &y);
        }
    }
    let theta = ne.solve(RIDGE).ok_or("the least-squares system is singular")?;
    let new_b: Vec<f32> = theta[..kin * m].iter().map(|&v| v as f32).collect();
    set_initializer(g, &b_name, &bd, &new_b);
    if let Some(bias) = bias_add {
        let t = graph::initializer(g, &bias).ok_or("bias missing")?;
        let (dims, old) = graph::f32_values(t).map_err(|e| e.to_string())?;
        let updated: Vec<f32> = old.iter().enumerate().map(|(i, &v)| v + theta[kin * m + i] as f32).collect();
        set_initializer(g, &bias, &dims, &updated);
    }
    Ok((ne.rows, judged_at))
}

fn set_initializer(g: &mut pb::GraphProto, name: &str, dims: &[usize], values: &[f32]) {
    if let Some(t) = g.initializer.iter_mut().find(|t| t.name == name) {
        *t = graph::f32_tensor(name, dims, values);
    }
}
