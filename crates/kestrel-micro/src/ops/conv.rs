//! QLinearConv: uint8 activations (NHWC), int8 symmetric per-channel weights (OHWI), int32 bias.
//!
//! Channels-last, as the SIMD kernels want it: the input channels of one position are
//! contiguous, so 4 of them form each 4-byte group the dot-product instructions (`vpdpbusd`,
//! `sdot`) multiply at once, and a filter row `[kh][kw][C/g]` is one contiguous run.
//!
//! The portable kernel (any CPU, the Cortex-M included, and the reference the fast paths
//! match): per output pixel, its input patch is gathered once on the stack in the filter's
//! order, then every output channel is one contiguous dot product with its filter row.

use super::{i32_at, requantize};

/// Geometry of one convolution. x is `[n][h][w][c]`, the weights `[m][kh][kw][c/groups]`,
/// y `[n][oh][ow][m]`.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub m: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    /// (top, left) padding.
    pub pad: (usize, usize),
    pub groups: usize,
}

impl ConvShape {
    /// Output rows `r0..r1` of image 0 as a convolution of their own, and where in the input
    /// it starts (bytes): its input begins at the first row those rows read, with the padding
    /// above adjusted. The same weights and prepared constants serve it (they depend on the
    /// channels and the kernel only).
    pub fn rows(&self, r0: usize, r1: usize) -> (ConvShape, usize) {
        let top = r0 * self.stride.0;
        let first = top.saturating_sub(self.pad.0).min(self.h);
        let pad = (self.pad.0.saturating_sub(top), self.pad.1);
        (ConvShape { n: 1, h: self.h - first, oh: r1 - r0, pad, ..*self }, first * self.w * self.c)
    }

    /// Input channels and output channels per group, and the filter length `kh·kw·C/g`.
    pub fn per_group(&self) -> (usize, usize, usize) {
        let cg = self.c / self.groups;
        (cg, self.m / self.groups, cg * self.kh * self.kw)
    }

    /// Where tap (ky, kx) of output pixel (oy, ox) reads: the input position, or `None` in the padding.
    #[inline(always)]
    pub(crate) fn input_at(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy * self.stride.0 + ky * self.dilation.0).wrapping_sub(self.pad.0);
        let ix = (ox * self.stride.1 + kx * self.dilation.1).wrapping_sub(self.pad.1);
        (iy < self.h && ix < self.w).then_some((iy, ix))
    }
}

#[cfg(test)]
impl ConvShape {
    /// A test shape with its output size worked out (padding `pad` on both sides); `None` when
    /// the dilated kernel does not fit the padded input.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fitted(
        n: usize,
        (c, m, groups): (usize, usize, usize),
        (h, w): (usize, usize),
        (kh, kw): (usize, usize),
        stride: (usize, usize),
        dilation: (usize, usize),
        pad: (usize, usize),
    ) -> Option<ConvShape> {
        let span = |n: usize, k: usize, d: usize, p: usize| (n + 2 * p).checked_sub((k - 1) * d + 1);
        let (sh, sw) = (span(h, kh, dilation.0, pad.0)?, span(w, kw, dilation.1, pad.1)?);
        let (oh, ow) = (sh / stride.0 + 1, sw / stride.1 + 1);
        Some(ConvShape { n, c, h, w, m, oh, ow, kh, kw, stride, dilation, pad, groups })
    }
}

/// Largest filter (`kh·kw·C/g`) whose patch the portable kernel gathers on the stack; longer
/// filters are computed tap by tap ([`pixel`]).
const PATCH: usize = 4096;

