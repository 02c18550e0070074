//! MaxPool on uint8 (monotonic, so it commutes with the affine quantization).

/// `dims` = (n, c, h, w), `out` = (oh, ow); kernel, stride, (top, left) padding.
pub fn max_pool(
    (n, c, h, w): (usize, usize, usize, usize),
    (oh, ow): (usize, usize),
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    (pt, pl): (usize, usize),
    x: &[u8],
    y: &mut [u8],
) {
    for plane in 0..n * c {
        let xp = &x[plane * h * w..(plane + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = 0u8;
                for ky in 0..kh {
                    let iy = (oy * sh + ky).wrapping_sub(pt);
                    if iy >= h {
                        continue;
                    }
                    for kx in 0..kw {
                        let ix = (ox * sw + kx).wrapping_sub(pl);
                        if ix < w {
                            best = best.max(xp[iy * w + ix]);
                        }
                    }
                }
                y[(plane * oh + oy) * ow + ox] = best;
            }
        }
    }
}
