//! USB cameras: the modes a V4L2 device offers (MJPEG or YUYV, size, rates) and the one nearest
//! to what was asked for.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::CameraError;

/// How a mode's pixels travel over USB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Mjpeg,
    Yuyv,
}

/// One size/rate a camera offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    pub encoding: Encoding,
    pub width: u32,
    pub height: u32,
    /// Frame rates offered at this size, as fractions.
    pub rates: Vec<(i32, i32)>,
}

/// A chosen mode and rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub encoding: Encoding,
    pub width: u32,
    pub height: u32,
    pub rate: (i32, i32),
}

impl Choice {
    /// Caps that pin the camera to this mode.
    pub fn caps(&self) -> String {
        let (n, d) = self.rate;
        match self.encoding {
            Encoding::Mjpeg => format!("image/jpeg,width={},height={},framerate={n}/{d}", self.width, self.height),
            Encoding::Yuyv => {
                format!("video/x-raw,format=YUY2,width={},height={},framerate={n}/{d}", self.width, self.height)
            }
        }
    }

    pub fn describe(&self) -> String {
        let (n, d) = self.rate;
        let enc = if self.encoding == Encoding::Mjpeg { "MJPEG" } else { "YUYV" };
        format!("{enc} {}x{} at {:.3} fps", self.width, self.height, f64::from(n) / f64::from(d.max(1)))
    }
}

/// The MJPEG and YUYV modes in a camera's caps (other formats are skipped).
pub fn modes(caps: &gst::CapsRef) -> Vec<Mode> {
    let mut out = Vec::new();
    for s in caps.iter() {
        let encoding = match (s.name().as_str(), s.get::<&str>("format").ok()) {
            ("image/jpeg", _) => Encoding::Mjpeg,
            ("video/x-raw", Some("YUY2")) => Encoding::Yuyv,
            _ => continue,
        };
        let (Ok(width), Ok(height)) = (s.get::<i32>("width"), s.get::<i32>("height")) else { continue };
        let rates = match s.value("framerate") {
            Ok(v) => {
                if let Ok(f) = v.get::<gst::Fraction>() {
                    vec![(f.numer(), f.denom())]
                } else if let Ok(list) = v.get::<gst::List>() {
                    list.iter().filter_map(|x| x.get::<gst::Fraction>().ok()).map(|f| (f.numer(), f.denom())).collect()
                } else if let Ok(range) = v.get::<gst::FractionRange>() {
                    vec![(range.max().numer(), range.max().denom())]
                } else {
                    Vec::new()
                }
            }
            Err(_) => Vec::new(),
        };
        if rates.is_empty() {
            continue;
        }
        out.push(Mode { encoding, width: width.max(0) as u32, height: height.max(0) as u32, rates });
    }
    out
}

/// The mode nearest to `width`×`height` at `fps`: closest size first, then a rate at least
/// `fps` (the lowest such), then YUYV over MJPEG (no decoding) when both offer it.
pub fn choose_mode(modes: &[Mode], width: u32, height: u32, fps: u32) -> Option<Choice> {
    let fps = f64::from(fps);
    let rate_of = |&(n, d): &(i32, i32)| f64::from(n) / f64::from(d.max(1));
    modes
        .iter()
        .flat_map(|m| m.rates.iter().map(move |r| (m, *r)))
        .min_by(|(a, ra), (b, rb)| {
            let size = |m: &Mode| {
                (i64::from(m.width) - i64::from(width)).abs() + (i64::from(m.height) - i64::from(height)).abs()
            };
            // Short of the rate asked for: worse the further short; above it: slightly worse the higher.
            let rate = |r: &(i32, i32)| {
                let v = rate_of(r);
                if v + 1e-6 < fps {
                    1e6 * (fps - v)
                } else {
                    v - fps
                }
            };
            let enc = |m: &Mode| u8::from(m.encoding == Encoding::Mjpeg);
            size(a).cmp(&size(b)).then(rate(ra).total_cmp(&rate(rb))).then(enc(a).cmp(&enc(b)))
        })
        .map(|(m, rate)| Choice { encoding: m.encoding, width: m.width, height: m.height, rate })
}

/// Opens the device just far enough to read the modes it offers.
pub fn probe(device: &str) -> Result<Vec<Mode>, CameraError> {
    let fail = |why: String| CameraError::Stream { uri: format!("v4l2://{device}"), why };
    let src =
        gst::ElementFactory::make("v4l2src").property("device", device).build().map_err(|e| fail(e.to_string()))?;
    src.set_state(gst::State::Ready)
        .map_err(|_| fail("cannot open the camera device (is it there, and may this user read it?)".into()))?;
    let caps = src.static_pad("src").map(|p| p.query_caps(None));
    let _ = src.set_state(gst::State::Null);
    Ok(caps.map(|c| modes(&c)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Caps as a typical UVC webcam reports them (Logitech C920-like).
    const WEBCAM: &str = "image/jpeg, width=(int)1920, height=(int)1080, framerate=(fraction){ 30/1, 15/1 }; \
        image/jpeg, width=(int)640, height=(int)480, framerate=(fraction){ 30/1, 15/1 }; \
        video/x-raw, format=(string)YUY2, width=(int)1920, height=(int)1080, framerate=(fraction)5/1; \
        video/x-raw, format=(string)YUY2, width=(int)640, height=(int)480, framerate=(fraction){ 30/1, 15/1 }; \
        video/x-raw, format=(string)NV12, width=(int)640, height=(int)480, framerate=(fraction)30/1";

    #[test]
    fn the_nearest_mode_is_chosen() {
        gst::init().unwrap();
        let caps: gst::Caps = WEBCAM.parse().unwrap();
        let modes = modes(&caps);
        assert_eq!(modes.len(), 4, "NV12 skipped: {modes:?}");
        let pick = |w, h, f| choose_mode(&modes, w, h, f).unwrap().describe();
        assert_eq!(pick(640, 480, 30), "YUYV 640x480 at 30.000 fps");
        // YUYV gives only 5 fps at 1080p: MJPEG is chosen to keep the rate.
        assert_eq!(pick(1920, 1080, 30), "MJPEG 1920x1080 at 30.000 fps");
        assert_eq!(pick(1280, 720, 30), "YUYV 640x480 at 30.000 fps");
        assert_eq!(pick(640, 480, 60), "YUYV 640x480 at 30.000 fps");
        let caps = choose_mode(&modes, 1920, 1080, 30).unwrap().caps();
        assert_eq!(caps, "image/jpeg,width=1920,height=1080,framerate=30/1");
    }
}
