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

use super::conv::{simd_supports, ConvShape, Layout, Reads};
use super::CpuFeature;

/// Output channels per register.
const LANES: usize = 16;

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
pub(crate) unsafe fn xgetbv0() -> u64 {
    // SAFETY: the caller checked OSXSAVE; XCR0 always exists when XGETBV does.
    unsafe { _xgetbv(0) }
}

/// Whether [`conv_vnni`] handles this shape.
pub fn supports(s: &ConvShape) -> bool {
    simd_supports(s)
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
    Layout::new(s, blocking(s).0 * LANES, 1)
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
    init: [__m512i; NB],
    ptrs: &[[*const u8; P]],
    quads: usize,
    filters: *const u8,
) -> [[__m512i; NB]; P] {
    let mut acc = [init; P];
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
    let (_, mg, _) = s.per_group();
    let l = layout(s);
    let plane = s.oh * s.ow;
    assert!(l.width == NB * LANES && prepared.len() == l.total);
    assert!(y.len() >= s.n * plane * s.m);
    let mut reads = Reads::<P>::new(s, x, x_zero);
    let hi = _mm512_set1_ps(255.0 - y_zero as f32);
    let zp = _mm512_set1_epi32(y_zero);
    for g in 0..s.groups {
        for (sb, m0) in (0..mg).step_by(l.width).enumerate() {
            let filters = &prepared[l.filters_at + (g * mg.div_ceil(l.width) + sb) * l.block..][..l.block];
            // The block's per-channel offsets and multipliers, 16 channels per register (the
            // layout keeps 16 spare entries past the last channel).
            let at = |j: usize| 4 * (g * mg + m0 + j * LANES).min(s.m);
            let offsets: [__m512i; NB] = core::array::from_fn(|j| {
                let o = &prepared[at(j)..at(j) + 64];
                // SAFETY: a 64-byte load from a 64-byte slice.
                unsafe { _mm512_loadu_si512(o.as_ptr().cast()) }
            });
            let mults: [__m512; NB] = core::array::from_fn(|j| {
                let m = &prepared[l.mults_at + at(j)..l.mults_at + at(j) + 64];
                // SAFETY: a 64-byte load from a 64-byte slice.
                unsafe { _mm512_loadu_ps(m.as_ptr().cast()) }
            });
            for b in 0..s.n {
                for p0 in (0..plane).step_by(P) {
                    let count = P.min(plane - p0);
                    let (taps, quads) = reads.step(x, b, g, p0, count);
                    // SAFETY: `step` leaves 4·quads readable bytes at every pointer of the taps
                    // read, whose filters are taps·quads·NB·64 bytes: one block of `filters`.
                    // The sums start from the channels' offsets (bias minus the zero-point term).
                    let acc: [[__m512i; NB]; P] =
                        unsafe { accumulate(offsets, &reads.ptrs[..taps], quads, filters.as_ptr()) };
                    for (i, a) in acc[..count].iter().enumerate() {
                        let row = (b * plane + p0 + i) * s.m + g * mg + m0;
                        let out = &mut y[row..row + (mg - m0).min(l.width)];
                        // SAFETY: AVX-512 F/BW, the function's features; `out.len()` bytes.
                        unsafe { requantize_pixel(a, &mults, hi, zp, out) };
                    }
                }
            }
        }
    }
}

/// Requantizes one pixel's `NB` registers of sums and stores the first `out.len()` bytes:
/// `clamp(round(sum·mult) + zp, 0, 255)`, the reference's result (clamping before or after
/// rounding to even is the same, the bounds being integers). Only the upper bound is applied
/// in float, so that no sum converts past i32; the saturating packs to i16 and then u8 apply
/// both bounds, and one permutation restores the channel order the packs interleave per lane.
///
/// # Safety
/// AVX-512 F and BW.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn requantize_pixel<const NB: usize>(
    a: &[__m512i; NB],
    mults: &[__m512; NB],
    hi: __m512,
    zp: __m512i,
    out: &mut [u8],
) {
    let q: [__m512i; 4] = core::array::from_fn(|j| {
        let j = j.min(NB - 1);
        let v = _mm512_min_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a[j]), mults[j]), hi);
        // Rounds half to even (the default rounding mode), as the reference does.
        _mm512_add_epi32(_mm512_cvtps_epi32(v), zp)
    });
    // Lane k of the packs holds channels 4k..4k+3 of q[0], q[1], q[2], q[3] in turn.
    let bytes = _mm512_packus_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3]));
    let order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    let bytes = _mm512_permutexvar_epi32(order, bytes);
    let mask = if out.len() >= 64 { u64::MAX } else { (1u64 << out.len()) - 1 };
    // SAFETY: the mask writes the first `out.len()` (≤ 64) bytes, all inside `out`.
    unsafe { _mm512_mask_storeu_epi8(out.as_mut_ptr().cast(), mask, bytes) };
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::super::conv::{check_random_shapes, conv, prepare, prepared_len};
    use super::*;

    /// The VNNI path (through the dispatcher, prepared constants and all) gives the portable
    /// kernel's bytes on random shapes.
    #[test]
    fn vnni_equals_the_portable_kernel_on_random_shapes() {
        if !vnni_available() {
            super::super::reference::record("avx512-vnni", false, "this CPU lacks AVX-512 VNNI");
            return;
        }
        let tested = check_random_shapes(0x9E37_79B9_7F4A_7C15, supports, |s, x, xz, w, bias, mults, y, yz| {
            let mut prepared = std::vec![0u8; prepared_len(s)];
            prepare(s, w, xz, Some(bias), |i| mults[i], &mut prepared);
            conv(s, x, xz, w, Some(bias), |i| mults[i], Some(&prepared), y, yz);
        });
        assert!(tested >= 150, "only {tested} shapes tested");
        super::super::reference::record(
            "avx512-vnni",
            true,
            &std::format!("{tested} random shapes equal the portable kernel"),
        );
    }
}
