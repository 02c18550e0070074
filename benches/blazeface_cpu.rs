//! BlazeFace on the CPU backend: fp32 (1 and 2 threads) vs int8 (1 thread), on the astronaut photo.
//! `cargo bench --bench blazeface_cpu`

mod common;

use common::Run;
use criterion::{criterion_group, criterion_main, Criterion};
use kestrel_engine::Tensor;
use kestrel_vision::{image_io, preprocess, ModelConfig};

fn bench(c: &mut Criterion) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = ModelConfig::load(&root.join("models/blazeface/kestrel.toml")).expect("config");
    let photo = image_io::load_rgb(&root.join("models/samples/astronaut.png")).expect("photo");
    let x = preprocess::preprocess(&photo, &config.preprocess);
    let input = Tensor::f32(x.shape, x.data).expect("input");
    common::compare(
        c,
        "blazeface_cpu",
        &[
            ("fp32", "models/blazeface/model.onnx", Run::Cpu),
            ("fp32 2 threads", "models/blazeface/model.onnx", Run::Cpu2),
            ("int8", "models/blazeface/model.int8.onnx", Run::Cpu),
        ],
        input,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
