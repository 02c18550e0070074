//! Parsing and validating a `.kmodel` (see the crate README for the layout).

use crate::{crc32, Error};

pub const MAGIC: [u8; 4] = *b"KMDL";
pub const VERSION: u16 = 2;
pub const HEADER_LEN: usize = 64;
pub(crate) const TENSOR_LEN: usize = 32;
pub(crate) const OP_LEN: usize = 32;
pub(crate) const NONE: u16 = 0xFFFF;
pub(crate) const NO_EXTRA: u32 = u32::MAX;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DType {
    I8,
    U8,
    I32,
    F32,
}

impl DType {
    pub fn from_code(code: u8) -> Option<DType> {
        Some(match code {
            0 => DType::I8,
            1 => DType::U8,
            2 => DType::I32,
            3 => DType::F32,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            DType::I8 => 0,
            DType::U8 => 1,
            DType::I32 => 2,
            DType::F32 => 3,
        }
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 => 1,
            DType::I32 | DType::F32 => 4,
        }
    }
}

/// Where a tensor's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Storage {
    Arena,
    Weights,
}

/// A validated tensor entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorInfo {
    pub dtype: DType,
    pub rank: usize,
    pub dims: [usize; 4],
    pub storage: Storage,
    pub offset: usize,
    pub len: usize,
    /// `None` when not quantized.
    pub scale: Option<f32>,
    pub zero_point: i32,
    /// Weights offset of the per-channel scales (axis 0), if per-channel.
    pub channel_scales: Option<usize>,
}

impl TensorInfo {
    pub fn elements(&self) -> usize {
        self.dims[..self.rank].iter().product()
    }
}

/// Operation codes of format version 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OpCode {
    Conv,
    FullyConnected,
    MaxPool,
    Quantize,
    Dequantize,
    Reshape,
    Transpose,
    Add,
    Softmax,
    Relu,
    AddConstant,
    Pad,
    Concat,
    Lookup,
    Mul,
    AveragePool,
    GlobalAveragePool,
    PRelu,
    Resize,
    /// Float convolution (a layer a mixed int8 model keeps in float).
    ConvF32,
    /// Float Add, Sub, Mul or Div of two tensors (the second broadcast), optional Relu.
    BinaryF32,
    /// A crop (ONNX Slice with unit steps; each output of a Split).
    Slice,
    /// Bilinear Resize of uint8, requantized.
    ResizeLinear,
    /// A float activation function (HardSwish, Sigmoid, …; the kind in the parameters).
    UnaryF32,
    /// A float matrix product with constant weights (a mixed model's float head).
    MatMulF32,
}

impl OpCode {
    pub fn from_code(code: u16) -> Option<OpCode> {
        Some(match code {
            1 => OpCode::Conv,
            2 => OpCode::FullyConnected,
            3 => OpCode::MaxPool,
            4 => OpCode::Quantize,
            5 => OpCode::Dequantize,
            6 => OpCode::Reshape,
            7 => OpCode::Transpose,
            8 => OpCode::Add,
            9 => OpCode::Softmax,
            10 => OpCode::Relu,
            11 => OpCode::AddConstant,
            12 => OpCode::Pad,
            13 => OpCode::Concat,
            14 => OpCode::Lookup,
            15 => OpCode::Mul,
            16 => OpCode::AveragePool,
            17 => OpCode::GlobalAveragePool,
            18 => OpCode::PRelu,
            19 => OpCode::Resize,
            20 => OpCode::ConvF32,
            21 => OpCode::BinaryF32,
            22 => OpCode::Slice,
            23 => OpCode::ResizeLinear,
            24 => OpCode::UnaryF32,
            25 => OpCode::MatMulF32,
            _ => return None,
        })
    }

    pub fn code(self) -> u16 {
        match self {
            OpCode::Conv => 1,
            OpCode::FullyConnected => 2,
            OpCode::MaxPool => 3,
            OpCode::Quantize => 4,
            OpCode::Dequantize => 5,
            OpCode::Reshape => 6,
            OpCode::Transpose => 7,
            OpCode::Add => 8,
            OpCode::Softmax => 9,
            OpCode::Relu => 10,
            OpCode::AddConstant => 11,
            OpCode::Pad => 12,
            OpCode::Concat => 13,
            OpCode::Lookup => 14,
            OpCode::Mul => 15,
            OpCode::AveragePool => 16,
            OpCode::GlobalAveragePool => 17,
            OpCode::PRelu => 18,
            OpCode::Resize => 19,
            OpCode::ConvF32 => 20,
            OpCode::BinaryF32 => 21,
            OpCode::Slice => 22,
            OpCode::ResizeLinear => 23,
            OpCode::UnaryF32 => 24,
            OpCode::MatMulF32 => 25,
        }
    }

    /// Whether this build runs the op (all do with the `all-ops` feature).
    pub fn built(self) -> bool {
        use OpCode::*;
        cfg!(feature = "all-ops")
            || matches!(
                self,
                Conv | FullyConnected | MaxPool | Quantize | Dequantize | Reshape | Relu | AddConstant | Softmax
            )
    }

