//! Reference kernels, one op per file. Each works on byte slices the executor has already
//! bounds-checked (through `Model::parse`), and never allocates.

pub mod add_constant;
pub mod average_pool;
pub mod binary;
pub mod binary_f32;
pub mod concat;
pub mod conv;
#[cfg(target_arch = "aarch64")]
pub mod conv_aarch64;
#[cfg(target_arch = "x86_64")]
pub mod conv_avx2;
#[cfg(all(target_arch = "arm", feature = "cortex-m-dsp"))]
mod conv_cortex_m;
pub mod conv_f32;
#[cfg(target_arch = "x86_64")]
pub mod conv_x86;
pub mod depthwise;
#[cfg(target_arch = "aarch64")]
pub mod depthwise_aarch64;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub mod depthwise_simd;
#[cfg(target_arch = "x86_64")]
pub mod depthwise_x86;
pub mod fully_connected;
pub mod max_pool;
pub mod pad;
pub mod prelu;
pub mod quantize;
#[cfg(test)]
pub(crate) mod reference;
pub mod relu;
pub mod resize;
pub mod slice;
pub mod softmax;
pub mod transpose;
pub mod unary_f32;

/// The rows of `dims` (row-major) for an operand of `b_dims` (each dim `dims`' or 1) broadcast
/// over it: `(start, len, b_start, b_row)`, where b's values for the row start at `b_start` —
/// one per element when `b_row`, else one for the whole row. Rows merge while b follows the
/// output, so same-shaped operands make a single row. An iterator rather than a callback: the
/// caller's loop body then compiles inside its own (widest) function.
pub(crate) fn broadcast_rows(dims: [usize; 4], b_dims: [usize; 4]) -> BroadcastRows {
    let b_row = b_dims[3] == dims[3];
    let mut outer = 3;
    while b_row && outer > 0 && b_dims[outer - 1] == dims[outer - 1] {
        outer -= 1;
    }
    let mut b_strides = [0usize; 4];
    let mut stride = 1;
    for i in (0..4).rev() {
        b_strides[i] = if b_dims[i] == 1 { 0 } else { stride };
        stride *= b_dims[i];
    }
    BroadcastRows {
        dims,
        outer,
        len: dims[outer..].iter().product(),
        rows: dims[..outer].iter().product(),
        row: 0,
        index: [0; 4],
        b_strides,
        b_row,
    }
}

/// See [`broadcast_rows`].
pub(crate) struct BroadcastRows {
    dims: [usize; 4],
    outer: usize,
    len: usize,
    rows: usize,
    row: usize,
    index: [usize; 4],
    b_strides: [usize; 4],
    b_row: bool,
}

impl Iterator for BroadcastRows {
    type Item = (usize, usize, usize, bool);

    fn next(&mut self) -> Option<Self::Item> {
        if self.row == self.rows {
            return None;
        }
        let b_at = (0..self.outer).map(|i| self.index[i] * self.b_strides[i]).sum();
        let item = (self.row * self.len, self.len, b_at, self.b_row);
        self.row += 1;
        for i in (0..self.outer).rev() {
            self.index[i] += 1;
            if self.index[i] < self.dims[i] {
                break;
            }
            self.index[i] = 0;
        }
        Some(item)
    }
}

pub(crate) fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

pub(crate) fn i32_at(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

pub(crate) fn put_f32(b: &mut [u8], i: usize, v: f32) {
    b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
}

/// Round half to even for |v| < 2²², the way the FPU rounds by default (and onnxruntime's MLAS).
pub(crate) fn round_half_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2²³
    (v + MAGIC) - MAGIC
}

