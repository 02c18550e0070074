//! Float convolution, for the layers a mixed int8 model keeps in float (the compressor's
//! sensitive-layer guard): channels-last input `[N, H, W, C]`, weights `[kh, kw, C/g, M]` (so
//! that, for one tap and one input channel, the weights of a group's output channels are one
//! contiguous run), optional bias `[M]`, output `[N, OH, OW, M]`. Depthwise layers (one input
//! and one output channel per group) walk all channels as one group.
//!
//! Every output is `bias + Σ x·w`, summed tap by tap, then input channel by input channel, in
//! f32 with a separate multiply and add (no fused multiply-add): every path below performs the
//! same operations in the same order. The portable path accumulates one pixel's channels in 8-lane
//! groups; on x86-64 with AVX2, 8 neighbouring pixels × 8 channels accumulate in registers, so
//! each weight load feeds 8 pixels (a group's last channels, fewer than 8, under a mask; the
//! row's last pixels take the portable path); blocks with no tap in the padding read at offsets
//! into one window checked once.

use super::conv::ConvShape;
use super::{f32_at, widest};

widest! {
    /// `y = conv(x, w) + bias`, all little-endian float32 bytes.
    pub fn conv_f32(s: &ConvShape, x: &[u8], w: &[u8], bias: Option<&[u8]>, y: &mut [u8]) {
        let (cg, mg) = (s.c / s.groups, s.m / s.groups);
        // Depthwise: output channel m reads input channel m, weight [tap][m]: one group of all.
        let depthwise = cg == 1 && mg == 1;
        let group_len = if depthwise { s.m } else { mg };
        let mut acc = [0f32; BLOCK];
        for b in 0..s.n {
            for oy in 0..s.oh {
                // Pixels done by the AVX2 blocks (none elsewhere).
                #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
                let mut ox = 0;
                #[cfg(target_arch = "x86_64")]
                if super::conv_avx2::avx2_available() {
                    while ox + avx2::PIXELS <= s.ow {
                        let pixels = Pixel { s, x, w, bias, b, oy, ox, depthwise };
                        for g0 in (0..s.m).step_by(group_len) {
                            for m0 in (g0..g0 + group_len).step_by(avx2::LANES) {
                                let n = (g0 + group_len - m0).min(avx2::LANES);
                                // SAFETY: avx2_available() checked that this CPU runs AVX2 code.
                                unsafe { avx2::block(&pixels, m0, n, y) };
                            }
                        }
                        ox += avx2::PIXELS;
                    }
                }
                for ox in ox..s.ow {
                    let at = ((b * s.oh + oy) * s.ow + ox) * s.m;
                    let out = &mut y[4 * at..4 * (at + s.m)];
                    let pixel = Pixel { s, x, w, bias, b, oy, ox, depthwise };
                    for g0 in (0..s.m).step_by(group_len) {
                        for m0 in (g0..g0 + group_len).step_by(BLOCK) {
                            pixel.block(m0, (g0 + group_len - m0).min(BLOCK), &mut acc, out);
                        }
                    }
                }
            }
        }
    }
}

