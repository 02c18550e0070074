//! Frames for `kestrel watch`: cameras (V4L2, Jetson CSI), RTSP streams, video files, folders
//! of images and GStreamer test sources, read newest-frame-first. Each source runs on its own
//! thread ([`Capture::run`]) into a [`LatestQueue`] lane; every [`Frame`] carries its source,
//! a sequence number and its capture stamps (stream PTS and wall clock).

pub mod capture;
mod error;
pub mod frame;
pub mod latest;
pub mod plugins;
pub mod record;
pub mod source;
pub mod v4l2;

pub use capture::{Capture, Recovery, SourceCounters};
pub use error::CameraError;
pub use frame::{unix_ns, BufferPool, Frame};
pub use latest::{LatestQueue, Popped, WhenFull};
pub use record::Recorder;
pub use source::{CaptureOptions, Source};
