//! Activation functions on float32 — those between the float layers a mixed int8 model keeps
//! (PicoDet's HardSwish after its float first layers, say): HardSwish, HardSigmoid, Clip,
//! LeakyRelu, Sigmoid and Tanh (with our own `exp`: no libm on microcontrollers).

use super::softmax::exp;
use super::{f32_at, widest};

/// The function and its constants, as the op's parameters hold them: byte 0 the kind,
/// bytes 4..8 and 8..12 two float32 constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    HardSwish,
    HardSigmoid { alpha: f32, beta: f32 },
    Clip { lo: f32, hi: f32 },
    LeakyRelu { alpha: f32 },
    Sigmoid,
    Tanh,
}

impl Unary {
    /// The function the parameters name; None for an unknown kind or a NaN constant.
    pub fn from_params(p: &[u8; 12]) -> Option<Unary> {
        let (a, b) = (f32_at(p, 1), f32_at(p, 2));
        if a.is_nan() || b.is_nan() {
            return None;
        }
        Some(match p[0] {
            0 => Unary::HardSwish,
            1 => Unary::HardSigmoid { alpha: a, beta: b },
            2 => Unary::Clip { lo: a, hi: b },
            3 => Unary::LeakyRelu { alpha: a },
            4 => Unary::Sigmoid,
            5 => Unary::Tanh,
            _ => return None,
        })
    }

    pub fn params(self) -> [u8; 12] {
        let (kind, a, b) = match self {
            Unary::HardSwish => (0, 0.0, 0.0),
            Unary::HardSigmoid { alpha, beta } => (1, alpha, beta),
            Unary::Clip { lo, hi } => (2, lo, hi),
            Unary::LeakyRelu { alpha } => (3, alpha, 0.0),
            Unary::Sigmoid => (4, 0.0, 0.0),
            Unary::Tanh => (5, 0.0, 0.0),
        };
        let mut p = [0u8; 12];
        p[0] = kind;
        p[4..8].copy_from_slice(&f32::to_le_bytes(a));
        p[8..12].copy_from_slice(&f32::to_le_bytes(b));
        p
    }
}

/// `y = f(x)` element by element (little-endian float32 bytes, same length).
pub fn unary_f32(f: Unary, x: &[u8], y: &mut [u8]) {
    match f {
        Unary::HardSwish => map(x, y, |v| v * (v * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0)),
        Unary::HardSigmoid { alpha, beta } => map(x, y, |v| (alpha * v + beta).clamp(0.0, 1.0)),
        // min/max, not clamp: a file may hold lo > hi (clamp would panic).
        Unary::Clip { lo, hi } => map(x, y, |v| v.max(lo).min(hi)),
        Unary::LeakyRelu { alpha } => map(x, y, |v| if v >= 0.0 { v } else { alpha * v }),
        Unary::Sigmoid => map(x, y, |v| 1.0 / (1.0 + exp(-v))),
        Unary::Tanh => map(x, y, |v| {
            // 1 − 2 / (e^{2v} + 1): ±1 in the limits, no ∞/∞.
            1.0 - 2.0 / (exp(2.0 * v) + 1.0)
        }),
    }
}

widest! {
fn map(x: &[u8], y: &mut [u8], f: impl Fn(f32) -> f32) {
    for (o, b) in y.chunks_exact_mut(4).zip(x.chunks_exact(4)) {
        o.copy_from_slice(&f(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes());
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_computes_its_definition_and_params_round_trip() {
        let values = [-7.0f32, -3.0, -1.5, -0.25, 0.0, 0.4, 2.0, 3.0, 9.0];
        let x: [u8; 36] = core::array::from_fn(|i| values[i / 4].to_le_bytes()[i % 4]);
        type Definition = fn(f64) -> f64;
        let cases: [(Unary, Definition); 6] = [
            (Unary::HardSwish, |v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0)),
            (Unary::HardSigmoid { alpha: 0.2, beta: 0.5 }, |v| (0.2 * v + 0.5).clamp(0.0, 1.0)),
            (Unary::Clip { lo: -1.0, hi: 2.5 }, |v| v.clamp(-1.0, 2.5)),
            (Unary::LeakyRelu { alpha: 0.1 }, |v| if v >= 0.0 { v } else { 0.1 * v }),
            (Unary::Sigmoid, |v| 1.0 / (1.0 + (-v).exp())),
            (Unary::Tanh, f64::tanh),
        ];
        for (f, want) in cases {
            assert_eq!(Unary::from_params(&f.params()), Some(f));
            let mut y = [0u8; 36];
            unary_f32(f, &x, &mut y);
            for (i, &v) in values.iter().enumerate() {
                let got = f64::from(f32_at(&y, i));
                assert!((got - want(f64::from(v))).abs() < 1e-6, "{f:?}({v}) = {got}");
            }
        }
        let mut bad = Unary::Sigmoid.params();
        bad[0] = 9;
        assert_eq!(Unary::from_params(&bad), None);
        let nan = Unary::Clip { lo: f32::NAN, hi: 1.0 }.params();
        assert_eq!(Unary::from_params(&nan), None);
    }
}
