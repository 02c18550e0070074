//! Relu: max(x, 0) on float32; on uint8, max(q, zero point) (the quantized zero).

use super::{f32_at, put_f32};

pub fn relu_f32(x: &[u8], y: &mut [u8]) {
    for i in 0..y.len() / 4 {
        put_f32(y, i, f32_at(x, i).max(0.0));
    }
}

pub fn relu_u8(x: &[u8], zero_point: i32, y: &mut [u8]) {
    let z = zero_point.clamp(0, 255) as u8;
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v.max(z);
    }
}