/// The raw uint8 patch of output pixel (oy, ox) of image `b`, group `g`, in the filter's
/// `[kh][kw][C/g]` order; taps in the padding hold `pad` (the input zero point).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn gather_patch(s: &ConvShape, x: &[u8], pad: u8, b: usize, g: usize, oy: usize, ox: usize, out: &mut [u8]) {
    let cg = s.c / s.groups;
    let row_len = s.kw * cg;
    let ix0 = (ox * s.stride.1).wrapping_sub(s.pad.1);
    // A filter row lies inside the input row: its taps are one contiguous run (channels-last).
    let whole_rows = s.dilation.1 == 1 && s.groups == 1 && ix0 < s.w && ix0 + s.kw <= s.w;
    for ky in 0..s.kh {
        let dst = &mut out[ky * row_len..(ky + 1) * row_len];
        let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
        if whole_rows && iy < s.h {
            let at = ((b * s.h + iy) * s.w + ix0) * s.c;
            dst.copy_from_slice(&x[at..at + row_len]);
            continue;
        }
        for kx in 0..s.kw {
            let dst = &mut dst[kx * cg..(kx + 1) * cg];
            match s.input_at(oy, ox, ky, kx) {
                Some((iy, ix)) => {
                    let at = ((b * s.h + iy) * s.w + ix) * s.c + g * cg;
                    dst.copy_from_slice(&x[at..at + cg]);
                }
                None => dst.fill(pad),
            }
        }
    }
}

/// Bytes of this CPU's fast kernel's prepared constants for the convolution (0: it runs on the
/// portable kernel).
pub fn prepared_len(s: &ConvShape) -> usize {
    #[cfg(target_arch = "x86_64")]
    if super::depthwise_simd::supports(s) && super::depthwise_x86::available() {
        return super::depthwise_simd::prepared_len(s);
    }
    #[cfg(target_arch = "x86_64")]
    if super::conv_x86::supports(s) && super::conv_x86::vnni_available() {
        return super::conv_x86::layout(s).total;
    }
    #[cfg(target_arch = "x86_64")]
    if super::conv_avx2::supports(s) && super::conv_avx2::avx2_available() {
        return super::conv_avx2::layout(s).total;
    }
    #[cfg(target_arch = "aarch64")]
    if super::depthwise_simd::supports(s) && super::depthwise_aarch64::available() {
        return super::depthwise_simd::prepared_len(s);
    }
    #[cfg(target_arch = "aarch64")]
    if super::conv_aarch64::supports(s) && super::conv_aarch64::dotprod_available() {
        return super::conv_aarch64::layout(s).total;
    }
    let _ = s;
    0
}

/// Fills `out` (`prepared_len(s)` bytes) with the fast kernel's constants: per-channel offsets
/// and multipliers, and the filters repacked (done once per model, not per run).
pub fn prepare(
    s: &ConvShape,
    w: &[u8],
    x_zero: i32,
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if super::depthwise_simd::supports(s) && super::depthwise_x86::available() {
        return super::depthwise_simd::prepare(s, w, x_zero, bias, multipliers, out);
    }
    #[cfg(target_arch = "x86_64")]
    if super::conv_x86::supports(s) && super::conv_x86::vnni_available() {
        return prepare_constants(s, w, bias, &multipliers, x_zero, super::conv_x86::layout(s), out);
    }
    #[cfg(target_arch = "x86_64")]
    if super::conv_avx2::supports(s) && super::conv_avx2::avx2_available() {
        return prepare_constants(s, w, bias, &multipliers, x_zero, super::conv_avx2::layout(s), out);
    }
    #[cfg(target_arch = "aarch64")]
    if super::depthwise_simd::supports(s) && super::depthwise_aarch64::available() {
        return super::depthwise_simd::prepare(s, w, x_zero, bias, multipliers, out);
    }
    #[cfg(target_arch = "aarch64")]
    if super::conv_aarch64::supports(s) && super::conv_aarch64::dotprod_available() {
        // The kernel sums x − 128, so the zero point it sees is x_zp − 128.
        return prepare_constants(s, w, bias, &multipliers, x_zero - 128, super::conv_aarch64::layout(s), out);
    }
    let _ = (s, w, x_zero, bias, multipliers, out);
}

