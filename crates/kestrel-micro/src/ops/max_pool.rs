//! MaxPool on uint8, channels-last (monotonic, so it commutes with the affine quantization).

/// `dims` = (n, h, w, c), `out` = (oh, ow); kernel, stride, (top, left) padding. A window never
/// lies entirely in the padding (checked by the parser), so every output has a real maximum.
pub fn max_pool(
    (n, h, w, c): (usize, usize, usize, usize),
    (oh, ow): (usize, usize),
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    (pt, pl): (usize, usize),
    x: &[u8],
    y: &mut [u8],
) {
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let out = &mut y[((b * oh + oy) * ow + ox) * c..((b * oh + oy) * ow + ox + 1) * c];
                out.fill(0);
                for ky in 0..kh {
                    let iy = (oy * sh + ky).wrapping_sub(pt);
                    if iy >= h {
                        continue;
                    }
                    for kx in 0..kw {
                        let ix = (ox * sw + kx).wrapping_sub(pl);
                        if ix < w {
                            let at = ((b * h + iy) * w + ix) * c;
                            for (o, &v) in out.iter_mut().zip(&x[at..at + c]) {
                                *o = (*o).max(v);
                            }
                        }
                    }
                }
            }
        }
    }
}
