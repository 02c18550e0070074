//! x86-64 fast path of the depthwise convolution (one filter per channel, channels-last), chosen
//! at run time on AVX-512 VNNI: 16 channels per register, each tap one `vpdpwssd`. The input
//! bytes of a tap are zero-extended to 32-bit lanes (`[x, 0]` as two i16) and the weights are
//! packed once per model as `[w, 0]`, so the i16-pair multiply-add adds exactly x·w to each
//! channel's sum: 16 multiply-adds per instruction, the sums kept in registers over all taps
//! (the portable kernel adds each tap's products into memory). The zero point is folded out as
//! in the dense kernels: Σ (x − x_zp)·w = Σ x·w − x_zp·Σ w, and taps in the padding multiply
//! a register of x_zp, which cancels. Four pixels of a row go at once where all their taps lie
//! inside the row, so each filter load feeds four instructions. Requantization is the dense
//! VNNI kernel's (the reference's float operations in its order): bit-identical results.

use core::arch::x86_64::*;

use super::conv::ConvShape;
use super::conv_x86::{requantize_pixel, vnni_available};
use super::i32_at;

/// Channels per register.
const LANES: usize = 16;
/// Pixels per step inside a row.
const P: usize = 4;

/// Whether this kernel takes the shape: depthwise with one filter per channel (multiplier 1).
pub fn supports(s: &ConvShape) -> bool {
    s.groups == s.c && s.m == s.c
}

/// Whether it runs here (AVX-512 F/BW/VNNI).
pub fn available() -> bool {
    vnni_available()
}

/// Channels rounded up to whole registers.
fn padded(c: usize) -> usize {
    c.div_ceil(LANES) * LANES
}

/// Bytes of prepared constants: per channel (padded) an i32 offset and an f32 multiplier, then
/// per tap and channel the weight as a little-endian i32 (`[w, 0]` as two i16).
pub fn prepared_len(s: &ConvShape) -> usize {
    4 * padded(s.c) * (2 + s.kh * s.kw)
}

/// Writes the constants: offsets = bias − x_zp·Σ w, multipliers, weights by tap.
pub fn prepare(
    s: &ConvShape,
    w: &[u8],
    x_zero: i32,
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    out: &mut [u8],
) {
    let (cp, taps) = (padded(s.c), s.kh * s.kw);
    let out = &mut out[..prepared_len(s)];
    out.fill(0);
    for c in 0..s.c {
        let filter = &w[c * taps..(c + 1) * taps];
        // Wrapping, as the sums themselves wrap (a file's bias is not to be trusted).
        let wsum = filter.iter().fold(0i32, |a, &b| a.wrapping_add(i32::from(b as i8)));
        let offset = bias.map_or(0, |bb| i32_at(bb, c)).wrapping_sub(x_zero.wrapping_mul(wsum));
        out[4 * c..4 * c + 4].copy_from_slice(&offset.to_le_bytes());
        out[4 * (cp + c)..4 * (cp + c) + 4].copy_from_slice(&multipliers(c).to_le_bytes());
        for (t, &v) in filter.iter().enumerate() {
            let at = 4 * ((2 + t) * cp + c);
            // The low i16 is the weight, the high one zero.
            out[at..at + 4].copy_from_slice(&(i32::from(i16::from(v as i8) as u16)).to_le_bytes());
        }
    }
}

