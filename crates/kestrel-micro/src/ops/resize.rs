//! Resize of 1-byte elements. Nearest: by per-axis index maps, `y[i0, i1, i2, i3] = x[m0[i0],
//! m1[i1], m2[i2], m3[i3]]`; the exporter computes the maps from the ONNX attributes (nearest
//! mode, coordinate transformation, rounding), so the runtime only gathers and the quantization
//! is unchanged. Bilinear: by per-axis (index, index, weight, weight) entries the exporter
//! computes as onnxruntime does, requantized in onnxruntime's float steps.

use core::ops::Range;

use super::{f32_at, put_f32, quantize_value, widest};

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

/// For each output pixel of `[n, oh, ow, c]` (its index), the flat input offsets of its four
/// neighbours' channel runs (X11, X21, X12, X22 in `[n, h, w, c]`) and their weights
/// (dx2·dy2, dx1·dy2, dx2·dy1, dx1·dy1), as onnxruntime's bilinear Resize pairs them.
#[inline(always)]
fn blend(
    x_dims: [usize; 4],
    maps: &[u8],
    (oh, ow): (usize, usize),
    rows: Range<usize>,
    mut pixel: impl FnMut(usize, [usize; 4], [f32; 4]),
) {
    let [_, h, w, c] = x_dims;
    for row in rows.clone() {
        let (b, oy) = (row / oh, row % oh);
        let (y1, y2, dy1, dy2) = entry(maps, oy);
        let (r1, r2) = ((b * h + y1) * w, (b * h + y2) * w);
        for ox in 0..ow {
            let (x1, x2, dx1, dx2) = entry(maps, oh + ox);
            let at = [(r1 + x1) * c, (r1 + x2) * c, (r2 + x1) * c, (r2 + x2) * c];
            pixel((row - rows.start) * ow + ox, at, [dx2 * dy2, dx1 * dy2, dx2 * dy1, dx1 * dy1]);
        }
    }
}

/// One value: `w[0]·v[0] + w[1]·v[1] + w[2]·v[2] + w[3]·v[3]`, onnxruntime's order.
#[inline(always)]
fn mix(w: [f32; 4], v: [f32; 4]) -> f32 {
    w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3]
}

widest! {
/// `Quantize(Resize(Dequantize(x)))`, bilinear, on uint8 `[n, h, w, c]` resized along h and w
/// into `[n, oh, ow, c]` (an ONNX-layout tensor is passed as `[n·c, h, w, 1]`). `maps`: `oh`
/// row entries, then `ow` column entries (indices below h and w: checked by the parser). On
/// dequantized inputs in onnxruntime's float steps: bit-exact with its unfused QDQ graph. Only
/// output rows `rows` (image · oh + row) are made, into `y` (theirs alone: a thread's part).
#[allow(clippy::too_many_arguments)]
pub fn resize_linear(
    x: &[u8],
    qx: (f32, i32),
    x_dims: [usize; 4],
    maps: &[u8],
    out_hw: (usize, usize),
    rows: Range<usize>,
    y: &mut [u8],
    qy: (f32, i32),
) {
    let (c, (sx, zx), (sy, zy)) = (x_dims[3], qx, qy);
    let value = |v: u8| (i32::from(v) - zx) as f32 * sx;
    blend(x_dims, maps, out_hw, rows, |o, at, w| {
        let [p11, p21, p12, p22] = at.map(|a| &x[a..a + c]);
        let neighbours = p11.iter().zip(p21).zip(p12).zip(p22);
        for (q, (((&a, &b), &d), &e)) in y[o * c..(o + 1) * c].iter_mut().zip(neighbours) {
            *q = quantize_value(mix(w, [value(a), value(b), value(d), value(e)]), sy, zy);
        }
    });
}
}

widest! {
/// [`resize_linear`] on float32 (a mixed model's float layers): the same entries and sums.
pub fn resize_linear_f32(
    x: &[u8],
    x_dims: [usize; 4],
    maps: &[u8],
    out_hw: (usize, usize),
    rows: Range<usize>,
    y: &mut [u8],
) {
    let c = x_dims[3];
    blend(x_dims, maps, out_hw, rows, |o, at, w| {
        for k in 0..c {
            let v = mix(w, at.map(|a| f32_at(x, a + k)));
            put_f32(y, o * c + k, v);
        }
    });
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
        resize_linear(&x, (0.5, 0), [1, 2, 2, 1], &maps, (1, 3), 0..1, &mut y, (1.0, 10));
        // Column 0: (0 + 200)/2 · 0.5 = 50; column ¼: 0.75·50 + 0.25·(100 + 40)/2·0.5 = 46.25;
        // column 1: (100 + 40)/2 · 0.5 = 35; each + 10.
        assert_eq!(y, [60, 56, 45]);
    }
}
