//! End-to-end: the `kestrel` binary on the bundled models, photos and labeled data.

mod common;

use serde_json::Value;

fn iou(a: &Value, b: &Value) -> f64 {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
    let w = (f(a, "x_max").min(f(b, "x_max")) - f(a, "x_min").max(f(b, "x_min"))).max(0.0);
    let h = (f(a, "y_max").min(f(b, "y_max")) - f(a, "y_min").max(f(b, "y_min"))).max(0.0);
    let area = |v: &Value| (f(v, "x_max") - f(v, "x_min")) * (f(v, "y_max") - f(v, "y_min"));
    w * h / (area(a) + area(b) - w * h)
}

#[test]
fn blazeface_finds_the_astronauts_face() {
    let out = common::kestrel_ok(&["run", "models/blazeface/model.onnx", "models/samples/astronaut.png", "--json"]);
    let result: Value = serde_json::from_str(out.trim()).expect("one JSON line");
    let dets = result["detections"].as_array().expect("detections");
    assert_eq!(dets.len(), 1, "{out}");
    // The reference: onnxruntime + the same decoding in numpy (scripts/make_fixtures.py).
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("tests/fixtures/blazeface/astronaut_faces.json")).unwrap(),
    )
    .unwrap();
    let face = &reference[0];
    assert!(dets[0]["score"].as_f64().unwrap() >= 0.8, "{out}");
    assert!((dets[0]["score"].as_f64().unwrap() - face["score"].as_f64().unwrap()).abs() < 0.02, "{out}");
    // Our resize filter differs slightly from PIL's; the box must still sit on the same face.
    assert!(iou(&dets[0], face) >= 0.85, "IoU {} with the reference {face}: {out}", iou(&dets[0], face));
    assert_eq!(dets[0]["keypoints"].as_array().unwrap().len(), 6);
}

#[test]
fn annotate_writes_pngs_of_the_source_size() {
    let dir = std::env::temp_dir().join(format!("kestrel-annotate-{}", std::process::id()));
    let dir_s = dir.display().to_string();
    common::kestrel_ok(&[
        "run",
        "models/blazeface/model.onnx",
        "models/samples/astronaut.png",
        "models/samples/person.jpg",
        "--annotate",
        &dir_s,
    ]);
    for (name, size) in [("astronaut.png", (512, 512)), ("person.png", (640, 424))] {
        let img = kestrel_vision::image_io::load_rgb(&dir.join(name)).expect("annotated PNG");
        assert_eq!((img.width(), img.height()), size, "{name}");
    }
    // The astronaut's box is drawn in green somewhere on her face's box edge.
    let img = kestrel_vision::image_io::load_rgb(&dir.join("astronaut.png")).unwrap();
    assert!(img.pixels().any(|p| p.0 == [40, 220, 60]), "no box drawn");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fashion_cnn_reaches_89_percent_top1() {
    let out = common::kestrel_ok(&["eval", "models/fashion-cnn/model.onnx", "--dataset", "fashion-mnist", "--json"]);
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["samples"], 10_000);
    let top1 = report["top1"].as_f64().unwrap();
    assert!(top1 >= 0.89, "top-1 {top1}");
}

