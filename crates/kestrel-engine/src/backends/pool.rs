//! Worker threads for the integer runtime: created once per prepared model, they run the parts
//! of its large convolutions ([`kestrel_micro::Spread`]). Handing out a job allocates nothing:
//! the job is published in place, the calling thread takes parts too, and the workers spin
//! briefly between ops before they sleep.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use kestrel_micro::Spread;

/// The job of the moment: its generation, its parts and the closure, lifetime erased (see
/// `spread`).
#[derive(Clone, Copy)]
struct Job {
    generation: u64,
    parts: usize,
    run: *const (dyn Fn(usize) + Sync + 'static),
}

// SAFETY: the closure is `Sync`; the pointer is dereferenced only while `spread` keeps it alive.
unsafe impl Send for Job {}

struct Shared {
    /// The latest job's generation; workers wait for it to move.
    generation: AtomicU64,
    /// The next part to take: the job's generation (low 32 bits) above, the part below, so a
    /// worker still holding an earlier job can never take a part of a newer one.
    next: AtomicU64,
    /// Parts of the latest job not yet finished.
    left: AtomicUsize,
    job: Mutex<Job>,
    /// The first panic of a part, re-raised on the calling thread once every part has ended.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    quit: AtomicBool,
    sleep: Mutex<()>,
    wake: Condvar,
}

/// `threads - 1` workers plus the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// Spins this many times for the next job before sleeping: ops follow each other within
/// microseconds, and waking a sleeping thread costs more than that.
const SPINS: u32 = 20_000;

impl Pool {
    pub fn new(threads: usize) -> Pool {
        let noop: &'static (dyn Fn(usize) + Sync) = &|_| {};
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            next: AtomicU64::new(0),
            left: AtomicUsize::new(0),
            job: Mutex::new(Job { generation: 0, parts: 0, run: noop }),
            panic: Mutex::new(None),
            quit: AtomicBool::new(false),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|_| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || work(&shared))
            })
            .collect();
        Pool { shared, workers }
    }
}

/// Takes parts of `job` until none is left (or a newer job has replaced it).
fn take_parts(s: &Shared, job: Job) {
    let tag = (job.generation & 0xFFFF_FFFF) << 32;
    let mut cur = s.next.load(Ordering::Acquire);
    loop {
        let i = (cur & 0xFFFF_FFFF) as usize;
        if cur & !0xFFFF_FFFF != tag || i >= job.parts {
            return;
        }
        match s.next.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // SAFETY: part i of this job is not finished (we just took it), so `spread`,
                // which waits for every part, still holds the closure alive.
                let run = || unsafe { (*job.run)(i) };
                // A panicking part still counts as ended, so that `spread` never waits forever
                // (nor returns while other parts still use the closure); it re-raises it.
                if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
                    s.panic.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(payload);
                }
                s.left.fetch_sub(1, Ordering::AcqRel);
                cur = s.next.load(Ordering::Acquire);
            }
            Err(now) => cur = now,
        }
    }
}

fn work(s: &Shared) {
    let mut seen = 0;
    loop {
        let mut spins = 0;
        loop {
            if s.quit.load(Ordering::Acquire) {
                return;
            }
            let now = s.generation.load(Ordering::Acquire);
            if now != seen {
                seen = now;
                break;
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                let guard = s.sleep.lock().unwrap_or_else(|p| p.into_inner());
                // Re-checked under the lock: `spread` bumps the generation and notifies
                // holding it, so a job published now is not missed.
                if s.generation.load(Ordering::Acquire) == seen && !s.quit.load(Ordering::Acquire) {
                    drop(s.wake.wait(guard).unwrap_or_else(|p| p.into_inner()));
                }
            }
        }
        let job = *s.job.lock().unwrap_or_else(|p| p.into_inner());
        take_parts(s, job);
    }
}

// SAFETY: every index in 0..parts is taken exactly once (one successful compare-exchange each,
// tagged with the job's generation), and `spread` returns only once `left` is 0, i.e. after
// every call has returned.
unsafe impl Spread for Pool {
    fn width(&self) -> usize {
        self.workers.len() + 1
    }

    fn spread(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        let s = &*self.shared;
        // SAFETY: only the lifetime is erased; the closure runs only for parts of this job,
        // all finished before this function returns.
        let run: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(job) };
        let job = {
            let mut slot = s.job.lock().unwrap_or_else(|p| p.into_inner());
            *slot = Job { generation: slot.generation + 1, parts, run };
            s.left.store(parts, Ordering::SeqCst);
            s.next.store((slot.generation & 0xFFFF_FFFF) << 32, Ordering::SeqCst);
            *slot
        };
        {
            let _guard = s.sleep.lock().unwrap_or_else(|p| p.into_inner());
            s.generation.store(job.generation, Ordering::Release);
            s.wake.notify_all();
        }
        take_parts(s, job);
        let mut spins = 0u32;
        while s.left.load(Ordering::Acquire) != 0 {
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if let Some(payload) = s.panic.lock().unwrap_or_else(|p| p.into_inner()).take() {
            std::panic::resume_unwind(payload);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let _guard = self.shared.sleep.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.quit.store(true, Ordering::Release);
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every part runs exactly once, job after job, whatever the threads and parts.
    #[test]
    fn each_part_runs_once() {
        for threads in [1, 2, 3, 5] {
            let pool = Pool::new(threads);
            assert_eq!(pool.width(), threads);
            for parts in [1, 2, 3, 7, 64] {
                let counts: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
                for _ in 0..20 {
                    pool.spread(parts, &|i| {
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 20), "{threads} threads, {parts} parts");
            }
        }
    }

    /// A panicking part is re-raised on the calling thread once every part has ended, and the
    /// pool still works afterwards.
    #[test]
    fn a_panicking_part_is_raised_by_the_caller() {
        let pool = Pool::new(3);
        let done = AtomicUsize::new(0);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.spread(8, &|i| {
                assert!(i != 5, "part 5 fails");
                done.fetch_add(1, Ordering::Relaxed);
            })
        }));
        assert!(caught.is_err());
        assert_eq!(done.load(Ordering::Relaxed), 7);
        let after = AtomicUsize::new(0);
        pool.spread(4, &|_| {
            after.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(after.load(Ordering::Relaxed), 4);
    }
}
