//! Image → input tensor, as the model's config says; and the inverse map for boxes.

use image::RgbImage;

use crate::config::{Color, Layout, Preprocess, Resize};

/// A preprocessed input tensor (batch of one) and how to map its coordinates back.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub frame: FrameMap,
}

/// Maps normalized model coordinates back to source-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameMap {
    pub input_width: f32,
    pub input_height: f32,
    /// Source pixels per model pixel, per axis.
    pub scale_x: f32,
    pub scale_y: f32,
    /// Padding (model pixels) before the image on each axis.
    pub pad_x: f32,
    pub pad_y: f32,
    /// The source image's size in pixels (boxes are clipped to it where upstream clips).
    pub source_width: f32,
    pub source_height: f32,
}

impl FrameMap {
    /// An input of `input` (width, height) model pixels, each `scale` (x, y) source pixels, no
    /// padding: a stretched image, or (scale 1) a tensor fed as it is.
    pub fn scaled(input: (f32, f32), scale: (f32, f32)) -> FrameMap {
        FrameMap {
            input_width: input.0,
            input_height: input.1,
            scale_x: scale.0,
            scale_y: scale.1,
            pad_x: 0.0,
            pad_y: 0.0,
            source_width: input.0 * scale.0,
            source_height: input.1 * scale.1,
        }
    }

    /// Normalized model coordinates (0..1 over the input) → source pixels.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        ((x * self.input_width - self.pad_x) * self.scale_x, (y * self.input_height - self.pad_y) * self.scale_y)
    }

    /// Source pixels → normalized model coordinates (the inverse of [`FrameMap::to_source`]).
    pub fn to_model(&self, x: f32, y: f32) -> (f32, f32) {
        ((x / self.scale_x + self.pad_x) / self.input_width, (y / self.scale_y + self.pad_y) / self.input_height)
    }
}

/// Resizes, converts and normalizes one image.
pub fn preprocess(img: &RgbImage, p: &Preprocess) -> Prepared {
    let mut pre = Preprocessor::new(*p);
    let frame = pre.run(img);
    Prepared { shape: pre.shape().to_vec(), data: pre.tensor().to_vec(), frame }
}

/// Where a source image lands in the model input: its region `crop` (x, y, width, height; the
/// whole image unless centre-cropped) resized to `inner`, placed at `offset` (the rest padded),
/// and how to map boxes back. Shared by the CPU path and the CUDA kernel's caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub crop: (u32, u32, u32, u32),
    pub inner: (u32, u32),
    pub offset: (u32, u32),
    pub frame: FrameMap,
}

impl Placement {
    pub fn new(p: &Preprocess, src_w: u32, src_h: u32) -> Placement {
        let (w, h) = (p.width, p.height);
        let (sw, sh) = (src_w.max(1) as f32, src_h.max(1) as f32);
        let whole = (0, 0, src_w, src_h);
        let frame = |scale_x: f32, scale_y: f32, pad_x: f32, pad_y: f32| FrameMap {
            input_width: w as f32,
            input_height: h as f32,
            scale_x,
            scale_y,
            pad_x,
            pad_y,
            source_width: sw,
            source_height: sh,
        };
        match p.resize {
            Resize::Stretch => Placement {
                crop: whole,
                inner: (w, h),
                offset: (0, 0),
                frame: frame(sw / w as f32, sh / h as f32, 0.0, 0.0),
            },
            Resize::Letterbox => {
                let s = (w as f32 / sw).min(h as f32 / sh);
                let nw = ((sw * s).round() as u32).clamp(1, w);
                let nh = ((sh * s).round() as u32).clamp(1, h);
                let (ox, oy) = ((w - nw) / 2, (h - nh) / 2);
                Placement {
                    crop: whole,
                    inner: (nw, nh),
                    offset: (ox, oy),
                    frame: frame(1.0 / s, 1.0 / s, ox as f32, oy as f32),
                }
            }
            Resize::Crop => {
                let s = (w as f32 / sw).max(h as f32 / sh);
                let cw = ((w as f32 / s).round() as u32).clamp(1, src_w.max(1));
                let ch = ((h as f32 / s).round() as u32).clamp(1, src_h.max(1));
                let (x0, y0) = ((src_w.max(1) - cw) / 2, (src_h.max(1) - ch) / 2);
                let (scale_x, scale_y) = (cw as f32 / w as f32, ch as f32 / h as f32);
                Placement {
                    crop: (x0, y0, cw, ch),
                    inner: (w, h),
                    offset: (0, 0),
                    frame: frame(scale_x, scale_y, -(x0 as f32) / scale_x, -(y0 as f32) / scale_y),
                }
            }
        }
    }
}

