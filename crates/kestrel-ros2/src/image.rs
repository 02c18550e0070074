//! `sensor_msgs/Image` and `CompressedImage` to packed RGB, every size checked before a byte
//! is read: a malformed message is an [`ImageError`], never a panic or a read past the data.

use kestrel_vision::image::RgbImage;
use kestrel_vision::image_io::{decode_rgb, MAX_SIDE};

use crate::msg::{CompressedImage, Image};
use crate::ImageError;

/// The pixel layouts accepted (ROS `image_encodings` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Rgb8,
    Bgr8,
    Rgba8,
    Bgra8,
    Mono8,
    /// `yuv422`: U Y0 V Y1 (UYVY).
    Uyvy,
    /// `yuv422_yuy2`: Y0 U Y1 V (YUYV).
    Yuyv,
}

impl Encoding {
    fn parse(name: &str) -> Result<Encoding, ImageError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "rgb8" => Encoding::Rgb8,
            "bgr8" => Encoding::Bgr8,
            "rgba8" => Encoding::Rgba8,
            "bgra8" => Encoding::Bgra8,
            "mono8" | "8uc1" => Encoding::Mono8,
            "yuv422" | "uyvy" => Encoding::Uyvy,
            "yuv422_yuy2" | "yuyv" | "yuy2" => Encoding::Yuyv,
            _ => return Err(ImageError::Encoding(name.to_string())),
        })
    }

    fn bytes_per_pixel(self) -> u32 {
        match self {
            Encoding::Rgb8 | Encoding::Bgr8 => 3,
            Encoding::Rgba8 | Encoding::Bgra8 => 4,
            Encoding::Mono8 => 1,
            Encoding::Uyvy | Encoding::Yuyv => 2,
        }
    }
}

/// Checks `img` and writes its pixels as packed RGB into `out` (resized to width × height × 3,
/// so a pooled buffer is reused). Returns the width and height.
pub fn image_to_rgb(img: &Image, out: &mut Vec<u8>) -> Result<(u32, u32), ImageError> {
    let encoding = Encoding::parse(&img.encoding)?;
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(ImageError::Size { width: w, height: h, max: MAX_SIDE });
    }
    let bpp = encoding.bytes_per_pixel();
    let row = u64::from(w) * u64::from(bpp);
    if u64::from(img.step) < row {
        return Err(ImageError::Step { step: img.step, bytes_per_pixel: bpp, row });
    }
    let needed = u64::from(img.step) * u64::from(h);
    if (img.data.0.len() as u64) < needed {
        return Err(ImageError::Short { len: img.data.0.len(), needed });
    }
    if matches!(encoding, Encoding::Uyvy | Encoding::Yuyv) && w % 2 == 1 {
        return Err(ImageError::OddWidth(w));
    }
    let (w, step, row) = (w as usize, img.step as usize, row as usize);
    out.resize(w * h as usize * 3, 0);
    for (src, dst) in img.data.0.chunks(step).zip(out.chunks_exact_mut(w * 3)) {
        convert_row(encoding, &src[..row], dst);
    }
    Ok((img.width, img.height))
}

fn convert_row(encoding: Encoding, src: &[u8], dst: &mut [u8]) {
    match encoding {
        Encoding::Rgb8 => dst.copy_from_slice(src),
        Encoding::Bgr8 => {
            for (s, d) in src.chunks_exact(3).zip(dst.chunks_exact_mut(3)) {
                d.copy_from_slice(&[s[2], s[1], s[0]]);
            }
        }
        Encoding::Rgba8 => {
            for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
                d.copy_from_slice(&s[..3]);
            }
        }
        Encoding::Bgra8 => {
            for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
                d.copy_from_slice(&[s[2], s[1], s[0]]);
            }
        }
        Encoding::Mono8 => {
            for (&s, d) in src.iter().zip(dst.chunks_exact_mut(3)) {
                d.fill(s);
            }
        }
        Encoding::Uyvy | Encoding::Yuyv => {
            let (y0, u, y1, v) = if encoding == Encoding::Uyvy { (1, 0, 3, 2) } else { (0, 1, 2, 3) };
            for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
                d[..3].copy_from_slice(&yuv_to_rgb(s[y0], s[u], s[v]));
                d[3..].copy_from_slice(&yuv_to_rgb(s[y1], s[u], s[v]));
            }
        }
    }
}

