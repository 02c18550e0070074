//! One file per backend.

pub mod cpu;
pub mod micro;
pub mod unavailable;
