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

/// Elementwise work (table lookups, resizing) below this many output values a part stays on
/// one thread.
#[cfg(feature = "all-ops")]
pub(crate) const MIN_PART_VALUES: usize = 1 << 15;

/// How many parts `work` units (MACs or values) make for `width` threads, at least `min` units
/// and one of `rows` rows each. A build without `all-ops` (a microcontroller's) never splits
/// (inlined, so that its callers' splitting code is left out of such a build).
#[inline(always)]
pub(crate) fn parts_for(width: usize, rows: usize, work: usize, min: usize) -> usize {
    if !cfg!(feature = "all-ops") || width <= 1 {
        return 1;
    }
    width.min(rows).min(work / min).max(1)
}

/// Runs `f(rows r0..r1, their output bytes)` for `parts` even shares of `rows` rows of
/// `row_len` output bytes each (all of `out`), through `spread` when there is more than one.
pub(crate) fn in_row_parts(
    spread: &dyn Spread,
    parts: usize,
    rows: usize,
    row_len: usize,
    out: &mut [u8],
    f: impl Fn(core::ops::Range<usize>, &mut [u8]) + Sync,
) {
    // A firmware (no `all-ops`) never splits: the code below is not even built into it.
    if !cfg!(feature = "all-ops") || parts <= 1 {
        return f(0..rows, out);
    }
    assert!(rows * row_len <= out.len());
    let shared = Shared(out.as_mut_ptr());
    spread.spread(parts, &|i| {
        let (r0, r1) = (rows * i / parts, rows * (i + 1) / parts);
        // SAFETY: bytes r0·row_len..r1·row_len lie inside `out` (asserted above) and are this
        // part's alone: the parts' row ranges are disjoint, each part runs once and `out` is
        // not touched until `spread` has returned (its contract).
        let piece = unsafe { core::slice::from_raw_parts_mut(shared.at(r0 * row_len), (r1 - r0) * row_len) };
        f(r0..r1, piece)
    });
}

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
