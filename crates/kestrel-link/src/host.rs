//! The host end (feature `std`): requests with a timeout per answer, resynchronization and
//! retries, over any byte stream — a TCP socket, a serial port's device file — read by a thread
//! so that every wait is bounded.

extern crate std;

use std::boxed::Box;
use std::io::{Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::message::{Inference, ModelInfo, Refusal, Stats};
use crate::packet::{self, wire_len, Decoder, Kind};
use crate::{LinkError, MAX_PAYLOAD};

/// Why a request failed after its retries. A hand-written enum: the crate is `no_std` without
/// this feature.
#[derive(Debug)]
pub enum ClientError {
    Io(std::io::Error),
    /// No answer within the timeout, on every try.
    Timeout {
        tries: u32,
        timeout: Duration,
    },
    /// The device refused the request (wrong frame size, model error, unexpected message).
    Refused(Refusal),
    /// Every try was lost to link errors (the last one given).
    Link {
        tries: u32,
        last: LinkError,
    },
    /// The device answered with something else than the request's answer.
    Unexpected {
        kind: Kind,
    },
    /// A well-formed answer whose payload is not its kind's message.
    BadAnswer(LinkError),
    /// The stream ended.
    Closed,
    /// A request over the protocol's payload limit (a device asking for larger frames).
    TooLarge {
        bytes: usize,
    },
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "link I/O: {e}"),
            ClientError::Timeout { tries, timeout } => {
                write!(f, "no answer from the device within {} ms, {tries} tries", timeout.as_millis())
            }
            ClientError::Refused(r) => write!(f, "the device refused the request: {r:?}"),
            ClientError::Link { tries, last } => {
                write!(f, "{tries} tries lost to link errors, the last: {}", last.name())
            }
            ClientError::Unexpected { kind } => write!(f, "the device answered with an unexpected {kind:?}"),
            ClientError::BadAnswer(e) => write!(f, "malformed answer: {}", e.name()),
            ClientError::Closed => write!(f, "the link closed"),
            ClientError::TooLarge { bytes } => {
                write!(f, "a {bytes}-byte request is over the link's limit of {MAX_PAYLOAD} bytes")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// Counters of what the client saw, for reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientStats {
    pub requests: u32,
    pub retries: u32,
    pub timeouts: u32,
    pub link_errors: u32,
}

/// The result of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub class: u16,
    pub cycles: u32,
    pub output: Vec<u8>,
}

pub struct Client {
    tx: Box<dyn Write + Send>,
    rx: Receiver<std::io::Result<Vec<u8>>>,
    decoder: Box<Decoder<{ wire_len(MAX_PAYLOAD) }>>,
    seq: u16,
    pub timeout: Duration,
    pub retries: u32,
    pub stats: ClientStats,
}

