#![doc = include_str!("../README.md")]

pub mod calibrate;
mod error;
pub mod graph;
mod linalg;
pub mod passes;

pub use error::CompressError;
