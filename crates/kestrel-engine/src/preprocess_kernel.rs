//! Camera frame → model input on the GPU: the CUDA C kernel (compiled with NVRTC at first use)
//! and its CPU reference, which performs exactly the same f32 operations in the same order, so the
//! two agree bit for bit when the kernel is compiled without FMA contraction (`--fmad=false`).
//!
//! Input: 8-bit RGB (HWC) or YUYV 4:2:2. Output: float32 NCHW, resized with bilinear sampling at
//! half-pixel centers into a rectangle of the output (all of it when stretching; centered with
//! black around it when letterboxing), each channel mapped from 0..255 onto `lo..hi`.

/// Pixel layout of a camera frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFormat {
    Rgb,
    Yuyv,
}

impl FrameFormat {
    /// The value passed to the kernel's `format` argument.
    pub fn code(self) -> i32 {
        match self {
            FrameFormat::Rgb => 0,
            FrameFormat::Yuyv => 1,
        }
    }

    pub fn bytes(self, width: usize, height: usize) -> usize {
        match self {
            FrameFormat::Rgb => width * height * 3,
            FrameFormat::Yuyv => width * height * 2,
        }
    }
}

/// The output tensor's size and the rectangle the frame is resized into (the rest is black).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    /// Left, top, width, height of the resized frame inside the output.
    pub inner: (usize, usize, usize, usize),
}

impl Canvas {
    /// The frame stretched over the whole output.
    pub fn stretch(width: usize, height: usize) -> Canvas {
        Canvas { width, height, inner: (0, 0, width, height) }
    }

    /// Whether the rectangle is non-empty and inside the output.
    pub fn is_valid(&self) -> bool {
        let (x, y, w, h) = self.inner;
        w > 0 && h > 0 && x + w <= self.width && y + h <= self.height
    }
}

/// The kernel: one thread per output pixel, writing its three channels.
pub const KERNEL_SOURCE: &str = r#"
__device__ float kestrel_channel(const unsigned char* src, int format, int w, int x, int y, int c) {
    if (format == 0) {
        return (float)src[(y * w + x) * 3 + c];
    }
    int pair = (y * w + (x & ~1)) * 2;
    float Y = (float)src[(y * w + x) * 2];
    float U = (float)src[pair + 1] - 128.0f;
    float V = (float)src[pair + 3] - 128.0f;
    float v;
    if (c == 0) v = Y + 1.402f * V;
    else if (c == 1) v = Y - 0.344136f * U - 0.714136f * V;
    else v = Y + 1.772f * U;
    return fminf(fmaxf(v, 0.0f), 255.0f);
}

extern "C" __global__ void kestrel_preprocess(
    const unsigned char* src, int format, int src_w, int src_h,
    float* dst, int dst_w, int dst_h, int rx, int ry, int rw, int rh, float lo, float hi)
{
    int ox = blockIdx.x * blockDim.x + threadIdx.x;
    int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= dst_w || oy >= dst_h) return;
    if (ox < rx || oy < ry || ox >= rx + rw || oy >= ry + rh) {
        for (int c = 0; c < 3; c++) dst[(c * dst_h + oy) * dst_w + ox] = lo;
        return;
    }
    float sx = ((float)(ox - rx) + 0.5f) * ((float)src_w / (float)rw) - 0.5f;
    float sy = ((float)(oy - ry) + 0.5f) * ((float)src_h / (float)rh) - 0.5f;
    sx = fminf(fmaxf(sx, 0.0f), (float)(src_w - 1));
    sy = fminf(fmaxf(sy, 0.0f), (float)(src_h - 1));
    int x0 = (int)floorf(sx);
    int y0 = (int)floorf(sy);
    int x1 = min(x0 + 1, src_w - 1);
    int y1 = min(y0 + 1, src_h - 1);
    float fx = sx - (float)x0;
    float fy = sy - (float)y0;
    float scale = (hi - lo) / 255.0f;
    for (int c = 0; c < 3; c++) {
        float top = kestrel_channel(src, format, src_w, x0, y0, c) * (1.0f - fx) + kestrel_channel(src, format, src_w, x1, y0, c) * fx;
        float bottom = kestrel_channel(src, format, src_w, x0, y1, c) * (1.0f - fx) + kestrel_channel(src, format, src_w, x1, y1, c) * fx;
        float v = top * (1.0f - fy) + bottom * fy;
        dst[(c * dst_h + oy) * dst_w + ox] = v * scale + lo;
    }
}
"#;

fn channel(src: &[u8], format: FrameFormat, w: usize, x: usize, y: usize, c: usize) -> f32 {
    match format {
        FrameFormat::Rgb => f32::from(src[(y * w + x) * 3 + c]),
        FrameFormat::Yuyv => {
            let pair = (y * w + (x & !1)) * 2;
            let luma = f32::from(src[(y * w + x) * 2]);
            let u = f32::from(src[pair + 1]) - 128.0;
            let v = f32::from(src[pair + 3]) - 128.0;
            let value = match c {
                0 => luma + 1.402 * v,
                1 => luma - 0.344136 * u - 0.714136 * v,
                _ => luma + 1.772 * u,
            };
            value.clamp(0.0, 255.0)
        }
    }
}

