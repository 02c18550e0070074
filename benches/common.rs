//! Shared by the benches: one model's inference per backend, side by side in one criterion group.
#![allow(dead_code)] // each bench uses the cases it needs

use std::path::Path;

use criterion::Criterion;
use kestrel_engine::{BackendKind, Engine, PrepareOptions, Tensor};
use kestrel_onnx::Limits;

/// How a case runs.
#[derive(Clone, Copy)]
pub enum Run {
    /// The CPU backend (tract).
    Cpu,
    /// The integer runtime with the fast paths this CPU has.
    Micro,
    /// The integer runtime's portable kernels only (what a CPU without the fast paths runs).
    MicroPortable,
}

/// Benchmarks `models` (label, path, how) on `input` in one criterion group, so they share a run.
pub fn compare(c: &mut Criterion, group: &str, models: &[(&str, &str, Run)], input: Tensor) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut g = c.benchmark_group(group);
    for &(label, path, run) in models {
        let model = kestrel_onnx::load(&root.join(path), &Limits::default()).expect("bundled model");
        let options = PrepareOptions { threads: 1, input_shapes: vec![input.shape.clone()] };
        let kind = if matches!(run, Run::Cpu) { BackendKind::Cpu } else { BackendKind::Micro };
        let mut engine = Engine::new(kind, &model, &options).expect("prepare");
        let inputs = [input.clone()];
        portable_only(matches!(run, Run::MicroPortable));
        g.bench_function(label, |b| b.iter(|| engine.run(&inputs).expect("run")));
        portable_only(false);
    }
    g.finish();
}

fn portable_only(on: bool) {
    #[cfg(target_arch = "x86_64")]
    kestrel_micro::ops::conv_x86::disable_fast_paths(on);
    #[cfg(target_arch = "aarch64")]
    kestrel_micro::ops::conv_aarch64::disable_fast_paths(on);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = on;
}
