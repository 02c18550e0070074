//! Annotating frames: boxes, keypoints, class bars and their labels (the public-domain 8x8
//! bitmap font of `font8x8`, ASCII).

use image::{Rgb, RgbImage};

use crate::decode::Detection;

const GREEN: Rgb<u8> = Rgb([40, 220, 60]);
const RED: Rgb<u8> = Rgb([230, 40, 40]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

/// Draws each detection's box (2 px, green) — or its outline where it has one — with its label
/// and score above it, and keypoints (red dots).
pub fn draw_detections(img: &mut RgbImage, dets: &[Detection]) {
    for d in dets {
        let text = if d.label.is_empty() { format!("{:.2}", d.score) } else { format!("{} {:.2}", d.label, d.score) };
        let scale = glyph_scale(img);
        let above = d.y_min.round() as i64 - 8 * scale;
        let y = if above >= 0 { above } else { d.y_min.round() as i64 + 2 };
        draw_text(img, d.x_min.round() as i64, y, &text);
        if d.polygon.len() >= 3 {
            for (i, &a) in d.polygon.iter().enumerate() {
                let b = d.polygon[(i + 1) % d.polygon.len()];
                for t in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)] {
                    line(img, (a.0 + t.0, a.1 + t.1), (b.0 + t.0, b.1 + t.1), GREEN);
                }
            }
        } else {
            draw_box(img, d);
        }
        for &(kx, ky) in &d.keypoints {
            for dy in -2..=2 {
                hline(img, kx.round() as i64 - 2, kx.round() as i64 + 2, ky.round() as i64 + dy, RED);
            }
        }
    }
}

fn draw_box(img: &mut RgbImage, d: &Detection) {
    let (x0, y0, x1, y1) =
        (d.x_min.round() as i64, d.y_min.round() as i64, d.x_max.round() as i64, d.y_max.round() as i64);
    for t in 0..2 {
        hline(img, x0, x1, y0 + t, GREEN);
        hline(img, x0, x1, y1 - t, GREEN);
        vline(img, x0 + t, y0, y1, GREEN);
        vline(img, x1 - t, y0, y1, GREEN);
    }
}

/// A 1-px line, one pixel per step along its longer axis (clipped to the image).
fn line(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), c: Rgb<u8>) {
    let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil().clamp(1.0, 1e5) as i64;
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        put(img, (a.0 + (b.0 - a.0) * t).round() as i64, (a.1 + (b.1 - a.1) * t).round() as i64, c);
    }
}

/// Draws a score bar along the bottom edge, its length the top class's score, and the class's
/// label and score at the top left.
pub fn draw_score_bar(img: &mut RgbImage, label: &str, score: f32) {
    let len = (score.clamp(0.0, 1.0) * img.width() as f32) as i64;
    let bottom = i64::from(img.height()) - 1;
    for t in 0..(img.height() / 16).max(1) {
        hline(img, 0, len - 1, bottom - i64::from(t), GREEN);
    }
    draw_text(img, 0, 0, &format!("{label} {score:.2}"));
}

/// Glyphs at 1x up to 800 px wide, larger beyond so they stay readable.
fn glyph_scale(img: &RgbImage) -> i64 {
    i64::from(img.width() / 800 + 1)
}

/// Black text on a green strip, its top left corner at (x, y); clipped to the image. Characters
/// outside ASCII are drawn as `?`.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str) {
    let s = glyph_scale(img);
    let width = 8 * s * text.chars().count() as i64;
    for row in y..y + 8 * s {
        hline(img, x, x + width - 1, row, GREEN);
    }
    for (i, c) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY[if c.is_ascii() { c as usize } else { b'?' as usize }];
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                // Bit 0 is the leftmost pixel of the row.
                if bits >> gx & 1 == 1 {
                    let (px, py) = (x + (8 * i as i64 + gx) * s, y + gy as i64 * s);
                    for (dx, dy) in (0..s).flat_map(|dx| (0..s).map(move |dy| (dx, dy))) {
                        put(img, px + dx, py + dy, BLACK);
                    }
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && x < i64::from(img.width()) && y < i64::from(img.height()) {
        img.put_pixel(x as u32, y as u32, c);
    }
}

fn hline(img: &mut RgbImage, x0: i64, x1: i64, y: i64, c: Rgb<u8>) {
    let w = i64::from(img.width());
    for x in x0.max(0)..=x1.min(w - 1) {
        put(img, x, y, c);
    }
}

fn vline(img: &mut RgbImage, x: i64, y0: i64, y1: i64, c: Rgb<u8>) {
    let h = i64::from(img.height());
    for y in y0.max(0)..=y1.min(h - 1) {
        put(img, x, y, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(y_min: f32, label: &str) -> Detection {
        Detection { x_min: 4.0, y_min, x_max: 60.0, y_max: 60.0, score: 0.5, label: label.into(), ..Detection::empty() }
    }

    fn white(w: u32, h: u32) -> RgbImage {
        RgbImage::from_pixel(w, h, Rgb([255, 255, 255]))
    }

    /// Whether the 8x8 cell at (x, y) holds ink (black).
    fn inked(img: &RgbImage, x: u32, y: u32) -> bool {
        (x..x + 8).any(|x| (y..y + 8).any(|y| *img.get_pixel(x, y) == BLACK))
    }

    #[test]
    fn a_label_sits_above_its_box_or_inside_at_the_top_edge() {
        let mut img = white(64, 64);
        draw_detections(&mut img, &[detection(20.0, "a b")]);
        // "a b 0.50" from (4, 12): a, space, b.
        assert!(inked(&img, 4, 12) && !inked(&img, 12, 12) && inked(&img, 20, 12));
        assert_eq!(*img.get_pixel(12, 12), GREEN, "the strip behind the text");
        let mut img = white(64, 64);
        draw_detections(&mut img, &[detection(3.0, "")]);
        // No room above: inside, from (4, 5); no label: the score alone, "0.50".
        let ink = (0..6).map(|i| inked(&img, 4 + 8 * i, 5)).collect::<Vec<_>>();
        assert_eq!(ink, [true, true, true, true, false, false]);
    }

    #[test]
    fn text_outside_ascii_and_the_image_is_safe() {
        let mut img = white(16, 8);
        draw_text(&mut img, -4, -4, "é and more than fits");
        draw_text(&mut img, 100, 100, "x");
        assert!(img.pixels().any(|p| *p == BLACK));
    }
}
