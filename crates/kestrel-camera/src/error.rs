//! What can go wrong between a source URI and a frame.

/// Errors of the camera crate: each names the source and says what to do where it can.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("unknown source `{uri}`: the scheme `{scheme}` is not one of v4l2://, csi://, rtsp://, file://, test://, gst:// (or a path to a video or a folder of images)")]
    UnknownScheme { uri: String, scheme: String },
    #[error("source `{uri}`: {why}")]
    BadUri { uri: String, why: String },
    #[error("source `{0}`: no such file or folder")]
    Missing(String),
    #[error("source `{uri}` needs the GStreamer element `{element}`, which is not installed (Debian/Ubuntu package: {package})")]
    MissingPlugin { uri: String, element: String, package: &'static str },
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    #[error("source `{uri}`: GStreamer pipeline `{pipeline}` could not be built: {why}")]
    Pipeline { uri: String, pipeline: String, why: String },
    #[error("source `{uri}`: {why}")]
    Stream { uri: String, why: String },
    #[error("source `{uri}`: gave up after {attempts} reconnect attempt(s); last error: {why}")]
    GaveUp { uri: String, attempts: u32, why: String },
    #[error("recording `{path}`: {why}")]
    Record { path: String, why: String },
    #[error("source `{uri}`: frame {index} (`{path}`): {why}")]
    Image { uri: String, index: usize, path: String, why: String },
}
