//! Transpose of a 4-D tensor of 1- or 4-byte elements (the layout conversions at the edges of
//! a chain of channels-last convolutions, among others).

/// `dims` of x, `perm`: output axis i is input axis perm[i]; `elem` is 1 or 4 (checked by the
/// parser: uint8/int8 or int32/float32).
pub fn transpose(x: &[u8], dims: [usize; 4], perm: [usize; 4], elem: usize, y: &mut [u8]) {
    // NCHW → NHWC and back are, per image, a matrix transpose of bytes: done in 8 × 8 tiles.
    let matrix = match perm {
        [0, 2, 3, 1] => Some((dims[1], dims[2] * dims[3])),
        [0, 3, 1, 2] => Some((dims[1] * dims[2], dims[3])),
        _ => None,
    };
    if let (1, Some((rows, cols))) = (elem, matrix) {
        let plane = rows * cols;
        for (xi, yi) in x.chunks_exact(plane).zip(y.chunks_exact_mut(plane)).take(dims[0]) {
            transpose_matrix(xi, rows, cols, yi);
        }
        return;
    }
    let out = [dims[perm[0]], dims[perm[1]], dims[perm[2]], dims[perm[3]]];
    let strides = [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1];
    let s = [strides[perm[0]], strides[perm[1]], strides[perm[2]], strides[perm[3]]];
    match elem {
        1 => each_row(out, s, |o, i, n, step| {
            for (d, v) in y[o..o + n].iter_mut().enumerate() {
                *v = x[i + d * step];
            }
        }),
        _ => each_row(out, s, |o, i, n, step| {
            for (d, v) in y[o * 4..(o + n) * 4].chunks_exact_mut(4).enumerate() {
                let from = (i + d * step) * 4;
                v.copy_from_slice(&x[from..from + 4]);
            }
        }),
    }
}

/// Calls `row(output index, input index, length, input step)` for each innermost output row.
fn each_row(out: [usize; 4], s: [usize; 4], mut row: impl FnMut(usize, usize, usize, usize)) {
    let mut o = 0;
    for a in 0..out[0] {
        for b in 0..out[1] {
            for c in 0..out[2] {
                row(o, a * s[0] + b * s[1] + c * s[2], out[3], s[3]);
                o += out[3];
            }
        }
    }
}

/// `y[c][r] = x[r][c]` for a `rows × cols` byte matrix: 8 × 8 tiles transposed in eight u64
/// registers (three rounds of masked swaps), the ragged edges byte by byte.
fn transpose_matrix(x: &[u8], rows: usize, cols: usize, y: &mut [u8]) {
    let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
    for r0 in (0..r8).step_by(8) {
        for c0 in (0..c8).step_by(8) {
            let mut t: [u64; 8] = core::array::from_fn(|i| {
                let at = (r0 + i) * cols + c0;
                let mut row = [0u8; 8];
                row.copy_from_slice(&x[at..at + 8]);
                u64::from_le_bytes(row)
            });
            for (shift, mask, pairs) in [
                (8, 0x00FF_00FF_00FF_00FFu64, [(0, 1), (2, 3), (4, 5), (6, 7)]),
                (16, 0x0000_FFFF_0000_FFFF, [(0, 2), (1, 3), (4, 6), (5, 7)]),
                (32, 0x0000_0000_FFFF_FFFF, [(0, 4), (1, 5), (2, 6), (3, 7)]),
            ] {
                for (a, b) in pairs {
                    let d = ((t[a] >> shift) ^ t[b]) & mask;
                    t[b] ^= d;
                    t[a] ^= d << shift;
                }
            }
            for (j, v) in t.iter().enumerate() {
                let at = (c0 + j) * rows + r0;
                y[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    for r in 0..rows {
        let from = if r < r8 { c8 } else { 0 };
        for c in from..cols {
            y[c * rows + r] = x[r * cols + c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiled_transposes_equal_the_element_loop() {
        for (dims, perm) in [
            ([2, 13, 5, 7], [0, 2, 3, 1]),
            ([1, 16, 8, 8], [0, 2, 3, 1]),
            ([2, 5, 7, 13], [0, 3, 1, 2]),
            ([1, 8, 3, 24], [0, 3, 1, 2]),
        ] {
            let n: usize = dims.iter().product();
            let mut x = [0u8; 2 * 16 * 8 * 8];
            for (i, v) in x[..n].iter_mut().enumerate() {
                *v = (i * 31 % 251) as u8;
            }
            let (mut fast, mut slow) = ([0u8; 2 * 16 * 8 * 8], [0u8; 2 * 16 * 8 * 8]);
            transpose(&x[..n], dims, perm, 1, &mut fast[..n]);
            let out = [dims[perm[0]], dims[perm[1]], dims[perm[2]], dims[perm[3]]];
            let strides = [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1];
            let s = [strides[perm[0]], strides[perm[1]], strides[perm[2]], strides[perm[3]]];
            each_row(out, s, |o, i, len, step| {
                for d in 0..len {
                    slow[o + d] = x[i + d * step];
                }
            });
            assert_eq!(fast[..n], slow[..n], "{dims:?} {perm:?}");
        }
    }
}
