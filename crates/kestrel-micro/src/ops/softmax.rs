//! Softmax over one axis, in float32, with our own `exp` (no libm on microcontrollers).

use super::{f32_at, put_f32};

/// e^x for float32: range reduction by ln 2 and a degree-6 polynomial (relative error < 2e-7).
pub fn exp(x: f32) -> f32 {
    if x < -87.3 {
        return 0.0;
    }
    if x > 88.7 {
        return f32::INFINITY;
    }
    // Cody–Waite: ln 2 split in two so k·ln2 is subtracted without cancellation error.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let k = round(x * core::f32::consts::LOG2_E);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // Scale by 2^k in two steps so neither factor overflows or underflows early.
    let k = k as i32;
    let half = k / 2;
    p * pow2(half) * pow2(k - half)
}

fn round(v: f32) -> f32 {
    super::round_half_even(v)
}

fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127).clamp(1, 254) as u32) << 23)
}

/// Softmax of `x` seen as `[outer, len, inner]` over its middle axis (`inner` = 1: the last).
pub fn softmax(x: &[u8], outer: usize, len: usize, inner: usize, y: &mut [u8]) {
    for o in 0..outer {
        for k in 0..inner {
            let at = |i: usize| (o * len + i) * inner + k;
            let max = (0..len).map(|i| f32_at(x, at(i))).fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for i in 0..len {
                let e = exp(f32_at(x, at(i)) - max);
                put_f32(y, at(i), e);
                sum += e;
            }
            for i in 0..len {
                put_f32(y, at(i), f32_at(y, at(i)) / sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{vec, vec::Vec};

    #[test]
    fn softmax_over_a_middle_axis_normalizes_each_column() {
        // [outer 1, len 3, inner 2]: each of the 2 columns sums to 1 over the 3 values.
        let x: Vec<f32> = vec![1.0, 0.0, 2.0, 0.0, 3.0, 0.0];
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut y = vec![0u8; 24];
        super::softmax(&bytes, 1, 3, 2, &mut y);
        let y: Vec<f32> = y.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
        let sum: f64 = e.iter().sum();
        for i in 0..3 {
            assert!((f64::from(y[2 * i]) - e[i] / sum).abs() < 1e-6, "{y:?}");
            assert!((f64::from(y[2 * i + 1]) - 1.0 / 3.0).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn exp_is_accurate() {
        for i in -800..=800 {
            let x = i as f32 / 10.0;
            let (got, want) = (super::exp(x), (x as f64).exp() as f32);
            assert!(((got - want) / want).abs() < 5e-7, "exp({x}) = {got}, want {want}");
        }
    }
}