impl Client {
    /// A client over `reader` (moved to a thread) and `writer`, e.g. two handles of one socket.
    pub fn new(
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        timeout: Duration,
        retries: u32,
    ) -> Client {
        let (send, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = reader;
            let mut buf = [0u8; 4096];
            loop {
                let r = reader.read(&mut buf).map(|n| buf[..n].to_vec());
                let end = !matches!(&r, Ok(b) if !b.is_empty());
                if send.send(r).is_err() || end {
                    return;
                }
            }
        });
        Client {
            tx: Box::new(writer),
            rx,
            decoder: Box::default(),
            seq: 0,
            timeout,
            retries,
            stats: ClientStats::default(),
        }
    }

    /// Asks the device what it runs.
    pub fn hello(&mut self) -> Result<ModelInfo, ClientError> {
        let payload = self.request(Kind::Hello, &[], Kind::ModelInfo)?;
        ModelInfo::parse(&payload).map_err(ClientError::BadAnswer)
    }

    /// Sends one frame, returns its result.
    pub fn infer(&mut self, frame: &[u8]) -> Result<Answer, ClientError> {
        let payload = self.request(Kind::Frame, frame, Kind::Result)?;
        let r = Inference::parse(&payload).map_err(ClientError::BadAnswer)?;
        Ok(Answer { class: r.class, cycles: r.cycles, output: r.output.to_vec() })
    }

    pub fn device_stats(&mut self) -> Result<Stats, ClientError> {
        let payload = self.request(Kind::StatsRequest, &[], Kind::Stats)?;
        Stats::parse(&payload).map_err(ClientError::BadAnswer)
    }

    /// Sends a request and waits for the answer of the same sequence number; on a timeout or a
    /// link error, sends it again (with a new sequence number) up to `retries` times.
    fn request(&mut self, kind: Kind, payload: &[u8], answer: Kind) -> Result<Vec<u8>, ClientError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(ClientError::TooLarge { bytes: payload.len() });
        }
        self.stats.requests += 1;
        let mut last_link = None;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                self.stats.retries += 1;
            }
            self.seq = self.seq.wrapping_add(1);
            // A lone 0x00 first: whatever the device half-received is dropped, not joined to this.
            let tx = &mut self.tx;
            tx.write_all(&[0]).map_err(ClientError::Io)?;
            packet::send(kind, self.seq, &[payload], &mut |b: &[u8]| tx.write_all(b)).map_err(ClientError::Io)?;
            tx.flush().map_err(ClientError::Io)?;
            match self.wait(answer)? {
                Wait::Answer(p) => return Ok(p),
                Wait::Timeout => self.stats.timeouts += 1,
                Wait::Link(e) => {
                    self.stats.link_errors += 1;
                    last_link = Some(e);
                }
            }
        }
        let tries = self.retries + 1;
        Err(match last_link {
            Some(last) => ClientError::Link { tries, last },
            None => ClientError::Timeout { tries, timeout: self.timeout },
        })
    }

    fn wait(&mut self, answer: Kind) -> Result<Wait, ClientError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let bytes = match self.rx.recv_timeout(left) {
                Ok(Ok(b)) if b.is_empty() => return Err(ClientError::Closed),
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(ClientError::Io(e)),
                Err(RecvTimeoutError::Timeout) => return Ok(Wait::Timeout),
                Err(RecvTimeoutError::Disconnected) => return Err(ClientError::Closed),
            };
            for b in bytes {
                match self.decoder.push(b) {
                    None => {}
                    // Our answer came back damaged, or the device could not read our request.
                    Some(Err(e)) => return Ok(Wait::Link(e)),
                    Some(Ok(p)) if p.kind == Kind::Error => match Refusal::parse(p.payload) {
                        Ok(Refusal::Link(e)) => return Ok(Wait::Link(e)),
                        Ok(r) if p.seq == self.seq => return Err(ClientError::Refused(r)),
                        Ok(_) => {} // about an earlier request
                        Err(e) => return Err(ClientError::BadAnswer(e)),
                    },
                    Some(Ok(p)) if p.seq != self.seq => {} // a late answer to an earlier try
                    Some(Ok(p)) if p.kind == answer => return Ok(Wait::Answer(p.payload.to_vec())),
                    Some(Ok(p)) => return Err(ClientError::Unexpected { kind: p.kind }),
                }
            }
        }
    }
}

enum Wait {
    Answer(Vec<u8>),
    Timeout,
    Link(LinkError),
}

/// `tcp:HOST:PORT` or a device path (a serial port set to raw mode, e.g. `stty -F PATH raw 115200`).
pub fn open(port: &str, timeout: Duration, retries: u32) -> Result<Client, ClientError> {
    if let Some(addr) = port.strip_prefix("tcp:") {
        let stream = std::net::TcpStream::connect(addr).map_err(ClientError::Io)?;
        stream.set_nodelay(true).map_err(ClientError::Io)?;
        let reader = stream.try_clone().map_err(ClientError::Io)?;
        return Ok(Client::new(reader, stream, timeout, retries));
    }
    let file = std::fs::OpenOptions::new().read(true).write(true).open(port).map_err(ClientError::Io)?;
    let reader = file.try_clone().map_err(ClientError::Io)?;
    Ok(Client::new(reader, file, timeout, retries))
}
