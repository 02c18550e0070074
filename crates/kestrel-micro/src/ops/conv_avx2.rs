//! x86-64 fast path of the convolution for CPUs with AVX2 but not AVX-512 VNNI (Haswell to
//! the Skylake clients, AMD Zen 1–3), chosen at run time.
//!
//! The VNNI kernel's scheme with `pmaddwd` (16-bit multiply, pairs summed into 32 bits): each
//! quad of 4 input bytes is broadcast and spread by one shuffle per pair into zero-extended
//! 16-bit pairs, multiplied with the filters, prepared as int16 pairs of 8 output channels per
//! register. Exact: |x·w| ≤ 255·128, so a pair's sum fits 32 bits — unlike `pmaddubsw`, which
//! saturates at 16. Raw inputs are summed and the zero point folded out afterwards
//! (Σ(x − x_zp)·w = Σx·w − x_zp·Σw); requantization runs the reference's float operations in
//! the reference's order, so outputs are bit-identical to the portable kernel (tested on random
//! shapes).

use core::arch::x86_64::*;

use super::conv::{simd_supports, ConvShape, Layout, Reads};
use super::CpuFeature;

/// Output channels per register.
const LANES: usize = 8;

static FEATURE: CpuFeature = CpuFeature::new();

/// Whether this CPU and OS run AVX2 code (CPUID + XGETBV). Checked once.
pub fn avx2_available() -> bool {
    FEATURE.get(detect_avx2)
}

/// Turns this fast path off (benchmarks and tests compare it with the portable kernel).
pub fn disable_fast_paths(off: bool) {
    FEATURE.disable(off);
}

fn detect_avx2() -> bool {
    let leaf1 = __cpuid(1);
    let (osxsave, avx) = (leaf1.ecx & (1 << 27) != 0, leaf1.ecx & (1 << 28) != 0);
    if !osxsave || !avx || __cpuid(0).eax < 7 {
        return false;
    }
    // SAFETY: OSXSAVE is set, so XGETBV is available.
    let xcr0 = unsafe { super::conv_x86::xgetbv0() };
    // SSE and AVX (YMM upper halves) state enabled by the OS.
    xcr0 & 0x6 == 0x6 && __cpuid_count(7, 0).ebx & (1 << 5) != 0
}

/// Whether [`conv_avx2`] handles this shape.
pub fn supports(s: &ConvShape) -> bool {
    simd_supports(s)
}

/// Registers of 8 output channels per step, and pixels per step (8 accumulators of the 16
/// registers).
fn blocking(s: &ConvShape) -> (usize, usize) {
    if (s.m / s.groups).div_ceil(LANES) == 1 {
        (1, 8)
    } else {
        (2, 4)
    }
}

/// Where the kernel finds its prepared constants (int16 filter pairs).
pub(crate) fn layout(s: &ConvShape) -> Layout {
    Layout::new(s, blocking(s).0 * LANES, 2)
}

/// The convolution with AVX2, on constants from `conv::prepare` (`layout(s).total` bytes).
///
/// # Safety
/// The CPU must support AVX2 ([`avx2_available`]).
#[target_feature(enable = "avx2")]
pub unsafe fn conv_avx2(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    // SAFETY: every arm has the same CPU requirement as this function.
    unsafe {
        match blocking(s) {
            (1, _) => conv_blocks::<1, 8>(s, x, x_zero, prepared, y, y_zero),
            _ => conv_blocks::<2, 4>(s, x, x_zero, prepared, y, y_zero),
        }
    }
}

/// The sums of `P` pixels × `NB` registers of 8 output channels over all taps. Per quad: `2·NB`
/// filter loads; per pixel one broadcast and two shuffles feed `2·NB` multiply-adds.
///
/// # Safety
/// AVX2; `4·quads` bytes readable at every `ptrs[t][i]` and `ptrs.len()·quads·NB·64` at
/// `filters`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn accumulate<const NB: usize, const P: usize>(
    ptrs: &[[*const u8; P]],
    quads: usize,
    filters: *const u8,
) -> [[__m256i; NB]; P] {
    // Bytes (0, 1) and (2, 3) of each 4-byte lane, zero-extended to 16-bit pairs.
    let z = -128i8;
    let spread = [
        _mm256_setr_epi8(
            0, z, 1, z, 0, z, 1, z, 0, z, 1, z, 0, z, 1, z, 0, z, 1, z, 0, z, 1, z, 0, z, 1, z, 0, z, 1, z,
        ),
        _mm256_setr_epi8(
            2, z, 3, z, 2, z, 3, z, 2, z, 3, z, 2, z, 3, z, 2, z, 3, z, 2, z, 3, z, 2, z, 3, z, 2, z, 3, z,
        ),
    ];
    let mut acc = [[_mm256_setzero_si256(); NB]; P];
    let mut f_at = filters;
    for tap in ptrs {
        for qd in 0..quads {
            let f: [[__m256i; NB]; 2] = core::array::from_fn(|pair| {
                core::array::from_fn(|j| {
                    // SAFETY: within the ptrs.len()·quads·NB·64 bytes at `filters` (the caller's promise).
                    unsafe { _mm256_loadu_si256(f_at.add((pair * NB + j) * 32).cast()) }
                })
            });
            f_at = f_at.wrapping_add(NB * 64);
            for (a, &ptr) in acc.iter_mut().zip(tap) {
                // SAFETY: 4·qd + 4 ≤ 4·quads bytes at ptr (the caller's promise).
                let xb = _mm256_set1_epi32(unsafe { ptr.add(4 * qd).cast::<i32>().read_unaligned() });
                let (x0, x1) = (_mm256_shuffle_epi8(xb, spread[0]), _mm256_shuffle_epi8(xb, spread[1]));
                for (j, aj) in a.iter_mut().enumerate() {
                    let sum = _mm256_add_epi32(_mm256_madd_epi16(x0, f[0][j]), _mm256_madd_epi16(x1, f[1][j]));
                    *aj = _mm256_add_epi32(*aj, sum);
                }
            }
        }
    }
    acc
}

