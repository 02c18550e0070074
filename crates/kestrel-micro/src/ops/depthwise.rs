//! Depthwise convolution (one filter per channel, channels-last), the portable kernel for every
//! CPU: instead of gathering and dotting one channel at a time, each tap adds a run of channels
//! times that tap's weights, laid out by channel — loops that vectorize. With stride 1 a tap's
//! inputs for a whole output row are one contiguous run, worked in chunks of `p` pixels (`p·C` a
//! multiple of 16) against the tap's weights repeated `p` times. Otherwise pixel by pixel, the
//! channels in blocks whose weights fit the stack buffer (MediaPipe's 5×5 layers on 384 and 672
//! channels fell back to the generic patch loop: 9 ms each, 23× slower; so did more than 1,024
//! channels, MediaPipe pose detection's 1,152: 3.3 ms each, 30× slower). Integer sums, so the
//! result is the patch kernel's exactly (tested against the tap-by-tap definition).

use super::conv::ConvShape;
use super::{i32_at, requantize_row, widest};

/// Most channels at once (more are worked in blocks, pixel by pixel), and most weights in the
/// stack buffer (`kh·kw·p·C` repeated for rows, `kh·kw` times a block of channels by pixels).
const MAX_C: usize = 1024;
const MAX_W: usize = 8192;
/// Most accumulators of the row-wise path (`C` times the output columns it works at once).
const MAX_ROW: usize = 4096;

/// Whether this is a depthwise convolution this kernel takes (multiplier 1).
pub fn supports(s: &ConvShape) -> bool {
    s.groups == s.c && s.m == s.c && s.kh * s.kw <= MAX_W
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The convolution; callers check [`supports`].
#[allow(clippy::too_many_arguments)]
pub fn depthwise(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    y: &mut [u8],
    y_zero: i32,
) {
    let (c, taps) = (s.c, s.kh * s.kw);
    // Pixels per chunk, so that a chunk (p·C values) is a whole number of 16-lane vectors.
    let p = 16 / gcd(c, 16);
    let chunk = p * c;
    let mut tiled = [0i16; MAX_W];
    let (mut biases, mut mults) = ([0i32; MAX_C], [0f32; MAX_C]);
    if s.stride.1 == 1 && c <= MAX_C && taps * chunk <= MAX_W {
        let tiled = tile(w, taps, (0, c), p, &mut tiled);
        channel_consts(bias, &multipliers, (0, c), &mut biases, &mut mults);
        return by_rows(s, x, x_zero, tiled, (&biases[..c], &mults[..c]), p, y, y_zero);
    }
    let block = (MAX_W / taps).min(MAX_C).min(c);
    for c0 in (0..c).step_by(block) {
        let n = block.min(c - c0);
        let tiled = tile(w, taps, (c0, n), 1, &mut tiled);
        channel_consts(bias, &multipliers, (c0, n), &mut biases, &mut mults);
        by_pixels(s, x, x_zero, tiled, (&biases[..n], &mults[..n]), c0, y, y_zero);
    }
}

/// The biases and multipliers of channels `c0..c0 + n`, from index 0.
fn channel_consts(
    bias: Option<&[u8]>,
    multipliers: &impl Fn(usize) -> f32,
    (c0, n): (usize, usize),
    biases: &mut [i32],
    mults: &mut [f32],
) {
    for (j, ch) in (c0..c0 + n).enumerate() {
        (biases[j], mults[j]) = (bias.map_or(0, |bb| i32_at(bb, ch)), multipliers(ch));
    }
}

/// The weights of channels `c0..c0 + n` as [tap][channel] (the file has [channel][tap]), each
/// tap's run repeated `reps` times, into `tiled`.
fn tile<'t>(w: &[u8], taps: usize, (c0, n): (usize, usize), reps: usize, tiled: &'t mut [i16]) -> &'t [i16] {
    for t in 0..taps {
        for j in 0..reps * n {
            tiled[t * reps * n + j] = i16::from(w[(c0 + j % n) * taps + t] as i8);
        }
    }
    &tiled[..taps * reps * n]
}

