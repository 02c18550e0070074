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
mod spread;

pub use crc::{crc32, Crc32};
pub use error::{Error, ErrorKind};
pub use format::{DType, Metadata, Model, Op, OpCode, Storage, TensorInfo, HEADER_LEN, MAGIC, VERSION};
pub use interpreter::Interpreter;
pub use spread::{Serial, Spread};

/// The convolution kernel this CPU runs (what a benchmark report records beside its numbers):
/// `avx512-vnni`, `avx2`, `aarch64-sdot`, `cortex-m-dsp` or `portable`.
pub fn conv_kernel() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if ops::conv_x86::vnni_available() {
            return "avx512-vnni";
        }
        if ops::conv_avx2::avx2_available() {
            return "avx2";
        }
    }
    #[cfg(target_arch = "aarch64")]
    if ops::conv_aarch64::dotprod_available() {
        return "aarch64-sdot";
    }
    #[cfg(all(target_arch = "arm", feature = "cortex-m-dsp"))]
    return "cortex-m-dsp";
    #[allow(unreachable_code)]
    "portable"
}
