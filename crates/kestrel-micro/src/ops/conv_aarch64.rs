//! aarch64 fast path of the convolution (filters of ≤ 4 columns, at least 8 output channels per
//! group): the Armv8.2 dot product (`sdot`, Jetson Orin's Cortex-A78AE), chosen at run time.
//!
//! The same row kernel as on x86-64: each (channel, filter row) is a 4-byte run of an input row
//! against filters repacked so that 64 bytes hold 4 taps of 16 output channels. `sdot` multiplies
//! signed bytes, so inputs are shifted to `x − 128` (a flip of the top bit) and the zero point
//! folded out afterwards: Σ(x − x_zp)·w = Σ(x − 128)·w − (x_zp − 128)·Σw. Requantization runs the
//! reference's float operations in the reference's order, so outputs are bit-identical to the
//! portable kernel (the unit test runs under qemu-aarch64 in CI).
//!
//! `sdot` is written as inline assembly: its Rust intrinsics are not stable yet.

use core::arch::aarch64::*;
use core::arch::asm;

use super::conv::{group_constants, pack_filter_rows, ConvShape, FAST_MAX_M, LANES};
use super::CpuFeature;

/// Most output channels handled.
pub const MAX_M: usize = FAST_MAX_M;
/// Bytes of repacked filters on the stack (one group's).
const PACKED: usize = 64 * 1024;
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

