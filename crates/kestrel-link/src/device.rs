//! The device end: reads packets from a serial port, runs each frame through the model, answers.
//! Generic over `embedded-io` (the port) and `embedded-hal` (the "detected" LED), so the same
//! code runs on any board's HAL — and on the host in its tests.

use embedded_hal::digital::{Error as _, OutputPin};
use embedded_io::{Error as _, Read, Write};

use crate::message::{Inference, ModelInfo, Refusal, Stats};
use crate::packet::{Decoder, Kind, Packet};

/// What the device runs: a model taking a frame of 8-bit pixels.
pub trait Model {
    fn info(&self) -> ModelInfo;
    /// Runs one frame (exactly `info().frame_bytes()` pixels), writing every output byte into
    /// `output` (`info().output_bytes` long). Returns the top class and the cycles it took, or a
    /// model error code.
    fn run(&mut self, frame: &[u8], output: &mut [u8]) -> Result<(u16, u32), u8>;
}

/// The device's side of the link, with an `N`-byte receive buffer (sized with
/// [`crate::packet::wire_len`] of the model's frame) and an `OUT`-byte output buffer.
pub struct Device<const N: usize, const OUT: usize> {
    decoder: Decoder<N>,
    stats: Stats,
    /// The sequence number of the last good packet (errors for unreadable packets carry it).
    last_seq: u16,
    output: [u8; OUT],
    /// The class that lights the LED.
    pub led_class: Option<u16>,
}

/// A port or pin failure (the link itself cannot report those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceError {
    Read(embedded_io::ErrorKind),
    Write(embedded_io::ErrorKind),
    Pin(embedded_hal::digital::ErrorKind),
    /// The port reported end of input.
    Closed,
}

