//! A captured frame: the pixels (in a recycled buffer) and when and where the light was caught.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use kestrel_vision::image::RgbImage;

/// Pixel buffers handed back by dropped or finished frames, so steady-state capture allocates
/// nothing.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// A pool that keeps up to `keep` buffers (more than the pipeline can hold at once).
    pub fn new(keep: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool { free: Mutex::new(Vec::with_capacity(keep)) })
    }

    /// A buffer of exactly `len` bytes (contents unspecified), reused when one is free.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        let mut buf = reused.unwrap_or_default();
        buf.resize(len, 0);
        buf
    }

    fn give_back(&self, buf: Vec<u8>) {
        if let Ok(mut free) = self.free.lock() {
            if free.len() < free.capacity() {
                free.push(buf);
            }
        }
    }
}

/// One frame. Dropping it returns its pixel buffer to the pool it came from.
#[derive(Debug)]
pub struct Frame {
    /// Index of the source in the order the sources were given.
    pub source: usize,
    /// Sequence number within the source, counting every frame captured (dropped ones too).
    pub seq: u64,
    /// The buffer's presentation time in its stream (GStreamer PTS), if it has one.
    pub pts_ns: Option<u64>,
    /// Wall-clock time the frame reached us (UNIX epoch, ns).
    pub captured_unix_ns: u64,
    /// The same moment on the monotonic clock, for latencies.
    pub captured: Instant,
    /// The coordinate frame the image was taken in, when the source names one (a ROS 2
    /// message header's `frame_id`).
    pub frame_id: Option<String>,
    pub image: RgbImage,
    pool: Option<Arc<BufferPool>>,
}

impl Frame {
    pub fn new(source: usize, seq: u64, pts_ns: Option<u64>, image: RgbImage, pool: Option<Arc<BufferPool>>) -> Frame {
        Frame {
            source,
            seq,
            pts_ns,
            captured_unix_ns: unix_ns(),
            captured: Instant::now(),
            frame_id: None,
            image,
            pool,
        }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give_back(std::mem::take(&mut self.image).into_raw());
        }
    }
}

/// Now, in nanoseconds since the UNIX epoch.
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
