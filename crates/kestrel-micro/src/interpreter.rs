//! The executor: runs a validated model op by op in the caller's arena. No allocation, ever.

use crate::format::{DType, Model, OpCode, Storage, TensorInfo};
use crate::ops;
use crate::Error;

/// A model bound to an arena, ready to run.
pub struct Interpreter<'m, 'a> {
    model: Model<'m>,
    arena: &'a mut [u8],
}

impl<'m, 'a> Interpreter<'m, 'a> {
    /// Binds `model` to `arena`, which must hold at least `model.arena_len()` bytes.
    pub fn new(model: Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        if arena.len() < model.arena_len() {
            return Err(Error::ArenaTooSmall { need: model.arena_len() as u32, have: arena.len() as u32 });
        }
        Ok(Interpreter { model, arena })
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
        for o in 0..self.model.op_count() {
            self.step(o)?;
        }
        Ok(())
    }

    fn step(&mut self, o: usize) -> Result<(), Error> {
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
        match op.code {
            OpCode::Conv => {
                let w = info(1);
                let p = &op.params;
                let shape = ops::conv::ConvShape {
                    n: x.dims[0],
                    c: x.dims[1],
                    h: x.dims[2],
                    w: x.dims[3],
                    m: w.dims[0],
                    oh: y.dims[2],
                    ow: y.dims[3],
                    kh: usize::from(p[0]),
                    kw: usize::from(p[1]),
                    stride: (usize::from(p[2]), usize::from(p[3])),
                    dilation: (usize::from(p[4]), usize::from(p[5])),
                    pad: (usize::from(p[6]), usize::from(p[7])),
                    groups: usize::from(u16::from_le_bytes([p[10], p[11]])),
                };
                let bias = (op.n_inputs == 3).then(|| read(&info(2)));
                let mult = m.weights_at_offset(op.extra.unwrap_or(0), shape.m * 4);
                ops::conv::conv(
                    &shape,
                    read(&x),
                    x.zero_point,
                    read(&w),
                    bias,
                    |c| ops::f32_at(mult, c),
                    out,
                    y.zero_point,
                );
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
                    (y.dims[2], y.dims[3]),
                    (usize::from(p[0]), usize::from(p[1])),
                    (usize::from(p[2]), usize::from(p[3])),
                    (usize::from(p[4]), usize::from(p[5])),
                    read(&x),
                    out,
                );
            }
            OpCode::Quantize => ops::quantize::quantize(read(&x), y.scale.unwrap_or(1.0), y.zero_point, out),
            OpCode::Dequantize => ops::quantize::dequantize(read(&x), x.scale.unwrap_or(1.0), x.zero_point, out),
            OpCode::Reshape => out.copy_from_slice(read(&x)),
            OpCode::Transpose => {
                let p = &op.params;
                let perm = [usize::from(p[0]), usize::from(p[1]), usize::from(p[2]), usize::from(p[3])];
                ops::transpose::transpose(read(&x), x.dims, perm, x.dtype.size(), out);
            }
            OpCode::Relu if x.dtype == DType::F32 => ops::relu::relu_f32(read(&x), out),
            OpCode::Relu => ops::relu::relu_u8(read(&x), x.zero_point, out),
            OpCode::AddConstant => ops::add_constant::add_constant(read(&x), read(&info(1)), out),
            OpCode::Softmax => ops::softmax::softmax(read(&x), x.dims[x.rank - 1], out),
            OpCode::Add => {
                let b = info(1);
                let q = |t: &TensorInfo| (t.scale.unwrap_or(1.0), t.zero_point);
                ops::add::add(read(&x), q(&x), read(&b), q(&b), out, q(&y));
            }
        }
        Ok(())
    }
}
