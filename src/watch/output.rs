//! Where results go: JSON lines (stdout or `--out`, flushed per line) or a human summary line
//! per second, and the `stats` lines.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use kestrel_camera::Frame;
use kestrel_vision::decode::classify::Class;
use kestrel_vision::decode::Detection;
use serde::Serialize;

use super::stats::{Histogram, Percentiles, SourceLine, StageTimes, StagesLine, Stats, StatsLine};
use crate::cli::WatchArgs;
use crate::commands::run::Decoded;
use kestrel_vision::decode::raw::OutputSummary;

/// One source's counters, as the capture threads and queues keep them.
pub struct SourceCounts {
    pub captured: u64,
    pub dropped: u64,
    pub reconnects: u64,
    pub skipped: u64,
}

#[derive(Serialize)]
struct StageMs {
    preprocess: f64,
    infer: f64,
    decode: f64,
}

/// One processed frame, as a JSON line.
#[derive(Serialize)]
struct ResultLine<'a> {
    frame: u64,
    source: &'a str,
    source_index: usize,
    captured_unix_ns: u64,
    pts_ns: Option<u64>,
    latency_ms: f64,
    stages_ms: StageMs,
    width: u32,
    height: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    detections: Option<&'a [Detection]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    classes: Option<&'a [Class]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<&'a [OutputSummary]>,
}

pub struct Output {
    sink: Box<dyn Write + Send>,
    /// With `--ros2`, each result is also published on the ROS 2 graph.
    ros: Option<super::ros::Ros>,
    json: bool,
    sources: Vec<String>,
    processed: Vec<u64>,
    latency: Histogram,
    stages: StageTimes,
    /// The line being written, reused.
    line: Vec<u8>,
    summary_at: Instant,
    summary_frames: u64,
}

impl Output {
    /// Lines go to `sink`, else to `--out`, else to stdout.
    pub fn open(
        args: &WatchArgs,
        sources: Vec<String>,
        sink: Option<Box<dyn Write + Send>>,
        ros: Option<super::ros::Ros>,
    ) -> Result<Output> {
        let sink: Box<dyn Write + Send> = match (sink, &args.out) {
            (Some(sink), _) => sink,
            (None, Some(path)) => Box::new(create(path)?),
            (None, None) => Box::new(std::io::stdout()),
        };
        Ok(Output {
            sink,
            ros,
            json: args.json,
            processed: vec![0; sources.len()],
            sources,
            latency: Histogram::default(),
            stages: StageTimes::default(),
            line: Vec::with_capacity(4096),
            summary_at: Instant::now(),
            summary_frames: 0,
        })
    }

    /// Frames processed so far, all sources.
    pub fn processed(&self) -> u64 {
        self.processed.iter().sum()
    }

    /// Writes one processed frame (and publishes it, with `--ros2`); `stages` are the
    /// preprocess, infer and decode times (ms).
    /// Returns the frame's JSON line (without its newline), written or not.
    pub fn write_result(&mut self, frame: &Frame, decoded: &Decoded, stages: [f64; 3]) -> Result<&[u8]> {
        if let Some(ros) = &self.ros {
            ros.publish(frame, decoded);
        }
        let latency_ms = frame.captured.elapsed().as_secs_f64() * 1e3;
        self.latency.record(latency_ms);
        self.stages.preprocess.record(stages[0]);
        self.stages.infer.record(stages[1]);
        self.stages.decode.record(stages[2]);
        self.processed[frame.source] += 1;
        let (detections, classes, outputs) = match decoded {
            Decoded::Detections(d) => (Some(d.as_slice()), None, None),
            Decoded::Classes(c) => (None, Some(c.as_slice()), None),
            Decoded::Raw(o) => (None, None, Some(o.as_slice())),
        };
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        let line = ResultLine {
            frame: frame.seq,
            source: &self.sources[frame.source],
            source_index: frame.source,
            captured_unix_ns: frame.captured_unix_ns,
            pts_ns: frame.pts_ns,
            latency_ms: r(latency_ms),
            stages_ms: StageMs { preprocess: r(stages[0]), infer: r(stages[1]), decode: r(stages[2]) },
            width: frame.image.width(),
            height: frame.image.height(),
            detections,
            classes,
            outputs,
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &line)?;
        if self.json {
            self.emit()?;
        } else {
            self.summary_frames += 1;
            let since = self.summary_at.elapsed().as_secs_f64();
            if since >= 1.0 {
                let what = match (detections, classes) {
                    (Some(d), _) => format!("{} detection(s)", d.len()),
                    (_, Some(c)) => c.first().map_or("no class".into(), |c| format!("{} {:.3}", c.label, c.score)),
                    _ if outputs.is_some() => format!("{} raw output(s)", outputs.map_or(0, <[_]>::len)),
                    _ => String::new(),
                };
                let text = format!(
                    "{:.1} fps, latency p50 {:.1} ms; source {} frame {}: {what}\n",
                    self.summary_frames as f64 / since,
                    self.latency.quantile(0.5),
                    frame.source,
                    frame.seq
                );
                self.write(text.as_bytes())?;
                self.summary_at = Instant::now();
                self.summary_frames = 0;
            }
        }
        Ok(&self.line)
    }

