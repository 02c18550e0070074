//! ROS 2 for `kestrel watch`, in pure Rust (RustDDS through `ros2-client`): `sensor_msgs`
//! images in from a topic ([`ImageSource`]), `vision_msgs` results out ([`ResultPublisher`]),
//! stamped with the image's own header so `ros2 topic delay` and tf see the capture time.

mod error;
pub mod image;
pub mod msg;
mod node;
mod publish;
mod subscribe;

pub use error::{ImageError, RosError};
pub use node::{domain_id_from_env, NodeSettings, RosNode};
pub use publish::{ResultPublisher, Results};
pub use subscribe::ImageSource;

/// The URI scheme of a ROS 2 image topic as a `kestrel watch` source.
pub const SCHEME: &str = "ros2://";
