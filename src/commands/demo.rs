//! `kestrel demo`: the main job on the bundled defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::bench::{compare, images_in, table, write_atomically, Machine};
use super::bench_html::page;
use super::eval::evaluate;
use super::run::ImageModel;
use crate::cli::{CompressArgs, ConfigArgs, DemoArgs, EngineArgs, EvalArgs, Workload};
use crate::models::models_dir;

pub fn demo(args: &DemoArgs) -> Result<()> {
    let models = models_dir();
    let engine_args = || EngineArgs { backend: args.engine.backend.clone(), threads: args.engine.threads, mcu: None };
    let say = |text: &str| {
        if !args.json {
            println!("{text}");
        }
    };

    let detect = |model: &Path, photos: &Path, annotated: &str| -> Result<()> {
        let mut detector = ImageModel::open(model, &ConfigArgs::default(), &args.engine)?;
        for photo in &images_in(photos, "the demo's photo")? {
            let r = detector.infer(photo, Some(&args.out.join(annotated)), 1)?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("  {}", r.describe());
            }
        }
        Ok(())
    };
    say("== Objects: the COCO detector (NanoDet-g, 80 classes) on its photos ==");
    let objects_full = models.join("coco-nanodet/model.onnx");
    detect(&objects_full, &models.join("coco-nanodet/photos"), "objects")?;
    say("== Faces: BlazeFace short-range on the bundled photos ==");
    detect(&models.join("blazeface/model.onnx"), &models.join("samples"), "faces")?;

    say("== Classification: Fashion-MNIST CNN on sample images ==");
    let fashion = models.join("fashion-cnn/model.onnx");
    let mut classifier = ImageModel::open(&fashion, &ConfigArgs::default(), &args.engine)?;
    let mut samples: Vec<_> = std::fs::read_dir(models.join("fashion-cnn/samples"))
        .context("listing the Fashion-MNIST samples")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    samples.sort();
    for sample in &samples {
        let r = classifier.infer(sample, Some(&args.out.join("fashion")), 1)?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!("  {}", r.describe());
        }
    }

    say("== Accuracy: Fashion-MNIST test set (10,000 labeled images) ==");
    let report = evaluate(&EvalArgs {
        model: fashion,
        dataset: "fashion-mnist".into(),
        data_dir: None,
        limit: None,
        batch: 100,
        model_config: ConfigArgs::default(),
        json: args.json,
        engine: engine_args(),
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("  {}", report.describe());
    }

    say("== Compression: int8 (mixed and integer-only), and 50% structured pruning + reconstruction + int8 ==");
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating `{}`", args.out.display()))?;
    let fashion_full = models.join("fashion-cnn/model.onnx");
    let faces_full = models.join("blazeface/model.onnx");
    let fashion_int8 = args.out.join("fashion-cnn.int8.onnx");
    let fashion_small = args.out.join("fashion-cnn.p50.int8.onnx");
    let faces_int8 = args.out.join("blazeface.int8.onnx");
    let faces_integer = args.out.join("blazeface.integer.int8.onnx");
    let objects_integer = args.out.join("coco-nanodet.integer.int8.onnx");
    let calib_faces = models.join("blazeface/calib").display().to_string();
    let calib_objects = models.join("coco-nanodet/calib").display().to_string();
    for (model, calib, out, how) in [
        (&objects_full, calib_objects.as_str(), &objects_integer, Compression::IntegerOnly),
        (&fashion_full, "fashion-mnist", &fashion_int8, Compression::Int8),
        (&fashion_full, "fashion-mnist", &fashion_small, Compression::PruneInt8),
        (&faces_full, calib_faces.as_str(), &faces_int8, Compression::Int8),
        (&faces_full, calib_faces.as_str(), &faces_integer, Compression::IntegerOnly),
    ] {
        let summary = compress_quietly(model, calib, out, how)?;
        if args.json {
            println!("{summary}");
        } else {
            println!("  {}: {}", out.display(), summary["where_it_runs"].as_str().unwrap_or_default());
        }
    }

    say("== Full vs compressed (kestrel bench), each model on the backend `auto` chooses ==");
    let machine = Machine::this();
    say(&format!("machine: {}", machine.describe()));
    let workload = |dataset: Option<&str>, images: Option<PathBuf>| Workload {
        dataset: dataset.map(str::to_owned),
        images,
        limit: None,
        runs: 100,
        threads: args.engine.threads,
        input_shape: Vec::new(),
        backend: args.engine.backend.clone(),
    };
    let watched = [
        ("objects.mp4", "COCO detector full", "coco-full", objects_full.clone()),
        ("objects.mp4", "COCO detector integer-only int8", "coco-integer", objects_integer.clone()),
        ("face.mp4", "BlazeFace full", "blazeface-full", faces_full.clone()),
        ("face.mp4", "BlazeFace int8", "blazeface-int8", faces_int8.clone()),
    ];
    let comparisons = [
        ("coco-nanodet", vec![objects_full, objects_integer], workload(None, Some(models.join("coco-nanodet/photos")))),
        ("fashion-cnn", vec![fashion_full, fashion_int8, fashion_small], workload(Some("fashion-mnist"), None)),
        ("blazeface", vec![faces_full, faces_int8, faces_integer], workload(None, Some(models.join("samples")))),
    ];
    for (name, candidates, work) in &comparisons {
        let rows = compare(candidates, work)?;
        let html = args.out.join(format!("bench-{name}.html"));
        write_atomically(&html, &page(&rows, work, &machine))?;
        if args.json {
            for r in &rows {
                println!("{}", serde_json::to_string(r)?);
            }
        } else {
            print!("{}", table(&rows));
            println!("report: {}", html.display());
        }
    }
    #[cfg(feature = "camera")]
    {
        say("== Camera: `kestrel watch` replays the bundled clips at their own frame rate, as a camera would ==");
        for (clip, name, stem, model) in watched {
            let stem = args.out.join(format!("watch-{stem}"));
            let summary = watch_clip(&models.join("clips").join(clip), &model, &stem, engine_args())?;
            say(&format!("  {name} on {clip}: {summary}"));
        }
    }
    #[cfg(not(feature = "camera"))]
    let _ = watched;
    say(&format!("annotated images, compressed models, reports, results and recordings: {}", args.out.display()));
    Ok(())
}

