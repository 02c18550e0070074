//! x86-64 fast path of the patch convolution, chosen at run time: AVX-512 VNNI (`vpdpbusd`,
//! 64 uint8 × int8 multiply-adds per instruction) on raw uint8 patches, with the zero point
//! folded out afterwards: Σ (x − x_zp)·w = Σ x·w − x_zp·Σ w (padding holds x_zp, so it cancels).
//!
//! Two kernels. `rows` (filters of ≤ 4 columns, at least 8 output channels per group): the
//! group's filters are repacked on the stack so that one 64-byte load holds 4 taps of 16 output
//! channels, and each (channel, filter row) is a 4-byte run of an input row broadcast against it;
//! the 16 channel sums of a pixel come out in one register, requantized with vector instructions
//! doing the reference's float operations in the reference's order. `dot` (everything else:
//! depthwise, wide filters, dilated columns): one dot product per pixel and channel along the
//! gathered patch.
//!
//! The kernels keep their buffers on the stack (at most ~100 KiB, one kernel at a time).
//!
//! Every sum is an exact i32 and requantization rounds exactly as the reference does, so the
//! output is bit-identical to the portable kernel (tested on random shapes).

use core::arch::x86_64::*;

use super::conv::{group_constants, pack_filter_rows, ConvShape, FAST_MAX_M};
use super::{requantize, CpuFeature};

/// Output pixels computed together (their patches share each weight load).
const PIXELS: usize = 4;
/// Largest filter handled (C/groups · kh · kw), rounded to whole 64-byte chunks.
pub const MAX_K: usize = 4096;
/// Most output channels handled.
pub const MAX_M: usize = FAST_MAX_M;

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

/// Bytes of repacked filters on the stack (one group's, all its output channels).
const PACKED: usize = 64 * 1024;
use super::conv::LANES;

/// The convolution with VNNI. Callers check [`vnni_available`], `k ≤ MAX_K` and `m ≤ MAX_M`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI ([`vnni_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv_vnni(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    y: &mut [u8],
    y_zero: i32,
) {
    let (cg, mg) = (s.c / s.groups, s.m / s.groups);
    let row_steps = cg * s.kh;
    if mg >= 8 && s.kw <= 4 && s.dilation.1 == 1 && mg.next_multiple_of(LANES) * row_steps * 4 <= PACKED {
        // SAFETY: same CPU requirement as this function's.
        return unsafe {
            match mg.div_ceil(LANES) {
                1 => conv_rows::<1>(s, x, x_zero, w, bias, multipliers, y, y_zero),
                _ => conv_rows::<2>(s, x, x_zero, w, bias, multipliers, y, y_zero),
            }
        };
    }
    // SAFETY: same CPU requirement as this function's.
    unsafe { conv_dot(s, x, x_zero, w, bias, multipliers, y, y_zero) }
}

/// Pixels per row-kernel step.
const ROW_PIXELS: usize = 8;

