//! x86-64 fast paths of the depthwise convolution, chosen at run time: AVX-512 VNNI (16
//! channels per register, each tap one `vpdpwssd`) and AVX2 (8 channels, `vpmaddwd` +
//! `vpaddd`), on `depthwise_simd`'s kernel. The inputs are zero-extended to 32-bit lanes
//! (`[x, 0]` as two i16) against weights packed as `[w, 0]`, so the i16-pair multiply-add adds
//! exactly x·w to each channel's sum.

use core::arch::x86_64::*;

use super::conv::ConvShape;
use super::conv_avx2::avx2_available;
use super::conv_x86::{requantize_pixel, vnni_available};
use super::depthwise_simd::{kernel, Lanes};

/// Whether one of them runs here.
pub fn available() -> bool {
    vnni_available() || avx2_available()
}

/// The convolution on constants from `depthwise_simd::prepare`, on the widest kernel this CPU
/// has.
///
/// # Safety
/// [`available`] must hold.
pub unsafe fn depthwise(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    // SAFETY: each kernel runs only where its features were detected (the caller's promise
    // covers the AVX2 one when VNNI is absent); the kernel checks the sizes.
    unsafe {
        if vnni_available() {
            with_avx512(s, x, x_zero, prepared, y, y_zero)
        } else {
            with_avx2(s, x, x_zero, prepared, y, y_zero)
        }
    }
}

/// # Safety
/// AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn with_avx512(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    // SAFETY: the features Avx512's operations need are this function's.
    unsafe { kernel::<Avx512>(s, x, x_zero, prepared, y, y_zero) }
}

/// # Safety
/// AVX2.
#[target_feature(enable = "avx2")]
unsafe fn with_avx2(s: &ConvShape, x: &[u8], x_zero: i32, prepared: &[u8], y: &mut [u8], y_zero: i32) {
    // SAFETY: the features Avx2's operations need are this function's.
    unsafe { kernel::<Avx2>(s, x, x_zero, prepared, y, y_zero) }
}

struct Avx512;

// Safety of every method's unsafe block: the caller is compiled with AVX-512 F/BW/VL/VNNI (see `Lanes`) and
// passes pointers with the bytes each method reads.
impl Lanes for Avx512 {
    const LANES: usize = 16;
    type V = __m512i;
    type X = __m512i;
    type W = __m512i;
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        // SAFETY: see the impl.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn load_w(p: *const u8) -> __m512i {
        // SAFETY: see the impl.
        unsafe { Self::load(p) }
    }
    #[inline(always)]
    unsafe fn splat_x(v: i32) -> __m512i {
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
    type X = __m256i;
    type W = __m256i;
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        // SAFETY: see the impl.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn load_w(p: *const u8) -> __m256i {
        // SAFETY: see the impl.
        unsafe { Self::load(p) }
    }
    #[inline(always)]
    unsafe fn splat_x(v: i32) -> __m256i {
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

#[cfg(test)]
mod tests {
    extern crate std;

    use super::super::conv::{conv, prepare as prepare_any, prepared_len as len_any};
    use super::super::depthwise_simd::{check_random_shapes, prepare, prepared_len};
    use super::*;

    /// Random depthwise shapes (see `check_random_shapes`) through the dispatcher (prepared
    /// constants and all: VNNI where the CPU has it) and through the AVX2 kernel directly give
    /// the portable kernel's bytes.
    #[test]
    fn simd_depthwise_equals_the_portable_kernel() {
        let record = super::super::reference::record;
        if vnni_available() {
            let tested = check_random_shapes(|s, x, xz, wt, bias, mults, y, yz| {
                let mut prepared = std::vec![0u8; len_any(s)];
                prepare_any(s, wt, xz, Some(bias), |i| mults[i], &mut prepared);
                conv(s, x, xz, wt, Some(bias), |i| mults[i], Some(&prepared), y, yz);
            });
            record("avx512-vnni-depthwise", true, &std::format!("{tested} random shapes equal the portable kernel"));
        } else {
            record("avx512-vnni-depthwise", false, "this CPU lacks AVX-512 VNNI");
        }
        if avx2_available() {
            let tested = check_random_shapes(|s, x, xz, wt, bias, mults, y, yz| {
                let mut prepared = std::vec![0u8; prepared_len(s)];
                prepare(s, wt, xz, Some(bias), |i| mults[i], &mut prepared);
                // SAFETY: AVX2 detected; the sizes are the shape's.
                unsafe { with_avx2(s, x, xz, &prepared, y, yz) };
            });
            record("avx2-depthwise", true, &std::format!("{tested} random shapes equal the portable kernel"));
        } else {
            record("avx2-depthwise", false, "this CPU lacks AVX2");
        }
    }
}
