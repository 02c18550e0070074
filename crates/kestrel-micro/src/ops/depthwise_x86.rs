//! x86-64 fast paths of the depthwise convolution (one filter per channel, channels-last),
//! chosen at run time: AVX-512 VNNI (16 channels per register, each tap one `vpdpwssd`) and
//! AVX2 (8 channels, `vpmaddwd` + `vpaddd`). The input bytes of a tap are zero-extended to
//! 32-bit lanes (`[x, 0]` as two i16) and the weights are packed once per model as `[w, 0]`, so
//! the i16-pair multiply-add adds exactly x·w to each channel's sum; the sums stay in registers
//! over all taps (the portable kernel adds each tap's products into memory). The zero point is
//! folded out as in the dense kernels: Σ (x − x_zp)·w = Σ x·w − x_zp·Σ w, and taps in the
//! padding multiply a register of x_zp, which cancels. Four pixels of a row go at once where all
//! their taps lie inside the row, so each filter load feeds four multiply-adds. Requantization
//! runs the reference's float operations in its order: bit-identical results.

use core::arch::x86_64::*;

use super::conv::ConvShape;
use super::conv_avx2::avx2_available;
use super::conv_x86::{requantize_pixel, vnni_available};
use super::i32_at;

/// Channels per block of the prepared constants (the widest register's).
const BLOCK: usize = 16;
/// Pixels per step inside a row.
const P: usize = 4;

/// Whether these kernels take the shape: depthwise with one filter per channel (multiplier 1).
pub fn supports(s: &ConvShape) -> bool {
    s.groups == s.c && s.m == s.c
}

/// Whether one of them runs here.
pub fn available() -> bool {
    vnni_available() || avx2_available()
}

/// Channels rounded up to whole blocks.
fn padded(c: usize) -> usize {
    c.div_ceil(BLOCK) * BLOCK
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

/// The convolution on constants from [`prepare`], on the widest kernel this CPU has.
///
/// # Safety
/// [`available`] must hold.
pub unsafe fn depthwise(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    assert!(supports(s) && prepared.len() == prepared_len(s));
    assert!(x.len() >= s.n * s.h * s.w * s.c && y.len() >= s.n * s.oh * s.ow * s.c);
    // SAFETY: each kernel runs only where its features were detected (the caller's promise
    // covers the AVX2 one when VNNI is absent); the sizes were checked above.
    unsafe {
        if vnni_available() {
            with_avx512(s, x, x_zero, prepared, y, y_zero)
        } else {
            with_avx2(s, x, x_zero, prepared, y, y_zero)
        }
    }
}

/// # Safety
/// AVX-512 F/BW/VL/VNNI; sizes checked by [`depthwise`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn with_avx512(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    // SAFETY: the features Avx512's operations need are this function's.
    unsafe { kernel::<Avx512>(s, x, x_zero, prepared, y, y_zero) }
}

/// # Safety
/// AVX2; sizes checked by [`depthwise`].
#[target_feature(enable = "avx2")]
unsafe fn with_avx2(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    // SAFETY: the features Avx2's operations need are this function's.
    unsafe { kernel::<Avx2>(s, x, x_zero, prepared, y, y_zero) }
}

/// The operations the kernel needs from a register of `LANES` i32 channel sums. Every function
/// is inlined into a caller compiled with the features it needs.
trait Lanes {
    const LANES: usize;
    type V: Copy;
    /// `LANES` i32 from `p`.
    unsafe fn load(p: *const u8) -> Self::V;
    unsafe fn splat(v: i32) -> Self::V;
    /// `n` (1..=LANES) bytes at `p` zero-extended to i32 lanes; bytes past `n` are not read.
    unsafe fn load_x(p: *const u8, n: usize) -> Self::V;
    /// `acc + x·w` per lane, for x `[x, 0]` and w `[w, 0]` as i16 pairs.
    unsafe fn mac(acc: Self::V, x: Self::V, w: Self::V) -> Self::V;
    /// The reference's requantization of `acc` with the `LANES` f32 multipliers at `mults`;
    /// stores `out.len()` (≤ LANES) bytes.
    unsafe fn store(acc: Self::V, mults: *const u8, y_zero: i32, out: &mut [u8]);
}

