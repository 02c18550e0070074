//! Mutation testing of the loader and the CPU backend on real models: thousands of corrupted
//! copies of the bundled models (bytes flipped, runs zeroed, lengths cut) must each load cleanly
//! or be refused with an error — never a panic, never a hang. What loads is also prepared and run:
//! tract's own panics must come back as errors.

mod common;

use kestrel_engine::{BackendKind, Engine, PrepareOptions, Tensor};
use kestrel_onnx::Limits;

/// xorshift: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut m = original.to_vec();
    match rng.below(3) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(m.len());
                m[at] = rng.next() as u8;
            }
        }
        1 => {
            let at = rng.below(m.len());
            let end = (at + 1 + rng.below(64)).min(m.len());
            m[at..end].fill(0);
        }
        _ => m.truncate(rng.below(m.len())),
    }
    m
}

#[test]
fn corrupted_models_never_panic() {
    let root = common::repo();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut loaded, mut refused, mut ran) = (0, 0, 0);
    for (path, shape) in [
        ("models/fashion-cnn/model.onnx", vec![1, 28, 28, 1]),
        ("models/fashion-cnn/model.int8.onnx", vec![1, 28, 28, 1]),
    ] {
        let original = std::fs::read(root.join(path)).unwrap();
        let input = Tensor::f32(shape.clone(), vec![0.5; shape.iter().product()]).unwrap();
        for _ in 0..300 {
            let bytes = mutate(&mut rng, &original);
            let outcome = std::panic::catch_unwind(|| {
                let Ok(model) = kestrel_onnx::from_bytes(&bytes, None, &Limits::default()) else {
                    return (false, false);
                };
                let options = PrepareOptions { threads: 1, input_shapes: vec![shape.clone()] };
                let ran = Engine::new(BackendKind::Cpu, &model, &options)
                    .and_then(|mut e| e.run(std::slice::from_ref(&input)))
                    .is_ok();
                (true, ran)
            });
            match outcome {
                Ok((true, r)) => {
                    loaded += 1;
                    ran += usize::from(r);
                }
                Ok((false, _)) => refused += 1,
                Err(_) => panic!("a corrupted copy of {path} panicked (seed state {:#x})", rng.0),
            }
        }
    }
    println!("{loaded} corrupted models loaded ({ran} ran), {refused} refused");
    assert!(
        refused > 100 && loaded > 10,
        "{loaded} loaded, {refused} refused: the mutations are not exercising both paths"
    );
}