/// The convolution: on this CPU's fast kernel when `prepared` holds its constants (from
/// [`prepare`], `prepared_len(s)` bytes), else on the portable kernel.
#[allow(clippy::too_many_arguments)]
pub fn conv(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    prepared: Option<&[u8]>,
    y: &mut [u8],
    y_zero: i32,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = prepared.filter(|p| !p.is_empty() && p.len() == prepared_len(s)) {
        use super::{conv_avx2, conv_x86, depthwise_simd, depthwise_x86};
        // SAFETY: a non-zero prepared_len is the layout of the first kernel whose shape check and
        // CPU check pass, the same checks in the same order as here.
        return unsafe {
            if depthwise_simd::supports(s) && depthwise_x86::available() {
                depthwise_x86::depthwise(s, x, x_zero, p, y, y_zero)
            } else if conv_x86::supports(s) && conv_x86::vnni_available() {
                conv_x86::conv_vnni(s, x, x_zero, p, y, y_zero)
            } else {
                conv_avx2::conv_avx2(s, x, x_zero, p, y, y_zero)
            }
        };
    }
    #[cfg(target_arch = "aarch64")]
    if let Some(p) = prepared.filter(|p| !p.is_empty() && p.len() == prepared_len(s)) {
        if super::depthwise_simd::supports(s) && super::depthwise_aarch64::available() {
            return super::depthwise_aarch64::depthwise(s, x, x_zero, p, y, y_zero);
        }
        // SAFETY: a non-zero prepared_len (not depthwise's) means supports(s) and
        // dotprod_available().
        return unsafe { super::conv_aarch64::conv_sdot(s, x, x_zero, p, y, y_zero) };
    }
    let _ = prepared;
    conv_portable(s, x, x_zero, w, bias, multipliers, y, y_zero)
}

/// The portable kernel: the reference the fast paths match.
#[allow(clippy::too_many_arguments)]
pub fn conv_portable(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    y: &mut [u8],
    y_zero: i32,
) {
    let (_, mg, k) = s.per_group();
    // Depthwise has a kernel of its own; a core-only build (no `all-ops`: a microcontroller's)
    // runs it in the generic loop below instead, trading speed for 2.5 KB of flash.
    if cfg!(feature = "all-ops") && super::depthwise::supports(s) {
        return super::depthwise::depthwise(s, x, x_zero, w, bias, multipliers, y, y_zero);
    }
    let mut patch = [0u8; PATCH];
    let mut centred = [0i16; PATCH];
    for b in 0..s.n {
        for oy in 0..s.oh {
            for ox in 0..s.ow {
                let out = ((b * s.oh + oy) * s.ow + ox) * s.m;
                for g in 0..s.groups {
                    if k <= PATCH {
                        gather_patch(s, x, x_zero as u8, b, g, oy, ox, &mut patch[..k]);
                        // x − x_zp once per patch, as i16: the dot products below vectorize
                        // to 16-bit multiply-adds (or run as SMLAD pairs on a Cortex-M4/M7).
                        #[cfg(all(target_arch = "arm", feature = "cortex-m-dsp"))]
                        super::conv_cortex_m::centre(&patch[..k], x_zero, &mut centred[..k]);
                        #[cfg(not(all(target_arch = "arm", feature = "cortex-m-dsp")))]
                        for (c, &p) in centred.iter_mut().zip(&patch[..k]) {
                            *c = (i32::from(p) - x_zero) as i16;
                        }
                    }
                    for m in g * mg..(g + 1) * mg {
                        let filter = &w[m * k..(m + 1) * k];
                        let acc = if k <= PATCH {
                            dot16(&centred[..k], filter)
                        } else {
                            pixel(s, x, x_zero, filter, b, g, oy, ox)
                        };
                        let acc = acc.wrapping_add(bias.map_or(0, |bb| i32_at(bb, m)));
                        y[out + m] = requantize(acc, multipliers(m), y_zero);
                    }
                }
            }
        }
    }
}

/// Σ c·w in i32 for a patch already centred on the zero point (|c·w| ≤ 255·128).
fn dot16(centred: &[i16], filter: &[u8]) -> i32 {
    #[cfg(all(target_arch = "arm", feature = "cortex-m-dsp"))]
    return super::conv_cortex_m::dot16(centred, filter);
    #[cfg(not(all(target_arch = "arm", feature = "cortex-m-dsp")))]
    centred.iter().zip(filter).fold(0i32, |s, (&c, &q)| s.wrapping_add(i32::from(c) * i32::from(q as i8)))
}

