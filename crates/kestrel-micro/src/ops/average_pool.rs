//! AveragePool and GlobalAveragePool on uint8, channels-last, requantized (and GlobalAveragePool
//! on float32, for the squeeze-and-excite blocks a mixed model keeps float): the window's sum of
//! `x − zx` in integers (exact), then `sum · sx / count / sy` rounded half to even. onnxruntime's
//! float graph sums the dequantized floats instead, whose rounding can differ in the last bit
//! of the mean: at most 1 LSB after quantization, at a tie.

use super::{f32_at, put_f32, round_half_even, widest};

/// Channels summed at a time (an i32 accumulator each on the stack).
const CHUNK: usize = 64;

widest! {
/// `dims` = (n, h, w, c), `out` = (oh, ow); kernel, stride, (top, left) padding; padding counts
/// toward the divisor when `count_pad` (no ceil mode: windows stay within the padding). A window never lies entirely in the padding (checked by
/// the parser). GlobalAveragePool is the window (h, w) with stride 1 and no padding.
#[allow(clippy::too_many_arguments)]
pub fn average_pool(
    dims: (usize, usize, usize, usize),
    out: (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    count_pad: bool,
    x: &[u8],
    qx: (f32, i32),
    y: &mut [u8],
    qy: (f32, i32),
) {
    let ((n, h, w, c), (oh, ow), (kh, kw), (sh, sw), (pt, pl)) = (dims, out, kernel, stride, pad);
    let ((sx, zx), (sy, zy)) = (qx, qy);
    let (lo, hi) = (-(zy as f32), 255.0 - zy as f32);
    let mut acc = [0i32; CHUNK];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let pixel = ((b * oh + oy) * ow + ox) * c;
                for c0 in (0..c).step_by(CHUNK) {
                    let width = CHUNK.min(c - c0);
                    let acc = &mut acc[..width];
                    acc.fill(0);
                    let mut count = 0;
                    for ky in 0..kh {
                        let iy = (oy * sh + ky).wrapping_sub(pt);
                        for kx in 0..kw {
                            let ix = (ox * sw + kx).wrapping_sub(pl);
                            if iy < h && ix < w {
                                let at = ((b * h + iy) * w + ix) * c + c0;
                                for (a, &v) in acc.iter_mut().zip(&x[at..at + width]) {
                                    *a += i32::from(v) - zx;
                                }
                                count += 1;
                            }
                        }
                    }
                    // Padding holds zx, which adds nothing; with `count_pad` it still counts.
                    let count = if count_pad { (kh * kw) as f32 } else { count as f32 };
                    for (o, &a) in y[pixel + c0..pixel + c0 + width].iter_mut().zip(acc.iter()) {
                        let v = (a as f32 * sx / count / sy).max(lo).min(hi);
                        // SAFETY: v is within [−zy, 255 − zy] (zy is 0..=255): finite, within i32.
                        let r: i32 = unsafe { round_half_even(v).to_int_unchecked() };
                        *o = (r + zy) as u8;
                    }
                }
            }
        }
    }
}
}

widest! {
/// The mean of each channel of float32 `x` (`[n, h, w, c]` channels-last) into `y` (`[n, c]`),
/// summed in f64.
pub fn global_average_pool_f32(dims: (usize, usize, usize, usize), x: &[u8], y: &mut [u8]) {
    let (n, h, w, c) = dims;
    for b in 0..n {
        for ch in 0..c {
            let sum: f64 = (0..h * w).map(|p| f64::from(f32_at(x, (b * h * w + p) * c + ch))).sum();
            put_f32(y, b * c + ch, (sum / (h * w) as f64) as f32);
        }
    }
}
}
