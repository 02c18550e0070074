//! The ROS 2 messages Kestrel reads and writes, as serde structs. DDS matches them by type name
//! and CDR layout only, so each struct's fields follow the ROS IDL (Humble) in name, type and
//! order exactly; `TYPE` is the DDS type name ROS 2 gives it (`pkg::msg::dds_::Name_`).

use serde::de::{Deserializer, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

/// A message with its ROS package and type name.
pub trait RosMessage {
    const PACKAGE: &'static str;
    const NAME: &'static str;
}

macro_rules! ros_message {
    ($t:ident, $pkg:literal) => {
        impl RosMessage for $t {
            const PACKAGE: &'static str = $pkg;
            const NAME: &'static str = stringify!($t);
        }
    };
}

/// `builtin_interfaces/Time`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    pub sec: i32,
    pub nanosec: u32,
}

impl Time {
    /// From nanoseconds since the UNIX epoch (ROS time is UNIX time); saturates after 2038 as
    /// the `int32` seconds do.
    pub fn from_unix_ns(ns: u64) -> Time {
        let sec = (ns / 1_000_000_000).min(i32::MAX as u64) as i32;
        Time { sec, nanosec: (ns % 1_000_000_000) as u32 }
    }

    /// Nanoseconds since the UNIX epoch; 0 for a time before it.
    pub fn unix_ns(self) -> u64 {
        u64::try_from(self.sec).map_or(0, |s| s * 1_000_000_000 + u64::from(self.nanosec))
    }
}

/// `std_msgs/Header`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub stamp: Time,
    pub frame_id: String,
}

/// `uint8[]`, read and written as one block rather than byte by byte.
#[derive(Clone, Default, PartialEq)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} bytes]", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte sequence")
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
        }
        d.deserialize_byte_buf(BytesVisitor)
    }
}

/// `sensor_msgs/Image`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub header: Header,
    pub height: u32,
    pub width: u32,
    pub encoding: String,
    pub is_bigendian: u8,
    pub step: u32,
    pub data: Bytes,
}
ros_message!(Image, "sensor_msgs");

/// `sensor_msgs/CompressedImage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompressedImage {
    pub header: Header,
    pub format: String,
    pub data: Bytes,
}
ros_message!(CompressedImage, "sensor_msgs");

/// `vision_msgs/Point2D`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point2D {
    pub x: f64,
    pub y: f64,
}

/// `vision_msgs/Pose2D`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose2D {
    pub position: Point2D,
    pub theta: f64,
}

/// `vision_msgs/BoundingBox2D`: centre and size, in pixels of the source image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox2D {
    pub center: Pose2D,
    pub size_x: f64,
    pub size_y: f64,
}

/// `vision_msgs/ObjectHypothesis`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectHypothesis {
    pub class_id: String,
    pub score: f64,
}

/// `geometry_msgs/Point`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

/// `geometry_msgs/Quaternion`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quaternion {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub w: f64,
}

impl Default for Quaternion {
    /// The identity rotation (the IDL's default `w = 1`).
    fn default() -> Self {
        Quaternion { x: 0.0, y: 0.0, z: 0.0, w: 1.0 }
    }
}

/// `geometry_msgs/Pose`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    pub position: Point,
    pub orientation: Quaternion,
}

/// `float64[36]`: a fixed array is CDR's elements without a length (serde derives arrays only
/// up to 32).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Covariance(pub [f64; 36]);

impl Default for Covariance {
    fn default() -> Self {
        Covariance([0.0; 36])
    }
}

impl Serialize for Covariance {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(36)?;
        for v in &self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Covariance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Covariance, D::Error> {
        struct CovarianceVisitor;
        impl<'de> Visitor<'de> for CovarianceVisitor {
            type Value = Covariance;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("36 float64 values")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Covariance, A::Error> {
                let mut out = [0.0; 36];
                for (i, v) in out.iter_mut().enumerate() {
                    *v = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(Covariance(out))
            }
        }
        d.deserialize_tuple(36, CovarianceVisitor)
    }
}

/// `geometry_msgs/PoseWithCovariance`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PoseWithCovariance {
    pub pose: Pose,
    pub covariance: Covariance,
}

/// `vision_msgs/ObjectHypothesisWithPose`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectHypothesisWithPose {
    pub hypothesis: ObjectHypothesis,
    pub pose: PoseWithCovariance,
}

/// `vision_msgs/Detection2D`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection2D {
    pub header: Header,
    pub results: Vec<ObjectHypothesisWithPose>,
    pub bbox: BoundingBox2D,
    pub id: String,
}

/// `vision_msgs/Detection2DArray`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection2DArray {
    pub header: Header,
    pub detections: Vec<Detection2D>,
}
ros_message!(Detection2DArray, "vision_msgs");

/// `vision_msgs/Classification`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub header: Header,
    pub results: Vec<ObjectHypothesis>,
}
ros_message!(Classification, "vision_msgs");

/// `vision_msgs/VisionClass`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VisionClass {
    pub class_id: u16,
    pub class_name: String,
}

/// `vision_msgs/LabelInfo`: the class names, published once (transient local).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelInfo {
    pub header: Header,
    pub class_map: Vec<VisionClass>,
    pub threshold: f32,
}
ros_message!(LabelInfo, "vision_msgs");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_both_ways_and_saturate() {
        let t = Time::from_unix_ns(1_700_000_000_123_456_789);
        assert_eq!(t, Time { sec: 1_700_000_000, nanosec: 123_456_789 });
        assert_eq!(t.unix_ns(), 1_700_000_000_123_456_789);
        assert_eq!(Time::from_unix_ns(u64::MAX).sec, i32::MAX);
        assert_eq!(Time { sec: -1, nanosec: 0 }.unix_ns(), 0);
    }
}