/// Σ (x − x_zp)·w in i32 (|x − x_zp| ≤ 255, |w| ≤ 128: no product overflows, and a filter of
/// k ≤ 2¹⁶ taps cannot overflow the sum).
fn dot(patch: &[u8], x_zero: i32, filter: &[u8]) -> i32 {
    patch.iter().zip(filter).fold(0i32, |s, (&p, &q)| s.wrapping_add((i32::from(p) - x_zero) * i32::from(q as i8)))
}

/// One output value of one output channel, tap by tap: the reference definition.
#[allow(clippy::too_many_arguments)]
fn pixel(s: &ConvShape, x: &[u8], x_zero: i32, filter: &[u8], b: usize, g: usize, oy: usize, ox: usize) -> i32 {
    let cg = s.c / s.groups;
    let mut acc = 0i32;
    for ky in 0..s.kh {
        for kx in 0..s.kw {
            if let Some((iy, ix)) = s.input_at(oy, ox, ky, kx) {
                let at = ((b * s.h + iy) * s.w + ix) * s.c + g * cg;
                let taps = &filter[(ky * s.kw + kx) * cg..(ky * s.kw + kx + 1) * cg];
                acc = acc.wrapping_add(dot(&x[at..at + cg], x_zero, taps));
            }
        }
    }
    acc
}

/// Most taps (kh·kw) the SIMD kernels read in place (their pointers live on the stack).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const MAX_TAPS: usize = 64;

/// How the SIMD kernels read one group's patches, in 4-byte groups ("quads") that each
/// dot-product instruction multiplies with 4 filter bytes.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quads {
    pub mode: Mode,
    pub taps: usize,
    /// Elements of one tap, and its quads (the last one padded with zero weights).
    pub len: usize,
    pub quads: usize,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl Quads {
    pub(crate) fn of(s: &ConvShape) -> Quads {
        let (cg, _, k) = s.per_group();
        let (mode, taps, len) = if cg.is_multiple_of(4) && s.kh * s.kw <= MAX_TAPS {
            (Mode::Taps, s.kh * s.kw, cg)
        } else if s.groups == 1 && s.dilation.1 == 1 && s.kh <= MAX_TAPS && s.kw * cg + 3 <= MAX_DIRECT {
            (Mode::Rows, s.kh, s.kw * cg)
        } else {
            (Mode::Patch, 1, k)
        };
        Quads { mode, taps, len, quads: len.div_ceil(4) }
    }

    /// Where tap `t` of output pixel (oy, ox) of image `b`, group `g` starts: in x, or `pad` (a
    /// run of the input zero point) when it lies in the padding. Direct reads only.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn tap(
        &self,
        s: &ConvShape,
        x: *const u8,
        pad: *const u8,
        b: usize,
        g: usize,
        (oy, ox): (usize, usize),
        (ky, kx): (usize, usize),
    ) -> *const u8 {
        match s.input_at(oy, ox, ky, kx) {
            Some((iy, ix)) => x.wrapping_add(((b * s.h + iy) * s.w + ix) * s.c + g * self.len),
            None => pad,
        }
    }
}

/// How the SIMD kernels' taps map onto the filter.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One tap per (ky, kx), its C/g channels a whole number of quads, read where it lies in x.
    Taps,
    /// One tap per filter row: kw·C bytes, contiguous in x when the row lies inside (one group,
    /// no horizontal dilation); the last quad takes a byte or three of the next pixel (its
    /// weights are zero). First layers with 1 or 3 channels.
    Rows,
    /// The whole patch gathered and read as one tap.
    Patch,
}

/// Most channels per group the SIMD kernels read in place (the zero-point run standing for
/// padding is this long).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const MAX_DIRECT: usize = 4096;
/// Longest filter the SIMD kernels gather as a patch (channels per group not a multiple of 4).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const MAX_PATCH: usize = 2048;

