//! What a person looks at: frames annotated with the results, recorded (`--record`) and shown
//! live (`--preview`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use kestrel_camera::{Frame, Recorder};

use super::preview::Preview;
use crate::commands::run::{draw_results, Decoded};

pub struct Visuals {
    record: Option<PathBuf>,
    /// One recording per source, opened at its first frame (when its size is known).
    recorders: Vec<Option<Recorder>>,
    skipped: Vec<u64>,
    pub preview: Option<Arc<Preview>>,
}

impl Visuals {
    pub fn new(record: Option<&Path>, sources: usize, preview: Option<Arc<Preview>>) -> Visuals {
        Visuals {
            record: record.map(Path::to_path_buf),
            recorders: (0..sources).map(|_| None).collect(),
            skipped: vec![0; sources],
            preview,
        }
    }

    /// Draws the results onto the frame (it is not needed unannotated any more), then records
    /// and offers it to the preview.
    pub fn show(&mut self, frame: &mut Frame, decoded: &Decoded) -> Result<()> {
        if self.record.is_none() && self.preview.is_none() {
            return Ok(());
        }
        let (classes, detections) = match decoded {
            Decoded::Classes(c) => (Some(c.as_slice()), None),
            Decoded::Detections(d) => (None, Some(d.as_slice())),
            Decoded::Raw(_) => (None, None),
        };
        draw_results(&mut frame.image, classes, detections);
        if let Some(base) = &self.record {
            let recorder = match &mut self.recorders[frame.source] {
                Some(r) => r,
                slot => slot.insert(Recorder::create(
                    &recording_path(base, frame.source),
                    frame.image.width(),
                    frame.image.height(),
                )?),
            };
            if !recorder.push(&frame.image, frame.captured_unix_ns)? {
                self.skipped[frame.source] += 1;
            }
        }
        if let Some(p) = &self.preview {
            p.offer(frame.source, &frame.image);
        }
        Ok(())
    }

    /// Completes the recordings (their files are playable to the last frame) and ends the preview streams.
    pub fn finish(self) -> Result<()> {
        if let Some(p) = &self.preview {
            p.stop();
        }
        for (source, r) in self.recorders.into_iter().enumerate() {
            let Some(r) = r else { continue };
            r.finish()?;
            if let Some(base) = &self.record {
                let skipped = self.skipped[source];
                let note =
                    if skipped > 0 { format!(" ({skipped} frame(s) of another size left out)") } else { String::new() };
                eprintln!("recorded source {source} into `{}`{note}", recording_path(base, source).display());
            }
        }
        Ok(())
    }
}

/// `out.mkv` for the first source, `out-1.mkv`, `out-2.mkv`… for the others.
fn recording_path(base: &Path, source: usize) -> PathBuf {
    if source == 0 {
        return base.to_path_buf();
    }
    let stem = base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = base.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    base.with_file_name(format!("{stem}-{source}{ext}"))
}
