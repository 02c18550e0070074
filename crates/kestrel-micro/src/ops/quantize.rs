//! The model's edges: float32 ↔ uint8, exactly as onnxruntime's QuantizeLinear/DequantizeLinear.

use super::{quantize_value, widest};

widest! {
/// `q = saturate(round_half_even(x / scale) + zp)`: a division, as onnxruntime computes it.
pub fn quantize(x: &[u8], scale: f32, zero_point: i32, y: &mut [u8]) {
    for (q, b) in y.iter_mut().zip(x.chunks_exact(4)) {
        *q = quantize_value(f32::from_le_bytes([b[0], b[1], b[2], b[3]]), scale, zero_point);
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
