//! Packets: header, payload, CRC-32; sent through the COBS encoder, received byte by byte.

use crate::cobs::{self, Encoder};
use crate::{LinkError, HEADER, MAGIC, MAX_PAYLOAD, TRAILER, VERSION};

/// What a packet carries (one byte in the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// host → device: who are you? Answered with `ModelInfo`.
    Hello = 1,
    /// device → host: the model's input and output ([`crate::message::ModelInfo`]).
    ModelInfo = 2,
    /// host → device: one input image in the model's input format.
    Frame = 3,
    /// device → host: the result for the frame of the same sequence number.
    Result = 4,
    /// device → host: a packet was refused ([`crate::message::ErrorReport`]).
    Error = 5,
    /// host → device: send your counters. Answered with `Stats`.
    StatsRequest = 6,
    /// device → host: counters ([`crate::message::Stats`]).
    Stats = 7,
}

impl Kind {
    pub fn from_byte(b: u8) -> Result<Kind, LinkError> {
        Ok(match b {
            1 => Kind::Hello,
            2 => Kind::ModelInfo,
            3 => Kind::Frame,
            4 => Kind::Result,
            5 => Kind::Error,
            6 => Kind::StatsRequest,
            7 => Kind::Stats,
            _ => return Err(LinkError::UnknownKind(b)),
        })
    }
}

/// A received packet, borrowing the receiver's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub kind: Kind,
    pub seq: u16,
    pub payload: &'a [u8],
}

/// Encoded size of a packet with `payload` bytes, delimiter included: what a receiver's buffer
/// must hold ([`Decoder`]'s `N`).
pub const fn wire_len(payload: usize) -> usize {
    cobs::max_encoded_len(HEADER + payload + TRAILER) + 1
}

/// Sends one packet through `out` (a UART, a socket): header, payload (`parts` in order, never
/// joined in memory), CRC, COBS-encoded, then 0x00. A payload over [`MAX_PAYLOAD`] is a
/// caller's bug.
pub fn send<E>(kind: Kind, seq: u16, parts: &[&[u8]], out: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    assert!(len <= MAX_PAYLOAD, "payload of {len} bytes over the protocol's limit");
    let mut header = [0u8; HEADER];
    header[..2].copy_from_slice(&MAGIC);
    header[2] = VERSION;
    header[3] = kind as u8;
    header[4..6].copy_from_slice(&seq.to_le_bytes());
    header[6..8].copy_from_slice(&(len as u16).to_le_bytes());
    let mut crc = kestrel_micro::Crc32::default();
    let mut enc = Encoder::default();
    for part in core::iter::once(&header[..]).chain(parts.iter().copied()) {
        crc.update(part);
        enc.push(part, out)?;
    }
    enc.push(&crc.finish().to_le_bytes(), out)?;
    enc.finish(out)
}

/// Receives packets byte by byte into an `N`-byte buffer (size it with [`wire_len`] of the
/// largest payload this end accepts). Bytes past `N` before a delimiter are counted, not stored.
pub struct Decoder<const N: usize> {
    buf: heapless::Vec<u8, N>,
    overflow: bool,
    /// The buffer holds a finished packet (cleared by the next byte).
    done: bool,
}

impl<const N: usize> Default for Decoder<N> {
    fn default() -> Self {
        Decoder { buf: heapless::Vec::new(), overflow: false, done: false }
    }
}

impl<const N: usize> Decoder<N> {
    /// Takes one byte; at a delimiter, returns the packet that ended (or why it was dropped).
    /// Empty packets (repeated 0x00, sent to resynchronize) return nothing.
    pub fn push(&mut self, byte: u8) -> Option<Result<Packet<'_>, LinkError>> {
        if self.done {
            self.buf.clear();
            self.done = false;
        }
        if byte != 0 {
            if self.buf.push(byte).is_err() {
                self.overflow = true;
            }
            return None;
        }
        self.done = true;
        if core::mem::take(&mut self.overflow) {
            return Some(Err(LinkError::TooLong));
        }
        if self.buf.is_empty() {
            return None;
        }
        Some(parse(&mut self.buf))
    }

    /// Bytes of an unfinished packet held now (0 between packets).
    pub fn pending(&self) -> usize {
        if self.done {
            0
        } else {
            self.buf.len()
        }
    }
}

