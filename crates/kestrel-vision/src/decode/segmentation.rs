//! Probability or class maps to regions, as DB text detectors (PP-OCR) are read: pixels above
//! `threshold` (or of one class) joined into 8-connected regions; a region is kept when its
//! mean probability reaches `box_threshold` and its box is at least `min_size` map pixels on
//! each side; its box is then grown by the DB "unclip" distance `area × ratio / perimeter`.
//! Boxes are axis-aligned (PaddleOCR fits rotated rectangles to the region's contour instead:
//! on level text the two agree); each region also carries its outline, the convex hull of its
//! pixels grown by the same distance, for slanted text and blobs. [`Decoder::overlay`] tints
//! an annotated image with the last map's classes.

use serde::{Deserialize, Serialize};

use image::RgbImage;

use super::Detection;
use crate::polygon::{convex_hull, grow};
use crate::preprocess::FrameMap;
use crate::VisionError;

/// The `segmentation` decoder's config (defaults: PaddleOCR's DB post-processing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentationConfig {
    /// Class names for a class map (`[1, C, H, W]`, C > 1); a probability map needs none.
    #[serde(default)]
    pub labels: Vec<String>,
    /// A pixel of a probability map belongs to a region above this.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// A region is kept when its mean probability (class maps: its class's) reaches this.
    #[serde(default = "default_box_threshold")]
    pub box_threshold: f32,
    #[serde(default = "default_min_size")]
    pub min_size: f32,
    /// Growth of each box: `area × unclip_ratio / perimeter` map pixels per side (0: none).
    #[serde(default = "default_unclip")]
    pub unclip_ratio: f32,
    #[serde(default = "default_max")]
    pub max_detections: usize,
    /// Class maps: the background class, whose pixels form no region.
    #[serde(default)]
    pub background: Option<usize>,
}

fn default_threshold() -> f32 {
    0.3
}
fn default_box_threshold() -> f32 {
    0.6
}
fn default_min_size() -> f32 {
    3.0
}
fn default_unclip() -> f32 {
    1.5
}
fn default_max() -> usize {
    1000
}

impl Default for SegmentationConfig {
    fn default() -> SegmentationConfig {
        SegmentationConfig {
            labels: Vec::new(),
            threshold: default_threshold(),
            box_threshold: default_box_threshold(),
            min_size: default_min_size(),
            unclip_ratio: default_unclip(),
            max_detections: default_max(),
            background: None,
        }
    }
}

impl SegmentationConfig {
    pub fn check(&self) -> Result<(), String> {
        let finite =
            [self.threshold, self.box_threshold, self.min_size, self.unclip_ratio].iter().all(|v| v.is_finite());
        if !finite || !(0.0..=100.0).contains(&self.unclip_ratio) || !(1..=100_000).contains(&self.max_detections) {
            return Err(format!(
                "thresholds and min_size must be finite, unclip_ratio within [0, 100] (got {}), max_detections \
                 within 1..=100000 (got {})",
                self.unclip_ratio, self.max_detections
            ));
        }
        Ok(())
    }
}

/// The decoder with its scratch kept between frames.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    /// Class of each pixel of the last map: `u32::MAX` for none.
    class: Vec<u32>,
    /// The last map's width and height.
    size: (usize, usize),
    seen: Vec<bool>,
    stack: Vec<usize>,
    /// Per row of the map, the region's leftmost and rightmost pixel (for its outline).
    rows: Vec<(usize, usize)>,
    corners: Vec<(f32, f32)>,
}

