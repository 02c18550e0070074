//! The runtime's error: a hand-written enum (no_std), each variant naming what is wrong.

use core::fmt;

/// Broad classes of [`Error`], stable for matching (the embedded-hal pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorKind {
    /// The bytes are not a well-formed `.kmodel`.
    Format,
    /// A well-formed file this version cannot run.
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before `what`.
    Truncated {
        what: &'static str,
    },
    BadMagic,
    UnsupportedVersion {
        version: u16,
    },
    /// The header's file length differs from the buffer's.
    LengthMismatch {
        header: u32,
        buffer: u32,
    },
    Checksum {
        stored: u32,
        computed: u32,
    },
    /// `what` at `offset` is not aligned to `align` bytes.
    Misaligned {
        what: &'static str,
        offset: u32,
        align: u32,
    },
    /// `what` (number `index`) reaches outside its section.
    OutOfBounds {
        what: &'static str,
        index: u32,
    },
    /// A field holds a value the format forbids.
    Invalid {
        what: &'static str,
        index: u32,
    },
    UnknownOpcode {
        op: u32,
        opcode: u16,
    },
    /// A known op this build leaves out (kestrel-micro without its `all-ops` feature).
    OpNotBuilt {
        op: u32,
        opcode: u16,
    },
    /// Op `op` reads tensor `tensor` before anything wrote it.
    ReadBeforeWrite {
        op: u32,
        tensor: u32,
    },
    /// The caller's arena is smaller than the model's memory plan.
    ArenaTooSmall {
        need: u32,
        have: u32,
    },
    /// The buffer for the fast kernels' constants has the wrong length.
    PreparedLength {
        need: u32,
        have: u32,
    },
}

impl Error {
    /// What went wrong in a few words, without the numbers `Display` adds: for a firmware that
    /// prints without `core::fmt`.
    pub fn name(&self) -> &'static str {
        match self {
            Error::Truncated { what } | Error::OutOfBounds { what, .. } | Error::Invalid { what, .. } => what,
            Error::BadMagic => "not a .kmodel file",
            Error::UnsupportedVersion { .. } => "unsupported .kmodel version",
            Error::LengthMismatch { .. } => "file length differs from the header's",
            Error::Checksum { .. } => "checksum mismatch",
            Error::Misaligned { what, .. } => what,
            Error::UnknownOpcode { .. } => "unknown opcode",
            Error::OpNotBuilt { .. } => "op left out of this build",
            Error::ReadBeforeWrite { .. } => "a tensor read before it is written",
            Error::ArenaTooSmall { .. } => "arena too small",
            Error::PreparedLength { .. } => "prepared constants of the wrong length",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnsupportedVersion { .. } | Error::UnknownOpcode { .. } | Error::OpNotBuilt { .. } => {
                ErrorKind::Unsupported
            }
            _ => ErrorKind::Format,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { what } => write!(f, "the file ends inside the {what}"),
            Error::BadMagic => write!(f, "not a .kmodel file (bad magic)"),
            Error::UnsupportedVersion { version } => write!(
                f,
                ".kmodel version {version} is not supported (this runtime reads version {}: export the model again)",
                crate::format::VERSION
            ),
            Error::LengthMismatch { header, buffer } => {
                write!(f, "the header says {header} bytes but the file has {buffer}")
            }
            Error::Checksum { stored, computed } => {
                write!(f, "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupt")
            }
            Error::Misaligned { what, offset, align } => {
                write!(f, "{what} at offset {offset} is not {align}-byte aligned")
            }
            Error::OutOfBounds { what, index } => write!(f, "{what} {index} reaches outside its section"),
            Error::Invalid { what, index } => write!(f, "invalid {what} in entry {index}"),
            Error::UnknownOpcode { op, opcode } => write!(f, "op {op} has unknown opcode {opcode}"),
            Error::OpNotBuilt { op, opcode } => {
                write!(f, "op {op} has opcode {opcode}, which this build leaves out (feature `all-ops`)")
            }
            Error::ReadBeforeWrite { op, tensor } => write!(f, "op {op} reads tensor {tensor} before it is written"),
            Error::ArenaTooSmall { need, have } => write!(f, "the model needs a {need}-byte arena, got {have} bytes"),
            Error::PreparedLength { need, have } => {
                write!(f, "the fast kernels' constants take {need} bytes here, got a {have}-byte buffer")
            }
        }
    }
}
