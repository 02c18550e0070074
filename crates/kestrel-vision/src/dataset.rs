//! Labeled image sets in the IDX format (MNIST, Fashion-MNIST), gzip-compressed or not.

use std::io::Read;
use std::path::Path;

use crate::VisionError;

/// Largest decompressed IDX file we accept.
const MAX_IDX_BYTES: u64 = 256 << 20;

/// Gray 8-bit images with one class label each.
#[derive(Debug, Clone)]
pub struct LabeledImages {
    pub width: usize,
    pub height: usize,
    /// `len() * width * height` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl LabeledImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.width * self.height;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Reads an images file and its labels file, checking magic numbers, counts and sizes.
    pub fn read_idx(images: &Path, labels: &Path) -> Result<LabeledImages, VisionError> {
        let img = read_maybe_gz(images)?;
        let lab = read_maybe_gz(labels)?;
        let bad = |path: &Path, message: String| VisionError::Dataset { path: path.to_path_buf(), message };
        let be = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        if img.len() < 16 || be(&img, 0) != 0x0803 {
            return Err(bad(images, "not an IDX image file (magic 0x00000803)".into()));
        }
        if lab.len() < 8 || be(&lab, 0) != 0x0801 {
            return Err(bad(labels, "not an IDX label file (magic 0x00000801)".into()));
        }
        let (n, height, width) = (be(&img, 4), be(&img, 8), be(&img, 12));
        if width == 0 || height == 0 || width > 4096 || height > 4096 {
            return Err(bad(images, format!("image size {width}x{height} is out of range")));
        }
        let need = n.checked_mul(width * height).and_then(|p| p.checked_add(16));
        if need != Some(img.len()) {
            return Err(bad(
                images,
                format!("{n} images of {width}x{height} do not match the file's {} bytes", img.len()),
            ));
        }
        if be(&lab, 4) != n || lab.len() != 8 + n {
            return Err(bad(labels, format!("holds {} labels, the images file {n} images", be(&lab, 4))));
        }
        Ok(LabeledImages { width, height, pixels: img[16..].to_vec(), labels: lab[8..].to_vec() })
    }
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, VisionError> {
    let io = |source| VisionError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).take(MAX_IDX_BYTES + 1).read_to_end(&mut out).map_err(io)?;
    } else {
        file.take(MAX_IDX_BYTES + 1).read_to_end(&mut out).map_err(io)?;
    }
    if out.len() as u64 > MAX_IDX_BYTES {
        return Err(VisionError::Dataset {
            path: path.to_path_buf(),
            message: format!("larger than {MAX_IDX_BYTES} bytes"),
        });
    }
    Ok(out)
}
