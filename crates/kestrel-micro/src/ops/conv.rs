//! QLinearConv: uint8 activations, int8 symmetric per-channel weights, int32 bias.
//!
//! Two loop orders, both without a heap. Usually (a filter of at most `PATCH` values): per
//! output pixel, its input patch is gathered once as i16 `x − x_zp` on the stack, then every
//! output channel is one contiguous dot product with its filter (i16 × i16 → i32, which
//! vectorizes to multiply-add pairs). Larger filters: per output channel, a tile of output rows
//! accumulates in i32 on the stack, each weight applied to a row segment at once.

use super::{i32_at, requantize};

/// Geometry of one convolution (NCHW).
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

/// Output channels per block of the SIMD row kernels' repacked filters.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const LANES: usize = 16;

/// One group's filters repacked for the SIMD row kernels (filters of ≤ 4 columns):
/// `packed[block][step = ci·kh + ky][lane][4]` holds tap `kx` of filter row (ci, ky) of output
/// channel `g·mg + block·16 + lane`; rows are padded to 4 taps, missing channels to 16, with zeros.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn pack_filter_rows(s: &ConvShape, w: &[u8], g: usize, blocks: usize, packed: &mut [u8]) {
    let (mg, steps) = (s.m / s.groups, s.c / s.groups * s.kh);
    let k = steps * s.kw;
    packed[..blocks * LANES * steps * 4].fill(0);
    for m in 0..mg {
        let (block, lane) = (m / LANES, m % LANES);
        for step in 0..steps {
            for kx in 0..s.kw {
                packed[((block * steps + step) * LANES + lane) * 4 + kx] = w[(g * mg + m) * k + step * s.kw + kx];
            }
        }
    }
}

/// Most output channels the SIMD kernels handle (their per-channel constants live on the stack).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const FAST_MAX_M: usize = 1024;

/// Per output channel of group `g` (index `m − g·mg`), for the SIMD kernels, which sum raw or
/// shifted inputs and fold the zero point out afterwards: the bias minus `zero·Σw` (`zero` is the
/// input zero point as those kernels see it), and the requantization multiplier.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn group_constants(
    s: &ConvShape,
    w: &[u8],
    bias: Option<&[u8]>,
    multipliers: &impl Fn(usize) -> f32,
    g: usize,
    zero: i32,
) -> ([i32; FAST_MAX_M], [f32; FAST_MAX_M]) {
    let (mg, k) = (s.m / s.groups, s.c / s.groups * s.kh * s.kw);
    let mut offsets = [0i32; FAST_MAX_M];
    let mut mults = [0f32; FAST_MAX_M];
    for m in 0..mg {
        let c = g * mg + m;
        let wsum: i32 = w[c * k..(c + 1) * k].iter().map(|&b| i32::from(b as i8)).sum();
        offsets[m] = bias.map_or(0, |bb| i32_at(bb, c)) - zero * wsum;
        mults[m] = multipliers(c);
    }
    (offsets, mults)
}

/// i32 accumulators kept on the stack (2 KiB).
const TILE: usize = 512;
/// Largest filter (C/groups · kh · kw) gathered as a patch on the stack (8 KiB of i16).
const PATCH: usize = 4096;

/// Output columns `ox` whose input column `ox·stride + k·dilation − pad` lies in `0..width`.
fn valid_columns(ow: usize, width: usize, stride: usize, offset: usize, pad: usize) -> (usize, usize) {
    // ix = ox·stride + offset − pad ≥ 0  ⇔  ox ≥ ceil((pad − offset) / stride)
    let lo = pad.saturating_sub(offset).div_ceil(stride);
    // ix < width  ⇔  ox·stride < width + pad − offset
    let hi = if width + pad > offset { (width + pad - offset).div_ceil(stride).min(ow) } else { 0 };
    (lo.min(hi), hi)
}

