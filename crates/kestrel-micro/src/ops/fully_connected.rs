//! QLinearMatMul: `y[n, m] = requantize(Σ_k (x[n, k] − x_zp)·w[k, m] + bias[m])`.
//! Rows of the weight are applied to a tile of i32 accumulators on the stack (vectorizes).
//! And on float32 (a mixed model's float heads): `y[n, m] = Σ_k x[n, k]·w[k, m]`.

use super::{f32_at, i32_at, requantize, widest};

const TILE: usize = 256;

#[allow(clippy::too_many_arguments)]
pub fn fully_connected(
    (n, k, m): (usize, usize, usize),
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    bias: Option<&[u8]>,
    multipliers: impl Fn(usize) -> f32,
    y: &mut [u8],
    y_zero: i32,
) {
    let mut acc = [0i32; TILE];
    for r in 0..n {
        let xr = &x[r * k..(r + 1) * k];
        let mut c0 = 0;
        while c0 < m {
            let cols = TILE.min(m - c0);
            let acc = &mut acc[..cols];
            for (j, a) in acc.iter_mut().enumerate() {
                *a = bias.map_or(0, |b| i32_at(b, c0 + j));
            }
            for (i, &xv) in xr.iter().enumerate() {
                let xv = i32::from(xv) - x_zero;
                if xv == 0 {
                    continue;
                }
                for (a, &wv) in acc.iter_mut().zip(&w[i * m + c0..i * m + c0 + cols]) {
                    *a = a.wrapping_add(xv * i32::from(wv as i8));
                }
            }
            for (j, &a) in acc.iter().enumerate() {
                y[r * m + c0 + j] = requantize(a, multipliers(c0 + j), y_zero);
            }
            c0 += cols;
        }
    }
}

widest! {
/// `y = x · w` on float32: x `[n, k]`, w `[k, m]`, y `[n, m]` (little-endian bytes), summed in
/// k order per output (row by row of w, which vectorizes over m).
pub fn matmul_f32(dims: (usize, usize, usize), x: &[u8], w: &[u8], y: &mut [u8]) {
    let (n, k, m) = dims;
    let mut acc = [0f32; TILE];
    for r in 0..n {
        let mut c0 = 0;
        while c0 < m {
            let cols = TILE.min(m - c0);
            let acc = &mut acc[..cols];
            acc.fill(0.0);
            for i in 0..k {
                let xv = f32_at(x, r * k + i);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += xv * f32_at(w, i * m + c0 + j);
                }
            }
            for (j, &a) in acc.iter().enumerate() {
                y[4 * (r * m + c0 + j)..][..4].copy_from_slice(&a.to_le_bytes());
            }
            c0 += cols;
        }
    }
}
}
