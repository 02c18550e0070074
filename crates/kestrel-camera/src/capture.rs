//! One capture thread per source: frames out of GStreamer's appsink (or a folder of images)
//! into the latest-frame queue, each stamped; live sources rebuilt with back-off when they
//! fail, stall or end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app::AppSink;
use kestrel_vision::image::RgbImage;

use crate::frame::{BufferPool, Frame};
use crate::latest::{LatestQueue, WhenFull};
use crate::source::{CaptureOptions, Source, SINK_NAME};
use crate::{plugins, v4l2, CameraError};

/// How capture meets a failing live source.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// No frame for this long from a live source counts as a failure.
    pub stall_timeout: Duration,
    /// Give up after this many reconnects in a row without a frame (`None`: never).
    pub max_reconnects: Option<u32>,
    /// First wait before reconnecting; doubled per failed attempt up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            stall_timeout: Duration::from_secs(5),
            max_reconnects: None,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// Counters a capture thread keeps for the stats line.
#[derive(Debug, Default)]
pub struct SourceCounters {
    pub captured: AtomicU64,
    pub reconnects: AtomicU64,
    /// Frames received but unusable (a malformed ROS 2 image message), skipped.
    pub skipped: AtomicU64,
}

/// A source opened and checked, ready to run on its own thread.
pub struct Capture {
    pub index: usize,
    pub uri: String,
    pub source: Source,
    /// What was opened, for the log (the pipeline, or the camera mode chosen).
    pub description: String,
    pipeline_text: String,
    options: CaptureOptions,
    recovery: Recovery,
    first: Option<Running>,
    images: Vec<PathBuf>,
}

struct Running {
    pipeline: gst::Pipeline,
    sink: AppSink,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// How one run of a pipeline ended.
enum Outcome {
    Stopped,
    Ended,
    Failed(String),
}

impl Capture {
    /// Parses `uri`, checks the plugins it needs and builds its pipeline; a video file is
    /// prerolled, so one that is not a video fails here, before any frame.
    pub fn open(
        index: usize,
        uri: &str,
        options: &CaptureOptions,
        recovery: &Recovery,
    ) -> Result<Capture, CameraError> {
        let source = Source::parse(uri)?;
        let mut capture = Capture {
            index,
            uri: uri.to_string(),
            description: String::new(),
            pipeline_text: String::new(),
            options: options.clone(),
            recovery: recovery.clone(),
            first: None,
            images: Vec::new(),
            source,
        };
        if let Source::Folder { path } = &capture.source {
            capture.images = folder_images(uri, path)?;
            capture.description = format!("{} images in name order", capture.images.len());
            return Ok(capture);
        }
        gst::init().map_err(|e| CameraError::Init(e.to_string()))?;
        let mut camera_caps = None;
        if let Source::V4l2 { device } = &capture.source {
            if !std::path::Path::new(device).exists() {
                return Err(CameraError::Missing(uri.to_string()));
            }
            let (w, h, fps) = (options.width.unwrap_or(640), options.height.unwrap_or(480), options.fps.unwrap_or(30));
            if let Some(choice) = v4l2::choose_mode(&v4l2::probe(device)?, w, h, fps) {
                capture.description = format!("camera mode {} (nearest to {w}x{h} at {fps} fps)", choice.describe());
                camera_caps = Some(choice.caps());
            }
        }
        capture.pipeline_text = capture.source.pipeline(options, camera_caps.as_deref());
        if capture.description.is_empty() {
            capture.description = capture.pipeline_text.clone();
        }
        if let Some((element, package)) = plugins::first_missing(&capture.pipeline_text) {
            return Err(CameraError::MissingPlugin { uri: uri.to_string(), element: element.to_string(), package });
        }
        let running = capture.build()?;
        if matches!(capture.source, Source::File { .. }) {
            preroll(&running).map_err(|why| CameraError::Stream { uri: uri.to_string(), why })?;
        }
        capture.first = Some(running);
        Ok(capture)
    }

