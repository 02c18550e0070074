//! ONNX (as `kestrel compress --int8` writes it) → `.kmodel` for the integer runtime.
//!
//! Layout: Conv and MaxPool run channels-last (NHWC, weights OHWI), everything else on ONNX's
//! own layout. Each 4-D activation remembers which one it is stored in; a conversion (a
//! Transpose op, or a Reshape when the bytes do not move) is inserted only where an op needs the
//! other one, and remembered, so a chain of convolutions converts once at each end. An ONNX
//! Transpose between NHWC and NCHW (tf2onnx's) usually becomes a Reshape.
//!
//! QLinearConv → Conv, QLinearMatMul → FullyConnected, Quantize/DequantizeLinear at the edges,
//! MaxPool/Reshape/Flatten/Transpose/Relu/Softmax/Concat/Pad as they are, DepthToSpace as a
//! Transpose of its channels-last input, a float Add of a constant (the bias after a dequantized
//! MatMul) → AddConstant, and the QDQ form of an integer Add (`Quantize(Relu?(Add(Dequantize(a),
//! Dequantize(b))))`, as `kestrel compress --integer-only` writes residual connections) → one
//! requantizing Add on the integers, and `Quantize(f(Dequantize(x)))` for an elementwise f (Relu,
//! Clip, LeakyRelu, HardSigmoid, Sigmoid, Tanh, a product or sum with a scalar) → a 256-entry table
//! lookup. The layers a mixed int8 model keeps in float run on the runtime's float kernels: Conv →
//! ConvF32 (weights reordered to [kh, kw, C/g, M]), an Add of two float activations (and a Relu
//! only it feeds) → BinaryF32, MaxPool and zero Pad on float.
//! Shape-only subgraphs (Shape →
//! Gather → … → Reshape's shape) are folded away: shapes are fixed at export. Requantization
//! multipliers are computed in f32 as onnxruntime does, `(x_scale · w_scale) / y_scale`, so the
//! runtime's integers match onnxruntime's bit for bit. Activations get arena offsets from their
//! live ranges (offsets reused once a tensor is dead).

use std::collections::{HashMap, HashSet};

use kestrel_micro::builder::{Builder, TensorSpec};
use kestrel_micro::ops::binary_f32::Kind;
use kestrel_micro::ops::unary_f32::Unary;
use kestrel_micro::{DType, OpCode, Storage};
use kestrel_onnx::{pb, OnnxModel};

use crate::backends::cpu::{shapes_and_constants, FoldedValue};
use crate::EngineError;

/// What the export produced.
pub struct Exported {
    pub bytes: Vec<u8>,
    pub arena_len: usize,
    pub ops: usize,
}

#[derive(Clone)]
struct Tensor {
    dtype: DType,
    dims: Vec<usize>,
    storage: Storage,
    /// Weights offset (constants); arena offset is planned later.
    offset: u32,
    scale: Option<f32>,
    zero_point: i32,
    channel_scales: Option<u32>,
    /// First and last op touching it (activations).
    live: (usize, usize),
    /// A 4-D activation stored channels-last: `dims` are [N, H, W, C] of the ONNX tensor [N, C, H, W].
    nhwc: bool,
}

struct Op {
    code: OpCode,
    inputs: Vec<usize>,
    output: usize,
    params: [u8; 12],
    extra: Option<u32>,
}

struct Exporter<'g> {
    g: &'g pb::GraphProto,
    /// The default domain's opset (some ops changed meaning over versions).
    opset: i64,
    shapes: HashMap<String, (&'static str, Vec<usize>)>,
    b: Builder,
    tensors: Vec<Tensor>,
    by_name: HashMap<String, usize>,
    ops: Vec<Op>,
    /// The same activation in the other layout, once converted (both directions).
    converted: HashMap<usize, usize>,
}

/// An Add or Mul in QDQ form, fused into one integer op at its Quantize node.
struct FusedBinary {
    code: OpCode,
    /// The two DequantizeLinear nodes.
    dq: [usize; 2],
    relu: bool,
}

/// Finds the QDQ integer Adds and Muls: Quantize ← (Relu ←) Add|Mul ← two Dequantize, each
/// intermediate read by nothing else. Returns them by Quantize node, and every node they absorb.
fn fused_binaries(g: &pb::GraphProto) -> (HashMap<usize, FusedBinary>, HashSet<usize>) {
    let producer = |t: &str| g.node.iter().position(|n| n.output.first().is_some_and(|o| o == t));
    let readers = |t: &str| {
        g.node.iter().filter(|n| n.input.iter().any(|i| i == t)).count()
            + g.output.iter().filter(|o| o.name == t).count()
    };
    let mut fused = HashMap::new();
    let mut absorbed = HashSet::new();
    for (qi, q) in g.node.iter().enumerate().filter(|(_, n)| n.op_type == "QuantizeLinear") {
        let Some(mut p) = q.input.first().and_then(|i| producer(i)) else { continue };
        let mut chain = vec![];
        let relu = g.node[p].op_type == "Relu";
        if relu {
            chain.push(p);
            match g.node[p].input.first().and_then(|i| producer(i)) {
                Some(a) => p = a,
                None => continue,
            }
        }
        let node = &g.node[p];
        let code = match node.op_type.as_str() {
            "Add" => OpCode::Add,
            "Mul" => OpCode::Mul,
            _ => continue,
        };
        if node.input.len() != 2 {
            continue;
        }
        chain.push(p);
        let dq: Vec<usize> = node.input.iter().filter_map(|i| producer(i)).collect();
        let all_dq = dq.len() == 2 && dq.iter().all(|&d| g.node[d].op_type == "DequantizeLinear");
        let private = chain.iter().chain(&dq).all(|&c| readers(&g.node[c].output[0]) == 1);
        if all_dq && private {
            absorbed.extend(chain.iter().chain(&dq).copied());
            fused.insert(qi, FusedBinary { code, dq: [dq[0], dq[1]], relu });
        }
    }
    (fused, absorbed)
}

/// Adds of two activations (not already fused) whose output only a Relu reads: by Add node,
/// the Relu node, which runs inside the Add.
fn float_add_relus(g: &pb::GraphProto, skip: &HashSet<usize>) -> HashMap<usize, usize> {
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut found = HashMap::new();
    for (ai, a) in g.node.iter().enumerate() {
        let activations = a.input.len() == 2 && a.input.iter().all(|i| !inits.contains(i.as_str()));
        if a.op_type != "Add" || !activations || skip.contains(&ai) || g.output.iter().any(|o| o.name == a.output[0]) {
            continue;
        }
        let readers: Vec<usize> = (0..g.node.len()).filter(|&i| g.node[i].input.contains(&a.output[0])).collect();
        if let [r] = readers[..] {
            if g.node[r].op_type == "Relu" && !skip.contains(&r) {
                found.insert(ai, r);
            }
        }
    }
    found
}

/// Elementwise float functions that run on the integers as a 256-entry table when they sit
/// between a Dequantize and a Quantize: `Quantize(f(Dequantize(x)))`.
const TABLED: &[&str] = &["Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh"];

/// Activation functions the integer runtime computes on float32 (UnaryF32), between a mixed
/// model's float layers.
const UNARY: &[&str] = &["Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh"];

/// A Mul or Add of an activation and a scalar float constant: (the activation, the constant).
/// Such an op runs on the integers as a table too.
fn scalar_operand<'g>(g: &'g pb::GraphProto, n: &'g pb::NodeProto) -> Option<(&'g str, &'g str)> {
    let scalar = |name: &str| raw(g, name).is_some_and(|r| r.elem.code == 1 && r.bytes.len() == 4);
    match &n.input[..] {
        [a, b] if matches!(n.op_type.as_str(), "Mul" | "Add") && scalar(b) && !scalar(a) => Some((a, b)),
        [a, b] if matches!(n.op_type.as_str(), "Mul" | "Add") && scalar(a) && !scalar(b) => Some((b, a)),
        _ => None,
    }
}

/// Whether `n` runs as a table between a Dequantize and a Quantize.
fn tabled(g: &pb::GraphProto, n: &pb::NodeProto) -> bool {
    TABLED.contains(&n.op_type.as_str()) || scalar_operand(g, n).is_some()
}

/// Float ops with an integer kernel of their own when they sit between a Dequantize and a
/// Quantize (their other inputs constants).
const REQUANTIZING: &[&str] = &["AveragePool", "GlobalAveragePool", "PRelu", "Resize"];

/// Finds `Quantize(f(Dequantize(x)))` with f [`tabled`] or in [`REQUANTIZING`], each
/// intermediate read by nothing else: by Quantize node, (the Dequantize, f); and every node
/// they absorb.
fn fused_unaries(g: &pb::GraphProto, taken: &HashSet<usize>) -> (HashMap<usize, [usize; 2]>, HashSet<usize>) {
    let producer = |t: &str| g.node.iter().position(|n| n.output.first().is_some_and(|o| o == t));
    let private = |t: &str| {
        g.node.iter().filter(|n| n.input.iter().any(|i| i == t)).count() == 1 && !g.output.iter().any(|o| o.name == t)
    };
    let mut found = HashMap::new();
    let mut absorbed = HashSet::new();
    for (qi, q) in g.node.iter().enumerate().filter(|(i, n)| n.op_type == "QuantizeLinear" && !taken.contains(i)) {
        let Some(f) = q.input.first().and_then(|i| producer(i)) else { continue };
        let fnode = &g.node[f];
        let x = scalar_operand(g, fnode).map(|(x, _)| x).or(fnode.input.first().map(String::as_str));
        let Some(d) = x.and_then(producer) else { continue };
        if (tabled(g, fnode) || REQUANTIZING.contains(&fnode.op_type.as_str()))
            && g.node[d].op_type == "DequantizeLinear"
            && private(&fnode.output[0])
            && private(&g.node[d].output[0])
            && !taken.contains(&f)
        {
            absorbed.extend([f, d]);
            found.insert(qi, [d, f]);
        }
    }
    (found, absorbed)
}

