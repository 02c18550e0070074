//! Shipping Kestrel to a board: what a board is ([`board`]), what goes onto it ([`bundle`]), and
//! how it gets there without ever leaving the board half-installed ([`deploy`] over [`ssh`], or a
//! fleet through [`mender`]).
//!
//! The board side is a POSIX shell script (`remote.sh`) that every Jetson image already runs:
//! `sha256sum`, `tar`, `ln`, `mv -T` (an atomic rename of the `current` symlink), `flock`.

pub mod board;
pub mod bundle;
pub mod deploy;
pub mod mender;
pub mod ssh;

pub use board::{Board, BoardError};
pub use bundle::{BundleError, BundleInfo, BundleSpec};
pub use deploy::{DeployError, Event, Target};
