//! The latest-frame queue between pipeline stages: one short lane per source, taken round-robin.
//! A live lane that is full drops its *oldest* item, so a slow consumer always gets the newest
//! frame and nothing piles up; a lane fed from a file blocks its producer instead, so no frame
//! is lost.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a full lane does with a new item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Drop the oldest queued item (live sources, `--realtime`).
    DropOldest,
    /// Wait for room (files and folders read as fast as inference allows).
    Wait,
}

struct Lanes<T> {
    queued: Vec<VecDeque<T>>,
    /// A lane whose item a consumer holds (see [`LatestQueue::pop_held`]).
    held: Vec<bool>,
    open: Vec<bool>,
    dropped: Vec<u64>,
    next: usize,
    stopped: bool,
}

/// What [`LatestQueue::pop_within`] gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Popped<T> {
    Item(T),
    TimedOut,
    /// Every lane closed and empty, or the queue stopped.
    Finished,
}

/// A bounded multi-lane queue; every lane holds at most `capacity` items.
pub struct LatestQueue<T> {
    lanes: Mutex<Lanes<T>>,
    capacity: usize,
    filled: Condvar,
    emptied: Condvar,
}

impl<T> LatestQueue<T> {
    /// `lanes` sources, each with room for `capacity` (1 or 2) items.
    pub fn new(lanes: usize, capacity: usize) -> LatestQueue<T> {
        let capacity = capacity.max(1);
        LatestQueue {
            lanes: Mutex::new(Lanes {
                queued: (0..lanes).map(|_| VecDeque::with_capacity(capacity)).collect(),
                held: vec![false; lanes],
                open: vec![true; lanes],
                dropped: vec![0; lanes],
                next: 0,
                stopped: false,
            }),
            capacity,
            filled: Condvar::new(),
            emptied: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lanes<T>> {
        self.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `item` on `lane`; returns the oldest item when it was dropped to make room (so
    /// the caller can reuse its buffers). Returns the item back as the error when the queue was
    /// stopped or the lane closed (the producer should end).
    pub fn push(&self, lane: usize, item: T, when_full: WhenFull) -> Result<Option<T>, T> {
        let mut l = self.lock();
        let mut dropped = None;
        loop {
            if l.stopped || !l.open[lane] {
                return Err(item);
            }
            if l.queued[lane].len() < self.capacity {
                break;
            }
            match when_full {
                WhenFull::DropOldest => {
                    dropped = l.queued[lane].pop_front();
                    l.dropped[lane] += 1;
                    break;
                }
                WhenFull::Wait => l = self.emptied.wait(l).unwrap_or_else(|p| p.into_inner()),
            }
        }
        l.queued[lane].push_back(item);
        drop(l);
        self.filled.notify_one();
        Ok(dropped)
    }

    /// The next item, taking the lanes in turn; `None` once every lane is closed and empty, or
    /// the queue was stopped.
    pub fn pop(&self) -> Option<T> {
        loop {
            match self.pop_within(Duration::from_secs(3600)) {
                Popped::Item(item) => return Some(item),
                Popped::Finished => return None,
                Popped::TimedOut => {}
            }
        }
    }

    /// Like [`pop`](Self::pop), but gives up after `timeout`.
    pub fn pop_within(&self, timeout: Duration) -> Popped<T> {
        self.take(timeout, false)
    }

    /// Like [`pop`](Self::pop), for several consumers that must keep each lane's order: a lane
    /// whose last item a consumer still holds is passed over until it is [`release`]d, so each
    /// lane's items are handled one at a time, in order, whichever consumer takes them.
    ///
    /// [`release`]: Self::release
    pub fn pop_held(&self) -> Option<T> {
        loop {
            match self.take(Duration::from_secs(3600), true) {
                Popped::Item(item) => return Some(item),
                Popped::Finished => return None,
                Popped::TimedOut => {}
            }
        }
    }

    /// The consumer is done with the item it took from `lane` with [`pop_held`](Self::pop_held).
    pub fn release(&self, lane: usize) {
        self.lock().held[lane] = false;
        self.filled.notify_all();
    }

    fn take(&self, timeout: Duration, hold: bool) -> Popped<T> {
        let deadline = Instant::now() + timeout;
        let mut l = self.lock();
        loop {
            if l.stopped {
                return Popped::Finished;
            }
            let n = l.queued.len();
            for k in 0..n {
                let lane = (l.next + k) % n;
                if hold && l.held[lane] {
                    continue;
                }
                if let Some(item) = l.queued[lane].pop_front() {
                    l.next = (lane + 1) % n;
                    l.held[lane] |= hold;
                    drop(l);
                    self.emptied.notify_all();
                    return Popped::Item(item);
                }
            }
            if !l.open.iter().any(|&o| o) && l.queued.iter().all(VecDeque::is_empty) {
                return Popped::Finished;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Popped::TimedOut;
            }
            l = self.filled.wait_timeout(l, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// No more items will come on `lane`; queued ones are still delivered.
    pub fn close(&self, lane: usize) {
        self.lock().open[lane] = false;
        self.filled.notify_all();
        self.emptied.notify_all();
    }

    /// Closes every lane (the producer stage ended).
    pub fn close_all(&self) {
        self.lock().open.iter_mut().for_each(|o| *o = false);
        self.filled.notify_all();
        self.emptied.notify_all();
    }

    /// Ends the queue at once: queued items are dropped, producers and consumers return.
    pub fn stop(&self) {
        let mut l = self.lock();
        l.stopped = true;
        l.queued.iter_mut().for_each(VecDeque::clear);
        drop(l);
        self.filled.notify_all();
        self.emptied.notify_all();
    }

    /// Items this queue dropped on `lane` because it was full.
    pub fn dropped(&self, lane: usize) -> u64 {
        self.lock().dropped[lane]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_full_live_lane_drops_its_oldest_item() {
        let q = LatestQueue::new(1, 2);
        let dropped: Vec<_> = (0..5).map(|i| q.push(0, i, WhenFull::DropOldest).unwrap()).collect();
        assert_eq!(dropped, [None, None, Some(0), Some(1), Some(2)], "the dropped items come back");
        q.close(0);
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(3), Some(4), None));
        assert_eq!(q.dropped(0), 3);
    }

    #[test]
    fn a_held_lane_waits_for_its_release_and_keeps_its_order() {
        let q = LatestQueue::new(2, 2);
        for item in [(0, "a1"), (0, "a2"), (1, "b1")] {
            q.push(item.0, item.1, WhenFull::Wait).unwrap();
        }
        q.close_all();
        // a1 is held: a second consumer gets b1, not a2, and nothing more until a1 is released.
        assert_eq!((q.pop_held(), q.pop_held()), (Some("a1"), Some("b1")));
        assert_eq!(q.take(Duration::from_millis(20), true), Popped::TimedOut);
        q.release(0);
        assert_eq!(q.pop_held(), Some("a2"));
        q.release(0);
        q.release(1);
        assert_eq!(q.pop_held(), None);
    }

    #[test]
    fn lanes_are_taken_in_turn() {
        let q = LatestQueue::new(2, 2);
        q.push(0, "a1", WhenFull::DropOldest).unwrap();
        q.push(0, "a2", WhenFull::DropOldest).unwrap();
        q.push(1, "b1", WhenFull::DropOldest).unwrap();
        q.close_all();
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["a1", "b1", "a2"]);
    }

    #[test]
    fn a_waiting_lane_loses_nothing_and_stop_releases_everyone() {
        let q = Arc::new(LatestQueue::new(1, 1));
        let producer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for i in 0..100 {
                    q.push(0, i, WhenFull::Wait).unwrap();
                }
                q.close(0);
            })
        };
        let got: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        producer.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(q.dropped(0), 0);

        let q = Arc::new(LatestQueue::new(1, 1));
        q.push(0, 0, WhenFull::Wait).unwrap();
        let blocked = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.push(0, 1, WhenFull::Wait))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        q.stop();
        assert_eq!(blocked.join().unwrap(), Err(1));
        assert_eq!(q.pop(), None);

        let q = LatestQueue::<u8>::new(1, 1);
        assert_eq!(q.pop_within(Duration::from_millis(20)), Popped::TimedOut);
        q.close(0);
        assert_eq!(q.pop_within(Duration::from_millis(20)), Popped::Finished);
    }
}