/// Preprocessing that reuses its buffers and resampling weights from frame to frame: after the
/// first frame of a size, [`Preprocessor::run`] allocates nothing. Its output is bit-identical
/// to `image`'s `resize` with `FilterType::Triangle` followed by the canvas and normalization
/// (tested against it), so a video frame gives exactly what `kestrel run` gives on the same
/// image.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    p: Preprocess,
    /// Source size the taps and buffers were made for.
    source: (u32, u32),
    /// The source region resized (the whole source unless centre-cropped).
    crop: (u32, u32, u32, u32),
    /// Size of the resized image inside the input (the whole input unless letterboxed).
    inner: (u32, u32),
    offset: (u32, u32),
    frame: FrameMap,
    rows: Taps,
    cols: Taps,
    /// The vertical pass: `inner.1` rows of the full source width, RGB, f32.
    vertical: Vec<f32>,
    /// The resized image, RGB, u8.
    resized: Vec<u8>,
    tensor: Vec<f32>,
    shape: Vec<usize>,
}

/// Triangle-filter taps for one axis, as `image` computes them.
#[derive(Debug, Clone, Default)]
struct Taps {
    /// Per output index: first source index, number of taps, offset into `weights`.
    spans: Vec<(usize, usize, usize)>,
    weights: Vec<f32>,
}

impl Taps {
    fn new(src: u32, dst: u32) -> Taps {
        let mut taps = Taps::default();
        let ratio = src as f32 / dst as f32;
        let sratio = if ratio < 1.0 { 1.0 } else { ratio };
        let support = sratio; // the triangle's support is 1
        for out in 0..dst {
            let centre = (out as f32 + 0.5) * ratio;
            let left = ((centre - support).floor() as i64).clamp(0, i64::from(src) - 1);
            let right = ((centre + support).ceil() as i64).clamp(left + 1, i64::from(src));
            let centre = centre - 0.5;
            let start = taps.weights.len();
            let mut sum = 0.0;
            for i in left..right {
                let x = (i as f32 - centre) / sratio;
                let w = if x.abs() < 1.0 { 1.0 - x.abs() } else { 0.0 };
                taps.weights.push(w);
                sum += w;
            }
            for w in &mut taps.weights[start..] {
                *w /= sum;
            }
            taps.spans.push((left as usize, (right - left) as usize, start));
        }
        taps
    }

    /// The same taps over a region that starts `by` pixels into the source.
    fn shifted(mut self, by: u32) -> Taps {
        for span in &mut self.spans {
            span.0 += by as usize;
        }
        self
    }
}

impl Preprocessor {
    pub fn new(p: Preprocess) -> Preprocessor {
        let shape = p.shape();
        let frame = FrameMap::scaled((0.0, 0.0), (1.0, 1.0));
        Preprocessor {
            p,
            source: (0, 0),
            crop: (0, 0, 0, 0),
            inner: (0, 0),
            offset: (0, 0),
            frame,
            rows: Taps::default(),
            cols: Taps::default(),
            vertical: Vec::new(),
            resized: Vec::new(),
            tensor: vec![0.0; shape.iter().product()],
            shape,
        }
    }

    /// The input tensor's shape (batch of one).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The tensor the last [`run`](Self::run) wrote.
    pub fn tensor(&self) -> &[f32] {
        &self.tensor
    }

    /// Preprocesses `img` into [`tensor`](Self::tensor); returns how to map boxes back.
    pub fn run(&mut self, img: &RgbImage) -> FrameMap {
        if (img.width(), img.height()) != self.source {
            self.fit(img.width(), img.height());
        }
        self.resize(img);
        self.normalize();
        self.frame
    }

