//! Float add of a constant: the bias after a dequantized MatMul.

use super::{f32_at, put_f32};

/// `c` covers the whole tensor or is broadcast along its last axis.
pub fn add_constant(x: &[u8], c: &[u8], y: &mut [u8]) {
    let (n, nc) = (y.len() / 4, c.len() / 4);
    for i in 0..n {
        put_f32(y, i, f32_at(x, i) + f32_at(c, i % nc));
    }
}