    /// (inputs, outputs) the op takes: (min, max) inputs and exactly this many outputs.
    fn arity(self) -> (usize, usize, usize) {
        match self {
            OpCode::Conv | OpCode::FullyConnected | OpCode::ConvF32 => (2, 3, 1),
            OpCode::Add | OpCode::Mul | OpCode::AddConstant | OpCode::PRelu | OpCode::BinaryF32 | OpCode::MatMulF32 => {
                (2, 2, 1)
            }
            OpCode::Concat => (2, 4, 1),
            _ => (1, 1, 1),
        }
    }
}

/// A validated op entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub code: OpCode,
    pub inputs: [u16; 4],
    pub n_inputs: usize,
    pub outputs: [u16; 2],
    pub n_outputs: usize,
    pub params: [u8; 12],
    /// Weights offset of per-op data.
    pub extra: Option<usize>,
}

/// A validated model, borrowing its bytes (zero-copy: weights are read in place).
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    bytes: &'a [u8],
    n_tensors: usize,
    n_ops: usize,
    n_inputs: usize,
    n_outputs: usize,
    tensors_at: usize,
    ops_at: usize,
    io_at: usize,
    weights_at: usize,
    weights_len: usize,
    arena_len: usize,
    /// The metadata section `[at, at + len)`, empty when the file has none.
    metadata_at: usize,
    metadata_len: usize,
}

fn u16_at(b: &[u8], at: usize, what: &'static str) -> Result<u16, Error> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or(Error::Truncated { what })
}

fn u32_at(b: &[u8], at: usize, what: &'static str) -> Result<u32, Error> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or(Error::Truncated { what })
}

/// `[offset, offset + len)` within `0..limit`, with overflow-checked arithmetic.
/// Whether `b` broadcasts to `dims`: each of its dims equal or 1.
#[cfg(feature = "all-ops")]
fn broadcasts(b: [usize; 4], dims: [usize; 4]) -> bool {
    b.iter().zip(&dims).all(|(&e, &d)| e == d || e == 1)
}

/// x `[n, k]` · w `[k, m]` → y `[n, m]`.
fn matrix_product_shapes(x: &TensorInfo, w: &TensorInfo, y: &TensorInfo) -> bool {
    x.rank == 2 && w.rank == 2 && y.rank == 2 && x.dims[1] == w.dims[0] && y.dims[..2] == [x.dims[0], w.dims[1]]
}

/// `dims` with the innermost axis counted in bytes of `size`-byte elements.
#[cfg(feature = "all-ops")]
pub(crate) fn bytewise(mut dims: [usize; 4], size: usize) -> [usize; 4] {
    dims[3] *= size;
    dims
}

fn within(offset: usize, len: usize, limit: usize) -> bool {
    offset.checked_add(len).is_some_and(|end| end <= limit)
}