/// acc += (x − x_zp)·w element-wise. The product is formed in 16 bits — exact, since
/// |x − x_zp| ≤ 255 and |w| ≤ 128 give at most 32,640 — so it vectorizes to 16-bit multiplies
/// (twice the lanes of 32-bit ones, and cheaper) and is widened only to be added.
#[inline(always)]
fn mac(acc: &mut [i32], x: &[u8], x_zero: i32, w: &[i16]) {
    let zero = x_zero as i16;
    for ((a, &xv), &wv) in acc.iter_mut().zip(x).zip(w) {
        *a = a.wrapping_add(i32::from((i16::from(xv) - zero).wrapping_mul(wv)));
    }
}

widest! {
/// Any stride: per output pixel, per tap inside the input, one run of the `n` channels from
/// `c0` (n = the biases given).
#[allow(clippy::too_many_arguments)]
fn by_pixels(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    by_tap: &[i16],
    consts: (&[i32], &[f32]),
    c0: usize,
    y: &mut [u8],
    y_zero: i32,
) {
    let (biases, mults) = consts;
    let (c, n) = (s.c, biases.len());
    let mut acc = [0i32; MAX_C];
    let acc = &mut acc[..n];
    for b in 0..s.n {
        for oy in 0..s.oh {
            for ox in 0..s.ow {
                acc.copy_from_slice(biases);
                for t in 0..s.kh * s.kw {
                    // Taps in the padding hold x_zp: they add nothing.
                    if let Some((iy, ix)) = s.input_at(oy, ox, t / s.kw, t % s.kw) {
                        let at = ((b * s.h + iy) * s.w + ix) * c + c0;
                        mac(acc, &x[at..at + n], x_zero, &by_tap[t * n..(t + 1) * n]);
                    }
                }
                let out = ((b * s.oh + oy) * s.ow + ox) * c + c0;
                requantize_row(acc, mults, y_zero, &mut y[out..out + n]);
            }
        }
    }
}
}