    fn build(&self) -> Result<Running, CameraError> {
        let fail =
            |why: String| CameraError::Pipeline { uri: self.uri.clone(), pipeline: self.pipeline_text.clone(), why };
        let element = gst::parse::launch(&self.pipeline_text).map_err(|e| fail(e.to_string()))?;
        let pipeline = element.downcast::<gst::Pipeline>().map_err(|_| fail("not a pipeline".into()))?;
        if let Some((property, value)) = self.source.location() {
            let src = pipeline.by_name("src").ok_or_else(|| fail("no element named `src`".into()))?;
            src.set_property_from_str(property, &value);
        }
        let sink = pipeline
            .by_name(SINK_NAME)
            .and_then(|e| e.downcast::<AppSink>().ok())
            .ok_or_else(|| fail(format!("no `appsink name={SINK_NAME}`")))?;
        sink.set_caps(Some(&gst::Caps::builder("video/x-raw").field("format", "RGB").build()));
        Ok(Running { pipeline, sink })
    }

    /// Captures until the source ends, `stop` is set or the queue is stopped; closes this
    /// source's lane either way. Errors: a file that fails, or a live source given up on.
    pub fn run(
        mut self,
        queue: &LatestQueue<Frame>,
        pool: &Arc<BufferPool>,
        stop: &AtomicBool,
        counters: &SourceCounters,
    ) -> Result<(), CameraError> {
        let result = if matches!(self.source, Source::Folder { .. }) {
            self.run_folder(queue, stop, counters)
        } else {
            self.run_pipeline(queue, pool, stop, counters)
        };
        queue.close(self.index);
        result
    }

    fn when_full(&self) -> WhenFull {
        if self.source.is_live() || self.options.realtime {
            WhenFull::DropOldest
        } else {
            WhenFull::Wait
        }
    }

    fn run_pipeline(
        &mut self,
        queue: &LatestQueue<Frame>,
        pool: &Arc<BufferPool>,
        stop: &AtomicBool,
        counters: &SourceCounters,
    ) -> Result<(), CameraError> {
        let live = self.source.is_live();
        let mut seq = 0u64;
        let mut failures = 0u32;
        let mut wait = self.recovery.backoff;
        loop {
            let before = seq;
            let outcome = match self.first.take().map_or_else(|| self.build(), Ok) {
                Ok(running) => self.stream(&running, queue, pool, stop, counters, &mut seq),
                Err(e) => Outcome::Failed(e.to_string()),
            };
            if seq > before {
                failures = 0;
                wait = self.recovery.backoff;
            }
            let why = match outcome {
                Outcome::Stopped => return Ok(()),
                Outcome::Ended if !live && self.options.looping => continue,
                Outcome::Ended if !self.source.reconnects_on_end() => return Ok(()),
                Outcome::Ended => "the stream ended".to_string(),
                Outcome::Failed(why) if !live => return Err(CameraError::Stream { uri: self.uri.clone(), why }),
                Outcome::Failed(why) => why,
            };
            if self.recovery.max_reconnects.is_some_and(|max| failures >= max) {
                return Err(CameraError::GaveUp { uri: self.uri.clone(), attempts: failures, why });
            }
            failures += 1;
            counters.reconnects.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "source {} `{}`: {why}; reconnecting in {:.2} s (attempt {failures})",
                self.index,
                self.uri,
                wait.as_secs_f64()
            );
            if sleep_unless_stopped(wait, stop) {
                return Ok(());
            }
            wait = (wait * 2).min(self.recovery.max_backoff);
        }
    }

