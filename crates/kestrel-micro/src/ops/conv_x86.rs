//! x86-64 fast path of the convolution, chosen at run time: AVX-512 VNNI (`vpdpbusd`, 64
//! uint8 × int8 multiply-adds per instruction) on raw uint8 inputs, with the zero point folded
//! out afterwards: Σ (x − x_zp)·w = Σ x·w − x_zp·Σ w (padding holds x_zp, so it cancels).
//!
//! A register-blocked direct convolution on channels-last data: the filters of `NB·16` output
//! channels are packed once per model (`conv::prepare`) `[tap][quad][channel][4]`, so one
//! 64-byte load holds one quad (4 input channels) of 16 output channels; each pixel's 4 input bytes of that quad are
//! broadcast against it. `P` pixels × `NB` registers of 16 channels accumulate at once (24 of
//! the 32 registers for 64 channels), so each filter load feeds `P` and each broadcast `NB`
//! multiply-adds. Padding taps read a run of the zero point instead of x; groups whose channel
//! count is not a multiple of 4 (a first layer's 1 or 3) gather each pixel's patch and read it
//! as one long tap. Requantization runs the reference's float operations in the reference's
//! order with vector instructions, 16 channels at a time, so the output is bit-identical to the
//! portable kernel (tested on random shapes).
//!
//! The kernel keeps its buffers on the stack (about 70 KiB).

use core::arch::x86_64::*;

use super::conv::{gather_patch, ConvShape, Layout, MAX_TAPS};
use super::CpuFeature;

/// Output channels per register.
const LANES: usize = 16;
/// Most channels per group read directly (the zero-point run standing for padding).
const MAX_DIRECT: usize = 4096;
/// Longest filter gathered as a patch (channels per group not a multiple of 4).
const MAX_PATCH: usize = 2048;

static FEATURE: CpuFeature = CpuFeature::new();

/// Whether this CPU and OS run AVX-512 VNNI code (CPUID + XGETBV, as `std` would check). Checked once.
pub fn vnni_available() -> bool {
    FEATURE.get(detect_vnni)
}

/// Turns the fast path off (benchmarks and tests compare it with the portable kernel).
pub fn disable_fast_paths(off: bool) {
    FEATURE.disable(off);
}

fn detect_vnni() -> bool {
    let leaf1 = __cpuid(1);
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    if !osxsave || __cpuid(0).eax < 7 {
        return false;
    }
    // SAFETY: OSXSAVE is set, so XGETBV is available and register 0 (XCR0) is readable.
    let xcr0 = unsafe { xgetbv0() };
    // SSE, AVX, opmask, ZMM0-15 upper halves and ZMM16-31 state enabled by the OS.
    let os_saves_zmm = xcr0 & 0xE6 == 0xE6;
    let leaf7 = __cpuid_count(7, 0);
    let (f, bw, vnni) = (leaf7.ebx & (1 << 16) != 0, leaf7.ebx & (1 << 30) != 0, leaf7.ecx & (1 << 11) != 0);
    os_saves_zmm && f && bw && vnni
}

/// # Safety
/// The CPU must support XGETBV (CPUID.1:ECX.OSXSAVE).
#[target_feature(enable = "xsave")]
unsafe fn xgetbv0() -> u64 {
    // SAFETY: the caller checked OSXSAVE; XCR0 always exists when XGETBV does.
    unsafe { _xgetbv(0) }
}

/// Whether [`conv_vnni`] handles this shape (at least 4 output channels per group: depthwise
/// convolutions stay on the portable kernel).
pub fn supports(s: &ConvShape) -> bool {
    let (cg, mg, k) = s.per_group();
    let reads = if cg.is_multiple_of(4) && s.kh * s.kw <= MAX_TAPS { cg <= MAX_DIRECT } else { k <= MAX_PATCH };
    mg >= 4 && reads
}

/// Registers of 16 output channels per step, and pixels per step (24 accumulators for 64 or
/// more channels).
fn blocking(s: &ConvShape) -> (usize, usize) {
    match (s.m / s.groups).div_ceil(LANES) {
        1 => (1, 16),
        2 => (2, 12),
        3 => (3, 8),
        _ => (4, 6),
    }
}

/// Where the kernel finds its prepared constants.
pub(crate) fn layout(s: &ConvShape) -> Layout {
    Layout::new(s, blocking(s).0 * LANES)
}

