//! aarch64 fast path of the convolution: the Armv8.2 dot product (`sdot`, Jetson Orin's
//! Cortex-A78AE), chosen at run time.
//!
//! The x86-64 kernel's scheme on 128-bit registers: filters of 16 output channels packed once
//! per model (`conv::prepare`) `[tap][quad][channel][4]` (one quad of 16 channels is four 16-byte registers), the quads of 4
//! pixels in one register, and `sdot … .4b[i]` multiplies pixel i's quad with 4 channels at once
//! (16 accumulators: 4 pixels × 16 channels). `sdot` multiplies signed bytes, so inputs are
//! shifted to `x − 128` (a flip of the top bit) and the zero point folded out afterwards:
//! Σ(x − x_zp)·w = Σ(x − 128)·w − (x_zp − 128)·Σw. Requantization runs the reference's float
//! operations in the reference's order, so outputs are bit-identical to the portable kernel (the
//! unit test runs under qemu-aarch64 in CI).
//!
//! `sdot` is written as inline assembly: its Rust intrinsics are not stable yet.

use core::arch::aarch64::*;
use core::arch::asm;

use super::conv::{simd_supports, ConvShape, Layout, Reads};
use super::CpuFeature;

/// Output channels per step (four registers of 4).
const WIDTH: usize = 16;
/// Output pixels per step (one per `sdot` index).
const PIXELS: usize = 4;
static FEATURE: CpuFeature = CpuFeature::new();

/// Whether this CPU has the dot-product instructions. Checked once.
pub fn dotprod_available() -> bool {
    FEATURE.get(detect)
}

/// Turns the fast path off (benchmarks and tests compare it with the portable kernel).
pub fn disable_fast_paths(off: bool) {
    FEATURE.disable(off);
}

#[cfg(target_os = "linux")]
fn detect() -> bool {
    let isar0: u64;
    // SAFETY: reading ID_AA64ISAR0_EL1 from user space traps into Linux, which emulates it
    // (since 4.11; qemu-user too) and returns the sanitized value; it has no side effects.
    unsafe { asm!("mrs {}, ID_AA64ISAR0_EL1", out(reg) isar0, options(nomem, nostack, preserves_flags)) };
    (isar0 >> 44) & 0xF >= 1 // DP: SDOT/UDOT
}

#[cfg(not(target_os = "linux"))]
fn detect() -> bool {
    cfg!(target_feature = "dotprod")
}

/// Whether [`conv_sdot`] handles this shape.
pub fn supports(s: &ConvShape) -> bool {
    simd_supports(s)
}

/// Where the kernel finds its prepared constants.
pub(crate) fn layout(s: &ConvShape) -> Layout {
    Layout::new(s, WIDTH, 1)
}

/// acc += the dot product of each 4 filter bytes with the 4 bytes of element `I` of `runs`.
macro_rules! sdot_lane {
    ($acc:expr, $filters:expr, $runs:expr, $lane:literal) => {
        // SAFETY: `sdot` reads and writes vector registers only; the caller runs on a CPU with
        // the dot-product extension (checked by `dotprod_available`).
        unsafe {
            asm!(
                concat!(".arch_extension dotprod\nsdot {acc:v}.4s, {f:v}.16b, {r:v}.4b[", $lane, "]"),
                acc = inout(vreg) $acc,
                f = in(vreg) $filters,
                r = in(vreg) $runs,
                options(pure, nomem, nostack, preserves_flags)
            )
        }
    };
}

/// `Σ_tap Σ_quad (x(pixel i, tap, quad) − 128) · filters(tap, quad, channels 4v..4v+4)`.
///
/// # Safety
/// The dot-product extension; `4·quads` bytes readable at every `ptrs[t][i]` and
/// `ptrs.len()·quads·64` at `filters`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn accumulate(ptrs: &[[*const u8; PIXELS]], quads: usize, filters: *const u8) -> [[int32x4_t; 4]; PIXELS] {
    let flip = vdupq_n_u8(0x80);
    let mut acc = [[vdupq_n_s32(0); 4]; PIXELS];
    for (t, ptrs) in ptrs.iter().enumerate() {
        // SAFETY: tap t's filters lie within the caller's ptrs.len()·quads·64 bytes.
        let filters = unsafe { filters.add(t * quads * 64) };
        for qd in 0..quads {
            // SAFETY: 4·qd + 4 ≤ 4·quads bytes at each pointer (the caller's promise).
            let runs: [u32; PIXELS] =
                core::array::from_fn(|i| unsafe { ptrs[i].add(4 * qd).cast::<u32>().read_unaligned() });
            // SAFETY: a 16-byte load from a 4-element u32 array.
            let r = unsafe { vreinterpretq_s8_u8(veorq_u8(vld1q_u8(runs.as_ptr().cast()), flip)) };
            // SAFETY: qd·64 + 64 ≤ quads·64 bytes at `filters` (the caller's promise).
            let f: [int8x16_t; 4] = core::array::from_fn(|v| unsafe { vld1q_s8(filters.add(qd * 64 + v * 16).cast()) });
            for (v, &fv) in f.iter().enumerate() {
                sdot_lane!(acc[0][v], fv, r, "0");
                sdot_lane!(acc[1][v], fv, r, "1");
                sdot_lane!(acc[2][v], fv, r, "2");
                sdot_lane!(acc[3][v], fv, r, "3");
            }
        }
    }
    acc
}

