//! Add of two float tensors — the residual connections a mixed int8 model keeps in float — with
//! an optional Relu after it. The second operand broadcasts (each of its dims is the output's or 1).

use super::{broadcast_rows, f32_at, widest};

widest! {
    /// `y = relu?(a + b)`; `a` and `y` have `dims`, `b` has `b_dims`; little-endian float32 bytes.
    pub fn add_f32(a: &[u8], b: &[u8], dims: [usize; 4], b_dims: [usize; 4], relu: bool, y: &mut [u8]) {
        let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
        for (at, len, b_at, b_row) in broadcast_rows(dims, b_dims) {
            let (a, y) = (&a[4 * at..4 * (at + len)], &mut y[4 * at..4 * (at + len)]);
            if b_row {
                let b = &b[4 * b_at..4 * (b_at + len)];
                for ((o, p), q) in y.chunks_exact_mut(4).zip(a.chunks_exact(4)).zip(b.chunks_exact(4)) {
                    o.copy_from_slice(&(le(p) + le(q)).max(floor).to_le_bytes());
                }
            } else {
                let q = f32_at(b, b_at);
                for (o, p) in y.chunks_exact_mut(4).zip(a.chunks_exact(4)) {
                    o.copy_from_slice(&(le(p) + q).max(floor).to_le_bytes());
                }
            }
        }
    }
}

#[inline(always)]
fn le(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
