#![doc = include_str!("../README.md")]

pub mod config;
pub mod dataset;
pub mod decode;
pub mod draw;
mod error;
pub mod guess;
pub mod image_io;
pub mod polygon;
pub mod preprocess;

pub use config::ModelConfig;
pub use error::VisionError;
pub use image;
