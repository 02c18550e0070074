//! The model's edges: float32 ↔ uint8, exactly as onnxruntime's QuantizeLinear/DequantizeLinear.

use super::{round_half_even, widest};

widest! {
/// `q = saturate(round_half_even(x / scale) + zp)`: a division, as onnxruntime computes it.
pub fn quantize(x: &[u8], scale: f32, zero_point: i32, y: &mut [u8]) {
    let (lo, hi) = (-(zero_point as f32), 255.0 - zero_point as f32);
    for (q, b) in y.iter_mut().zip(x.chunks_exact(4)) {
        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]) / scale;
        // Clamped before rounding (the same result as saturating after it), NaN as 0; written
        // with min/max so that the loop vectorizes.
        let v = if v.is_nan() { 0.0 } else { v.max(lo).min(hi) };
        // SAFETY: v is a number within [−zp, 255 − zp] (zp is 0..=255), so it is finite and
        // within i32's range after rounding (`as` would add per-element saturation branches).
        let r: i32 = unsafe { round_half_even(v).to_int_unchecked() };
        *q = (r + zero_point) as u8;
    }
}
}

widest! {
/// `x = (q − zp) · scale`.
pub fn dequantize(q: &[u8], scale: f32, zero_point: i32, y: &mut [u8]) {
    for (out, &v) in y.chunks_exact_mut(4).zip(q) {
        out.copy_from_slice(&((i32::from(v) - zero_point) as f32 * scale).to_le_bytes());
    }
}
}
