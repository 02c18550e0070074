//! Resize of 1-byte elements. Nearest: by per-axis index maps, `y[i0, i1, i2, i3] = x[m0[i0],
//! m1[i1], m2[i2], m3[i3]]`; the exporter computes the maps from the ONNX attributes (nearest
//! mode, coordinate transformation, rounding), so the runtime only gathers and the quantization
//! is unchanged. Bilinear: by per-axis (index, index, weight, weight) entries the exporter
//! computes as onnxruntime does, requantized in onnxruntime's float steps.

use super::{f32_at, round_half_even, widest};

/// `maps`: `y_dims[0] + … + y_dims[3]` little-endian u16 source indices, axis by axis (each
/// below its x dim: checked by the parser).
pub fn resize(x: &[u8], x_dims: [usize; 4], maps: &[u8], y_dims: [usize; 4], y: &mut [u8]) {
    let source = |axis: usize, i: usize| {
        let at = 2 * (y_dims[..axis].iter().sum::<usize>() + i);
        usize::from(u16::from_le_bytes([maps[at], maps[at + 1]]))
    };
    let mut out = y.iter_mut();
    for i0 in 0..y_dims[0] {
        let r0 = source(0, i0) * x_dims[1];
        for i1 in 0..y_dims[1] {
            let r1 = (r0 + source(1, i1)) * x_dims[2];
            for i2 in 0..y_dims[2] {
                let row = &x[(r1 + source(2, i2)) * x_dims[3]..][..x_dims[3]];
                for (i3, o) in (0..y_dims[3]).zip(&mut out) {
                    *o = row[source(3, i3)];
                }
            }
        }
    }
}

/// Bytes of one bilinear entry: source indices `i1`, `i2` (u16) and weights `d1`, `d2` (f32),
/// as onnxruntime's `SetupUpsampleBilinear` computes them: the value is `d2·x[i1] + d1·x[i2]`.
pub const LINEAR_ENTRY: usize = 12;

/// Entry `k` of `maps`: (i1, i2, d1, d2).
fn entry(maps: &[u8], k: usize) -> (usize, usize, f32, f32) {
    let e = &maps[k * LINEAR_ENTRY..][..LINEAR_ENTRY];
    let index = |at: usize| usize::from(u16::from_le_bytes([e[at], e[at + 1]]));
    (index(0), index(2), f32_at(e, 1), f32_at(e, 2))
}

widest! {
/// `Quantize(Resize(Dequantize(x)))`, bilinear, on uint8 `[n, h, w, c]` resized along h and w
/// into `[n, oh, ow, c]` (an ONNX-layout tensor is passed as `[n·c, h, w, 1]`). `maps`: `oh`
/// row entries, then `ow` column entries (indices below h and w: checked by the parser).
/// Each value is onnxruntime's `dx2·dy2·X11 + dx1·dy2·X21 + dx2·dy1·X12 + dx1·dy1·X22`, in its
/// order, on dequantized inputs: bit-exact with its unfused QDQ graph.
pub fn resize_linear(
    x: &[u8],
    qx: (f32, i32),
    x_dims: [usize; 4],
    maps: &[u8],
    out_hw: (usize, usize),
    y: &mut [u8],
    qy: (f32, i32),
) {
    let ([n, h, w, c], (oh, ow)) = (x_dims, out_hw);
    let ((sx, zx), (sy, zy)) = (qx, qy);
    let (lo, hi) = (-(zy as f32), 255.0 - zy as f32);
    let value = |v: u8| (i32::from(v) - zx) as f32 * sx;
    let mut out = y.iter_mut();
    for image in x.chunks_exact(h * w * c).take(n) {
        for oy in 0..oh {
            let (y1, y2, dy1, dy2) = entry(maps, oy);
            let (row1, row2) = (&image[y1 * w * c..][..w * c], &image[y2 * w * c..][..w * c]);
            for ox in 0..ow {
                let (x1, x2, dx1, dx2) = entry(maps, oh + ox);
                let (p11, p21) = (&row1[x1 * c..][..c], &row1[x2 * c..][..c]);
                let (p12, p22) = (&row2[x1 * c..][..c], &row2[x2 * c..][..c]);
                for (ch, o) in (0..c).zip(&mut out) {
                    let v = dx2 * dy2 * value(p11[ch])
                        + dx1 * dy2 * value(p21[ch])
                        + dx2 * dy1 * value(p12[ch])
                        + dx1 * dy1 * value(p22[ch]);
                    // Clamped before rounding, with min/max; NaN becomes 0 as in Quantize.
                    let v = (v / sy).max(lo).min(hi);
                    let v = if v.is_nan() { 0.0 } else { v };
                    // SAFETY: v is within [−zy, 255 − zy] (zy is 0..=255): finite, within i32.
                    let r: i32 = unsafe { round_half_even(v).to_int_unchecked() };
                    *o = (r + zy) as u8;
                }
            }
        }
    }
}
}

widest! {
/// [`resize_linear`] on float32 (a mixed model's float layers): the same entries and sums.
pub fn resize_linear_f32(x: &[u8], x_dims: [usize; 4], maps: &[u8], out_hw: (usize, usize), y: &mut [u8]) {
    let ([n, h, w, c], (oh, ow)) = (x_dims, out_hw);
    let plane = h * w * c;
    let mut at = 0;
    for b in 0..n {
        let image = |r: usize, col: usize, ch: usize| f32_at(x, b * plane + (r * w + col) * c + ch);
        for oy in 0..oh {
            let (y1, y2, dy1, dy2) = entry(maps, oy);
            for ox in 0..ow {
                let (x1, x2, dx1, dx2) = entry(maps, oh + ox);
                for ch in 0..c {
                    let v = dx2 * dy2 * image(y1, x1, ch)
                        + dx1 * dy2 * image(y1, x2, ch)
                        + dx2 * dy1 * image(y2, x1, ch)
                        + dx1 * dy1 * image(y2, x2, ch);
                    y[4 * at..4 * at + 4].copy_from_slice(&v.to_le_bytes());
                    at += 1;
                }
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn linear_entry(i1: u16, i2: u16, d1: f32, d2: f32) -> Vec<u8> {
        [&i1.to_le_bytes()[..], &i2.to_le_bytes(), &d1.to_le_bytes(), &d2.to_le_bytes()].concat()
    }

    #[test]
    fn bilinear_blends_four_neighbours_and_requantizes() {
        // One channel, 2x2 → 1x3: row between the two rows, columns at 0, ¼ and 1.
        let x = [0u8, 100, 200, 40];
        let maps: Vec<u8> = [
            linear_entry(0, 1, 0.5, 0.5),
            linear_entry(0, 0, 0.5, 0.5),
            linear_entry(0, 1, 0.25, 0.75),
            linear_entry(1, 1, 0.5, 0.5),
        ]
        .concat();
        let mut y = [0u8; 3];
        // Input scale 0.5 (zero point 0), output scale 1 (zero point 10).
        resize_linear(&x, (0.5, 0), [1, 2, 2, 1], &maps, (1, 3), &mut y, (1.0, 10));
        // Column 0: (0 + 200)/2 · 0.5 = 50; column ¼: 0.75·50 + 0.25·(100 + 40)/2·0.5 = 46.25;
        // column 1: (100 + 40)/2 · 0.5 = 35; each + 10.
        assert_eq!(y, [60, 56, 45]);
    }
}