/// MaxPool's and AveragePool's parameters for an input of `hw` (its H and W): kernel, strides,
/// pads (top, left, bottom, right; `auto_pad` SAME_* worked out here) and AveragePool's
/// count_include_pad, refusing what the kernels do not do.
fn pooling_params(n: &pb::NodeProto, hw: [usize; 2]) -> Result<[u8; 12], EngineError> {
    if n.attribute
        .iter()
        .any(|a| (a.name == "ceil_mode" && a.i != 0) || (a.name == "dilations" && a.ints.iter().any(|&d| d != 1)))
    {
        return Err(unsupported(n, "ceil_mode and dilations"));
    }
    let k = ints(n, "kernel_shape").unwrap_or_default();
    let s = ints(n, "strides").unwrap_or(vec![1, 1]);
    let mut pads = ints(n, "pads").unwrap_or(vec![0, 0, 0, 0]);
    if k.len() != 2 || s.len() != 2 || pads.len() != 4 || s.contains(&0) {
        return Err(unsupported(n, "only 2-D pooling"));
    }
    let auto_pad = n.attribute.iter().find(|a| a.name == "auto_pad").map_or(&b""[..], |a| &a.s[..]);
    if let b"SAME_UPPER" | b"SAME_LOWER" = auto_pad {
        for i in 0..2 {
            let size = hw[i] as i64;
            let total = (((size + s[i] - 1) / s[i] - 1) * s[i] + k[i] - size).max(0);
            let less = total / 2;
            let (begin, end) = if auto_pad == b"SAME_UPPER" { (less, total - less) } else { (total - less, less) };
            (pads[i], pads[i + 2]) = (begin, end);
        }
    } else if !matches!(auto_pad, b"" | b"NOTSET" | b"VALID") {
        return Err(unsupported(n, "its auto_pad"));
    }
    let count_pad = n.attribute.iter().find(|a| a.name == "count_include_pad").map_or(0, |a| a.i);
    let mut p = [0u8; 12];
    for (slot, v) in p.iter_mut().zip([k[0], k[1], s[0], s[1], pads[0], pads[1], pads[2], pads[3], count_pad]) {
        *slot = small(v, "pooling parameter", n)?;
    }
    Ok(p)
}

/// A string attribute of `n`, or `default`.
fn text_attr(n: &pb::NodeProto, name: &str, default: &str) -> String {
    n.attribute.iter().find(|a| a.name == name).map_or(default.to_string(), |a| String::from_utf8_lossy(&a.s).into())
}

/// A Resize's mode, coordinate transformation and per-axis scales (opset 11 on; from its
/// `scales`, else output over input as onnxruntime computes them from `sizes`).
fn resize_setup(
    n: &pb::NodeProto,
    input: &[usize],
    output: &[usize],
    g: &pb::GraphProto,
) -> Result<(String, String, Vec<f32>), EngineError> {
    let text = |name: &str, default: &str| text_attr(n, name, default);
    let mode = text("mode", "nearest");
    if !matches!(mode.as_str(), "nearest" | "linear") || n.input.len() < 3 {
        return Err(unsupported(n, "only mode=nearest or linear, opset 11 or later"));
    }
    if n.attribute.iter().any(|a| a.name == "axes" || (a.name == "antialias" && a.i != 0))
        || text("keep_aspect_ratio_policy", "stretch") != "stretch"
    {
        return Err(unsupported(n, "axes, antialias and keep_aspect_ratio_policy"));
    }
    let scales = n.input.get(2).filter(|s| !s.is_empty()).and_then(|s| raw(g, s)).map(|r| f32s(&r));
    let scales: Vec<f32> = match scales.filter(|s| !s.is_empty()) {
        Some(s) if s.len() == input.len() => s,
        Some(_) => return Err(unsupported(n, "its scales do not match its input's rank")),
        None => input.iter().zip(output).map(|(&i, &o)| o as f32 / i as f32).collect(),
    };
    Ok((mode, text("coordinate_transformation_mode", "half_pixel"), scales))
}

/// The input coordinate of output index `o` along an axis, in f32 as onnxruntime computes it.
fn source_coordinate(
    n: &pb::NodeProto,
    transform: &str,
    o: usize,
    scale: f32,
    (len_in, len_out): (usize, usize),
) -> Result<f32, EngineError> {
    let o = o as f32;
    Ok(match transform {
        "half_pixel" => (o + 0.5) / scale - 0.5,
        "pytorch_half_pixel" if len_out > 1 => (o + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => 0.0,
        "asymmetric" => o / scale,
        "tf_half_pixel_for_nn" => (o + 0.5) / scale,
        "align_corners" if len_out > 1 => o * (len_in - 1) as f32 / (len_out - 1) as f32,
        "align_corners" => 0.0,
        other => return Err(unsupported(n, &format!("coordinate_transformation_mode {other}"))),
    })
}

/// The source index of every output index, axis by axis, of a nearest-neighbour Resize.
fn resize_maps(
    n: &pb::NodeProto,
    input: &[usize],
    output: &[usize],
    g: &pb::GraphProto,
) -> Result<Vec<Vec<u16>>, EngineError> {
    let (_, transform, scales) = resize_setup(n, input, output, g)?;
    let nearest = text_attr(n, "nearest_mode", "round_prefer_floor");
    let mut maps = Vec::with_capacity(input.len());
    for ((&len_in, &len_out), &scale) in input.iter().zip(output).zip(&scales) {
        let mut map = Vec::with_capacity(len_out);
        for o in 0..len_out {
            let x = source_coordinate(n, &transform, o, scale, (len_in, len_out))?;
            let i = match nearest.as_str() {
                "round_prefer_floor" if x == (x as i64) as f32 + 0.5 => x.floor(),
                "round_prefer_floor" | "round_prefer_ceil" => x.round(),
                "floor" => x.floor(),
                "ceil" => x.ceil(),
                other => return Err(unsupported(n, &format!("nearest_mode {other}"))),
            };
            map.push(i.clamp(0.0, (len_in - 1) as f32) as u16);
        }
        maps.push(map);
    }
    Ok(maps)
}

/// The bilinear entries (`ops::resize::LINEAR_ENTRY` bytes each) of a linear Resize of the
/// last two axes of a 4-D tensor: output rows, then columns, as onnxruntime's
/// `SetupUpsampleBilinear` computes them (an axis of scale 1 maps to itself).
fn linear_maps(
    n: &pb::NodeProto,
    input: &[usize],
    output: &[usize],
    g: &pb::GraphProto,
) -> Result<Vec<u8>, EngineError> {
    let (_, transform, scales) = resize_setup(n, input, output, g)?;
    if input.len() != 4 || input[..2] != output[..2] {
        return Err(unsupported(n, "a linear Resize of other axes than the last two of a 4-D tensor"));
    }
    let mut bytes = Vec::with_capacity((output[2] + output[3]) * kestrel_micro::ops::resize::LINEAR_ENTRY);
    for axis in [2, 3] {
        let (len_in, len_out) = (input[axis], output[axis]);
        for o in 0..len_out {
            let x = if scales[axis] == 1.0 {
                o as f32
            } else {
                source_coordinate(n, &transform, o, scales[axis], (len_in, len_out))?
            };
            let x = x.min((len_in - 1) as f32).max(0.0);
            let i1 = (x as usize).min(len_in - 1);
            let i2 = (i1 + 1).min(len_in - 1);
            let (d1, d2) = if i1 == i2 { (0.5, 0.5) } else { ((x - i1 as f32).abs(), (x - i2 as f32).abs()) };
            for part in
                [&(i1 as u16).to_le_bytes()[..], &(i2 as u16).to_le_bytes(), &d1.to_le_bytes(), &d2.to_le_bytes()]
            {
                bytes.extend_from_slice(part);
            }
        }
    }
    Ok(bytes)
}

/// `dims` with leading 1s up to `rank` (ONNX broadcasting aligns the last axes).
fn with_leading_ones(dims: &[usize], rank: usize) -> Vec<usize> {
    std::iter::repeat_n(1, rank.saturating_sub(dims.len())).chain(dims.iter().copied()).collect()
}

/// Whether `b` broadcasts to `dims` (same rank): each of its dims equal or 1.
fn broadcasts(b: &[usize], dims: &[usize]) -> bool {
    b.len() == dims.len() && b.iter().zip(dims).all(|(&e, &d)| e == d || e == 1)
}

/// A Conv node's parameters in the format's layout (kernel, strides, dilations, pads as u8;
/// groups as u16), for weights of ONNX shape `wdims` ([M, C/g, kh, kw]).
fn conv_params(n: &pb::NodeProto, wdims: &[usize]) -> Result<[u8; 12], EngineError> {
    if n.attribute.iter().any(|a| a.name == "auto_pad" && !a.s.is_empty() && a.s != b"NOTSET") {
        return Err(unsupported(n, "auto_pad"));
    }
    let strides = ints(n, "strides").unwrap_or(vec![1, 1]);
    let dil = ints(n, "dilations").unwrap_or(vec![1, 1]);
    let pads = ints(n, "pads").unwrap_or(vec![0, 0, 0, 0]);
    if wdims.len() != 4 || strides.len() != 2 || dil.len() != 2 || pads.len() != 4 {
        return Err(unsupported(n, "only 2-D convolutions are supported"));
    }
    let group = n.attribute.iter().find(|a| a.name == "group").map_or(1, |a| a.i);
    let mut p = [0u8; 12];
    let vals =
        [wdims[2] as i64, wdims[3] as i64, strides[0], strides[1], dil[0], dil[1], pads[0], pads[1], pads[2], pads[3]];
    let what = ["kernel", "kernel", "stride", "stride", "dilation", "dilation", "pad", "pad", "pad", "pad"];
    for (slot, (v, what)) in p.iter_mut().zip(vals.iter().zip(what)) {
        *slot = small(*v, what, n)?;
    }
    p[10..12].copy_from_slice(&u16::try_from(group).map_err(|_| unsupported(n, "group too large"))?.to_le_bytes());
    Ok(p)
}

fn unsupported(n: &pb::NodeProto, why: &str) -> EngineError {
    let node = if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() };
    EngineError::UnsupportedOp { backend: "micro", op: n.op_type.clone(), node, why: why.to_string() }
}

