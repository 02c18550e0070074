//! Image → input tensor, as the model's config says; and the inverse map for boxes.

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

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
}

impl FrameMap {
    /// Normalized model coordinates (0..1 over the input) → source pixels.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        ((x * self.input_width - self.pad_x) * self.scale_x, (y * self.input_height - self.pad_y) * self.scale_y)
    }
}

/// Resizes, converts and normalizes one image.
pub fn preprocess(img: &RgbImage, p: &Preprocess) -> Prepared {
    let (w, h) = (p.width, p.height);
    let (src_w, src_h) = (img.width().max(1) as f32, img.height().max(1) as f32);
    let (canvas, frame) = match p.resize {
        Resize::Stretch => (
            imageops::resize(img, w, h, FilterType::Triangle),
            FrameMap {
                input_width: w as f32,
                input_height: h as f32,
                scale_x: src_w / w as f32,
                scale_y: src_h / h as f32,
                pad_x: 0.0,
                pad_y: 0.0,
            },
        ),
        Resize::Letterbox => {
            let s = (w as f32 / src_w).min(h as f32 / src_h);
            let nw = ((src_w * s).round() as u32).clamp(1, w);
            let nh = ((src_h * s).round() as u32).clamp(1, h);
            let resized = imageops::resize(img, nw, nh, FilterType::Triangle);
            let mut canvas = RgbImage::from_pixel(w, h, Rgb([0, 0, 0]));
            let (ox, oy) = ((w - nw) / 2, (h - nh) / 2);
            imageops::replace(&mut canvas, &resized, i64::from(ox), i64::from(oy));
            let frame = FrameMap {
                input_width: w as f32,
                input_height: h as f32,
                scale_x: 1.0 / s,
                scale_y: 1.0 / s,
                pad_x: ox as f32,
                pad_y: oy as f32,
            };
            (canvas, frame)
        }
    };
    let channels = match p.color {
        Color::Rgb => 3,
        Color::Gray => 1,
    };
    let (lo, hi) = p.range;
    let norm = |v: u8| {
        let v = if p.invert { 255 - v } else { v };
        f32::from(v) / 255.0 * (hi - lo) + lo
    };
    let (wu, hu) = (w as usize, h as usize);
    let mut data = vec![0.0f32; wu * hu * channels];
    for (x, y, px) in canvas.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        let values: [u8; 3] = px.0;
        for c in 0..channels {
            let v = match p.color {
                Color::Rgb => values[c],
                // ITU-R 601 luma, as PIL's convert("L").
                Color::Gray => {
                    ((u32::from(values[0]) * 299 + u32::from(values[1]) * 587 + u32::from(values[2]) * 114 + 500)
                        / 1000) as u8
                }
            };
            let ix = match p.layout {
                Layout::Nchw => c * hu * wu + y * wu + x,
                Layout::Nhwc => (y * wu + x) * channels + c,
            };
            data[ix] = norm(v);
        }
    }
    let shape = match p.layout {
        Layout::Nchw => vec![1, channels, hu, wu],
        Layout::Nhwc => vec![1, hu, wu, channels],
    };
    Prepared { shape, data, frame }
}
