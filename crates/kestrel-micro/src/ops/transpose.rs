//! Transpose of a 4-D tensor of 1- or 4-byte elements.

/// `dims` of x, `perm`: output axis i is input axis perm[i].
pub fn transpose(x: &[u8], dims: [usize; 4], perm: [usize; 4], elem: usize, y: &mut [u8]) {
    let out = [dims[perm[0]], dims[perm[1]], dims[perm[2]], dims[perm[3]]];
    let strides = [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1];
    let s = [strides[perm[0]], strides[perm[1]], strides[perm[2]], strides[perm[3]]];
    let mut o = 0;
    for a in 0..out[0] {
        for b in 0..out[1] {
            for c in 0..out[2] {
                for d in 0..out[3] {
                    let i = a * s[0] + b * s[1] + c * s[2] + d * s[3];
                    y[o * elem..(o + 1) * elem].copy_from_slice(&x[i * elem..(i + 1) * elem]);
                    o += 1;
                }
            }
        }
    }
}