impl Decoder {
    /// Decodes a `[1, C, H, W]` map (C = 1: probabilities; C > 1: per-class scores) into
    /// region boxes in source pixels, best first, into `out`.
    pub fn decode(
        &mut self,
        map: &[f32],
        shape: &[usize],
        frame: &FrameMap,
        p: &SegmentationConfig,
        out: &mut Vec<Detection>,
    ) -> Result<(), VisionError> {
        let (c, h, w) = match shape {
            [1, c, h, w] => (*c, *h, *w),
            [1, h, w] | [h, w] => (1, *h, *w),
            _ => {
                return Err(VisionError::Decode(format!(
                    "segmentation decoder: output shape {shape:?}: expected [1, C, H, W] or [1, H, W]"
                )))
            }
        };
        if map.len() != c * h * w || c == 0 || h == 0 || w == 0 {
            return Err(VisionError::Decode(format!("segmentation decoder: {} values for shape {shape:?}", map.len())));
        }
        if c > 1 && p.labels.len() != c {
            return Err(VisionError::Decode(format!(
                "segmentation decoder: a class map of {c} classes needs {c} labels, the config has {}",
                p.labels.len()
            )));
        }
        let plane = h * w;
        // Each pixel's class (probability maps: 0 above the threshold), and its score.
        self.class.clear();
        self.class.extend((0..plane).map(|i| {
            if c == 1 {
                return if map[i] > p.threshold { 0 } else { u32::MAX };
            }
            let best =
                (0..c).fold(
                    (0, f32::NEG_INFINITY),
                    |b, k| if map[k * plane + i] > b.1 { (k, map[k * plane + i]) } else { b },
                );
            if best.1.is_nan() || Some(best.0) == p.background {
                u32::MAX
            } else {
                best.0 as u32
            }
        }));
        self.size = (w, h);
        self.seen.clear();
        self.seen.resize(plane, false);
        self.rows.clear();
        self.rows.resize(h, (usize::MAX, 0));
        out.clear();
        for start in 0..plane {
            let class = self.class[start];
            if class == u32::MAX || self.seen[start] {
                continue;
            }
            // Flood the 8-connected region of this class.
            let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
            let (mut sum, mut count) = (0.0f64, 0usize);
            self.seen[start] = true;
            self.stack.clear();
            self.stack.push(start);
            while let Some(i) = self.stack.pop() {
                let (x, y) = (i % w, i / w);
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                self.rows[y] = (self.rows[y].0.min(x), self.rows[y].1.max(x));
                sum += f64::from(map[class as usize * plane + i]);
                count += 1;
                for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                    for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        let j = ny * w + nx;
                        if !self.seen[j] && self.class[j] == class {
                            self.seen[j] = true;
                            self.stack.push(j);
                        }
                    }
                }
            }
            let score = (sum / count as f64) as f32;
            // The outline's points: each row's outer pixel corners (a hull needs no more).
            self.corners.clear();
            for (y, row) in self.rows[y0..=y1].iter_mut().enumerate() {
                let (left, right) = std::mem::replace(row, (usize::MAX, 0));
                let (y, left, right) = ((y0 + y) as f32, left as f32, (right + 1) as f32);
                self.corners.extend([(left, y), (left, y + 1.0), (right, y), (right, y + 1.0)]);
            }
            // Pixel edges: a region of columns x0..=x1 spans x0 to x1 + 1.
            let (bw, bh) = ((x1 + 1 - x0) as f32, (y1 + 1 - y0) as f32);
            if score < p.box_threshold || bw.min(bh) < p.min_size {
                continue;
            }
            let distance = bw * bh * p.unclip_ratio / (2.0 * (bw + bh));
            let mut d = Detection::empty();
            d.polygon = convex_hull(&mut self.corners);
            grow(&mut d.polygon, distance);
            d.polygon.iter_mut().for_each(|q| *q = (q.0 / w as f32, q.1 / h as f32));
            (d.x_min, d.y_min) = ((x0 as f32 - distance) / w as f32, (y0 as f32 - distance) / h as f32);
            (d.x_max, d.y_max) = (((x1 + 1) as f32 + distance) / w as f32, ((y1 + 1) as f32 + distance) / h as f32);
            d.score = score;
            if c > 1 {
                d.class = Some(class as usize);
                d.label.clone_from(&p.labels[class as usize]);
            }
            out.push(d);
        }
        // Best first (ties: first found, i.e. top to bottom), then the cap.
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.truncate(p.max_detections);
        out.iter_mut().for_each(|d| d.to_source(frame));
        Ok(())
    }

    /// Tints `img` (the source image `frame` maps to) with the last decoded map: each pixel
    /// whose map cell has a class is blended half-way with that class's colour.
    pub fn overlay(&self, img: &mut RgbImage, frame: &FrameMap) {
        let (w, h) = self.size;
        if self.class.len() != w * h || w == 0 || h == 0 {
            return;
        }
        for (x, y, px) in img.enumerate_pixels_mut() {
            // Source pixel centre → normalized model coordinates → map cell.
            let (mx, my) = frame.to_model(x as f32 + 0.5, y as f32 + 0.5);
            let (cx, cy) = (mx * w as f32, my * h as f32);
            if !(cx >= 0.0 && cy >= 0.0 && cx < w as f32 && cy < h as f32) {
                continue;
            }
            let class = self.class[cy as usize * w + cx as usize];
            if class != u32::MAX {
                let tint = PALETTE[class as usize % PALETTE.len()];
                for (c, t) in px.0.iter_mut().zip(tint) {
                    *c = ((u16::from(*c) + u16::from(t)) / 2) as u8;
                }
            }
        }
    }
}

/// Overlay colours by class index (class 0 of a probability map: the first).
const PALETTE: [[u8; 3]; 8] = [
    [255, 140, 0],
    [30, 144, 255],
    [50, 205, 50],
    [220, 20, 60],
    [186, 85, 211],
    [255, 215, 0],
    [0, 206, 209],
    [139, 69, 19],
];

#[cfg(test)]
mod tests {
    use super::*;

