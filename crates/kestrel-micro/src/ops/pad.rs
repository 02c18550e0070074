//! Constant padding of a 4-D tensor of bytes (a residual branch's extra channels: the zero
//! point, which stands for 0.0).

/// x `dims`, `begin`/`end` padding per axis, filled with `value`.
pub fn pad(x: &[u8], dims: [usize; 4], begin: [usize; 4], end: [usize; 4], value: u8, y: &mut [u8]) {
    let out: [usize; 4] = core::array::from_fn(|i| dims[i] + begin[i] + end[i]);
    y.fill(value);
    for a in 0..dims[0] {
        for b in 0..dims[1] {
            for c in 0..dims[2] {
                let from = ((a * dims[1] + b) * dims[2] + c) * dims[3];
                let to = (((a + begin[0]) * out[1] + b + begin[1]) * out[2] + c + begin[2]) * out[3] + begin[3];
                y[to..to + dims[3]].copy_from_slice(&x[from..from + dims[3]]);
            }
        }
    }
}
