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

/// `y[c][r] = x[r][c]` for a `rows × cols` byte matrix, tile by tile ([`tiles`]); matrices
/// thinner than a tile go byte by byte.
fn transpose_matrix(x: &[u8], rows: usize, cols: usize, y: &mut [u8]) {
    assert!(x.len() >= rows * cols && y.len() >= rows * cols);
    let Some((t, origins)) = tiles(rows, cols) else {
        // Thin: output rows in order, written pixel by pixel from `rows` streams (an RGB image
        // going channels-last), with the row count a constant for the common ones.
        match rows {
            1 => y[..cols].copy_from_slice(&x[..cols]),
            2 => thin::<2>(x, cols, y),
            3 => thin::<3>(x, cols, y),
            4 => thin::<4>(x, cols, y),
            _ => {
                for (c, out) in y[..rows * cols].chunks_exact_mut(rows).enumerate() {
                    for (r, v) in out.iter_mut().enumerate() {
                        *v = x[r * cols + c];
                    }
                }
            }
        }
        return;
    };
    for (r0, c0) in origins {
        transpose_tile(&x[r0 * cols + c0..], cols, t, &mut y[c0 * rows + r0..], rows);
    }
}

/// [`transpose_matrix`] of `R` rows.
fn thin<const R: usize>(x: &[u8], cols: usize, y: &mut [u8]) {
    let src: [&[u8]; R] = core::array::from_fn(|r| &x[r * cols..(r + 1) * cols]);
    for (c, out) in (0..cols).zip(y[..R * cols].chunks_exact_mut(R)) {
        for (o, s) in out.iter_mut().zip(&src) {
            *o = s[c];
        }
    }
}

/// Square tiles covering a `rows × cols` matrix: their side `t` (16 with SSE2 on x86-64, else
/// 8) and top-left corners, or `None` when the matrix is thinner than a tile. A dimension that
/// is not a multiple of `t` gets one more tile flush with its end, overlapping the one before
/// (work done twice there writes the same bytes again).
fn tiles(rows: usize, cols: usize) -> Option<(usize, impl Iterator<Item = (usize, usize)>)> {
    let t = if cfg!(target_arch = "x86_64") && rows >= 16 && cols >= 16 { 16 } else { 8 };
    let starts = move |n: usize| (0..=n - t).step_by(t).chain((!n.is_multiple_of(t)).then_some(n - t));
    (rows >= t && cols >= t).then(|| (t, starts(rows).flat_map(move |r0| starts(cols).map(move |c0| (r0, c0)))))
}

/// `dst[j·dst_stride + i] = src[i·src_stride + j]` for i, j < t, where t is a side [`tiles`] gives.
fn transpose_tile(src: &[u8], src_stride: usize, t: usize, dst: &mut [u8], dst_stride: usize) {
    #[cfg(target_arch = "x86_64")]
    if t == 16 {
        // SAFETY: SSE2 is part of x86-64.
        unsafe { tile_16_sse2(src, src_stride, dst, dst_stride) };
        return;
    }
    assert_eq!(t, 8);
    tile_8_swar(src, src_stride, dst, dst_stride);
}

/// An 8 × 8 tile transposed in eight u64 registers (three rounds of masked swaps).
fn tile_8_swar(src: &[u8], src_stride: usize, dst: &mut [u8], dst_stride: usize) {
    let mut t: [u64; 8] = core::array::from_fn(|i| {
        let mut row = [0u8; 8];
        row.copy_from_slice(&src[i * src_stride..][..8]);
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
        dst[j * dst_stride..][..8].copy_from_slice(&v.to_le_bytes());
    }
}

/// A 16 × 16 tile: four rounds of SSE2 unpacks, each interleaving twice as wide units of two
/// registers (bytes, then pairs, quads and halves), 16 loads and 16 stores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn tile_16_sse2(src: &[u8], src_stride: usize, dst: &mut [u8], dst_stride: usize) {
    use core::arch::x86_64::*;
    let r: [__m128i; 16] = core::array::from_fn(|i| {
        let row = &src[i * src_stride..][..16];
        // SAFETY: a 16-byte load from a 16-byte slice.
        unsafe { _mm_loadu_si128(row.as_ptr().cast()) }
    });
    // b[2i], b[2i+1]: rows 2i, 2i+1 interleaved byte by byte, columns 0-7 and 8-15.
    let b: [__m128i; 16] = core::array::from_fn(|i| {
        let (lo, hi) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm_unpacklo_epi8(lo, hi)
        } else {
            _mm_unpackhi_epi8(lo, hi)
        }
    });
    // c[4g + k]: columns 4k..4k+3 of rows 4g..4g+3, 4 bytes per column.
    let c: [__m128i; 16] = core::array::from_fn(|i| {
        let (g, k) = (i / 4, i % 4);
        let (lo, hi) = (b[4 * g + k / 2], b[4 * g + 2 + k / 2]);
        if k % 2 == 0 {
            _mm_unpacklo_epi16(lo, hi)
        } else {
            _mm_unpackhi_epi16(lo, hi)
        }
    });
    // d[8h + m]: columns 2m, 2m+1 of rows 8h..8h+7, 8 bytes per column.
    let d: [__m128i; 16] = core::array::from_fn(|i| {
        let (h, m) = (i / 8, i % 8);
        let (lo, hi) = (c[8 * h + m / 2], c[8 * h + 4 + m / 2]);
        if m % 2 == 0 {
            _mm_unpacklo_epi32(lo, hi)
        } else {
            _mm_unpackhi_epi32(lo, hi)
        }
    });
    for j in 0..16 {
        let (lo, hi) = (d[j / 2], d[8 + j / 2]);
        let column = if j % 2 == 0 { _mm_unpacklo_epi64(lo, hi) } else { _mm_unpackhi_epi64(lo, hi) };
        let out = &mut dst[j * dst_stride..][..16];
        // SAFETY: a 16-byte store into a 16-byte slice.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), column) };
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
            ([1, 20, 3, 7], [0, 2, 3, 1]),
            ([1, 6, 5, 40], [0, 3, 1, 2]),
            ([2, 16, 4, 4], [0, 2, 3, 1]),
            ([1, 3, 5, 9], [0, 2, 3, 1]),
            ([2, 2, 3, 3], [0, 2, 3, 1]),
            ([1, 4, 2, 9], [0, 2, 3, 1]),
            ([1, 1, 6, 6], [0, 2, 3, 1]),
            ([1, 5, 2, 2], [0, 2, 3, 1]),
        ] {
            let n: usize = dims.iter().product();
            let mut x = [0u8; 2 * 16 * 8 * 8 + 256];
            for (i, v) in x[..n].iter_mut().enumerate() {
                *v = (i * 31 % 251) as u8;
            }
            let (mut fast, mut slow) = ([0u8; 2 * 16 * 8 * 8 + 256], [0u8; 2 * 16 * 8 * 8 + 256]);
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