/// Filters of at most 4 columns without horizontal dilation: each (channel, filter row) is one
/// 4-byte run of an input row, broadcast straight from the input (no patch is gathered); the
/// filters are packed with their rows padded to 4 taps (the extra tap's weight is 0).
/// `NB` blocks of 16 output channels are computed together for `ROW_PIXELS` pixels of one output
/// row, so each broadcast feeds `NB` multiply-adds and each filter load `ROW_PIXELS`.
#[inline(never)] // one kernel's stack buffers live at a time
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_rows<const NB: usize>(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    y: &mut [u8],
    y_zero: i32,
) {
    let (cg, mg) = (s.c / s.groups, s.m / s.groups);
    let (k, steps) = (cg * s.kh * s.kw, cg * s.kh);
    let blocks = mg.div_ceil(LANES).next_multiple_of(NB);
    assert!(s.m <= MAX_M && w.len() >= s.m * k && blocks * LANES * steps * 4 <= PACKED);
    assert!(x.len() >= s.n * s.c * s.h * s.w);
    let plane = s.oh * s.ow;
    let pad4 = u32::from_ne_bytes([x_zero as u8; 4]) as i32;
    let mut packed = [0u8; PACKED];
    let (lo, hi) = (_mm512_set1_ps(-(y_zero as f32)), _mm512_set1_ps(255.0 - y_zero as f32));
    let (magic, zp) = (_mm512_set1_ps(12_582_912.0), _mm512_set1_epi32(y_zero));
    for g in 0..s.groups {
        // packed[block][step = ci·kh + ky][lane][4 taps]
        pack_filter_rows(s, w, g, blocks, &mut packed);
        let (offsets, mults) = group_constants(s, w, bias, &multipliers, g, x_zero);
        for b in 0..s.n {
            for oy in 0..s.oh {
                let mut ox0 = 0;
                while ox0 < s.ow {
                    let count = ROW_PIXELS.min(s.ow - ox0);
                    let ix = |i: usize| ((ox0 + i) * s.stride.1).wrapping_sub(s.pad.1);
                    // All 4-byte runs of these pixels inside their rows: read them directly.
                    let inside = ix(0) < s.w && ix(ROW_PIXELS - 1).wrapping_add(4) <= s.w;
                    let iy0 = (oy * s.stride.0).wrapping_sub(s.pad.0);
                    let rows_inside = iy0 < s.h && iy0 + (s.kh - 1) * s.dilation.0 < s.h;
                    let mut super0 = 0;
                    while super0 < blocks {
                        let mut acc = [[_mm512_setzero_si512(); NB]; ROW_PIXELS];
                        let mut filters = packed[super0 * steps * LANES * 4..].as_ptr();
                        let load_filters = |filters: *const u8| {
                            let mut f = [_mm512_setzero_si512(); NB];
                            for (j, fj) in f.iter_mut().enumerate() {
                                // SAFETY: block super0 + j < blocks and the step < steps, so the
                                // 64 bytes lie within blocks·steps·64 ≤ PACKED.
                                *fj = unsafe { _mm512_loadu_si512(filters.add(j * steps * LANES * 4).cast()) };
                            }
                            f
                        };
                        if inside && rows_inside {
                            // Interior pixels: every run is read straight from `x`, no checks left.
                            let base = ((b * s.c + g * cg) * s.h + iy0) * s.w + ix(0);
                            for ci in 0..cg {
                                // SAFETY: for ci < cg, ky < kh, i < ROW_PIXELS the 4 bytes at
                                // base + ci·h·w + ky·dy·w + i·sx lie in x: the channel exists, the
                                // row iy0 + ky·dy < h (`rows_inside`), the run ix(i)..+4 ≤ w
                                // (`inside`), and x.len() ≥ n·c·h·w (asserted above).
                                let mut row = unsafe { x.as_ptr().add(base + ci * s.h * s.w) };
                                for _ in 0..s.kh {
                                    let f = load_filters(filters);
                                    for (i, a) in acc.iter_mut().enumerate() {
                                        // SAFETY: see above.
                                        let run = unsafe { row.add(i * s.stride.1).cast::<i32>().read_unaligned() };
                                        let xv = _mm512_set1_epi32(run);
                                        for (aj, &fj) in a.iter_mut().zip(&f) {
                                            *aj = _mm512_dpbusd_epi32(*aj, xv, fj);
                                        }
                                    }
                                    // SAFETY: see above (one row on; the last step may point one past).
                                    row = row.wrapping_add(s.dilation.0 * s.w);
                                    // SAFETY: within the block's steps·64 bytes, or one past.
                                    filters = unsafe { filters.add(LANES * 4) };
                                }
                            }
                        } else {
                            for ci in 0..cg {
                                let plane_at = (b * s.c + g * cg + ci) * s.h * s.w;
                                for ky in 0..s.kh {
                                    let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                                    let mut runs = [pad4; ROW_PIXELS];
                                    if iy < s.h {
                                        let row = &x[plane_at + iy * s.w..plane_at + (iy + 1) * s.w];
                                        for (i, run) in runs.iter_mut().enumerate() {
                                            let at = ix(i);
                                            *run = if at < s.w && at + 4 <= s.w {
                                                // SAFETY: at + 4 ≤ row.len().
                                                unsafe { row.as_ptr().add(at).cast::<i32>().read_unaligned() }
                                            } else {
                                                let tap = |t: usize| {
                                                    row.get(at.wrapping_add(t)).copied().unwrap_or(x_zero as u8)
                                                };
                                                i32::from_ne_bytes([tap(0), tap(1), tap(2), tap(3)])
                                            };
                                        }
                                    }
                                    let f = load_filters(filters);
                                    for (a, &run) in acc.iter_mut().zip(&runs) {
                                        let xv = _mm512_set1_epi32(run);
                                        for (aj, &fj) in a.iter_mut().zip(&f) {
                                            *aj = _mm512_dpbusd_epi32(*aj, xv, fj);
                                        }
                                    }
                                    // SAFETY: advances within the block's steps·64 bytes (or one past).
                                    filters = unsafe { filters.add(LANES * 4) };
                                }
                            }
                        }
                        for (i, a) in acc[..count].iter().enumerate() {
                            for (j, &aj) in a.iter().enumerate() {
                                let m0 = (super0 + j) * LANES;
                                if m0 >= mg {
                                    break;
                                }
                                // SAFETY: m0 + 16 ≤ blocks·16 ≤ MAX_M entries of both arrays.
                                let (offset, mult) = unsafe {
                                    (
                                        _mm512_loadu_si512(offsets.as_ptr().add(m0).cast()),
                                        _mm512_loadu_ps(mults.as_ptr().add(m0)),
                                    )
                                };
                                // The reference's requantize, 16 channels at once, same float operations.
                                let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(aj, offset)), mult);
                                let v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
                                let v = _mm512_sub_ps(_mm512_add_ps(v, magic), magic);
                                let q = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvttps_epi32(v), zp));
                                let mut bytes = [0u8; LANES];
                                // SAFETY: 16 bytes into a 16-byte array.
                                unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), q) };
                                let p = oy * s.ow + ox0 + i;
                                for (l, &q) in bytes[..LANES.min(mg - m0)].iter().enumerate() {
                                    y[(b * s.m + g * mg + m0 + l) * plane + p] = q;
                                }
                            }
                        }
                        super0 += NB;
                    }
                    ox0 += count;
                }
            }
        }
    }
}

