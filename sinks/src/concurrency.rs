//! Adaptive request concurrency: how many bulk requests may be in flight at once, found by
//! additive increase and multiplicative decrease (AIMD), the scheme of TCP congestion control
//! and of Vector's adaptive request concurrency.
//!
//! Time is cut into windows of about one round trip. At the end of a window:
//! - a window that saw back-pressure (HTTP 429/502/503/504, item 429s, timeouts) or whose mean
//!   latency rose more than `latency_threshold` above the long-run mean multiplies the limit
//!   by `decrease_ratio` (at least one less, never below `min`);
//! - otherwise, if the limit was reached during the window (more concurrency was wanted), it
//!   grows by one, never above `max`;
//! - the long-run mean (an exponentially weighted moving average) learns the window's mean
//!   latency, except from windows with back-pressure, whose latency says nothing about the
//!   cluster's normal pace.
//!
//! A batch holds its slot while it waits for and sends its retries (Vector's issue #25212:
//! retries outside the limit let memory grow without bound), so requests in flight never exceed
//! the limit. Memory is bounded apart from this by `max_in_flight_bytes`.

use runnel_config::Concurrency;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one bulk request came back with, as far as the controller cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A usable answer: its latency is a sample.
    Ok,
    /// The cluster asked us to slow down (429, 502–504, item 429s) or did not answer in time.
    BackPressure,
    /// Anything else (a bad body, a refused credential): neither a sample nor a signal.
    Other,
}

/// Weight of a new window's mean in the long-run mean latency.
const EWMA_WEIGHT: f64 = 0.25;
/// Shortest window, so that sub-millisecond local answers still average a few samples.
const MIN_WINDOW: Duration = Duration::from_millis(20);

#[derive(Debug)]
struct State {
    limit: usize,
    /// Long-run mean latency (s) of windows without back-pressure.
    past_rtt: Option<f64>,
    window_start: Instant,
    window_sum: f64,
    window_n: u32,
    back_pressure: bool,
    /// The pipeline wanted to send while all `limit` slots were taken.
    saturated: bool,
}

/// The limit and how it moves; shared by the pipeline (asks the limit, reports saturation)
/// and the sending tasks (report outcomes).
#[derive(Debug)]
pub struct Controller {
    cfg: Concurrency,
    state: Mutex<State>,
}

impl Controller {
    /// A controller for `cfg`; a fixed setting (`adaptive: false`) always answers `max`.
    /// Starts at `min`: a cold agent first learns the cluster's pace.
    pub fn new(cfg: &Concurrency) -> Controller {
        let mut cfg = cfg.clone();
        cfg.max = cfg.max.max(1);
        cfg.min = cfg.min.clamp(1, cfg.max);
        if !(cfg.decrease_ratio > 0.0 && cfg.decrease_ratio < 1.0) {
            cfg.decrease_ratio = 0.9;
        }
        let limit = if cfg.adaptive { cfg.min } else { cfg.max };
        Controller {
            state: Mutex::new(State {
                limit,
                past_rtt: None,
                window_start: Instant::now(),
                window_sum: 0.0,
                window_n: 0,
                back_pressure: false,
                saturated: false,
            }),
            cfg,
        }
    }

    /// Requests that may be in flight now.
    pub fn limit(&self) -> usize {
        self.state.lock().map_or(self.cfg.min, |s| s.limit)
    }

