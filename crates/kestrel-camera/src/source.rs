//! Source URIs, as jetson-inference names them, and the GStreamer pipeline each one becomes.
//! Paths, devices and addresses are set as element properties after parsing (never pasted into
//! the pipeline text), so no file name can change the pipeline.

use std::path::{Path, PathBuf};

use crate::CameraError;

/// Where frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A V4L2 (USB) camera device.
    V4l2 { device: String },
    /// A Jetson CSI camera (`nvarguscamerasrc`).
    Csi { sensor: u32 },
    /// An RTSP stream (IP camera).
    Rtsp { url: String },
    /// A video file, any container and codec the installed plugins decode.
    File { path: PathBuf },
    /// A folder of images, in name order.
    Folder { path: PathBuf },
    /// GStreamer's test pattern (`videotestsrc`), for smoke tests.
    Test { pattern: String },
    /// A user pipeline ending in `appsink name=kestrel`.
    Gst { pipeline: String },
}

/// Capture settings shared by every source.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureOptions {
    /// Frame size to ask the source for (cameras pick their nearest mode; files are scaled).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frame rate to ask a camera or the test source for.
    pub fps: Option<u32>,
    /// Play files at their own frame rate, dropping frames like a live camera.
    pub realtime: bool,
    /// Start files and folders again at their end.
    pub looping: bool,
    /// RTSP jitter-buffer latency.
    pub rtsp_latency_ms: u32,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions { width: None, height: None, fps: None, realtime: false, looping: false, rtsp_latency_ms: 200 }
    }
}

/// The sink every pipeline ends in.
pub const SINK_NAME: &str = "kestrel";