#[inline(never)] // one kernel's stack buffers live at a time
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_dot(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    y: &mut [u8],
    y_zero: i32,
) {
    let (cg, mg) = (s.c / s.groups, s.m / s.groups);
    let k = cg * s.kh * s.kw;
    assert!(k <= MAX_K && s.m <= MAX_M && w.len() >= s.m * k);
    let chunks = k.div_ceil(64);
    let tail = k - (chunks - 1) * 64;
    let tail_mask: __mmask64 = if tail == 64 { !0 } else { (1u64 << tail) - 1 };
    // Patches padded to whole chunks with zeros (which add nothing).
    let mut patches = [[0u8; MAX_K]; PIXELS];
    let plane = s.oh * s.ow;
    for b in 0..s.n {
        for g in 0..s.groups {
            let (offsets, mults) = group_constants(s, w, bias, &multipliers, g, x_zero);
            let mut p0 = 0;
            while p0 < plane {
                let count = PIXELS.min(plane - p0);
                for (i, patch) in patches[..count].iter_mut().enumerate() {
                    gather(s, x, x_zero as u8, b, g * cg, cg, (p0 + i) / s.ow, (p0 + i) % s.ow, &mut patch[..k]);
                }
                for m in g * mg..(g + 1) * mg {
                    let row = w[m * k..(m + 1) * k].as_ptr();
                    let mut acc = [_mm512_setzero_si512(); PIXELS];
                    for c in 0..chunks {
                        let at = row.wrapping_add(c * 64);
                        // Whole chunks end at c·64 + 64 ≤ k; the last one loads only its `tail`
                        // bytes (masked), so every load stays inside the filter row `row[..k]`.
                        let wv = if c + 1 < chunks {
                            // SAFETY: see above.
                            unsafe { _mm512_loadu_si512(at.cast()) }
                        } else {
                            // SAFETY: see above.
                            unsafe { _mm512_maskz_loadu_epi8(tail_mask, at.cast()) }
                        };
                        for (a, patch) in acc[..count].iter_mut().zip(&patches) {
                            // SAFETY: c·64 + 64 ≤ chunks·64 ≤ MAX_K bytes of the patch buffer.
                            let xv = unsafe { _mm512_loadu_si512(patch.as_ptr().add(c * 64).cast()) };
                            *a = _mm512_dpbusd_epi32(*a, xv, wv);
                        }
                    }
                    let (offset, mult) = (offsets[m - g * mg], mults[m - g * mg]);
                    for (i, a) in acc[..count].iter().enumerate() {
                        let v = _mm512_reduce_add_epi32(*a) + offset;
                        y[(b * s.m + m) * plane + p0 + i] = requantize(v, mult, y_zero);
                    }
                }
                p0 += count;
            }
        }
    }
}

