//! Add and Mul of two uint8 tensors, requantized: the QDQ form the compressor writes
//! (Dequantize both, add or multiply in float, optional Relu, Quantize), with the same float
//! operations in the same order, so it matches an unfused run of that graph exactly. The
//! second operand broadcasts (each of its dims is the output's or 1).

use super::{broadcast_rows, round_half_even, widest};

/// Which binary op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Add,
    Mul,
}

widest! {
/// `y = Quantize(relu?(Dequantize(a) ∘ Dequantize(b)))`; `a` and `y` have `dims`, `b` has
/// `b_dims` (each dim equal or 1); quantization parameters are (scale, zero point).
#[allow(clippy::too_many_arguments)]
pub fn binary(
    op: Binary,
    a: &[u8],
    qa: (f32, i32),
    b: &[u8],
    qb: (f32, i32),
    relu: bool,
    dims: [usize; 4],
    b_dims: [usize; 4],
    y: &mut [u8],
    qy: (f32, i32),
) {
    for (at, len, b_at, b_row) in broadcast_rows(dims, b_dims) {
        let (a, y) = (&a[at..at + len], &mut y[at..at + len]);
        let whole = b.get(b_at..b_at + len).filter(|_| b_row);
        let splat = core::iter::repeat_n(b[b_at], len);
        match (op, whole) {
            (Binary::Add, Some(b)) => row(a, qa, b.iter().copied(), qb, |p, q| p + q, relu, y, qy),
            (Binary::Add, None) => row(a, qa, splat, qb, |p, q| p + q, relu, y, qy),
            (Binary::Mul, Some(b)) => row(a, qa, b.iter().copied(), qb, |p, q| p * q, relu, y, qy),
            (Binary::Mul, None) => row(a, qa, splat, qb, |p, q| p * q, relu, y, qy),
        }
    }
}
}

/// One row: b's values one per element, or one value repeated.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row(
    a: &[u8],
    (sa, za): (f32, i32),
    b: impl Iterator<Item = u8>,
    (sb, zb): (f32, i32),
    f: impl Fn(f32, f32) -> f32,
    relu: bool,
    y: &mut [u8],
    (sy, zy): (f32, i32),
) {
    let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
    let (lo, hi) = (-(zy as f32), 255.0 - zy as f32);
    for ((o, &p), q) in y.iter_mut().zip(a).zip(b) {
        let v = f((i32::from(p) - za) as f32 * sa, (i32::from(q) - zb) as f32 * sb).max(floor);
        // Clamped before rounding (the same as saturating after it), with min/max so that the
        // loop vectorizes; the operands are small integers times finite scales: no NaN.
        let v = (v / sy).max(lo).min(hi);
        // SAFETY: v is within [−zy, 255 − zy] (zy is 0..=255): finite, within i32.
        let r: i32 = unsafe { round_half_even(v).to_int_unchecked() };
        *o = (r + zy) as u8;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// Broadcast rows (merged, per element or one value per row) give what indexing each
    /// element of b on its own gives.
    #[test]
    fn broadcasting_equals_indexing_each_element() {
        let dims = [2, 3, 4, 5];
        for b_dims in [[2, 3, 4, 5], [1, 3, 1, 1], [1, 1, 1, 5], [2, 1, 4, 1], [1, 1, 1, 1], [2, 3, 1, 5], [1, 3, 4, 5]]
        {
            let n: usize = dims.iter().product();
            let a: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            let b: Vec<u8> = (0..b_dims.iter().product::<usize>()).map(|i| (i * 91 % 253) as u8).collect();
            let (qa, qb, qy) = ((0.1, 120), (0.05, 7), (0.3, 128));
            for op in [Binary::Add, Binary::Mul] {
                let mut y = std::vec![0u8; n];
                binary(op, &a, qa, &b, qb, false, dims, b_dims, &mut y, qy);
                for i in 0..n {
                    let index = [i / 60, i / 20 % 3, i / 5 % 4, i % 5];
                    let bi = (0..4).fold(0, |at, k| at * b_dims[k] + index[k] % b_dims[k]);
                    let mut one = [0u8];
                    binary(op, &a[i..i + 1], qa, &b[bi..bi + 1], qb, false, [1; 4], [1; 4], &mut one, qy);
                    assert_eq!(y[i], one[0], "{op:?} b {b_dims:?} element {i}");
                }
            }
        }
    }
}