/// Whether [`conv_rows_sdot`] handles this shape.
pub fn supports(s: &ConvShape) -> bool {
    let mg = s.m / s.groups;
    let steps = s.c / s.groups * s.kh;
    mg >= 8 && s.kw <= 4 && s.dilation.1 == 1 && s.m <= MAX_M && mg.div_ceil(LANES) * LANES * steps * 4 <= PACKED
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

/// The row kernel with `sdot`. Callers check [`dotprod_available`] and [`supports`].
///
/// # Safety
/// The CPU must have the dot-product extension ([`dotprod_available`]).
#[target_feature(enable = "neon")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv_rows_sdot(
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
    let blocks = mg.div_ceil(LANES);
    assert!(supports(s) && w.len() >= s.m * k && x.len() >= s.n * s.c * s.h * s.w);
    let plane = s.oh * s.ow;
    let pad4 = u32::from_ne_bytes([x_zero as u8; 4]);
    let mut packed = [0u8; PACKED];
    let (lo, hi) = (vdupq_n_f32(-(y_zero as f32)), vdupq_n_f32(255.0 - y_zero as f32));
    let (magic, zp, flip) = (vdupq_n_f32(12_582_912.0), vdupq_n_s32(y_zero), vdupq_n_u8(0x80));
    for g in 0..s.groups {
        pack_filter_rows(s, w, g, blocks, &mut packed);
        // The kernel sums x − 128, so the zero point it sees is x_zp − 128.
        let (offsets, mults) = group_constants(s, w, bias, &multipliers, g, x_zero - 128);
        for b in 0..s.n {
            for oy in 0..s.oh {
                let mut ox0 = 0;
                while ox0 < s.ow {
                    let count = PIXELS.min(s.ow - ox0);
                    for block in 0..blocks {
                        let filters = &packed[block * steps * LANES * 4..(block + 1) * steps * LANES * 4];
                        let mut acc = [[vdupq_n_s32(0); 4]; PIXELS];
                        for step in 0..steps {
                            let (ci, ky) = (step / s.kh, step % s.kh);
                            let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                            let mut runs = [pad4; PIXELS];
                            if iy < s.h {
                                let at_row = ((b * s.c + g * cg + ci) * s.h + iy) * s.w;
                                let row = &x[at_row..at_row + s.w];
                                for (i, run) in runs.iter_mut().enumerate() {
                                    let at = ((ox0 + i) * s.stride.1).wrapping_sub(s.pad.1);
                                    let tap = |t: usize| row.get(at.wrapping_add(t)).copied().unwrap_or(x_zero as u8);
                                    *run = u32::from_ne_bytes([tap(0), tap(1), tap(2), tap(3)]);
                                }
                            }
                            // SAFETY: a 16-byte load from a 4-element u32 array.
                            let r = unsafe { vreinterpretq_s8_u8(veorq_u8(vld1q_u8(runs.as_ptr().cast()), flip)) };
                            let f64s = &filters[step * 64..step * 64 + 64];
                            // SAFETY: four 16-byte loads from a 64-byte slice.
                            let f = unsafe {
                                [
                                    vld1q_s8(f64s.as_ptr().cast()),
                                    vld1q_s8(f64s.as_ptr().add(16).cast()),
                                    vld1q_s8(f64s.as_ptr().add(32).cast()),
                                    vld1q_s8(f64s.as_ptr().add(48).cast()),
                                ]
                            };
                            for (v, &fv) in f.iter().enumerate() {
                                sdot_lane!(acc[0][v], fv, r, "0");
                                sdot_lane!(acc[1][v], fv, r, "1");
                                sdot_lane!(acc[2][v], fv, r, "2");
                                sdot_lane!(acc[3][v], fv, r, "3");
                            }
                        }
                        let m0 = block * LANES;
                        for (i, a) in acc[..count].iter().enumerate() {
                            for (v, &av) in a.iter().enumerate() {
                                let c0 = m0 + 4 * v;
                                if c0 >= mg {
                                    break;
                                }
                                // SAFETY: c0 + 4 ≤ blocks·16 ≤ MAX_M entries of both arrays.
                                let (offset, mult) =
                                    unsafe { (vld1q_s32(offsets.as_ptr().add(c0)), vld1q_f32(mults.as_ptr().add(c0))) };
                                // The reference's requantize, 4 channels at once, same float operations.
                                let f = vmulq_f32(vcvtq_f32_s32(vaddq_s32(av, offset)), mult);
                                let f = vminq_f32(vmaxq_f32(f, lo), hi);
                                let f = vsubq_f32(vaddq_f32(f, magic), magic);
                                let q = vaddq_s32(vcvtq_s32_f32(f), zp);
                                let mut out = [0i32; 4];
                                // SAFETY: 16 bytes into a 4-element i32 array.
                                unsafe { vst1q_s32(out.as_mut_ptr(), q) };
                                let p = oy * s.ow + ox0 + i;
                                for (l, &q) in out[..4.min(mg - c0)].iter().enumerate() {
                                    y[(b * s.m + g * mg + c0 + l) * plane + p] = q as u8;
                                }
                            }
                        }
                    }
                    ox0 += count;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::super::conv::{conv_portable, ConvShape};
    use super::*;

    /// Random convolutions the row kernel takes: byte for byte the portable kernel's output.
    #[test]
    fn sdot_equals_the_portable_kernel_on_random_shapes() {
        if !dotprod_available() {
            std::eprintln!("no dot-product extension on this CPU: nothing to compare");
            return;
        }
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut tested = 0;
        for case in 0..200 {
            let (kh, kw) = (1 + next(4), 1 + next(4));
            let groups = 1 + next(2);
            let (cg, mg) = (1 + next(if case % 8 == 0 { 100 } else { 20 }), 8 + next(40));
            let (h, w) = (1 + next(12), 1 + next(12));
            let (stride, pad, dy) = ((1 + next(2), 1 + next(2)), (next(2), next(2)), 1 + next(2));
            let span = |n: usize, k: usize, d: usize, p: usize| (n + 2 * p).checked_sub((k - 1) * d + 1);
            let (Some(sh), Some(sw)) = (span(h, kh, dy, pad.0), span(w, kw, 1, pad.1)) else { continue };
            let s = ConvShape {
                n: 1 + next(2),
                c: cg * groups,
                h,
                w,
                m: mg * groups,
                oh: sh / stride.0 + 1,
                ow: sw / stride.1 + 1,
                kh,
                kw,
                stride,
                dilation: (dy, 1),
                pad,
                groups,
            };
            if !supports(&s) {
                continue;
            }
            let x: Vec<u8> = (0..s.n * s.c * h * w).map(|_| next(256) as u8).collect();
            let wt: Vec<u8> = (0..s.m * cg * kh * kw).map(|_| next(256) as u8).collect();
            let bias: Vec<u8> = (0..s.m).flat_map(|_| (next(1 << 20) as i32 - (1 << 19)).to_le_bytes()).collect();
            let mults: Vec<f32> = (0..s.m).map(|_| (1 + next(1000)) as f32 * 1e-6).collect();
            let (xz, yz) = (next(256) as i32, next(256) as i32);
            let mut want = std::vec![0u8; s.n * s.m * s.oh * s.ow];
            let mut got = want.clone();
            conv_portable(&s, &x, xz, &wt, Some(&bias), |i| mults[i], &mut want, yz);
            // SAFETY: dotprod_available() was checked above.
            unsafe { conv_rows_sdot(&s, &x, xz, &wt, Some(&bias), |i| mults[i], &mut got, yz) };
            assert_eq!(got, want, "case {case}: {s:?}");
            tested += 1;
        }
        assert!(tested > 50, "only {tested} shapes tested");
    }
}