    fn stream(
        &self,
        running: &Running,
        queue: &LatestQueue<Frame>,
        pool: &Arc<BufferPool>,
        stop: &AtomicBool,
        counters: &SourceCounters,
        seq: &mut u64,
    ) -> Outcome {
        if running.pipeline.set_state(gst::State::Playing).is_err() {
            return Outcome::Failed(
                bus_error(&running.pipeline).unwrap_or_else(|| "the pipeline would not start".into()),
            );
        }
        let bus = running.pipeline.bus();
        let mut last_frame = Instant::now();
        let when_full = self.when_full();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Outcome::Stopped;
            }
            if let Some(sample) = running.sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) {
                let frame = match to_frame(&sample, self.index, *seq, pool) {
                    Ok(f) => f,
                    Err(why) => return Outcome::Failed(why),
                };
                *seq += 1;
                counters.captured.fetch_add(1, Ordering::Relaxed);
                last_frame = Instant::now();
                if queue.push(self.index, frame, when_full).is_err() {
                    return Outcome::Stopped;
                }
                continue;
            }
            let ended =
                match bus.as_ref().and_then(|b| b.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])) {
                    Some(message) => match message.view() {
                        gst::MessageView::Error(e) => return Outcome::Failed(describe_error(e)),
                        _ => true,
                    },
                    None => running.sink.is_eos(),
                };
            if ended {
                // `--loop` on a file: back to the start in the same pipeline.
                let rewound = self.options.looping
                    && !self.source.is_live()
                    && running
                        .pipeline
                        .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, gst::ClockTime::ZERO)
                        .is_ok();
                if !rewound {
                    return Outcome::Ended;
                }
                last_frame = Instant::now();
                continue;
            }
            if self.source.is_live() && last_frame.elapsed() > self.recovery.stall_timeout {
                return Outcome::Failed(format!("no frame for {:.1} s", self.recovery.stall_timeout.as_secs_f64()));
            }
        }
    }

    fn run_folder(
        &self,
        queue: &LatestQueue<Frame>,
        stop: &AtomicBool,
        counters: &SourceCounters,
    ) -> Result<(), CameraError> {
        let period = self.options.fps.map(|f| Duration::from_secs_f64(1.0 / f64::from(f.max(1))));
        let mut seq = 0u64;
        let start = Instant::now();
        loop {
            for (index, path) in self.images.iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let image = kestrel_vision::image_io::load_rgb(path).map_err(|e| CameraError::Image {
                    uri: self.uri.clone(),
                    index,
                    path: path.display().to_string(),
                    why: e.to_string(),
                })?;
                let pts = period.map(|p| p.as_nanos() as u64 * seq);
                if let (Some(p), true) = (period, self.options.realtime) {
                    let due = start + p * seq as u32;
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                counters.captured.fetch_add(1, Ordering::Relaxed);
                if queue.push(self.index, Frame::new(self.index, seq, pts, image, None), self.when_full()).is_err() {
                    return Ok(());
                }
                seq += 1;
            }
            if !self.options.looping {
                return Ok(());
            }
        }
    }
}

/// The images of a folder, in name order.
fn folder_images(uri: &str, dir: &std::path::Path) -> Result<Vec<PathBuf>, CameraError> {
    let read = std::fs::read_dir(dir).map_err(|e| CameraError::Stream { uri: uri.to_string(), why: e.to_string() })?;
    let mut images: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
            matches!(ext.as_str(), "png" | "jpg" | "jpeg")
        })
        .collect();
    images.sort();
    if images.is_empty() {
        return Err(CameraError::Stream { uri: uri.to_string(), why: "the folder has no .png or .jpg images".into() });
    }
    Ok(images)
}

/// Waits for a file pipeline to preroll: a file that is not a video fails here.
fn preroll(running: &Running) -> Result<(), String> {
    let failed = running.pipeline.set_state(gst::State::Paused).is_err()
        || running.pipeline.state(gst::ClockTime::from_seconds(10)).0.is_err();
    let error = if failed {
        bus_error_within(&running.pipeline, gst::ClockTime::from_mseconds(500))
    } else {
        bus_error(&running.pipeline)
    };
    match (failed, error) {
        (_, Some(why)) => Err(why),
        (true, None) => Err("the file could not be opened as a video".into()),
        (false, None) => Ok(()),
    }
}

fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    bus_error_within(pipeline, gst::ClockTime::ZERO)
}

