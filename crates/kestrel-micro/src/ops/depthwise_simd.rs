//! The depthwise convolution (one filter per channel, channels-last) on vector registers, for
//! every CPU with a fast path (`depthwise_x86`: AVX-512 VNNI, AVX2; `depthwise_aarch64`: NEON):
//! one kernel over a register of `LANES` i32 channel sums ([`Lanes`]). The input bytes of a tap
//! are zero-extended to 16 bits and multiplied with the weights, packed once per model, into
//! 32-bit sums that stay in registers over all taps (the portable kernel adds each tap's
//! products into memory). The zero point is folded out as in the dense kernels:
//! Σ (x − x_zp)·w = Σ x·w − x_zp·Σ w, and taps in the padding multiply a register of x_zp,
//! which cancels. Four pixels of a row go at once where all their taps lie inside the row, so
//! each filter load feeds four multiply-adds. Requantization runs the reference's float
//! operations in its order: bit-identical results (each architecture's test).

use super::conv::{offset, ConvShape};

/// Channels per block of the prepared constants (the widest register's).
const BLOCK: usize = 16;
/// Pixels per step inside a row.
const P: usize = 4;

/// Whether the kernel takes the shape: depthwise with one filter per channel (multiplier 1).
pub fn supports(s: &ConvShape) -> bool {
    s.groups == s.c && s.m == s.c
}

/// Channels rounded up to whole blocks.
fn padded(c: usize) -> usize {
    c.div_ceil(BLOCK) * BLOCK
}

/// Bytes of prepared constants: per channel (padded) an i32 offset and an f32 multiplier, then
/// per tap and channel the weight as a little-endian i32 (`[w, 0]` as two i16).
pub fn prepared_len(s: &ConvShape) -> usize {
    4 * padded(s.c) * (2 + s.kh * s.kw)
}

/// Writes the constants: offsets = bias − x_zp·Σ w, multipliers, weights by tap.
pub fn prepare(
    s: &ConvShape,
    w: &[u8],
    x_zero: i32,
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    out: &mut [u8],
) {
    let (cp, taps) = (padded(s.c), s.kh * s.kw);
    let out = &mut out[..prepared_len(s)];
    out.fill(0);
    for c in 0..s.c {
        let filter = &w[c * taps..(c + 1) * taps];
        out[4 * c..4 * c + 4].copy_from_slice(&offset(filter, bias, c, x_zero).to_le_bytes());
        out[4 * (cp + c)..4 * (cp + c) + 4].copy_from_slice(&multipliers(c).to_le_bytes());
        for (t, &v) in filter.iter().enumerate() {
            let at = 4 * ((2 + t) * cp + c);
            // The low i16 is the weight, the high one zero.
            out[at..at + 4].copy_from_slice(&(i32::from(i16::from(v as i8) as u16)).to_le_bytes());
        }
    }
}

/// The operations the kernel needs from a register of `LANES` i32 channel sums (`V`), inputs
/// (`X`) and weights (`W`). Every function is inlined into a caller compiled with the features
/// it needs.
pub(crate) trait Lanes {
    const LANES: usize;
    type V: Copy;
    type X: Copy;
    type W: Copy;
    /// `LANES` i32 sums from `p` (the offsets).
    unsafe fn load(p: *const u8) -> Self::V;
    /// `LANES` weights from `p` (little-endian i32 `[w, 0]` pairs of i16, as prepared).
    unsafe fn load_w(p: *const u8) -> Self::W;
    /// `v` (0..=255) as the input of every lane.
    unsafe fn splat_x(v: i32) -> Self::X;
    /// `n` (1..=LANES) bytes at `p` zero-extended; bytes past `n` are not read.
    unsafe fn load_x(p: *const u8, n: usize) -> Self::X;
    /// `acc + x·w` per lane.
    unsafe fn mac(acc: Self::V, x: Self::X, w: Self::W) -> Self::V;
    /// The reference's requantization of `acc` with the `LANES` f32 multipliers at `mults`;
    /// stores `out.len()` (≤ LANES) bytes.
    unsafe fn store(acc: Self::V, mults: *const u8, y_zero: i32, out: &mut [u8]);
}