/// The CPU reference of `kestrel_preprocess`: same operations, same order, f32 throughout.
pub fn preprocess_reference(
    src: &[u8],
    format: FrameFormat,
    (src_w, src_h): (usize, usize),
    canvas: Canvas,
    (lo, hi): (f32, f32),
) -> Vec<f32> {
    let (dst_w, dst_h) = (canvas.width, canvas.height);
    let (rx, ry, rw, rh) = canvas.inner;
    let mut dst = vec![lo; 3 * dst_w * dst_h];
    let scale = (hi - lo) / 255.0;
    for oy in ry..ry + rh {
        for ox in rx..rx + rw {
            let sx = (((ox - rx) as f32 + 0.5) * (src_w as f32 / rw as f32) - 0.5).clamp(0.0, (src_w - 1) as f32);
            let sy = (((oy - ry) as f32 + 0.5) * (src_h as f32 / rh as f32) - 0.5).clamp(0.0, (src_h - 1) as f32);
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(src_w - 1), (y0 + 1).min(src_h - 1));
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            for c in 0..3 {
                let at = |x, y| channel(src, format, src_w, x, y, c);
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                let v = top * (1.0 - fy) + bottom * fy;
                dst[(c * dst_h + oy) * dst_w + ox] = v * scale + lo;
            }
        }
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent, double-precision bilinear resize by the textbook definition.
    fn independent(src: &[u8], (w, h): (usize, usize), (dw, dh): (usize, usize), (lo, hi): (f64, f64)) -> Vec<f64> {
        let mut out = vec![0.0; 3 * dw * dh];
        for c in 0..3 {
            for oy in 0..dh {
                for ox in 0..dw {
                    let sx = (((ox as f64 + 0.5) * w as f64 / dw as f64) - 0.5).clamp(0.0, (w - 1) as f64);
                    let sy = (((oy as f64 + 0.5) * h as f64 / dh as f64) - 0.5).clamp(0.0, (h - 1) as f64);
                    let mut acc = 0.0;
                    for (y, wy) in
                        [(sy.floor(), 1.0 - sy.fract()), ((sy.floor() + 1.0).min((h - 1) as f64), sy.fract())]
                    {
                        for (x, wx) in
                            [(sx.floor(), 1.0 - sx.fract()), ((sx.floor() + 1.0).min((w - 1) as f64), sx.fract())]
                        {
                            acc += wx * wy * f64::from(src[((y as usize) * w + x as usize) * 3 + c]);
                        }
                    }
                    out[(c * dh + oy) * dw + ox] = acc / 255.0 * (hi - lo) + lo;
                }
            }
        }
        out
    }

    fn frame(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    #[test]
    fn reference_matches_an_independent_bilinear_resize() {
        for (i, &(w, h, dw, dh)) in
            [(64, 48, 128, 128), (640, 480, 128, 128), (31, 17, 28, 28), (128, 128, 128, 128)].iter().enumerate()
        {
            let src = frame(w * h * 3, 0x1234_5678 + i as u64);
            let got = preprocess_reference(&src, FrameFormat::Rgb, (w, h), Canvas::stretch(dw, dh), (-1.0, 1.0));
            let want = independent(&src, (w, h), (dw, dh), (-1.0, 1.0));
            assert_eq!((got.len(), want.len()), (3 * dw * dh, 3 * dw * dh));
            for (g, e) in got.iter().zip(&want) {
                assert!((f64::from(*g) - e).abs() < 2e-5, "{w}x{h} -> {dw}x{dh}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn same_size_is_the_identity_up_to_normalization() {
        let src = frame(16 * 8 * 3, 99);
        let got = preprocess_reference(&src, FrameFormat::Rgb, (16, 8), Canvas::stretch(16, 8), (0.0, 255.0));
        for c in 0..3 {
            for p in 0..16 * 8 {
                assert_eq!(got[c * 128 + p], f32::from(src[p * 3 + c]));
            }
        }
    }

    #[test]
    fn yuyv_gray_pixels_stay_gray() {
        // U = V = 128 means no color: R = G = B = Y.
        let src: Vec<u8> = (0..8 * 4).flat_map(|i| [(i * 7 % 256) as u8, 128]).collect();
        let got = preprocess_reference(&src, FrameFormat::Yuyv, (8, 4), Canvas::stretch(8, 4), (0.0, 255.0));
        for p in 0..32 {
            assert_eq!(got[p], got[32 + p]);
            assert_eq!(got[p], got[64 + p]);
            assert_eq!(got[p], f32::from(src[p * 2]));
        }
    }

    /// Letterboxed: black (`lo`) outside the rectangle, and inside it exactly the frame
    /// stretched onto a tensor of the rectangle's size.
    #[test]
    fn letterbox_is_a_stretch_into_the_rectangle_with_black_around() {
        let (w, h) = (64, 48);
        let src = frame(w * h * 3, 7);
        let canvas = Canvas { width: 32, height: 32, inner: (0, 4, 32, 24) };
        assert!(canvas.is_valid());
        let got = preprocess_reference(&src, FrameFormat::Rgb, (w, h), canvas, (-1.0, 1.0));
        let inner = preprocess_reference(&src, FrameFormat::Rgb, (w, h), Canvas::stretch(32, 24), (-1.0, 1.0));
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let v = got[(c * 32 + y) * 32 + x];
                    match y.checked_sub(4).filter(|&iy| iy < 24) {
                        Some(iy) => assert_eq!(v, inner[(c * 24 + iy) * 32 + x], "({c}, {y}, {x})"),
                        None => assert_eq!(v, -1.0, "({c}, {y}, {x})"),
                    }
                }
            }
        }
        assert!(!Canvas { width: 32, height: 32, inner: (1, 0, 32, 32) }.is_valid());
    }
}