/// The first error on the pipeline's bus, waiting up to `wait` for one to be posted.
fn bus_error_within(pipeline: &gst::Pipeline, wait: gst::ClockTime) -> Option<String> {
    let message = pipeline.bus()?.timed_pop_filtered(wait, &[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(e) => Some(describe_error(e)),
        _ => None,
    }
}

fn describe_error(e: &gst::message::Error) -> String {
    let from = e.src().map(|s| s.name().to_string()).unwrap_or_default();
    let mut text = format!("{} (from {from})", e.error());
    if e.error().matches(gst::CoreError::MissingPlugin) {
        text.push_str("; a decoder is missing: install gstreamer1.0-libav and gstreamer1.0-plugins-good/-bad/-ugly");
    }
    text
}

/// Copies a sample's RGB rows (GStreamer pads rows to 4 bytes) into a pooled buffer.
fn to_frame(sample: &gst::Sample, source: usize, seq: u64, pool: &Arc<BufferPool>) -> Result<Frame, String> {
    let caps = sample.caps().ok_or("a sample without caps")?;
    let info = gstreamer_video::VideoInfo::from_caps(caps).map_err(|e| format!("frame caps {caps}: {e}"))?;
    let buffer = sample.buffer().ok_or("a sample without a buffer")?;
    let map = buffer.map_readable().map_err(|e| e.to_string())?;
    let stride = usize::try_from(info.stride()[0]).map_err(|_| "a negative row stride")?;
    let image = packed_rgb(&map, info.width(), info.height(), stride, pool)?;
    Ok(Frame::new(source, seq, buffer.pts().map(|t| t.nseconds()), image, Some(Arc::clone(pool))))
}

/// The RGB rows of a mapped buffer (`stride` bytes apart) packed into a pooled image; sizes
/// checked against the buffer first.
pub fn packed_rgb(data: &[u8], width: u32, height: u32, stride: usize, pool: &BufferPool) -> Result<RgbImage, String> {
    let (w, h) = (width as usize, height as usize);
    let row = w * 3;
    let needed = stride.checked_mul(h.saturating_sub(1)).and_then(|n| n.checked_add(row));
    if stride < row || needed.is_none_or(|n| data.len() < n) {
        return Err(format!("a {w}x{h} RGB frame with rows {stride} bytes apart in a buffer of {} bytes", data.len()));
    }
    let mut pixels = pool.take(row * h);
    for (y, dst) in pixels.chunks_exact_mut(row.max(1)).enumerate() {
        dst.copy_from_slice(&data[y * stride..y * stride + row]);
    }
    RgbImage::from_raw(width, height, pixels).ok_or_else(|| "frame size mismatch".to_string())
}

/// Sleeps up to `d`, waking early when `stop` is set; true when stopped.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20).min(end.saturating_duration_since(Instant::now())));
    }
    stop.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v4l2::{Choice, Encoding};

    /// Runs a pipeline until it ends; the RGB frames its appsink gave (width, height).
    fn frames_of(text: &str) -> Vec<(u32, u32)> {
        let pipeline =
            gst::parse::launch(text).unwrap_or_else(|e| panic!("{text}: {e}")).downcast::<gst::Pipeline>().unwrap();
        let sink = pipeline.by_name(SINK_NAME).unwrap().downcast::<AppSink>().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let pool = BufferPool::new(4);
        let mut got = Vec::new();
        while let Ok(sample) = sink.pull_sample() {
            let frame = to_frame(&sample, 0, 0, &pool).unwrap();
            got.push((frame.image.width(), frame.image.height()));
        }
        assert!(bus_error(&pipeline).is_none(), "{text}: {:?}", bus_error(&pipeline));
        got
    }

    /// No camera here: the V4L2 and CSI pipelines run with `videotestsrc` in the device
    /// element's place (and the NVMM caps and `nvvidconv` swapped for their plain versions), so
    /// the caps, decoders and conversions they build are checked by GStreamer itself.
    #[test]
    fn camera_pipelines_run_with_the_device_elements_replaced() {
        gst::init().unwrap();
        let o = CaptureOptions { width: Some(320), height: Some(240), fps: Some(30), ..CaptureOptions::default() };
        let usb = Source::V4l2 { device: "/dev/video0".into() };
        let mode = |encoding| Choice { encoding, width: 320, height: 240, rate: (30, 1) }.caps();
        let fake = "videotestsrc name=src num-buffers=4";
        let cases = [
            (usb.pipeline(&o, Some(&mode(Encoding::Yuyv))), vec![("v4l2src name=src", fake.to_string())]),
            (usb.pipeline(&o, Some(&mode(Encoding::Mjpeg))), vec![("v4l2src name=src", format!("{fake} ! jpegenc"))]),
            (
                Source::Csi { sensor: 0 }.pipeline(&o, None),
                vec![
                    ("nvarguscamerasrc name=src sensor-id=0", fake.to_string()),
                    ("video/x-raw(memory:NVMM)", "video/x-raw".to_string()),
                    ("nvvidconv", "videoconvert".to_string()),
                ],
            ),
        ];
        for (text, swaps) in cases {
            let mut runnable = text.clone();
            for (device, stand_in) in swaps {
                assert!(text.contains(device), "{text}");
                runnable = runnable.replace(device, &stand_in);
            }
            let frames = frames_of(&runnable);
            assert!(!frames.is_empty() && frames.iter().all(|&f| f == (320, 240)), "{runnable}: {frames:?}");
        }
    }
}