struct Avx512;

// Safety of every method's unsafe block: the caller is compiled with AVX-512 F/BW/VL/VNNI (see `Lanes`) and
// passes pointers with the bytes each method reads.
impl Lanes for Avx512 {
    const LANES: usize = 16;
    type V = __m512i;
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        // SAFETY: see the impl.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn splat(v: i32) -> __m512i {
        // SAFETY: see the impl.
        unsafe { _mm512_set1_epi32(v) }
    }
    #[inline(always)]
    unsafe fn load_x(p: *const u8, n: usize) -> __m512i {
        let mask = if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
        // SAFETY: see the impl; a masked load reads only the first n bytes.
        unsafe { _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, p.cast())) }
    }
    #[inline(always)]
    unsafe fn mac(acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
        // SAFETY: see the impl.
        unsafe { _mm512_dpwssd_epi32(acc, x, w) }
    }
    #[inline(always)]
    unsafe fn store(acc: __m512i, mults: *const u8, y_zero: i32, out: &mut [u8]) {
        // SAFETY: see the impl.
        unsafe {
            let (hi, zp) = (_mm512_set1_ps(255.0 - y_zero as f32), _mm512_set1_epi32(y_zero));
            requantize_pixel(&[acc], &[_mm512_loadu_ps(mults.cast())], hi, zp, out)
        }
    }
}

struct Avx2;

// Safety of every method's unsafe block: the caller is compiled with AVX2 (see `Lanes`) and passes pointers
// with the bytes each method reads.
impl Lanes for Avx2 {
    const LANES: usize = 8;
    type V = __m256i;
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        // SAFETY: see the impl.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn splat(v: i32) -> __m256i {
        // SAFETY: see the impl.
        unsafe { _mm256_set1_epi32(v) }
    }
    #[inline(always)]
    unsafe fn load_x(p: *const u8, n: usize) -> __m256i {
        let mut bytes = [0u8; 8];
        // SAFETY: see the impl.
        unsafe {
            core::ptr::copy_nonoverlapping(p, bytes.as_mut_ptr(), n.min(8));
            _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(i64::from_le_bytes(bytes)))
        }
    }
    #[inline(always)]
    unsafe fn mac(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        // SAFETY: see the impl.
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(x, w)) }
    }
    #[inline(always)]
    unsafe fn store(acc: __m256i, mults: *const u8, y_zero: i32, out: &mut [u8]) {
        // The reference's float operations; only the upper bound in float (no sum converts past
        // i32), the saturating packs apply both; the conversion rounds half to even.
        // SAFETY: see the impl.
        let eight = unsafe {
            let v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(mults.cast()));
            let v = _mm256_min_ps(v, _mm256_set1_ps(255.0 - y_zero as f32));
            let q = _mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(y_zero));
            let w16 = _mm256_packs_epi32(q, q);
            let bytes = _mm256_packus_epi16(w16, w16);
            // Channels 0–3 are bytes 0–3 of the low half, 4–7 bytes 0–3 of the high half.
            let order = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
            _mm_cvtsi128_si64(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(bytes, order))) as u64
        };
        let n = out.len().min(8);
        out[..n].copy_from_slice(&eight.to_le_bytes()[..n]);
    }
}

