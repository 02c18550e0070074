//! Resize of 1-byte elements by per-axis index maps: `y[i0, i1, i2, i3] = x[m0[i0], m1[i1],
//! m2[i2], m3[i3]]`. The exporter computes the maps from the ONNX attributes (nearest mode,
//! coordinate transformation, rounding), so the runtime only gathers; the quantization is
//! unchanged (nearest neighbour picks values, it computes none).

/// `maps`: `y_dims[0] + … + y_dims[3]` little-endian u16 source indices, axis by axis (each
/// below its x dim: checked by the parser).
pub fn resize(x: &[u8], x_dims: [usize; 4], maps: &[u8], y_dims: [usize; 4], y: &mut [u8]) {
    let source = |axis: usize, i: usize| {
        let at = 2 * (y_dims[..axis].iter().sum::<usize>() + i);
        usize::from(u16::from_le_bytes([maps[at], maps[at + 1]]))
    };
    let mut out = y.iter_mut();
    for i0 in 0..y_dims[0] {
        let r0 = source(0, i0) * x_dims[1];
        for i1 in 0..y_dims[1] {
            let r1 = (r0 + source(1, i1)) * x_dims[2];
            for i2 in 0..y_dims[2] {
                let row = &x[(r1 + source(2, i2)) * x_dims[3]..][..x_dims[3]];
                for (i3, o) in (0..y_dims[3]).zip(&mut out) {
                    *o = row[source(3, i3)];
                }
            }
        }
    }
}
