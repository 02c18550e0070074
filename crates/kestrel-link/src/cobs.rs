//! Consistent Overhead Byte Stuffing: a packet's bytes without any 0x00, so 0x00 can end it. At
//! most one byte of overhead per 254, and a receiver that lost bytes finds the next packet at
//! the next 0x00.

use crate::LinkError;

/// Encoded length of `n` bytes at most (without the 0x00 delimiter).
pub const fn max_encoded_len(n: usize) -> usize {
    n + n / 254 + 1
}

/// Streaming encoder: one 254-byte block of state, so a sender never holds a whole encoded
/// packet (a 48 KiB frame on a microcontroller).
pub struct Encoder {
    block: [u8; 254],
    len: usize,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder { block: [0; 254], len: 0 }
    }
}

impl Encoder {
    /// Encodes `bytes`, handing the output to `out` a block at a time.
    pub fn push<E>(&mut self, bytes: &[u8], out: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        for &b in bytes {
            if b == 0 {
                self.flush(out)?;
            } else {
                self.block[self.len] = b;
                self.len += 1;
                if self.len == 254 {
                    // A full block carries no implied zero: code 0xFF.
                    out(&[0xFF])?;
                    out(&self.block)?;
                    self.len = 0;
                }
            }
        }
        Ok(())
    }

    /// Ends the packet: the last block, then the 0x00 delimiter.
    pub fn finish<E>(mut self, out: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.flush(out)?;
        out(&[0])
    }

    fn flush<E>(&mut self, out: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        out(&[self.len as u8 + 1])?;
        out(&self.block[..self.len])?;
        self.len = 0;
        Ok(())
    }
}

/// Decodes in place (the output is never longer than the input); returns the decoded length.
pub fn decode_in_place(buf: &mut [u8]) -> Result<usize, LinkError> {
    let (mut r, mut w) = (0, 0);
    while r < buf.len() {
        let code = buf[r] as usize;
        if code == 0 {
            return Err(LinkError::Framing);
        }
        r += 1;
        let n = code - 1;
        if r + n > buf.len() {
            return Err(LinkError::Framing);
        }
        buf.copy_within(r..r + n, w);
        r += n;
        w += n;
        if code != 0xFF && r < buf.len() {
            buf[w] = 0;
            w += 1;
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(data: &[u8]) -> heapless::Vec<u8, 2048> {
        let mut out = heapless::Vec::new();
        let mut e = Encoder::default();
        let mut sink = |b: &[u8]| out.extend_from_slice(b);
        e.push(data, &mut sink).unwrap();
        e.finish(&mut sink).unwrap();
        out
    }

    #[test]
    fn round_trips_and_has_no_zero_but_the_delimiter() {
        let mut cases: [heapless::Vec<u8, 1024>; 7] = Default::default();
        cases[1].extend_from_slice(&[0]).unwrap();
        cases[2].extend_from_slice(&[0, 0, 1, 0]).unwrap();
        for i in 0..254 {
            cases[3].push(i as u8 % 255 + 1).unwrap(); // exactly one full block
        }
        for i in 0..255 {
            cases[4].push(i as u8 % 255 + 1).unwrap();
        }
        for i in 0..1000 {
            cases[5].push((i * 7) as u8).unwrap();
        }
        cases[6].extend_from_slice(&[0; 600]).unwrap();
        for data in &cases {
            let mut enc = encode(data);
            assert_eq!(enc.last(), Some(&0));
            enc.pop();
            assert!(!enc.contains(&0));
            assert!(enc.len() <= max_encoded_len(data.len()), "{} > {}", enc.len(), max_encoded_len(data.len()));
            let n = decode_in_place(&mut enc).unwrap();
            assert_eq!(&enc[..n], &data[..]);
        }
    }

    #[test]
    fn truncated_or_zero_bearing_input_is_a_framing_error() {
        assert_eq!(decode_in_place(&mut [5, 1, 2]), Err(LinkError::Framing));
        assert_eq!(decode_in_place(&mut [2, 1, 0, 1]), Err(LinkError::Framing));
    }
}