/// The convolution with VNNI, on constants from `conv::prepare` (`layout(s).total` bytes).
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI ([`vnni_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn conv_vnni(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    // SAFETY: every arm has the same CPU requirement as this function.
    unsafe {
        match blocking(s) {
            (1, _) => conv_blocks::<1, 16>(s, x, x_zero, prepared, y, y_zero),
            (2, _) => conv_blocks::<2, 12>(s, x, x_zero, prepared, y, y_zero),
            (3, _) => conv_blocks::<3, 8>(s, x, x_zero, prepared, y, y_zero),
            _ => conv_blocks::<4, 6>(s, x, x_zero, prepared, y, y_zero),
        }
    }
}

/// The sums of `P` pixels × `NB` blocks of 16 output channels over all taps:
/// `Σ_tap Σ_quad x(pixel i, tap, quad) · filters(tap, quad, block j)`. Per quad, `NB` filter
/// loads and `P` broadcasts feed `P·NB` multiply-adds; the sums stay in registers throughout.
///
/// # Safety
/// AVX-512 F/BW/VNNI; `4·quads` bytes readable at every `ptrs[t][i]` and
/// `ptrs.len()·quads·NB·64` at `filters`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn accumulate<const NB: usize, const P: usize>(
    ptrs: &[[*const u8; P]],
    quads: usize,
    filters: *const u8,
) -> [[__m512i; NB]; P] {
    let mut acc = [[_mm512_setzero_si512(); NB]; P];
    let mut f_at = filters;
    for tap in ptrs {
        for qd in 0..quads {
            // SAFETY: within the ptrs.len()·quads·NB·64 bytes at `filters` (the caller's promise).
            let f: [__m512i; NB] = core::array::from_fn(|j| unsafe { _mm512_loadu_si512(f_at.add(j * 64).cast()) });
            f_at = f_at.wrapping_add(NB * 64);
            for (a, &ptr) in acc.iter_mut().zip(tap) {
                // SAFETY: 4·qd + 4 ≤ 4·quads bytes at ptr (the caller's promise).
                let xv = _mm512_set1_epi32(unsafe { ptr.add(4 * qd).cast::<i32>().read_unaligned() });
                for (aj, &fj) in a.iter_mut().zip(&f) {
                    *aj = _mm512_dpbusd_epi32(*aj, xv, fj);
                }
            }
        }
    }
    acc
}

/// `NB` registers of 16 output channels × `P` pixels per step.
#[inline(never)] // one kernel's stack buffers live at a time
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn conv_blocks<const NB: usize, const P: usize>(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    prepared: &[u8],
    y: &mut [u8],
    y_zero: i32,
) {
    let (_, mg, k) = s.per_group();
    let l = layout(s);
    let q = l.quads;
    let plane = s.oh * s.ow;
    assert!(l.width == NB * LANES && prepared.len() == l.total && supports(s));
    assert!(x.len() >= s.n * s.h * s.w * s.c && y.len() >= s.n * plane * s.m);
    let pad = [x_zero as u8; MAX_DIRECT];
    // Gathered patches, padded with zeros to whole quads (their weights are zero).
    let mut patches = [[0u8; MAX_PATCH]; P];
    let (lo, hi) = (_mm512_set1_ps(-(y_zero as f32)), _mm512_set1_ps(255.0 - y_zero as f32));
    let zp = _mm512_set1_epi32(y_zero);
    let mut ptrs = [[x.as_ptr(); P]; MAX_TAPS];
    // Where each tap reads relative to a pixel's first tap, for pixels whose taps all lie inside.
    let mut tap_offsets = [0usize; MAX_TAPS];
    for (t, off) in tap_offsets[..q.taps].iter_mut().enumerate() {
        *off = ((t / s.kw * s.dilation.0) * s.w + t % s.kw * s.dilation.1) * s.c;
    }
    let (span_y, span_x) = ((s.kh - 1) * s.dilation.0, (s.kw - 1) * s.dilation.1);
    let row_runs = q.direct && s.groups == 1 && s.dilation.1 == 1 && s.kw * s.c <= MAX_DIRECT;
    for g in 0..s.groups {
        for (sb, m0) in (0..mg).step_by(l.width).enumerate() {
            let filters = &prepared[l.filters_at + (g * mg.div_ceil(l.width) + sb) * l.block..][..l.block];
            // The block's per-channel offsets and multipliers, 16 channels per register (the
            // layout keeps 16 spare entries past the last channel).
            let consts: [(__m512i, __m512); NB] = core::array::from_fn(|j| {
                let at = 4 * (g * mg + m0 + j * LANES).min(s.m);
                let (offset, mult) = (&prepared[at..at + 64], &prepared[l.mults_at + at..l.mults_at + at + 64]);
                // SAFETY: two 64-byte loads from 64-byte slices.
                unsafe { (_mm512_loadu_si512(offset.as_ptr().cast()), _mm512_loadu_ps(mult.as_ptr().cast())) }
            });
            for b in 0..s.n {
                for p0 in (0..plane).step_by(P) {
                    let count = P.min(plane - p0);
                    // Slots past the last pixel repeat it (computed, never stored).
                    let (mut oy, mut ox) = (p0 / s.ow, p0 % s.ow);
                    let pixels: [(usize, usize); P] = core::array::from_fn(|i| {
                        let here = (oy, ox);
                        if i + 1 < count {
                            ox += 1;
                            if ox == s.ow {
                                (oy, ox) = (oy + 1, 0);
                            }
                        }
                        here
                    });
                    let x_inside = |&(_, ox): &(usize, usize)| {
                        let ix = (ox * s.stride.1).wrapping_sub(s.pad.1);
                        ix < s.w && ix + span_x < s.w
                    };
                    // (taps read, quads per tap)
                    let reads = if row_runs && pixels.iter().all(x_inside) {
                        // A filter row's kw taps are one run of kw·c bytes (channels-last, one
                        // group, no horizontal dilation): kh long taps; rows in the padding read
                        // the zero-point run.
                        for (i, &(oy, ox)) in pixels.iter().enumerate() {
                            let ix = ox * s.stride.1 - s.pad.1;
                            for (ky, tap) in ptrs[..s.kh].iter_mut().enumerate() {
                                let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                                tap[i] = if iy < s.h {
                                    x.as_ptr().wrapping_add(((b * s.h + iy) * s.w + ix) * s.c)
                                } else {
                                    pad.as_ptr()
                                };
                            }
                        }
                        (s.kh, s.kw * q.quads)
                    } else if q.direct {
                        for (i, &(oy, ox)) in pixels.iter().enumerate() {
                            let (iy, ix) =
                                ((oy * s.stride.0).wrapping_sub(s.pad.0), (ox * s.stride.1).wrapping_sub(s.pad.1));
                            if iy < s.h && iy + span_y < s.h && ix < s.w && ix + span_x < s.w {
                                // All taps inside: fixed offsets from the first.
                                let first = x.as_ptr().wrapping_add(((b * s.h + iy) * s.w + ix) * s.c + g * q.len);
                                for (tap, &off) in ptrs[..q.taps].iter_mut().zip(&tap_offsets) {
                                    tap[i] = first.wrapping_add(off);
                                }
                            } else {
                                for (t, tap) in ptrs[..q.taps].iter_mut().enumerate() {
                                    tap[i] = q.tap(s, x.as_ptr(), pad.as_ptr(), b, g, (oy, ox), (t / s.kw, t % s.kw));
                                }
                            }
                        }
                        (q.taps, q.quads)
                    } else {
                        for (patch, &(oy, ox)) in patches.iter_mut().zip(&pixels) {
                            gather_patch(s, x, x_zero as u8, b, g, oy, ox, &mut patch[..k]);
                        }
                        ptrs[0] = core::array::from_fn(|i| patches[i].as_ptr());
                        (1, q.quads)
                    };
                    // SAFETY: row runs: each pointer starts kw·c = 4·(kw·quads) bytes of one input
                    // row inside x (x.len() asserted; ix..ix + kw inside the row) or the
                    // zero-point run (MAX_DIRECT ≥ kw·c, `row_runs`). Direct: each pointer is a tap
                    // inside x (cg = 4·quads bytes of group g at one position) or the zero-point
                    // run (MAX_DIRECT ≥ cg). Patches: 4·quads ≤ MAX_PATCH bytes (k ≤ MAX_PATCH, a
                    // multiple of 4). Either way taps·quads·NB·64 bytes = one block of `filters`
                    // (the filters of a row's taps follow each other).
                    let acc: [[__m512i; NB]; P] = unsafe { accumulate(&ptrs[..reads.0], reads.1, filters.as_ptr()) };
                    for (i, a) in acc[..count].iter().enumerate() {
                        let row = (b * plane + p0 + i) * s.m + g * mg;
                        for (j, (&aj, &(offset, mult))) in a.iter().zip(&consts).enumerate() {
                            let c0 = m0 + j * LANES;
                            if c0 >= mg {
                                break;
                            }
                            // The reference's requantize, 16 channels at once, same float operations.
                            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(aj, offset)), mult);
                            let v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
                            // Rounds half to even (the default rounding mode), as the reference does.
                            let q8 = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), zp));
                            if c0 + LANES <= mg {
                                let out = &mut y[row + c0..row + c0 + LANES];
                                // SAFETY: 16 bytes into a 16-byte slice.
                                unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), q8) };
                            } else {
                                let mut bytes = [0u8; LANES];
                                // SAFETY: 16 bytes into a 16-byte array.
                                unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), q8) };
                                y[row + c0..row + mg].copy_from_slice(&bytes[..mg - c0]);
                            }
                        }
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

    use super::super::conv::{conv, conv_portable, prepare, prepared_len, ConvShape};
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// Random convolutions (groups, stride, dilation, padding, channels per group a multiple of 4
    /// or not, partial blocks of output channels): the VNNI path gives the portable kernel's bytes.
    #[test]
    fn vnni_equals_the_portable_kernel_on_random_shapes() {
        if !vnni_available() {
            std::eprintln!("no AVX-512 VNNI on this CPU: nothing to compare");
            return;
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut tested = 0;
        for case in 0..400 {
            let (kh, kw) = (1 + rng.below(5), 1 + rng.below(5));
            let (stride, dilation) = ((1 + rng.below(3), 1 + rng.below(3)), (1 + rng.below(2), 1 + rng.below(2)));
            let pad = (rng.below(3), rng.below(3));
            let depthwise = rng.below(4) == 0;
            let groups = if depthwise { 1 + rng.below(16) } else { 1 + rng.below(3) };
            let cg = match (depthwise, rng.below(2)) {
                (true, _) => 1,
                (false, 0) => 4 * (1 + rng.below(if case % 10 == 0 { 50 } else { 8 })),
                _ => 1 + rng.below(if case % 10 == 0 { 200 } else { 24 }),
            };
            let mg = if depthwise { 1 } else { 1 + rng.below(if case % 3 == 0 { 70 } else { 20 }) };
            let (c, m) = (cg * groups, mg * groups);
            let (h, w) = (1 + rng.below(14), 1 + rng.below(14));
            let span = |n: usize, k: usize, d: usize, p: usize| (n + 2 * p).checked_sub((k - 1) * d + 1);
            let (Some(sh), Some(sw)) = (span(h, kh, dilation.0, pad.0), span(w, kw, dilation.1, pad.1)) else {
                continue;
            };
            let s = ConvShape {
                n: 1 + rng.below(2),
                c,
                h,
                w,
                m,
                oh: sh / stride.0 + 1,
                ow: sw / stride.1 + 1,
                kh,
                kw,
                stride,
                dilation,
                pad,
                groups,
            };
            let k = cg * kh * kw;
            if !supports(&s) {
                continue;
            }
            tested += 1;
            let x = rng.bytes(s.n * c * h * w);
            let wt = rng.bytes(m * k);
            let bias: Vec<u8> =
                (0..m).flat_map(|_| ((rng.next() % (1 << 20)) as i32 - (1 << 19)).to_le_bytes()).collect();
            let mults: Vec<f32> = (0..m).map(|_| (1 + rng.below(1000)) as f32 * 1e-6).collect();
            let (xz, yz) = (rng.below(256) as i32, rng.below(256) as i32);
            let mut want = std::vec![0u8; s.n * m * s.oh * s.ow];
            let mut got = want.clone();
            conv_portable(&s, &x, xz, &wt, Some(&bias), |i| mults[i], &mut want, yz);
            let mut prepared = std::vec![0u8; prepared_len(&s)];
            prepare(&s, &wt, xz, Some(&bias), |i| mults[i], &mut prepared);
            conv(&s, &x, xz, &wt, Some(&bias), |i| mults[i], Some(&prepared), &mut got, yz);
            assert_eq!(got, want, "case {case}: {s:?}");
        }
        assert!(tested >= 150, "only {tested} shapes tested");
    }
}
