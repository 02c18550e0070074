//! Results out as `vision_msgs`: `Detection2DArray` for detectors, `Classification` for
//! classifiers, and the class names once as `LabelInfo`.

use kestrel_vision::decode::classify::Class;
use kestrel_vision::decode::Detection;
use ros2_client::Publisher;

use crate::msg::{
    BoundingBox2D, Classification, Detection2D, Detection2DArray, Header, LabelInfo, ObjectHypothesis,
    ObjectHypothesisWithPose, Point2D, Pose2D, VisionClass,
};
use crate::{RosError, RosNode};

/// One frame's results.
pub enum Results<'a> {
    Detections(&'a [Detection]),
    Classes(&'a [Class]),
}

enum Stream {
    Detections(Publisher<Detection2DArray>),
    Classes(Publisher<Classification>),
}

/// Publishes each frame's results under the frame's header (capture stamp, `frame_id`).
pub struct ResultPublisher {
    stream: Stream,
    topic: String,
    /// Kept alive: a transient-local writer serves late joiners only while it exists.
    _labels: Publisher<LabelInfo>,
}

impl ResultPublisher {
    /// Results on `topic`, the class names (class id = index) on `label_topic`, published once
    /// now. A model without names gets one class named `single_class_name`.
    pub fn new(
        node: &mut RosNode,
        topic: &str,
        label_topic: &str,
        classifier: bool,
        labels: &[String],
        single_class_name: &str,
        threshold: f32,
    ) -> Result<ResultPublisher, RosError> {
        let stream = if classifier {
            Stream::Classes(node.stream_publisher(topic)?)
        } else {
            Stream::Detections(node.stream_publisher(topic)?)
        };
        let label_publisher = node.latched_publisher::<LabelInfo>(label_topic)?;
        let names: Vec<&str> =
            if labels.is_empty() { vec![single_class_name] } else { labels.iter().map(String::as_str).collect() };
        let class_map = names
            .iter()
            .enumerate()
            .map(|(i, name)| VisionClass { class_id: i.min(u16::MAX as usize) as u16, class_name: name.to_string() })
            .collect();
        let info = LabelInfo { header: Header::default(), class_map, threshold };
        label_publisher
            .publish(info)
            .map_err(|e| RosError::Publish { topic: label_topic.to_string(), why: format!("{e:?}") })?;
        Ok(ResultPublisher { stream, topic: topic.to_string(), _labels: label_publisher })
    }

    /// Publishes one frame's results; an empty array when nothing was found (consumers learn
    /// the frame was seen).
    pub fn publish(&self, header: &Header, results: Results<'_>) -> Result<(), RosError> {
        let sent = match (&self.stream, results) {
            (Stream::Detections(p), Results::Detections(found)) => {
                let detections = found.iter().map(|d| detection(header, d)).collect();
                p.publish(Detection2DArray { header: header.clone(), detections }).map_err(|e| format!("{e:?}"))
            }
            (Stream::Classes(p), Results::Classes(top)) => {
                let results = top.iter().map(|c| hypothesis(c.index, c.score)).collect();
                p.publish(Classification { header: header.clone(), results }).map_err(|e| format!("{e:?}"))
            }
            (Stream::Detections(_), Results::Classes(_)) | (Stream::Classes(_), Results::Detections(_)) => {
                Err("results of the other kind than the topic's (detections vs classes)".to_string())
            }
        };
        sent.map_err(|why| RosError::Publish { topic: self.topic.clone(), why })
    }
}

fn hypothesis(class: usize, score: f32) -> ObjectHypothesis {
    ObjectHypothesis { class_id: class.to_string(), score: f64::from(score) }
}

/// A box as `vision_msgs` has it: centre and size, in source-image pixels.
fn detection(header: &Header, d: &Detection) -> Detection2D {
    let (x0, y0, x1, y1) = (f64::from(d.x_min), f64::from(d.y_min), f64::from(d.x_max), f64::from(d.y_max));
    Detection2D {
        header: header.clone(),
        results: vec![ObjectHypothesisWithPose {
            hypothesis: hypothesis(d.class.unwrap_or(0), d.score),
            ..Default::default()
        }],
        bbox: BoundingBox2D {
            center: Pose2D { position: Point2D { x: (x0 + x1) / 2.0, y: (y0 + y1) / 2.0 }, theta: 0.0 },
            size_x: x1 - x0,
            size_y: y1 - y0,
        },
        id: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_become_centre_and_size_under_the_frame_header() {
        let header = Header { stamp: crate::msg::Time { sec: 5, nanosec: 7 }, frame_id: "cam".into() };
        let d = Detection {
            x_min: 10.0,
            y_min: 20.0,
            x_max: 30.0,
            y_max: 60.0,
            score: 0.75,
            class: Some(3),
            ..Detection::empty()
        };
        let m = detection(&header, &d);
        assert_eq!(m.header, header);
        assert_eq!((m.bbox.center.position.x, m.bbox.center.position.y), (20.0, 40.0));
        assert_eq!((m.bbox.size_x, m.bbox.size_y), (20.0, 40.0));
        assert_eq!(m.results[0].hypothesis, ObjectHypothesis { class_id: "3".into(), score: 0.75 });
        assert_eq!(m.results[0].pose.pose.orientation.w, 1.0);
    }
}