/// Whether the SIMD kernels handle this shape (at least 4 output channels per group:
/// depthwise convolutions stay on the portable kernel).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn simd_supports(s: &ConvShape) -> bool {
    let (cg, mg, k) = s.per_group();
    let q = Quads::of(s);
    mg >= 4
        && match q.mode {
            Mode::Taps => cg <= MAX_DIRECT,
            Mode::Rows => q.taps * 4 * q.quads <= MAX_PATCH,
            Mode::Patch => k <= MAX_PATCH,
        }
}

/// Where the SIMD kernels read `P` output pixels at a time: a pointer per (tap, pixel) to
/// `4·quads` bytes. From cheapest: a filter row's `kw` taps as one run of `kw·C` bytes (one
/// group, no horizontal dilation, every pixel's row inside the input); each tap where it lies
/// (channels per group a multiple of 4); filter rows where they lie, the others gathered
/// (`Mode::Rows`); or the gathered patch as one tap. Taps in the padding read a run of the zero
/// point.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) struct Reads<const P: usize> {
    s: ConvShape,
    q: Quads,
    x: *const u8,
    pad: [u8; MAX_DIRECT],
    /// Gathered patches, padded with zeros to whole quads (their weights are zero).
    patches: [[u8; MAX_PATCH]; P],
    /// Where each tap reads relative to a pixel's first tap, for pixels whose taps all lie inside.
    tap_offsets: [usize; MAX_TAPS],
    /// Taps-mode filters read a row (kw·C bytes) at a time: one group, no horizontal dilation,
    /// and small enough that a pixel at the edge gets its rows patched.
    row_runs: bool,
    pub ptrs: [[*const u8; P]; MAX_TAPS],
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl<const P: usize> Reads<P> {
    /// For `s` on input `x` (at least n·h·w·c bytes, checked) with zero point `x_zero`; the
    /// shape must pass [`simd_supports`] (checked).
    pub(crate) fn new(s: &ConvShape, x: &[u8], x_zero: i32) -> Self {
        assert!(simd_supports(s) && x.len() >= s.n * s.h * s.w * s.c);
        let q = Quads::of(s);
        let mut tap_offsets = [0usize; MAX_TAPS];
        for (t, off) in tap_offsets[..q.taps].iter_mut().enumerate() {
            *off = ((t / s.kw * s.dilation.0) * s.w + t % s.kw * s.dilation.1) * s.c;
        }
        Reads {
            s: *s,
            q,
            x: x.as_ptr(),
            pad: [x_zero as u8; MAX_DIRECT],
            patches: [[0u8; MAX_PATCH]; P],
            tap_offsets,
            row_runs: q.mode == Mode::Taps && s.groups == 1 && s.dilation.1 == 1 && s.kh * s.kw * s.c <= MAX_PATCH,
            ptrs: [[x.as_ptr(); P]; MAX_TAPS],
        }
    }

    /// Points `ptrs` at the reads of output pixels `p0..p0 + count` (flat over oh·ow; slots past
    /// the last repeat it) of image `b`, group `g`; returns (taps, quads per tap). Every pointer
    /// then has `4·quads` readable bytes (inside x, the zero-point run or a patch) until the next
    /// call, and the filters of the taps read follow each other in the packed order.
    pub(crate) fn step(&mut self, x: &[u8], b: usize, g: usize, p0: usize, count: usize) -> (usize, usize) {
        let (s, q) = (&self.s, self.q);
        let (span_y, span_x) = ((s.kh - 1) * s.dilation.0, (s.kw - 1) * s.dilation.1);
        let (mut oy, mut ox) = (p0 / s.ow, p0 % s.ow);
        // The common case, P pixels of one output row whose filter rows all lie inside x
        // horizontally: each row's reads are P runs `stride·C` bytes apart.
        let ix = (ox * s.stride.1).wrapping_sub(s.pad.1);
        if self.row_runs && count == P && ox + P <= s.ow && ix < s.w && ix + (P - 1) * s.stride.1 + s.kw <= s.w {
            for (ky, tap) in self.ptrs[..s.kh].iter_mut().enumerate() {
                let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                *tap = if iy < s.h {
                    let first = self.x.wrapping_add(((b * s.h + iy) * s.w + ix) * s.c);
                    core::array::from_fn(|i| first.wrapping_add(i * s.stride.1 * s.c))
                } else {
                    [self.pad.as_ptr(); P]
                };
            }
            return (s.kh, s.kw * q.quads);
        }
        let pixels: [(usize, usize); P] = core::array::from_fn(|i| {
            let here = (oy, ox);
            if i + 1 < count {
                ox += 1;
                if ox == s.ow {
                    (oy, ox) = (oy + 1, 0);
                }
            }
            here
        });
        // Filter rows read as runs: `run` bytes from a row's first (kw·C in x, or whole quads
        // for Rows), its quads consecutive in the packed filters.
        let runs = if self.row_runs {
            Some((s.kw * s.c, s.kw * q.quads))
        } else if q.mode == Mode::Rows {
            Some((4 * q.quads, q.quads))
        } else {
            None
        };
        if let Some((run, quads)) = runs {
            for (i, (&(oy, ox), patch)) in pixels.iter().zip(self.patches.iter_mut()).enumerate() {
                let ix = (ox * s.stride.1).wrapping_sub(s.pad.1);
                let row_inside = ix < s.w && ix + s.kw <= s.w;
                for (ky, tap) in self.ptrs[..s.kh].iter_mut().enumerate() {
                    let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                    // Wrapping: with iy or ix in the padding the index is not used.
                    let at = ((b * s.h).wrapping_add(iy).wrapping_mul(s.w).wrapping_add(ix)).wrapping_mul(s.c);
                    tap[i] = if iy >= s.h {
                        self.pad.as_ptr()
                    } else if row_inside && at + run <= x.len() {
                        self.x.wrapping_add(at)
                    } else {
                        // Partly in the padding, or the run's last quad would pass x's end
                        // (bytes of the patch row past kw·C stay zero: their weights are zero).
                        // Columns kx in lo..hi lie in x: one copy between two fills.
                        let dst = &mut patch[ky * run..ky * run + s.kw * s.c];
                        let ix = ix as isize;
                        let lo = (-ix).clamp(0, s.kw as isize);
                        let hi = (s.w as isize - ix).clamp(lo, s.kw as isize);
                        let first = (ix + lo) as usize;
                        let (lo, hi) = (lo as usize * s.c, hi as usize * s.c);
                        dst.fill(self.pad[0]);
                        if hi > lo {
                            let from = ((b * s.h + iy) * s.w + first) * s.c;
                            dst[lo..hi].copy_from_slice(&x[from..from + hi - lo]);
                        }
                        patch[ky * run..].as_ptr()
                    };
                }
            }
            (s.kh, quads)
        } else if q.mode == Mode::Taps {
            for (i, &(oy, ox)) in pixels.iter().enumerate() {
                let (iy, ix) = ((oy * s.stride.0).wrapping_sub(s.pad.0), (ox * s.stride.1).wrapping_sub(s.pad.1));
                if iy < s.h && iy + span_y < s.h && ix < s.w && ix + span_x < s.w {
                    let first = self.x.wrapping_add(((b * s.h + iy) * s.w + ix) * s.c + g * q.len);
                    for (tap, &off) in self.ptrs[..q.taps].iter_mut().zip(&self.tap_offsets) {
                        tap[i] = first.wrapping_add(off);
                    }
                } else {
                    for (t, tap) in self.ptrs[..q.taps].iter_mut().enumerate() {
                        tap[i] = q.tap(s, self.x, self.pad.as_ptr(), b, g, (oy, ox), (t / s.kw, t % s.kw));
                    }
                }
            }
            (q.taps, q.quads)
        } else {
            let k = q.len;
            for (patch, &(oy, ox)) in self.patches.iter_mut().zip(&pixels) {
                gather_patch(s, x, self.pad[0], b, g, oy, ox, &mut patch[..k]);
            }
            self.ptrs[0] = core::array::from_fn(|i| self.patches[i].as_ptr());
            (1, q.quads)
        }
    }
}

