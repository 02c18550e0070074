//! The CPU backend against onnxruntime's outputs for the same inputs (fixtures made offline by
//! scripts/make_fixtures.py). Tolerance: |ours - ort| <= atol + 1e-3·|ort|.

mod common;

use kestrel_engine::{BackendKind, Engine, PrepareOptions};
use kestrel_onnx::Limits;

fn check(model: &str, fixture: &str, atol: f64) {
    let root = common::repo();
    let onnx = kestrel_onnx::load(&root.join(model), &Limits::default()).unwrap();
    let dir = root.join("tests/fixtures").join(fixture);
    let inputs: Vec<_> = common::numbered(&dir, "input")
        .iter()
        .map(|p| common::read_pb(p).unwrap())
        .collect();
    let wants: Vec<_> = common::numbered(&dir, "output")
        .iter()
        .map(|p| common::read_pb(p).unwrap())
        .collect();
    for threads in [1, 2] {
        let options = PrepareOptions {
            threads,
            input_shapes: inputs.iter().map(|t| t.shape.clone()).collect(),
        };
        let mut engine = Engine::new(BackendKind::Cpu, &onnx, &options).unwrap();
        let got = engine.run(&inputs).unwrap();
        assert_eq!(got.len(), wants.len());
        for (g, w) in got.iter().zip(&wants) {
            common::compare(g, w, atol, 1e-3)
                .unwrap_or_else(|e| panic!("{model}, {threads} thread(s): {e}"));
        }
    }
}

#[test]
fn fashion_cnn_matches_onnxruntime() {
    check("models/fashion-cnn/model.onnx", "fashion-cnn", 1e-5);
}

#[test]
fn blazeface_matches_onnxruntime() {
    check("models/blazeface/model.onnx", "blazeface", 1e-3);
}

#[test]
fn wrong_input_shapes_are_errors_not_panics() {
    let root = common::repo();
    let onnx = kestrel_onnx::load(
        &root.join("models/blazeface/model.onnx"),
        &Limits::default(),
    )
    .unwrap();
    let mut engine = Engine::new(BackendKind::Cpu, &onnx, &PrepareOptions::default()).unwrap();
    let wrong = kestrel_engine::Tensor::f32(vec![1, 3, 64, 64], vec![0.0; 3 * 64 * 64]).unwrap();
    let err = engine.run(&[wrong]).unwrap_err().to_string();
    assert!(err.contains("expects float32 [1, 3, 128, 128]"), "{err}");
    assert!(engine.run(&[]).is_err());
    // A shape the model cannot take at all is refused at prepare time.
    let bad = PrepareOptions {
        threads: 1,
        input_shapes: vec![vec![1, 5, 7]],
    };
    assert!(Engine::new(BackendKind::Cpu, &onnx, &bad).is_err());
}
