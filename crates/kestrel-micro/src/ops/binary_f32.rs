//! Add, Sub, Mul or Div of two float tensors — the residual connections a mixed int8 model keeps
//! in float, a detector's box decoding after its last Dequantize — with an optional Relu after
//! it. The second operand broadcasts (each of its dims is the output's or 1).

use super::{broadcast_rows, f32_at, widest};

/// The operation, as the op's parameter byte 1 names it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Add,
    Sub,
    Mul,
    Div,
}

impl Kind {
    pub fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            0 => Kind::Add,
            1 => Kind::Sub,
            2 => Kind::Mul,
            3 => Kind::Div,
            _ => return None,
        })
    }

    /// The parameter byte naming it.
    pub fn code(self) -> u8 {
        match self {
            Kind::Add => 0,
            Kind::Sub => 1,
            Kind::Mul => 2,
            Kind::Div => 3,
        }
    }
}

/// `y = relu?(a ∘ b)`; `a` and `y` have `dims`, `b` has `b_dims`; little-endian float32 bytes.
pub fn binary_f32(kind: Kind, a: &[u8], b: &[u8], dims: [usize; 4], b_dims: [usize; 4], relu: bool, y: &mut [u8]) {
    match kind {
        Kind::Add => add(a, b, dims, b_dims, relu, y),
        Kind::Sub => sub(a, b, dims, b_dims, relu, y),
        Kind::Mul => mul(a, b, dims, b_dims, relu, y),
        Kind::Div => div(a, b, dims, b_dims, relu, y),
    }
}

/// Each operation's loops, monomorphized (so that they vectorize) and compiled at the widest.
macro_rules! binary {
    ($name:ident, $op:tt) => {
        widest! {
            fn $name(a: &[u8], b: &[u8], dims: [usize; 4], b_dims: [usize; 4], relu: bool, y: &mut [u8]) {
                let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
                for (at, len, b_at, b_row) in broadcast_rows(dims, b_dims) {
                    let (a, y) = (&a[4 * at..4 * (at + len)], &mut y[4 * at..4 * (at + len)]);
                    if b_row {
                        let b = &b[4 * b_at..4 * (b_at + len)];
                        for ((o, p), q) in y.chunks_exact_mut(4).zip(a.chunks_exact(4)).zip(b.chunks_exact(4)) {
                            o.copy_from_slice(&(le(p) $op le(q)).max(floor).to_le_bytes());
                        }
                    } else {
                        let q = f32_at(b, b_at);
                        for (o, p) in y.chunks_exact_mut(4).zip(a.chunks_exact(4)) {
                            o.copy_from_slice(&(le(p) $op q).max(floor).to_le_bytes());
                        }
                    }
                }
            }
        }
    };
}

binary!(add, +);
binary!(sub, -);
binary!(mul, *);
binary!(div, /);

#[inline(always)]
fn le(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{vec, vec::Vec};

    use super::{binary_f32, Kind};

    type Reference = fn(f32, f32) -> f32;

    fn bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn each_kind_computes_its_operation_with_the_second_operand_broadcast() {
        // a [1, 2, 3, 1], b [1, 1, 3, 1]: b repeats over axis 1.
        let a = [1.0, 2.0, 3.0, -4.0, 5.0, 6.0];
        let b = [2.0, -1.0, 0.5];
        let (dims, b_dims) = ([1, 2, 3, 1], [1, 1, 3, 1]);
        let cases: [(Kind, Reference); 4] = [
            (Kind::Add, |x, y| x + y),
            (Kind::Sub, |x, y| x - y),
            (Kind::Mul, |x, y| x * y),
            (Kind::Div, |x, y| x / y),
        ];
        for (kind, f) in cases {
            for relu in [false, true] {
                let mut y = vec![0u8; 24];
                binary_f32(kind, &bytes(&a), &bytes(&b), dims, b_dims, relu, &mut y);
                let want: Vec<f32> =
                    (0..6).map(|i| f(a[i], b[i % 3])).map(|v| if relu { v.max(0.0) } else { v }).collect();
                assert_eq!(y, bytes(&want), "relu {relu}");
            }
        }
        assert!(Kind::from_code(4).is_none());
    }
}