/// 8 pixels × 8 channels in AVX registers.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;

    use super::Pixel;

    pub(super) const LANES: usize = 8;
    pub(super) const PIXELS: usize = 8;

    /// Pixels `p.ox..p.ox + 8` of `p`'s row × output channels `m0..m0 + n` (within one group,
    /// 1 ≤ n ≤ 8) into `y`: the portable path's operations, 8 lanes at a time. Fewer than 8
    /// channels (a group's last ones) load and store under a mask, so no pixel falls back to the
    /// portable path (a 1×1 conv to 28 channels spent most of its time there).
    ///
    /// # Safety
    /// The CPU must run AVX2 code.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn block(p: &Pixel<'_>, m0: usize, n: usize, y: &mut [u8]) {
        let s = p.s;
        let (cg, mg) = (s.c / s.groups, s.m / s.groups);
        let whole = n == LANES;
        // Lane j is on when j < n.
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        // A macro, not a closure: a closure would not inherit this function's AVX2 and would
        // call the intrinsic instead of inlining it.
        macro_rules! load {
            ($bytes:expr, $at:expr) => {{
                let b = &$bytes[4 * $at..4 * ($at + n)];
                if whole {
                    // SAFETY: `b` holds 8 floats' bytes; loadu needs no alignment.
                    unsafe { _mm256_loadu_ps(b.as_ptr().cast()) }
                } else {
                    // SAFETY: `b` holds the n floats of the lanes the mask turns on; maskload
                    // reads no other lane and needs no alignment.
                    unsafe { _mm256_maskload_ps(b.as_ptr().cast(), mask) }
                }
            }};
        }
        let init = match p.bias {
            Some(bias) => load!(bias, m0),
            None => _mm256_setzero_ps(),
        };
        // Eight named accumulators (an array indexed in a loop would live in memory): eight
        // independent add chains keep the adder busy.
        let (mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7) =
            (init, init, init, init, init, init, init, init);
        // acc_q += x(at_q) · wv for each pixel q whose tap is inside the input (`ats.q` is Some).
        macro_rules! step {
            ($acc:ident, $at:expr, $x:expr, $wv:expr) => {
                if let Some(at) = $at {
                    $acc = _mm256_add_ps($acc, _mm256_mul_ps($x(at), $wv));
                }
            };
        }
        macro_rules! steps {
            ($x:expr, $wv:expr, $ats:ident) => {
                step!(a0, $ats.0, $x, $wv);
                step!(a1, $ats.1, $x, $wv);
                step!(a2, $ats.2, $x, $wv);
                step!(a3, $ats.3, $x, $wv);
                step!(a4, $ats.4, $x, $wv);
                step!(a5, $ats.5, $x, $wv);
                step!(a6, $ats.6, $x, $wv);
                step!(a7, $ats.7, $x, $wv);
            };
        }
        // The input channels one output channel reads at a pixel.
        let (first, run) = if p.depthwise { (m0, n) } else { (m0 / mg * cg, cg) };
        if let Some(window) = interior(p, first, run) {
            // No tap in the padding (most blocks): the same sums from offsets into the block's
            // input window, bounds-checked once here instead of per pixel and tap.
            let x = &p.x[4 * window.start..4 * window.end];
            let dx = s.stride.1 * s.c;
            for ky in 0..s.kh {
                for kx in 0..s.kw {
                    let tap = ky * s.kw + kx;
                    let t = (ky * s.dilation.0 * s.w + kx * s.dilation.1) * s.c;
                    let ats = (
                        Some(t),
                        Some(t + dx),
                        Some(t + 2 * dx),
                        Some(t + 3 * dx),
                        Some(t + 4 * dx),
                        Some(t + 5 * dx),
                        Some(t + 6 * dx),
                        Some(t + 7 * dx),
                    );
                    if p.depthwise {
                        let wv = load!(p.w, tap * s.m + m0);
                        let xv = |at: usize| load!(x, at);
                        steps!(xv, wv, ats);
                        continue;
                    }
                    for ci in 0..cg {
                        let wv = load!(p.w, (tap * cg + ci) * s.m + m0);
                        let xv = |at: usize| {
                            // SAFETY: at + ci ≤ t + 7·dx + cg − 1, the offset of the last
                            // pixel's last tap's last channel, which `interior` put inside `x`;
                            // read_unaligned needs no alignment.
                            let v = unsafe { x.as_ptr().cast::<f32>().add(at + ci).read_unaligned() };
                            _mm256_set1_ps(v)
                        };
                        steps!(xv, wv, ats);
                    }
                }
            }
        } else {
            for ky in 0..s.kh {
                let iy = (p.oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                if iy >= s.h {
                    continue;
                }
                for kx in 0..s.kw {
                    let tap = ky * s.kw + kx;
                    // Where each pixel's tap reads (None: in the padding).
                    let at = |q: usize| {
                        let ix = ((p.ox + q) * s.stride.1 + kx * s.dilation.1).wrapping_sub(s.pad.1);
                        (ix < s.w).then(|| ((p.b * s.h + iy) * s.w + ix) * s.c)
                    };
                    if p.depthwise {
                        let taps = (at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7));
                        let wv = load!(p.w, tap * s.m + m0);
                        let x = |at: usize| load!(p.x, at + first);
                        steps!(x, wv, taps);
                        continue;
                    }
                    // Each pixel's group of input channels at this tap, bounds-checked once here
                    // rather than at each of its channels' broadcasts.
                    let start =
                        |q: usize| at(q).map(|a| p.x[4 * (a + first)..4 * (a + first + run)].as_ptr().cast::<f32>());
                    let taps = (start(0), start(1), start(2), start(3), start(4), start(5), start(6), start(7));
                    for ci in 0..cg {
                        let wv = load!(p.w, (tap * cg + ci) * s.m + m0);
                        // SAFETY: each pointer starts a run of cg floats' bytes checked above and
                        // ci < cg; read_unaligned needs no alignment.
                        let x = |start: *const f32| _mm256_set1_ps(unsafe { start.add(ci).read_unaligned() });
                        steps!(x, wv, taps);
                    }
                }
            }
        }
        let acc = [a0, a1, a2, a3, a4, a5, a6, a7];
        for (q, a) in acc.iter().enumerate() {
            let at = ((p.b * s.oh + p.oy) * s.ow + p.ox + q) * s.m + m0;
            let out = &mut y[4 * at..4 * (at + n)];
            if whole {
                // SAFETY: `out` holds 8 floats' bytes; storeu needs no alignment.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().cast(), *a) };
            } else {
                // SAFETY: `out` holds the n floats of the lanes the mask turns on; maskstore
                // writes no other lane and needs no alignment.
                unsafe { _mm256_maskstore_ps(out.as_mut_ptr().cast(), mask, *a) };
            }
        }
    }

    /// The stretch of input floats that every tap of `p`'s 8 pixels reads, channels
    /// `first..first + run` at each input pixel, when none of those taps falls in the padding:
    /// None at the borders.
    fn interior(p: &Pixel<'_>, first: usize, run: usize) -> Option<core::ops::Range<usize>> {
        let s = p.s;
        let iy = (p.oy * s.stride.0).checked_sub(s.pad.0)?;
        let ix = (p.ox * s.stride.1).checked_sub(s.pad.1)?;
        let last_y = iy + (s.kh - 1) * s.dilation.0;
        let last_x = ix + (PIXELS - 1) * s.stride.1 + (s.kw - 1) * s.dilation.1;
        let at = |y: usize, x: usize| ((p.b * s.h + y) * s.w + x) * s.c + first;
        (last_y < s.h && last_x < s.w).then(|| at(iy, ix)..at(last_y, last_x) + run)
    }
}

