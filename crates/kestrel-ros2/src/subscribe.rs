//! `ros2://TOPIC` as a `kestrel watch` source: `sensor_msgs/Image` (or `CompressedImage` on a
//! topic ending in `/compressed`, as image_transport names it) into the latest-frame queue,
//! each frame stamped with the message header's capture time and `frame_id`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kestrel_camera::{BufferPool, Frame, LatestQueue, SourceCounters, WhenFull};
use kestrel_vision::image::RgbImage;
use ros2_client::dds::rustdds::mio1::{Events, Interest, Poll, Token};
use ros2_client::Subscription;

use crate::image::{compressed_to_rgb, image_to_rgb};
use crate::msg::{CompressedImage, Header, Image};
use crate::{RosError, RosNode, SCHEME};

enum Incoming {
    Raw(Subscription<Image>),
    Compressed(Subscription<CompressedImage>),
}

/// A subscribed image topic, ready to run on its own thread.
pub struct ImageSource {
    index: usize,
    uri: String,
    topic: String,
    incoming: Incoming,
}

/// Skipped frames are reported one by one up to this many, then every 100th.
const WARN_FIRST: u64 = 5;

impl ImageSource {
    /// Subscribes to the topic of `uri` (`ros2://TOPIC`); `None` when `uri` is not a ROS one.
    pub fn open(node: &mut RosNode, index: usize, uri: &str) -> Option<Result<ImageSource, RosError>> {
        let topic = node.resolve(uri.strip_prefix(SCHEME)?);
        let incoming = if topic.ends_with("/compressed") {
            node.subscription(&topic).map(Incoming::Compressed)
        } else {
            node.subscription(&topic).map(Incoming::Raw)
        };
        Some(incoming.map(|incoming| ImageSource { index, uri: uri.to_string(), topic, incoming }))
    }

    /// The source's position among `kestrel watch`'s sources.
    pub fn index(&self) -> usize {
        self.index
    }

    /// What was subscribed to, for the log.
    pub fn description(&self) -> String {
        let kind = match self.incoming {
            Incoming::Raw(_) => "sensor_msgs/msg/Image",
            Incoming::Compressed(_) => "sensor_msgs/msg/CompressedImage",
        };
        format!("ROS 2 topic {} ({kind})", self.topic)
    }

    /// Receives until `stop` is set or the queue is stopped; closes this source's lane either
    /// way. A malformed message is skipped with a counted warning; the source keeps running.
    pub fn run(
        mut self,
        queue: &LatestQueue<Frame>,
        pool: &Arc<BufferPool>,
        stop: &AtomicBool,
        counters: &SourceCounters,
    ) -> Result<(), RosError> {
        let result = self.receive(queue, pool, stop, counters);
        queue.close(self.index);
        result
    }

    fn receive(
        &mut self,
        queue: &LatestQueue<Frame>,
        pool: &Arc<BufferPool>,
        stop: &AtomicBool,
        counters: &SourceCounters,
    ) -> Result<(), RosError> {
        let topic = self.topic.clone();
        let read_error = |e: std::io::Error| RosError::Read { topic: topic.clone(), why: e.to_string() };
        let mut poll = Poll::new().map_err(read_error)?;
        let token = Token(0);
        match &mut self.incoming {
            Incoming::Raw(s) => poll.registry().register(s, token, Interest::READABLE),
            Incoming::Compressed(s) => poll.registry().register(s, token, Interest::READABLE),
        }
        .map_err(read_error)?;
        let mut events = Events::with_capacity(4);
        let mut seq = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Woken by data, or every 100 ms to see `stop`; edge-triggered, so take all there is.
            poll.poll(&mut events, Some(Duration::from_millis(100))).map_err(read_error)?;
            while let Some(received) = self.take(pool) {
                let frame = match received {
                    Ok((header, image)) => {
                        let mut frame = Frame::new(self.index, seq, None, image, Some(Arc::clone(pool)));
                        if header.stamp.unix_ns() > 0 {
                            frame.captured_unix_ns = header.stamp.unix_ns();
                        }
                        frame.frame_id = Some(header.frame_id);
                        frame
                    }
                    Err(why) => {
                        let skipped = counters.skipped.fetch_add(1, Ordering::Relaxed) + 1;
                        if skipped <= WARN_FIRST || skipped.is_multiple_of(100) {
                            eprintln!(
                                "source {} `{}`: frame skipped: {why} ({skipped} skipped so far)",
                                self.index, self.uri
                            );
                        }
                        continue;
                    }
                };
                seq += 1;
                counters.captured.fetch_add(1, Ordering::Relaxed);
                if queue.push(self.index, frame, WhenFull::DropOldest).is_err() {
                    return Ok(());
                }
            }
        }
    }

    /// The next message as RGB with its header; `None` when there is none waiting.
    fn take(&self, pool: &BufferPool) -> Option<Result<(Header, RgbImage), String>> {
        let taken = match &self.incoming {
            Incoming::Raw(s) => s.take().map(|m| m.map(|(image, _)| raw_frame(image, pool))),
            Incoming::Compressed(s) => s.take().map(|m| {
                m.map(|(image, _)| compressed_to_rgb(&image).map(|rgb| (image.header, rgb)).map_err(|e| e.to_string()))
            }),
        };
        match taken {
            Ok(message) => message,
            // A message that does not deserialize (cut, or not this type) is one skipped frame.
            Err(e) => Some(Err(format!("undecodable message: {e:?}"))),
        }
    }
}

fn raw_frame(image: Image, pool: &BufferPool) -> Result<(Header, RgbImage), String> {
    let mut buf = pool.take(0);
    let (w, h) = image_to_rgb(&image, &mut buf).map_err(|e| e.to_string())?;
    let rgb = RgbImage::from_raw(w, h, buf).ok_or("the converted image's size does not match")?;
    Ok((image.header, rgb))
}
