//! Counters of the ingest queue and writer (`runnel_ingest_*`), shared by every input.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Queue depth and writer progress; shared by the inputs, the writer thread and `/metrics`.
#[derive(Default, Debug)]
pub struct QueueStats {
    /// Records queued for the writer.
    pub queued_records: AtomicI64,
    /// Memory held by the batches queued for the writer (messages and record descriptors).
    pub queued_bytes: AtomicI64,
    /// Syncs (group commits) done by the writer.
    pub syncs: AtomicU64,
    /// Index write errors (retried).
    pub write_errors: AtomicU64,
    /// Records of resent chunks that were already stored and were not appended again.
    pub duplicates_skipped: AtomicU64,
    /// Records the index refused for good (too large, unknown source): skipped, counted.
    pub refused_records: AtomicU64,
    /// Stamped when the writer completed a sync or found its queue empty (for `/healthz`).
    pub writer_beat: crate::progress::Beat,
}

impl QueueStats {
    /// Count records entering the queue in a batch holding `held` bytes.
    pub fn enqueued(&self, records: usize, held: usize) {
        self.queued_records
            .fetch_add(records as i64, Ordering::Relaxed);
        self.queued_bytes.fetch_add(held as i64, Ordering::Relaxed);
    }

    /// Append the Prometheus text.
    pub fn render(&self, out: &mut String) {
        for (name, help, v) in [
            (
                "runnel_ingest_queue_records",
                "Records queued between the inputs and the index writer.",
                self.queued_records.load(Ordering::Relaxed),
            ),
            (
                "runnel_ingest_queue_bytes",
                "Memory held by batches queued between the inputs and the index writer.",
                self.queued_bytes.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        for (name, help, v) in [
            (
                "runnel_ingest_syncs_total",
                "Group commits (index syncs) by the ingest writer.",
                &self.syncs,
            ),
            (
                "runnel_ingest_write_errors_total",
                "Index append/sync errors (the batch is retried).",
                &self.write_errors,
            ),
            (
                "runnel_ingest_refused_records_total",
                "Records the index refused for good (too large, unknown source), skipped instead of retried forever.",
                &self.refused_records,
            ),
            (
                "runnel_ingest_duplicate_records_total",
                "Records of resent sidecar chunks already stored, acknowledged and not stored again.",
                &self.duplicates_skipped,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}