/// Output channels accumulated at once (on the stack).
const BLOCK: usize = 512;

/// One output pixel's inputs.
#[derive(Clone, Copy)]
struct Pixel<'a> {
    s: &'a ConvShape,
    x: &'a [u8],
    w: &'a [u8],
    bias: Option<&'a [u8]>,
    b: usize,
    oy: usize,
    ox: usize,
    depthwise: bool,
}

impl Pixel<'_> {
    /// Output channels `m0..m0 + n` (within one group, n ≤ [`BLOCK`]) into `out`.
    #[inline(always)]
    fn block(&self, m0: usize, n: usize, acc: &mut [f32; BLOCK], out: &mut [u8]) {
        let s = self.s;
        let (cg, mg) = (s.c / s.groups, s.m / s.groups);
        let acc = &mut acc[..n];
        match self.bias {
            Some(bias) => acc.iter_mut().enumerate().for_each(|(j, a)| *a = f32_at(bias, m0 + j)),
            None => acc.fill(0.0),
        }
        for ky in 0..s.kh {
            let iy = (self.oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
            if iy >= s.h {
                continue;
            }
            for kx in 0..s.kw {
                let ix = (self.ox * s.stride.1 + kx * s.dilation.1).wrapping_sub(s.pad.1);
                if ix >= s.w {
                    continue;
                }
                let tap = ky * s.kw + kx;
                let at = ((self.b * s.h + iy) * s.w + ix) * s.c;
                if self.depthwise {
                    let xs = &self.x[4 * (at + m0)..4 * (at + m0 + n)];
                    let ws = &self.w[4 * (tap * s.m + m0)..4 * (tap * s.m + m0 + n)];
                    lanes(acc, ws, |a, j, w| *a += le(&xs[4 * j..]) * w);
                    continue;
                }
                let first = at + m0 / mg * cg;
                for (ci, xb) in self.x[4 * first..4 * (first + cg)].chunks_exact(4).enumerate() {
                    let (xv, row) = (le(xb), (tap * cg + ci) * s.m + m0);
                    lanes(acc, &self.w[4 * row..4 * (row + n)], |a, _, w| *a += xv * w);
                }
            }
        }
        for (o, a) in out[4 * m0..4 * (m0 + n)].chunks_exact_mut(4).zip(acc.iter()) {
            o.copy_from_slice(&a.to_le_bytes());
        }
    }
}