impl<'a> Model<'a> {
    /// Validates `bytes` completely; afterwards every accessor is infallible and in bounds.
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, Error> {
        let h = bytes.get(..HEADER_LEN).ok_or(Error::Truncated { what: "header" })?;
        if h[..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = u16_at(h, 4, "header")?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion { version });
        }
        if usize::from(u16_at(h, 6, "header")?) != HEADER_LEN {
            return Err(Error::Invalid { what: "header length", index: 0 });
        }
        let file_len = u32_at(h, 8, "header")?;
        if usize::try_from(file_len).ok() != Some(bytes.len()) {
            return Err(Error::LengthMismatch {
                header: file_len,
                buffer: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            });
        }
        let stored = u32_at(h, 12, "header")?;
        let computed = crc32(&bytes[16..]);
        if stored != computed {
            return Err(Error::Checksum { stored, computed });
        }
        let field = |at: usize| u32_at(h, at, "header").map(|v| v as usize);
        let m = Model {
            bytes,
            n_tensors: usize::from(u16_at(h, 16, "header")?),
            n_ops: usize::from(u16_at(h, 18, "header")?),
            n_inputs: usize::from(h[20]),
            n_outputs: usize::from(h[21]),
            tensors_at: field(24)?,
            ops_at: field(28)?,
            io_at: field(32)?,
            weights_at: field(36)?,
            weights_len: field(40)?,
            arena_len: field(44)?,
            metadata_at: field(48)?,
            metadata_len: field(52)?,
        };
        if u16_at(h, 22, "header")? != 0 || h[56..64].iter().any(|&b| b != 0) {
            return Err(Error::Invalid { what: "reserved header bytes", index: 0 });
        }
        if m.n_tensors == 0 || m.n_ops == 0 || !(1..=8).contains(&m.n_inputs) || !(1..=8).contains(&m.n_outputs) {
            return Err(Error::Invalid { what: "header counts", index: 0 });
        }
        for (what, at) in [("tensor table", m.tensors_at), ("op table", m.ops_at), ("weights", m.weights_at)] {
            if !at.is_multiple_of(16) {
                return Err(Error::Misaligned { what, offset: at as u32, align: 16 });
            }
        }
        let sections = [
            ("tensor table", m.tensors_at, m.n_tensors * TENSOR_LEN),
            ("op table", m.ops_at, m.n_ops * OP_LEN),
            ("io table", m.io_at, (m.n_inputs + m.n_outputs) * 2),
            ("weights", m.weights_at, m.weights_len),
        ];
        for (what, at, len) in sections {
            if at < HEADER_LEN || !within(at, len, bytes.len()) {
                return Err(Error::OutOfBounds { what, index: 0 });
            }
        }
        if m.metadata_len > 0 && (m.metadata_at < HEADER_LEN || !within(m.metadata_at, m.metadata_len, bytes.len())) {
            return Err(Error::OutOfBounds { what: "metadata", index: 0 });
        }
        if m.metadata_len == 0 && m.metadata_at != 0 {
            return Err(Error::Invalid { what: "metadata offset", index: 0 });
        }
        let mut entries = m.metadata();
        for _ in entries.by_ref() {}
        if let Some(e) = entries.error {
            return Err(e);
        }
        for t in 0..m.n_tensors {
            m.check_tensor(t)?;
        }
        for i in 0..m.n_inputs + m.n_outputs {
            let t = usize::from(u16_at(bytes, m.io_at + 2 * i, "io table")?);
            if t >= m.n_tensors {
                return Err(Error::OutOfBounds { what: "io tensor", index: i as u32 });
            }
            if m.tensor(t).storage != Storage::Arena {
                return Err(Error::Invalid { what: "io tensor storage", index: i as u32 });
            }
        }
        // Every op reads only constants, model inputs and earlier ops' outputs. Quadratic in the
        // op count but needs no memory (the parser runs on microcontrollers).
        for o in 0..m.n_ops {
            let op = m.check_op(o)?;
            for &t in &op.inputs[..op.n_inputs] {
                if !m.written_before(o, usize::from(t)) {
                    return Err(Error::ReadBeforeWrite { op: o as u32, tensor: u32::from(t) });
                }
            }
            for &t in &op.outputs[..op.n_outputs] {
                if m.tensor(usize::from(t)).storage != Storage::Arena {
                    return Err(Error::Invalid { what: "op output storage", index: o as u32 });
                }
            }
        }
        for i in 0..m.n_outputs {
            if !m.written_before(m.n_ops, m.output(i)) || (0..m.n_inputs).any(|j| m.input(j) == m.output(i)) {
                return Err(Error::Invalid { what: "model output never written", index: i as u32 });
            }
        }
        Ok(m)
    }

    /// Is tensor `t` available to op `o`: a constant, a model input, or written by an earlier op?
    fn written_before(&self, o: usize, t: usize) -> bool {
        if self.tensor(t).storage == Storage::Weights || (0..self.n_inputs).any(|i| self.input(i) == t) {
            return true;
        }
        (0..o).any(|p| {
            let op = self.decode_op(p);
            op.outputs[..op.n_outputs].iter().any(|&x| usize::from(x) == t)
        })
    }

    fn tensor_entry(&self, t: usize) -> &'a [u8] {
        let at = self.tensors_at + t * TENSOR_LEN;
        &self.bytes[at..at + TENSOR_LEN]
    }

    fn op_entry(&self, o: usize) -> &'a [u8] {
        let at = self.ops_at + o * OP_LEN;
        &self.bytes[at..at + OP_LEN]
    }

    /// Reads a tensor entry as it is; `check_tensor` says whether it is valid.
    fn decode_tensor(&self, t: usize) -> TensorInfo {
        let e = self.tensor_entry(t);
        let word = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
        let rank = usize::from(e[1]).clamp(1, 4);
        let mut dims = [1usize; 4];
        for (i, d) in dims.iter_mut().enumerate().take(rank) {
            *d = usize::from(u16::from_le_bytes([e[4 + 2 * i], e[5 + 2 * i]]));
        }
        TensorInfo {
            dtype: DType::from_code(e[0]).unwrap_or(DType::U8),
            rank,
            dims,
            storage: if e[2] == 1 { Storage::Weights } else { Storage::Arena },
            offset: word(12) as usize,
            len: word(16) as usize,
            scale: (e[3] != 0).then(|| f32::from_le_bytes([e[20], e[21], e[22], e[23]])),
            zero_point: i32::from_le_bytes([e[24], e[25], e[26], e[27]]),
            channel_scales: (e[3] == 2).then(|| word(28) as usize),
        }
    }

    fn check_tensor(&self, t: usize) -> Result<TensorInfo, Error> {
        let e = self.tensor_entry(t);
        let bad = |what| Error::Invalid { what, index: t as u32 };
        let info = self.decode_tensor(t);
        let dtype = DType::from_code(e[0]).ok_or(bad("element type"))?;
        if !(1..=4).contains(&usize::from(e[1])) {
            return Err(bad("rank"));
        }
        if e[2] > 1 {
            return Err(bad("storage"));
        }
        for i in 0..4 {
            let d = u16::from_le_bytes([e[4 + 2 * i], e[5 + 2 * i]]);
            if d == 0 || (i >= info.rank && d != 1) {
                return Err(bad("dimension"));
            }
        }
        let elements: usize = info.dims.iter().product(); // ≤ 65535⁴ < 2⁶⁴
        if elements.checked_mul(dtype.size()) != Some(info.len) {
            return Err(bad("byte length"));
        }
        if !info.offset.is_multiple_of(dtype.size()) {
            return Err(Error::Misaligned {
                what: "tensor data",
                offset: info.offset as u32,
                align: dtype.size() as u32,
            });
        }
        let limit = if info.storage == Storage::Arena { self.arena_len } else { self.weights_len };
        if !within(info.offset, info.len, limit) {
            return Err(Error::OutOfBounds { what: "tensor", index: t as u32 });
        }
        let per_channel = u32::from_le_bytes([e[28], e[29], e[30], e[31]]);
        match e[3] {
            0 => {}
            1 | 2 => {
                if !info.scale.is_some_and(|s| s.is_finite() && s > 0.0) {
                    return Err(bad("scale"));
                }
                let range = match dtype {
                    DType::U8 => 0..=255,
                    DType::I8 => -128..=127,
                    _ => i32::MIN..=i32::MAX,
                };
                if !range.contains(&info.zero_point) {
                    return Err(bad("zero point"));
                }
                if let Some(at) = info.channel_scales {
                    if !at.is_multiple_of(4) || !within(at, info.dims[0] * 4, self.weights_len) {
                        return Err(Error::OutOfBounds { what: "per-channel scales of tensor", index: t as u32 });
                    }
                    let ok = (0..info.dims[0]).all(|c| {
                        let s = self.f32_weight(at + 4 * c);
                        s.is_finite() && s > 0.0
                    });
                    if !ok {
                        return Err(bad("per-channel scale"));
                    }
                }
            }
            _ => return Err(bad("quantization")),
        }
        if e[3] != 2 && per_channel != NO_EXTRA {
            return Err(bad("per-channel offset"));
        }
        Ok(info)
    }

    /// Reads an op entry as it is; `check_op` says whether it is valid.
    fn decode_op(&self, o: usize) -> Op {
        let e = self.op_entry(o);
        let idx = |i: usize| u16::from_le_bytes([e[i], e[i + 1]]);
        let mut params = [0u8; 12];
        params.copy_from_slice(&e[16..28]);
        let extra = u32::from_le_bytes([e[28], e[29], e[30], e[31]]);
        Op {
            code: OpCode::from_code(idx(0)).unwrap_or(OpCode::Reshape),
            inputs: [idx(4), idx(6), idx(8), idx(10)],
            n_inputs: usize::from(e[2]).min(4),
            outputs: [idx(12), idx(14)],
            n_outputs: usize::from(e[3]).min(2),
            params,
            extra: (extra != NO_EXTRA).then_some(extra as usize),
        }
    }

    fn check_op(&self, o: usize) -> Result<Op, Error> {
        let e = self.op_entry(o);
        let opcode = u16::from_le_bytes([e[0], e[1]]);
        let code = OpCode::from_code(opcode).ok_or(Error::UnknownOpcode { op: o as u32, opcode })?;
        if !code.built() {
            return Err(Error::OpNotBuilt { op: o as u32, opcode });
        }
        let (n_inputs, n_outputs) = (usize::from(e[2]), usize::from(e[3]));
        let (min_in, max_in, outs) = code.arity();
        if !(min_in..=max_in).contains(&n_inputs) || n_outputs != outs {
            return Err(Error::Invalid { what: "input or output count", index: o as u32 });
        }
        let op = self.decode_op(o);
        let used = |slots: &[u16], n: usize| {
            slots.iter().enumerate().all(|(i, &t)| if i < n { usize::from(t) < self.n_tensors } else { t == NONE })
        };
        if !used(&op.inputs, n_inputs) {
            return Err(Error::OutOfBounds { what: "op input of op", index: o as u32 });
        }
        if !used(&op.outputs, n_outputs) {
            return Err(Error::OutOfBounds { what: "op output of op", index: o as u32 });
        }
        self.check_op_shapes(o, &op)?;
        self.check_aliasing(o, &op)?;
        Ok(op)
    }

    /// Shape and type rules the kernels rely on to stay in bounds (one arm per op).
    fn check_op_shapes(&self, o: usize, op: &Op) -> Result<(), Error> {
        let bad = |what| Error::Invalid { what, index: o as u32 };
        let t = |i: u16| self.tensor(usize::from(i));
        match op.code {
            OpCode::Conv | OpCode::ConvF32 => {
                let (x, w, y) = (t(op.inputs[0]), t(op.inputs[1]), t(op.outputs[0]));
                let p = &op.params;
                let (kh, kw, sh, sw, dh, dw) = (p[0], p[1], p[2], p[3], p[4], p[5]);
                let (pt, pl, pb, pr) = (usize::from(p[6]), usize::from(p[7]), usize::from(p[8]), usize::from(p[9]));
                let groups = usize::from(u16::from_le_bytes([p[10], p[11]]));
                let float = op.code == OpCode::ConvF32;
                let types = if float { [DType::F32; 3] } else { [DType::U8, DType::I8, DType::U8] };
                if [x.dtype, w.dtype, y.dtype] != types || w.storage != Storage::Weights {
                    return Err(bad("Conv element types"));
                }
                if x.rank != 4 || w.rank != 4 || y.rank != 4 || [kh, kw, sh, sw, dh, dw].contains(&0) || groups == 0 {
                    return Err(bad("Conv parameters"));
                }
                // x [n, h, w, c], y [n, oh, ow, m]; w [m, kh, kw, c/groups] (int8) or
                // [kh, kw, c/groups, m] (float).
                let (c, m) = (x.dims[3], if float { w.dims[3] } else { w.dims[0] });
                let (w_cg, w_kh, w_kw) =
                    if float { (w.dims[2], w.dims[0], w.dims[1]) } else { (w.dims[3], w.dims[1], w.dims[2]) };
                if !c.is_multiple_of(groups) || !m.is_multiple_of(groups) || w_cg != c / groups {
                    return Err(bad("Conv channels"));
                }
                if w_kh != usize::from(kh) || w_kw != usize::from(kw) {
                    return Err(bad("Conv kernel shape"));
                }
                let out = |size: usize, k: u8, s: u8, d: u8, pad: usize| {
                    let span = usize::from(d) * (usize::from(k) - 1) + 1;
                    (size + pad).checked_sub(span).map(|r| r / usize::from(s) + 1)
                };
                let oh = out(x.dims[1], kh, sh, dh, pt + pb);
                let ow = out(x.dims[2], kw, sw, dw, pl + pr);
                if y.dims != [x.dims[0], oh.unwrap_or(0), ow.unwrap_or(0), m] {
                    return Err(bad("Conv output shape"));
                }
                if float {
                    return self.check_float_bias(o, op, m);
                }
                self.check_bias_and_multipliers(o, op, m)
            }
            OpCode::FullyConnected => {
                let (x, w, y) = (t(op.inputs[0]), t(op.inputs[1]), t(op.outputs[0]));
                if x.dtype != DType::U8 || w.dtype != DType::I8 || y.dtype != DType::U8 || w.storage != Storage::Weights
                {
                    return Err(bad("FullyConnected element types"));
                }
                if !matrix_product_shapes(&x, &w, &y) {
                    return Err(bad("FullyConnected shapes"));
                }
                self.check_bias_and_multipliers(o, op, w.dims[1])
            }
            #[cfg(feature = "all-ops")]
            OpCode::Lookup => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                if x.dtype != DType::U8 || y.dtype != DType::U8 || x.dims != y.dims {
                    return Err(bad("Lookup tensors (uint8, same shape)"));
                }
                match op.extra {
                    Some(at) if within(at, 256, self.weights_len) => Ok(()),
                    _ => Err(Error::OutOfBounds { what: "table of op", index: o as u32 }),
                }
            }
            OpCode::Reshape | OpCode::Relu => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                if x.len != y.len || x.dtype != y.dtype {
                    return Err(bad("Reshape sizes"));
                }
                Ok(())
            }
            OpCode::Quantize | OpCode::Dequantize => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                let (from, to) =
                    if op.code == OpCode::Quantize { (DType::F32, DType::U8) } else { (DType::U8, DType::F32) };
                let q = if op.code == OpCode::Quantize { y } else { x };
                if x.dtype != from || y.dtype != to || x.elements() != y.elements() || q.scale.is_none() {
                    return Err(bad("Quantize/Dequantize tensors"));
                }
                Ok(())
            }
            OpCode::MaxPool | OpCode::AveragePool => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                let p = &op.params;
                // AveragePool requantizes (x and y quantized); every window holds an input.
                let average = op.code == OpCode::AveragePool;
                let types_ok = x.dtype == y.dtype && (x.dtype == DType::U8 || (x.dtype == DType::F32 && !average));
                if !types_ok || x.rank != 4 || y.rank != 4 || p[..4].contains(&0) {
                    return Err(bad("MaxPool tensors or parameters"));
                }
                if average && (x.scale.is_none() || y.scale.is_none() || p[8] > 1 || p[6] >= p[0] || p[7] >= p[1]) {
                    return Err(bad("AveragePool quantization or parameters"));
                }
                let out = |size: usize, k: u8, s: u8, pad: usize| {
                    (size + pad).checked_sub(usize::from(k)).map(|r| r / usize::from(s) + 1)
                };
                // x [n, h, w, c], y [n, oh, ow, c].
                let oh = out(x.dims[1], p[0], p[2], usize::from(p[4]) + usize::from(p[6]));
                let ow = out(x.dims[2], p[1], p[3], usize::from(p[5]) + usize::from(p[7]));
                // A window must never lie entirely in the padding.
                if usize::from(p[4]) >= usize::from(p[0]) || usize::from(p[5]) >= usize::from(p[1]) {
                    return Err(bad("MaxPool padding"));
                }
                if y.dims != [x.dims[0], oh.unwrap_or(0), ow.unwrap_or(0), x.dims[3]] {
                    return Err(bad("MaxPool output shape"));
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::Transpose => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                let perm = &op.params[..4];
                let mut seen = [false; 4];
                for &p in perm {
                    if p > 3 || core::mem::replace(&mut seen[usize::from(p)], true) {
                        return Err(bad("Transpose permutation"));
                    }
                }
                let permuted = [
                    x.dims[usize::from(perm[0])],
                    x.dims[usize::from(perm[1])],
                    x.dims[usize::from(perm[2])],
                    x.dims[usize::from(perm[3])],
                ];
                if x.dtype != y.dtype || y.dims != permuted {
                    return Err(bad("Transpose output shape"));
                }
                Ok(())
            }
            OpCode::Softmax => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                if x.dtype != DType::F32
                    || y.dtype != DType::F32
                    || x.dims != y.dims
                    || usize::from(op.params[0]) >= x.rank
                    || op.params[1] > 1
                {
                    return Err(bad("Softmax tensors (float, over an axis within the rank)"));
                }
                Ok(())
            }
            OpCode::AddConstant => {
                let (x, c, y) = (t(op.inputs[0]), t(op.inputs[1]), t(op.outputs[0]));
                let last = x.dims[x.rank - 1];
                if x.dtype != DType::F32
                    || c.dtype != DType::F32
                    || y.dtype != DType::F32
                    || c.storage != Storage::Weights
                {
                    return Err(bad("AddConstant element types"));
                }
                if x.dims != y.dims || !(c.elements() == x.elements() || c.elements() == last) {
                    return Err(bad("AddConstant shapes"));
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::Add | OpCode::Mul => {
                let (a, b, y) = (t(op.inputs[0]), t(op.inputs[1]), t(op.outputs[0]));
                if [a.dtype, b.dtype, y.dtype] != [DType::U8; 3] || a.dims != y.dims || !broadcasts(b.dims, y.dims) {
                    return Err(bad("Add/Mul tensors (uint8, b broadcast to a's shape)"));
                }
                if a.scale.is_none() || b.scale.is_none() || y.scale.is_none() || op.params[0] > 1 {
                    return Err(bad("Add/Mul quantization"));
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::BinaryF32 => {
                let (a, b, y) = (t(op.inputs[0]), t(op.inputs[1]), t(op.outputs[0]));
                if [a.dtype, b.dtype, y.dtype] != [DType::F32; 3] || a.dims != y.dims || !broadcasts(b.dims, y.dims) {
                    return Err(bad("BinaryF32 tensors (float32, b broadcast to a's shape)"));
                }
                if op.params[0] > 1 || crate::ops::binary_f32::Kind::from_code(op.params[1]).is_none() {
                    return Err(bad("BinaryF32 relu flag or operation"));
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::MatMulF32 => {
                let (x, w, y) = (t(op.inputs[0]), t(op.inputs[1]), t(op.outputs[0]));
                if [x.dtype, w.dtype, y.dtype] != [DType::F32; 3] || w.storage != Storage::Weights {
                    return Err(bad("MatMulF32 tensors (float32, constant weights)"));
                }
                if !matrix_product_shapes(&x, &w, &y) {
                    return Err(bad("MatMulF32 shapes ([n, k] · [k, m] → [n, m])"));
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::UnaryF32 => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                if x.dtype != DType::F32 || y.dtype != DType::F32 || x.dims != y.dims {
                    return Err(bad("UnaryF32 tensors (float32, same shape)"));
                }
                if crate::ops::unary_f32::Unary::from_params(&op.params).is_none() {
                    return Err(bad("UnaryF32 function or constants"));
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::PRelu => {
                let (x, slope, y) = (t(op.inputs[0]), t(op.inputs[1]), t(op.outputs[0]));
                let float_constant = slope.dtype == DType::F32 && slope.storage == Storage::Weights;
                if x.dtype != DType::U8 || y.dtype != DType::U8 || x.dims != y.dims || !float_constant {
                    return Err(bad("PRelu tensors (uint8, float32 constant slope)"));
                }
                if !broadcasts(slope.dims, x.dims) || x.scale.is_none() || y.scale.is_none() {
                    return Err(bad("PRelu slope shape or quantization"));
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::GlobalAveragePool => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                let types = matches!((x.dtype, y.dtype), (DType::U8, DType::U8) | (DType::F32, DType::F32));
                if !types || x.rank != 4 || y.dims != [x.dims[0], 1, 1, x.dims[3]] {
                    return Err(bad("GlobalAveragePool tensors (uint8 or float32 [n, h, w, c] to [n, 1, 1, c])"));
                }
                if x.dtype == DType::U8 && (x.scale.is_none() || y.scale.is_none()) {
                    return Err(bad("GlobalAveragePool quantization"));
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::Resize => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                let size = x.dtype.size();
                if x.dtype != y.dtype || !matches!(size, 1 | 4) || x.scale != y.scale || x.zero_point != y.zero_point {
                    return Err(bad("Resize tensors (1- or 4-byte elements, same quantization)"));
                }
                // The innermost axis is mapped byte by byte.
                let (x_dims, y_dims) = (bytewise(x.dims, size), bytewise(y.dims, size));
                let entries: usize = y_dims.iter().sum();
                let maps = match op.extra {
                    Some(at) if within(at, 2 * entries, self.weights_len) => self.weights_at_offset(at, 2 * entries),
                    _ => return Err(Error::OutOfBounds { what: "index maps of op", index: o as u32 }),
                };
                let mut at = 0;
                for axis in 0..4 {
                    for _ in 0..y_dims[axis] {
                        if usize::from(u16::from_le_bytes([maps[at], maps[at + 1]])) >= x_dims[axis] {
                            return Err(Error::OutOfBounds { what: "Resize source index of op", index: o as u32 });
                        }
                        at += 2;
                    }
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::ResizeLinear => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                let quantized = x.scale.is_some() && y.scale.is_some();
                let types = match (x.dtype, y.dtype) {
                    (DType::U8, DType::U8) => quantized,
                    (DType::F32, DType::F32) => true,
                    _ => false,
                };
                if !types || x.rank != 4 || y.rank != 4 {
                    return Err(bad("ResizeLinear tensors (quantized uint8 or float32, 4-D)"));
                }
                // params[0]: 1 resizes axes 1 and 2 (channels-last), 0 axes 2 and 3.
                let (kept, hw) = match op.params[0] {
                    1 => ([0, 3], [1, 2]),
                    0 => ([0, 1], [2, 3]),
                    _ => return Err(bad("ResizeLinear layout")),
                };
                if kept.iter().any(|&a| x.dims[a] != y.dims[a]) {
                    return Err(bad("ResizeLinear output shape"));
                }
                let entries = y.dims[hw[0]] + y.dims[hw[1]];
                let len = entries * crate::ops::resize::LINEAR_ENTRY;
                let maps = match op.extra {
                    Some(at) if within(at, len, self.weights_len) => self.weights_at_offset(at, len),
                    _ => return Err(Error::OutOfBounds { what: "bilinear maps of op", index: o as u32 }),
                };
                for (k, e) in maps.chunks_exact(crate::ops::resize::LINEAR_ENTRY).enumerate() {
                    let limit = x.dims[if k < y.dims[hw[0]] { hw[0] } else { hw[1] }];
                    let index = |at: usize| usize::from(u16::from_le_bytes([e[at], e[at + 1]]));
                    let weight = |at: usize| f32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
                    if index(0) >= limit || index(2) >= limit {
                        return Err(Error::OutOfBounds { what: "ResizeLinear source index of op", index: o as u32 });
                    }
                    if !weight(4).is_finite() || !weight(8).is_finite() {
                        return Err(bad("ResizeLinear weights (finite)"));
                    }
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::Slice => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                let p = &op.params;
                let fits = (0..4).all(|i| {
                    let begin = usize::from(u16::from_le_bytes([p[2 * i], p[2 * i + 1]]));
                    begin + y.dims[i] <= x.dims[i]
                });
                let same = x.dtype == y.dtype && x.rank == y.rank && x.scale == y.scale && x.zero_point == y.zero_point;
                if !fits || !same || p[8..].iter().any(|&b| b != 0) {
                    return Err(bad("Slice (the output a crop of the input, same type)"));
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::Pad => {
                let (x, y) = (t(op.inputs[0]), t(op.outputs[0]));
                let p = &op.params;
                // Float tensors pad with zeros only (the value is a byte).
                let float_zero = x.dtype == DType::F32 && p[8] == 0;
                if x.dtype != y.dtype || !(x.dtype.size() == 1 || float_zero) || x.rank != 4 || y.rank != 4 {
                    return Err(bad("Pad tensors (4-D, 1-byte elements or float32 padded with zeros)"));
                }
                let padded = (0..4).all(|i| y.dims[i] == x.dims[i] + usize::from(p[i]) + usize::from(p[4 + i]));
                if !padded || x.scale != y.scale || x.zero_point != y.zero_point {
                    return Err(bad("Pad output shape"));
                }
                Ok(())
            }
            #[cfg(feature = "all-ops")]
            OpCode::Concat => {
                let y = t(op.outputs[0]);
                let axis = usize::from(op.params[0]);
                if axis >= y.rank {
                    return Err(bad("Concat axis"));
                }
                let mut along = 0;
                for &i in &op.inputs[..op.n_inputs] {
                    let x = t(i);
                    let same_but_axis = (0..4).all(|d| d == axis || x.dims[d] == y.dims[d]);
                    if x.dtype != y.dtype || x.rank != y.rank || !same_but_axis {
                        return Err(bad("Concat inputs"));
                    }
                    // Quantized inputs must share the output's parameters (no requantization).
                    if x.scale != y.scale || x.zero_point != y.zero_point {
                        return Err(bad("Concat quantization"));
                    }
                    along += x.dims[axis];
                }
                if along != y.dims[axis] {
                    return Err(bad("Concat output shape"));
                }
                Ok(())
            }
            #[cfg(not(feature = "all-ops"))]
            _ => Err(Error::OpNotBuilt { op: o as u32, opcode: op.code.code() }),
        }
    }

    /// An op's output region must not overlap any of its arena inputs (kernels read while writing).
    fn check_aliasing(&self, o: usize, op: &Op) -> Result<(), Error> {
        for &out in &op.outputs[..op.n_outputs] {
            let y = self.tensor(usize::from(out));
            for &inp in &op.inputs[..op.n_inputs] {
                let x = self.tensor(usize::from(inp));
                if x.storage == Storage::Arena && x.offset < y.offset + y.len && y.offset < x.offset + x.len {
                    return Err(Error::Invalid { what: "op output overlapping its input", index: o as u32 });
                }
            }
        }
        Ok(())
    }

    /// A float Conv's optional bias: a float32 constant of `m` values.
    fn check_float_bias(&self, o: usize, op: &Op, m: usize) -> Result<(), Error> {
        if op.n_inputs == 3 {
            let b = self.tensor(usize::from(op.inputs[2]));
            if b.dtype != DType::F32 || b.storage != Storage::Weights || b.elements() != m {
                return Err(Error::Invalid { what: "bias", index: o as u32 });
            }
        }
        Ok(())
    }

    fn check_bias_and_multipliers(&self, o: usize, op: &Op, m: usize) -> Result<(), Error> {
        let bad = |what| Error::Invalid { what, index: o as u32 };
        if op.n_inputs == 3 {
            let b = self.tensor(usize::from(op.inputs[2]));
            if b.dtype != DType::I32 || b.storage != Storage::Weights || b.elements() != m {
                return Err(bad("bias"));
            }
        }
        let at = op.extra.ok_or(bad("requantization multipliers"))?;
        if !at.is_multiple_of(4) || !within(at, m * 4, self.weights_len) {
            return Err(Error::OutOfBounds { what: "multipliers of op", index: o as u32 });
        }
        if !(0..m).all(|c| self.f32_weight(at + 4 * c).is_finite()) {
            return Err(bad("requantization multiplier"));
        }
        Ok(())
    }

    fn f32_weight(&self, at: usize) -> f32 {
        let b = &self.bytes[self.weights_at + at..self.weights_at + at + 4];
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The metadata entries (key, value) in file order: what the host needs around the model
    /// (input and output names, its preprocessing config), never read by the runtime itself.
    pub fn metadata(&self) -> Metadata<'a> {
        Metadata { rest: &self.bytes[self.metadata_at..self.metadata_at + self.metadata_len], index: 0, error: None }
    }

    /// The value of metadata entry `key`, if the file has one.
    pub fn metadata_value(&self, key: &str) -> Option<&'a [u8]> {
        self.metadata().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn tensor_count(&self) -> usize {
        self.n_tensors
    }

    pub fn op_count(&self) -> usize {
        self.n_ops
    }

    pub fn arena_len(&self) -> usize {
        self.arena_len
    }

    /// Tensor `t` (< `tensor_count()`): `parse` validated every entry once, so this only reads.
    pub fn tensor(&self, t: usize) -> TensorInfo {
        self.decode_tensor(t)
    }

    /// Op `o` (< `op_count()`): validated once by `parse`, read here on every run.
    pub fn op(&self, o: usize) -> Op {
        self.decode_op(o)
    }

    pub fn input_count(&self) -> usize {
        self.n_inputs
    }

    pub fn output_count(&self) -> usize {
        self.n_outputs
    }

    pub fn input(&self, i: usize) -> usize {
        self.io(i)
    }

    pub fn output(&self, i: usize) -> usize {
        self.io(self.n_inputs + i)
    }

    fn io(&self, i: usize) -> usize {
        let at = self.io_at + 2 * i;
        usize::from(u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]))
    }

    /// The weights bytes of a constant tensor (empty for activations).
    pub fn weights_of(&self, t: &TensorInfo) -> &'a [u8] {
        if t.storage != Storage::Weights {
            return &[];
        }
        &self.bytes[self.weights_at + t.offset..self.weights_at + t.offset + t.len]
    }

    /// `len` weights bytes at an offset `parse` validated (per-op data, per-channel scales).
    pub fn weights_at_offset(&self, at: usize, len: usize) -> &'a [u8] {
        &self.bytes[self.weights_at + at..self.weights_at + at + len]
    }

    /// `count` f32 values of per-op or per-channel data at a weights offset validated by `parse`.
    pub fn f32s(&self, at: usize, count: usize) -> impl Iterator<Item = f32> + 'a {
        let bytes = &self.bytes[self.weights_at + at..self.weights_at + at + 4 * count];
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// Iterator over a file's metadata entries: `u16` key length, UTF-8 key (1..=255 bytes), `u32`
/// value length, value. Stops at the first malformed entry and records why in `error`
/// (`Model::parse` refuses such files, so a parsed model's entries are all well-formed).
pub struct Metadata<'a> {
    rest: &'a [u8],
    index: u32,
    error: Option<Error>,
}

impl<'a> Iterator for Metadata<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.error.is_some() {
            return None;
        }
        let bad = Error::Invalid { what: "metadata entry", index: self.index };
        let entry = (|| {
            let key_len = usize::from(u16_at(self.rest, 0, "metadata")?);
            let key = self.rest.get(2..2 + key_len).ok_or(Error::Truncated { what: "metadata" })?;
            let key = core::str::from_utf8(key).map_err(|_| bad)?;
            if key.is_empty() || key_len > 255 {
                return Err(bad);
            }
            let value_len = u32_at(self.rest, 2 + key_len, "metadata")? as usize;
            let start = 6 + key_len;
            if !within(start, value_len, self.rest.len()) {
                return Err(Error::Truncated { what: "metadata" });
            }
            Ok((key, &self.rest[start..start + value_len], start + value_len))
        })();
        match entry {
            Ok((key, value, end)) => {
                self.rest = &self.rest[end..];
                self.index += 1;
                Some((key, value))
            }
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}