fn raw(g: &pb::GraphProto, name: &str) -> Option<kestrel_onnx::RawTensor> {
    g.initializer.iter().find(|t| t.name == name).and_then(|t| kestrel_onnx::tensor_raw_le(t).ok())
}

fn f32s(r: &kestrel_onnx::RawTensor) -> Vec<f32> {
    r.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

fn small(v: i64, what: &str, n: &pb::NodeProto) -> Result<u8, EngineError> {
    u8::try_from(v).map_err(|_| unsupported(n, &format!("{what} = {v} does not fit the format (0..=255)")))
}

impl<'g> Exporter<'g> {
    /// An activation function node (one of [`UNARY`]) with its constants.
    fn unary(&self, n: &pb::NodeProto) -> Result<Unary, EngineError> {
        let attr = |name: &str, default: f32| n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.f);
        // Clip's bounds: inputs from opset 11, attributes before.
        let bound = |i: usize, name: &str, default: f32| match n.input.get(i).filter(|v| !v.is_empty()) {
            Some(v) => self.scalar(n, v),
            None => Ok(attr(name, default)),
        };
        Ok(match n.op_type.as_str() {
            "Clip" => Unary::Clip { lo: bound(1, "min", f32::NEG_INFINITY)?, hi: bound(2, "max", f32::INFINITY)? },
            "LeakyRelu" => Unary::LeakyRelu { alpha: attr("alpha", 0.01) },
            "HardSigmoid" => Unary::HardSigmoid { alpha: attr("alpha", 0.2), beta: attr("beta", 0.5) },
            "Sigmoid" => Unary::Sigmoid,
            "HardSwish" => Unary::HardSwish,
            "Tanh" => Unary::Tanh,
            _ => return Err(unsupported(n, "not an activation function")),
        })
    }

    /// A scalar f32 (scale) or u8/i8 (zero point) initializer.
    fn scalar(&self, n: &pb::NodeProto, name: &str) -> Result<f32, EngineError> {
        let r = raw(self.g, name).ok_or_else(|| unsupported(n, &format!("`{name}` is not a constant")))?;
        match r.elem.code {
            1 if r.bytes.len() == 4 => Ok(f32s(&r)[0]),
            2 if r.bytes.len() == 1 => Ok(f32::from(r.bytes[0])),
            3 if r.bytes.len() == 1 => Ok(f32::from(r.bytes[0] as i8)),
            _ => Err(unsupported(n, &format!("`{name}` is not a scalar scale or zero point"))),
        }
    }

    fn shape_of(&self, n: &pb::NodeProto, name: &str) -> Result<Vec<usize>, EngineError> {
        self.shapes
            .get(name)
            .map(|s| s.1.clone())
            .ok_or_else(|| unsupported(n, &format!("the shape of `{name}` is unknown")))
    }

    fn activation(&self, n: &pb::NodeProto, name: &str) -> Result<usize, EngineError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| unsupported(n, &format!("input `{name}` is not an activation the runtime holds")))
    }

    fn new_activation(&mut self, name: &str, dtype: DType, dims: Vec<usize>, quant: Option<(f32, i32)>) -> usize {
        self.tensors.push(Tensor {
            dtype,
            dims,
            storage: Storage::Arena,
            offset: 0,
            scale: quant.map(|q| q.0),
            zero_point: quant.map_or(0, |q| q.1),
            channel_scales: None,
            live: (usize::MAX, 0),
            nhwc: false,
        });
        self.by_name.insert(name.to_string(), self.tensors.len() - 1);
        self.tensors.len() - 1
    }

    /// A new activation like `x` (type, quantization) with other dims and layout.
    fn like(&mut self, x: usize, dims: Vec<usize>, nhwc: bool) -> usize {
        let t =
            Tensor { dims, storage: Storage::Arena, offset: 0, live: (usize::MAX, 0), nhwc, ..self.tensors[x].clone() };
        self.tensors.push(t);
        self.tensors.len() - 1
    }

    /// `x` stored with `perm` applied to its stored axes: a Reshape when no byte moves (only
    /// axes of size 1 change places), else a Transpose. Below rank 4, `perm` leaves the missing
    /// (trailing, size 1) axes in place.
    fn permuted(&mut self, x: usize, perm: [usize; 4], nhwc: bool) -> usize {
        let rank = self.tensors[x].dims.len();
        let mut d = self.tensors[x].dims.clone();
        d.resize(4, 1);
        let y = self.like(x, perm[..rank].iter().map(|&a| d[a]).collect(), nhwc);
        let moving: Vec<usize> = perm.iter().copied().filter(|&a| d[a] != 1).collect();
        if moving.windows(2).all(|w| w[0] < w[1]) {
            self.push(OpCode::Reshape, vec![x], y, [0; 12], None);
        } else {
            let mut p = [0u8; 12];
            for (slot, &a) in p.iter_mut().zip(&perm) {
                *slot = a as u8;
            }
            self.push(OpCode::Transpose, vec![x], y, p, None);
        }
        y
    }

    /// `x` channels-last, for Conv and MaxPool (converted once, then reused).
    fn channels_last(&mut self, n: &pb::NodeProto, x: usize) -> Result<usize, EngineError> {
        if self.tensors[x].dims.len() != 4 {
            return Err(unsupported(n, "its input must be 4-D (N, C, H, W)"));
        }
        if self.tensors[x].nhwc {
            return Ok(x);
        }
        if let Some(&y) = self.converted.get(&x) {
            return Ok(y);
        }
        let y = self.permuted(x, [0, 2, 3, 1], true);
        self.converted.extend([(x, y), (y, x)]);
        Ok(y)
    }

    /// `x` in ONNX's layout, for every op but Conv, MaxPool and the elementwise ones.
    fn onnx_layout(&mut self, x: usize) -> usize {
        if !self.tensors[x].nhwc {
            return x;
        }
        if let Some(&y) = self.converted.get(&x) {
            return y;
        }
        let y = self.permuted(x, [0, 3, 1, 2], false);
        self.converted.extend([(x, y), (y, x)]);
        y
    }

    /// The ONNX shape of `name` ([N, C, H, W]) as stored channels-last.
    fn nhwc_shape_of(&self, n: &pb::NodeProto, name: &str) -> Result<Vec<usize>, EngineError> {
        match self.shape_of(n, name)?[..] {
            [b, c, h, w] => Ok(vec![b, h, w, c]),
            _ => Err(unsupported(n, "its output must be 4-D")),
        }
    }

    /// An activation produced by an elementwise op on `x`: same stored dims and layout.
    fn elementwise(&mut self, name: &str, x: usize, dtype: DType, quant: Option<(f32, i32)>) -> usize {
        let (dims, nhwc) = (self.tensors[x].dims.clone(), self.tensors[x].nhwc);
        let y = self.new_activation(name, dtype, dims, quant);
        self.tensors[y].nhwc = nhwc;
        y
    }

    fn constant(
        &mut self,
        dtype: DType,
        dims: Vec<usize>,
        bytes: &[u8],
        channel_scales: Option<(f32, Vec<f32>)>,
    ) -> usize {
        let offset = self.b.weights(bytes);
        let (scale, channels) = match channel_scales {
            Some((s, c)) => (Some(s), Some(self.b.f32_weights(&c))),
            None => (None, None),
        };
        self.tensors.push(Tensor {
            dtype,
            dims,
            storage: Storage::Weights,
            offset,
            scale,
            zero_point: 0,
            channel_scales: channels,
            live: (0, 0),
            nhwc: false,
        });
        self.tensors.len() - 1
    }

    /// The int8 weight of a QLinear op, checking it is symmetric (all zero points 0).
    fn weight(
        &mut self,
        n: &pb::NodeProto,
        w: &str,
        scale: &str,
        zp: &str,
        channels: usize,
    ) -> Result<(usize, Vec<f32>), EngineError> {
        let mut wr = raw(self.g, w).ok_or_else(|| unsupported(n, "the weight is not a constant"))?;
        if let [m, c, kh, kw] = wr.dims[..] {
            // Convolution filters [M, C/g, kh, kw] → [M, kh, kw, C/g] (channels-last).
            let mut ohwi = vec![0u8; wr.bytes.len()];
            for (i, &v) in wr.bytes.iter().enumerate() {
                let (o, ci, ky, kx) = (i / (c * kh * kw), i / (kh * kw) % c, i / kw % kh, i % kw);
                ohwi[((o * kh + ky) * kw + kx) * c + ci] = v;
            }
            wr.bytes = ohwi;
            wr.dims = vec![m, kh, kw, c];
        }
        if wr.elem.code != 3 {
            return Err(unsupported(n, "weights must be int8"));
        }
        let sr = raw(self.g, scale).ok_or_else(|| unsupported(n, "the weight scale is not a constant"))?;
        let mut scales = f32s(&sr);
        if scales.len() == 1 {
            scales = vec![scales[0]; channels];
        }
        if scales.len() != channels {
            return Err(unsupported(n, "weight scales are neither per-tensor nor per output channel"));
        }
        let zr = raw(self.g, zp).ok_or_else(|| unsupported(n, "the weight zero point is not a constant"))?;
        if zr.bytes.iter().any(|&b| b != 0) {
            return Err(unsupported(n, "weight zero points must be 0 (symmetric weights)"));
        }
        let first = scales[0];
        let t = self.constant(DType::I8, wr.dims.clone(), &wr.bytes, Some((first, scales.clone())));
        Ok((t, scales))
    }

    fn bias(&mut self, n: &pb::NodeProto, channels: usize) -> Result<Option<usize>, EngineError> {
        let Some(name) = n.input.get(8).filter(|b| !b.is_empty()) else { return Ok(None) };
        let r = raw(self.g, name).ok_or_else(|| unsupported(n, "the bias is not a constant"))?;
        if r.elem.code != 6 || r.bytes.len() != channels * 4 {
            return Err(unsupported(n, "the bias must be int32 with one value per output channel"));
        }
        Ok(Some(self.constant(DType::I32, vec![channels], &r.bytes, None)))
    }

    /// The uint8 activation a DequantizeLinear node reads, checked to dequantize with its own
    /// parameters (the fused ops take the scale and zero point from the tensor).
    fn dequantized(&self, dq: &pb::NodeProto) -> Result<usize, EngineError> {
        let x = self.activation(dq, &dq.input[0])?;
        let (s, z) = self.quantization(dq)?;
        let t = &self.tensors[x];
        if t.dtype != DType::U8 || t.scale != Some(s) || t.zero_point != z {
            return Err(unsupported(dq, "it dequantizes with parameters other than its input's"));
        }
        Ok(x)
    }

    /// A Quantize or Dequantize node's (scale, zero point).
    fn quantization(&self, n: &pb::NodeProto) -> Result<(f32, i32), EngineError> {
        let z = self.scalar(n, n.input.get(2).map_or("", |v| v))?;
        Ok((self.scalar(n, &n.input[1])?, z as i32))
    }

    /// `x` with leading dims of 1 up to `rank` (a Reshape: ONNX broadcasting aligns the last axes).
    fn with_rank(&mut self, n: &pb::NodeProto, x: usize, rank: usize) -> Result<usize, EngineError> {
        let dims = &self.tensors[x].dims;
        if dims.len() > rank {
            return Err(unsupported(n, "its second operand has more axes than the first"));
        }
        if dims.len() == rank {
            return Ok(x);
        }
        let y = self.like(x, with_leading_ones(dims, rank), false);
        self.push(OpCode::Reshape, vec![x], y, [0; 12], None);
        Ok(y)
    }

    /// The integer Add or Mul for the QuantizeLinear `q` that closes a QDQ Add or Mul. The
    /// smaller operand broadcasts over the larger (each of its dims equal or 1).
    fn fused_binary(&mut self, q: &pb::NodeProto, f: &FusedBinary) -> Result<(), EngineError> {
        let (mut a, mut b) = (self.dequantized(&self.g.node[f.dq[0]])?, self.dequantized(&self.g.node[f.dq[1]])?);
        let elements = |t: &Tensor| t.dims.iter().product::<usize>();
        if elements(&self.tensors[b]) > elements(&self.tensors[a]) {
            (a, b) = (b, a); // both ops commute, in float too
        }
        b = self.with_rank(q, b, self.tensors[a].dims.len())?;
        if self.tensors[a].nhwc != self.tensors[b].nhwc {
            (a, b) = (self.channels_last(q, a)?, self.channels_last(q, b)?);
        }
        if !broadcasts(&self.tensors[b].dims, &self.tensors[a].dims) {
            return Err(unsupported(q, "its operands neither share a shape nor broadcast one to the other"));
        }
        let y = self.elementwise(&q.output[0], a, DType::U8, Some(self.quantization(q)?));
        let mut p = [0u8; 12];
        p[0] = u8::from(f.relu);
        self.push(f.code, vec![a, b], y, p, None);
        Ok(())
    }

    /// The integer kernel of `Quantize(f(Dequantize(x)))` for f in [`REQUANTIZING`].
    fn fused_kernel(&mut self, q: &pb::NodeProto, [d, f]: [usize; 2]) -> Result<(), EngineError> {
        let fnode = &self.g.node[f];
        let x = self.dequantized(&self.g.node[d])?;
        let quant = self.quantization(q)?;
        let out = &q.output[0];
        match fnode.op_type.as_str() {
            "AveragePool" => {
                let x = self.channels_last(fnode, x)?;
                let d = &self.tensors[x].dims;
                let p = pooling_params(fnode, [d[1], d[2]])?;
                let y = self.new_activation(out, DType::U8, self.nhwc_shape_of(fnode, &fnode.output[0])?, Some(quant));
                self.tensors[y].nhwc = true;
                self.push(OpCode::AveragePool, vec![x], y, p, None);
            }
            "GlobalAveragePool" => {
                let x = self.channels_last(fnode, x)?;
                let d = &self.tensors[x].dims;
                let y = self.new_activation(out, DType::U8, vec![d[0], 1, 1, d[3]], Some(quant));
                self.tensors[y].nhwc = true;
                self.push(OpCode::GlobalAveragePool, vec![x], y, [0; 12], None);
            }
            "PRelu" => {
                let slope = self.prelu_slope(fnode, x)?;
                let y = self.elementwise(out, x, DType::U8, Some(quant));
                self.push(OpCode::PRelu, vec![x, slope], y, [0; 12], None);
            }
            "Resize" if text_attr(fnode, "mode", "nearest") == "linear" => {
                if self.tensors[x].dtype != DType::U8 {
                    return Err(unsupported(fnode, "a linear Resize of other than uint8"));
                }
                self.linear_resize(fnode, x, out, Some(quant))?;
            }
            _ => {
                let t = &self.tensors[x];
                if (t.scale, t.zero_point) != (Some(quant.0), quant.1) {
                    return Err(unsupported(q, "it quantizes a nearest Resize with other parameters than its input's"));
                }
                self.nearest_resize(fnode, x, out, Some(quant))?;
            }
        }
        Ok(())
    }

    /// A bilinear Resize of `x` (as stored, uint8 requantized to `quant` or float32) into `out`.
    fn linear_resize(
        &mut self,
        n: &pb::NodeProto,
        x: usize,
        out: &str,
        quant: Option<(f32, i32)>,
    ) -> Result<(), EngineError> {
        let (input, dims) = (self.shape_of(n, &n.input[0])?, self.shape_of(n, &n.output[0])?);
        let maps = linear_maps(n, &input, &dims, self.g)?;
        let at = self.b.weights(&maps);
        let (dtype, nhwc) = (self.tensors[x].dtype, self.tensors[x].nhwc);
        let stored = if nhwc { vec![dims[0], dims[2], dims[3], dims[1]] } else { dims };
        let y = self.new_activation(out, dtype, stored, quant);
        self.tensors[y].nhwc = nhwc;
        let mut p = [0u8; 12];
        p[0] = u8::from(nhwc);
        self.push(OpCode::ResizeLinear, vec![x], y, p, Some(at));
        Ok(())
    }

    /// A nearest Resize of `x` (as stored) into `out`: per-axis index maps; for float32, the
    /// innermost axis's map counted in bytes (the kernel gathers bytes).
    fn nearest_resize(
        &mut self,
        n: &pb::NodeProto,
        x: usize,
        out: &str,
        quant: Option<(f32, i32)>,
    ) -> Result<(), EngineError> {
        let t = self.tensors[x].clone();
        let dims = self.shape_of(n, &n.output[0])?;
        let maps = resize_maps(n, &self.shape_of(n, &n.input[0])?, &dims, self.g)?;
        // Stored channels-last: the maps and dims of axes (0, 2, 3, 1).
        let order: &[usize] = if t.nhwc { &[0, 2, 3, 1] } else { &[0, 1, 2, 3] };
        let dims: Vec<usize> = order[..dims.len()].iter().map(|&a| dims[a]).collect();
        let mut axes: Vec<Vec<u16>> =
            (0..4).map(|i| order.get(i).and_then(|&a| maps.get(a)).cloned().unwrap_or(vec![0])).collect();
        let size = t.dtype.size();
        if size > 1 {
            if dims.len() != 4 || t.dims[3] * size > usize::from(u16::MAX) {
                return Err(unsupported(n, "a float Resize of other than a 4-D tensor of at most 16383 columns"));
            }
            axes[3] = axes[3].iter().flat_map(|&m| (0..size as u16).map(move |b| m * size as u16 + b)).collect();
        }
        let bytes: Vec<u8> = axes.iter().flatten().flat_map(|m| m.to_le_bytes()).collect();
        let at = self.b.weights(&bytes);
        let y = self.new_activation(out, t.dtype, dims, quant);
        self.tensors[y].nhwc = t.nhwc;
        self.push(OpCode::Resize, vec![x], y, [0; 12], Some(at));
        Ok(())
    }

    /// PRelu's float32 slope as a constant broadcast over `x` as stored (its axes aligned to
    /// the last of x's, then permuted like x when x is channels-last).
    fn prelu_slope(&mut self, n: &pb::NodeProto, x: usize) -> Result<usize, EngineError> {
        let r = raw(self.g, &n.input[1]).filter(|r| r.elem.code == 1);
        let r = r.ok_or_else(|| unsupported(n, "its slope must be a float32 constant"))?;
        let rank = self.tensors[x].dims.len();
        if r.dims.len() > rank {
            return Err(unsupported(n, "its slope has more axes than its input"));
        }
        let mut dims = with_leading_ones(&r.dims, rank);
        let mut values = f32s(&r);
        if self.tensors[x].nhwc {
            // [a, b, c, d] → [a, c, d, b], values moved along.
            let [a, b, c, e] = [dims[0], dims[1], dims[2], dims[3]];
            let old = values.clone();
            for (i, v) in values.iter_mut().enumerate() {
                let (i0, i2, i3, i1) = (i / (c * e * b), i / (e * b) % c, i / b % e, i % b);
                *v = old[((i0 * b + i1) * c + i2) * e + i3];
            }
            dims = vec![a, c, e, b];
        }
        if !broadcasts(&dims, &self.tensors[x].dims) {
            return Err(unsupported(n, "its slope does not broadcast to its input"));
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok(self.constant(DType::F32, dims, &bytes, None))
    }

    /// The table of `Quantize(f(Dequantize(x)))` over all 256 inputs, the float steps as
    /// onnxruntime's unfused graph does them (Dequantize, f in f32, Quantize's division).
    fn fused_lookup(&mut self, q: &pb::NodeProto, [d, f]: [usize; 2]) -> Result<(), EngineError> {
        let fnode = &self.g.node[f];
        let x = self.dequantized(&self.g.node[d])?;
        let (xs, xz) = (self.tensors[x].scale.unwrap_or(1.0), self.tensors[x].zero_point as f32);
        let (ys, yz) = self.quantization(q)?;
        let yz = yz as f32;
        let f: Box<dyn Fn(f32) -> f32> = match fnode.op_type.as_str() {
            "Relu" => Box::new(|v: f32| v.max(0.0)),
            // std's exp and tanh here (the table is made once): nearest to onnxruntime's.
            op if UNARY.contains(&op) => match self.unary(fnode)? {
                Unary::Clip { lo, hi } => Box::new(move |v: f32| v.max(lo).min(hi)),
                Unary::LeakyRelu { alpha } => Box::new(move |v: f32| if v >= 0.0 { v } else { alpha * v }),
                Unary::HardSigmoid { alpha, beta } => Box::new(move |v: f32| (alpha * v + beta).clamp(0.0, 1.0)),
                Unary::Sigmoid => Box::new(|v: f32| 1.0 / (1.0 + (-v).exp())),
                Unary::HardSwish => Box::new(|v: f32| v * (v * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0)),
                Unary::Tanh => Box::new(|v: f32| v.tanh()),
            },
            op => {
                let c = scalar_operand(self.g, fnode).map(|(_, c)| self.scalar(fnode, c)).transpose()?;
                match (op, c) {
                    ("Mul", Some(c)) => Box::new(move |v: f32| v * c),
                    ("Add", Some(c)) => Box::new(move |v: f32| v + c),
                    _ => return Err(unsupported(fnode, "no table for this op")),
                }
            }
        };
        let (lo, hi) = (-yz, 255.0 - yz);
        let table: Vec<u8> = (0..=255u8)
            .map(|b| {
                let v = f((f32::from(b) - xz) * xs) / ys;
                let v = if v.is_nan() { 0.0 } else { v.max(lo).min(hi) };
                (v.round_ties_even() + yz) as u8
            })
            .collect();
        let at = self.b.weights(&table);
        let y = self.elementwise(&q.output[0], x, DType::U8, Some((ys, yz as i32)));
        self.push(OpCode::Lookup, vec![x], y, [0; 12], Some(at));
        Ok(())
    }

    fn node(&mut self, n: &pb::NodeProto) -> Result<(), EngineError> {
        let out = n.output.first().cloned().unwrap_or_default();
        match n.op_type.as_str() {
            "QuantizeLinear" => {
                let x = self.activation(n, &n.input[0])?;
                let y = self.elementwise(&out, x, DType::U8, Some(self.quantization(n)?));
                self.push(OpCode::Quantize, vec![x], y, [0; 12], None);
            }
            "DequantizeLinear" => {
                // A channels-last input stays so when every reader takes that layout (a mixed
                // model's float layers); else convert the (4× smaller) uint8 side to ONNX's.
                let x = self.dequantized(n)?;
                let readers_take_nhwc = self.g.node.iter().filter(|r| r.input.contains(&out)).all(|r| {
                    matches!(r.op_type.as_str(), "Conv" | "MaxPool" | "Add" | "Relu" | "Pad" | "QuantizeLinear")
                }) && !self.g.output.iter().any(|o| o.name == out);
                let x = if readers_take_nhwc { x } else { self.onnx_layout(x) };
                let y = self.elementwise(&out, x, DType::F32, None);
                self.push(OpCode::Dequantize, vec![x], y, [0; 12], None);
            }
            "QLinearConv" => {
                let x = self.activation(n, &n.input[0])?;
                let x = self.channels_last(n, x)?;
                let (xs, xz) = (self.scalar(n, &n.input[1])?, self.scalar(n, &n.input[2])?);
                if self.tensors[x].scale != Some(xs) || self.tensors[x].zero_point != xz as i32 {
                    return Err(unsupported(n, "its x_scale/x_zero_point differ from its input's"));
                }
                let wdims = raw(self.g, &n.input[3]).map(|r| r.dims).unwrap_or_default();
                if wdims.len() != 4 {
                    return Err(unsupported(n, "only 2-D convolutions are supported"));
                }
                let m = wdims[0];
                let (w, ws) = self.weight(n, &n.input[3], &n.input[4], &n.input[5], m)?;
                let (ys, yz) = (self.scalar(n, &n.input[6])?, self.scalar(n, &n.input[7])?);
                let bias = self.bias(n, m)?;
                let p = conv_params(n, &wdims)?;
                let mult: Vec<f32> = ws.iter().map(|&w| (xs * w) / ys).collect();
                let extra = self.b.f32_weights(&mult);
                let y = self.new_activation(&out, DType::U8, self.nhwc_shape_of(n, &out)?, Some((ys, yz as i32)));
                self.tensors[y].nhwc = true;
                let mut inputs = vec![x, w];
                inputs.extend(bias);
                self.push(OpCode::Conv, inputs, y, p, Some(extra));
            }
            "QLinearMatMul" => {
                let x = self.activation(n, &n.input[0])?;
                let x = self.onnx_layout(x);
                let (xs, xz) = (self.scalar(n, &n.input[1])?, self.scalar(n, &n.input[2])?);
                if self.tensors[x].scale != Some(xs)
                    || self.tensors[x].zero_point != xz as i32
                    || self.tensors[x].dims.len() != 2
                {
                    return Err(unsupported(n, "its input must be a 2-D uint8 activation with matching parameters"));
                }
                let wdims = raw(self.g, &n.input[3]).map(|r| r.dims).unwrap_or_default();
                if wdims.len() != 2 {
                    return Err(unsupported(n, "the weight must be a 2-D constant"));
                }
                let (w, ws) = self.weight(n, &n.input[3], &n.input[4], &n.input[5], wdims[1])?;
                // Per-column scales live on the weight tensor as "channels"; the format's
                // per-channel axis is 0, so record them only as multipliers.
                self.tensors[w].channel_scales = None;
                let (ys, yz) = (self.scalar(n, &n.input[6])?, self.scalar(n, &n.input[7])?);
                let mult: Vec<f32> = ws.iter().map(|&w| (xs * w) / ys).collect();
                let extra = self.b.f32_weights(&mult);
                let y = self.new_activation(&out, DType::U8, self.shape_of(n, &out)?, Some((ys, yz as i32)));
                self.push(OpCode::FullyConnected, vec![x, w], y, [0; 12], Some(extra));
            }
            "MaxPool" => {
                let x = self.activation(n, &n.input[0])?;
                let x = self.channels_last(n, x)?;
                if n.output.len() > 1 && !n.output[1].is_empty() {
                    return Err(unsupported(n, "only MaxPool without indices"));
                }
                let d = &self.tensors[x].dims;
                let p = pooling_params(n, [d[1], d[2]])?;
                let quant = self.tensors[x].scale.map(|s| (s, self.tensors[x].zero_point));
                let dtype = self.tensors[x].dtype;
                let y = self.new_activation(&out, dtype, self.nhwc_shape_of(n, &out)?, quant);
                self.tensors[y].nhwc = true;
                self.push(OpCode::MaxPool, vec![x], y, p, None);
            }
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity" => {
                let x = self.activation(n, &n.input[0])?;
                let x = self.onnx_layout(x);
                let t = self.tensors[x].clone();
                let y = self.new_activation(&out, t.dtype, self.shape_of(n, &out)?, t.scale.map(|s| (s, t.zero_point)));
                self.push(OpCode::Reshape, vec![x], y, [0; 12], None);
            }
            "Slice" => {
                let x = self.activation(n, &n.input[0])?;
                let dims = self.shape_of(n, &n.input[0])?;
                let begin = slice_begin(self.g, n, &dims)?;
                self.crop(n, x, &begin, &out)?;
            }
            "Split" => {
                let x = self.activation(n, &n.input[0])?;
                let rank = self.shape_of(n, &n.input[0])?.len() as i64;
                let axis = n.attribute.iter().find(|a| a.name == "axis").map_or(0, |a| a.i);
                let axis = if axis < 0 { axis + rank } else { axis };
                if !(0..rank).contains(&axis) {
                    return Err(unsupported(n, "its axis is outside the rank"));
                }
                // Each output is a crop of the input along the axis, sized as the shapes say.
                let mut begin = vec![0; rank as usize];
                for o in n.output.iter().filter(|o| !o.is_empty()) {
                    self.crop(n, x, &begin, o)?;
                    begin[axis as usize] += self.shape_of(n, o)?[axis as usize];
                }
            }
            "Transpose" => {
                let x = self.activation(n, &n.input[0])?;
                let t = self.tensors[x].clone();
                let rank = t.dims.len();
                let mut perm = ints(n, "perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
                let mut seen = [false; 4];
                if !(1..=4).contains(&rank)
                    || perm.len() != rank
                    || perm
                        .iter()
                        .any(|&a| !(0..rank as i64).contains(&a) || std::mem::replace(&mut seen[a as usize], true))
                {
                    return Err(unsupported(n, "only transposes of rank ≤ 4 with a permutation of its axes"));
                }
                perm.extend(rank as i64..4);
                // Logical axis a of an NHWC-stored tensor is stored at axis `stored[a]`.
                let stored = if t.nhwc { [0, 3, 1, 2] } else { [0, 1, 2, 3] };
                let q = [
                    stored[perm[0] as usize],
                    stored[perm[1] as usize],
                    stored[perm[2] as usize],
                    stored[perm[3] as usize],
                ];
                let y = self.permuted(x, q, false);
                if self.tensors[y].dims != self.shape_of(n, &out)? {
                    return Err(unsupported(n, "the transposed shape differs from the model's"));
                }
                if q == [0, 3, 1, 2] {
                    // NHWC → NCHW (tf2onnx's): x's bytes are y's channels-last form (one way
                    // only: x itself is no NCHW tensor's conversion).
                    self.converted.insert(y, x);
                }
                self.by_name.insert(out.clone(), y);
            }
            "DepthToSpace" => self.depth_to_space(n, &out)?,
            "Add" if n.input.len() == 2 && n.input.iter().all(|i| raw(self.g, i).is_none()) => {
                self.float_binary(n, Kind::Add, None)?
            }
            "Sub" => self.float_binary(n, Kind::Sub, None)?,
            "Mul" => self.float_binary(n, Kind::Mul, None)?,
            "Div" => self.float_binary(n, Kind::Div, None)?,
            "Add" => {
                let (a, b) = (&n.input[0], &n.input[1]);
                let (act, cst) = if raw(self.g, b).is_some() { (a, b) } else { (b, a) };
                let c = raw(self.g, cst)
                    .filter(|r| r.elem.code == 1)
                    .ok_or_else(|| unsupported(n, "only a float Add of a constant"))?;
                let x = self.activation(n, act)?;
                let x = self.onnx_layout(x);
                if self.tensors[x].dtype != DType::F32 {
                    return Err(unsupported(n, "only a float Add of a constant"));
                }
                // AddConstant (in every build) adds a whole tensor or a row along the last axis;
                // other shapes (a scalar, a per-channel bias) broadcast through BinaryF32.
                let elements: usize = c.dims.iter().product();
                let dims = &self.tensors[x].dims;
                if elements != dims.iter().product::<usize>() && elements != dims.last().copied().unwrap_or(1) {
                    return self.float_binary(n, Kind::Add, None);
                }
                let ct = self.constant(DType::F32, c.dims.clone(), &c.bytes, None);
                if self.tensors[ct].dims.is_empty() {
                    self.tensors[ct].dims = vec![1];
                }
                let dims = self.tensors[x].dims.clone();
                let y = self.new_activation(&out, DType::F32, dims, None);
                self.push(OpCode::AddConstant, vec![x, ct], y, [0; 12], None);
            }
            "Pad" => {
                let x = self.activation(n, &n.input[0])?;
                let t = self.tensors[x].clone();
                let mode_constant = n.attribute.iter().all(|a| a.name != "mode" || a.s == b"constant");
                let pads = n.input.get(1).and_then(|p| raw(self.g, p)).filter(|r| r.elem.code == 7);
                // uint8 pads with its byte; float with zeros only (the format stores a byte).
                let value = match (n.input.get(2).filter(|v| !v.is_empty()), t.dtype) {
                    (None, _) => Some(0u8),
                    (Some(v), DType::U8) => {
                        raw(self.g, v).filter(|r| r.elem.code == 2 && r.bytes.len() == 1).map(|r| r.bytes[0])
                    }
                    (Some(v), _) => raw(self.g, v).filter(|r| r.elem.code == 1 && r.bytes == [0; 4]).map(|_| 0),
                };
                let float_or_byte = matches!(t.dtype, DType::U8 | DType::F32);
                let (Some(pads), Some(value), true, 4, true) =
                    (pads, value, mode_constant, t.dims.len(), float_or_byte)
                else {
                    return Err(unsupported(
                        n,
                        "only constant 4-D padding (uint8, or float32 with zeros) with constant pads",
                    ));
                };
                let pads: Vec<i64> =
                    pads.bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
                if pads.len() != 8 {
                    return Err(unsupported(n, "pads must hold 8 values"));
                }
                // Logical axis a of an NHWC-stored tensor is stored at stored axis s = ….
                let logical = if t.nhwc { [0, 2, 3, 1] } else { [0, 1, 2, 3] };
                let mut p = [0u8; 12];
                for s in 0..4 {
                    p[s] = small(pads[logical[s]], "pad", n)?;
                    p[4 + s] = small(pads[4 + logical[s]], "pad", n)?;
                }
                p[8] = value;
                let dims: Vec<usize> = (0..4).map(|s| t.dims[s] + usize::from(p[s]) + usize::from(p[4 + s])).collect();
                let y = self.like(x, dims, t.nhwc);
                self.by_name.insert(out.clone(), y);
                self.push(OpCode::Pad, vec![x], y, p, None);
            }
            "Concat" => {
                let xs: Vec<usize> = n
                    .input
                    .iter()
                    .map(|i| self.activation(n, i).map(|x| self.onnx_layout(x)))
                    .collect::<Result<_, _>>()?;
                let rank = self.tensors[xs[0]].dims.len() as i64;
                let axis = n.attribute.iter().find(|a| a.name == "axis").map_or(0, |a| a.i);
                let axis = if axis < 0 { axis + rank } else { axis };
                if !(2..=4).contains(&xs.len()) || !(0..rank).contains(&axis) {
                    return Err(unsupported(n, "2 to 4 inputs, an axis within the rank"));
                }
                let kind = |t: &Tensor| (t.dtype, t.scale.map(f32::to_bits), t.zero_point);
                if xs.iter().any(|&x| kind(&self.tensors[x]) != kind(&self.tensors[xs[0]])) {
                    return Err(unsupported(n, "its inputs differ in type or quantization (no requantizing Concat)"));
                }
                let y = self.like(xs[0], self.shape_of(n, &out)?, false);
                self.by_name.insert(out.clone(), y);
                let mut p = [0u8; 12];
                p[0] = axis as u8;
                self.push(OpCode::Concat, xs, y, p, None);
            }
            "Relu" => {
                let x = self.activation(n, &n.input[0])?;
                let t = self.tensors[x].clone();
                let y = self.elementwise(&out, x, t.dtype, t.scale.map(|s| (s, t.zero_point)));
                self.push(OpCode::Relu, vec![x], y, [0; 12], None);
            }
            "Resize" => {
                let x = self.activation(n, &n.input[0])?;
                if self.tensors[x].dtype != DType::F32 {
                    return Err(unsupported(n, "on integers only between a Dequantize and a Quantize"));
                }
                match text_attr(n, "mode", "nearest").as_str() {
                    "linear" => self.linear_resize(n, x, &out, None)?,
                    _ => self.nearest_resize(n, x, &out, None)?,
                }
            }
            "GlobalAveragePool" => {
                let x = self.activation(n, &n.input[0])?;
                if self.tensors[x].dtype != DType::F32 {
                    return Err(unsupported(n, "on integers only between a Dequantize and a Quantize"));
                }
                let x = self.channels_last(n, x)?;
                let d = self.tensors[x].dims.clone();
                let y = self.new_activation(&out, DType::F32, vec![d[0], 1, 1, d[3]], None);
                self.tensors[y].nhwc = true;
                self.push(OpCode::GlobalAveragePool, vec![x], y, [0; 12], None);
            }
            op if UNARY.contains(&op) => {
                let x = self.activation(n, &n.input[0])?;
                if self.tensors[x].dtype != DType::F32 {
                    return Err(unsupported(n, "on integers only between a Dequantize and a Quantize (as a table)"));
                }
                let f = self.unary(n)?;
                let y = self.elementwise(&out, x, DType::F32, None);
                self.push(OpCode::UnaryF32, vec![x], y, f.params(), None);
            }
            "Softmax" => {
                let x = self.activation(n, &n.input[0])?;
                let x = self.onnx_layout(x);
                let rank = self.tensors[x].dims.len() as i64;
                // Before opset 13, Softmax takes every axis from `axis` (default 1) on as one.
                let coerced = self.opset < 13;
                let axis = n.attribute.iter().find(|a| a.name == "axis").map_or(if coerced { 1 } else { -1 }, |a| a.i);
                let axis = if axis < 0 { axis + rank } else { axis };
                if self.tensors[x].dtype != DType::F32 || !(0..rank).contains(&axis) {
                    return Err(unsupported(n, "only float Softmax over an axis within the rank"));
                }
                let mut p = [0u8; 12];
                p[0] = axis as u8;
                // Over the last axis, both readings agree: written as before.
                p[1] = u8::from(coerced && axis != rank - 1);
                let dims = self.tensors[x].dims.clone();
                let y = self.new_activation(&out, DType::F32, dims, None);
                self.push(OpCode::Softmax, vec![x], y, p, None);
            }
            "Conv" => self.float_conv(n)?,
            "MatMul" => {
                let x = self.activation(n, &n.input[0])?;
                let w = raw(self.g, &n.input[1]).filter(|r| r.elem.code == 1 && r.dims.len() == 2);
                let (t, w) = match w {
                    Some(w) if self.tensors[x].dtype == DType::F32 && self.tensors[x].dims.len() == 2 => (&self.tensors[x], w),
                    _ => {
                        return Err(unsupported(
                            n,
                            "a float matrix product other than [n, k] by constant [k, m] weights (`kestrel compress --int8` quantizes it)",
                        ))
                    }
                };
                if t.dims[1] != w.dims[0] {
                    return Err(unsupported(n, "its operands' inner dimensions differ"));
                }
                let dims = vec![t.dims[0], w.dims[1]];
                let wt = self.constant(DType::F32, w.dims.clone(), &w.bytes, None);
                let y = self.new_activation(&out, DType::F32, dims, None);
                self.push(OpCode::MatMulF32, vec![x, wt], y, [0; 12], None);
            }
            "Gemm" => return Err(unsupported(
                n,
                "a float Gemm: the integer runtime runs it after `kestrel compress --int8` (which makes it a MatMul)",
            )),
            _ => return Err(unsupported(n, "the integer runtime has no kernel for it")),
        }
        Ok(())
    }

    /// `out` = the crop of `x` from `begin` (ONNX axes) to `out`'s shape, in `x`'s layout.
    fn crop(&mut self, n: &pb::NodeProto, x: usize, begin: &[usize], out: &str) -> Result<(), EngineError> {
        let t = self.tensors[x].clone();
        let out_dims = self.shape_of(n, out)?;
        if out_dims.len() != begin.len() || out_dims.len() != t.dims.len() {
            return Err(unsupported(n, "its output's rank differs from its input's"));
        }
        // Stored axis s of an NHWC-stored tensor holds ONNX axis `logical[s]`.
        let logical: Vec<usize> = if t.nhwc { vec![0, 2, 3, 1] } else { (0..t.dims.len()).collect() };
        let mut p = [0u8; 12];
        for (s, &a) in logical.iter().enumerate() {
            let b = u16::try_from(begin[a]).map_err(|_| unsupported(n, "a start beyond 65535"))?;
            p[2 * s..2 * s + 2].copy_from_slice(&b.to_le_bytes());
        }
        let dims = logical.iter().map(|&a| out_dims[a]).collect();
        let y = self.like(x, dims, t.nhwc);
        self.by_name.insert(out.to_string(), y);
        self.push(OpCode::Slice, vec![x], y, p, None);
        Ok(())
    }

    /// DepthToSpace in DCR mode (how the compressor lowers an upsampling ConvTranspose): on the
    /// channels-last input [N, H, W, b·b·C] with channels ordered (by, bx, c), seen as
    /// [N·H, W, b, b·C], swapping the middle axes gives [N·H, b, W, b·C], which is the output
    /// [N, H·b, W·b, C] channels-last: one Transpose between two Reshapes that move no bytes.
    fn depth_to_space(&mut self, n: &pb::NodeProto, out: &str) -> Result<(), EngineError> {
        let mode = n.attribute.iter().find(|a| a.name == "mode").map_or(&b"DCR"[..], |a| &a.s[..]);
        if mode != b"DCR" {
            return Err(unsupported(n, "only DepthToSpace in DCR mode"));
        }
        let b = n.attribute.iter().find(|a| a.name == "blocksize").map_or(0, |a| a.i);
        let x = self.activation(n, &n.input[0])?;
        let x = self.channels_last(n, x)?;
        let [batch, h, w, c] = self.tensors[x].dims[..] else { return Err(unsupported(n, "a 4-D input")) };
        let b = usize::try_from(b).ok().filter(|&b| b >= 1 && c % (b * b) == 0);
        let Some(b) = b else { return Err(unsupported(n, "a blocksize whose square divides the channels")) };
        let rows = self.like(x, vec![batch * h, w, b, c / b], false);
        self.push(OpCode::Reshape, vec![x], rows, [0; 12], None);
        let moved = self.permuted(rows, [0, 2, 1, 3], false);
        let y = self.like(moved, vec![batch, h * b, w * b, c / (b * b)], true);
        if self.tensors[y].dims != self.nhwc_shape_of(n, out)? {
            return Err(unsupported(n, "its output shape differs from the model's"));
        }
        self.push(OpCode::Reshape, vec![moved], y, [0; 12], None);
        self.by_name.insert(out.to_string(), y);
        Ok(())
    }

    /// A Conv kept in float by the compressor: float32 channels-last input, weights reordered
    /// from ONNX's [M, C/g, kh, kw] to the runtime's [kh, kw, C/g, M], float bias.
    fn float_conv(&mut self, n: &pb::NodeProto) -> Result<(), EngineError> {
        let out = n.output.first().cloned().unwrap_or_default();
        let x = self.activation(n, &n.input[0])?;
        if self.tensors[x].dtype != DType::F32 {
            return Err(unsupported(n, "a float Conv of a non-float input"));
        }
        let x = self.channels_last(n, x)?;
        let float_constant = |name: &str| raw(self.g, name).filter(|r| r.elem.code == 1);
        let w = n
            .input
            .get(1)
            .and_then(|i| float_constant(i))
            .ok_or_else(|| unsupported(n, "its weights must be a float constant"))?;
        let p = conv_params(n, &w.dims)?;
        let [m, cg, kh, kw] = w.dims[..] else { return Err(unsupported(n, "only 2-D convolutions are supported")) };
        let values = f32s(&w);
        let mut hwio = vec![0f32; values.len()];
        for (i, &v) in values.iter().enumerate() {
            let (o, rest) = (i / (cg * kh * kw), i % (cg * kh * kw));
            let (c, ky, kx) = (rest / (kh * kw), rest / kw % kh, rest % kw);
            hwio[((ky * kw + kx) * cg + c) * m + o] = v;
        }
        let bytes: Vec<u8> = hwio.iter().flat_map(|v| v.to_le_bytes()).collect();
        let wt = self.constant(DType::F32, vec![kh, kw, cg, m], &bytes, None);
        let mut inputs = vec![x, wt];
        if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()) {
            let b = float_constant(b)
                .filter(|r| r.bytes.len() == 4 * m)
                .ok_or_else(|| unsupported(n, "its bias must be a float constant of M values"))?;
            inputs.push(self.constant(DType::F32, vec![m], &b.bytes, None));
        }
        let y = self.new_activation(&out, DType::F32, self.nhwc_shape_of(n, &out)?, None);
        self.tensors[y].nhwc = true;
        self.push(OpCode::ConvF32, inputs, y, p, None);
        Ok(())
    }

    /// A float Add, Sub, Mul or Div of two activations (a mixed model's residual connection) or
    /// of an activation and a constant (box decoding), in the layout both share when they share
    /// one, else ONNX's; with `relu`, that Relu node fused into it.
    fn float_binary(&mut self, n: &pb::NodeProto, kind: Kind, relu: Option<&pb::NodeProto>) -> Result<(), EngineError> {
        let out = relu.unwrap_or(n).output.first().cloned().unwrap_or_default();
        if n.input.len() != 2 {
            return Err(unsupported(n, "two operands"));
        }
        let (mut a, mut b) = (self.float_operand(n, &n.input[0])?, self.float_operand(n, &n.input[1])?);
        if self.tensors[a].dtype != DType::F32 || self.tensors[b].dtype != DType::F32 {
            return Err(unsupported(n, "an operation of a float and an integer tensor"));
        }
        if self.tensors[a].nhwc != self.tensors[b].nhwc || self.tensors[a].dims != self.tensors[b].dims {
            (a, b) = (self.onnx_layout(a), self.onnx_layout(b));
        }
        let (da, db) = (self.tensors[a].dims.clone(), self.tensors[b].dims.clone());
        if da.len() > 4 || !broadcasts(&with_leading_ones(&db, da.len()), &da) {
            // Only Add and Mul may swap their operands; the output takes the first's shape.
            let commutes = matches!(kind, Kind::Add | Kind::Mul);
            if commutes && broadcasts(&with_leading_ones(&da, db.len()), &db) && db.len() <= 4 {
                std::mem::swap(&mut a, &mut b);
            } else {
                return Err(unsupported(n, "operands that do not broadcast to the first's shape of rank ≤ 4"));
            }
        }
        let rank = self.tensors[a].dims.len();
        if self.tensors[b].dims.len() < rank {
            let dims = with_leading_ones(&self.tensors[b].dims, rank);
            let r = self.like(b, dims, false);
            self.push(OpCode::Reshape, vec![b], r, [0; 12], None);
            b = r;
        }
        let y = self.elementwise(&out, a, DType::F32, None);
        let mut p = [0u8; 12];
        p[0] = u8::from(relu.is_some());
        p[1] = kind.code();
        self.push(OpCode::BinaryF32, vec![a, b], y, p, None);
        Ok(())
    }

    /// An activation, or a float constant (an initializer or a tensor folded at export) as a
    /// weights tensor.
    fn float_operand(&mut self, n: &pb::NodeProto, name: &str) -> Result<usize, EngineError> {
        if let Some(&x) = self.by_name.get(name) {
            return Ok(x);
        }
        let c = raw(self.g, name)
            .filter(|r| r.elem.code == 1)
            .ok_or_else(|| unsupported(n, &format!("`{name}` is neither an activation nor a float constant")))?;
        let dims = if c.dims.is_empty() { vec![1] } else { c.dims.clone() };
        Ok(self.constant(DType::F32, dims, &c.bytes, None))
    }

    fn push(&mut self, code: OpCode, inputs: Vec<usize>, output: usize, params: [u8; 12], extra: Option<u32>) {
        let at = self.ops.len();
        for &i in &inputs {
            let t = &mut self.tensors[i];
            t.live = (t.live.0.min(at), t.live.1.max(at));
        }
        let t = &mut self.tensors[output];
        t.live = (t.live.0.min(at), t.live.1.max(at));
        self.ops.push(Op { code, inputs, output, params, extra });
    }
}