    fn params(labels: &[String]) -> SegmentationConfig {
        SegmentationConfig {
            labels: labels.to_vec(),
            min_size: 2.0,
            unclip_ratio: 0.0,
            background: Some(0),
            ..SegmentationConfig::default()
        }
    }

    fn frame(w: f32, h: f32) -> FrameMap {
        FrameMap::scaled((w, h), (1.0, 1.0))
    }

    #[test]
    fn regions_of_a_probability_map_become_boxes() {
        // 8x4 map: a 3x2 blob (0.9) touching a diagonal pixel, a faint blob (0.4), a lone pixel.
        #[rustfmt::skip]
        let map = [
            0.9, 0.9, 0.9, 0.0, 0.0, 0.4, 0.4, 0.0,
            0.9, 0.9, 0.9, 0.0, 0.0, 0.4, 0.4, 0.0,
            0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.95,
        ];
        let mut out = Vec::new();
        Decoder::default().decode(&map, &[1, 1, 4, 8], &frame(8.0, 4.0), &params(&[]), &mut out).unwrap();
        // The faint blob scores 0.4 < 0.6; the lone pixel is smaller than min_size.
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].x_min, out[0].y_min, out[0].x_max, out[0].y_max), (0.0, 0.0, 4.0, 3.0));
        assert!((out[0].score - 0.9).abs() < 1e-6);
        // Its outline: the blob's 3x2 block and the diagonal pixel at (3, 2), hull of their corners.
        let want = [(0.0, 0.0), (3.0, 0.0), (4.0, 2.0), (4.0, 3.0), (3.0, 3.0), (0.0, 2.0)];
        assert_eq!(out[0].polygon, want, "{:?}", out[0]);
        // Unclip: a 4x3 box grows by 12 * 1.5 / 14 on each side.
        let p = SegmentationConfig { unclip_ratio: 1.5, ..params(&[]) };
        Decoder::default().decode(&map, &[1, 1, 4, 8], &frame(8.0, 4.0), &p, &mut out).unwrap();
        assert!((out[0].x_min + 18.0 / 14.0).abs() < 1e-5, "{:?}", out[0]);
        // The outline grows by the same distance: its top edge moves up by 18/14.
        assert!(out[0].polygon.iter().any(|q| (q.1 + 18.0 / 14.0).abs() < 1e-5), "{:?}", out[0].polygon);
    }

    #[test]
    fn the_overlay_tints_the_pixels_of_classes() {
        // A 4x2 class map over an 8x4 image (2 source pixels per cell): class 1 at cell (1, 0).
        let labels: Vec<String> = ["background", "road"].map(String::from).to_vec();
        let mut map = vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        map[1] = 0.0;
        map[8 + 1] = 1.0;
        let mut decoder = Decoder::default();
        let p = SegmentationConfig { min_size: 1.0, ..params(&labels) };
        let frame = FrameMap::scaled((4.0, 2.0), (2.0, 2.0));
        decoder.decode(&map, &[1, 2, 2, 4], &frame, &p, &mut Vec::new()).unwrap();
        let mut img = RgbImage::from_pixel(8, 4, image::Rgb([0, 0, 0]));
        decoder.overlay(&mut img, &frame);
        let tinted: Vec<(u32, u32)> =
            img.enumerate_pixels().filter(|(_, _, px)| px.0 != [0, 0, 0]).map(|(x, y, _)| (x, y)).collect();
        assert_eq!(tinted, [(2, 0), (3, 0), (2, 1), (3, 1)]);
        assert_eq!(img.get_pixel(2, 0).0, [15, 72, 127], "half of PALETTE[1]");
    }

    #[test]
    fn class_maps_give_labelled_regions_and_bad_shapes_an_error() {
        let labels: Vec<String> = ["background", "road"].map(String::from).to_vec();
        let mut map = vec![1.0; 2 * 4 * 4];
        for i in [5, 6, 9, 10] {
            (map[i], map[16 + i]) = (0.0, 0.8);
        }
        let mut out = Vec::new();
        Decoder::default().decode(&map, &[1, 2, 4, 4], &frame(4.0, 4.0), &params(&labels), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].label.as_str(), out[0].x_min, out[0].x_max), ("road", 1.0, 3.0));
        let e = Decoder::default().decode(&map, &[1, 2, 4, 4], &frame(4.0, 4.0), &params(&[]), &mut out);
        assert!(e.unwrap_err().to_string().contains("needs 2 labels"));
        assert!(Decoder::default().decode(&map, &[3, 16], &frame(4.0, 4.0), &params(&[]), &mut out).is_err());
        let nan = [f32::NAN; 16];
        Decoder::default().decode(&nan, &[1, 1, 4, 4], &frame(4.0, 4.0), &params(&[]), &mut out).unwrap();
        assert!(out.is_empty());
    }
}
