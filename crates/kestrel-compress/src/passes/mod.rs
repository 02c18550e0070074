//! One pass per file.

pub mod lower_for_int8;
pub mod prune_channels;
pub mod prune_magnitude;
pub mod qdq_float_ops;
pub mod quantize_int8;
pub mod reconstruct;
