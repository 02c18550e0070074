//! Test-only references written from the ONNX definitions alone, sharing no code with the
//! kernels they check (no `input_at`, `pixel`, `requantize` or patch gathering): if a kernel
//! helper is wrong, these are not wrong with it.

extern crate std;

use std::vec::Vec;

use super::conv::ConvShape;

/// QLinearConv on channels-last data (x `[N, H, W, C]` uint8, w `[M, kh, kw, C/g]` int8 as
/// bytes, bias int32 little-endian, y `[N, OH, OW, M]`) as ONNX defines it: each output is
/// `Σ (x − x_zp)·w + bias` over the taps inside the input, times the channel's multiplier,
/// rounded half to even, plus `y_zp`, saturated to 0..=255.
#[allow(clippy::too_many_arguments)]
pub(crate) fn qlinear_conv(
    s: &ConvShape,
    x: &[u8],
    x_zp: i32,
    w: &[u8],
    bias: Option<&[u8]>,
    multiplier: impl Fn(usize) -> f32,
    y_zp: i32,
) -> Vec<u8> {
    let in_per_group = s.c / s.groups;
    let out_per_group = s.m / s.groups;
    let mut y = Vec::with_capacity(s.n * s.oh * s.ow * s.m);
    for n in 0..s.n {
        for oy in 0..s.oh {
            for ox in 0..s.ow {
                for m in 0..s.m {
                    let group = m / out_per_group;
                    let mut acc: i64 = match bias {
                        Some(b) => i64::from(i32::from_le_bytes([b[4 * m], b[4 * m + 1], b[4 * m + 2], b[4 * m + 3]])),
                        None => 0,
                    };
                    for ky in 0..s.kh {
                        for kx in 0..s.kw {
                            let iy = (oy * s.stride.0 + ky * s.dilation.0) as i64 - s.pad.0 as i64;
                            let ix = (ox * s.stride.1 + kx * s.dilation.1) as i64 - s.pad.1 as i64;
                            if iy < 0 || ix < 0 || iy >= s.h as i64 || ix >= s.w as i64 {
                                continue;
                            }
                            for c in 0..in_per_group {
                                let xi = ((n * s.h + iy as usize) * s.w + ix as usize) * s.c + group * in_per_group + c;
                                let wi = ((m * s.kh + ky) * s.kw + kx) * in_per_group + c;
                                acc += (i64::from(x[xi]) - i64::from(x_zp)) * i64::from(w[wi] as i8);
                            }
                        }
                    }
                    // The kernels' i32 sums wrap (as the SIMD instructions do); so does this.
                    let acc = acc as i32;
                    let v = (acc as f32 * multiplier(m)).round_ties_even() as i64 + i64::from(y_zp);
                    y.push(v.clamp(0, 255) as u8);
                }
            }
        }
    }
    y
}

/// Records whether a fast kernel was really tested here or skipped (and why): on stderr, and
/// as a line `kernel<TAB>tested|skipped<TAB>detail` appended to `$KESTREL_CHECK_LOG` when set,
/// which `scripts/test.sh` summarizes (and fails on when a kernel this machine can run was
/// tested nowhere).
pub(crate) fn record(kernel: &str, tested: bool, detail: &str) {
    use std::io::Write;
    let status = if tested { "tested" } else { "skipped" };
    std::eprintln!("{kernel}: {status}: {detail}");
    if let Some(path) = std::env::var_os("KESTREL_CHECK_LOG") {
        let line = std::format!("{kernel}\t{status}\t{detail} ({})\n", std::env::consts::ARCH);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        file.and_then(|mut f| f.write_all(line.as_bytes())).expect("appending to $KESTREL_CHECK_LOG");
    }
}

/// A deterministic xorshift source of `0..n` draws for the random-shape tests.
pub(crate) fn draws(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed;
    move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    }
}
