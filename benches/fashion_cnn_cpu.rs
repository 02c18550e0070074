//! Fashion-MNIST CNN: tract fp32 and int8, and the integer runtime (batch 1, 1 thread).
//! `cargo bench --bench fashion_cnn_cpu`

mod common;

use common::Run;
use criterion::{criterion_group, criterion_main, Criterion};
use kestrel_engine::Tensor;

fn bench(c: &mut Criterion) {
    // A deterministic pseudo-image in [0, 1].
    let pixels: Vec<f32> = (0..28 * 28).map(|i| ((i * 37 % 255) as f32) / 255.0).collect();
    let input = Tensor::f32(vec![1, 28, 28, 1], pixels).expect("input");
    common::compare(
        c,
        "fashion_cnn_cpu",
        &[
            ("fp32", "models/fashion-cnn/model.onnx", Run::Cpu),
            ("int8", "models/fashion-cnn/model.int8.onnx", Run::Cpu),
            ("int8 micro", "models/fashion-cnn/model.int8.onnx", Run::Micro),
            ("int8 micro avx2", "models/fashion-cnn/model.int8.onnx", Run::MicroAvx2),
            ("int8 micro portable", "models/fashion-cnn/model.int8.onnx", Run::MicroPortable),
        ],
        input,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
