use thiserror::Error;

/// What can go wrong between Kestrel and a ROS 2 graph.
#[derive(Debug, Error)]
pub enum RosError {
    #[error("ROS_DOMAIN_ID={value:?}: expected a whole number from 0 to 232")]
    DomainId { value: String },
    #[error("ROS 2 name `{name}`: {why}")]
    Name { name: String, why: String },
    #[error("ROS 2 {what}: {why}")]
    Create { what: String, why: String },
    #[error("publishing on `{topic}`: {why}")]
    Publish { topic: String, why: String },
    #[error("reading `{topic}`: {why}")]
    Read { topic: String, why: String },
}

/// Why one incoming image was skipped (the source keeps running).
#[derive(Debug, Error, PartialEq)]
pub enum ImageError {
    #[error("encoding `{0}` is not one of rgb8, bgr8, rgba8, bgra8, mono8, yuv422 (uyvy), yuv422_yuy2 (yuyv)")]
    Encoding(String),
    #[error("size {width}x{height}: each side must be from 1 to {max}")]
    Size { width: u32, height: u32, max: u32 },
    #[error("step {step} is less than width × {bytes_per_pixel} bytes = {row}")]
    Step { step: u32, bytes_per_pixel: u32, row: u64 },
    #[error("data is {len} bytes, less than height × step = {needed}")]
    Short { len: usize, needed: u64 },
    #[error("yuv422 needs an even width, got {0}")]
    OddWidth(u32),
    #[error("compressed image ({format}): {why}")]
    Compressed { format: String, why: String },
}
