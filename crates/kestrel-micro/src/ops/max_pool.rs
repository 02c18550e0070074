//! MaxPool, channels-last: on uint8 (monotonic, so it commutes with the affine quantization),
//! or on float32 (the float residual branches of a mixed int8 model).

use crate::DType;

/// `dims` = (n, h, w, c), `out` = (oh, ow); kernel, stride, (top, left) padding; elements of
/// `dtype` (uint8 or float32, little-endian). A window never lies entirely in the padding
/// (checked by the parser), so every output has a real maximum.
#[allow(clippy::too_many_arguments)]
pub fn max_pool(
    (n, h, w, c): (usize, usize, usize, usize),
    (oh, ow): (usize, usize),
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    (pt, pl): (usize, usize),
    dtype: DType,
    x: &[u8],
    y: &mut [u8],
) {
    let row = c * dtype.size();
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let at = ((b * oh + oy) * ow + ox) * row;
                let out = &mut y[at..at + row];
                match dtype {
                    DType::F32 => {
                        out.chunks_exact_mut(4).for_each(|o| o.copy_from_slice(&f32::NEG_INFINITY.to_le_bytes()))
                    }
                    _ => out.fill(0),
                }
                for ky in 0..kh {
                    let iy = (oy * sh + ky).wrapping_sub(pt);
                    if iy >= h {
                        continue;
                    }
                    for kx in 0..kw {
                        let ix = (ox * sw + kx).wrapping_sub(pl);
                        if ix >= w {
                            continue;
                        }
                        let at = ((b * h + iy) * w + ix) * row;
                        let src = &x[at..at + row];
                        if dtype == DType::F32 {
                            for (o, v) in out.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                                let (a, v) = (
                                    f32::from_le_bytes([o[0], o[1], o[2], o[3]]),
                                    f32::from_le_bytes([v[0], v[1], v[2], v[3]]),
                                );
                                o.copy_from_slice(&a.max(v).to_le_bytes());
                            }
                        } else {
                            for (o, &v) in out.iter_mut().zip(src) {
                                *o = (*o).max(v);
                            }
                        }
                    }
                }
            }
        }
    }
}