impl<const N: usize, const OUT: usize> Device<N, OUT> {
    pub fn new(led_class: Option<u16>) -> Self {
        Device { decoder: Decoder::default(), stats: Stats::default(), last_seq: 0, output: [0; OUT], led_class }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Reads what the port has (at least one byte, blocking) and answers every packet it ends.
    pub fn poll<R: Read, W: Write, P: OutputPin>(
        &mut self,
        rx: &mut R,
        tx: &mut W,
        model: &mut impl Model,
        led: &mut P,
    ) -> Result<(), DeviceError> {
        let mut bytes = [0u8; 64];
        let n = rx.read(&mut bytes).map_err(|e| DeviceError::Read(e.kind()))?;
        if n == 0 {
            return Err(DeviceError::Closed);
        }
        for &b in &bytes[..n] {
            let Device { decoder, stats, last_seq, output, led_class } = self;
            let ran = match decoder.push(b) {
                None => None,
                Some(Ok(packet)) => {
                    stats.packets += 1;
                    *last_seq = packet.seq;
                    answer(packet, stats, output, tx, model).map_err(|e| DeviceError::Write(e.kind()))?
                }
                Some(Err(e)) => {
                    stats.count(e);
                    send(Kind::Error, *last_seq, &[&Refusal::Link(e).to_bytes()], tx)
                        .map_err(|e| DeviceError::Write(e.kind()))?;
                    None
                }
            };
            if let Some(class) = ran {
                let lit = *led_class == Some(class);
                if lit { led.set_high() } else { led.set_low() }.map_err(|e| DeviceError::Pin(e.kind()))?;
            }
        }
        Ok(())
    }
}

/// Answers one packet; returns the class when it ran a frame.
fn answer<W: Write>(
    packet: Packet<'_>,
    stats: &mut Stats,
    output: &mut [u8],
    tx: &mut W,
    model: &mut impl Model,
) -> Result<Option<u16>, W::Error> {
    let seq = packet.seq;
    let refuse = |tx: &mut W, r: Refusal| send(Kind::Error, seq, &[&r.to_bytes()], tx).map(|_| None);
    match packet.kind {
        Kind::Hello => send(Kind::ModelInfo, seq, &[&model.info().to_bytes()], tx).map(|_| None),
        Kind::StatsRequest => send(Kind::Stats, seq, &[&stats.to_bytes()], tx).map(|_| None),
        Kind::Frame => {
            let info = model.info();
            let out_len = usize::from(info.output_bytes);
            if packet.payload.len() != info.frame_bytes() || out_len > output.len() {
                return refuse(tx, Refusal::FrameSize);
            }
            match model.run(packet.payload, &mut output[..out_len]) {
                Ok((class, cycles)) => {
                    stats.frames += 1;
                    let head = Inference { class, cycles, output: &[] }.head();
                    send(Kind::Result, seq, &[&head, &output[..out_len]], tx)?;
                    Ok(Some(class))
                }
                Err(code) => refuse(tx, Refusal::Model(code)),
            }
        }
        Kind::ModelInfo | Kind::Result | Kind::Error | Kind::Stats => refuse(tx, Refusal::Unexpected),
    }
}

/// Sends one packet (payload: `parts` in order) and flushes.
fn send<W: Write>(kind: Kind, seq: u16, parts: &[&[u8]], tx: &mut W) -> Result<(), W::Error> {
    crate::packet::send(kind, seq, parts, &mut |b: &[u8]| tx.write_all(b))?;
    tx.flush()
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;
    use crate::packet::wire_len;
    use crate::LinkError;

    /// A 2×2 gray "model": class = brightest pixel's index, output = the pixels doubled.
    struct Brightest;

    impl Model for Brightest {
        fn info(&self) -> ModelInfo {
            ModelInfo { height: 2, width: 2, channels: 1, output_bytes: 4, model_crc: 7 }
        }

        fn run(&mut self, frame: &[u8], output: &mut [u8]) -> Result<(u16, u32), u8> {
            if frame == [0xEE; 4] {
                return Err(42);
            }
            for (o, p) in output.iter_mut().zip(frame) {
                *o = p.wrapping_mul(2);
            }
            let class = (0..4).max_by_key(|&i| frame[i]).unwrap_or(0) as u16;
            Ok((class, 1000))
        }
    }

    /// The in-memory port: reads from a byte string (in chunks of at most 5 bytes, as a UART
    /// delivers them), writes into a vector.
    struct Port {
        input: Vec<u8>,
        at: usize,
        output: Vec<u8>,
    }

    impl embedded_io::ErrorType for Port {
        type Error = core::convert::Infallible;
    }

    impl Read for Port {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(5).min(self.input.len() - self.at);
            buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Write for Port {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    struct Led(bool);

    impl embedded_hal::digital::ErrorType for Led {
        type Error = core::convert::Infallible;
    }

    impl OutputPin for Led {
        fn set_low(&mut self) -> Result<(), Self::Error> {
            self.0 = false;
            Ok(())
        }

        fn set_high(&mut self) -> Result<(), Self::Error> {
            self.0 = true;
            Ok(())
        }
    }

    fn packet(kind: Kind, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::packet::send(kind, seq, &[payload], &mut |b: &[u8]| {
            out.extend_from_slice(b);
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    /// Runs the device until its input is used up; returns each answer as (kind, seq, payload).
    fn run(input: Vec<u8>, led: &mut Led) -> (Vec<(Kind, u16, Vec<u8>)>, Stats) {
        let mut device = Device::<{ wire_len(4) }, 16>::new(Some(3));
        let mut port = Port { input, at: 0, output: Vec::new() };
        let mut tx = Port { input: Vec::new(), at: 0, output: Vec::new() };
        while port.at < port.input.len() {
            device.poll(&mut port, &mut tx, &mut Brightest, led).unwrap();
        }
        let mut answers = Vec::new();
        let mut d = Decoder::<{ wire_len(64) }>::default();
        for &b in &tx.output {
            if let Some(p) = d.push(b) {
                let p = p.unwrap();
                answers.push((p.kind, p.seq, p.payload.to_vec()));
            }
        }
        (answers, device.stats())
    }

    #[test]
    fn answers_hello_frames_and_stats_and_survives_faults() {
        let mut input = packet(Kind::Hello, 1, &[]);
        input.extend(packet(Kind::Frame, 2, &[1, 9, 3, 4]));
        let mut corrupt = packet(Kind::Frame, 3, &[1, 2, 3, 4]);
        corrupt[4] ^= 0x10;
        input.extend(corrupt);
        input.extend([0x55; 40]); // noise longer than the device's buffer, then a delimiter
        input.push(0);
        input.extend(packet(Kind::Frame, 4, &[1, 2, 3, 4]));
        input.extend(packet(Kind::Frame, 5, &[1, 2, 3])); // wrong size
        input.extend(packet(Kind::Frame, 6, &[0xEE; 4])); // the model fails
        input.extend(packet(Kind::Result, 7, &[]));
        input.extend(packet(Kind::StatsRequest, 8, &[]));
        let mut led = Led(false);
        let (answers, stats) = run(input, &mut led);
        let kinds: Vec<(Kind, u16)> = answers.iter().map(|a| (a.0, a.1)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::ModelInfo, 1),
                (Kind::Result, 2),
                (Kind::Error, 2), // the corrupted frame: refused, under the last good number
                (Kind::Error, 2), // the noise
                (Kind::Result, 4),
                (Kind::Error, 5),
                (Kind::Error, 6),
                (Kind::Error, 7),
                (Kind::Stats, 8),
            ]
        );
        assert_eq!(ModelInfo::parse(&answers[0].2).unwrap().frame_bytes(), 4);
        assert_eq!(
            Inference::parse(&answers[1].2).unwrap(),
            Inference { class: 1, cycles: 1000, output: &[2, 18, 6, 8] }
        );
        assert_eq!(Refusal::parse(&answers[2].2), Ok(Refusal::Link(LinkError::BadCrc)));
        assert_eq!(Refusal::parse(&answers[3].2), Ok(Refusal::Link(LinkError::TooLong)));
        assert_eq!(Refusal::parse(&answers[5].2), Ok(Refusal::FrameSize));
        assert_eq!(Refusal::parse(&answers[6].2), Ok(Refusal::Model(42)));
        assert_eq!(Refusal::parse(&answers[7].2), Ok(Refusal::Unexpected));
        let s = Stats::parse(&answers[8].2).unwrap();
        assert_eq!((s.packets, s.frames, s.crc_errors, s.too_long), (7, 2, 1, 1));
        assert_eq!(s, stats);
        // Frame 4's brightest pixel is index 3, the LED's class.
        assert!(led.0);
    }
}
