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
    /// The same on two threads.
    Cpu2,
    /// The integer runtime with the fast paths this CPU has.
    Micro,
    /// The same on two threads (the calling one and one worker).
    Micro2,
    /// The integer runtime's portable kernels only (what a CPU without the fast paths runs).
    MicroPortable,
    /// The integer runtime with AVX2 but not AVX-512 VNNI (what most x86-64 CPUs of 2013–2021
    /// run); on other architectures the same as `Micro`.
    MicroAvx2,
}

/// Benchmarks `models` (label, path, how) on `input` in one criterion group, so they share a run.
pub fn compare(c: &mut Criterion, group: &str, models: &[(&str, &str, Run)], input: Tensor) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut g = c.benchmark_group(group);
    for &(label, path, run) in models {
        let model = kestrel_onnx::load(&root.join(path), &Limits::default()).expect("bundled model");
        let threads = if matches!(run, Run::Micro2 | Run::Cpu2) { 2 } else { 1 };
        let options = PrepareOptions { threads, input_shapes: vec![input.shape.clone()] };
        let kind = if matches!(run, Run::Cpu | Run::Cpu2) { BackendKind::Cpu } else { BackendKind::Micro };
        // Before preparing: the prepared constants are those of the kernels in use.
        fast_paths(run);
        let mut engine = Engine::new(kind, &model, &options).expect("prepare");
        let inputs = [input.clone()];
        g.bench_function(label, |b| b.iter(|| engine.run(&inputs).expect("run")));
        fast_paths(Run::Micro);
    }
    g.finish();
}

/// Turns the integer runtime's fast paths on or off for `run`.
fn fast_paths(run: Run) {
    let (no_vnni, portable) = (matches!(run, Run::MicroAvx2 | Run::MicroPortable), matches!(run, Run::MicroPortable));
    #[cfg(target_arch = "x86_64")]
    {
        kestrel_micro::ops::conv_x86::disable_fast_paths(no_vnni);
        kestrel_micro::ops::conv_avx2::disable_fast_paths(portable);
    }
    #[cfg(target_arch = "aarch64")]
    {
        kestrel_micro::ops::conv_aarch64::disable_fast_paths(portable);
        kestrel_micro::ops::depthwise_aarch64::disable_fast_paths(portable);
    }
    let _ = (no_vnni, portable);
}
