//! Heartbeats of the pipeline's parts, for `/healthz`: each part stamps a [`Beat`] when it has
//! made progress (or found nothing to do), and the health check compares the stamps' age with
//! `health.stall_timeout`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The process-wide origin of the stamps (the first use).
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    origin().elapsed().as_millis() as u64
}

/// A monotonic time stamp that one thread sets and any thread reads, without a lock.
#[derive(Debug)]
pub struct Beat(AtomicU64);

impl Default for Beat {
    /// Stamped now: a part that has just started has not stalled.
    fn default() -> Self {
        Beat(AtomicU64::new(now_ms()))
    }
}

impl Beat {
    /// Stamp now.
    pub fn beat(&self) {
        self.0.store(now_ms(), Ordering::Release);
    }

    /// Time since the last stamp.
    pub fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.0.load(Ordering::Acquire)))
    }

    /// True when this beat was stamped after `other` (both on the same clock).
    pub fn newer_than(&self, other: &Beat) -> bool {
        self.0.load(Ordering::Acquire) > other.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::Beat;

    #[test]
    fn a_later_stamp_is_newer_and_younger() {
        let a = Beat::default();
        let b = Beat::default();
        // Wait (bounded) for the millisecond clock to move past `a`'s stamp.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while a.age().is_zero() && std::time::Instant::now() < deadline {
            std::hint::spin_loop();
        }
        b.beat();
        assert!(b.newer_than(&a));
        assert!(!a.newer_than(&b));
        assert!(a.age() >= b.age());
    }
}