/// `kestrel watch MODEL CLIP --realtime --json --out STEM.jsonl --record STEM.mkv`; returns a
/// one-line summary of what it wrote.
#[cfg(feature = "camera")]
fn watch_clip(clip: &Path, model: &Path, stem: &Path, engine: EngineArgs) -> Result<String> {
    let (jsonl, mkv) = (stem.with_extension("jsonl"), stem.with_extension("mkv"));
    crate::watch::watch(&crate::cli::WatchArgs {
        inputs: vec![model.display().to_string(), clip.display().to_string()],
        model_config: ConfigArgs::default(),
        json: true,
        out: Some(jsonl.clone()),
        preview: None,
        record: Some(mkv.clone()),
        frames: None,
        duration: None,
        fps: None,
        width: None,
        height: None,
        looping: false,
        realtime: true,
        workers: None,
        stall_timeout: 5.0,
        max_reconnects: None,
        rtsp_latency: 200,
        stats_every: 5.0,
        ros2: crate::cli::Ros2Args::default(),
        engine,
    })?;
    let text = std::fs::read_to_string(&jsonl).with_context(|| format!("reading `{}`", jsonl.display()))?;
    let lines: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let results: Vec<_> = lines.iter().filter(|l| l.get("frame").is_some()).collect();
    let seen = results.iter().filter(|r| r["detections"].as_array().is_some_and(|d| !d.is_empty())).count();
    let s = &lines.last().context("no stats line")?["stats"];
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    Ok(format!(
        "{} of {} frames processed ({} dropped), detections in {seen}; {:.1} fps, capture-to-result latency p50 {:.1} ms, p99 {:.1} ms (inference p50 {:.1} ms); {}, {}",
        s["frames_processed"],
        s["frames_captured"],
        s["frames_dropped"],
        f(&s["fps"]),
        f(&s["latency_ms"]["p50"]),
        f(&s["latency_ms"]["p99"]),
        f(&s["stages_ms"]["infer"]["p50"]),
        jsonl.display(),
        mkv.display()
    ))
}

/// What the demo makes of a model.
#[derive(Clone, Copy)]
enum Compression {
    /// `--int8`: the sensitive-layer guard keeps some layers float.
    Int8,
    /// `--int8 --integer-only`: every layer int8, for the integer runtime.
    IntegerOnly,
    /// `--prune 0.5 --structured --reconstruct --int8`.
    PruneInt8,
}

/// `kestrel compress` with the demo's settings; returns its JSON summary.
fn compress_quietly(model: &Path, calib: &str, out: &Path, how: Compression) -> Result<serde_json::Value> {
    eprintln!("compressing {} -> {}", model.display(), out.display());
    let prune = matches!(how, Compression::PruneInt8);
    super::compress::run(&CompressArgs {
        model: model.to_path_buf(),
        calib: calib.to_string(),
        out: out.to_path_buf(),
        int8: true,
        prune: prune.then_some(0.5),
        structured: prune,
        unstructured: false,
        reconstruct: prune,
        calibration: "auto".into(),
        calib_count: 5000,
        min_layer_sqnr: 30.0,
        integer_only: matches!(how, Compression::IntegerOnly),
        report: Some(out.with_extension("report.json")),
        model_config: ConfigArgs::default(),
        json: true,
    })
    .map(|(summary, _)| summary)
}
