//! One pass per file.

pub mod prune_channels;
pub mod prune_magnitude;
pub mod quantize_int8;
pub mod reconstruct;
