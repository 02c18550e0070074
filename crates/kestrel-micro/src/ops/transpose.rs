//! Transpose of a 4-D tensor of 1- or 4-byte elements (the layout conversions at the edges of
//! a chain of channels-last convolutions, among others).

/// `dims` of x, `perm`: output axis i is input axis perm[i].
pub fn transpose(x: &[u8], dims: [usize; 4], perm: [usize; 4], elem: usize, y: &mut [u8]) {
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
            for d in 0..n {
                let (to, from) = ((o + d) * elem, (i + d * step) * elem);
                y[to..to + elem].copy_from_slice(&x[from..from + elem]);
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
