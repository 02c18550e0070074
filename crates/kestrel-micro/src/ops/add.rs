//! Add of two uint8 tensors of the same shape, requantized: the QDQ form the compressor writes
//! (Dequantize both, add in float, optional Relu, Quantize), with the same float operations in
//! the same order, so it matches an unfused run of that graph exactly.

use super::{round_half_even, widest};

widest! {
#[allow(clippy::too_many_arguments)]
pub fn add(
    a: &[u8],
    qa: (f32, i32),
    b: &[u8],
    qb: (f32, i32),
    relu: bool,
    y: &mut [u8],
    qy: (f32, i32),
) {
    let ((sa, za), (sb, zb), (sy, zy)) = (qa, qb, qy);
    let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
    let (lo, hi) = (-(zy as f32), 255.0 - zy as f32);
    for ((o, &p), &q) in y.iter_mut().zip(a).zip(b) {
        let v = ((i32::from(p) - za) as f32 * sa + (i32::from(q) - zb) as f32 * sb).max(floor);
        // Clamped before rounding (the same as saturating after it), with min/max so that the
        // loop vectorizes; the operands are small integers times finite scales: no NaN.
        let v = (v / sy).max(lo).min(hi);
        // SAFETY: v is within [−zy, 255 − zy] (zy is 0..=255): finite, within i32.
        let r: i32 = unsafe { round_half_even(v).to_int_unchecked() };
        *o = (r + zy) as u8;
    }
}
}
