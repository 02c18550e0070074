//! Mutation testing of the loaders and backends on real models: 2,100 corrupted copies (bytes
//! flipped, runs zeroed, lengths cut) of the bundled models — the Fashion CNN float and int8,
//! BlazeFace float, mixed int8 and integer-only int8, and the Fashion `.kmodel` — must each load cleanly or
//! be refused with an error: never a panic, never a hang. What loads is also prepared and run
//! (ONNX on the CPU backend, int8 ONNX on the integer runtime too, `.kmodel`s parsed, prepared
//! and run by kestrel-micro). Each mutant runs on its own thread under a 10 s watchdog; a panic
//! or a hang fails the test naming the mutant's seed, which reproduces it (`mutant(seed, …)`).

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use kestrel_engine::{BackendKind, Engine, PrepareOptions, Tensor};
use kestrel_micro::{Interpreter, Model};
use kestrel_onnx::Limits;

const WATCHDOG: Duration = Duration::from_secs(10);
/// A forged `.kmodel` may ask for any arena; beyond this the run is skipped (parsing still counts).
const MAX_ARENA: usize = 64 << 20;

/// xorshift: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The corrupted copy of `original` that `seed` makes.
fn mutant(seed: u64, original: &[u8]) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
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

/// What one mutant did.
#[derive(Clone, Copy)]
enum Outcome {
    Refused,
    Loaded { ran: bool },
}

/// Runs `check` on its own thread under the watchdog: a panic or a hang fails, naming the seed.
fn watched(what: &str, seed: u64, check: impl FnOnce() -> Outcome + Send + 'static) -> Outcome {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(check)));
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => panic!("a corrupted copy of {what} panicked (mutant seed {seed:#x})"),
        Err(_) => panic!("a corrupted copy of {what} hung for over {WATCHDOG:?} (mutant seed {seed:#x})"),
    }
}

/// A corrupted ONNX file: loaded, then prepared and run on each backend.
fn onnx_mutant(bytes: &[u8], shape: &[usize], backends: &[BackendKind]) -> Outcome {
    let Ok(model) = kestrel_onnx::from_bytes(bytes, None, &Limits::default()) else {
        return Outcome::Refused;
    };
    let input = Tensor::f32(shape.to_vec(), vec![0.5; shape.iter().product()]).unwrap();
    let options = PrepareOptions { threads: 1, input_shapes: vec![shape.to_vec()] };
    let mut ran = false;
    for &backend in backends {
        ran |= Engine::new(backend, &model, &options).and_then(|mut e| e.run(std::slice::from_ref(&input))).is_ok();
    }
    Outcome::Loaded { ran }
}

/// A corrupted `.kmodel`: parsed, then prepared and run on the host's fast kernels.
fn kmodel_mutant(bytes: &[u8]) -> Outcome {
    let Ok(model) = Model::parse(bytes) else {
        return Outcome::Refused;
    };
    if model.arena_len() > MAX_ARENA || Interpreter::prepared_len(&model) > MAX_ARENA {
        return Outcome::Loaded { ran: false };
    }
    let mut arena = vec![0u8; model.arena_len()];
    let mut prepared = vec![0u8; Interpreter::prepared_len(&model)];
    let ran = Interpreter::prepare(&model, &mut prepared).is_ok()
        && Interpreter::with_prepared(model, &mut arena, &prepared).and_then(|mut it| it.run()).is_ok();
    Outcome::Loaded { ran }
}

/// Most mutants of a `.kmodel` also get a fresh file length and CRC, as a forger would give
/// them, so that they reach the checks behind the checksum.
fn resealed(mut bytes: Vec<u8>, seed: u64) -> Vec<u8> {
    if !seed.is_multiple_of(4) && bytes.len() >= 16 {
        let len = bytes.len() as u32;
        bytes[8..12].copy_from_slice(&len.to_le_bytes());
        let crc = kestrel_micro::crc32(&bytes[16..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }
    bytes
}

#[test]
fn corrupted_models_never_panic_or_hang() {
    use BackendKind::{Cpu, Micro};
    let root = common::repo();
    let fashion = vec![1, 28, 28, 1];
    let face = vec![1, 3, 128, 128];
    let onnx_cases: [(&str, Vec<usize>, &[BackendKind], usize); 5] = [
        ("models/fashion-cnn/model.onnx", fashion.clone(), &[Cpu], 400),
        ("models/fashion-cnn/model.int8.onnx", fashion, &[Cpu, Micro], 400),
        ("models/blazeface/model.onnx", face.clone(), &[Cpu], 200),
        ("models/blazeface/model.int8.onnx", face.clone(), &[Micro], 200),
        ("models/blazeface/model.integer.int8.onnx", face, &[Micro], 300),
    ];
    let mut total = 0;
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut tally = |what: &str, outcomes: Vec<Outcome>| {
        let refused = outcomes.iter().filter(|o| matches!(o, Outcome::Refused)).count();
        let ran = outcomes.iter().filter(|o| matches!(o, Outcome::Loaded { ran: true })).count();
        let loaded = outcomes.len() - refused;
        println!("{what}: {} mutants: {loaded} loaded ({ran} ran), {refused} refused", outcomes.len());
        assert!(refused > outcomes.len() / 10 && loaded > 10, "{what}: the mutations do not exercise both paths");
        total += outcomes.len();
    };
    for (path, shape, backends, count) in onnx_cases {
        let original = std::fs::read(root.join(path)).unwrap();
        let outcomes = (0..count)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let (bytes, shape) = (mutant(seed, &original), shape.clone());
                watched(path, seed, move || onnx_mutant(&bytes, &shape, backends))
            })
            .collect();
        tally(path, outcomes);
    }
    let kmodel = "boards/mps2-an386/data/fashion.kmodel";
    let original = std::fs::read(root.join(kmodel)).unwrap();
    let outcomes = (0..600)
        .map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let bytes = resealed(mutant(seed, &original), seed);
            watched(kmodel, seed, move || kmodel_mutant(&bytes))
        })
        .collect();
    tally(kmodel, outcomes);
    assert_eq!(total, 2_100, "the module doc states the mutant count");
}