/// The raw uint8 input patch of output pixel (oy, ox), channels c0..c0+cg, padding = `pad`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gather(s: &ConvShape, x: &[u8], pad: u8, b: usize, c0: usize, cg: usize, oy: usize, ox: usize, out: &mut [u8]) {
    let (iy0, ix0) = ((oy * s.stride.0).wrapping_sub(s.pad.0), (ox * s.stride.1).wrapping_sub(s.pad.1));
    let span_x = (s.kw - 1) * s.dilation.1;
    let inside_x = ix0 < s.w && ix0 + span_x < s.w;
    let mut i = 0;
    for ci in 0..cg {
        let base = (b * s.c + c0 + ci) * s.h * s.w;
        for ky in 0..s.kh {
            let iy = iy0.wrapping_add(ky * s.dilation.0);
            let dst = &mut out[i..i + s.kw];
            if iy >= s.h {
                dst.fill(pad);
            } else if inside_x && s.dilation.1 == 1 {
                let at = base + iy * s.w + ix0;
                dst.copy_from_slice(&x[at..at + s.kw]);
            } else {
                for (kx, d) in dst.iter_mut().enumerate() {
                    let ix = ix0.wrapping_add(kx * s.dilation.1);
                    *d = if ix < s.w { x[base + iy * s.w + ix] } else { pad };
                }
            }
            i += s.kw;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::super::conv::{conv_portable, ConvShape};
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

    /// 300 random convolutions (groups, depthwise, stride, dilation, padding, long filters with
    /// and without a ragged last chunk): the VNNI path gives the portable kernel's bytes.
    #[test]
    fn vnni_equals_the_portable_kernel_on_random_shapes() {
        if !vnni_available() {
            std::eprintln!("no AVX-512 VNNI on this CPU: nothing to compare");
            return;
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..300 {
            let (kh, kw) = (1 + rng.below(5), 1 + rng.below(5));
            let (stride, dilation) = ((1 + rng.below(3), 1 + rng.below(3)), (1 + rng.below(2), 1 + rng.below(2)));
            let pad = (rng.below(3), rng.below(3));
            let depthwise = rng.below(4) == 0;
            let groups = if depthwise { 1 + rng.below(16) } else { 1 + rng.below(3) };
            let cg = if depthwise { 1 } else { 1 + rng.below(if case % 10 == 0 { 200 } else { 24 }) };
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
            if k > MAX_K {
                continue;
            }
            let x = rng.bytes(s.n * c * h * w);
            let wt = rng.bytes(m * k);
            let bias: Vec<u8> =
                (0..m).flat_map(|_| ((rng.next() % (1 << 20)) as i32 - (1 << 19)).to_le_bytes()).collect();
            let mults: Vec<f32> = (0..m).map(|_| (1 + rng.below(1000)) as f32 * 1e-6).collect();
            let (xz, yz) = (rng.below(256) as i32, rng.below(256) as i32);
            let mut want = std::vec![0u8; s.n * m * s.oh * s.ow];
            let mut got = want.clone();
            conv_portable(&s, &x, xz, &wt, Some(&bias), |i| mults[i], &mut want, yz);
            // SAFETY: vnni_available() was checked above.
            unsafe { conv_vnni(&s, &x, xz, &wt, Some(&bias), |i| mults[i], &mut got, yz) };
            assert_eq!(got, want, "case {case}: {s:?}");
        }
    }
}
