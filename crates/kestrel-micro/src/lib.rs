#![no_std]
#![doc = include_str!("../README.md")]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
pub mod builder;
mod crc;
mod error;
mod format;
mod interpreter;
pub mod ops;

pub use crc::crc32;
pub use error::{Error, ErrorKind};
pub use format::{DType, Model, Op, OpCode, Storage, TensorInfo, HEADER_LEN, MAGIC, VERSION};
pub use interpreter::Interpreter;