/// The convolution on constants from [`prepare`].
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI ([`available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn depthwise_vnni(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    let (c, cp, taps) = (s.c, padded(s.c), s.kh * s.kw);
    assert!(supports(s) && prepared.len() == prepared_len(s));
    assert!(x.len() >= s.n * s.h * s.w * c && y.len() >= s.n * s.oh * s.ow * c);
    let consts = prepared.as_ptr();
    let weights = consts.wrapping_add(8 * cp);
    let zp = _mm512_set1_epi32(x_zero);
    let hi = _mm512_set1_ps(255.0 - y_zero as f32);
    let y_zp = _mm512_set1_epi32(y_zero);
    // Output columns whose every tap lies inside the row, for the four-pixel steps.
    let span = (s.kw - 1) * s.dilation.1;
    let first = s.pad.1.div_ceil(s.stride.1).min(s.ow);
    let last = if s.w + s.pad.1 > span { ((s.w + s.pad.1 - span - 1) / s.stride.1 + 1).min(s.ow) } else { 0 };
    for cb in (0..c).step_by(LANES) {
        let n = LANES.min(c - cb);
        let mask = if n == LANES { u16::MAX } else { (1u16 << n) - 1 };
        // SAFETY: 64-byte loads inside the prepared constants: offsets and multipliers have
        // `cp` entries each, cb + 16 ≤ cp.
        let (offset, mult) = unsafe {
            (_mm512_loadu_si512(consts.add(4 * cb).cast()), _mm512_loadu_ps(consts.add(4 * (cp + cb)).cast()))
        };
        // The filter register of tap t for this block of channels.
        let filter = |t: usize| -> *const u8 { weights.wrapping_add(4 * (t * cp + cb)) };
        // Zero-extended input bytes of n channels at `at` (a masked load: bytes past n are not read).
        let load = |at: usize| -> __m512i {
            // SAFETY: at + n ≤ x.len() (callers read inside the image); masked-off bytes are
            // not accessed. AVX-512 BW/VL/F: the function's features.
            unsafe { _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, x.as_ptr().add(at).cast())) }
        };
        for b in 0..s.n {
            for oy in 0..s.oh {
                let out_row = (b * s.oh + oy) * s.ow;
                // The input row of each filter row, or None in the padding.
                let row = |ky: usize| -> Option<usize> {
                    let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                    (iy < s.h).then_some((b * s.h + iy) * s.w)
                };
                let mut ox = 0;
                while ox < s.ow {
                    if ox >= first && ox + P <= last {
                        let mut acc = [offset; P];
                        for ky in 0..s.kh {
                            let r = row(ky);
                            for kx in 0..s.kw {
                                let t = ky * s.kw + kx;
                                // SAFETY: a 64-byte load inside the weights (t < taps, cb + 16 ≤ cp).
                                let f = unsafe { _mm512_loadu_si512(filter(t).cast()) };
                                for (i, a) in acc.iter_mut().enumerate() {
                                    let xv = match r {
                                        Some(r) => {
                                            let ix = (ox + i) * s.stride.1 + kx * s.dilation.1 - s.pad.1;
                                            load((r + ix) * c + cb)
                                        }
                                        None => zp,
                                    };
                                    *a = _mm512_dpwssd_epi32(*a, xv, f);
                                }
                            }
                        }
                        for (i, a) in acc.iter().enumerate() {
                            let at = (out_row + ox + i) * c + cb;
                            // SAFETY: AVX-512 F/BW; n bytes inside y.
                            unsafe { requantize_pixel(&[*a], &[mult], hi, y_zp, &mut y[at..at + n]) };
                        }
                        ox += P;
                        continue;
                    }
                    let mut acc = offset;
                    for t in 0..taps {
                        let xv = match s.input_at(oy, ox, t / s.kw, t % s.kw) {
                            Some((iy, ix)) => load(((b * s.h + iy) * s.w + ix) * c + cb),
                            None => zp,
                        };
                        // SAFETY: a 64-byte load inside the weights.
                        acc = _mm512_dpwssd_epi32(acc, xv, unsafe { _mm512_loadu_si512(filter(t).cast()) });
                    }
                    let at = (out_row + ox) * c + cb;
                    // SAFETY: AVX-512 F/BW; n bytes inside y.
                    unsafe { requantize_pixel(&[acc], &[mult], hi, y_zp, &mut y[at..at + n]) };
                    ox += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::super::conv::{conv, prepare as prepare_any, prepared_len as len_any};
    use super::super::depthwise::depthwise;
    use super::*;
    use std::vec::Vec;

    /// Through the dispatcher (prepared constants and all), random depthwise shapes — kernels 1
    /// to 7 wide, strides, dilations, padding wider than the input, channel counts around
    /// whole registers, rows with and without four-pixel steps — give the portable kernel's bytes.
    #[test]
    fn vnni_depthwise_equals_the_portable_kernel() {
        if !available() {
            super::super::reference::record("avx512-vnni-depthwise", false, "this CPU lacks AVX-512 VNNI");
            return;
        }
        let mut next = super::super::reference::draws(0xD3F7_11AE_0042_9E15);
        let mut tested = 0;
        for case in 0..300 {
            let c = match case % 4 {
                0 => 16 * (1 + next(4)),
                1 => 1 + next(15),
                _ => 1 + next(100),
            };
            let (kh, kw) = (1 + next(7), 1 + next(7));
            let (stride, dilation) = ((1 + next(2), 1 + next(2)), (1 + next(2), 1 + next(2)));
            let pad = (next(4), next(4));
            let (h, w) = (1 + next(12), 1 + next(30));
            let Some(s) = ConvShape::fitted(1 + next(2), (c, c, c), (h, w), (kh, kw), stride, dilation, pad) else {
                continue;
            };
            let x: Vec<u8> = (0..s.n * s.h * s.w * c).map(|_| next(256) as u8).collect();
            let wt: Vec<u8> = (0..c * kh * kw).map(|_| next(256) as u8).collect();
            let bias: Vec<u8> = (0..c).flat_map(|_| (next(1 << 20) as i32 - (1 << 19)).to_le_bytes()).collect();
            let mults: Vec<f32> = (0..c).map(|_| (1 + next(1000)) as f32 * 1e-5).collect();
            let (xz, yz) = (next(256) as i32, next(256) as i32);
            let mut want = std::vec![0u8; s.n * s.oh * s.ow * c];
            let mut got = want.clone();
            depthwise(&s, &x, xz, &wt, Some(&bias), |i| mults[i], &mut want, yz);
            let mut prepared = std::vec![0u8; len_any(&s)];
            prepare_any(&s, &wt, xz, Some(&bias), |i| mults[i], &mut prepared);
            conv(&s, &x, xz, &wt, Some(&bias), |i| mults[i], Some(&prepared), &mut got, yz);
            assert_eq!(got, want, "case {case}: {s:?}");
            tested += 1;
        }
        assert!(tested >= 200, "only {tested} shapes tested");
        super::super::reference::record(
            "avx512-vnni-depthwise",
            true,
            &std::format!("{tested} random depthwise shapes equal the portable kernel"),
        );
    }
}