/// Nodes whose every output only feeds shape computations (Reshape's shape input, directly
/// or through other such nodes): folded away, the shapes being fixed at export.
fn shape_only(g: &pb::GraphProto) -> HashSet<usize> {
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let mut skip = HashSet::new();
    loop {
        let before = skip.len();
        for (ix, n) in g.node.iter().enumerate().rev() {
            if skip.contains(&ix) || n.output.iter().any(|o| outputs.contains(o.as_str())) {
                continue;
            }
            let only_shapes = n.output.iter().all(|o| {
                g.node.iter().enumerate().all(|(j, c)| {
                    c.input
                        .iter()
                        .enumerate()
                        .all(|(k, i)| i != o || skip.contains(&j) || (k == 1 && c.op_type == "Reshape"))
                })
            });
            let used = n.output.iter().any(|o| g.node.iter().any(|c| c.input.contains(o)));
            if only_shapes && used {
                skip.insert(ix);
            }
        }
        if skip.len() == before {
            return skip;
        }
    }
}

/// `g` with every computation that does not depend on the input (at the export's fixed shape)
/// replaced by its value as an initializer — a detector's anchor grid, built from Shape, Range
/// and Expand — or `None` when there is none. The runtime then sees only constants there.
fn fold_constants(g: &pb::GraphProto, folded: &HashMap<String, FoldedValue>) -> Option<pb::GraphProto> {
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let is_folded = |o: &String| o.is_empty() || (folded.contains_key(o) && !outputs.contains(o.as_str()));
    let dropped: Vec<bool> = g.node.iter().map(|n| !n.output.is_empty() && n.output.iter().all(&is_folded)).collect();
    if !dropped.contains(&true) {
        return None;
    }
    let mut out = g.clone();
    out.node = g.node.iter().zip(&dropped).filter(|(_, &d)| !d).map(|(n, _)| n.clone()).collect();
    // What only the folded part read is dead now (the shape arithmetic tract folded away).
    loop {
        let read: HashSet<&str> = out.node.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
        let live =
            |n: &pb::NodeProto| n.output.iter().any(|o| read.contains(o.as_str()) || outputs.contains(o.as_str()));
        let kept: Vec<pb::NodeProto> = out.node.iter().filter(|n| live(n)).cloned().collect();
        if kept.len() == out.node.len() {
            break;
        }
        out.node = kept;
    }
    let read: HashSet<&str> = out.node.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
    for (name, (code, dims, bytes)) in folded {
        if read.contains(name.as_str()) && !inits.contains(name.as_str()) && !outputs.contains(name.as_str()) {
            out.initializer.push(pb::TensorProto {
                name: name.clone(),
                dims: dims.iter().map(|&d| d as i64).collect(),
                data_type: *code,
                raw_data: bytes.clone(),
                ..Default::default()
            });
        }
    }
    Some(out)
}