    /// Layout, taps and buffers for a new source size.
    fn fit(&mut self, src_w: u32, src_h: u32) {
        let Placement { crop, inner, offset, frame } = Placement::new(&self.p, src_w, src_h);
        self.source = (src_w, src_h);
        (self.crop, self.inner, self.offset, self.frame) = (crop, inner, offset, frame);
        if src_w > 0 && src_h > 0 {
            self.rows = Taps::new(crop.3, inner.1).shifted(crop.1);
            self.cols = Taps::new(crop.2, inner.0).shifted(crop.0);
        }
        self.vertical = vec![0.0; src_w as usize * inner.1 as usize * 3];
        self.resized = vec![0; inner.0 as usize * inner.1 as usize * 3];
    }

    /// `image`'s two-pass triangle resize (rows, then columns), in the same order of operations.
    fn resize(&mut self, img: &RgbImage) {
        let (src_w, src_h) = (img.width() as usize, img.height() as usize);
        let (nw, nh) = (self.inner.0 as usize, self.inner.1 as usize);
        let src = img.as_raw();
        if src_w == 0 || src_h == 0 {
            self.resized.fill(0);
            return;
        }
        if self.crop == (0, 0, nw as u32, nh as u32) && (src_w, src_h) == (nw, nh) {
            self.resized.copy_from_slice(src);
            return;
        }
        // Tap by tap over whole rows (vectorizes); each value still sums its taps in order.
        for (out_y, &(top, n, at)) in self.rows.spans.iter().enumerate() {
            let row = &mut self.vertical[out_y * src_w * 3..(out_y + 1) * src_w * 3];
            row.fill(0.0);
            for (i, &w) in self.rows.weights[at..at + n].iter().enumerate() {
                let line = &src[(top + i) * src_w * 3..(top + i + 1) * src_w * 3];
                for (acc, &v) in row.iter_mut().zip(line) {
                    *acc += f32::from(v) * w;
                }
            }
        }
        for (out_x, &(left, n, at)) in self.cols.spans.iter().enumerate() {
            let ws = &self.cols.weights[at..at + n];
            for y in 0..nh {
                let row = &self.vertical[y * src_w * 3..];
                let mut acc = [0.0f32; 3];
                for (i, &w) in ws.iter().enumerate() {
                    let p = &row[(left + i) * 3..][..3];
                    for c in 0..3 {
                        acc[c] += p[c] * w;
                    }
                }
                let out = &mut self.resized[(y * nw + out_x) * 3..][..3];
                for c in 0..3 {
                    out[c] = acc[c].clamp(0.0, 255.0).round() as u8;
                }
            }
        }
    }

    /// The resized image on the input canvas (padded around a letterbox), converted and scaled.
    fn normalize(&mut self) {
        let p = &self.p;
        let (w, h) = (p.width as usize, p.height as usize);
        let (nw, nh) = (self.inner.0 as usize, self.inner.1 as usize);
        let (ox, oy) = (self.offset.0 as usize, self.offset.1 as usize);
        let channels = p.color.channels();
        let pad = [p.pad_value; 3];
        for y in 0..h {
            for x in 0..w {
                let inside = x >= ox && x < ox + nw && y >= oy && y < oy + nh;
                let px: [u8; 3] = if inside {
                    let at = ((y - oy) * nw + (x - ox)) * 3;
                    [self.resized[at], self.resized[at + 1], self.resized[at + 2]]
                } else {
                    pad
                };
                for c in 0..channels {
                    let ix = match p.layout {
                        Layout::Nchw => c * h * w + y * w + x,
                        Layout::Nhwc => (y * w + x) * channels + c,
                    };
                    self.tensor[ix] = p.value(channel(px, p.color, c), c);
                }
            }
        }
    }
}