/// BT.601 limited range, in integers (as GStreamer's `videoconvert` reads SD camera YUV).
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let (d, e) = (i32::from(u) - 128, i32::from(v) - 128);
    let clip = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [clip(c + 409 * e), clip(c - 100 * d - 208 * e), clip(c + 516 * d)]
}

/// Decodes a `CompressedImage` (JPEG or PNG, told by its bytes; `format` is only reported).
pub fn compressed_to_rgb(img: &CompressedImage) -> Result<RgbImage, ImageError> {
    decode_rgb(&img.data.0).map_err(|why| ImageError::Compressed { format: img.format.clone(), why })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Bytes;

    fn image(encoding: &str, width: u32, height: u32, step: u32, data: Vec<u8>) -> Image {
        Image { encoding: encoding.into(), width, height, step, data: Bytes(data), ..Image::default() }
    }

    #[test]
    fn each_encoding_lands_as_rgb_and_row_padding_is_skipped() {
        let mut out = Vec::new();
        // 2×1 pixels with 2 bytes of row padding.
        let bgr = image("bgr8", 2, 1, 8, vec![1, 2, 3, 4, 5, 6, 99, 99]);
        assert_eq!(image_to_rgb(&bgr, &mut out), Ok((2, 1)));
        assert_eq!(out, [3, 2, 1, 6, 5, 4]);
        let mono = image("mono8", 2, 2, 2, vec![7, 8, 9, 10]);
        image_to_rgb(&mono, &mut out).unwrap();
        assert_eq!(out, [7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10, 10]);
        let bgra = image("bgra8", 1, 1, 4, vec![1, 2, 3, 255]);
        image_to_rgb(&bgra, &mut out).unwrap();
        assert_eq!(out, [3, 2, 1]);
        // Y = 235 with neutral chroma is white; Y = 16 black: both orders.
        let uyvy = image("yuv422", 2, 1, 4, vec![128, 235, 128, 16]);
        image_to_rgb(&uyvy, &mut out).unwrap();
        assert_eq!(out, [255, 255, 255, 0, 0, 0]);
        let yuyv = image("yuv422_yuy2", 2, 1, 4, vec![16, 128, 235, 128]);
        image_to_rgb(&yuyv, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 255, 255, 255]);
        // Pure red in BT.601 limited range (Y 81, U 90, V 240) comes back red within rounding.
        let [r, g, b] = yuv_to_rgb(81, 90, 240);
        assert!(r >= 253 && g <= 2 && b <= 2, "{r} {g} {b}");
    }

    #[test]
    fn malformed_images_are_errors_before_any_read() {
        let mut out = Vec::new();
        let cases = [
            (image("rgb16", 2, 2, 6, vec![0; 12]), "rgb16"),
            (image("rgb8", 2, 2, 5, vec![0; 12]), "step 5"),
            (image("rgb8", 2, 2, 6, vec![0; 11]), "data is 11 bytes"),
            (image("rgb8", 0, 2, 0, vec![]), "size 0x2"),
            (image("rgb8", 20_000, 1, 60_000, vec![]), "size 20000x1"),
            (image("yuv422", 3, 1, 6, vec![0; 6]), "even width"),
            // step × height overflows 32 bits: checked in 64.
            (image("mono8", 16_000, 16_000, u32::MAX, vec![0; 16]), "less than height × step"),
        ];
        for (img, expected) in cases {
            let e = image_to_rgb(&img, &mut out).unwrap_err().to_string();
            assert!(e.contains(expected), "{e} (expected {expected})");
        }
        let junk = CompressedImage { format: "jpeg".into(), data: Bytes(vec![0xff, 0xd8, 0, 1]), ..Default::default() };
        assert!(compressed_to_rgb(&junk).unwrap_err().to_string().starts_with("compressed image (jpeg)"));
    }
}
