//! Each output decoder against a reference decoding in numpy of onnxruntime's outputs
//! (`scripts/make_decoder_fixtures.py`; fixtures in tests/fixtures/decoders/), and the real
//! models end to end through `kestrel run` with no config at all. The third-party models are
//! fetched by `scripts/fetch-models.sh` (run by `scripts/test.sh`) into target/models/.

mod common;

use kestrel_vision::config::{Color, Layout, Preprocess, Resize};
use kestrel_vision::decode::yolo::{self, YoloLayout};
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
        let output = common::read_pb(&dir.join(format!("{}.output_0.pb", stem(image)))).unwrap();
        let size = (case["width"].as_u64().unwrap() as u32, case["height"].as_u64().unwrap() as u32);
        let frame = Placement::new(&pre, size.0, size.1).frame;
        let params = yolo::Params {
            labels: &labels,
            score_threshold: case["score_threshold"].as_f64().unwrap() as f32,
            iou_threshold: case["iou_threshold"].as_f64().unwrap() as f32,
            max_detections: case["max_detections"].as_u64().unwrap() as usize,
            class_agnostic: false,
            layout: YoloLayout::Auto,
            keypoints: 0,
            keypoint_values: 3,
            mask_coefficients: 0,
        };
        decoder.decode(output.as_f32().unwrap(), &output.shape, &frame, &params, &mut out).unwrap();
        let what = format!("{image} at score {}", params.score_threshold);
        assert_same(&out, case["detections"].as_array().unwrap(), 1.0, 1e-3, &what);
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
    let images: Vec<&str> = cases.iter().map(|c| c["image"].as_str().unwrap()).collect();
    let mut args = vec!["run", &model, "--json", "--backend", "cpu"];
    args.extend(&images);
    let out = common::kestrel_ok(&args);
    for (line, case) in out.lines().zip(&cases) {
        let got: Value = serde_json::from_str(line).unwrap();
        let (got, want) = (got["detections"].as_array().unwrap(), case["detections"].as_array().unwrap());
        assert_eq!(got.len(), want.len(), "{line}\nwant {want:?}");
        for (g, w) in got.iter().zip(want) {
            let d = |v: &Value| -> Detection { serde_json::from_value(v.clone()).unwrap() };
            assert!(d(g).iou(&d(w)) >= 0.9, "{g} vs {w}");
            assert!((g["score"].as_f64().unwrap() - w["score"].as_f64().unwrap()).abs() < 0.02, "{g} vs {w}");
            assert_eq!(g["label"], w["label"]);
        }
    }
}