/// The model's declared input shape, symbolic dimensions (the batch) taken as 1.
pub fn declared_input_shape(model: &OnnxModel) -> Vec<usize> {
    let s = kestrel_onnx::summarize(&model.proto);
    s.inputs.first().map(|i| i.shape.iter().map(|d| d.unwrap_or(1) as usize).collect()).unwrap_or_default()
}

/// Metadata keys of the names of the model's inputs and outputs (one per line) and of its
/// `kestrel.toml` text, so that a `.kmodel` runs on the host with nothing beside it.
pub const INPUTS_KEY: &str = "kestrel.inputs";
pub const OUTPUTS_KEY: &str = "kestrel.outputs";
pub const CONFIG_KEY: &str = "kestrel.config";

/// Exports a quantized model for input shape `input_shape` (one float32 input), with its
/// input/output names and, when given, its config text in the file's metadata.
pub fn export_kmodel(model: &OnnxModel, input_shape: &[usize], config: Option<&str>) -> Result<Exported, EngineError> {
    let g = model.proto.graph.as_ref().ok_or(EngineError::Onnx(kestrel_onnx::OnnxError::NoGraph))?;
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = g.input.iter().filter(|i| !inits.contains(i.name.as_str())).collect();
    if inputs.len() != 1 || !(1..=8).contains(&g.output.len()) {
        return Err(EngineError::Prepare(format!(
            "micro export: the integer runtime takes one input and 1 to 8 outputs; the model has {} and {}",
            inputs.len(),
            g.output.len()
        )));
    }
    let (shapes, folded) = shapes_and_constants(model, &[input_shape.to_vec()])?;
    let folded_graph = fold_constants(g, &folded);
    let g = folded_graph.as_ref().unwrap_or(g);
    let opset =
        model.proto.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(1, |o| o.version);
    let mut ex = Exporter {
        g,
        opset,
        shapes,
        b: Builder::new(),
        tensors: vec![],
        by_name: HashMap::new(),
        ops: vec![],
        converted: HashMap::new(),
    };
    let x = ex.new_activation(&inputs[0].name, DType::F32, input_shape.to_vec(), None);
    ex.tensors[x].live = (0, 0);
    let mut skip = shape_only(g);
    let (fused, absorbed) = fused_binaries(g);
    skip.extend(absorbed);
    let taken: HashSet<usize> = skip.iter().copied().chain(fused.keys().copied()).collect();
    let (unaries, absorbed) = fused_unaries(g, &taken);
    skip.extend(absorbed);
    let add_relus = float_add_relus(g, &skip);
    skip.extend(add_relus.values());
    for (ix, n) in g.node.iter().enumerate() {
        if let Some(&relu) = add_relus.get(&ix) {
            ex.float_binary(n, Kind::Add, Some(&g.node[relu]))?;
        } else if let Some(f) = fused.get(&ix) {
            ex.fused_binary(n, f)?;
        } else if let Some(&[d, f]) = unaries.get(&ix) {
            if tabled(g, &g.node[f]) {
                ex.fused_lookup(n, [d, f])?;
            } else {
                ex.fused_kernel(n, [d, f])?;
            }
        } else if !skip.contains(&ix) {
            ex.node(n)?;
        }
    }
    let outs: Vec<usize> = g
        .output
        .iter()
        .map(|o| {
            let t = ex.by_name.get(&o.name).copied();
            t.map(|t| ex.onnx_layout(t))
                .ok_or_else(|| EngineError::Prepare(format!("micro export: output `{}` is not produced", o.name)))
        })
        .collect::<Result<_, _>>()?;
    let last = ex.ops.len();
    for &o in &outs {
        ex.tensors[o].live.1 = last;
    }
    let arena_len = plan(&mut ex.tensors);
    let mut ids = Vec::with_capacity(ex.tensors.len());
    for t in &ex.tensors {
        if t.dims.len() > 4 || t.dims.iter().any(|&d| d == 0 || d > usize::from(u16::MAX)) {
            return Err(EngineError::Prepare(format!(
                "micro export: tensor shape {:?} does not fit the format (rank ≤ 4, dims ≤ 65535)",
                t.dims
            )));
        }
        ids.push(ex.b.tensor(TensorSpec {
            dtype: t.dtype,
            dims: &t.dims,
            storage: t.storage,
            offset: t.offset,
            scale: t.scale,
            zero_point: t.zero_point,
            channel_scales: t.channel_scales,
        }));
    }
    for op in &ex.ops {
        let inputs: Vec<u16> = op.inputs.iter().map(|&i| ids[i]).collect();
        ex.b.op(op.code, &inputs, &[ids[op.output]], op.params, op.extra);
    }
    ex.b.input(ids[x]);
    for o in outs {
        ex.b.output(ids[o]);
    }
    ex.b.arena(arena_len as u32);
    ex.b.metadata(INPUTS_KEY, inputs[0].name.as_bytes());
    let names: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    ex.b.metadata(OUTPUTS_KEY, names.join("\n").as_bytes());
    if let Some(config) = config {
        ex.b.metadata(CONFIG_KEY, config.as_bytes());
    }
    let bytes = ex.b.finish();
    kestrel_micro::Model::parse(&bytes)
        .map_err(|e| EngineError::Internal { backend: "micro export", message: e.to_string() })?;
    Ok(Exported { bytes, arena_len, ops: ex.ops.len() })
}

