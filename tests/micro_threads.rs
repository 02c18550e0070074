//! The integer runtime on several threads: the same bytes as on one, whatever the thread count,
//! and no allocation per run once prepared (a counting allocator watches every thread). Large
//! convolutions, bilinear resizes and table lookups split by output rows
//! (kestrel-micro's `Spread`, the engine's pool); kestrel-micro's own tests check the
//! convolution's row split on random shapes through each kernel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use kestrel_engine::{BackendKind, Engine, PrepareOptions, Tensor};
use kestrel_onnx::Limits;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
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
