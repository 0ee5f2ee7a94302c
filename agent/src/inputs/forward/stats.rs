//! Counters of the forward receiver (`runnel_forward_*`) and its rate-limited warnings.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Warnings about refused input logged at most this often (each is counted regardless).
const WARN_EVERY: Duration = Duration::from_secs(1);

/// The receiver's counters, shared by its connections and `/metrics`.
#[derive(Default)]
pub struct ForwardStats {
    /// Connections open now.
    pub connections: AtomicI64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Requests (frames with events) stored.
    pub requests: AtomicU64,
    /// Records handed to the index.
    pub records: AtomicU64,
    /// Bytes of the frames stored (compressed as sent).
    pub bytes: AtomicU64,
    /// Acks sent (each after its records were durable).
    pub acks: AtomicU64,
    /// TCP (`nil`) heartbeats.
    pub heartbeats_tcp: AtomicU64,
    /// UDP heartbeats answered.
    pub heartbeats_udp: AtomicU64,
    /// Handshakes that passed.
    pub handshakes_ok: AtomicU64,
    /// Connections closed after `idle_timeout` without a byte.
    pub idle_closed: AtomicU64,
    /// Refused requests and connections by reason.
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    last_warn: Mutex<Option<Instant>>,
}

impl ForwardStats {
    /// Count a refusal and log it unless a warning was logged within the last second.
    pub fn reject(&self, reason: &'static str, peer: &str, detail: &dyn std::fmt::Display) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_insert(0) += 1;
        let mut last = self.last_warn.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                peer,
                reason,
                "forward: {detail}; the connection is closed (further refusals this second are only counted in runnel_forward_rejected_total)"
            );
        }
    }

    /// Refusals counted for `reason`.
    pub fn rejected(&self, reason: &str) -> u64 {
        self.rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(reason)
            .copied()
            .unwrap_or(0)
    }

    /// Append the Prometheus text.
    pub fn render(&self, out: &mut String) {
        let name = "runnel_forward_connections";
        let _ = writeln!(
            out,
            "# HELP {name} Forward connections open now.\n# TYPE {name} gauge\n{name} {}",
            self.connections.load(Ordering::Relaxed)
        );
        for (name, help, v) in [
            (
                "runnel_forward_connections_total",
                "Forward connections accepted.",
                &self.connections_total,
            ),
            (
                "runnel_forward_requests_total",
                "Forward requests with events handed to the index.",
                &self.requests,
            ),
            (
                "runnel_forward_records_total",
                "Forward records handed to the index.",
                &self.records,
            ),
            (
                "runnel_forward_bytes_total",
                "Bytes of forward requests handed to the index, as sent.",
                &self.bytes,
            ),
            (
                "runnel_forward_acks_total",
                "Acks sent, each once the chunk's records were durable.",
                &self.acks,
            ),
            (
                "runnel_forward_handshakes_total",
                "Shared-key handshakes that passed.",
                &self.handshakes_ok,
            ),
            (
                "runnel_forward_idle_closed_total",
                "Connections closed after inputs.forward.idle_timeout of silence.",
                &self.idle_closed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let name = "runnel_forward_heartbeats_total";
        let _ = writeln!(
            out,
            "# HELP {name} Heartbeats received.\n# TYPE {name} counter\n{name}{{transport=\"tcp\"}} {}\n{name}{{transport=\"udp\"}} {}",
            self.heartbeats_tcp.load(Ordering::Relaxed),
            self.heartbeats_udp.load(Ordering::Relaxed)
        );
        let name = "runnel_forward_rejected_total";
        let _ = writeln!(
            out,
            "# HELP {name} Forward requests or connections refused (the connection is closed), by reason.\n# TYPE {name} counter"
        );
        let rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        for reason in REASONS {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{reason}\"}} {}",
                rejected.get(reason).copied().unwrap_or(0)
            );
        }
    }
}

/// Every refusal reason, so each series exists from the start.
pub const REASONS: [&str; 14] = [
    "frame_too_large",
    "decompressed_too_large",
    "undecodable",
    "wrong_type",
    "bad_compression",
    "too_many_entries",
    "bad_source",
    "too_many_connections",
    "handshake_invalid",
    "auth_failed",
    "store_failed",
    "tls_failed",
    "io_error",
    "incomplete_request",
];