    /// The `stats` line (JSON with `--json`, else a human summary at the end). Returns it as
    /// JSON.
    pub fn write_stats(&mut self, start: Instant, is_final: bool, counts: &[SourceCounts]) -> Result<String> {
        let line = self.stats_line(start, is_final, counts);
        let json = serde_json::to_string(&Stats { stats: &line })?;
        if self.json {
            self.write(format!("{json}\n").as_bytes())?;
        } else if is_final {
            let p = |p: &Percentiles| format!("p50 {:.1} ms, p99 {:.1} ms", p.p50, p.p99);
            let text = format!(
                "{} frame(s) processed of {} captured ({} dropped, {} reconnect(s)) in {:.1} s: {:.1} fps; latency {}; infer {}\n",
                line.frames_processed,
                line.frames_captured,
                line.frames_dropped,
                line.reconnects,
                line.elapsed_s,
                line.fps,
                p(&line.latency_ms),
                p(&line.stages_ms.infer)
            );
            self.write(text.as_bytes())?;
        }
        Ok(json)
    }

    /// The stats so far as a `{"stats":…}` JSON object, not written anywhere.
    pub fn stats_json(&self, start: Instant, counts: &[SourceCounts]) -> Result<String> {
        Ok(serde_json::to_string(&Stats { stats: &self.stats_line(start, false, counts) })?)
    }

    fn stats_line(&self, start: Instant, is_final: bool, counts: &[SourceCounts]) -> StatsLine {
        let elapsed = start.elapsed().as_secs_f64();
        let rate = |n: u64| if elapsed > 0.0 { (n as f64 / elapsed * 100.0).round() / 100.0 } else { 0.0 };
        let sources: Vec<SourceLine> = counts
            .iter()
            .zip(&self.sources)
            .zip(&self.processed)
            .map(|((c, name), &processed)| SourceLine {
                source: name.clone(),
                frames_captured: c.captured,
                frames_processed: processed,
                frames_dropped: c.dropped,
                frames_skipped: c.skipped,
                reconnects: c.reconnects,
                fps: rate(processed),
            })
            .collect();
        let sum = |f: fn(&SourceLine) -> u64| sources.iter().map(f).sum::<u64>();
        StatsLine {
            elapsed_s: (elapsed * 1000.0).round() / 1000.0,
            is_final,
            frames_captured: sum(|s| s.frames_captured),
            frames_processed: sum(|s| s.frames_processed),
            frames_dropped: sum(|s| s.frames_dropped),
            frames_skipped: sum(|s| s.frames_skipped),
            reconnects: sum(|s| s.reconnects),
            fps: rate(self.processed()),
            latency_ms: self.latency.summary(),
            stages_ms: StagesLine {
                preprocess: self.stages.preprocess.summary(),
                infer: self.stages.infer.summary(),
                decode: self.stages.decode.summary(),
            },
            sources,
        }
    }

    /// The result line, then its newline, flushed (a consumer sees each line as it happens).
    fn emit(&mut self) -> Result<()> {
        self.line.push(b'\n');
        let written = self.sink.write_all(&self.line).and_then(|()| self.sink.flush());
        self.line.pop();
        written.context("writing results")
    }

    fn write(&mut self, text: &[u8]) -> Result<()> {
        self.sink.write_all(text).and_then(|()| self.sink.flush()).context("writing results")
    }
}

fn create(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("creating --out file `{}`", path.display()))
}
