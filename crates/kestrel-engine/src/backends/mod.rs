//! One file per backend.

pub mod cpu;
pub mod unavailable;
