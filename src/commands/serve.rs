//! The board side of a release: `kestrel health` (run before a deploy switches to a release) and
//! `kestrel serve` (the service; it repeats the health check with the release's runtime settings
//! at start and reports in STATE/status, which `kestrel deploy` waits for).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kestrel_deploy::bundle::{read_release, HealthSpec};
use kestrel_vision::decode::classify::Class;
use kestrel_vision::decode::Detection;
use serde::Deserialize;

use super::run::{ImageModel, ImageResult};
use crate::cli::{ConfigArgs, EngineArgs, HealthArgs, ServeArgs};

/// Largest class-score difference between the host's result and the board's (different SIMD
/// kernels reorder float sums; the aarch64 tests see < 1e-4).
const SCORE_TOL: f32 = 1e-3;
/// Smallest IoU between a host box and the board's box.
const MIN_IOU: f32 = 0.9;
/// Largest box-score difference (a detector's score goes through more float work than a class's).
const BOX_SCORE_TOL: f32 = 0.01;

pub fn health(args: &HealthArgs) -> Result<()> {
    let (release, spec) = read_release(&args.release)?;
    let engine = EngineArgs { backend: args.backend.clone(), threads: 1, mcu: None };
    let (_, result, seconds) = check(&args.release, &spec, &engine)?;
    let line = serde_json::json!({ "ok": true, "release": release.id, "seconds": seconds, "result": result });
    println!("{line}");
    Ok(())
}

pub fn serve(args: &ServeArgs) -> Result<()> {
    let dir = args.release.canonicalize().with_context(|| format!("release `{}`", args.release.display()))?;
    let (release, spec) = read_release(&dir)?;
    let state = &args.state;
    let (inbox, done, failed) = (state.join("inbox"), state.join("done"), state.join("failed"));
    for d in [&inbox, &done, &failed] {
        std::fs::create_dir_all(d).with_context(|| format!("creating `{}`", d.display()))?;
    }
    write_status(state, &release.id, "starting", "")?;
    let engine = EngineArgs { backend: release.backend.clone(), threads: release.threads as usize, mcu: None };
    let mut model = match check(&dir, &spec, &engine) {
        Ok((model, _, _)) => model,
        Err(e) => {
            let detail = format!("{e:#}").replace('\n', " ");
            write_status(state, &release.id, "failed", &detail)?;
            return Err(e);
        }
    };
    write_status(
        state,
        &release.id,
        "ready",
        &format!("pid {} backend {}", std::process::id(), model.engine.backend()),
    )?;
    eprintln!("kestrel serve: release {} ready; watching `{}`", release.id, inbox.display());
    let results_path = state.join("results.jsonl");
    loop {
        for image in pending(&inbox)? {
            let name = image.file_name().map(PathBuf::from).unwrap_or_default();
            let (line, to) = match model.infer(&image, None, 1) {
                Ok(r) => (serde_json::json!({ "release": release.id, "result": r }), done.join(&name)),
                Err(e) => {
                    let error = format!("{e:#}").replace('\n', " ");
                    (serde_json::json!({ "release": release.id, "image": image, "error": error }), failed.join(&name))
                }
            };
            // The result is on disk before the image leaves the inbox: a crash repeats, never loses.
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&results_path)
                .with_context(|| format!("opening `{}`", results_path.display()))?;
            writeln!(out, "{line}").and_then(|_| out.sync_data()).context("writing results.jsonl")?;
            std::fs::rename(&image, &to).with_context(|| format!("moving `{}`", image.display()))?;
        }
        std::thread::sleep(Duration::from_millis(args.poll_ms.max(10)));
    }
}

/// Runs the release's health model on its health image with `engine` settings and compares
/// with the expected result, within the time budget.
fn check(dir: &Path, spec: &HealthSpec, engine: &EngineArgs) -> Result<(ImageModel, ImageResult, f64)> {
    let start = Instant::now();
    let mut model = ImageModel::open(&dir.join(&spec.model), &ConfigArgs::default(), engine)?;
    let result = model.infer(&dir.join(&spec.image), None, 1)?;
    let expected: Expected = serde_json::from_value(spec.expected.clone()).context("health.json: expected")?;
    compare(&result, &expected).with_context(|| format!("health check of `{}` on `{}`", spec.model, spec.image))?;
    let seconds = start.elapsed().as_secs_f64();
    if seconds > f64::from(spec.budget_s) {
        bail!("health check took {seconds:.1} s, over its budget of {} s", spec.budget_s);
    }
    Ok((model, result, seconds))
}

#[derive(Debug, Deserialize)]
struct Expected {
    classes: Option<Vec<Class>>,
    detections: Option<Vec<Detection>>,
}

fn compare(got: &ImageResult, want: &Expected) -> Result<()> {
    if let Some(want) = &want.classes {
        let got = got.classes.as_deref().unwrap_or_default();
        let (g, w) = (got.first(), want.first());
        match (g, w) {
            (Some(g), Some(w)) if g.label == w.label && (g.score - w.score).abs() <= SCORE_TOL => {}
            _ => bail!(
                "top class {:?}, expected {:?} (scores within {SCORE_TOL})",
                g.map(|c| (&c.label, c.score)),
                w.map(|c| (&c.label, c.score))
            ),
        }
    }
    if let Some(want) = &want.detections {
        let got = got.detections.as_deref().unwrap_or_default();
        if got.len() != want.len() {
            bail!("{} detection(s), expected {}", got.len(), want.len());
        }
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let iou = g.iou(w);
            if iou < MIN_IOU || (g.score - w.score).abs() > BOX_SCORE_TOL {
                bail!("detection {i}: IoU {iou:.3} with the expected box, score {:.3} vs {:.3}", g.score, w.score);
            }
        }
    }
    Ok(())
}

/// Images waiting in the inbox, oldest name first (files still being written end in `.part`).
fn pending(inbox: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(inbox)
        .with_context(|| format!("reading inbox `{}`", inbox.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            p.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `STATE/status` (key=value lines, read by the deploy's board script), replaced atomically.
fn write_status(state: &Path, release: &str, what: &str, detail: &str) -> Result<()> {
    let tmp = state.join("status.tmp");
    let text = format!("release={release}\nstate={what}\ndetail={}\n", detail.replace('\n', " "));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, state.join("status")))
        .with_context(|| format!("writing `{}`", state.join("status").display()))
}