/// The convolution, `L::LANES` channels per register.
///
/// # Safety
/// The CPU features `L`'s operations need; sizes checked by [`depthwise`].
#[inline(always)]
unsafe fn kernel<L: Lanes>(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    let (c, cp, taps) = (s.c, padded(s.c), s.kh * s.kw);
    let consts = prepared.as_ptr();
    let weights = consts.wrapping_add(8 * cp);
    // SAFETY: the operations' features are the caller's; every load below reads inside
    // `prepared` (cb + LANES ≤ cp) or inside the image in x (n bytes).
    unsafe {
        let zp = L::splat(x_zero);
        // Output columns whose every tap lies inside the row, for the four-pixel steps.
        let span = (s.kw - 1) * s.dilation.1;
        let first = s.pad.1.div_ceil(s.stride.1).min(s.ow);
        let last = if s.w + s.pad.1 > span { ((s.w + s.pad.1 - span - 1) / s.stride.1 + 1).min(s.ow) } else { 0 };
        for cb in (0..c).step_by(L::LANES) {
            let n = L::LANES.min(c - cb);
            let offset = L::load(consts.add(4 * cb));
            let mults = consts.add(4 * (cp + cb));
            let filter = |t: usize| L::load(weights.add(4 * (t * cp + cb)));
            let load = |at: usize| L::load_x(x.as_ptr().add(at), n);
            for b in 0..s.n {
                for oy in 0..s.oh {
                    let out_row = (b * s.oh + oy) * s.ow;
                    // The input row of filter row ky, or None in the padding.
                    let row = |ky: usize| {
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
                                    let f = filter(ky * s.kw + kx);
                                    for (i, a) in acc.iter_mut().enumerate() {
                                        let xv = match r {
                                            Some(r) => {
                                                load((r + (ox + i) * s.stride.1 + kx * s.dilation.1 - s.pad.1) * c + cb)
                                            }
                                            None => zp,
                                        };
                                        *a = L::mac(*a, xv, f);
                                    }
                                }
                            }
                            for (i, &a) in acc.iter().enumerate() {
                                let at = (out_row + ox + i) * c + cb;
                                L::store(a, mults, y_zero, &mut y[at..at + n]);
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
                            acc = L::mac(acc, xv, filter(t));
                        }
                        let at = (out_row + ox) * c + cb;
                        L::store(acc, mults, y_zero, &mut y[at..at + n]);
                        ox += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::super::conv::{conv, prepare as prepare_any, prepared_len as len_any};
    use super::super::depthwise::depthwise as portable;
    use super::*;
    use std::vec::Vec;

    /// Random depthwise shapes — kernels 1 to 7 wide, strides, dilations, padding wider than the
    /// input, channel counts around whole registers, rows with and without four-pixel steps —
    /// through the dispatcher (prepared constants and all: VNNI where the CPU has it) and
    /// through the AVX2 kernel directly give the portable kernel's bytes.
    #[test]
    fn simd_depthwise_equals_the_portable_kernel() {
        let (vnni, avx2) = (vnni_available(), avx2_available());
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
            portable(&s, &x, xz, &wt, Some(&bias), |i| mults[i], &mut want, yz);
            if vnni {
                let mut got = std::vec![0u8; want.len()];
                let mut prepared = std::vec![0u8; len_any(&s)];
                prepare_any(&s, &wt, xz, Some(&bias), |i| mults[i], &mut prepared);
                conv(&s, &x, xz, &wt, Some(&bias), |i| mults[i], Some(&prepared), &mut got, yz);
                assert_eq!(got, want, "VNNI, case {case}: {s:?}");
            }
            if avx2 {
                let mut got = std::vec![0u8; want.len()];
                let mut prepared = std::vec![0u8; prepared_len(&s)];
                prepare(&s, &wt, xz, Some(&bias), |i| mults[i], &mut prepared);
                // SAFETY: AVX2 detected; the sizes are the shape's.
                unsafe { with_avx2(&s, &x, xz, &prepared, &mut got, yz) };
                assert_eq!(got, want, "AVX2, case {case}: {s:?}");
            }
            tested += 1;
        }
        assert!(tested >= 200, "only {tested} shapes tested");
        let report = std::format!("{tested} random depthwise shapes equal the portable kernel");
        let record = super::super::reference::record;
        record("avx512-vnni-depthwise", vnni, if vnni { &report } else { "this CPU lacks AVX-512 VNNI" });
        record("avx2-depthwise", avx2, if avx2 { &report } else { "this CPU lacks AVX2" });
    }
}
