//! The server's caps: open connections, concurrent follows, and the time a client has to
//! send its request head; each refusal is counted so an operator sees abuse or a limit set
//! too low in `/metrics`.

use runnel_config::HttpLimits;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections over `max_connections` that may still be read for a health probe.
pub const PROBE_RESERVE: usize = 8;

/// Semaphores for connections and follows, and refusal counters.
pub struct Limits {
    /// The configured values.
    pub config: HttpLimits,
    connections: Arc<Semaphore>,
    follows: Arc<Semaphore>,
    probes: Arc<Semaphore>,
    /// Connections over the cap that were served from the probe reserve.
    pub probe_reserve_used: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub connections_refused: AtomicU64,
    /// Follows answered 429 because `max_follows` were running.
    pub follows_refused: AtomicU64,
    /// Connections closed because the request head (or the TLS handshake) was too slow.
    pub slow_clients_cut: AtomicU64,
    /// Connections that spoke plain HTTP to the TLS port.
    pub plain_http_refused: AtomicU64,
    /// TLS handshakes that failed (bad client certificate, protocol version, garbage).
    pub tls_handshake_failures: AtomicU64,
}

impl Limits {
    /// Limits from the `http.limits` section.
    pub fn new(config: &HttpLimits) -> Limits {
        Limits {
            config: config.clone(),
            connections: Arc::new(Semaphore::new(config.max_connections)),
            follows: Arc::new(Semaphore::new(config.max_follows)),
            probes: Arc::new(Semaphore::new(PROBE_RESERVE)),
            probe_reserve_used: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            follows_refused: AtomicU64::new(0),
            slow_clients_cut: AtomicU64::new(0),
            plain_http_refused: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
        }
    }

    /// A connection slot, held for the connection's life; None when all are taken.
    pub fn connection(&self) -> Option<OwnedSemaphorePermit> {
        let p = self.connections.clone().try_acquire_owned().ok();
        if p.is_none() {
            self.connections_refused.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    /// A slot of the probe reserve for a connection over the cap: it is answered only for
    /// `/healthz` and `/readyz`, with a short deadline, so that a client holding every
    /// connection cannot make the kubelet restart the agent. None when the reserve is taken
    /// too (the connection is then closed at once).
    pub fn probe_slot(&self) -> Option<OwnedSemaphorePermit> {
        let p = self.probes.clone().try_acquire_owned().ok();
        if p.is_some() {
            self.probe_reserve_used.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    /// A follow slot, held while the stream runs; None when all are taken.
    pub fn follow(&self) -> Option<OwnedSemaphorePermit> {
        let p = self.follows.clone().try_acquire_owned().ok();
        if p.is_none() {
            self.follows_refused.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    /// Append the gauges and counters to a Prometheus page.
    pub fn render(&self, out: &mut String) {
        let open = self.config.max_connections - self.connections.available_permits();
        let follows = self.config.max_follows - self.follows.available_permits();
        for (name, help, v) in [
            (
                "runnel_http_connections",
                "Open HTTP connections.",
                open as u64,
            ),
            (
                "runnel_http_follows",
                "Running follow=true streams.",
                follows as u64,
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            );
        }
        for (name, help, v) in [
            (
                "runnel_http_connections_refused_total",
                "Connections over http.limits.max_connections (closed at once, or answered for probes only from the reserve).",
                &self.connections_refused,
            ),
            (
                "runnel_http_probe_reserve_used_total",
                "Connections over http.limits.max_connections read from the probe reserve (only /healthz and /readyz are answered on them).",
                &self.probe_reserve_used,
            ),
            (
                "runnel_http_follows_refused_total",
                "Follow requests answered 429 because http.limits.max_follows were running.",
                &self.follows_refused,
            ),
            (
                "runnel_http_slow_clients_cut_total",
                "Connections closed because the request head or TLS handshake took longer than http.limits.header_timeout.",
                &self.slow_clients_cut,
            ),
            (
                "runnel_http_plain_refused_total",
                "Plain-HTTP connections to the TLS port, answered 400 and closed.",
                &self.plain_http_refused,
            ),
            (
                "runnel_http_tls_handshake_failures_total",
                "TLS handshakes that failed.",
                &self.tls_handshake_failures,
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            );
        }
    }
}