impl Source {
    /// Parses a source as given on the command line.
    pub fn parse(uri: &str) -> Result<Source, CameraError> {
        let bad = |why: &str| CameraError::BadUri { uri: uri.to_string(), why: why.to_string() };
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Source::from_path(uri, Path::new(uri));
        };
        match scheme {
            "v4l2" => {
                let device = if rest.chars().all(|c| c.is_ascii_digit()) && !rest.is_empty() {
                    format!("/dev/video{rest}")
                } else if rest.starts_with('/') {
                    rest.to_string()
                } else {
                    return Err(bad("expected v4l2:///dev/videoN (or v4l2://N)"));
                };
                Ok(Source::V4l2 { device })
            }
            "csi" => {
                let sensor = if rest.is_empty() { Ok(0) } else { rest.parse() };
                Ok(Source::Csi { sensor: sensor.map_err(|_| bad("expected csi://N with N the sensor id"))? })
            }
            "rtsp" | "rtsps" => {
                if rest.is_empty() {
                    return Err(bad("expected rtsp://host[:port]/path"));
                }
                Ok(Source::Rtsp { url: uri.to_string() })
            }
            "file" => Source::from_path(uri, Path::new(rest)),
            "test" => {
                let pattern = if rest.is_empty() { "ball" } else { rest };
                if !pattern.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return Err(bad("expected test:// or test://PATTERN (a videotestsrc pattern name)"));
                }
                Ok(Source::Test { pattern: pattern.to_string() })
            }
            "gst" => {
                if !rest.contains(&format!("appsink name={SINK_NAME}")) {
                    return Err(bad(&format!("a gst:// pipeline must end in `appsink name={SINK_NAME}`")));
                }
                Ok(Source::Gst { pipeline: rest.to_string() })
            }
            other => Err(CameraError::UnknownScheme { uri: uri.to_string(), scheme: other.to_string() }),
        }
    }

    fn from_path(uri: &str, path: &Path) -> Result<Source, CameraError> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(Source::Folder { path: path.to_path_buf() }),
            Ok(_) => Ok(Source::File { path: path.to_path_buf() }),
            Err(_) => Err(CameraError::Missing(uri.to_string())),
        }
    }

    /// A live source never ends on its own: errors, stalls and ends are met by reconnecting,
    /// and a full queue drops its oldest frame.
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            Source::V4l2 { .. } | Source::Csi { .. } | Source::Rtsp { .. } | Source::Test { .. } | Source::Gst { .. }
        )
    }

    /// An end of stream from this source means the camera went away (reconnect), not that the
    /// recording is over.
    pub fn reconnects_on_end(&self) -> bool {
        matches!(self, Source::V4l2 { .. } | Source::Csi { .. } | Source::Rtsp { .. })
    }

    /// The pipeline text (without the device/path/URL, set later on the element named `src`).
    /// `camera_caps` is the mode chosen for a V4L2 camera (see [`crate::v4l2::choose_mode`]).
    pub fn pipeline(&self, o: &CaptureOptions, camera_caps: Option<&str>) -> String {
        let live = self.is_live() || o.realtime;
        let sink = if live {
            format!("appsink name={SINK_NAME} max-buffers=1 drop=true sync={}", !self.is_live())
        } else {
            format!("appsink name={SINK_NAME} max-buffers=2 drop=false sync=false")
        };
        let size = match (o.width, o.height) {
            (Some(w), Some(h)) => format!(",width={w},height={h}"),
            _ => String::new(),
        };
        let rgb = format!("videoconvert ! videoscale ! video/x-raw,format=RGB{size}");
        let (w, h, fps) = (o.width.unwrap_or(640), o.height.unwrap_or(480), o.fps.unwrap_or(30));
        match self {
            Source::V4l2 { .. } => {
                let caps = camera_caps.unwrap_or("video/x-raw");
                let decode = if caps.starts_with("image/jpeg") { "jpegdec ! " } else { "" };
                format!("v4l2src name=src ! {caps} ! {decode}{rgb} ! {sink}")
            }
            Source::Csi { sensor } => format!(
                "nvarguscamerasrc name=src sensor-id={sensor} ! video/x-raw(memory:NVMM),width={w},height={h},framerate={fps}/1,format=NV12 ! nvvidconv ! video/x-raw,format=BGRx ! {rgb} ! {sink}"
            ),
            Source::Rtsp { .. } => {
                format!("rtspsrc name=src latency={} ! decodebin ! {rgb} ! {sink}", o.rtsp_latency_ms)
            }
            Source::File { .. } => format!("filesrc name=src ! decodebin ! {rgb} ! {sink}"),
            Source::Test { pattern } => format!(
                "videotestsrc name=src is-live=true pattern={pattern} ! video/x-raw,width={w},height={h},framerate={fps}/1 ! {rgb} ! {sink}"
            ),
            Source::Gst { pipeline } => pipeline.clone(),
            Source::Folder { .. } => String::new(),
        }
    }

    /// The property of the element `src` that names what to open, if any.
    pub fn location(&self) -> Option<(&'static str, String)> {
        match self {
            Source::V4l2 { device } => Some(("device", device.clone())),
            Source::Rtsp { url } => Some(("location", url.clone())),
            Source::File { path } => Some(("location", path.display().to_string())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_as_jetson_inference_names_them() {
        assert_eq!(Source::parse("v4l2:///dev/video1").unwrap(), Source::V4l2 { device: "/dev/video1".into() });
        assert_eq!(Source::parse("v4l2://0").unwrap(), Source::V4l2 { device: "/dev/video0".into() });
        assert_eq!(Source::parse("csi://1").unwrap(), Source::Csi { sensor: 1 });
        assert_eq!(Source::parse("test://").unwrap(), Source::Test { pattern: "ball".into() });
        assert!(matches!(Source::parse("rtsp://10.0.0.2:8554/cam").unwrap(), Source::Rtsp { .. }));
        assert!(matches!(Source::parse("file://Cargo.toml").unwrap(), Source::File { .. }));
        assert!(matches!(Source::parse("src").unwrap(), Source::Folder { .. }));
        let unknown = Source::parse("http://camera/stream").unwrap_err().to_string();
        assert!(unknown.contains("scheme `http` is not one of"), "{unknown}");
        assert!(Source::parse("no-such-clip.mp4").unwrap_err().to_string().contains("no such file"));
        assert!(Source::parse("gst://videotestsrc ! fakesink")
            .unwrap_err()
            .to_string()
            .contains("appsink name=kestrel"));
        assert!(Source::parse("test://ball ! filesink").is_err());
        assert!(Source::parse("csi://left").is_err());
    }
}