widest! {
/// Stride 1: per output row, per tap, the run of output pixels whose input lies inside is one
/// contiguous run of inputs, worked `p` pixels at a time against the repeated weights.
#[allow(clippy::too_many_arguments)]
fn by_rows(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    tiled: &[i16],
    consts: (&[i32], &[f32]),
    p: usize,
    y: &mut [u8],
    y_zero: i32,
) {
    let (biases, mults) = consts;
    let (c, chunk) = (s.c, p * s.c);
    let mut acc = [0i32; MAX_ROW];
    // Output columns per segment: a row wider than the accumulators goes in several.
    let seg = MAX_ROW / c;
    for b in 0..s.n {
        for oy in 0..s.oh {
            for a0 in (0..s.ow).step_by(seg) {
                let a1 = (a0 + seg).min(s.ow);
                let acc = &mut acc[..(a1 - a0) * c];
                for px in acc.chunks_exact_mut(c) {
                    px.copy_from_slice(biases);
                }
                for t in 0..s.kh * s.kw {
                    let (ky, kx) = (t / s.kw, t % s.kw);
                    let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                    if iy >= s.h {
                        continue;
                    }
                    // Output columns of this segment whose input column ox + kx·dw − pad lies
                    // in 0..w.
                    let shift = kx * s.dilation.1;
                    let lo = s.pad.1.saturating_sub(shift).max(a0);
                    let hi = (s.w + s.pad.1).saturating_sub(shift).min(a1);
                    if lo >= hi {
                        continue;
                    }
                    let at = ((b * s.h + iy) * s.w + lo + shift - s.pad.1) * c;
                    let (xs, acc) = (&x[at..at + (hi - lo) * c], &mut acc[(lo - a0) * c..(hi - a0) * c]);
                    let w = &tiled[t * chunk..(t + 1) * chunk];
                    let mut xi = xs.chunks_exact(chunk);
                    let mut ai = acc.chunks_exact_mut(chunk);
                    for (a, xv) in (&mut ai).zip(&mut xi) {
                        mac(a, xv, x_zero, w);
                    }
                    // The last pixels (fewer than p): each starts at channel 0 of the pattern.
                    mac(ai.into_remainder(), xi.remainder(), x_zero, w);
                }
                let out = ((b * s.oh + oy) * s.ow + a0) * c;
                for (o, a) in y[out..out + (a1 - a0) * c].chunks_mut(c).zip(acc.chunks(c)) {
                    requantize_row(a, mults, y_zero, o);
                }
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stride 1 (rows, in chunks and their remainder) and 2 (pixels), filters 1 to 7 wide,
    /// padding (up to wider than the input), dilation, and more channels than one block of
    /// weights holds: the ONNX definition, exactly.
    #[test]
    fn depthwise_equals_the_onnx_definition() {
        extern crate std;
        use std::vec::Vec;
        let cases = [
            (8, 2, 1, (1, 0), 9, 3),
            (24, 1, 1, (1, 1), 9, 3),
            (12, 1, 2, (2, 1), 9, 3),
            (5, 1, 1, (0, 2), 9, 3),
            (24, 1, 1, (1, 1), 47, 3), // wide rows: many chunks, and a remainder
            (8, 1, 1, (1, 1), 70, 3),
            (36, 1, 1, (0, 1), 33, 3),
            (24, 1, 1, (2, 2), 40, 5), // 5 wide: columns where 3, 4 or 5 taps read inside
            (20, 1, 2, (1, 3), 17, 5),
            (16, 1, 1, (0, 0), 5, 5), // one output column
            (7, 1, 1, (1, 4), 3, 5),  // no column where every tap reads inside
            (12, 2, 1, (3, 3), 21, 7),
            (9, 1, 1, (0, 0), 13, 1),
            (400, 1, 1, (2, 2), 14, 5), // 10,000 weights: by pixels, channels in blocks of 327
            (400, 2, 1, (2, 2), 14, 5),
            (16, 1, 2, (1, 2), 300, 3), // rows of 4,800 accumulators: in segments of 256 columns
            (200, 1, 1, (1, 1), 47, 3), // 20 columns a segment, the last one short
            (700, 2, 1, (2, 2), 9, 5),
            (1152, 1, 1, (2, 2), 7, 5), // more channels than MAX_C: blocks of 327, by pixels
            (1100, 1, 1, (0, 0), 9, 1), // 1x1: blocks of MAX_C
        ];
        for (c, stride, dilation, pad, w, k) in cases {
            let h = 7;
            let span = (k - 1) * dilation + 1;
            let (oh, ow) = ((h + 2 * pad.0 - span) / stride + 1, (w + 2 * pad.1 - span) / stride + 1);
            let s = ConvShape {
                n: 2,
                c,
                h,
                w,
                m: c,
                oh,
                ow,
                kh: k,
                kw: k,
                stride: (stride, stride),
                dilation: (dilation, dilation),
                pad,
                groups: c,
            };
            let x: Vec<u8> = (0..2 * h * w * c).map(|i| ((i * 37) % 256) as u8).collect();
            let wt: Vec<u8> = (0..c * k * k).map(|i| ((i * 53) % 256) as u8).collect();
            let bias: Vec<u8> = (0..4 * c).map(|i| if i % 4 == 0 { (i * 11) as u8 } else { 0 }).collect();
            let mut y = std::vec![0u8; 2 * oh * ow * c];
            let mult = |ch: usize| 0.001 * (ch + 1) as f32;
            depthwise(&s, &x, 9, &wt, Some(&bias), mult, &mut y, 100);
            let want = super::super::reference::qlinear_conv(&s, &x, 9, &wt, Some(&bias), mult, 100);
            assert_eq!(y, want, "c {c} w {w} k {k} stride {stride} dilation {dilation} pad {pad:?}");
        }
    }
}
