//! One file per backend.

pub mod cpu;
#[cfg(feature = "cuda-backend")]
pub mod cuda;
pub mod micro;
mod pool;
pub mod unavailable;
