//! Loading and saving images with hard limits: a hostile file cannot make us allocate gigabytes.

use std::path::Path;

use image::{ImageReader, RgbImage};

use crate::VisionError;

/// Largest width or height we decode.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoder allocation.
pub const MAX_ALLOC: u64 = 512 << 20;

/// Reads an image file (PNG or JPEG) as 8-bit RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage, VisionError> {
    let io = |source| VisionError::Io { path: path.to_path_buf(), source };
    let reader = ImageReader::open(path).map_err(io)?.with_guessed_format().map_err(io)?;
    decode_limited(reader).map_err(|message| VisionError::Image { path: path.to_path_buf(), message })
}

/// Decodes a PNG or JPEG held in memory (a compressed camera frame) as 8-bit RGB, with the
/// same limits as [`load_rgb`].
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    decode_limited(reader)
}

fn decode_limited<R: std::io::BufRead + std::io::Seek>(mut reader: ImageReader<R>) -> Result<RgbImage, String> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    if reader.format().is_none() {
        return Err("not a PNG or JPEG file".into());
    }
    let img = reader.decode().map_err(|e| e.to_string())?;
    Ok(img.to_rgb8())
}

/// Writes a PNG atomically (temporary file, then rename).
pub fn save_png(img: &RgbImage, path: &Path) -> Result<(), VisionError> {
    let err = |message: String| VisionError::Write { path: path.to_path_buf(), message };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = img
        .save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|e| err(e.to_string()))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| err(e.to_string())));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