/// onnxruntime's QuantizeLinear of one value: `saturate(round_half_even(v / scale) + zp)`, NaN
/// as the zero point; clamped before rounding with min/max (the same as saturating after it) so
/// that loops over it vectorize.
#[inline(always)]
pub(crate) fn quantize_value(v: f32, scale: f32, zero_point: i32) -> u8 {
    let (lo, hi) = (-(zero_point as f32), 255.0 - zero_point as f32);
    let v = v / scale;
    let v = if v.is_nan() { 0.0 } else { v.max(lo).min(hi) };
    // SAFETY: v is a number within [−zp, 255 − zp] (zp is 0..=255), so it is finite and within
    // i32's range after rounding (`as` would add per-element saturation branches).
    let r: i32 = unsafe { round_half_even(v).to_int_unchecked() };
    (r + zero_point) as u8
}

/// onnxruntime's requantization: clamp to the output range around the zero point, round half
/// to even, add the zero point.
pub(crate) fn requantize(acc: i32, multiplier: f32, zero_point: i32) -> u8 {
    // min/max rather than `clamp`, whose NaN check would pull float formatting into a
    // microcontroller's binary (the product is never NaN: the multiplier is finite).
    let v = (acc as f32 * multiplier).max(-(zero_point as f32)).min(255.0 - zero_point as f32);
    (round_half_even(v) as i32 + zero_point) as u8
}

/// `requantize` over a row: `out[i] = requantize(acc[i], mults[i], zero_point)`, written so
/// that it vectorizes (min/max instead of clamp, no saturating float→int conversion).
#[inline(always)]
pub(crate) fn requantize_row(acc: &[i32], mults: &[f32], zero_point: i32, out: &mut [u8]) {
    let (lo, hi) = (-(zero_point as f32), 255.0 - zero_point as f32);
    for ((o, &a), &m) in out.iter_mut().zip(acc).zip(mults) {
        let v = (a as f32 * m).max(lo).min(hi);
        let v = if v.is_nan() { 0.0 } else { v };
        // SAFETY: v is a number within [−zp, 255 − zp] (zp is 0..=255): finite, within i32.
        let r: i32 = unsafe { round_half_even(v).to_int_unchecked() };
        *o = (r + zero_point) as u8;
    }
}

/// Defines `fn name(args) -> ret { body }` compiled three times on x86-64 — for AVX-512, AVX2
/// and the baseline — and run as the widest this CPU has: loops written to vectorize get 16 or 8
/// lanes instead of 4, with the same results (the same operations, only wider). Elsewhere, once.
macro_rules! widest {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn inner($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    inner($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    inner($($arg),*)
                }
                if $crate::ops::conv_x86::vnni_available() {
                    // SAFETY: vnni_available() checked that this CPU and OS run AVX-512 F/BW code.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::ops::conv_avx2::avx2_available() {
                    // SAFETY: avx2_available() checked that this CPU and OS run AVX2 code.
                    return unsafe { avx2($($arg),*) };
                }
            }
            inner($($arg),*)
        }
    };
}
pub(crate) use widest;

/// A CPU feature a fast path needs, detected once (no `std` here to ask; each path reads the CPU).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) struct CpuFeature(core::sync::atomic::AtomicU8);

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl CpuFeature {
    const UNKNOWN: u8 = 0;
    const ABSENT: u8 = 1;
    const PRESENT: u8 = 2;

    pub(crate) const fn new() -> CpuFeature {
        CpuFeature(core::sync::atomic::AtomicU8::new(Self::UNKNOWN))
    }

    pub(crate) fn get(&self, detect: fn() -> bool) -> bool {
        use core::sync::atomic::Ordering::Relaxed;
        let mut state = self.0.load(Relaxed);
        if state == Self::UNKNOWN {
            state = if detect() { Self::PRESENT } else { Self::ABSENT };
            self.0.store(state, Relaxed);
        }
        state == Self::PRESENT
    }

    /// `true`: report the feature absent (benchmarks compare with the portable kernels);
    /// `false`: detect again.
    pub(crate) fn disable(&self, off: bool) {
        self.0.store(if off { Self::ABSENT } else { Self::UNKNOWN }, core::sync::atomic::Ordering::Relaxed);
    }
}