/// The convolution with `sdot`, on constants from `conv::prepare` (`layout(s).total` bytes).
///
/// # Safety
/// The CPU must have the dot-product extension ([`dotprod_available`]).
#[target_feature(enable = "neon")]
pub unsafe fn conv_sdot(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    let (_, mg, _) = s.per_group();
    let l = layout(s);
    let plane = s.oh * s.ow;
    assert!(prepared.len() == l.total && y.len() >= s.n * plane * s.m);
    let mut reads = Reads::<PIXELS>::new(s, x, x_zero);
    let (lo, hi) = (vdupq_n_f32(-(y_zero as f32)), vdupq_n_f32(255.0 - y_zero as f32));
    let (magic, zp) = (vdupq_n_f32(12_582_912.0), vdupq_n_s32(y_zero));
    for g in 0..s.groups {
        for (sb, m0) in (0..mg).step_by(WIDTH).enumerate() {
            let filters = &prepared[l.filters_at + (g * mg.div_ceil(WIDTH) + sb) * l.block..][..l.block];
            for b in 0..s.n {
                for p0 in (0..plane).step_by(PIXELS) {
                    let count = PIXELS.min(plane - p0);
                    let (taps, quads) = reads.step(x, b, g, p0, count);
                    // SAFETY: `step` leaves 4·quads readable bytes at every pointer of the taps
                    // read, whose filters are taps·quads·64 bytes: one block of `filters`.
                    let acc = unsafe { accumulate(&reads.ptrs[..taps], quads, filters.as_ptr()) };
                    for (i, a) in acc[..count].iter().enumerate() {
                        let row = (b * plane + p0 + i) * s.m + g * mg;
                        for (v, &av) in a.iter().enumerate() {
                            let c0 = m0 + 4 * v;
                            if c0 >= mg {
                                break;
                            }
                            // 4 channels' constants: the layout keeps 16 spare entries past the last.
                            let at = 4 * (g * mg + c0);
                            let (offset, mult) =
                                (&prepared[at..at + 16], &prepared[l.mults_at + at..l.mults_at + at + 16]);
                            // SAFETY: two 16-byte loads from 16-byte slices.
                            let (offset, mult) =
                                unsafe { (vld1q_s32(offset.as_ptr().cast()), vld1q_f32(mult.as_ptr().cast())) };
                            // The reference's requantize, 4 channels at once, same float operations.
                            let f = vmulq_f32(vcvtq_f32_s32(vaddq_s32(av, offset)), mult);
                            let f = vminq_f32(vmaxq_f32(f, lo), hi);
                            let f = vsubq_f32(vaddq_f32(f, magic), magic);
                            let qv = vaddq_s32(vcvtq_s32_f32(f), zp);
                            let mut out = [0i32; 4];
                            // SAFETY: 16 bytes into a 4-element i32 array.
                            unsafe { vst1q_s32(out.as_mut_ptr(), qv) };
                            for (l, &qb) in out[..4.min(mg - c0)].iter().enumerate() {
                                y[row + c0 + l] = qb as u8;
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

    use super::super::conv::{check_random_shapes, conv, prepare, prepared_len};
    use super::*;

    /// The `sdot` path (through the dispatcher, prepared constants and all) gives the portable
    /// kernel's bytes on random shapes.
    #[test]
    fn sdot_equals_the_portable_kernel_on_random_shapes() {
        if !dotprod_available() {
            super::super::reference::record("aarch64-sdot", false, "this CPU lacks the dot-product extension");
            return;
        }
        let tested = check_random_shapes(0x2545_F491_4F6C_DD1D, supports, |s, x, xz, w, bias, mults, y, yz| {
            let mut prepared = std::vec![0u8; prepared_len(s)];
            prepare(s, w, xz, Some(bias), |i| mults[i], &mut prepared);
            conv(s, x, xz, w, Some(bias), |i| mults[i], Some(&prepared), y, yz);
        });
        assert!(tested >= 150, "only {tested} shapes tested");
        super::super::reference::record(
            "aarch64-sdot",
            true,
            &std::format!("{tested} random shapes equal the portable kernel"),
        );
    }
}