/// A Slice's start per axis of an input of `dims` (ONNX semantics: negative counts from the end,
/// clamped to the dim), from its constant inputs (opset ≥ 10) or attributes; unit steps only.
fn slice_begin(g: &pb::GraphProto, n: &pb::NodeProto, dims: &[usize]) -> Result<Vec<usize>, EngineError> {
    let list = |i: usize, attr: &str| -> Result<Option<Vec<i64>>, EngineError> {
        match n.input.get(i).filter(|s| !s.is_empty()) {
            Some(name) => match raw(g, name).filter(|r| r.elem.code == 7) {
                Some(r) => Ok(Some(
                    r.bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
                )),
                None => Err(unsupported(n, &format!("`{name}` must be an int64 constant"))),
            },
            None => Ok(ints(n, attr)),
        }
    };
    let starts = list(1, "starts")?.ok_or_else(|| unsupported(n, "no starts"))?;
    let rank = dims.len() as i64;
    let axes = list(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    if list(4, "")?.is_some_and(|s| s.iter().any(|&v| v != 1)) {
        return Err(unsupported(n, "only unit steps"));
    }
    if axes.len() != starts.len() {
        return Err(unsupported(n, "starts and axes differ in length"));
    }
    let mut begin = vec![0; dims.len()];
    for (&a, &s) in axes.iter().zip(&starts) {
        let a = if a < 0 { a + rank } else { a };
        let d =
            *dims.get(a as usize).filter(|_| a >= 0).ok_or_else(|| unsupported(n, "an axis outside the rank"))? as i64;
        begin[a as usize] = (if s < 0 { s + d } else { s }).clamp(0, d) as usize;
    }
    Ok(begin)
}

/// Greedy arena plan: largest tensors first, each at the lowest 16-aligned offset that does not
/// overlap a tensor alive at the same time. Returns the arena length.
fn plan(tensors: &mut [Tensor]) -> usize {
    let mut order: Vec<usize> = (0..tensors.len()).filter(|&i| tensors[i].storage == Storage::Arena).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tensors[i].dims.iter().product::<usize>() * tensors[i].dtype.size()));
    let mut placed: Vec<(usize, usize, (usize, usize))> = Vec::new();
    let mut arena = 0;
    for i in order {
        let len = tensors[i].dims.iter().product::<usize>() * tensors[i].dtype.size();
        let live = tensors[i].live;
        let mut busy: Vec<(usize, usize)> =
            placed.iter().filter(|(_, _, l)| l.0 <= live.1 && live.0 <= l.1).map(|&(o, n, _)| (o, o + n)).collect();
        busy.sort_unstable();
        let mut at = 0;
        for (start, end) in busy {
            if at + len <= start {
                break;
            }
            at = at.max(end.div_ceil(16) * 16);
        }
        tensors[i].offset = at as u32;
        placed.push((at, len, live));
        arena = arena.max(at + len);
    }
    arena
}