/// The convolution, `L::LANES` channels per register.
///
/// # Safety
/// The CPU features `L`'s operations need (the sizes are checked here).
#[inline(always)]
pub(crate) unsafe fn kernel<L: Lanes>(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    prepared: &[u8],
    y: &mut [u8],
    y_zero: i32,
) {
    assert!(supports(s) && prepared.len() == prepared_len(s));
    assert!(x.len() >= s.n * s.h * s.w * s.c && y.len() >= s.n * s.oh * s.ow * s.c);
    let (c, cp, taps) = (s.c, padded(s.c), s.kh * s.kw);
    let consts = prepared.as_ptr();
    let weights = consts.wrapping_add(8 * cp);
    // SAFETY: the operations' features are the caller's; every load below reads inside
    // `prepared` (cb + LANES ≤ cp) or inside the image in x (n bytes).
    unsafe {
        let zp = L::splat_x(x_zero);
        // Output columns whose every tap lies inside the row, for the four-pixel steps.
        let span = (s.kw - 1) * s.dilation.1;
        let first = s.pad.1.div_ceil(s.stride.1).min(s.ow);
        let last = if s.w + s.pad.1 > span { ((s.w + s.pad.1 - span - 1) / s.stride.1 + 1).min(s.ow) } else { 0 };
        for cb in (0..c).step_by(L::LANES) {
            let n = L::LANES.min(c - cb);
            let offset = L::load(consts.add(4 * cb));
            let mults = consts.add(4 * (cp + cb));
            let filter = |t: usize| L::load_w(weights.add(4 * (t * cp + cb)));
            let load = |at: usize| L::load_x(x.as_ptr().add(at), n);
            for b in 0..s.n {
                for oy in 0..s.oh {
                    let out_row = (b * s.oh + oy) * s.ow;
                    // The input row of filter row ky, or None in the padding.
                    let row = |ky: usize| {
                        let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                        (iy < s.h).then_some((b * s.h + iy) * s.w)
                    };
                    let mut ox = 0;
                    while ox < s.ow {
                        if ox >= first && ox + P <= last {
                            let mut acc = [offset; P];
                            for ky in 0..s.kh {
                                let r = row(ky);
                                for kx in 0..s.kw {
                                    let f = filter(ky * s.kw + kx);
                                    for (i, a) in acc.iter_mut().enumerate() {
                                        let xv = match r {
                                            Some(r) => {
                                                load((r + (ox + i) * s.stride.1 + kx * s.dilation.1 - s.pad.1) * c + cb)
                                            }
                                            None => zp,
                                        };
                                        *a = L::mac(*a, xv, f);
                                    }
                                }
                            }
                            for (i, &a) in acc.iter().enumerate() {
                                let at = (out_row + ox + i) * c + cb;
                                L::store(a, mults, y_zero, &mut y[at..at + n]);
                            }
                            ox += P;
                            continue;
                        }
                        let mut acc = offset;
                        for t in 0..taps {
                            let xv = match s.input_at(oy, ox, t / s.kw, t % s.kw) {
                                Some((iy, ix)) => load(((b * s.h + iy) * s.w + ix) * c + cb),
                                None => zp,
                            };
                            acc = L::mac(acc, xv, filter(t));
                        }
                        let at = (out_row + ox) * c + cb;
                        L::store(acc, mults, y_zero, &mut y[at..at + n]);
                        ox += 1;
                    }
                }
            }
        }
    }
}

/// The fast kernels' test: random depthwise shapes — kernels 1 to 7 wide, strides, dilations,
/// padding wider than the input, channel counts around whole registers, rows with and without
/// four-pixel steps — each run through `run` and compared byte for byte with the portable
/// kernel. Returns how many were compared (at least 200, checked).
#[cfg(test)]
#[allow(clippy::type_complexity)]
pub(crate) fn check_random_shapes(run: impl Fn(&ConvShape, &[u8], i32, &[u8], &[u8], &[f32], &mut [u8], i32)) -> usize {
    extern crate std;
    use std::vec::Vec;
    let mut next = super::reference::draws(0xD3F7_11AE_0042_9E15);
    let mut tested = 0;
    for case in 0..300 {
        let c = match case % 4 {
            0 => 16 * (1 + next(4)),
            1 => 1 + next(15),
            _ => 1 + next(100),
        };
        let (kh, kw) = (1 + next(7), 1 + next(7));
        let (stride, dilation) = ((1 + next(2), 1 + next(2)), (1 + next(2), 1 + next(2)));
        let pad = (next(4), next(4));
        let (h, w) = (1 + next(12), 1 + next(30));
        let Some(s) = ConvShape::fitted(1 + next(2), (c, c, c), (h, w), (kh, kw), stride, dilation, pad) else {
            continue;
        };
        let x: Vec<u8> = (0..s.n * s.h * s.w * c).map(|_| next(256) as u8).collect();
        let wt: Vec<u8> = (0..c * kh * kw).map(|_| next(256) as u8).collect();
        let bias: Vec<u8> = (0..c).flat_map(|_| (next(1 << 20) as i32 - (1 << 19)).to_le_bytes()).collect();
        let mults: Vec<f32> = (0..c).map(|_| (1 + next(1000)) as f32 * 1e-5).collect();
        let (xz, yz) = (next(256) as i32, next(256) as i32);
        let mut want = std::vec![0u8; s.n * s.oh * s.ow * c];
        super::depthwise::depthwise(&s, &x, xz, &wt, Some(&bias), |i| mults[i], &mut want, yz);
        let mut got = std::vec![0u8; want.len()];
        run(&s, &x, xz, &wt, &bias, &mults, &mut got, yz);
        assert_eq!(got, want, "case {case}: {s:?}");
        tested += 1;
    }
    assert!(tested >= 200, "only {tested} shapes tested");
    tested
}
