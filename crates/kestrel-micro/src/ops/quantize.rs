//! The model's edges: float32 ↔ uint8, exactly as onnxruntime's QuantizeLinear/DequantizeLinear.

use super::{f32_at, put_f32, round_half_even};

/// `q = saturate(round_half_even(x / scale) + zp)`: a division, as onnxruntime computes it.
pub fn quantize(x: &[u8], scale: f32, zero_point: i32, y: &mut [u8]) {
    let (lo, hi) = (-(zero_point as f32) - 1.0, 256.0 - zero_point as f32);
    for (i, q) in y.iter_mut().enumerate() {
        let v = (f32_at(x, i) / scale).clamp(lo, hi);
        *q = (round_half_even(v) as i32 + zero_point).clamp(0, 255) as u8;
    }
}

/// `x = (q − zp) · scale`.
pub fn dequantize(q: &[u8], scale: f32, zero_point: i32, y: &mut [u8]) {
    for (i, &v) in q.iter().enumerate() {
        put_f32(y, i, (i32::from(v) - zero_point) as f32 * scale);
    }
}
