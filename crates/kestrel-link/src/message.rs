//! The payloads of the typed messages, little endian, fixed layouts.

use crate::LinkError;

/// `ModelInfo`: what the device runs, so the host sends frames of the right size and reads
/// results right. The host quantizes nothing: a frame is the image's 8-bit pixels in the
/// model's input layout (height × width × channels); the device scales them to the model's
/// input (as its firmware's preprocessing does) and runs the integer model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    pub height: u16,
    pub width: u16,
    pub channels: u16,
    /// Output bytes in a `Result`.
    pub output_bytes: u16,
    /// CRC-32 of the `.kmodel` the device runs (the host checks it is the model it means).
    pub model_crc: u32,
}

impl ModelInfo {
    pub const LEN: usize = 12;

    /// Bytes of one frame.
    pub fn frame_bytes(&self) -> usize {
        usize::from(self.height) * usize::from(self.width) * usize::from(self.channels)
    }

    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..2].copy_from_slice(&self.height.to_le_bytes());
        b[2..4].copy_from_slice(&self.width.to_le_bytes());
        b[4..6].copy_from_slice(&self.channels.to_le_bytes());
        b[6..8].copy_from_slice(&self.output_bytes.to_le_bytes());
        b[8..12].copy_from_slice(&self.model_crc.to_le_bytes());
        b
    }

    pub fn parse(b: &[u8]) -> Result<ModelInfo, LinkError> {
        let b: &[u8; Self::LEN] = b.try_into().map_err(|_| LinkError::BadPayload)?;
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Ok(ModelInfo {
            height: u16_at(0),
            width: u16_at(2),
            channels: u16_at(4),
            output_bytes: u16_at(6),
            model_crc: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
}

/// `Result`: the top class, the cycles the inference took, then every output byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inference<'a> {
    pub class: u16,
    pub cycles: u32,
    pub output: &'a [u8],
}

impl<'a> Inference<'a> {
    pub const HEAD: usize = 6;

    /// The fixed part; the output bytes follow it in the payload.
    pub fn head(&self) -> [u8; 6] {
        let mut b = [0u8; 6];
        b[0..2].copy_from_slice(&self.class.to_le_bytes());
        b[2..6].copy_from_slice(&self.cycles.to_le_bytes());
        b
    }

    pub fn parse(b: &'a [u8]) -> Result<Inference<'a>, LinkError> {
        if b.len() < Self::HEAD {
            return Err(LinkError::BadPayload);
        }
        Ok(Inference {
            class: u16::from_le_bytes([b[0], b[1]]),
            cycles: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
            output: &b[Self::HEAD..],
        })
    }
}

/// Why the device refused a packet (`Error`, carrying the refused packet's sequence number when
/// it could be read, else the last good one's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Link(LinkError),
    /// A frame of the wrong size for the model.
    FrameSize,
    /// The model failed to run (a kestrel-micro error code).
    Model(u8),
    /// A message the device does not take (e.g. a `Result`).
    Unexpected,
}

impl Refusal {
    pub fn to_bytes(self) -> [u8; 2] {
        match self {
            Refusal::Link(e) => [1, e.code()],
            Refusal::FrameSize => [2, 0],
            Refusal::Model(code) => [3, code],
            Refusal::Unexpected => [4, 0],
        }
    }

    pub fn parse(b: &[u8]) -> Result<Refusal, LinkError> {
        Ok(match b {
            [1, code] => Refusal::Link(link_error(*code).ok_or(LinkError::BadPayload)?),
            [2, 0] => Refusal::FrameSize,
            [3, code] => Refusal::Model(*code),
            [4, 0] => Refusal::Unexpected,
            _ => return Err(LinkError::BadPayload),
        })
    }
}

/// The error a code stands for (its detail bytes are not on the wire).
fn link_error(code: u8) -> Option<LinkError> {
    Some(match code {
        1 => LinkError::TooLong,
        2 => LinkError::Framing,
        3 => LinkError::Short,
        4 => LinkError::BadMagic,
        5 => LinkError::BadVersion(0),
        6 => LinkError::BadLength,
        7 => LinkError::BadCrc,
        8 => LinkError::UnknownKind(0),
        9 => LinkError::BadPayload,
        _ => return None,
    })
}

/// `Stats`: the device's counters since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets: u32,
    pub frames: u32,
    /// Packets dropped, by cause: CRC, framing (COBS, short, magic, version, length), too long.
    pub crc_errors: u32,
    pub framing_errors: u32,
    pub too_long: u32,
}

impl Stats {
    pub const LEN: usize = 20;

    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        for (i, v) in
            [self.packets, self.frames, self.crc_errors, self.framing_errors, self.too_long].iter().enumerate()
        {
            b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    pub fn parse(b: &[u8]) -> Result<Stats, LinkError> {
        if b.len() != Self::LEN {
            return Err(LinkError::BadPayload);
        }
        let at = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        Ok(Stats { packets: at(0), frames: at(1), crc_errors: at(2), framing_errors: at(3), too_long: at(4) })
    }

    /// Counts a dropped packet under its cause.
    pub fn count(&mut self, e: LinkError) {
        match e {
            LinkError::BadCrc => self.crc_errors += 1,
            LinkError::TooLong => self.too_long += 1,
            _ => self.framing_errors += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_payloads_are_refused() {
        let info = ModelInfo { height: 28, width: 28, channels: 1, output_bytes: 40, model_crc: 0xDEAD_BEEF };
        assert_eq!(ModelInfo::parse(&info.to_bytes()), Ok(info));
        assert_eq!(info.frame_bytes(), 784);
        assert_eq!(ModelInfo::parse(&[0; 11]), Err(LinkError::BadPayload));

        let out = [1u8, 2, 3];
        let r = Inference { class: 9, cycles: 405_773, output: &out };
        let mut payload = [0u8; 9];
        payload[..6].copy_from_slice(&r.head());
        payload[6..].copy_from_slice(&out);
        assert_eq!(Inference::parse(&payload), Ok(r));
        assert_eq!(Inference::parse(&payload[..5]), Err(LinkError::BadPayload));

        for refusal in [Refusal::Link(LinkError::BadCrc), Refusal::FrameSize, Refusal::Model(4), Refusal::Unexpected] {
            assert_eq!(Refusal::parse(&refusal.to_bytes()), Ok(refusal));
        }
        assert_eq!(Refusal::parse(&[1, 200]), Err(LinkError::BadPayload));

        let mut s = Stats { packets: 5, frames: 3, ..Stats::default() };
        s.count(LinkError::BadCrc);
        s.count(LinkError::Framing);
        s.count(LinkError::TooLong);
        assert_eq!(Stats::parse(&s.to_bytes()), Ok(s));
    }
}
