//! Leak detection: how fast each container's descriptors, threads and sockets grow, per hour,
//! over `metrics.growth_window`. The rate is the least-squares slope of the samples in the
//! window, so one burst does not read as a leak the way first-to-last difference would; it is
//! reported once the samples span a quarter of the window. Memory per container is bounded:
//! at most [`MAX_SAMPLES`] samples, thinned evenly when full.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

/// Samples kept per container and figure.
pub const MAX_SAMPLES: usize = 128;

/// Growth rates per hour; `None` until the window has enough history.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Open descriptors per hour.
    pub fds: Option<f64>,
    /// Threads per hour.
    pub threads: Option<f64>,
    /// Sockets per hour.
    pub sockets: Option<f64>,
}

impl Rates {
    /// The largest of the three rates (what `by=growth` ranks on).
    pub fn max(&self) -> Option<f64> {
        [self.fds, self.threads, self.sockets]
            .into_iter()
            .flatten()
            .reduce(f64::max)
    }
}

#[derive(Default)]
struct Series {
    points: VecDeque<(f64, f64)>,
}

impl Series {
    fn push(&mut self, t: f64, v: f64, window: f64) {
        while self.points.front().is_some_and(|(t0, _)| t - t0 > window) {
            self.points.pop_front();
        }
        if self.points.len() >= MAX_SAMPLES {
            // Keep every other sample: the series stays evenly spread over the window.
            let kept: VecDeque<_> = self.points.iter().copied().step_by(2).collect();
            self.points = kept;
        }
        self.points.push_back((t, v));
    }

    /// Slope in units per second, once the samples span at least `min_span` seconds.
    fn slope(&self, min_span: f64) -> Option<f64> {
        let (first, last) = (self.points.front()?, self.points.back()?);
        if self.points.len() < 2 || last.0 - first.0 < min_span {
            return None;
        }
        let n = self.points.len() as f64;
        let t0 = first.0; // times relative to the first sample keep the sums small
        let (st, sv) = self
            .points
            .iter()
            .fold((0.0, 0.0), |(a, b), (t, v)| (a + (t - t0), b + v));
        let (mt, mv) = (st / n, sv / n);
        let (mut num, mut den) = (0.0, 0.0);
        for (t, v) in &self.points {
            let dt = t - t0 - mt;
            num += dt * (v - mv);
            den += dt * dt;
        }
        (den > 0.0).then(|| num / den)
    }
}

#[derive(Default)]
struct Tracked {
    fds: Series,
    threads: Series,
    sockets: Series,
}

/// Growth history of every container, keyed by its cgroup path.
pub struct Growth {
    window: Duration,
    containers: HashMap<String, Tracked>,
}

impl Growth {
    /// Track growth over `window`.
    pub fn new(window: Duration) -> Growth {
        Growth {
            window,
            containers: HashMap::new(),
        }
    }

    /// Record one pass's figures for `key` at `t` (seconds); a `None` figure (not read this
    /// pass) adds no sample. Returns the rates over the window.
    pub fn record(
        &mut self,
        key: &str,
        t: f64,
        fds: Option<u64>,
        threads: Option<u64>,
        sockets: Option<u64>,
    ) -> Rates {
        let window = self.window.as_secs_f64();
        let c = self.containers.entry(key.to_string()).or_default();
        let min_span = window / 4.0;
        let rate = |s: &mut Series, v: Option<u64>| {
            if let Some(v) = v {
                s.push(t, v as f64, window);
            }
            s.slope(min_span).map(|per_sec| per_sec * 3600.0)
        };
        Rates {
            fds: rate(&mut c.fds, fds),
            threads: rate(&mut c.threads, threads),
            sockets: rate(&mut c.sockets, sockets),
        }
    }

    /// Drop the history of containers that no longer exist.
    pub fn retain(&mut self, live: &HashSet<&str>) {
        self.containers.retain(|k, _| live.contains(k.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_leak_reads_as_its_hourly_rate() {
        let mut g = Growth::new(Duration::from_secs(3600));
        let mut last = Rates::default();
        for i in 0..=240u64 {
            // +1 fd every 15 s = 240 per hour; threads flat; sockets unknown.
            last = g.record("/c", i as f64 * 15.0, Some(100 + i), Some(8), None);
        }
        assert!((last.fds.unwrap() - 240.0).abs() < 1e-6, "{last:?}");
        assert_eq!(last.threads, Some(0.0));
        assert_eq!(last.sockets, None);
        assert_eq!(last.max(), last.fds);
    }

    #[test]
    fn no_rate_before_a_quarter_window_and_history_is_bounded() {
        let mut g = Growth::new(Duration::from_secs(400));
        assert_eq!(g.record("/c", 0.0, Some(1), None, None).fds, None);
        assert_eq!(g.record("/c", 50.0, Some(2), None, None).fds, None);
        assert!(g.record("/c", 100.0, Some(3), None, None).fds.is_some());
        for i in 0..10_000 {
            g.record("/c", 100.0 + i as f64 * 0.01, Some(3), None, None);
        }
        assert!(g.containers["/c"].fds.points.len() <= MAX_SAMPLES);
        g.retain(&HashSet::new());
        assert!(g.containers.is_empty());
    }

    #[test]
    fn a_single_burst_is_not_a_leak_rate_of_the_burst_size() {
        let mut g = Growth::new(Duration::from_secs(3600));
        let mut last = Rates::default();
        for i in 0..240u64 {
            let v = if i == 120 { 1000 } else { 50 };
            last = g.record("/c", i as f64 * 15.0, Some(v), None, None);
        }
        assert!(last.fds.unwrap().abs() < 50.0, "{last:?}");
    }
}
