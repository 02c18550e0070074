//! Annotating frames: boxes, keypoints and class bars, no font needed.

use image::{Rgb, RgbImage};

use crate::decode::Detection;

const GREEN: Rgb<u8> = Rgb([40, 220, 60]);
const RED: Rgb<u8> = Rgb([230, 40, 40]);

/// Draws each detection's box (2 px, green) — or its outline where it has one — and keypoints
/// (red dots).
pub fn draw_detections(img: &mut RgbImage, dets: &[Detection]) {
    for d in dets {
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

/// Draws a score bar along the bottom edge: its length is the top class's score.
pub fn draw_score_bar(img: &mut RgbImage, score: f32) {
    let len = (score.clamp(0.0, 1.0) * img.width() as f32) as i64;
    let bottom = i64::from(img.height()) - 1;
    for t in 0..(img.height() / 16).max(1) {
        hline(img, 0, len - 1, bottom - i64::from(t), GREEN);
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
