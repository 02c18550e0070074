//! `kestrel watch` on a ROS 2 graph: `ros2://TOPIC` sources and `--ros2` results, through one
//! node (`kestrel-ros2`).

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use kestrel_camera::Frame;
use kestrel_ros2::msg::{Header, Time};
use kestrel_ros2::{domain_id_from_env, ImageSource, NodeSettings, ResultPublisher, Results, RosNode};
use kestrel_vision::config::Decoder;
use kestrel_vision::ModelConfig;

use crate::cli::Ros2Args;
use crate::commands::run::Decoded;

/// A subscribed `ros2://` source.
pub type Source = ImageSource;

/// Failed publishes are reported one by one up to this many, then every 100th.
const WARN_FIRST: u64 = 5;

pub struct Ros {
    node: RosNode,
    publisher: Option<ResultPublisher>,
    /// Per source, `frame_id` for frames that do not carry their own.
    frame_ids: Vec<String>,
    failed_publishes: AtomicU64,
}

impl Ros {
    /// When a source is a ROS topic or `--ros2` is given: joins the graph (domain
    /// `ROS_DOMAIN_ID`) and, with `--ros2`, starts publishing: the class names once, then each
    /// frame's results.
    pub fn start_if_wanted(args: &Ros2Args, sources: &[String], config: &ModelConfig) -> Result<Option<Ros>> {
        if args.ros2.is_none() && !sources.iter().any(|s| s.starts_with(kestrel_ros2::SCHEME)) {
            return Ok(None);
        }
        let settings = NodeSettings {
            name: args.ros2_node.clone(),
            namespace: args.ros2_namespace.clone(),
            domain_id: domain_id_from_env()?,
            reliable: args.ros2_reliable,
        };
        let mut node = RosNode::new(settings)?;
        let publisher = match &args.ros2 {
            Some(topic) => {
                let classifier = match &config.decoder {
                    Decoder::Classifier { .. } => true,
                    Decoder::Raw { .. } => bail!(
                        "--ros2 publishes detections or classes, and this model's decoder is `raw` \
                         (no kestrel.toml): give it a config with its decoder (`kestrel init` writes one)"
                    ),
                    _ => false,
                };
                let single = if config.name.is_empty() { "object" } else { config.name.as_str() };
                let threshold = config.decoder.score_threshold().unwrap_or(0.0);
                // Beside the results: `/robot/detections` → `/robot/label_info`.
                let label_topic = match topic.rsplit_once('/') {
                    Some((parent, _)) => format!("{parent}/label_info"),
                    None => "label_info".to_string(),
                };
                let p = ResultPublisher::new(
                    &mut node,
                    topic,
                    &label_topic,
                    classifier,
                    config.decoder.labels(),
                    single,
                    threshold,
                )?;
                let kind = if classifier { "Classification" } else { "Detection2DArray" };
                eprintln!(
                    "ros2: node {} on domain {}, publishing vision_msgs/msg/{kind} on {}, class names on {}",
                    node.resolve(&args.ros2_node),
                    node.settings().domain_id,
                    node.resolve(topic),
                    node.resolve(&label_topic)
                );
                Some(p)
            }
            None => None,
        };
        let frame_ids = sources.iter().map(|s| args.frame_id.clone().unwrap_or_else(|| source_name(s))).collect();
        Ok(Some(Ros { node, publisher, frame_ids, failed_publishes: AtomicU64::new(0) }))
    }

    /// Subscribes to a `ros2://` source; `None` for other sources.
    pub fn open_source(&mut self, index: usize, uri: &str) -> Option<Result<Source>> {
        ImageSource::open(&mut self.node, index, uri).map(|r| r.context("subscribing"))
    }

    /// Publishes one frame's results under its header: the capture stamp, and the `frame_id`
    /// the image came with or the source's. A failed publish is a counted warning.
    pub fn publish(&self, frame: &Frame, decoded: &Decoded) {
        let Some(publisher) = &self.publisher else { return };
        let results = match decoded {
            Decoded::Detections(d) => Results::Detections(d),
            Decoded::Classes(c) => Results::Classes(c),
            Decoded::Raw(_) => return,
        };
        let frame_id = frame.frame_id.clone().unwrap_or_else(|| self.frame_ids[frame.source].clone());
        let header = Header { stamp: Time::from_unix_ns(frame.captured_unix_ns), frame_id };
        if let Err(e) = publisher.publish(&header, results) {
            let n = self.failed_publishes.fetch_add(1, Ordering::Relaxed) + 1;
            if n <= WARN_FIRST || n.is_multiple_of(100) {
                eprintln!("ros2: {e} ({n} failed so far)");
            }
        }
    }
}

/// A source's name as a `frame_id`: its last path part, `[A-Za-z0-9_]` only (`/dev/video0` →
/// `video0`, `clips/face.mp4` → `face_mp4`).
fn source_name(uri: &str) -> String {
    let last = uri.trim_end_matches('/').rsplit(['/', ':']).find(|p| !p.is_empty()).unwrap_or("camera");
    last.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn frame_ids_from_source_names() {
        assert_eq!(super::source_name("v4l2:///dev/video0"), "video0");
        assert_eq!(super::source_name("models/clips/face.mp4"), "face_mp4");
        assert_eq!(super::source_name("csi://0"), "0");
        assert_eq!(super::source_name("test://"), "test");
    }
}
