//! `Interpreter::run` never allocates: a counting global allocator watches it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use kestrel_micro::builder::{Builder, TensorSpec};
use kestrel_micro::{DType, Interpreter, Model, OpCode, Storage};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only the measuring thread counts (the test harness allocates on other threads).
    static WATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(|w| w.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// float input → Quantize → Conv (+bias) → MaxPool → Dequantize → Softmax: every kind of kernel.
fn model() -> Vec<u8> {
    let mut b = Builder::new();
    let w: Vec<u8> = (0..4 * 9).map(|i| ((i * 7) % 11) as u8).collect();
    let w_at = b.weights(&w);
    let bias_at = b.weights(&[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]);
    let mult_at = b.f32_weights(&[0.05, 0.04, 0.03, 0.02]);
    let scales_at = b.f32_weights(&[0.1; 4]);
    let act = |dtype, dims: &'static [usize], offset, q: Option<(f32, i32)>| TensorSpec {
        dtype,
        dims,
        storage: Storage::Arena,
        offset,
        scale: q.map(|q| q.0),
        zero_point: q.map_or(0, |q| q.1),
        channel_scales: None,
    };
    let x = b.tensor(act(DType::F32, &[1, 6, 6, 1], 0, None));
    let xq = b.tensor(act(DType::U8, &[1, 6, 6, 1], 144, Some((0.02, 10))));
    let wt = b.tensor(TensorSpec {
        dtype: DType::I8,
        dims: &[4, 3, 3, 1],
        storage: Storage::Weights,
        offset: w_at,
        scale: Some(0.1),
        zero_point: 0,
        channel_scales: Some(scales_at),
    });
    let bt = b.tensor(TensorSpec {
        dtype: DType::I32,
        dims: &[4],
        storage: Storage::Weights,
        offset: bias_at,
        scale: None,
        zero_point: 0,
        channel_scales: None,
    });
    let y = b.tensor(act(DType::U8, &[1, 4, 4, 4], 192, Some((0.05, 0))));
    let p = b.tensor(act(DType::U8, &[1, 2, 2, 4], 256, Some((0.05, 0))));
    let f = b.tensor(act(DType::F32, &[1, 2, 2, 4], 272, None));
    let s = b.tensor(act(DType::F32, &[1, 2, 2, 4], 336, None));
    b.op(OpCode::Quantize, &[x], &[xq], [0; 12], None);
    b.op(OpCode::Conv, &[xq, wt, bt], &[y], [3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0], Some(mult_at));
    b.op(OpCode::MaxPool, &[y], &[p], [2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0], None);
    b.op(OpCode::Dequantize, &[p], &[f], [0; 12], None);
    b.op(OpCode::Softmax, &[f], &[s], [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], None);
    b.input(x);
    b.output(s);
    b.arena(400);
    b.finish()
}

#[test]
fn run_does_not_allocate() {
    let bytes = model();
    let model = Model::parse(&bytes).expect("valid model");
    let mut arena = vec![0u8; model.arena_len()];
    // With this CPU's fast kernels (their constants prepared beforehand, outside `run`).
    let mut prepared = vec![0u8; Interpreter::prepared_len(&model)];
    Interpreter::prepare(&model, &mut prepared).unwrap();
    let mut it = Interpreter::with_prepared(model, &mut arena, &prepared).unwrap();
    for (i, chunk) in it.input_mut(0).unwrap().chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&(i as f32 / 36.0).to_le_bytes());
    }
    // The counter itself works: an allocation while watching is seen.
    WATCHING.with(|w| w.set(true));
    drop(std::hint::black_box(Box::new(7u64)));
    assert_eq!(ALLOCATIONS.swap(0, Ordering::SeqCst), 1);
    for _ in 0..10 {
        it.run().unwrap();
    }
    WATCHING.with(|w| w.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0, "Interpreter::run allocated");
    // And it computed something sensible: a softmax over each row of 4 channels sums to 1.
    let out: Vec<f32> =
        it.output(0).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    for row in out.chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{out:?}");
    }
}

#[test]
fn a_small_arena_is_refused() {
    let bytes = model();
    let model = Model::parse(&bytes).unwrap();
    let mut arena = vec![0u8; 10];
    assert!(Interpreter::new(model, &mut arena).is_err());
}
