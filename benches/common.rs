//! Shared by the benches: one model's inference on the CPU backend, full and compressed side by side.

use std::path::Path;

use criterion::Criterion;
use kestrel_engine::{BackendKind, Engine, PrepareOptions, Tensor};
use kestrel_onnx::Limits;

/// Benchmarks `models` (label, path) on `input` in one criterion group, so they share a run.
pub fn compare(c: &mut Criterion, group: &str, models: &[(&str, &str)], input: Tensor) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut g = c.benchmark_group(group);
    for (label, path) in models {
        let model = kestrel_onnx::load(&root.join(path), &Limits::default()).expect("bundled model");
        let options = PrepareOptions { threads: 1, input_shapes: vec![input.shape.clone()] };
        let mut engine = Engine::new(BackendKind::Cpu, &model, &options).expect("prepare");
        let inputs = [input.clone()];
        g.bench_function(*label, |b| b.iter(|| engine.run(&inputs).expect("run")));
    }
    g.finish();
}
