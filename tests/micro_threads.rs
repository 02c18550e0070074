//! The integer runtime on several threads: the same bytes as on one, whatever the thread count,
//! and no allocation per run once prepared (a counting allocator watches every thread). Large
//! convolutions, bilinear resizes and table lookups split by output rows
//! (kestrel-micro's `Spread`, the engine's pool); kestrel-micro's own tests check the
//! convolution's row split on random shapes through each kernel. Last, one prepared model
//! shared by several threads (`Engine::share`): the weights are not copied.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Mutex;

use kestrel_engine::{BackendKind, Engine, PrepareOptions, Tensor};
use kestrel_onnx::Limits;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated and not yet freed.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The counters are process-wide: the tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: `ptr` came from `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A deterministic input in [0, 1).
fn input(shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(shape.to_vec(), (0..n).map(|i| ((i * 7919) % 1009) as f32 / 1009.0).collect()).unwrap()
}

fn prepare(path: &str, shape: &[usize], threads: usize) -> Engine {
    let model = kestrel_onnx::load(&common::repo().join(path), &Limits::default()).unwrap();
    let options = PrepareOptions { threads, input_shapes: vec![shape.to_vec()] };
    Engine::new(BackendKind::Micro, &model, &options).unwrap()
}

mod common;

/// One test (the allocation count is process-wide): BlazeFace integer-only, the int8 Fashion
/// CNN, the conv stack (694 M MACs: every layer splits) and the COCO detector compressed
/// integer-only (its Resizes and LeakyRelu tables split too) at 1, 2 and 3 threads
/// give the same bytes; then 50 runs of the conv stack on 3 threads allocate nothing.
#[test]
fn threads_give_the_same_bytes_and_runs_do_not_allocate() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("kestrel-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (int8, kmodel) = (dir.join("coco.onnx"), dir.join("coco.kmodel"));
    let coco = "models/coco-nanodet/model.onnx";
    let calib = "models/coco-nanodet/calib";
    common::kestrel_ok(&[
        "compress",
        coco,
        "--int8",
        "--integer-only",
        "--calib",
        calib,
        "--out",
        int8.to_str().unwrap(),
    ]);
    common::kestrel_ok(&["export", int8.to_str().unwrap(), "-o", kmodel.to_str().unwrap()]);
    let x = [input(&[1, 3, 416, 416])];
    let bytes = std::fs::read(&kmodel).unwrap();
    let run = |threads| Engine::from_kmodel(BackendKind::Micro, bytes.clone(), threads).unwrap().run(&x).unwrap();
    let absurd = Engine::from_kmodel(BackendKind::Micro, bytes.clone(), 100_000).err().unwrap().to_string();
    assert!(absurd.contains("at most 256"), "{absurd}");
    let one = run(1);
    for threads in [2, 3] {
        assert!(one == run(threads), "the COCO detector: {threads} threads differ from 1");
    }
    std::fs::remove_dir_all(&dir).ok();
    let cases: [(&str, &[usize]); 3] = [
        ("models/blazeface/model.integer.int8.onnx", &[1, 3, 128, 128]),
        ("models/fashion-cnn/model.int8.onnx", &[1, 28, 28, 1]),
        ("benches/models/conv-stack/model.int8.onnx", &[1, 64, 56, 56]),
    ];
    for (path, shape) in cases {
        let x = [input(shape)];
        let one = prepare(path, shape, 1).run(&x).unwrap();
        for threads in [2, 3] {
            let many = prepare(path, shape, threads).run(&x).unwrap();
            assert!(one == many, "{path}: {threads} threads differ from 1");
        }
    }
    let (path, shape) = cases[2];
    let x = [input(shape)];
    let mut engine = prepare(path, shape, 3);
    let mut outputs = Vec::new();
    for _ in 0..5 {
        engine.run_into(&x, &mut outputs).unwrap();
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..50 {
        engine.run_into(&x, &mut outputs).unwrap();
    }
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst) - before, 0, "allocations in 50 runs on 3 threads");
}

/// What `f` makes, and the bytes it holds (allocated while `f` runs and not freed after).
fn held<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let before = LIVE.load(Ordering::SeqCst);
    let value = f();
    (value, LIVE.load(Ordering::SeqCst) - before)
}

/// The conv stack (221 kB of int8 weights, 886 kB of float ones) prepared on the integer runtime
/// (2 threads) and on tract, then shared by three threads that run at once: each gets what the
/// first handle gets, and a share holds at least the weights' size less than a second prepare
/// (only run state: the arena, workers, tract's op states).
#[test]
fn one_prepared_model_serves_several_threads_without_copying_its_weights() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let shape = [1, 64, 56, 56];
    let x = [input(&shape)];
    for (kind, path) in [
        (BackendKind::Micro, "benches/models/conv-stack/model.int8.onnx"),
        (BackendKind::Cpu, "benches/models/conv-stack/model.onnx"),
    ] {
        let model = kestrel_onnx::load(&common::repo().join(path), &Limits::default()).unwrap();
        let graph = model.proto.graph.as_ref().unwrap();
        let weights: usize = graph.initializer.iter().map(|t| t.raw_data.len() + 4 * t.float_data.len()).sum();
        let options = PrepareOptions { threads: 2, input_shapes: vec![shape.to_vec()] };
        let (mut engine, prepared) = held(|| Engine::new(kind, &model, &options).unwrap());
        let (second, second_held) = held(|| Engine::new(kind, &model, &options).unwrap());
        drop(second);
        let (shares, shares_held) = held(|| (0..3).map(|_| engine.share().unwrap()).collect::<Vec<_>>());
        let share = shares_held / 3;
        println!("{kind:?}: weights {weights} B; held by a prepare {prepared} B, a second {second_held} B, a share {share} B");
        assert!(
            share + weights as isize <= second_held,
            "{kind:?}: a share holds {share} B, a prepare {second_held} B: the {weights} B of weights were copied"
        );
        let want = engine.run(&x).unwrap();
        let got: Vec<_> = std::thread::scope(|s| {
            let runs: Vec<_> = shares
                .into_iter()
                .map(|mut e| {
                    let x = &x;
                    s.spawn(move || (0..4).map(|_| e.run(x).unwrap()).collect::<Vec<_>>())
                })
                .collect();
            runs.into_iter().flat_map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(got.len(), 12);
        assert!(got.iter().all(|g| *g == want), "{kind:?}: a shared handle's output differs");
    }
}
