//! The serial link between a host and a microcontroller running a Kestrel model as a perception
//! co-processor: frames in, results out (protocol in README.md). One implementation for both
//! ends: `no_std`, no allocation, every size bounded by the protocol's limits before anything is
//! buffered.
//!
//! A packet is a header (magic `KL`, version, kind, sequence number, payload length), the
//! payload and a CRC-32 of both; on the wire it is COBS-encoded and ends with a 0x00 byte, so a
//! lost or corrupted byte costs one packet and the receiver resynchronizes at the next 0x00.

#![no_std]

pub mod cobs;
pub mod device;
#[cfg(feature = "std")]
pub mod host;
pub mod message;
pub mod packet;

pub use kestrel_micro::crc32;
pub use packet::{Decoder, Kind, Packet};

/// Largest payload: a 128×128 RGB frame (the largest input the protocol carries).
pub const MAX_PAYLOAD: usize = 128 * 128 * 3;
/// Header bytes before the payload: magic (2), version, kind, sequence (2), length (2).
pub const HEADER: usize = 8;
/// CRC-32 after the payload.
pub const TRAILER: usize = 4;
/// Protocol version in every header; a packet of another version is refused.
pub const VERSION: u8 = 1;
/// First two header bytes.
pub const MAGIC: [u8; 2] = *b"KL";

/// Why a received packet was dropped. A hand-written enum: the crate is `no_std`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkError {
    /// More bytes than the receiver's buffer before a delimiter (dropped without buffering).
    TooLong,
    /// The bytes are not valid COBS.
    Framing,
    /// Shorter than a header and a CRC.
    Short,
    BadMagic,
    BadVersion(u8),
    /// The header's length disagrees with the bytes received.
    BadLength,
    BadCrc,
    UnknownKind(u8),
    /// A payload that does not parse as its kind's message.
    BadPayload,
}

impl LinkError {
    /// One byte on the wire (in `Error` messages).
    pub fn code(self) -> u8 {
        match self {
            LinkError::TooLong => 1,
            LinkError::Framing => 2,
            LinkError::Short => 3,
            LinkError::BadMagic => 4,
            LinkError::BadVersion(_) => 5,
            LinkError::BadLength => 6,
            LinkError::BadCrc => 7,
            LinkError::UnknownKind(_) => 8,
            LinkError::BadPayload => 9,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LinkError::TooLong => "packet longer than the receiver's limit",
            LinkError::Framing => "bad COBS framing",
            LinkError::Short => "packet too short",
            LinkError::BadMagic => "bad magic",
            LinkError::BadVersion(_) => "unsupported protocol version",
            LinkError::BadLength => "length field disagrees with the packet",
            LinkError::BadCrc => "CRC mismatch",
            LinkError::UnknownKind(_) => "unknown message kind",
            LinkError::BadPayload => "malformed payload",
        }
    }
}
