//! `--preview`: a page with each source's annotated live view (MJPEG), its live stats and latest
//! results (Server-Sent Events). The pipeline only ever copies a frame into a slot (at most
//! [`PREVIEW_FPS`] a second); one encoder thread makes JPEGs from the newest copies, and every
//! browser connection has its own thread that sends the newest JPEG when it can — a slow or
//! vanished browser never slows the pipeline, it just sees fewer frames.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::lock;
use kestrel_vision::image::codecs::jpeg::JpegEncoder;
use kestrel_vision::image::{ExtendedColorType, RgbImage};

/// Most frames a second copied for the preview, per source.
const PREVIEW_FPS: f64 = 15.0;
/// Browser connections served at once; more are refused (503).
const MAX_CONNECTIONS: usize = 16;
const PAGE: &str = include_str!("preview.html");
const BOUNDARY: &str = "kestrelframe";

/// Newest frame copies waiting for the encoder, one per source.
struct Pending {
    frames: Vec<Option<RgbImage>>,
    spare: Vec<Vec<u8>>,
}

/// What the page shows, shared between the pipeline, the encoder and the connections.
pub struct Preview {
    sources: Vec<String>,
    pending: Mutex<Pending>,
    to_encode: Condvar,
    last_offer: Mutex<Vec<Option<Instant>>>,
    /// Per source: (version, JPEG).
    jpegs: Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
    /// The latest `{"stats":…}` and result lines, as JSON.
    info: Mutex<(String, Vec<String>)>,
    changed: Condvar,
    connections: AtomicUsize,
    stopped: AtomicBool,
}

