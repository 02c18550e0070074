//! `--record`: annotated frames encoded into a video file through GStreamer (H.264 in Matroska
//! or MP4, MJPEG in AVI), in the order and at the times they were captured. An encoder that
//! falls behind loses frames from the recording; it never slows the pipeline.

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app::AppSrc;
use kestrel_vision::image::RgbImage;

use crate::{plugins, CameraError};

/// An open recording. [`Recorder::finish`] writes the file's index; without it a Matroska file
/// is still playable up to the last frame, an MP4 is not.
pub struct Recorder {
    pipeline: gst::Pipeline,
    src: AppSrc,
    path: String,
    size: (u32, u32),
    first_ns: Option<u64>,
    last_ns: u64,
    pushed: u64,
}

impl Recorder {
    /// A recorder for `width`×`height` frames into `path` (container from its extension).
    pub fn create(path: &Path, width: u32, height: u32) -> Result<Recorder, CameraError> {
        gst::init().map_err(|e| CameraError::Init(e.to_string()))?;
        let shown = path.display().to_string();
        let fail = |why: String| CameraError::Record { path: shown.clone(), why };
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        let encode = match ext.as_str() {
            "mkv" => "x264enc tune=zerolatency speed-preset=ultrafast ! matroskamux",
            "mp4" => "x264enc tune=zerolatency speed-preset=ultrafast ! mp4mux",
            "avi" => "jpegenc ! avimux",
            _ => return Err(fail("the file name must end in .mkv, .mp4 or .avi".into())),
        };
        let text = format!(
            "appsrc name=src format=time block=false max-bytes=8000000 leaky-type=downstream ! queue ! videoconvert ! video/x-raw,format=I420 ! {encode} ! filesink name=file"
        );
        if let Some((element, package)) = plugins::first_missing(&text) {
            return Err(fail(format!(
                "the GStreamer element `{element}` is not installed (Debian/Ubuntu package: {package})"
            )));
        }
        let pipeline = gst::parse::launch(&text)
            .map_err(|e| fail(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| fail("not a pipeline".into()))?;
        let file = pipeline.by_name("file").ok_or_else(|| fail("no filesink".into()))?;
        file.set_property("location", path.display().to_string());
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<AppSrc>().ok())
            .ok_or_else(|| fail("no appsrc".into()))?;
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", width as i32)
            .field("height", height as i32)
            .field("framerate", gst::Fraction::new(0, 1))
            .build();
        src.set_caps(Some(&caps));
        pipeline.set_state(gst::State::Playing).map_err(|_| fail(pipeline_error(&pipeline)))?;
        Ok(Recorder { pipeline, src, path: shown, size: (width, height), first_ns: None, last_ns: 0, pushed: 0 })
    }

    /// Appends a frame captured at `captured_unix_ns`. A frame of another size (a camera that
    /// came back in another mode) is skipped: returns false.
    pub fn push(&mut self, image: &RgbImage, captured_unix_ns: u64) -> Result<bool, CameraError> {
        if (image.width(), image.height()) != self.size {
            return Ok(false);
        }
        let first = *self.first_ns.get_or_insert(captured_unix_ns);
        let mut pts = captured_unix_ns.saturating_sub(first);
        if self.pushed > 0 && pts <= self.last_ns {
            pts = self.last_ns + 1; // strictly increasing, whatever the wall clock did
        }
        self.last_ns = pts;
        self.pushed += 1;
        let mut buffer = gst::Buffer::from_slice(image.as_raw().clone());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts));
        }
        self.src.push_buffer(buffer).map_err(|e| CameraError::Record {
            path: self.path.clone(),
            why: format!("{e:?}: {}", pipeline_error(&self.pipeline)),
        })?;
        Ok(true)
    }

    /// Ends the stream and waits for the file to be complete.
    pub fn finish(self) -> Result<(), CameraError> {
        let fail = |why: String| CameraError::Record { path: self.path.clone(), why };
        self.src.end_of_stream().map_err(|e| fail(format!("{e:?}")))?;
        let bus = self.pipeline.bus().ok_or_else(|| fail("no bus".into()))?;
        let done =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Eos, gst::MessageType::Error]);
        let result = match done.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(()),
            Some(gst::MessageView::Error(e)) => Err(fail(e.error().to_string())),
            _ => Err(fail("the encoder did not finish within 30 s".into())),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        result
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn pipeline_error(pipeline: &gst::Pipeline) -> String {
    let message = pipeline.bus().and_then(|b| b.pop_filtered(&[gst::MessageType::Error]));
    match message.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(e)) => e.error().to_string(),
        _ => "the recording pipeline would not start".into(),
    }
}

/// Refuses a `--record` path before any frame: an unknown container, or a folder that is not there.
pub fn check_path(path: &Path) -> Result<(), CameraError> {
    let fail = |why: &str| CameraError::Record { path: path.display().to_string(), why: why.to_string() };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    if !matches!(ext.as_str(), "mkv" | "mp4" | "avi") {
        return Err(fail("the file name must end in .mkv, .mp4 or .avi"));
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(fail("its folder does not exist")),
        _ => Ok(()),
    }
}
