//! Splitting an op's work into parts that may run at the same time. The runtime itself has no
//! threads (it is `no_std`): a host hands the interpreter a [`Spread`] that runs the parts on
//! its own workers (kestrel-engine keeps a pool per prepared model); [`Serial`] runs them in
//! turn. Each part writes its own disjoint slice of the output, so the result is the same
//! bytes whatever the number of parts.

/// Runs `parts` pieces of one op's work.
///
/// # Safety
/// An implementation must call `job(i)` exactly once for every `i` in `0..parts`, and return
/// only after every call has returned: the interpreter hands each part a slice of the output
/// that no other part touches, and reuses the output once `spread` returns.
pub unsafe trait Spread: Sync {
    /// How many parts are worth making (the threads that would run them).
    fn width(&self) -> usize;

    /// Runs `job(0)` … `job(parts - 1)`, possibly at the same time.
    fn spread(&self, parts: usize, job: &(dyn Fn(usize) + Sync));
}

/// Every part on the calling thread, in order.
pub struct Serial;

// SAFETY: each index once, in order, all returned before `spread` returns.
unsafe impl Spread for Serial {
    fn width(&self) -> usize {
        1
    }

    fn spread(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        (0..parts).for_each(job);
    }
}

/// Work below this many multiply-accumulates per part is not worth a hand-off to another thread
/// (about 1.5 µs on one x86 core with VNNI; a spinning worker takes a part within about a µs).
/// Measured on BlazeFace at 2 threads: 1 M a part 0.63–0.66 ms, 256 K 0.54–0.62, 64 K 0.61.
pub(crate) const MIN_PART_MACS: usize = 1 << 18;

/// A pointer to an output that the parts of one op write disjoint pieces of.
pub(crate) struct Shared(pub(crate) *mut u8);

// SAFETY: only used to hand each part its own disjoint piece of one output (see `Spread`).
unsafe impl Sync for Shared {}

impl Shared {
    /// The output from byte `offset` on (a method, so that closures capture the `Sync` wrapper
    /// rather than its raw pointer field).
    pub(crate) fn at(&self, offset: usize) -> *mut u8 {
        self.0.wrapping_add(offset)
    }
}
