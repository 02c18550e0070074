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
    assert!(dir.join("faces/astronaut.png").exists() && dir.join("objects/dog.png").exists());
    // The COCO detector's photos: a giraffe among the labels.
    assert!(lines
        .iter()
        .any(|v| v["detections"].as_array().is_some_and(|d| d.iter().any(|d| d["label"] == "giraffe"))));
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
        ("models/blazeface/model.int8.onnx", face, "micro", "(17 float Conv layers"),
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

#[test]
fn profile_times_each_op_of_the_integer_runtime() {
    let doc = common::kestrel_ok(&["profile", "models/blazeface/model.int8.onnx", "--runs", "3", "--json"]);
    let v: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(v["backend"], "micro");
    let ops = v["ops"].as_array().unwrap();
    let ms: Vec<f64> = ops.iter().map(|o| o["ms"].as_f64().unwrap()).collect();
    assert!(ms.iter().all(|&t| t >= 0.0) && ms.iter().sum::<f64>() > 0.0, "{doc}");
    let total = v["total_ms"].as_f64().unwrap();
    assert!((ms.iter().sum::<f64>() - total).abs() <= 1e-9 * total.max(1.0), "{doc}");
    // Op kinds add up to the ops; the 17 float and 20 integer convolutions `auto` and `bench` name.
    let count = |k: &str| v["kinds"].as_array().unwrap().iter().find(|x| x["op"] == k).map(|x| x["count"].clone());
    let counted: u64 = v["kinds"].as_array().unwrap().iter().map(|k| k["count"].as_u64().unwrap()).sum();
    assert_eq!(counted as usize, ops.len());
    assert_eq!((count("ConvF32"), count("Conv")), (Some(17.into()), Some(20.into())), "{doc}");
    let first = &ops.iter().find(|o| o["op"] == "ConvF32").unwrap()["detail"];
    assert_eq!(first, "[1, 128, 128, 3] [5, 5, 3, 24] [24] -> [1, 64, 64, 24]");
    // A model whose input is not an image (the benchmark's 64-channel layer stack) is timed at
    // its declared shape, or at --input-shape.
    let stack = "benches/models/conv-stack/model.int8.onnx";
    for (extra, detail) in [(&[][..], "[1, 56, 56, 64]"), (&["--input-shape", "1,64,20,24"][..], "[1, 20, 24, 64]")] {
        let doc = common::kestrel_ok(&[&["profile", stack, "--runs", "2", "--json"][..], extra].concat());
        let v: Value = serde_json::from_str(&doc).unwrap();
        let convs: Vec<&Value> = v["ops"].as_array().unwrap().iter().filter(|o| o["op"] == "Conv").collect();
        assert!(convs.len() == 6 && convs.iter().all(|o| o["detail"].as_str().unwrap().ends_with(detail)), "{doc}");
    }
    let text = common::kestrel_ok(&["profile", "models/fashion-cnn/model.int8.onnx", "--runs", "2", "--top", "3"]);
    assert!(text.contains("the 3 slowest ops:") && text.lines().any(|l| l.starts_with("total ")), "{text}");
    // Where ops cannot be timed one by one, or nothing would be timed: an error, exit 1.
    for (args, want) in [
        (vec!["models/fashion-cnn/model.onnx"], "the cpu backend cannot time its ops one by one"),
        (vec!["models/fashion-cnn/model.int8.onnx", "--runs", "0"], "--runs must be at least 1"),
    ] {
        let out = common::kestrel(&[&["profile"][..], &args].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

/// A `.npy` file of float32 values (what `--save-outputs` writes): its shape and values.
fn read_npy_f32(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{}", path.display());
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "{header}");
    let dims = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = dims.split(',').filter(|d| !d.trim().is_empty()).map(|d| d.trim().parse().unwrap()).collect();
    let values = bytes[10 + len..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    (shape, values)
}

/// A float32 `.npy` given instead of an image is the model input as it is: BlazeFace's outputs on
/// the fixture's input tensor are onnxruntime's (atol 1e-3, as in engine_vs_onnxruntime); bad tensors,
/// `--annotate` and an absurd `--threads` get one clear error.
#[test]
fn a_npy_tensor_is_fed_to_the_model_as_it_is() {
    let dir = std::env::temp_dir().join(format!("kestrel-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = common::repo().join("tests/fixtures/blazeface");
    let input = dir.join("input.npy");
    std::fs::write(&input, common::read_pb(&fixtures.join("input_0.pb")).unwrap().to_npy()).unwrap();
    let (input_s, saved) = (input.display().to_string(), dir.join("out"));
    let model = "models/blazeface/model.onnx";
    let args = ["run", model, &input_s, "--backend", "cpu", "--json", "--save-outputs", saved.to_str().unwrap()];
    let result: Value = serde_json::from_str(&common::kestrel_ok(&args)).unwrap();
    assert_eq!(result["detections"].as_array().unwrap().len(), 1, "{result}");
    for (i, name) in ["regressors", "classificators"].iter().enumerate() {
        let (shape, ours) = read_npy_f32(&saved.join(format!("input.{name}.npy")));
        let ort = common::read_pb(&fixtures.join(format!("output_{i}.pb"))).unwrap();
        assert_eq!(shape, ort.shape);
        let worst = ours.iter().zip(ort.as_f32().unwrap()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst <= 1e-3, "{name}: {worst} from onnxruntime");
    }
    let wrong = dir.join("wrong.npy");
    let i64s = kestrel_engine::Tensor::new(vec![1], kestrel_engine::TensorData::I64(vec![1])).unwrap();
    std::fs::write(&wrong, i64s.to_npy()).unwrap();
    let small = dir.join("small.npy");
    std::fs::write(&small, kestrel_engine::Tensor::f32(vec![1, 3, 8, 8], vec![0.0; 192]).unwrap().to_npy()).unwrap();
    for (args, phrase) in [
        (vec![wrong.to_str().unwrap()], "element type <i8"),
        (vec![small.to_str().unwrap()], "[1, 3, 128, 128]"),
        (vec![&input_s, "--annotate", dir.to_str().unwrap()], "--annotate needs images"),
        // A thread pool of this size would exhaust the system's threads (it aborted before).
        (vec![&input_s, "--threads", "100000"], "--threads must be within 1..=256"),
    ] {
        let out = common::kestrel(&[&["run", model][..], &args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(phrase) && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A model with no config anywhere: it runs with guessed preprocessing and raw outputs (saved
/// as .npy), `init` writes a config that, edited as BlazeFace's, decodes exactly as the bundled
/// one; a shape the model does not declare is refused before tract sees it.
#[test]
fn a_model_without_config_runs_raw_and_init_writes_an_editable_one() {
    let dir = std::env::temp_dir().join(format!("kestrel-byo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("face.onnx");
    std::fs::copy(common::repo().join("models/blazeface/model.onnx"), &model).unwrap();
    let (model_s, npy_s) = (model.display().to_string(), dir.join("npy").display().to_string());
    let photo = "models/samples/astronaut.png";

    let out = common::kestrel(&["run", &model_s, photo, "--json", "--save-outputs", &npy_s]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("guessed layout NCHW") && stderr.contains("size 128x128"), "{stderr}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let outputs = result["outputs"].as_array().expect("raw outputs");
    assert_eq!(outputs.len(), 2);
    for (o, (name, shape)) in
        outputs.iter().zip([("regressors", vec![1, 896, 16]), ("classificators", vec![1, 896, 1])])
    {
        assert_eq!(o["name"], name);
        assert_eq!(o["shape"], serde_json::json!(shape));
        // The saved file holds the very values the summary describes.
        let (npy_shape, values) = read_npy_f32(&dir.join("npy").join(format!("astronaut.{name}.npy")));
        assert_eq!(npy_shape, shape);
        let (ix, max) = values.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        assert_eq!(f64::from(max), o["max"].as_f64().unwrap());
        let top = o["top"][0]["index"].as_array().unwrap();
        let flat = top.iter().zip(&shape).fold(0, |acc, (i, d)| acc * d + i.as_u64().unwrap() as usize);
        assert_eq!(flat, ix, "{o}");
    }

    common::kestrel_ok(&["init", &model_s]);
    let config = dir.join("kestrel.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let again = common::kestrel(&["init", &model_s]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--force"));
    // Edited as MediaPipe feeds BlazeFace: the decoded faces equal the bundled config's exactly.
    let edited = text
        .replace("resize = \"stretch\"", "resize = \"letterbox\"")
        .replace("range = [0.0, 1.0]", "range = [-1.0, 1.0]")
        .replace("kind = \"raw\"", "kind = \"blazeface\"")
        .replace("\ntop = 5\n", "\n");
    assert_ne!(edited, text);
    std::fs::write(&config, edited).unwrap();
    let ours: Value = serde_json::from_str(&common::kestrel_ok(&["run", &model_s, photo, "--json"])).unwrap();
    let bundled: Value =
        serde_json::from_str(&common::kestrel_ok(&["run", "models/blazeface/model.onnx", photo, "--json"])).unwrap();
    assert_eq!(ours["detections"], bundled["detections"]);
    assert_eq!(ours["detections"].as_array().unwrap().len(), 1);

    let bad = common::kestrel(&["run", &model_s, photo, "--input-shape", "1,3,64,64"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("declares input `input` as [1, 3, 128, 128]"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// MACs are counted at a concrete shape: dynamic height and width take --input-shape (or a
/// stated default), and a shape tract cannot analyse gives "unknown: reason", not a crash.
#[test]
fn inspect_counts_macs_at_a_stated_shape() {
    let dir = std::env::temp_dir().join(format!("kestrel-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut model =
        kestrel_onnx::load(&common::repo().join("models/blazeface/model.onnx"), &Default::default()).unwrap();
    // The same network with its input's height and width declared dynamic.
    use kestrel_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    let graph = model.proto.graph.as_mut().unwrap();
    graph.value_info.clear();
    let Some(kestrel_onnx::pb::type_proto::Value::TensorType(t)) =
        graph.input[0].r#type.as_mut().and_then(|t| t.value.as_mut())
    else {
        panic!("tensor input")
    };
    let dims = &mut t.shape.as_mut().unwrap().dim;
    (dims[2].value, dims[3].value) = (Some(Dim::DimParam("h".into())), Some(Dim::DimParam("w".into())));
    let path = dir.join("dynamic.onnx");
    kestrel_onnx::save(&model.proto, &path).unwrap();
    let p = path.display().to_string();

    let at = |extra: &[&str]| -> Value {
        let mut args = vec!["inspect", &p, "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&common::kestrel_ok(&args)).unwrap()
    };
    let fixed = at(&["--input-shape", "1,3,128,128"]);
    assert_eq!(fixed["cost_shape"], serde_json::json!([1, 3, 128, 128]));
    assert_eq!(fixed["macs"], 30_760_960, "{fixed}");
    assert!(fixed["activation_bytes"].as_u64().unwrap() > 3 * 128 * 128 * 4);
    // No shape given: 640x640, stated; every layer is convolutional, so 25 times the MACs.
    let default = at(&[]);
    assert_eq!(default["cost_shape"], serde_json::json!([1, 3, 640, 640]));
    assert!(default["cost_shape_from"].as_str().unwrap().contains("--input-shape"), "{default}");
    assert_eq!(default["macs"], 25 * 30_760_960, "{default}");
    // 1x1 pixels leave nothing after the strided layers: tract's panic is told in words.
    let tiny = at(&["--input-shape", "1,3,1,1"]);
    let why = tiny["macs_error"].as_str().expect("MACs unknown at 1x1");
    assert!(why.contains("cannot analyse") && !why.contains("internal error"), "{why}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `kestrel … | head` closes the pipe early: the program stops quietly with SIGPIPE's status,
/// not with an "internal error".
#[test]
fn a_closed_stdout_ends_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .arg("boards")
        .stdout(writer)
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// `kestrel mcu` without a device: a refused port, a missing serial device and a device that
/// never answers are one `Error:` line each, the last within its timeouts.
#[test]
fn mcu_without_a_device_is_a_clear_error() {
    let sample = "models/fashion-cnn/samples/00-ankle-boot.png";
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = common::kestrel(&["mcu", "--port", &format!("tcp:127.0.0.1:{closed}"), sample]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && stderr.starts_with("Error: opening the link") && stderr.contains("refused"),
        "{stderr}"
    );
    let out = common::kestrel(&["mcu", "--port", "/dev/no-such-serial-port", sample]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && stderr.contains("No such file"), "{stderr}");
    // A listener that accepts and says nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = format!("tcp:{}", silent.local_addr().unwrap());
    let start = std::time::Instant::now();
    let out = common::kestrel(&["mcu", "--port", &port, "--timeout-ms", "200", "--retries", "2", sample]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && stderr.contains("no answer from the device within 200 ms, 3 tries"),
        "{stderr}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    drop(silent);
}
