//! The end of the chaos phase, which every actor waits on between its moves: pauses end at once
//! when the run ends, and conditions are waited for with deadlines, never by sleeping and
//! hoping.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A flag that wakes every waiter when it is raised.
#[derive(Debug, Default)]
pub struct Stop {
    raised: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    /// Raise the flag.
    pub fn raise(&self) {
        let mut r = self.raised.lock().unwrap_or_else(|e| e.into_inner());
        *r = true;
        self.cv.notify_all();
    }

    /// Whether the flag is up.
    pub fn is_raised(&self) -> bool {
        *self.raised.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pause for `d` or until the flag is raised; true if it was raised.
    pub fn pause(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut r = self.raised.lock().unwrap_or_else(|e| e.into_inner());
        while !*r {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            r = self
                .cv
                .wait_timeout(r, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Poll `f` every 50 ms until it returns true or `timeout` passes; true if it did.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
