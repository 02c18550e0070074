//! aarch64 fast path of the depthwise convolution on NEON (every aarch64 CPU: the Jetson Nano's
//! Cortex-A57 as well as the Orin's A78AE), on `depthwise_simd`'s kernel: 8 channels per step,
//! the input bytes widened to 16 bits (`uxtl`) and multiplied with the 16-bit weights into two
//! registers of 32-bit sums (`smlal`, `smlal2`). The dot product (`sdot`) would need four taps
//! of one channel side by side, which channels-last data does not hold.

use core::arch::aarch64::*;

use super::conv::ConvShape;
use super::depthwise_simd::{kernel, Lanes};
use super::CpuFeature;

static FEATURE: CpuFeature = CpuFeature::new();

/// Whether this fast path runs (NEON is part of every aarch64 CPU; benchmarks can turn it off).
pub fn available() -> bool {
    FEATURE.get(|| true)
}

/// Turns the fast path off (benchmarks compare it with the portable kernel).
pub fn disable_fast_paths(off: bool) {
    FEATURE.disable(off);
}

/// The convolution on constants from `depthwise_simd::prepare`.
pub fn depthwise(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    // SAFETY: NEON is baseline on aarch64; the kernel checks the sizes.
    unsafe { kernel::<Neon>(s, x, x_zero, prepared, y, y_zero) }
}

struct Neon;

// Safety of every method's unsafe block: NEON is baseline on aarch64, and the callers pass
// pointers with the bytes each method reads.
impl Lanes for Neon {
    const LANES: usize = 8;
    type V = int32x4x2_t;
    type X = int16x8_t;
    type W = int16x8_t;
    #[inline(always)]
    unsafe fn load(p: *const u8) -> int32x4x2_t {
        // SAFETY: see the impl (32 bytes).
        unsafe { int32x4x2_t(vld1q_s32(p.cast()), vld1q_s32(p.add(16).cast())) }
    }
    #[inline(always)]
    unsafe fn load_w(p: *const u8) -> int16x8_t {
        // SAFETY: see the impl (32 bytes); the even i16 of the `[w, 0]` pairs are the weights.
        unsafe { vld2q_s16(p.cast()).0 }
    }
    #[inline(always)]
    unsafe fn splat_x(v: i32) -> int16x8_t {
        // SAFETY: see the impl.
        unsafe { vdupq_n_s16(v as i16) }
    }
    #[inline(always)]
    unsafe fn load_x(p: *const u8, n: usize) -> int16x8_t {
        let mut bytes = [0u8; 8];
        // SAFETY: see the impl (n ≤ 8 bytes into an 8-byte array).
        unsafe {
            core::ptr::copy_nonoverlapping(p, bytes.as_mut_ptr(), n.min(8));
            vreinterpretq_s16_u16(vmovl_u8(vld1_u8(bytes.as_ptr())))
        }
    }
    #[inline(always)]
    unsafe fn mac(acc: int32x4x2_t, x: int16x8_t, w: int16x8_t) -> int32x4x2_t {
        // SAFETY: see the impl.
        unsafe { int32x4x2_t(vmlal_s16(acc.0, vget_low_s16(x), vget_low_s16(w)), vmlal_high_s16(acc.1, x, w)) }
    }
    #[inline(always)]
    unsafe fn store(acc: int32x4x2_t, mults: *const u8, y_zero: i32, out: &mut [u8]) {
        let mut eight = [0u8; 8];
        // SAFETY: see the impl (32 bytes of multipliers; 8 bytes into an 8-byte array). The
        // reference's float operations; only the upper bound in float (no sum converts past
        // i32), the saturating narrows apply both; the conversion rounds half to even.
        unsafe {
            let (hi, zp) = (vdupq_n_f32(255.0 - y_zero as f32), vdupq_n_s32(y_zero));
            let half = |a: int32x4_t, m: *const u8| {
                let v = vminq_f32(vmulq_f32(vcvtq_f32_s32(a), vld1q_f32(m.cast())), hi);
                vqmovn_s32(vaddq_s32(vcvtnq_s32_f32(v), zp))
            };
            let q = vcombine_s16(half(acc.0, mults), half(acc.1, mults.add(16)));
            vst1_u8(eight.as_mut_ptr(), vqmovun_s16(q));
        }
        let n = out.len().min(8);
        out[..n].copy_from_slice(&eight[..n]);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::super::conv::{conv, prepare, prepared_len as len_any};
    use super::super::depthwise_simd::check_random_shapes;

    /// Random depthwise shapes through the dispatcher (prepared constants and all) give the
    /// portable kernel's bytes (run under qemu-aarch64 in CI).
    #[test]
    fn neon_depthwise_equals_the_portable_kernel() {
        let tested = check_random_shapes(|s, x, xz, wt, bias, mults, y, yz| {
            let mut prepared = std::vec![0u8; len_any(s)];
            assert!(!prepared.is_empty(), "the NEON kernel is not chosen for {s:?}");
            prepare(s, wt, xz, Some(bias), |i| mults[i], &mut prepared);
            conv(s, x, xz, wt, Some(bias), |i| mults[i], Some(&prepared), y, yz);
        });
        super::super::reference::record(
            "aarch64-neon-depthwise",
            true,
            &std::format!("{tested} random shapes equal the portable kernel"),
        );
    }
}
