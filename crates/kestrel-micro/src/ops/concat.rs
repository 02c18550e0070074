//! Concatenation along one axis: data movement only (the inputs share the output's type and
//! quantization, checked by the parser).

/// Appends each input's rows of `chunks[i]` bytes, for `outer` rows, into `y`.
pub fn concat(inputs: &[&[u8]], chunks: &[usize], outer: usize, y: &mut [u8]) {
    let mut at = 0;
    for row in 0..outer {
        for (x, &len) in inputs.iter().zip(chunks) {
            y[at..at + len].copy_from_slice(&x[row * len..(row + 1) * len]);
            at += len;
        }
    }
}