impl Preview {
    /// Listens on `addr` (say `127.0.0.1:8080`; port 0 picks a free one) and serves the page.
    pub fn start(addr: &str, sources: Vec<String>) -> Result<(Arc<Preview>, SocketAddr)> {
        let server = tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("--preview {addr}: {e}"))?;
        let bound = match server.server_addr() {
            tiny_http::ListenAddr::IP(a) => a,
            #[allow(unreachable_patterns)]
            _ => bail!("--preview {addr}: not an IP address"),
        };
        let n = sources.len();
        let preview = Arc::new(Preview {
            sources,
            pending: Mutex::new(Pending { frames: (0..n).map(|_| None).collect(), spare: Vec::new() }),
            to_encode: Condvar::new(),
            last_offer: Mutex::new(vec![None; n]),
            jpegs: Mutex::new(vec![(0, Arc::new(Vec::new())); n]),
            info: Mutex::new((String::from("{}"), vec![String::from("null"); n])),
            changed: Condvar::new(),
            connections: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        });
        let p = Arc::clone(&preview);
        std::thread::Builder::new()
            .name("preview-jpeg".into())
            .spawn(move || p.encode_loop())
            .context("preview thread")?;
        let p = Arc::clone(&preview);
        std::thread::Builder::new()
            .name("preview-http".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    if p.stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    let p = Arc::clone(&p);
                    let _ = std::thread::Builder::new().name("preview-conn".into()).spawn(move || p.serve(request));
                }
            })
            .context("preview thread")?;
        Ok((preview, bound))
    }

    /// The pipeline's side: copies an annotated frame for the preview if one is due.
    pub fn offer(&self, source: usize, image: &RgbImage) {
        let now = Instant::now();
        {
            let mut last = lock(&self.last_offer);
            if last[source].is_some_and(|t| now.duration_since(t).as_secs_f64() < 1.0 / PREVIEW_FPS) {
                return;
            }
            last[source] = Some(now);
        }
        let mut pending = lock(&self.pending);
        let mut pixels = match pending.frames[source].take() {
            Some(old) => old.into_raw(),
            None => pending.spare.pop().unwrap_or_default(),
        };
        pixels.clear();
        pixels.extend_from_slice(image.as_raw());
        pending.frames[source] = RgbImage::from_raw(image.width(), image.height(), pixels);
        drop(pending);
        self.to_encode.notify_one();
    }

    /// The pipeline's side: the latest stats line and a source's latest result line.
    pub fn note(&self, stats: Option<String>, result: Option<(usize, &[u8])>) {
        let mut info = lock(&self.info);
        if let Some(s) = stats {
            info.0 = s;
        }
        if let Some((source, line)) = result {
            info.1[source].clear();
            info.1[source].push_str(&String::from_utf8_lossy(line));
        }
        drop(info);
        self.changed.notify_all();
    }

    /// Ends the streams (the page keeps its last frame).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.to_encode.notify_all();
        self.changed.notify_all();
    }

    fn encode_loop(&self) {
        let mut out = Vec::new();
        loop {
            let (source, image) = {
                let mut pending = lock(&self.pending);
                loop {
                    if self.stopped.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(i) = pending.frames.iter().position(Option::is_some) {
                        break (i, pending.frames[i].take().unwrap_or_default());
                    }
                    pending = self.to_encode.wait(pending).unwrap_or_else(|p| p.into_inner());
                }
            };
            out.clear();
            let encoded = JpegEncoder::new_with_quality(&mut out, 80).encode(
                image.as_raw(),
                image.width(),
                image.height(),
                ExtendedColorType::Rgb8,
            );
            lock(&self.pending).spare.push(image.into_raw());
            if encoded.is_ok() {
                let mut jpegs = lock(&self.jpegs);
                let version = jpegs[source].0 + 1;
                jpegs[source] = (version, Arc::new(out.clone()));
                drop(jpegs);
                self.changed.notify_all();
            }
        }
    }

    fn serve(&self, request: tiny_http::Request) {
        if self.connections.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            let _ =
                request.respond(tiny_http::Response::from_string("too many preview connections").with_status_code(503));
        } else {
            let _ = self.route(request);
        }
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    fn route(&self, request: tiny_http::Request) -> std::io::Result<()> {
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let source = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("source="))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let typed = |mut response: tiny_http::Response<std::io::Cursor<Vec<u8>>>, mime: &str| {
            if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], mime.as_bytes()) {
                response.add_header(h);
            }
            response
        };
        match path {
            "/" => {
                let page = PAGE.replace("__SOURCES__", &serde_json::to_string(&self.sources).unwrap_or_default());
                request.respond(typed(tiny_http::Response::from_string(page), "text/html; charset=utf-8"))
            }
            "/stream.mjpg" if source < self.sources.len() => self.stream_jpegs(request.into_writer(), source),
            "/snapshot.jpg" if source < self.sources.len() => {
                let jpeg = lock(&self.jpegs)[source].1.clone();
                request.respond(typed(tiny_http::Response::from_data(jpeg.to_vec()), "image/jpeg"))
            }
            "/events" => self.stream_events(request.into_writer()),
            _ => request.respond(tiny_http::Response::from_string("not found").with_status_code(404)),
        }
    }

    /// `multipart/x-mixed-replace`: the newest JPEG whenever there is a new one.
    fn stream_jpegs(&self, mut w: Box<dyn Write + Send>, source: usize) -> std::io::Result<()> {
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        )?;
        let mut seen = 0;
        while let Some((version, jpeg)) = self.wait_for(|| {
            let (v, j) = &lock(&self.jpegs)[source];
            (*v > seen).then(|| (*v, Arc::clone(j)))
        }) {
            seen = version;
            write!(w, "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len())?;
            w.write_all(&jpeg)?;
            w.write_all(b"\r\n")?;
            w.flush()?;
        }
        Ok(())
    }

    /// Server-Sent Events: `{"stats":…,"results":[…]}` at most twice a second.
    fn stream_events(&self, mut w: Box<dyn Write + Send>) -> std::io::Result<()> {
        write!(w, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")?;
        let mut last = String::new();
        loop {
            let event = {
                let info = lock(&self.info);
                format!("{{\"stats\":{},\"results\":[{}]}}", info.0, info.1.join(","))
            };
            if event != last {
                write!(w, "data: {event}\n\n")?;
                w.flush()?;
                last = event;
            }
            std::thread::sleep(Duration::from_millis(500));
            if self.stopped.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    }

    /// Waits (in steps, so a stop is noticed) until `ready` gives something.
    fn wait_for<T>(&self, ready: impl Fn() -> Option<T>) -> Option<T> {
        loop {
            if let Some(t) = ready() {
                return Some(t);
            }
            if self.stopped.load(Ordering::Relaxed) {
                return None;
            }
            let info = lock(&self.info);
            let _ = self.changed.wait_timeout(info, Duration::from_millis(250));
        }
    }
}