/// Where a fast kernel finds its prepared constants: i32 offsets and f32 multipliers of every
/// output channel (16 spare entries, so a block of 16 never reads past them), then the filters
/// of each group's blocks of `width` output channels, `block` bytes each, packed
/// `[tap][quad][channel][4]` (one quad of all `width` channels is `4·width` contiguous bytes).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub quads: Quads,
    pub width: usize,
    pub elem: usize,
    pub mults_at: usize,
    pub filters_at: usize,
    pub block: usize,
    pub total: usize,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl Layout {
    /// `width` output channels per block, weights of `elem` bytes (1: int8 quads for the
    /// dot-product instructions; 2: int16 pairs for `pmaddwd`, each quad as two pairs).
    pub(crate) fn new(s: &ConvShape, width: usize, elem: usize) -> Layout {
        let (_, mg, _) = s.per_group();
        let quads = Quads::of(s);
        let mults_at = 4 * (s.m + 16);
        let filters_at = 2 * mults_at;
        let block = quads.taps * quads.quads * width * 4 * elem;
        let total = filters_at + s.groups * mg.div_ceil(width) * block;
        Layout { quads, width, elem, mults_at, filters_at, block, total }
    }
}

/// Channel `c`'s constant term, bias − x_zp·Σ w: what the input's zero point adds to every sum.
/// Wrapping, as the sums themselves wrap (a file's bias is not to be trusted).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn offset(filter: &[u8], bias: Option<&[u8]>, c: usize, x_zero: i32) -> i32 {
    let wsum = filter.iter().fold(0i32, |a, &b| a.wrapping_add(i32::from(b as i8)));
    bias.map_or(0, |bb| i32_at(bb, c)).wrapping_sub(x_zero.wrapping_mul(wsum))
}