/// `f(acc[j], j, w[j])` for every lane, the weights `w` as little-endian float32 bytes: in
/// groups of 8 lanes (one AVX register; shorter fixed loops vectorize without the shuffling a
/// long unrolled one gets), then the rest one by one.
#[inline(always)]
fn lanes(acc: &mut [f32], w: &[u8], f: impl Fn(&mut f32, usize, f32)) {
    let whole = acc.len() / 8 * 8;
    let (head, tail) = acc.split_at_mut(whole);
    for (i, (a, wb)) in head.chunks_exact_mut(8).zip(w.chunks_exact(32)).enumerate() {
        for j in 0..8 {
            f(&mut a[j], 8 * i + j, le(&wb[4 * j..]));
        }
    }
    for (j, (a, wb)) in tail.iter_mut().zip(w[4 * whole..].chunks_exact(4)).enumerate() {
        f(a, whole + j, le(wb));
    }
}

/// The little-endian float32 at the start of `b` (as one unaligned load on a little-endian CPU:
/// the byte-by-byte form vectorizes into shuffles).
#[inline(always)]
fn le(b: &[u8]) -> f32 {
    let b = &b[..4];
    #[cfg(target_endian = "little")]
    // SAFETY: `b` has 4 readable bytes; `read_unaligned` needs no alignment; every bit pattern
    // is an f32.
    return unsafe { b.as_ptr().cast::<f32>().read_unaligned() };
    #[cfg(not(target_endian = "little"))]
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    /// Random shapes (groups, depthwise, stride, dilation, padding, more channels than a block)
    /// against the ONNX definition summed in f64: within float rounding.
    #[test]
    fn float_conv_equals_the_onnx_definition() {
        let mut next = super::super::reference::draws(0x2545_F491_4F6C_DD1D);
        let mut tested = 0;
        for case in 0..120 {
            let (kh, kw) = (1 + next(5), 1 + next(5));
            let (stride, dilation, pad) = ((1 + next(2), 1 + next(2)), (1 + next(2), 1 + next(2)), (next(3), next(3)));
            let (groups, cg, mg) = match case % 3 {
                0 => (1, 1 + next(8), 1 + next(if case % 9 == 0 { 300 } else { 40 })),
                1 => (2 + next(3), 1 + next(4), 1 + next(6)),
                _ => (1 + next(300), 1, 1), // depthwise
            };
            let (h, w) = (1 + next(12), 1 + next(12));
            let n = 1 + next(2);
            let Some(s) =
                ConvShape::fitted(n, (cg * groups, mg * groups, groups), (h, w), (kh, kw), stride, dilation, pad)
            else {
                continue;
            };
            let value = |next: &mut dyn FnMut(usize) -> usize| next(2001) as f32 / 1000.0 - 1.0;
            let xs: Vec<f32> = (0..s.n * h * w * s.c).map(|_| value(&mut next)).collect();
            let ws: Vec<f32> = (0..kh * kw * cg * s.m).map(|_| value(&mut next)).collect();
            let bs: Vec<f32> = (0..s.m).map(|_| value(&mut next)).collect();
            let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
            let mut y = std::vec![0u8; 4 * s.n * s.oh * s.ow * s.m];
            conv_f32(&s, &bytes(&xs), &bytes(&ws), Some(&bytes(&bs)), &mut y);
            for n in 0..s.n {
                for oy in 0..s.oh {
                    for ox in 0..s.ow {
                        for m in 0..s.m {
                            let g = m / mg;
                            let mut want = f64::from(bs[m]);
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * stride.0 + ky * dilation.0) as i64 - pad.0 as i64;
                                    let ix = (ox * stride.1 + kx * dilation.1) as i64 - pad.1 as i64;
                                    if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                                        continue;
                                    }
                                    for ci in 0..cg {
                                        let xv = xs[((n * h + iy as usize) * w + ix as usize) * s.c + g * cg + ci];
                                        let wv = ws[((ky * kw + kx) * cg + ci) * s.m + m];
                                        want += f64::from(xv) * f64::from(wv);
                                    }
                                }
                            }
                            let got = f64::from(f32_at(&y, ((n * s.oh + oy) * s.ow + ox) * s.m + m));
                            let terms = (kh * kw * cg + 1) as f64;
                            assert!(
                                (got - want).abs() <= 1e-6 * terms,
                                "case {case} {s:?} at {n},{oy},{ox},{m}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
            tested += 1;
        }
        assert!(tested >= 60, "only {tested} shapes tested");
    }

    /// Every path performs the same operations in the same order, so the AVX2 blocks (interior
    /// ones from their checked window, border ones tap by tap) give the portable path's bits, on
    /// inputs wide enough for interior blocks (BlazeFace's first layer: 5×5, stride 2, 3 → 24).
    #[test]
    fn simd_blocks_give_the_portable_paths_bits() {
        let mut next = super::super::reference::draws(0x9E37_79B9_7F4A_7C15);
        let mut shapes = std::vec![(3, 24, 1, 5, 2, 1)];
        for case in 0..24 {
            let (c, m, groups) = match case % 3 {
                0 => (1 + next(5), 1 + next(30), 1),
                1 => (2 * (1 + next(3)), 2 * (1 + next(9)), 2),
                _ => (1 + next(40), 0, 0), // depthwise: m = c, groups = c
            };
            shapes.push((c, m, groups, 1 + next(5), 1 + next(2), next(3)));
        }
        for (case, &(c, m, groups, k, stride, pad)) in shapes.iter().enumerate() {
            let (m, groups) = if groups == 0 { (c, c) } else { (m, groups) };
            let (h, w) = (20 + next(20), 24 + next(40));
            let s = ConvShape::fitted(1, (c, m, groups), (h, w), (k, k), (stride, stride), (1, 1), (pad, pad)).unwrap();
            let value = |next: &mut dyn FnMut(usize) -> usize| next(2001) as f32 / 1000.0 - 1.0;
            let bytes = |n: usize, next: &mut dyn FnMut(usize) -> usize| {
                (0..n).flat_map(|_| value(next).to_le_bytes()).collect::<Vec<u8>>()
            };
            let (x, wt, bias) =
                (bytes(h * w * c, &mut next), bytes(k * k * (c / groups) * m, &mut next), bytes(m, &mut next));
            let mut y = std::vec![0u8; 4 * s.oh * s.ow * m];
            conv_f32(&s, &x, &wt, Some(&bias), &mut y);
            let (depthwise, mut acc) = (c / groups == 1 && m / groups == 1, [0f32; BLOCK]);
            let group_len = if depthwise { m } else { m / groups };
            for (oy, ox) in (0..s.oh).flat_map(|oy| (0..s.ow).map(move |ox| (oy, ox))) {
                let mut want = std::vec![0u8; 4 * m];
                let pixel = Pixel { s: &s, x: &x, w: &wt, bias: Some(&bias), b: 0, oy, ox, depthwise };
                for g0 in (0..m).step_by(group_len) {
                    pixel.block(g0, group_len, &mut acc, &mut want);
                }
                let at = 4 * (oy * s.ow + ox) * m;
                assert_eq!(&y[at..at + 4 * m], &want[..], "case {case} {s:?} at {oy},{ox}");
            }
        }
    }
}
