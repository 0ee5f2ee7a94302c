//! The sink's counters, gauges and bulk latency histogram, rendered as Prometheus text 0.0.4
//! (`runnel_sink_es_*`). Lock-free atomics on the hot path; the per-source lag table is
//! refreshed by the pipeline.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Upper bounds (seconds) of the bulk latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Per-source shipping progress, for the lag gauges.
#[derive(Debug, Clone, Default)]
pub struct SourceLag {
    /// Records in the index not yet acknowledged (next_seq − cursor).
    pub records: u64,
    /// Newest stored record time minus the time of the oldest record not yet acknowledged (s).
    pub seconds: f64,
}

/// Counters shared between the pipeline and `render_metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Documents put into bulk requests (each attempt counts).
    pub docs_sent: AtomicU64,
    /// Documents the server acknowledged (2xx or 409).
    pub docs_acked: AtomicU64,
    /// Documents sent again after a retryable failure.
    pub docs_retried: AtomicU64,
    /// Documents written to the dead-letter file (counted once durable).
    pub docs_dead_lettered: AtomicU64,
    /// Failed attempts to write the dead-letter file (each is retried; nothing is dropped).
    pub dead_letter_errors: AtomicU64,
    /// Records lost to retention before they were shipped (ReadBatch.gap).
    pub records_lost: AtomicU64,
    /// Uncompressed NDJSON bytes sent.
    pub bytes_raw: AtomicU64,
    /// Bytes on the wire (after gzip).
    pub bytes_compressed: AtomicU64,
    /// Bulk requests by result.
    pub requests_ok: AtomicU64,
    /// Bulk requests that failed as a whole.
    pub requests_failed: AtomicU64,
    /// Batches being sent now.
    pub in_flight_batches: AtomicU64,
    /// Encoded document bytes read from the index and not yet acknowledged.
    pub in_flight_bytes: AtomicU64,
    /// Highest `in_flight_bytes` seen.
    pub in_flight_bytes_max: AtomicU64,
    /// Bulk HTTP requests outstanding now (at most the concurrency limit).
    pub requests_in_flight: AtomicU64,
    /// Highest `requests_in_flight` seen.
    pub requests_in_flight_max: AtomicU64,
    /// The adaptive concurrency limit now.
    pub concurrency_limit: AtomicU64,
    /// Sending tasks that panicked (their documents were sent again).
    pub ship_panics: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    /// Source key → lag.
    pub lag: Mutex<BTreeMap<String, SourceLag>>,
}

impl Metrics {
    /// Record one bulk request's latency.
    pub fn observe_latency(&self, secs: f64) {
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.latency_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add((secs * 1e6) as u64, Relaxed);
    }

    /// Add to the in-flight byte gauge and track the high-water mark.
    pub fn add_in_flight(&self, n: u64) {
        let now = self.in_flight_bytes.fetch_add(n, Relaxed) + n;
        self.in_flight_bytes_max.fetch_max(now, Relaxed);
    }

    /// One more bulk request outstanding; tracks the high-water mark.
    pub fn requests_in_flight_add(&self) {
        let now = self.requests_in_flight.fetch_add(1, Relaxed) + 1;
        self.requests_in_flight_max.fetch_max(now, Relaxed);
    }

    /// Subtract from the in-flight byte gauge.
    pub fn sub_in_flight(&self, n: u64) {
        self.in_flight_bytes.fetch_sub(n, Relaxed);
    }

    /// Append the Prometheus text.
    pub fn render(&self, out: &mut String) {
        let counters: [(&str, &str, &AtomicU64); 11] = [
            (
                "runnel_sink_es_documents_sent_total",
                "Documents put into bulk requests, each attempt counted.",
                &self.docs_sent,
            ),
            (
                "runnel_sink_es_documents_acked_total",
                "Documents acknowledged (2xx, or 409 on create).",
                &self.docs_acked,
            ),
            (
                "runnel_sink_es_documents_retried_total",
                "Documents sent again after a retryable failure.",
                &self.docs_retried,
            ),
            (
                "runnel_sink_es_documents_dead_lettered_total",
                "Documents rejected for good and written to the dead-letter file.",
                &self.docs_dead_lettered,
            ),
            (
                "runnel_sink_es_dead_letter_write_errors_total",
                "Failed writes of the dead-letter file (a full disk); each is retried and the batch held until it succeeds.",
                &self.dead_letter_errors,
            ),
            (
                "runnel_sink_es_records_lost_total",
                "Records deleted by retention before they were shipped.",
                &self.records_lost,
            ),
            (
                "runnel_sink_es_bytes_raw_total",
                "Uncompressed NDJSON bytes sent.",
                &self.bytes_raw,
            ),
            (
                "runnel_sink_es_bytes_compressed_total",
                "Bytes sent on the wire after compression.",
                &self.bytes_compressed,
            ),
            (
                "runnel_sink_es_requests_ok_total",
                "Bulk requests answered with a usable response.",
                &self.requests_ok,
            ),
            (
                "runnel_sink_es_requests_failed_total",
                "Bulk requests that failed as a whole (status, timeout, connection, bad body).",
                &self.requests_failed,
            ),
            (
                "runnel_sink_es_ship_panics_total",
                "Bulk sending tasks that panicked; their documents were sent again.",
                &self.ship_panics,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        let gauges: [(&str, &str, &AtomicU64); 5] = [
            (
                "runnel_sink_es_concurrency_limit",
                "Bulk requests allowed in flight now (adaptive, retries included).",
                &self.concurrency_limit,
            ),
            (
                "runnel_sink_es_requests_in_flight",
                "Bulk HTTP requests outstanding now.",
                &self.requests_in_flight,
            ),
            (
                "runnel_sink_es_in_flight_batches",
                "Bulk batches being sent now.",
                &self.in_flight_batches,
            ),
            (
                "runnel_sink_es_in_flight_bytes",
                "Encoded bytes read from the index and not yet acknowledged.",
                &self.in_flight_bytes,
            ),
            (
                "runnel_sink_es_in_flight_bytes_max",
                "Highest in-flight bytes since start (bounded by max_in_flight_bytes).",
                &self.in_flight_bytes_max,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Relaxed)
            );
        }
        let name = "runnel_sink_es_bulk_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Bulk request latency.\n# TYPE {name} histogram"
        );
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.latency_buckets[i].load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
        if let Ok(lag) = self.lag.lock() {
            let n = "runnel_sink_es_cursor_lag_records";
            let _ = writeln!(out, "# HELP {n} Records in the index not yet acknowledged, per source.\n# TYPE {n} gauge");
            for (k, l) in lag.iter() {
                let _ = writeln!(out, "{n}{{source=\"{}\"}} {}", escape_label(k), l.records);
            }
            let n = "runnel_sink_es_cursor_lag_seconds";
            let _ = writeln!(out, "# HELP {n} Newest stored record time minus the time of the oldest record not yet acknowledged, per source.\n# TYPE {n} gauge");
            for (k, l) in lag.iter() {
                let _ = writeln!(out, "{n}{{source=\"{}\"}} {}", escape_label(k), l.seconds);
            }
        }
    }
}

/// `runnel_sink_es_up`: 1 while the sink runs, 0 when it could not start.
pub fn render_up(out: &mut String, up: bool) {
    let n = "runnel_sink_es_up";
    let _ = writeln!(
        out,
        "# HELP {n} Whether the Elasticsearch sink is running (0: it failed to start, see /v1/status).\n# TYPE {n} gauge\n{n} {}",
        u8::from(up)
    );
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