/// Writes `layout`'s constants into `out` for a kernel that sums inputs as they are minus
/// `zero`: offsets = bias − zero·Σw (the zero point folded out), multipliers, packed filters
/// (channels past a group's and elements past a tap's are zero).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn prepare_constants(
    s: &ConvShape,
    w: &[u8],
    bias: Option<&[u8]>,
    multipliers: &impl Fn(usize) -> f32,
    zero: i32,
    layout: Layout,
    out: &mut [u8],
) {
    let (_, mg, k) = s.per_group();
    let (q, width) = (layout.quads, layout.width);
    let out = &mut out[..layout.total];
    out.fill(0);
    for c in 0..s.m {
        let filter = &w[c * k..(c + 1) * k];
        out[4 * c..4 * c + 4].copy_from_slice(&offset(filter, bias, c, zero).to_le_bytes());
        out[layout.mults_at + 4 * c..layout.mults_at + 4 * c + 4].copy_from_slice(&multipliers(c).to_le_bytes());
        let (g, m) = (c / mg, c % mg);
        let packed = &mut out[layout.filters_at + (g * mg.div_ceil(width) + m / width) * layout.block..];
        let ch = m % width;
        for t in 0..q.taps {
            for (e, &v) in filter[t * q.len..(t + 1) * q.len].iter().enumerate() {
                let quad = t * q.quads + e / 4;
                if layout.elem == 1 {
                    packed[(quad * width + ch) * 4 + e % 4] = v;
                } else {
                    // Pair (e % 4) / 2 of the quad, lane e % 2, as a little-endian i16.
                    let at = 2 * (((quad * 2 + e % 4 / 2) * width + ch) * 2 + e % 2);
                    packed[at..at + 2].copy_from_slice(&i16::from(v as i8).to_le_bytes());
                }
            }
        }
    }
}