#[allow(clippy::too_many_arguments)]
pub fn conv(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    y: &mut [u8],
    y_zero: i32,
) {
    #[cfg(target_arch = "x86_64")]
    if s.c / s.groups * s.kh * s.kw <= super::conv_x86::MAX_K
        && s.m <= super::conv_x86::MAX_M
        && super::conv_x86::vnni_available()
    {
        // SAFETY: vnni_available() checked that this CPU and OS run AVX-512 F/BW/VNNI code.
        return unsafe { super::conv_x86::conv_vnni(s, x, x_zero, w, bias, multipliers, y, y_zero) };
    }
    #[cfg(target_arch = "aarch64")]
    if super::conv_aarch64::supports(s) && super::conv_aarch64::dotprod_available() {
        // SAFETY: dotprod_available() checked that this CPU has the dot-product instructions.
        return unsafe { super::conv_aarch64::conv_rows_sdot(s, x, x_zero, w, bias, multipliers, y, y_zero) };
    }
    conv_portable(s, x, x_zero, w, bias, multipliers, y, y_zero)
}

/// The portable kernels (any CPU, the Cortex-M included): the reference the fast paths match.
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
    let (cg, mg) = (s.c / s.groups, s.m / s.groups);
    let k = cg * s.kh * s.kw;
    if k <= PATCH {
        return conv_patches(s, x, x_zero, w, bias, multipliers, y, y_zero);
    }
    let rows_per_tile = (TILE / s.ow.max(1)).max(1);
    let mut acc = [0i32; TILE];
    for b in 0..s.n {
        for m in 0..s.m {
            let g = m / mg;
            let mult = multipliers(m);
            let bias_m = bias.map_or(0, |bb| i32_at(bb, m));
            let mut row0 = 0;
            while row0 < s.oh {
                let rows = rows_per_tile.min(s.oh - row0);
                if s.ow > TILE {
                    // One output row does not fit the tile: fall back to one pixel at a time.
                    for oy in row0..row0 + rows {
                        for ox in 0..s.ow {
                            let v = pixel(s, x, x_zero, w, b, m, g, cg, oy, ox);
                            y[((b * s.m + m) * s.oh + oy) * s.ow + ox] = requantize(v + bias_m, mult, y_zero);
                        }
                    }
                    row0 += rows;
                    continue;
                }
                let acc = &mut acc[..rows * s.ow];
                acc.fill(bias_m);
                for ci in 0..cg {
                    let c = g * cg + ci;
                    let plane = &x[(b * s.c + c) * s.h * s.w..(b * s.c + c + 1) * s.h * s.w];
                    let wk = &w[(m * cg + ci) * s.kh * s.kw..(m * cg + ci + 1) * s.kh * s.kw];
                    for ky in 0..s.kh {
                        for kx in 0..s.kw {
                            let wv = i32::from(wk[ky * s.kw + kx] as i8);
                            if wv == 0 {
                                continue;
                            }
                            let (lo, hi) = valid_columns(s.ow, s.w, s.stride.1, kx * s.dilation.1, s.pad.1);
                            for r in 0..rows {
                                let iy = ((row0 + r) * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                                if iy >= s.h || lo >= hi {
                                    continue;
                                }
                                let row = &plane[iy * s.w..(iy + 1) * s.w];
                                let out = &mut acc[r * s.ow + lo..r * s.ow + hi];
                                let ix0 = lo * s.stride.1 + kx * s.dilation.1 - s.pad.1;
                                if s.stride.1 == 1 {
                                    for (a, &xv) in out.iter_mut().zip(&row[ix0..ix0 + (hi - lo)]) {
                                        *a += (i32::from(xv) - x_zero) * wv;
                                    }
                                } else {
                                    for (j, a) in out.iter_mut().enumerate() {
                                        *a += (i32::from(row[ix0 + j * s.stride.1]) - x_zero) * wv;
                                    }
                                }
                            }
                        }
                    }
                }
                let base = ((b * s.m + m) * s.oh + row0) * s.ow;
                for (o, &a) in y[base..base + rows * s.ow].iter_mut().zip(acc.iter()) {
                    *o = requantize(a, mult, y_zero);
                }
                row0 += rows;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_patches(
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
    let k = cg * s.kh * s.kw;
    let mut patch = [0i16; PATCH];
    let plane = s.oh * s.ow;
    for b in 0..s.n {
        for g in 0..s.groups {
            for oy in 0..s.oh {
                for ox in 0..s.ow {
                    let mut i = 0;
                    for ci in 0..cg {
                        let base = (b * s.c + g * cg + ci) * s.h * s.w;
                        for ky in 0..s.kh {
                            let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
                            for kx in 0..s.kw {
                                let ix = (ox * s.stride.1 + kx * s.dilation.1).wrapping_sub(s.pad.1);
                                // Padding holds x_zero, i.e. 0 after the subtraction.
                                patch[i] = if iy < s.h && ix < s.w {
                                    (i32::from(x[base + iy * s.w + ix]) - x_zero) as i16
                                } else {
                                    0
                                };
                                i += 1;
                            }
                        }
                    }
                    let patch = &patch[..k];
                    for m in g * mg..(g + 1) * mg {
                        let acc = dot(patch, &w[m * k..(m + 1) * k]) + bias.map_or(0, |bb| i32_at(bb, m));
                        y[(b * s.m + m) * plane + oy * s.ow + ox] = requantize(acc, multipliers(m), y_zero);
                    }
                }
            }
        }
    }
}

/// Σ a·b in i32, b being int8 weights as bytes (|a·b| ≤ 255·128: no pair overflows).
fn dot(a: &[i16], b: &[u8]) -> i32 {
    a.iter().zip(b).map(|(&p, &q)| i32::from(p) * i32::from(q as i8)).sum()
}

/// One output value without the tile (very wide rows); the reference definition.
#[allow(clippy::too_many_arguments)]
fn pixel(
    s: &ConvShape,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    b: usize,
    m: usize,
    g: usize,
    cg: usize,
    oy: usize,
    ox: usize,
) -> i32 {
    let mut acc = 0i32;
    for ci in 0..cg {
        let c = g * cg + ci;
        for ky in 0..s.kh {
            let iy = (oy * s.stride.0 + ky * s.dilation.0).wrapping_sub(s.pad.0);
            if iy >= s.h {
                continue;
            }
            for kx in 0..s.kw {
                let ix = (ox * s.stride.1 + kx * s.dilation.1).wrapping_sub(s.pad.1);
                if ix < s.w {
                    let xv = i32::from(x[((b * s.c + c) * s.h + iy) * s.w + ix]) - x_zero;
                    acc += xv * i32::from(w[((m * cg + ci) * s.kh + ky) * s.kw + kx] as i8);
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiled_conv_equals_the_pixel_definition() {
        // Stride 2, padding, dilation, groups: every path of the tiled loop against `pixel`.
        let s = ConvShape {
            n: 1,
            c: 4,
            h: 9,
            w: 11,
            m: 4,
            oh: 5,
            ow: 6,
            kh: 3,
            kw: 3,
            stride: (2, 2),
            dilation: (1, 1),
            pad: (1, 1),
            groups: 2,
        };
        let x: [u8; 4 * 9 * 11] = core::array::from_fn(|i| ((i * 37) % 256) as u8);
        let w: [u8; 4 * 2 * 9] = core::array::from_fn(|i| ((i * 53) % 256) as u8);
        let mut y = [0u8; 4 * 5 * 6];
        conv(&s, &x, 7, &w, None, |_| 0.01, &mut y, 128);
        for m in 0..4 {
            for oy in 0..5 {
                for ox in 0..6 {
                    let want = requantize(pixel(&s, &x, 7, &w, 0, m, m / 2, 2, oy, ox), 0.01, 128);
                    assert_eq!(y[(m * 5 + oy) * 6 + ox], want, "m {m} oy {oy} ox {ox}");
                }
            }
        }
    }
}
