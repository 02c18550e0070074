//! The executor: runs a validated model op by op in the caller's arena. No allocation, ever.

use crate::format::{DType, Model, OpCode, Storage, TensorInfo};
use crate::ops;
#[cfg(feature = "all-ops")]
use crate::spread::MIN_PART_VALUES;
use crate::spread::{in_row_parts, parts_for, Serial, Spread, MIN_PART_MACS};
use crate::Error;

/// A model bound to an arena, ready to run.
pub struct Interpreter<'m, 'a> {
    model: Model<'m>,
    arena: &'a mut [u8],
    /// This CPU's fast kernels' constants ([`Interpreter::prepare`]), if any.
    prepared: &'m [u8],
}

/// The convolution geometry of Conv op `op` (x, y: [n, h, w, c]; checked by `Model::parse`).
fn conv_shape(m: &Model<'_>, op: &crate::format::Op) -> ops::conv::ConvShape {
    let (x, y) = (m.tensor(usize::from(op.inputs[0])), m.tensor(usize::from(op.outputs[0])));
    let p = &op.params;
    ops::conv::ConvShape {
        n: x.dims[0],
        h: x.dims[1],
        w: x.dims[2],
        c: x.dims[3],
        m: y.dims[3],
        oh: y.dims[1],
        ow: y.dims[2],
        kh: usize::from(p[0]),
        kw: usize::from(p[1]),
        stride: (usize::from(p[2]), usize::from(p[3])),
        dilation: (usize::from(p[4]), usize::from(p[5])),
        pad: (usize::from(p[6]), usize::from(p[7])),
        groups: usize::from(u16::from_le_bytes([p[10], p[11]])),
    }
}

/// How many parts (by output rows) convolution `s` splits into for `width` threads: each worth
/// a hand-off, at most one per row, one image only.
fn conv_parts(s: &ops::conv::ConvShape, width: usize) -> usize {
    if !cfg!(feature = "all-ops") || s.n != 1 {
        return 1;
    }
    parts_for(width, s.oh, s.oh * s.ow * s.m * s.per_group().2, MIN_PART_MACS)
}

/// Op `o`'s share of the prepared constants when the shares before it end at `at` (each share
/// starts on a 64-byte step, a cache line): its range, and where the next share starts.
fn prepared_range(m: &Model<'_>, o: usize, at: usize) -> (core::ops::Range<usize>, usize) {
    let op = m.op(o);
    let len = if op.code == OpCode::Conv { ops::conv::prepared_len(&conv_shape(m, &op)) } else { 0 };
    (at..at + len, at + len.next_multiple_of(64))
}

impl<'m, 'a> Interpreter<'m, 'a> {
    /// Binds `model` to `arena`, which must hold at least `model.arena_len()` bytes. Every op
    /// runs on the portable kernels; [`Interpreter::with_prepared`] adds the fast ones.
    pub fn new(model: Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        Self::with_prepared(model, arena, &[])
    }

    /// Like [`Interpreter::new`], with this CPU's fast kernels running on `prepared` (filled by
    /// [`Interpreter::prepare`] for this model; a buffer of another length is ignored).
    pub fn with_prepared(model: Model<'m>, arena: &'a mut [u8], prepared: &'m [u8]) -> Result<Self, Error> {
        if arena.len() < model.arena_len() {
            return Err(Error::ArenaTooSmall { need: model.arena_len() as u32, have: arena.len() as u32 });
        }
        let prepared = if prepared.len() == Self::prepared_len(&model) { prepared } else { &[] };
        Ok(Interpreter { model, arena, prepared })
    }

    /// Bytes of constants this CPU's fast kernels want for `model` (0: none apply here). On a
    /// microcontroller this is 0: the portable kernels need nothing beyond the model.
    pub fn prepared_len(model: &Model<'_>) -> usize {
        (0..model.op_count()).fold(0, |at, o| prepared_range(model, o, at).1)
    }

