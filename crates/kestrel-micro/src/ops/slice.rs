//! A crop of a 4-D tensor of bytes (ONNX Slice with unit steps, and each output of a Split):
//! the output's rows copied from `begin` on.

/// `y` (`out` dims) = `x[begin[0].., begin[1].., begin[2].., begin[3]..]` of `x` (`dims`).
pub fn slice(x: &[u8], dims: [usize; 4], begin: [usize; 4], out: [usize; 4], y: &mut [u8]) {
    let row = out[3];
    let mut to = 0;
    for a in 0..out[0] {
        for b in 0..out[1] {
            for c in 0..out[2] {
                let from = (((a + begin[0]) * dims[1] + b + begin[1]) * dims[2] + c + begin[2]) * dims[3] + begin[3];
                y[to..to + row].copy_from_slice(&x[from..from + row]);
                to += row;
            }
        }
    }
}
