//! One pass per file.

pub mod quantize_int8;
