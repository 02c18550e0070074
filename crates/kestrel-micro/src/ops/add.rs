//! Requantizing add of two uint8 tensors of the same shape.

use super::round_half_even;

pub fn add(a: &[u8], (sa, za): (f32, i32), b: &[u8], (sb, zb): (f32, i32), y: &mut [u8], (sy, zy): (f32, i32)) {
    let (ma, mb) = (sa / sy, sb / sy);
    for ((o, &p), &q) in y.iter_mut().zip(a).zip(b) {
        let v = (i32::from(p) - za) as f32 * ma + (i32::from(q) - zb) as f32 * mb;
        let v = v.clamp(-(zy as f32), 255.0 - zy as f32);
        *o = (round_half_even(v) as i32 + zy) as u8;
    }
}
