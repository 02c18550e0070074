//! The integer runtime on a ResNet stage's worth of convolutions (6 × Conv 3×3, 64 channels,
//! 56×56, ReLU; scripts/make_conv_stack.py): micro int8 (fast paths / AVX2 only / portable) against tract's
//! fp32 and int8, 1 thread (micro and tract fp32 also at 2). onnxruntime's numbers for the same files: scripts/bench_vs_ort.py.
//! `cargo bench --bench micro_conv_stack`

mod common;

use common::Run;
use criterion::{criterion_group, criterion_main, Criterion};
use kestrel_engine::Tensor;

fn bench(c: &mut Criterion) {
    let n = 64 * 56 * 56;
    let values: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1009) as f32) / 1008.0).collect();
    let input = Tensor::f32(vec![1, 64, 56, 56], values).expect("input");
    let (fp32, int8) = ("benches/models/conv-stack/model.onnx", "benches/models/conv-stack/model.int8.onnx");
    common::compare(
        c,
        "micro_conv_stack",
        &[
            ("tract fp32", fp32, Run::Cpu),
            ("tract fp32 2 threads", fp32, Run::Cpu2),
            ("tract int8", int8, Run::Cpu),
            ("micro int8", int8, Run::Micro),
            ("micro int8 2 threads", int8, Run::Micro2),
            ("micro int8 avx2", int8, Run::MicroAvx2),
            ("micro int8 portable", int8, Run::MicroPortable),
        ],
        input,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