/// `NB` registers of 8 output channels × `P` pixels per step.
#[inline(never)] // one kernel's stack buffers live at a time
#[target_feature(enable = "avx2")]
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
    let (lo, hi) = (_mm256_set1_ps(-(y_zero as f32)), _mm256_set1_ps(255.0 - y_zero as f32));
    let zp = _mm256_set1_epi32(y_zero);
    for g in 0..s.groups {
        for (sb, m0) in (0..mg).step_by(l.width).enumerate() {
            let filters = &prepared[l.filters_at + (g * mg.div_ceil(l.width) + sb) * l.block..][..l.block];
            // The block's per-channel offsets and multipliers, 8 channels per register (the
            // layout keeps 16 spare entries past the last channel).
            let consts: [(__m256i, __m256); NB] = core::array::from_fn(|j| {
                let at = 4 * (g * mg + m0 + j * LANES).min(s.m);
                let (offset, mult) = (&prepared[at..at + 32], &prepared[l.mults_at + at..l.mults_at + at + 32]);
                // SAFETY: two 32-byte loads from 32-byte slices.
                unsafe { (_mm256_loadu_si256(offset.as_ptr().cast()), _mm256_loadu_ps(mult.as_ptr().cast())) }
            });
            for b in 0..s.n {
                for p0 in (0..plane).step_by(P) {
                    let count = P.min(plane - p0);
                    let (taps, quads) = reads.step(x, b, g, p0, count);
                    // SAFETY: `step` leaves 4·quads readable bytes at every pointer of the taps
                    // read, whose int16 filters are taps·quads·NB·64 bytes: one block.
                    let acc: [[__m256i; NB]; P] = unsafe { accumulate(&reads.ptrs[..taps], quads, filters.as_ptr()) };
                    for (i, a) in acc[..count].iter().enumerate() {
                        let row = (b * plane + p0 + i) * s.m + g * mg;
                        for (j, (&aj, &(offset, mult))) in a.iter().zip(&consts).enumerate() {
                            let c0 = m0 + j * LANES;
                            if c0 >= mg {
                                break;
                            }
                            // The reference's requantize, 8 channels at once, same float operations;
                            // the conversion rounds half to even (the default rounding mode).
                            let v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(aj, offset)), mult);
                            let v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
                            let q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
                            let mut out = [0i32; LANES];
                            // SAFETY: 32 bytes into an 8-element i32 array.
                            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), q) };
                            let n = LANES.min(mg - c0);
                            for (o, &v) in y[row + c0..row + c0 + n].iter_mut().zip(&out) {
                                *o = v as u8;
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

    use super::super::conv::{check_random_shapes, prepare_constants};
    use super::*;

    /// The AVX2 kernel gives the portable kernel's bytes on random shapes (called directly: on a
    /// CPU with VNNI the dispatcher would not choose it).
    #[test]
    fn avx2_equals_the_portable_kernel_on_random_shapes() {
        if !avx2_available() {
            super::super::reference::record("avx2", false, "this CPU lacks AVX2");
            return;
        }
        let tested = check_random_shapes(0x5851_F42D_4C95_7F2D, supports, |s, x, xz, w, bias, mults, y, yz| {
            let l = layout(s);
            let mut prepared = std::vec![0u8; l.total];
            prepare_constants(s, w, Some(bias), &|i| mults[i], xz, l, &mut prepared);
            // SAFETY: avx2_available() was checked above.
            unsafe { conv_avx2(s, x, xz, &prepared, y, yz) };
        });
        assert!(tested >= 150, "only {tested} shapes tested");
        super::super::reference::record(
            "avx2",
            true,
            &std::format!("{tested} random shapes equal the portable kernel"),
        );
    }
}