fn parse(buf: &mut [u8]) -> Result<Packet<'_>, LinkError> {
    let n = cobs::decode_in_place(buf)?;
    let bytes = &buf[..n];
    if n < HEADER + TRAILER {
        return Err(LinkError::Short);
    }
    if bytes[..2] != MAGIC {
        return Err(LinkError::BadMagic);
    }
    if bytes[2] != VERSION {
        return Err(LinkError::BadVersion(bytes[2]));
    }
    let len = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
    if len > MAX_PAYLOAD || HEADER + len + TRAILER != n {
        return Err(LinkError::BadLength);
    }
    let (body, crc) = bytes.split_at(HEADER + len);
    if kestrel_micro::crc32(body).to_le_bytes() != crc {
        return Err(LinkError::BadCrc);
    }
    let kind = Kind::from_byte(bytes[3])?;
    let seq = u16::from_le_bytes([bytes[4], bytes[5]]);
    Ok(Packet { kind, seq, payload: &bytes[HEADER..HEADER + len] })
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = wire_len(1024);

    fn wire(kind: Kind, seq: u16, payload: &[u8]) -> heapless::Vec<u8, N> {
        let mut out = heapless::Vec::new();
        send(kind, seq, &[payload], &mut |b: &[u8]| out.extend_from_slice(b)).unwrap();
        out
    }

    type Received = Result<(Kind, u16, heapless::Vec<u8, 1024>), LinkError>;

    /// Every packet (or error) the decoder reports for `bytes`, as (kind, seq, payload) or error.
    fn receive(d: &mut Decoder<N>, bytes: &[u8]) -> heapless::Vec<Received, 8> {
        let mut got = heapless::Vec::new();
        for &b in bytes {
            if let Some(r) = d.push(b) {
                let r = r.map(|p| (p.kind, p.seq, heapless::Vec::from_slice(p.payload).unwrap()));
                got.push(r).unwrap();
            }
        }
        got
    }

    #[test]
    fn packets_round_trip() {
        let mut d = Decoder::<N>::default();
        let payload: heapless::Vec<u8, 1024> = (0..1000).map(|i| (i % 7) as u8).collect();
        let mut bytes: heapless::Vec<u8, { 2 * N }> = heapless::Vec::new();
        bytes.extend_from_slice(&wire(Kind::Frame, 7, &payload)).unwrap();
        bytes.extend_from_slice(&wire(Kind::Hello, 65535, &[])).unwrap();
        let got = receive(&mut d, &bytes);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Ok((Kind::Frame, 7, payload)));
        assert_eq!(got[1], Ok((Kind::Hello, 65535, heapless::Vec::new())));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn every_single_byte_flip_is_caught_and_the_next_packet_still_arrives() {
        let good = wire(Kind::Frame, 1, b"some pixels \x00\x01\x02");
        let next = wire(Kind::Hello, 2, &[]);
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                let mut d = Decoder::<N>::default();
                let mut bytes: heapless::Vec<u8, N> = bad;
                bytes.extend_from_slice(&next).unwrap();
                let got = receive(&mut d, &bytes);
                // A flip may split the packet at a new 0x00 or merge it with the next: never a
                // corrupted packet accepted, and the packet after a delimiter arrives intact.
                assert!(
                    got.iter().all(|r| r.is_err() || r == &Ok((Kind::Hello, 2, heapless::Vec::new()))),
                    "{i}/{bit}: {got:?}"
                );
                if bad_keeps_delimiter(&good, i, bit) {
                    assert_eq!(got.last(), Some(&Ok((Kind::Hello, 2, heapless::Vec::new()))), "{i}/{bit}");
                }
            }
        }
    }

    /// Whether flipping bit `bit` of byte `i` leaves the packet's final delimiter in place.
    fn bad_keeps_delimiter(good: &[u8], i: usize, bit: u32) -> bool {
        i != good.len() - 1 || good[i] ^ (1 << bit) == 0
    }

    #[test]
    fn dropped_bytes_lengths_and_overflow_are_reported() {
        let good = wire(Kind::Frame, 3, b"0123456789");
        let mut d = Decoder::<N>::default();
        // A byte lost in the middle.
        let mut cut: heapless::Vec<u8, N> = heapless::Vec::from_slice(&good[..5]).unwrap();
        cut.extend_from_slice(&good[6..]).unwrap();
        assert!(receive(&mut d, &cut)[0].is_err());
        // More than the buffer holds: dropped, then the next packet is fine.
        let mut small = Decoder::<16>::default();
        let mut errors = 0;
        for &b in good.iter().chain(&wire(Kind::Hello, 4, &[])) {
            match small.push(b) {
                Some(Err(LinkError::TooLong)) => errors += 1,
                Some(Ok(p)) => assert_eq!((p.kind, p.seq), (Kind::Hello, 4)),
                Some(Err(e)) => panic!("{e:?}"),
                None => {}
            }
            assert!(small.pending() <= 16);
        }
        assert_eq!(errors, 1);
        // Noise without delimiters never grows past the buffer; a lone 0x00 is no packet.
        let mut d = Decoder::<N>::default();
        for i in 0..10 * N {
            assert!(d.push((i % 255 + 1) as u8).is_none());
        }
        assert_eq!(d.push(0), Some(Err(LinkError::TooLong)));
        assert_eq!(d.push(0), None);
    }
}
