//! One file per backend.

pub mod cpu;
#[cfg(feature = "cuda-backend")]
pub mod cuda;
pub mod micro;
pub mod unavailable;