/// Channel `c` of an RGB pixel in the model's colour order.
pub fn channel(px: [u8; 3], color: Color, c: usize) -> u8 {
    match color {
        Color::Rgb => px[c],
        Color::Bgr => px[2 - c],
        // ITU-R 601 luma, as PIL's convert("L").
        Color::Gray => ((u32::from(px[0]) * 299 + u32::from(px[1]) * 587 + u32::from(px[2]) * 114 + 500) / 1000) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::imageops::{self, FilterType};
    use image::Rgb;

    /// The reference: `image`'s resize, its canvas, then the normalization loop.
    fn reference(img: &RgbImage, p: &Preprocess) -> Vec<f32> {
        let (w, h) = (p.width, p.height);
        let (src_w, src_h) = (img.width().max(1) as f32, img.height().max(1) as f32);
        let canvas = match p.resize {
            Resize::Stretch => imageops::resize(img, w, h, FilterType::Triangle),
            Resize::Crop => {
                let s = (w as f32 / src_w).max(h as f32 / src_h);
                let cw = ((w as f32 / s).round() as u32).clamp(1, img.width().max(1));
                let ch = ((h as f32 / s).round() as u32).clamp(1, img.height().max(1));
                let (x0, y0) = ((img.width().max(1) - cw) / 2, (img.height().max(1) - ch) / 2);
                let region = imageops::crop_imm(img, x0, y0, cw, ch).to_image();
                imageops::resize(&region, w, h, FilterType::Triangle)
            }
            Resize::Letterbox => {
                let s = (w as f32 / src_w).min(h as f32 / src_h);
                let nw = ((src_w * s).round() as u32).clamp(1, w);
                let nh = ((src_h * s).round() as u32).clamp(1, h);
                let resized = imageops::resize(img, nw, nh, FilterType::Triangle);
                let mut canvas = RgbImage::from_pixel(w, h, Rgb([p.pad_value; 3]));
                imageops::replace(&mut canvas, &resized, i64::from((w - nw) / 2), i64::from((h - nh) / 2));
                canvas
            }
        };
        let channels = if p.color == Color::Gray { 1 } else { 3 };
        let (lo, hi) = p.range;
        let (wu, hu) = (w as usize, h as usize);
        let mut data = vec![0.0f32; wu * hu * channels];
        for (x, y, px) in canvas.enumerate_pixels() {
            let (x, y) = (x as usize, y as usize);
            for c in 0..channels {
                let v = match p.color {
                    Color::Rgb => px.0[c],
                    Color::Bgr => px.0[2 - c],
                    Color::Gray => {
                        ((u32::from(px.0[0]) * 299 + u32::from(px.0[1]) * 587 + u32::from(px.0[2]) * 114 + 500) / 1000)
                            as u8
                    }
                };
                let v = if p.invert { 255 - v } else { v };
                let ix = match p.layout {
                    Layout::Nchw => c * hu * wu + y * wu + x,
                    Layout::Nhwc => (y * wu + x) * channels + c,
                };
                data[ix] = (f32::from(v) / 255.0 * (hi - lo) + lo - p.mean[c]) / p.std[c];
            }
        }
        data
    }

    #[test]
    fn reused_preprocessing_is_bit_identical_to_image_resize() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
        let plain = ([0.0; 3], [1.0; 3]);
        let configs = [
            (128, 128, Layout::Nchw, Color::Rgb, Resize::Letterbox, false, (-1.0, 1.0), plain, 0),
            (96, 64, Layout::Nhwc, Color::Rgb, Resize::Stretch, false, (0.0, 1.0), plain, 0),
            (28, 28, Layout::Nhwc, Color::Gray, Resize::Stretch, true, (0.0, 1.0), plain, 0),
            (40, 30, Layout::Nchw, Color::Gray, Resize::Letterbox, false, (0.0, 255.0), plain, 0),
            (64, 48, Layout::Nchw, Color::Bgr, Resize::Letterbox, false, (0.0, 1.0), imagenet, 114),
            (56, 56, Layout::Nchw, Color::Rgb, Resize::Crop, false, (0.0, 1.0), imagenet, 0),
            (30, 50, Layout::Nhwc, Color::Bgr, Resize::Crop, false, (0.0, 255.0), ([104.0, 117.0, 123.0], [1.0; 3]), 0),
        ];
        for (width, height, layout, color, resize, invert, range, (mean, std), pad_value) in configs {
            let p = Preprocess { width, height, layout, color, resize, invert, range, mean, std, pad_value };
            let mut pre = Preprocessor::new(p);
            // Several sizes (down, up, same, odd), and each size twice so the cached taps are reused.
            for (sw, sh) in [(640, 480), (640, 480), (37, 91), (width, height), (300, 17), (1, 1), (37, 91)] {
                let img = RgbImage::from_fn(sw, sh, |_, _| {
                    let v = next();
                    Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
                });
                pre.run(&img);
                let want = reference(&img, &p);
                assert!(pre.tensor() == want.as_slice(), "{p:?} from {sw}x{sh}");
            }
        }
    }
}