    /// Computes the fast kernels' constants (repacked filters, folded zero points) into `out`,
    /// [`Interpreter::prepared_len`] bytes: once per model, so that `run` does not.
    pub fn prepare(model: &Model<'_>, out: &mut [u8]) -> Result<(), Error> {
        let need = Self::prepared_len(model);
        if out.len() != need {
            return Err(Error::PreparedLength { need: need as u32, have: out.len() as u32 });
        }
        let mut at = 0;
        for o in 0..model.op_count() {
            let (range, next) = prepared_range(model, o, at);
            at = next;
            let op = model.op(o);
            if range.is_empty() {
                continue;
            }
            let s = conv_shape(model, &op);
            let x = model.tensor(usize::from(op.inputs[0]));
            let w = model.weights_of(&model.tensor(usize::from(op.inputs[1])));
            let bias = (op.n_inputs == 3).then(|| model.weights_of(&model.tensor(usize::from(op.inputs[2]))));
            let mult = model.weights_at_offset(op.extra.unwrap_or(0), s.m * 4);
            ops::conv::prepare(&s, w, x.zero_point, bias, |c| ops::f32_at(mult, c), &mut out[range]);
        }
        Ok(())
    }

    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// The bytes of input `i`, to fill before `run` (little-endian for float32).
    pub fn input_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if i >= self.model.input_count() {
            return None;
        }
        let t = self.model.tensor(self.model.input(i));
        Some(&mut self.arena[t.offset..t.offset + t.len])
    }

    /// The bytes of output `i` after `run`.
    pub fn output(&self, i: usize) -> Option<&[u8]> {
        if i >= self.model.output_count() {
            return None;
        }
        let t = self.model.tensor(self.model.output(i));
        Some(&self.arena[t.offset..t.offset + t.len])
    }

    /// Runs every op in order.
    pub fn run(&mut self) -> Result<(), Error> {
        self.run_with(&Serial, |_| {})
    }

    /// Runs every op in order, calling `after(op index)` as each one finishes: a host times
    /// the ops with it (a per-op profile), a board could toggle a pin. Costs nothing when empty.
    pub fn run_observed(&mut self, after: impl FnMut(usize)) -> Result<(), Error> {
        self.run_with(&Serial, after)
    }

    /// Like [`Interpreter::run_observed`], the large convolutions, bilinear Resizes and table
    /// lookups split into parts by output rows that `spread` may run at the same time (the
    /// same bytes either way).
    pub fn run_with(&mut self, spread: &dyn Spread, mut after: impl FnMut(usize)) -> Result<(), Error> {
        let mut at = 0;
        for o in 0..self.model.op_count() {
            let (range, next) = prepared_range(&self.model, o, at);
            at = next;
            self.step(o, self.prepared.get(range), spread)?;
            after(o);
        }
        Ok(())
    }

    fn step(&mut self, o: usize, prepared: Option<&[u8]>, spread: &dyn Spread) -> Result<(), Error> {
        let m = self.model;
        let op = m.op(o);
        let info = |i: usize| m.tensor(usize::from(op.inputs[i]));
        let y = m.tensor(usize::from(op.outputs[0]));
        // The output region is disjoint from every arena input (checked by `parse`), so the
        // arena splits into the output and what lies before and after it.
        let (before, rest) = self.arena.split_at_mut(y.offset);
        let (out, after) = rest.split_at_mut(y.len);
        let (before, after): (&[u8], &[u8]) = (before, after);
        let read = |t: &TensorInfo| -> &[u8] {
            match t.storage {
                Storage::Weights => m.weights_of(t),
                Storage::Arena if t.offset + t.len <= y.offset => &before[t.offset..t.offset + t.len],
                Storage::Arena => {
                    let at = t.offset - (y.offset + y.len);
                    &after[at..at + t.len]
                }
            }
        };
        let x = info(0);
        let quant = |t: &TensorInfo| (t.scale.unwrap_or(1.0), t.zero_point);
        match op.code {
            OpCode::Conv => {
                let w = info(1);
                let shape = conv_shape(&m, &op);
                let bias = (op.n_inputs == 3).then(|| read(&info(2)));
                let mult = m.weights_at_offset(op.extra.unwrap_or(0), shape.m * 4);
                let prepared = prepared.filter(|p| !p.is_empty());
                let (xs, ws) = (read(&x), read(&w));
                let conv = |s: &ops::conv::ConvShape, xs: &[u8], y_out: &mut [u8]| {
                    let mults = |c| ops::f32_at(mult, c);
                    ops::conv::conv(s, xs, x.zero_point, ws, bias, mults, prepared, y_out, y.zero_point)
                };
                let parts = conv_parts(&shape, spread.width());
                if parts <= 1 {
                    // Whole, batches included (which `ConvShape::rows` does not describe).
                    conv(&shape, xs, out);
                } else {
                    in_row_parts(spread, parts, shape.oh, shape.ow * shape.m, out, |rows, y_rows| {
                        let (part, from) = shape.rows(rows.start, rows.end);
                        conv(&part, &xs[from..], y_rows);
                    });
                }
            }
            OpCode::FullyConnected => {
                let w = info(1);
                let (n, k, cols) = (x.dims[0], x.dims[1], w.dims[1]);
                let bias = (op.n_inputs == 3).then(|| read(&info(2)));
                let mult = m.weights_at_offset(op.extra.unwrap_or(0), cols * 4);
                ops::fully_connected::fully_connected(
                    (n, k, cols),
                    read(&x),
                    x.zero_point,
                    read(&w),
                    bias,
                    |c| ops::f32_at(mult, c),
                    out,
                    y.zero_point,
                );
            }
            OpCode::MaxPool => {
                let p = &op.params;
                ops::max_pool::max_pool(
                    (x.dims[0], x.dims[1], x.dims[2], x.dims[3]),
                    (y.dims[1], y.dims[2]),
                    (usize::from(p[0]), usize::from(p[1])),
                    (usize::from(p[2]), usize::from(p[3])),
                    (usize::from(p[4]), usize::from(p[5])),
                    x.dtype,
                    read(&x),
                    out,
                );
            }
            #[cfg(feature = "all-ops")]
            OpCode::ConvF32 => {
                let bias = (op.n_inputs == 3).then(|| read(&info(2)));
                ops::conv_f32::conv_f32(&conv_shape(&m, &op), read(&x), read(&info(1)), bias, out);
            }
            #[cfg(feature = "all-ops")]
            OpCode::MatMulF32 => {
                let w = info(1);
                ops::fully_connected::matmul_f32((x.dims[0], x.dims[1], w.dims[1]), read(&x), read(&w), out);
            }
            #[cfg(feature = "all-ops")]
            OpCode::UnaryF32 => {
                // Checked by the parser.
                if let Some(f) = ops::unary_f32::Unary::from_params(&op.params) {
                    ops::unary_f32::unary_f32(f, read(&x), out);
                }
            }
            #[cfg(feature = "all-ops")]
            OpCode::BinaryF32 => {
                let b = info(1);
                let kind = ops::binary_f32::Kind::from_code(op.params[1]).unwrap_or(ops::binary_f32::Kind::Add);
                ops::binary_f32::binary_f32(kind, read(&x), read(&b), x.dims, b.dims, op.params[0] == 1, out);
            }
            OpCode::Quantize => {
                let (scale, zero) = quant(&y);
                ops::quantize::quantize(read(&x), scale, zero, out);
            }
            OpCode::Dequantize => {
                let (scale, zero) = quant(&x);
                ops::quantize::dequantize(read(&x), scale, zero, out);
            }
            OpCode::Reshape => out.copy_from_slice(read(&x)),
            #[cfg(feature = "all-ops")]
            OpCode::Transpose => {
                let p = &op.params;
                let perm = [usize::from(p[0]), usize::from(p[1]), usize::from(p[2]), usize::from(p[3])];
                ops::transpose::transpose(read(&x), x.dims, perm, x.dtype.size(), out);
            }
            OpCode::Relu if x.dtype == DType::F32 => ops::relu::relu_f32(read(&x), out),
            OpCode::Relu => ops::relu::relu_u8(read(&x), x.zero_point, out),
            OpCode::AddConstant => ops::add_constant::add_constant(read(&x), read(&info(1)), out),
            OpCode::Softmax => {
                // Over axis p[0]; with p[1] = 1, over every axis from p[0] on (ONNX before opset 13).
                let axis = usize::from(op.params[0]);
                let to = if op.params[1] == 1 { x.rank } else { axis + 1 };
                let (outer, len) = (x.dims[..axis].iter().product(), x.dims[axis..to].iter().product());
                ops::softmax::softmax(read(&x), outer, len, x.dims[to..x.rank].iter().product(), out);
            }
            #[cfg(feature = "all-ops")]
            OpCode::Add | OpCode::Mul => {
                let b = info(1);
                let kind = if op.code == OpCode::Add { ops::binary::Binary::Add } else { ops::binary::Binary::Mul };
                let (a, qa, qb) = (read(&x), quant(&x), quant(&b));
                ops::binary::binary(kind, a, qa, read(&b), qb, op.params[0] == 1, x.dims, b.dims, out, quant(&y));
            }
            #[cfg(feature = "all-ops")]
            OpCode::PRelu => {
                let slope = info(1);
                ops::prelu::prelu(read(&x), quant(&x), read(&slope), x.dims, slope.dims, out, quant(&y));
            }
            #[cfg(feature = "all-ops")]
            OpCode::GlobalAveragePool if x.dtype == DType::F32 => {
                let [n, h, w, c] = x.dims;
                ops::average_pool::global_average_pool_f32((n, h, w, c), read(&x), out);
            }
            #[cfg(feature = "all-ops")]
            OpCode::AveragePool | OpCode::GlobalAveragePool => {
                let [n, h, w, c] = x.dims;
                let p = &op.params;
                let (kernel, stride, pad, count_pad) = if op.code == OpCode::GlobalAveragePool {
                    ((h, w), (1, 1), (0, 0), false)
                } else {
                    let v = |i: usize| usize::from(p[i]);
                    ((v(0), v(1)), (v(2), v(3)), (v(4), v(5)), p[8] == 1)
                };
                let (x, qx, out_hw) = (read(&x), quant(&x), (y.dims[1], y.dims[2]));
                ops::average_pool::average_pool(
                    (n, h, w, c),
                    out_hw,
                    kernel,
                    stride,
                    pad,
                    count_pad,
                    x,
                    qx,
                    out,
                    quant(&y),
                );
            }
            #[cfg(feature = "all-ops")]
            OpCode::Resize => {
                // The innermost axis mapped byte by byte (float32: 4 entries a value).
                let size = x.dtype.size();
                let (x_dims, y_dims) = (crate::format::bytewise(x.dims, size), crate::format::bytewise(y.dims, size));
                let maps = m.weights_at_offset(op.extra.unwrap_or(0), 2 * y_dims.iter().sum::<usize>());
                ops::resize::resize(read(&x), x_dims, maps, y_dims, out);
            }
            #[cfg(feature = "all-ops")]
            OpCode::ResizeLinear => {
                let ([a, b, c, d], [_, e, f, g]) = (x.dims, y.dims);
                // Channels-last: [n, h, w, c] as it is; ONNX layout: [n·c, h, w, 1].
                let (dims, out_hw) =
                    if op.params[0] == 1 { ([a, b, c, d], (e, f)) } else { ([a * b, c, d, 1], (f, g)) };
                let maps =
                    m.weights_at_offset(op.extra.unwrap_or(0), (out_hw.0 + out_hw.1) * ops::resize::LINEAR_ENTRY);
                // By output rows (image and row) across threads.
                let (rows, xs, (qx, qy)) = (dims[0] * out_hw.0, read(&x), (quant(&x), quant(&y)));
                let row_len = out.len() / rows.max(1);
                let parts = parts_for(spread.width(), rows, out.len(), MIN_PART_VALUES);
                in_row_parts(spread, parts, rows, row_len, out, |r, y_rows| {
                    if x.dtype == DType::F32 {
                        ops::resize::resize_linear_f32(xs, dims, maps, out_hw, r, y_rows);
                    } else {
                        ops::resize::resize_linear(xs, qx, dims, maps, out_hw, r, y_rows, qy);
                    }
                });
            }
            #[cfg(feature = "all-ops")]
            OpCode::Lookup => {
                let (table, xs, n) = (m.weights_at_offset(op.extra.unwrap_or(0), 256), read(&x), out.len());
                in_row_parts(spread, parts_for(spread.width(), n, n, MIN_PART_VALUES), n, 1, out, |r, y| {
                    for (o, &v) in y.iter_mut().zip(&xs[r]) {
                        *o = table[usize::from(v)];
                    }
                });
            }
            #[cfg(feature = "all-ops")]
            OpCode::Slice => {
                let p = &op.params;
                let mut begin: [usize; 4] =
                    core::array::from_fn(|i| usize::from(u16::from_le_bytes([p[2 * i], p[2 * i + 1]])));
                // The kernel moves bytes: the innermost axis counted in bytes.
                let (size, mut dims, mut out_dims) = (x.dtype.size(), x.dims, y.dims);
                (dims[3], begin[3], out_dims[3]) = (dims[3] * size, begin[3] * size, out_dims[3] * size);
                ops::slice::slice(read(&x), dims, begin, out_dims, out);
            }
            #[cfg(feature = "all-ops")]
            OpCode::Pad => {
                let p = &op.params;
                let (mut begin, mut end) =
                    ([p[0], p[1], p[2], p[3]].map(usize::from), [p[4], p[5], p[6], p[7]].map(usize::from));
                // The kernel moves bytes: the innermost axis counted in bytes (float pads with 0.0).
                let (size, mut dims) = (x.dtype.size(), x.dims);
                (dims[3], begin[3], end[3]) = (dims[3] * size, begin[3] * size, end[3] * size);
                ops::pad::pad(read(&x), dims, begin, end, p[8], out);
            }
            #[cfg(feature = "all-ops")]
            OpCode::Concat => {
                let axis = usize::from(op.params[0]);
                let outer: usize = y.dims[..axis].iter().product();
                let inner: usize = y.dims[axis + 1..y.rank].iter().product::<usize>() * y.dtype.size();
                let n = op.n_inputs;
                let inputs: [&[u8]; 4] = core::array::from_fn(|i| if i < n { read(&info(i)) } else { &[] });
                let chunks: [usize; 4] = core::array::from_fn(|i| if i < n { info(i).dims[axis] * inner } else { 0 });
                ops::concat::concat(&inputs[..n], &chunks[..n], outer, out);
            }
            // Refused by `parse` already.
            #[cfg(not(feature = "all-ops"))]
            _ => return Err(Error::OpNotBuilt { op: o as u32, opcode: op.code.code() }),
        }
        Ok(())
    }
}