#[test]
fn fashion_samples_are_classified_as_labeled() {
    let dir = common::repo().join("models/fashion-cnn/samples");
    let mut samples: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    samples.sort();
    let args: Vec<String> = ["run", "models/fashion-cnn/model.onnx", "--json"]
        .iter()
        .map(|s| s.to_string())
        .chain(samples.iter().map(|p| p.display().to_string()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::kestrel_ok(&args);
    let labels = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"];
    let mut correct = 0;
    for (line, path) in out.lines().zip(&samples) {
        let v: Value = serde_json::from_str(line).unwrap();
        let truth = path.file_stem().unwrap().to_string_lossy().split_once('-').unwrap().1.to_string();
        let predicted = v["classes"][0]["index"].as_u64().unwrap() as usize;
        correct += usize::from(labels[predicted] == truth);
    }
    assert_eq!(out.lines().count(), samples.len());
    // Stretch-resizing a 28x28 PNG to 28x28 is the identity, so these must match eval's view:
    // the model gets 9 or 10 of the first 10 test images right.
    assert!(correct >= 9, "{correct}/10 correct: {out}");
}

#[test]
fn inspect_reports_structure_and_cost() {
    for (model, input_shape) in
        [("models/blazeface/model.onnx", vec![1, 3, 128, 128]), ("models/fashion-cnn/model.onnx", vec![0, 28, 28, 1])]
    {
        let v: Value = serde_json::from_str(common::kestrel_ok(&["inspect", model, "--json"]).trim()).unwrap();
        let shape: Vec<u64> =
            v["inputs"][0]["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap_or(0)).collect();
        assert_eq!(shape, input_shape, "{model}");
        let ops_total: u64 = v["ops"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!(ops_total, v["nodes"].as_u64().unwrap());
        // Both models store float32 weights (plus a few int64 shape constants).
        let (params, bytes) = (v["parameters"].as_u64().unwrap(), v["weight_bytes"].as_u64().unwrap());
        assert!(bytes >= 4 * params && bytes <= 4 * params + 1024, "{model}: {params} params, {bytes} bytes");
        assert!(v["macs"].as_u64().unwrap() > params, "{model}: {v}");
    }
    // Fashion CNN MACs by hand: convs 26²·32·9 + 11²·64·288 + 3²·64·576, dense 576·64 + 64·10.
    let v: Value =
        serde_json::from_str(common::kestrel_ok(&["inspect", "models/fashion-cnn/model.onnx", "--json"]).trim())
            .unwrap();
    let by_hand = 26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 3 * 3 * 64 * 576 + 576 * 64 + 64 * 10;
    assert_eq!(v["macs"].as_u64().unwrap(), by_hand);
}

#[test]
fn demo_runs_on_the_bundled_defaults() {
    let dir = std::env::temp_dir().join(format!("kestrel-demo-{}", std::process::id()));
    let dir_s = dir.display().to_string();
    let out = common::kestrel_ok(&["demo", "--out", &dir_s, "--json"]);
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let faces: usize = lines.iter().filter_map(|v| v["detections"].as_array()).map(Vec::len).sum();
    assert!(faces >= 1, "{out}");
    assert!(lines.iter().any(|v| v["top1"].as_f64().is_some_and(|t| t >= 0.89)), "{out}");
    assert!(dir.join("faces/astronaut.png").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// `--backend auto` (the default): int8 models the integer runtime runs whole go to `micro`
/// (float layers of a mixed int8 model included), float models and int8 models with an op the
/// runtime lacks to `cpu`, each choice explained on stderr; an explicit `--backend` wins.
#[test]
fn auto_runs_int8_models_on_the_integer_runtime_and_says_why() {
    // The int8 Fashion CNN with its final Softmax turned into a LogSoftmax (no integer kernel).
    let dir = std::env::temp_dir().join(format!("kestrel-auto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let limits = kestrel_onnx::Limits::default();
    let mut m = kestrel_onnx::load(&common::repo().join("models/fashion-cnn/model.int8.onnx"), &limits).unwrap();
    let softmax = m.proto.graph.as_mut().unwrap().node.iter_mut().find(|n| n.op_type == "Softmax").unwrap();
    softmax.op_type = "LogSoftmax".into();
    let log_softmax = dir.join("log-softmax.int8.onnx").display().to_string();
    kestrel_onnx::save(&m.proto, std::path::Path::new(&log_softmax)).unwrap();
    let (boot, face) = ("models/fashion-cnn/samples/00-ankle-boot.png", "models/samples/astronaut.png");
    let cases = [
        ("models/fashion-cnn/model.onnx", boot, "cpu", "float model"),
        ("models/fashion-cnn/model.int8.onnx", boot, "micro", "runs all its 25 nodes"),
        ("models/fashion-cnn/model.p50.int8.onnx", boot, "micro", "runs all its"),
        ("models/blazeface/model.onnx", face, "cpu", "float model"),
        ("models/blazeface/model.integer.int8.onnx", face, "micro", "runs all its 146 nodes"),
        // The mixed int8 BlazeFace keeps its most sensitive convolutions in float: they run on
        // the integer runtime's float kernels.
        ("models/blazeface/model.int8.onnx", face, "micro", "(15 float Conv layers"),
        (log_softmax.as_str(), boot, "cpu", "cannot run op `LogSoftmax` (node `"),
    ];
    for (model, image, backend, why) in cases {
        let out = common::kestrel(&["run", model, image, "--json"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{model}: {err}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["backend"], backend, "{model}: {err}");
        let line = err.lines().find(|l| l.starts_with("backend ")).unwrap_or_default();
        assert!(line.starts_with(&format!("backend {backend}: ")) && line.contains(why), "{model}: {err}");
    }
    // Asked for, obeyed: the int8 model on the CPU backend, silently.
    let out = common::kestrel(&["run", "models/fashion-cnn/model.int8.onnx", boot, "--json", "--backend", "cpu"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "cpu");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("backend "));
    // And on the integer runtime, the op it lacks is named.
    let out = common::kestrel(&["run", &log_softmax, boot, "--backend", "micro"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("Error: ") && err.contains("op `LogSoftmax`"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
