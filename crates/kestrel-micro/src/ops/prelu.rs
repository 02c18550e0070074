//! PRelu on uint8, requantized: `Quantize(PRelu(Dequantize(x), slope))` in the float steps of
//! the unfused QDQ graph (exact). The float slope broadcasts (each of its dims x's or 1):
//! per channel, typically.

use super::{broadcast_rows, f32_at, round_half_even, widest};

widest! {
/// `x` and `y` have `dims`, `slope` (float32 bytes) has `slope_dims`.
pub fn prelu(
    x: &[u8],
    qx: (f32, i32),
    slope: &[u8],
    dims: [usize; 4],
    slope_dims: [usize; 4],
    y: &mut [u8],
    qy: (f32, i32),
) {
    let ((sx, zx), (sy, zy)) = (qx, qy);
    let (lo, hi) = (-(zy as f32), 255.0 - zy as f32);
    for (at, len, s_at, s_row) in broadcast_rows(dims, slope_dims) {
        for (i, (o, &p)) in y[at..at + len].iter_mut().zip(&x[at..at + len]).enumerate() {
            let v = (i32::from(p) - zx) as f32 * sx;
            let v = if v < 0.0 { v * f32_at(slope, s_at + if s_row { i } else { 0 }) } else { v };
            // Clamped before rounding, with min/max; NaN (a NaN slope) becomes 0 as in Quantize.
            let v = (v / sy).max(lo).min(hi);
            let v = if v.is_nan() { 0.0 } else { v };
            // SAFETY: v is within [−zy, 255 − zy] (zy is 0..=255): finite, within i32.
            let r: i32 = unsafe { round_half_even(v).to_int_unchecked() };
            *o = (r + zy) as u8;
        }
    }
}
}
