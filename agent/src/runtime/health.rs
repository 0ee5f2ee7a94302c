//! `/healthz` means progress. The agent is unhealthy (503, with the reasons) when:
//!
//! - the file input has bytes waiting — a file under a log root was created or written after
//!   the tailer last moved — and has not moved for `health.stall_timeout`: it is stuck in a
//!   read, or held back by a queue that does not drain;
//! - the index writer has records waiting (from any input: files, forward, HTTP ingest) and
//!   has not completed a sync for that long.
//!
//! An idle agent is healthy: the tailer finishes a pass and the writer finds its queue empty
//! several times a second, and each stamps its heartbeat. `/readyz` keeps its own meaning
//! (the index is open and the first discovery pass is done).

use crate::tail::Stats;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Why the agent is not healthy, one sentence per stuck part (empty: healthy).
pub fn problems(stats: &Stats, stall_timeout: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let input_age = stats.input_beat.age();
    if stats.input_pending.newer_than(&stats.input_beat) && input_age > stall_timeout {
        out.push(format!(
            "input stalled: log files changed but the tailer has made no progress for {}s \
             (health.stall_timeout {}s)",
            input_age.as_secs(),
            stall_timeout.as_secs()
        ));
    }
    let waiting = stats.queue.queued_records.load(Ordering::Relaxed);
    let writer_age = stats.queue.writer_beat.age();
    if waiting > 0 && writer_age > stall_timeout {
        out.push(format!(
            "writer stalled: {waiting} records wait and the index writer has completed no sync \
             for {}s (health.stall_timeout {}s)",
            writer_age.as_secs(),
            stall_timeout.as_secs()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::problems;
    use crate::tail::Stats;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[test]
    fn idle_is_healthy_and_waiting_work_without_progress_is_not() {
        let stats = Stats::default();
        assert!(problems(&stats, Duration::ZERO).is_empty(), "nothing waits");
        // Bytes appeared after the tailer's last progress, and records wait for the writer.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while stats.input_beat.age().is_zero() && std::time::Instant::now() < deadline {
            std::hint::spin_loop();
        }
        stats.input_pending.beat();
        stats.queue.queued_records.store(3, Ordering::Relaxed);
        let p = problems(&stats, Duration::ZERO);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("input stalled"), "{p:?}");
        assert!(p[1].starts_with("writer stalled: 3 records wait"), "{p:?}");
        // Within the timeout both are fine.
        assert!(problems(&stats, Duration::from_secs(3600)).is_empty());
        // Progress clears them.
        stats.input_beat.beat();
        stats.queue.writer_beat.beat();
        stats.queue.queued_records.store(0, Ordering::Relaxed);
        assert!(problems(&stats, Duration::ZERO).is_empty());
    }
}