    /// The pipeline had a batch to send but all slots were taken: the limit is what holds
    /// shipping back, so a calm window may raise it.
    pub fn note_saturated(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.saturated = true;
        }
    }

    /// One request ended after `rtt` with `outcome`. Returns the new limit when this closed a
    /// window and the limit changed (to wake the pipeline or log it).
    pub fn observe(&self, rtt: Duration, outcome: Outcome) -> Option<usize> {
        self.observe_at(Instant::now(), rtt, outcome)
    }

    /// [`Controller::observe`] with the clock given (tests drive windows without waiting).
    fn observe_at(&self, now: Instant, rtt: Duration, outcome: Outcome) -> Option<usize> {
        if !self.cfg.adaptive {
            return None;
        }
        let mut s = self.state.lock().ok()?;
        match outcome {
            Outcome::Ok => {
                s.window_sum += rtt.as_secs_f64();
                s.window_n += 1;
            }
            Outcome::BackPressure => s.back_pressure = true,
            Outcome::Other => {}
        }
        let window = s
            .past_rtt
            .map_or(MIN_WINDOW, Duration::from_secs_f64)
            .max(MIN_WINDOW);
        if now.saturating_duration_since(s.window_start) < window && !s.back_pressure {
            return None;
        }
        let before = s.limit;
        let mean = (s.window_n > 0).then(|| s.window_sum / f64::from(s.window_n));
        let rose = matches!((mean, s.past_rtt), (Some(m), Some(p)) if m > p * (1.0 + self.cfg.latency_threshold));
        if s.back_pressure || rose {
            let cut = (s.limit as f64 * self.cfg.decrease_ratio) as usize;
            s.limit = cut.min(s.limit.saturating_sub(1)).max(self.cfg.min);
        } else if s.saturated && s.limit < self.cfg.max {
            s.limit += 1;
        }
        if let (Some(m), false) = (mean, s.back_pressure) {
            s.past_rtt = Some(s.past_rtt.map_or(m, |p| p + EWMA_WEIGHT * (m - p)));
        }
        s.window_start = now;
        s.window_sum = 0.0;
        s.window_n = 0;
        s.back_pressure = false;
        s.saturated = false;
        (s.limit != before).then_some(s.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(min: usize, max: usize) -> Concurrency {
        Concurrency {
            adaptive: true,
            min,
            max,
            ..Concurrency::default()
        }
    }

    /// Feed one window of answers taking `rtt` each, saturated or not, on a clock that the
    /// test moves: the window closes with the answer that arrives a round trip after it began.
    fn window(
        c: &Controller,
        clock: &mut Instant,
        rtt: Duration,
        outcome: Outcome,
        saturated: bool,
    ) -> usize {
        if saturated {
            c.note_saturated();
        }
        let len = MIN_WINDOW.max(rtt);
        let mut t = Duration::ZERO;
        while t < len {
            t += rtt.max(Duration::from_millis(1));
            c.observe_at(*clock + t, rtt, outcome);
        }
        *clock += t;
        c.limit()
    }

    #[test]
    fn grows_by_one_per_calm_saturated_window_up_to_max() {
        let c = Controller::new(&cfg(1, 4));
        let mut clock = Instant::now();
        assert_eq!(c.limit(), 1, "starts at min");
        let ms = Duration::from_millis(1);
        let mut seen = vec![];
        for _ in 0..8 {
            seen.push(window(&c, &mut clock, ms, Outcome::Ok, true));
        }
        assert_eq!(*seen.last().unwrap(), 4, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[1] <= w[0] + 1), "{seen:?}");
    }

    #[test]
    fn does_not_grow_when_the_limit_is_not_what_holds_shipping_back() {
        let c = Controller::new(&cfg(1, 8));
        let mut clock = Instant::now();
        for _ in 0..4 {
            window(&c, &mut clock, Duration::from_millis(1), Outcome::Ok, false);
        }
        assert_eq!(c.limit(), 1);
    }

    #[test]
    fn back_pressure_cuts_at_once_and_never_below_min() {
        let c = Controller::new(&cfg(2, 10));
        let mut clock = Instant::now();
        for _ in 0..12 {
            window(&c, &mut clock, Duration::from_millis(1), Outcome::Ok, true);
        }
        assert_eq!(c.limit(), 10);
        assert_eq!(
            c.observe_at(clock, Duration::from_millis(1), Outcome::BackPressure),
            Some(9)
        );
        for _ in 0..40 {
            c.observe_at(clock, Duration::from_millis(1), Outcome::BackPressure);
        }
        assert_eq!(c.limit(), 2, "floor is min");
    }

    #[test]
    fn a_latency_rise_shrinks_the_limit() {
        let c = Controller::new(&cfg(1, 10));
        let mut clock = Instant::now();
        for _ in 0..6 {
            window(&c, &mut clock, Duration::from_millis(2), Outcome::Ok, true);
        }
        let before = c.limit();
        assert!(before >= 5, "{before}");
        window(&c, &mut clock, Duration::from_millis(30), Outcome::Ok, true);
        assert!(c.limit() < before, "{} after {before}", c.limit());
    }

    #[test]
    fn a_fixed_setting_never_moves() {
        let c = Controller::new(&Concurrency {
            adaptive: false,
            min: 1,
            max: 3,
            ..Concurrency::default()
        });
        assert_eq!(c.limit(), 3);
        assert_eq!(c.observe(Duration::ZERO, Outcome::BackPressure), None);
        assert_eq!(c.limit(), 3);
    }
}
