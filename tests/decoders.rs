//! Each output decoder against a reference decoding in numpy of onnxruntime's outputs
//! (`scripts/make_decoder_fixtures.py`; fixtures in tests/fixtures/decoders/), and the real
//! models end to end through `kestrel run` with no config at all. The third-party models are
//! fetched by `scripts/fetch-models.sh` (run by `scripts/test.sh`) into target/models/.

mod common;

use kestrel_vision::config::{Color, Layout, Preprocess, Resize};
use kestrel_vision::decode::gfl::{self, GflConfig};
use kestrel_vision::decode::landmarks::{self, LandmarksConfig};
use kestrel_vision::decode::segmentation::{self, SegmentationConfig};
use kestrel_vision::decode::ssd_anchors::{self, SsdOptions};
use kestrel_vision::decode::yolo::{self, YoloConfig};
use kestrel_vision::decode::Detection;
use kestrel_vision::preprocess::Placement;
use serde_json::Value;

fn reference(family: &str) -> Value {
    let path = common::repo().join(format!("tests/fixtures/decoders/{family}/reference.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A fetched model, or a failure saying how to fetch it (never a skip).
fn fetched(path: &str) -> String {
    let p = common::repo().join(path);
    assert!(p.exists(), "`{path}` is missing: run `bash scripts/fetch-models.sh` (scripts/test.sh does)");
    p.display().to_string()
}

fn stem(image: &str) -> String {
    std::path::Path::new(image).file_stem().unwrap().to_string_lossy().into_owned()
}

/// Same boxes in the same order: corners within `px` pixels, scores within `score`, same class.
fn assert_same(got: &[Detection], want: &[Value], px: f64, score: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?}\nwant {want:?}");
    for (g, w) in got.iter().zip(want) {
        let f = |k: &str| w[k].as_f64().unwrap();
        let corners = [(g.x_min, f("x_min")), (g.y_min, f("y_min")), (g.x_max, f("x_max")), (g.y_max, f("y_max"))];
        for (a, b) in corners {
            assert!((f64::from(a) - b).abs() <= px, "{what}: corner {a} vs {b}: {g:?} vs {w}");
        }
        assert!((f64::from(g.score) - f("score")).abs() <= score, "{what}: score {} vs {w}", g.score);
        assert_eq!(g.class, w["class"].as_u64().map(|c| c as usize), "{what}");
        assert_eq!(g.label, w["label"].as_str().unwrap(), "{what}");
    }
}

#[test]
fn yolo_decodes_as_ultralytics_does() {
    let r = reference("yolo");
    let labels: Vec<String> = r["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().into()).collect();
    let (h, w) = (r["size"][0].as_u64().unwrap() as u32, r["size"][1].as_u64().unwrap() as u32);
    let pre =
        Preprocess { resize: Resize::Letterbox, pad_value: 114, ..Preprocess::plain(w, h, Layout::Nchw, Color::Rgb) };
    let mut decoder = yolo::Decoder::default();
    let mut out = Vec::new();
    for case in r["cases"].as_array().unwrap() {
        let image = case["image"].as_str().unwrap();
        let dir = common::repo().join("tests/fixtures/decoders/yolo");
        let output = common::read_pb_gz(&dir.join(format!("{}.output_0.pb.gz", stem(image)))).unwrap();
        let size = (case["width"].as_u64().unwrap() as u32, case["height"].as_u64().unwrap() as u32);
        let frame = Placement::new(&pre, size.0, size.1).frame;
        let params = YoloConfig {
            score_threshold: case["score_threshold"].as_f64().unwrap() as f32,
            iou_threshold: case["iou_threshold"].as_f64().unwrap() as f32,
            max_detections: case["max_detections"].as_u64().unwrap() as usize,
            ..YoloConfig::new(labels.clone())
        };
        decoder.decode(output.as_f32().unwrap(), &output.shape, &frame, &params, &mut out).unwrap();
        let what = format!("{image} at score {}", params.score_threshold);
        assert_same(&out, case["detections"].as_array().unwrap(), 1.0, 1e-3, &what);
    }
}

/// `kestrel run MODEL IMAGES --json` with `config` (TOML text; none when empty): each image's
/// detections must match the reference case's by IoU and score (our resize is not PIL's).
fn run_matches_reference(model: &str, config: &str, cases: &[&Value], min_iou: f32) {
    // Tests run in parallel and several models are called model.onnx: a number per call.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!("kestrel-decoders-{}-{call}.toml", std::process::id()));
    let file_s = file.display().to_string();
    let mut args = vec!["run", model, "--json", "--backend", "cpu"];
    if !config.is_empty() {
        std::fs::write(&file, config).unwrap();
        args.extend(["--config", &file_s]);
    }
    args.extend(cases.iter().map(|c| c["image"].as_str().unwrap()));
    let out = common::kestrel_ok(&args);
    std::fs::remove_file(&file).ok();
    assert_eq!(out.lines().count(), cases.len(), "{out}");
    for (line, case) in out.lines().zip(cases) {
        let got: Value = serde_json::from_str(line).unwrap();
        let mut got = got["detections"].as_array().unwrap().clone();
        let mut want = case["detections"].as_array().unwrap().clone();
        assert_eq!(got.len(), want.len(), "{line}\nwant {want:?}");
        // Near-equal scores may order differently: compare by position.
        for list in [&mut got, &mut want] {
            by_position(list, |d| d["y_min"].as_f64().unwrap(), |d| d["x_min"].as_f64().unwrap());
        }
        for (g, w) in got.iter().zip(&want) {
            let d = |v: &Value| -> Detection { serde_json::from_value(v.clone()).unwrap() };
            assert!(d(g).iou(&d(w)) >= min_iou, "{g} vs {w}");
            assert!((g["score"].as_f64().unwrap() - w["score"].as_f64().unwrap()).abs() < 0.02, "{g} vs {w}");
            // No label serializes as no field; the reference writes "".
            assert_eq!(g["label"].as_str().unwrap_or(""), w["label"].as_str().unwrap(), "{g} vs {w}");
        }
    }
}

/// `kestrel run yolov8n.onnx photo` with no config: Ultralytics' metadata configures it; boxes
/// as the reference finds them (our resize is not PIL's: IoU, not pixels).
#[test]
fn a_yolo_export_runs_with_no_config() {
    let model = fetched("target/models/yolov8n-320/320n.onnx");
    let r = reference("yolo");
    let cases: Vec<&Value> =
        r["cases"].as_array().unwrap().iter().filter(|c| c["score_threshold"].as_f64() == Some(0.25)).collect();
    run_matches_reference(&model, "", &cases, 0.9);
}

#[test]
fn gfl_decodes_as_paddledetection_does() {
    let r = reference("gfl");
    let c = &r["config"];
    let strings =
        |v: &Value| -> Vec<String> { v.as_array().unwrap().iter().map(|l| l.as_str().unwrap().into()).collect() };
    let labels = strings(&c["labels"]);
    let strides: Vec<usize> = c["strides"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap() as usize).collect();
    let (w, h) = (c["width"].as_u64().unwrap() as u32, c["height"].as_u64().unwrap() as u32);
    let pre = Preprocess::plain(w, h, Layout::Nchw, Color::Rgb);
    let params = GflConfig {
        reg_max: c["reg_max"].as_u64().unwrap() as usize,
        score_threshold: c["score_threshold"].as_f64().unwrap() as f32,
        iou_threshold: c["iou_threshold"].as_f64().unwrap() as f32,
        pre_nms_top_k: c["pre_nms_top_k"].as_u64().unwrap() as usize,
        max_detections: c["max_detections"].as_u64().unwrap() as usize,
        ..GflConfig::new(labels, strides)
    };
    let mut decoder = gfl::Decoder::default();
    let mut out = Vec::new();
    for case in r["cases"].as_array().unwrap() {
        let image = case["image"].as_str().unwrap();
        let dir = common::repo().join("tests/fixtures/decoders/gfl");
        let tensors: Vec<_> = (0..8)
            .map(|i| common::read_pb_gz(&dir.join(format!("{}.output_{i}.pb.gz", stem(image)))).unwrap())
            .collect();
        let outputs: Vec<(&[f32], &[usize])> =
            tensors.iter().map(|t| (t.as_f32().unwrap(), t.shape.as_slice())).collect();
        let levels = gfl::levels(&outputs, &params, (w as usize, h as usize)).unwrap();
        let size = (case["width"].as_u64().unwrap() as u32, case["height"].as_u64().unwrap() as u32);
        decoder.decode(&levels, &Placement::new(&pre, size.0, size.1).frame, &params, &mut out).unwrap();
        assert_same(&out, case["detections"].as_array().unwrap(), 1.0, 1e-3, image);
    }
}

/// NanoDet-g (the bundled COCO detector) decoded with its kestrel.toml as upstream NanoDet
/// post-processes it: onnxruntime's outputs on the eight photos through our GFL decoder, boxes
/// within 1 px and scores within 1e-3 of the numpy reference (clamped to the input, then to
/// the image after undoing the letterbox).
#[test]
fn nanodet_decodes_as_upstream_nanodet_does() {
    let config = kestrel_vision::ModelConfig::load(&common::repo().join("models/coco-nanodet/kestrel.toml")).unwrap();
    let kestrel_vision::config::Decoder::Gfl(params) = &config.decoder else { panic!("{:?}", config.decoder) };
    let pre = &config.preprocess;
    let (mut decoder, mut out) = (gfl::Decoder::default(), Vec::new());
    let r = reference("nanodet");
    for case in r["cases"].as_array().unwrap() {
        let image = case["image"].as_str().unwrap();
        let dir = common::repo().join("tests/fixtures/decoders/nanodet");
        let tensors: Vec<_> = (0..6)
            .map(|i| common::read_pb_gz(&dir.join(format!("{}.output_{i}.pb.gz", stem(image)))).unwrap())
            .collect();
        let outputs: Vec<(&[f32], &[usize])> =
            tensors.iter().map(|t| (t.as_f32().unwrap(), t.shape.as_slice())).collect();
        let levels = gfl::levels(&outputs, params, (pre.width as usize, pre.height as usize)).unwrap();
        let size = (case["width"].as_u64().unwrap() as u32, case["height"].as_u64().unwrap() as u32);
        decoder.decode(&levels, &Placement::new(pre, size.0, size.1).frame, params, &mut out).unwrap();
        assert_same(&out, case["detections"].as_array().unwrap(), 1.0, 1e-3, image);
    }
}

/// `kestrel run` of the bundled COCO detector on the photos: its kestrel.toml alone configures
/// it. Our resize is not PIL's, so scores move by a few thousandths and boxes by a pixel or two:
/// every box either side scores 0.03 clear of the 0.35 threshold has its twin on the other side
/// (same class, IoU ≥ 0.9, score within 0.02).
#[test]
fn the_bundled_coco_detector_runs_with_its_config() {
    let r = reference("nanodet");
    let cases = r["cases"].as_array().unwrap();
    let mut args = vec!["run", "models/coco-nanodet/model.onnx", "--json", "--backend", "cpu"];
    args.extend(cases.iter().map(|c| c["image"].as_str().unwrap()));
    let out = common::kestrel_ok(&args);
    let d = |v: &Value| -> Detection { serde_json::from_value(v.clone()).unwrap() };
    let clear = |v: &&Value| v["score"].as_f64().unwrap() >= 0.38;
    for (line, case) in out.lines().zip(cases) {
        let got: Value = serde_json::from_str(line).unwrap();
        let (got, want) = (got["detections"].as_array().unwrap(), case["detections"].as_array().unwrap());
        for (these, those) in [(got, want), (want, got)] {
            for a in these.iter().filter(clear) {
                let twin = those.iter().find(|b| {
                    b["class"] == a["class"]
                        && d(a).iou(&d(b)) >= 0.9
                        && (a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs() < 0.02
                });
                assert!(twin.is_some(), "{}: {a} has no twin in {those:?}", case["image"]);
            }
        }
    }
}

/// The PicoDet layout model with the config a user writes after `kestrel init` (PaddleDetection's
/// preprocessing, the labels from the model's metadata, the GFL head's strides).
#[test]
fn a_picodet_layout_model_runs_with_its_edited_config() {
    let model = fetched("target/models/picodet-layout/layout_cdla.onnx");
    let r = reference("gfl");
    let labels: Vec<String> = r["config"]["labels"].as_array().unwrap().iter().map(|l| l.to_string()).collect();
    let config = format!(
        "[preprocess]\nwidth = 608\nheight = 800\nlayout = \"nchw\"\ncolor = \"rgb\"\nresize = \"stretch\"\n\
         range = [0.0, 1.0]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n\n\
         [decoder]\nkind = \"gfl\"\nlabels = [{}]\nstrides = [8, 16, 32, 64]\n",
        labels.join(", ")
    );
    let cases: Vec<&Value> = r["cases"].as_array().unwrap().iter().collect();
    run_matches_reference(&model, &config, &cases, 0.9);
}

/// Regions sorted top to bottom, then left to right (their scores are too close to order them).
fn by_position<T>(items: &mut [T], y: impl Fn(&T) -> f64, x: impl Fn(&T) -> f64) {
    items.sort_by(|a, b| y(a).total_cmp(&y(b)).then(x(a).total_cmp(&x(b))));
}

#[test]
fn segmentation_decodes_db_text_maps_as_the_reference() {
    let r = reference("segmentation");
    let c = &r["config"];
    let f = |k: &str| c[k].as_f64().unwrap() as f32;
    let params = SegmentationConfig {
        threshold: f("threshold"),
        box_threshold: f("box_threshold"),
        min_size: f("min_size"),
        unclip_ratio: f("unclip_ratio"),
        ..SegmentationConfig::default()
    };
    let (w, h) = (c["width"].as_u64().unwrap() as u32, c["height"].as_u64().unwrap() as u32);
    let pre = Preprocess::plain(w, h, Layout::Nchw, Color::Bgr);
    for case in r["cases"].as_array().unwrap() {
        let image = case["image"].as_str().unwrap();
        let path = common::repo().join(format!("tests/fixtures/decoders/segmentation/{}.output_0.pb.gz", stem(image)));
        let map = common::read_pb_gz(&path).unwrap();
        let size = (case["width"].as_u64().unwrap() as u32, case["height"].as_u64().unwrap() as u32);
        let mut out = Vec::new();
        segmentation::Decoder::default()
            .decode(map.as_f32().unwrap(), &map.shape, &Placement::new(&pre, size.0, size.1).frame, &params, &mut out)
            .unwrap();
        let mut want = case["detections"].as_array().unwrap().clone();
        by_position(&mut out, |d| f64::from(d.y_min), |d| f64::from(d.x_min));
        by_position(&mut want, |d| d["y_min"].as_f64().unwrap(), |d| d["x_min"].as_f64().unwrap());
        assert_same(&out, &want, 1.0, 1e-3, image);
        assert!(out.len() >= 5, "a page of text has lines: {out:?}");
    }
}

/// PP-OCRv4's text detector with its edited config: the same text lines as the reference.
#[test]
fn a_db_text_detector_runs_with_its_edited_config() {
    let model = fetched("target/models/ppocr-det/ch_PP-OCRv4_det_infer.onnx");
    let r = reference("segmentation");
    let config = "[preprocess]\nwidth = 768\nheight = 384\nlayout = \"nchw\"\ncolor = \"bgr\"\nresize = \"stretch\"\n\
                  range = [0.0, 1.0]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n\n\
                  [decoder]\nkind = \"segmentation\"\n";
    let cases: Vec<&Value> = r["cases"].as_array().unwrap().iter().collect();
    run_matches_reference(&model, config, &cases, 0.8);
}

/// The SSD-anchor decoder configured with the options of MediaPipe's
/// face_detection_short_range graph, copied as a user would (SsdAnchorsCalculator and
/// TensorsToDetectionsCalculator), decodes BlazeFace exactly as the bundled config does.
#[test]
fn ssd_anchors_with_mediapipes_options_is_the_blazeface_decoder() {
    let config = r#"
[preprocess]
width = 128
height = 128
layout = "nchw"
color = "rgb"
resize = "letterbox"
range = [-1.0, 1.0]

[decoder]
kind = "ssd_anchors"
num_layers = 4
min_scale = 0.1484375
max_scale = 0.75
input_size_height = 128
input_size_width = 128
anchor_offset_x = 0.5
anchor_offset_y = 0.5
strides = [8, 16, 16, 16]
aspect_ratios = [1.0]
fixed_anchor_size = true
num_classes = 1
num_boxes = 896
num_coords = 16
box_coord_offset = 0
keypoint_coord_offset = 4
num_keypoints = 6
num_values_per_keypoint = 2
sigmoid_score = true
score_clipping_thresh = 100.0
reverse_output_order = true
x_scale = 128.0
y_scale = 128.0
h_scale = 128.0
w_scale = 128.0
min_score_thresh = 0.5
min_suppression_threshold = 0.3
"#;
    let file = std::env::temp_dir().join(format!("kestrel-ssd-{}.toml", std::process::id()));
    std::fs::write(&file, config).unwrap();
    let file_s = file.display().to_string();
    let model = "models/blazeface/model.onnx";
    let photos = ["models/samples/astronaut.png", "models/samples/person.jpg"];
    let mut ours = vec!["run", model, "--json", "--config", &file_s];
    ours.extend(photos);
    let mut bundled = vec!["run", model, "--json"];
    bundled.extend(photos);
    let (ours, bundled) = (common::kestrel_ok(&ours), common::kestrel_ok(&bundled));
    std::fs::remove_file(&file).ok();
    for (a, b) in ours.lines().zip(bundled.lines()) {
        let (a, b): (Value, Value) = (serde_json::from_str(a).unwrap(), serde_json::from_str(b).unwrap());
        assert_eq!(a["detections"], b["detections"]);
    }
    assert!(ours.contains("\"keypoints\":[["), "{ours}");
}

/// MediaPipe's pose detector (another SSD: 5 layers of which three share stride 32, 2,254 anchors,
/// 4 keypoints) decoded with its graph's options as MediaPipe decodes it.
#[test]
fn ssd_anchors_decodes_the_pose_detector_as_mediapipe_does() {
    let r = reference("ssd_anchors");
    let options: SsdOptions = serde_json::from_value(r["options"].clone()).unwrap();
    let pre = Preprocess {
        resize: Resize::Letterbox,
        range: (-1.0, 1.0),
        ..Preprocess::plain(224, 224, Layout::Nchw, Color::Rgb)
    };
    let mut decoder = ssd_anchors::Decoder::default();
    for case in r["cases"].as_array().unwrap() {
        let image = case["image"].as_str().unwrap();
        let dir = common::repo().join("tests/fixtures/decoders/ssd_anchors");
        let read = |i: usize| common::read_pb_gz(&dir.join(format!("{}.output_{i}.pb.gz", stem(image)))).unwrap();
        let (boxes, scores) = (read(0), read(1));
        let size = (case["width"].as_u64().unwrap() as u32, case["height"].as_u64().unwrap() as u32);
        let frame = Placement::new(&pre, size.0, size.1).frame;
        let mut out = Vec::new();
        decoder.decode(boxes.as_f32().unwrap(), scores.as_f32().unwrap(), &frame, &options, &mut out).unwrap();
        let want = case["detections"].as_array().unwrap();
        assert_same(&out, want, 1.0, 1e-3, image);
        assert!(!out.is_empty(), "{image}: each photo shows a person");
        for (got, want) in out.iter().zip(want) {
            let keypoints = want["keypoints"].as_array().unwrap();
            assert_eq!(got.keypoints.len(), 4);
            for (g, w) in got.keypoints.iter().zip(keypoints) {
                let (x, y) = (w[0].as_f64().unwrap(), w[1].as_f64().unwrap());
                assert!((f64::from(g.0) - x).abs() <= 1.0 && (f64::from(g.1) - y).abs() <= 1.0, "{g:?} vs {w}");
            }
        }
    }
}

/// The bundled pose detector with its config (MediaPipe's graph options copied as they are).
#[test]
fn the_pose_detector_runs_with_its_config() {
    let r = reference("ssd_anchors");
    let config = std::fs::read_to_string(common::repo().join("models/pose-detection/kestrel.toml")).unwrap();
    let cases: Vec<&Value> = r["cases"].as_array().unwrap().iter().collect();
    run_matches_reference("models/pose-detection/model.onnx", &config, &cases, 0.9);
}

#[test]
fn landmarks_decode_as_the_reference() {
    let r = reference("landmarks");
    // No bundled photo shows a bare hand (presence stays near 0): compare with the threshold at 0.
    let params = LandmarksConfig { presence_threshold: 0.0, ..LandmarksConfig::new(21) };
    let pre = Preprocess::plain(224, 224, Layout::Nchw, Color::Rgb);
    for case in r["cases"].as_array().unwrap() {
        let image = case["image"].as_str().unwrap();
        let dir = common::repo().join("tests/fixtures/decoders/landmarks");
        let read = |i: usize| common::read_pb_gz(&dir.join(format!("{}.output_{i}.pb.gz", stem(image)))).unwrap();
        let (points, presence) = (read(0), read(1));
        let size = (case["width"].as_u64().unwrap() as u32, case["height"].as_u64().unwrap() as u32);
        let mut out = Vec::new();
        let frame = Placement::new(&pre, size.0, size.1).frame;
        landmarks::decode(points.as_f32().unwrap(), Some(presence.as_f32().unwrap()[0]), &frame, &params, &mut out)
            .unwrap();
        let want = case["detections"].as_array().unwrap();
        assert_same(&out, want, 1.0, 1e-3, image);
        let keypoints = want[0]["keypoints"].as_array().unwrap();
        assert_eq!(out[0].keypoints.len(), 21);
        for (got, want) in out[0].keypoints.iter().zip(keypoints) {
            let (x, y) = (want[0].as_f64().unwrap(), want[1].as_f64().unwrap());
            assert!((f64::from(got.0) - x).abs() <= 1.0 && (f64::from(got.1) - y).abs() <= 1.0, "{got:?} vs {want}");
        }
    }
}

/// The bundled hand landmark model with its config (the threshold lowered to 0, see above).
#[test]
fn the_hand_landmark_model_runs_with_its_config() {
    let r = reference("landmarks");
    let config = std::fs::read_to_string(common::repo().join("models/hand-landmark/kestrel.toml"))
        .unwrap()
        .replace("presence_threshold = 0.5", "presence_threshold = 0.0");
    let cases: Vec<&Value> = r["cases"].as_array().unwrap().iter().collect();
    run_matches_reference("models/hand-landmark/model.onnx", &config, &cases, 0.8);
    // At MediaPipe's threshold, no hand is reported on photos without one.
    let out = common::kestrel_ok(&["run", "models/hand-landmark/model.onnx", "models/samples/astronaut.png", "--json"]);
    assert!(out.contains("\"detections\":[]"), "{out}");
}

/// Decoders that do not fit the model's outputs, and absurd decoder settings: one clear error
/// and exit code 1, never a panic.
#[test]
fn mismatched_or_absurd_decoders_fail_in_one_line() {
    let preprocess = "[preprocess]\nwidth = 128\nheight = 128\nlayout = \"nchw\"\ncolor = \"rgb\"\nresize = \"letterbox\"\nrange = [-1.0, 1.0]\n";
    let cases = [
        ("kind = \"yolo\"", "fits no YOLO layout"),
        ("kind = \"gfl\"\nlabels = [\"a\"]\nstrides = [8, 16]", "no [1, 256, 1] scores"),
        ("kind = \"landmarks\"\nnum_landmarks = 5", "no output of 15 values"),
        ("kind = \"gfl\"\nlabels = [\"a\"]\nstrides = [0]\nreg_max = 1000", "reg_max within 1..=64"),
        ("kind = \"yolo\"\nscore_threshold = nan", "within [0, 1]"),
        ("kind = \"segmentation\"\nunclip_ratio = 1e30", "unclip_ratio within [0, 100]"),
        (
            "kind = \"ssd_anchors\"\nnum_layers = 1\nmin_scale = 0.1\nmax_scale = 0.5\ninput_size_width = 8192\n\
             input_size_height = 8192\nstrides = [1]\nnum_classes = 1\nnum_boxes = 896\nnum_coords = 16\n\
             x_scale = 1.0\ny_scale = 1.0\nw_scale = 1.0\nh_scale = 1.0",
            "generate 134217728 anchors; num_boxes says 896",
        ),
    ];
    let file = std::env::temp_dir().join(format!("kestrel-bad-decoder-{}.toml", std::process::id()));
    let file_s = file.display().to_string();
    for (decoder, phrase) in cases {
        std::fs::write(&file, format!("{preprocess}\n[decoder]\n{decoder}\n")).unwrap();
        let out = common::kestrel(&[
            "run",
            "models/blazeface/model.onnx",
            "models/samples/astronaut.png",
            "--config",
            &file_s,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{decoder}: {stderr}");
        assert!(stderr.contains(phrase) && !stderr.contains("panicked"), "{decoder}: {stderr}");
    }
    std::fs::remove_file(&file).ok();
}
