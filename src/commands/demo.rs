//! `kestrel demo`: the main job on the bundled defaults.

use anyhow::{Context, Result};

use super::eval::evaluate;
use super::run::ImageModel;
use crate::cli::{DemoArgs, EngineArgs, EvalArgs};
use crate::models::models_dir;

pub fn demo(args: &DemoArgs) -> Result<()> {
    let models = models_dir();
    let engine_args = || EngineArgs { backend: args.engine.backend.clone(), threads: args.engine.threads };
    let say = |text: &str| {
        if !args.json {
            println!("{text}");
        }
    };

    say("== Face detection: BlazeFace short-range on the bundled photos ==");
    let faces = models.join("blazeface/model.onnx");
    let mut detector = ImageModel::open(&faces, None, &args.engine)?;
    let mut photos: Vec<_> = std::fs::read_dir(models.join("samples"))
        .with_context(|| format!("listing `{}`", models.join("samples").display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    photos.sort();
    for photo in &photos {
        let r = detector.infer(photo, Some(&args.out.join("faces")), 1)?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!("  {}", r.describe());
        }
    }

    say("== Classification: Fashion-MNIST CNN on sample images ==");
    let fashion = models.join("fashion-cnn/model.onnx");
    let mut classifier = ImageModel::open(&fashion, None, &args.engine)?;
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
        config: None,
        json: args.json,
        engine: engine_args(),
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("  {}", report.describe());
        println!("annotated images: {}", args.out.display());
    }
    Ok(())
}