/// The SIMD kernels' test: random convolutions (groups, stride, dilation, padding, channels per
/// group a multiple of 4 or not, partial blocks of output channels, sometimes long filters),
/// each one `supports` takes run through `run` and compared byte for byte with the portable
/// kernel. Returns how many were compared.
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
#[allow(clippy::type_complexity)]
pub(crate) fn check_random_shapes(
    seed: u64,
    supports: impl Fn(&ConvShape) -> bool,
    run: impl Fn(&ConvShape, &[u8], i32, &[u8], &[u8], &[f32], &mut [u8], i32),
) -> usize {
    extern crate std;
    use std::vec::Vec;
    let mut next = super::reference::draws(seed);
    let mut tested = 0;
    for case in 0..400 {
        let (kh, kw) = (1 + next(5), 1 + next(5));
        let (stride, dilation) = ((1 + next(3), 1 + next(3)), (1 + next(2), 1 + next(2)));
        let pad = (next(3), next(3));
        let groups = 1 + next(3);
        let cg = match next(2) {
            0 => 4 * (1 + next(if case % 10 == 0 { 50 } else { 8 })),
            _ => 1 + next(if case % 10 == 0 { 200 } else { 24 }),
        };
        let mg = 1 + next(if case % 3 == 0 { 70 } else { 20 });
        let (h, w) = (1 + next(14), 1 + next(if case % 4 == 0 { 40 } else { 14 }));
        let n = 1 + next(2);
        let Some(s) = ConvShape::fitted(n, (cg * groups, mg * groups, groups), (h, w), (kh, kw), stride, dilation, pad)
        else {
            continue;
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
        let onnx = super::reference::qlinear_conv(&s, &x, xz, &wt, Some(&bias), |i| mults[i], yz);
        assert_eq!(want, onnx, "case {case}: the portable kernel differs from the ONNX definition: {s:?}");
        run(&s, &x, xz, &wt, &bias, &mults, &mut got, yz);
        assert_eq!(got, want, "case {case}: {s:?}");
        tested += 1;
    }
    tested
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_kernel_equals_the_onnx_definition() {
        // Stride 2, padding, dilation, groups: the gathered patch against the ONNX definition.
        let s = ConvShape {
            n: 1,
            c: 4,
            h: 9,
            w: 11,
            m: 4,
            oh: 5,
            ow: 5,
            kh: 3,
            kw: 3,
            stride: (2, 2),
            dilation: (1, 2),
            pad: (1, 1),
            groups: 2,
        };
        let x: [u8; 9 * 11 * 4] = core::array::from_fn(|i| ((i * 37) % 256) as u8);
        let w: [u8; 4 * 3 * 3 * 2] = core::array::from_fn(|i| ((i * 53) % 256) as u8);
        let mut y = [0u8; 5 * 5 * 4];
        conv_portable(&s, &x, 7, &w, None, |_| 0.01, &mut y, 128);
        assert_eq!(&y[..], &super::super::reference::qlinear_conv(&s, &x, 7, &w, None, |_| 0.01, 128)[..]);
    }

    /// A convolution computed as row ranges ([`ConvShape::rows`], how a host splits it across
    /// threads), through this CPU's kernel with its prepared constants, gives the whole
    /// convolution's bytes: split in 2, in 3 and into single rows, on random shapes.
    #[test]
    fn row_parts_give_the_whole_convolutions_bytes() {
        extern crate std;
        let tested = check_random_shapes(
            0x005E_ED0F_BA75,
            |s| s.n == 1,
            |s, x, xz, w, bias, mults, y, yz| {
                let mut prepared = std::vec![0u8; prepared_len(s)];
                prepare(s, w, xz, Some(bias), |i| mults[i], &mut prepared);
                let p = Some(&prepared[..]).filter(|p| !p.is_empty());
                conv(s, x, xz, w, Some(bias), |i| mults[i], p, y, yz);
                let row = s.ow * s.m;
                for parts in [2, 3, s.oh] {
                    let mut split = std::vec![0u8; y.len()];
                    for i in 0..parts.min(s.oh) {
                        let (r0, r1) = (s.oh * i / parts.min(s.oh), s.oh * (i + 1) / parts.min(s.oh));
                        let (rows, from) = s.rows(r0, r1);
                        let out = &mut split[r0 * row..r1 * row];
                        conv(&rows, &x[from..], xz, w, Some(bias), |i| mults[i], p, out, yz);
                    }
                    assert_eq!(&split[..], &y[..], "{parts} parts of {s:?}");
                }
            },
        );
        assert!(tested >= 100, "only {tested} shapes tested");
    }
}
