//! The one authorization step of the HTTP API: for each request, before dispatch, decide who
//! is calling (a token's name, or an anonymous caller the policy admits), which rights they
//! hold and on which namespaces — and refuse with 401 (unknown caller) or 403 (known caller,
//! wrong right) before any handler runs. Handlers then filter what they list by the same
//! [`Decision`].
//!
//! The decision sits behind [`Authorizer`] so that a Kubernetes TokenReview /
//! SubjectAccessReview authorizer (the kubelet's model) can replace the static tokens file
//! when an API server is available.

use hyper::{Method, StatusCode};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a caller may do. `/healthz` and `/readyz` need none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Right {
    /// `/v1/logs`, `/v1/sources`, `/v1/top`, filtered to the caller's namespaces.
    Read,
    /// `POST /v1/ingest`: push records of the caller's namespaces.
    Ingest,
    /// `/metrics` and `/v1/status` (node-wide figures, no log content).
    Metrics,
}

impl Right {
    /// The name used in tokens files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Right::Read => "read",
            Right::Ingest => "ingest",
            Right::Metrics => "metrics",
        }
    }

    /// Parse a tokens-file name.
    pub fn parse(s: &str) -> Option<Right> {
        match s {
            "read" => Some(Right::Read),
            "ingest" => Some(Right::Ingest),
            "metrics" => Some(Right::Metrics),
            _ => None,
        }
    }

    /// Every right, for callers the anonymous policy admits.
    pub const ALL: [Right; 3] = [Right::Read, Right::Ingest, Right::Metrics];
}

/// The namespaces a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// Every namespace, and sources that have none (plain Docker containers).
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

impl Namespaces {
    /// Whether a source in namespace `ns` (None: not a pod) may be shown.
    pub fn allows(&self, ns: Option<&str>) -> bool {
        match (self, ns) {
            (Namespaces::All, _) => true,
            (Namespaces::Only(set), Some(ns)) => set.contains(ns),
            (Namespaces::Only(_), None) => false,
        }
    }

    /// True when nothing is filtered out.
    pub fn is_all(&self) -> bool {
        matches!(self, Namespaces::All)
    }

    /// A short list for messages.
    pub fn describe(&self) -> String {
        match self {
            Namespaces::All => "all namespaces".into(),
            Namespaces::Only(set) => {
                let v: Vec<&str> = set.iter().map(String::as_str).collect();
                format!("namespaces [{}]", v.join(", "))
            }
        }
    }
}

/// Who is calling and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// A token's name, or `anonymous`; for logs and messages, never a secret.
    pub who: String,
    /// True when no credential was presented and the anonymous policy admitted the caller.
    pub anonymous: bool,
    /// Rights held.
    pub rights: BTreeSet<Right>,
    /// Namespaces visible.
    pub namespaces: Namespaces,
}

impl Decision {
    /// Every right on every namespace (callers the anonymous policy admits).
    pub fn anonymous() -> Decision {
        Decision {
            who: "anonymous".into(),
            anonymous: true,
            rights: Right::ALL.into_iter().collect(),
            namespaces: Namespaces::All,
        }
    }
}

/// What the authorizer sees of a request.
pub struct RequestMeta<'a> {
    /// The connection's peer.
    pub peer: SocketAddr,
    /// The `Authorization` header, if any (raw bytes; it may not be UTF-8).
    pub authorization: Option<&'a [u8]>,
}

/// Why a caller could not be identified (a 401); the text names no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthenticated(pub String);

/// Decides who a caller is and what they may do.
pub trait Authorizer: Send + Sync {
    /// The caller's identity, rights and namespaces, or why they are not known.
    fn decide(&self, meta: &RequestMeta<'_>) -> Result<Decision, Unauthenticated>;
}

/// What an endpoint requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health probes).
    Open,
    /// A caller holding this right.
    Need(Right),
    /// Any identified caller (unknown paths: their 404 is not shown to strangers).
    Identified,
}

/// The right a method and path need. Kept in one table so a new endpoint cannot be added
/// without saying who may call it.
pub fn access_for(method: &Method, path: &str) -> Access {
    match (path, method) {
        ("/healthz" | "/readyz", _) => Access::Open,
        ("/v1/logs" | "/v1/sources" | "/v1/top", _) => Access::Need(Right::Read),
        ("/v1/ingest", _) => Access::Need(Right::Ingest),
        ("/metrics" | "/v1/status", _) => Access::Need(Right::Metrics),
        _ => Access::Identified,
    }
}

/// A refusal, ready to be sent as a JSON Status error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401 or 403.
    pub status: StatusCode,
    /// For the caller.
    pub message: String,
}

/// Counts of decisions by result, and a rate-limited log of failures.
#[derive(Default)]
pub struct AuthStats {
    open: AtomicU64,
    anonymous: AtomicU64,
    token: AtomicU64,
    unauthenticated: AtomicU64,
    forbidden: AtomicU64,
    log: Mutex<FailureLog>,
}

#[derive(Default)]
struct FailureLog {
    last: Option<Instant>,
    suppressed: u64,
}

/// At most one failure line per this interval; the rest are counted into the next line.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl AuthStats {
    fn failed(&self, peer: SocketAddr, path: &str, status: StatusCode, why: &str) {
        let Ok(mut log) = self.log.lock() else { return };
        let now = Instant::now();
        if log
            .last
            .is_some_and(|t| now.duration_since(t) < FAILURE_LOG_INTERVAL)
        {
            log.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut log.suppressed);
        log.last = Some(now);
        tracing::warn!(
            peer = %peer.ip(),
            path = %truncate(path, 128),
            status = status.as_u16(),
            reason = %why,
            suppressed_since_last = suppressed,
            "http: request refused"
        );
    }

    /// Append `runnel_http_auth_total` to a Prometheus page.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP runnel_http_auth_total Access decisions, by result (open: health probes; \
             anonymous, token: allowed; unauthenticated: 401; forbidden: 403).\n\
             # TYPE runnel_http_auth_total counter\n",
        );
        for (result, n) in [
            ("open", &self.open),
            ("anonymous", &self.anonymous),
            ("token", &self.token),
            ("unauthenticated", &self.unauthenticated),
            ("forbidden", &self.forbidden),
        ] {
            let _ = writeln!(
                out,
                "runnel_http_auth_total{{result=\"{result}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The step the router runs once per request, before dispatch: `Ok(None)` for open endpoints,
/// `Ok(Some(decision))` for an allowed caller, `Err` for a 401 or 403.
pub fn authorize(
    authorizer: &dyn Authorizer,
    stats: &AuthStats,
    meta: &RequestMeta<'_>,
    method: &Method,
    path: &str,
) -> Result<Option<Decision>, Refusal> {
    let need = access_for(method, path);
    if need == Access::Open {
        stats.open.fetch_add(1, Ordering::Relaxed);
        return Ok(None);
    }
    let decision = match authorizer.decide(meta) {
        Ok(d) => d,
        Err(Unauthenticated(why)) => {
            stats.unauthenticated.fetch_add(1, Ordering::Relaxed);
            stats.failed(meta.peer, path, StatusCode::UNAUTHORIZED, &why);
            return Err(Refusal {
                status: StatusCode::UNAUTHORIZED,
                message: format!("{why}; send Authorization: Bearer <token> (runnel logs --token-file FILE or RUNNEL_TOKEN)"),
            });
        }
    };
    if let Access::Need(right) = need {
        if !decision.rights.contains(&right) {
            stats.forbidden.fetch_add(1, Ordering::Relaxed);
            let why = format!("{:?} lacks the {} right", decision.who, right.name());
            stats.failed(meta.peer, path, StatusCode::FORBIDDEN, &why);
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "{} needs the {} right, which {:?} does not hold",
                    path,
                    right.name(),
                    decision.who
                ),
            });
        }
    }
    if decision.anonymous {
        stats.anonymous.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.token.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Some(decision))
}

/// A 403 for a namespace outside the caller's scope (counted like the other refusals).
pub fn outside_scope(
    stats: &AuthStats,
    peer: SocketAddr,
    path: &str,
    decision: &Decision,
    namespace: &str,
) -> Refusal {
    stats.forbidden.fetch_add(1, Ordering::Relaxed);
    stats.failed(
        peer,
        path,
        StatusCode::FORBIDDEN,
        &format!(
            "{:?} is not scoped to the namespace asked for",
            decision.who
        ),
    );
    Refusal {
        status: StatusCode::FORBIDDEN,
        message: format!(
            "{:?} is scoped to {}, not namespace {:?}",
            decision.who,
            decision.namespaces.describe(),
            truncate(namespace, 253)
        ),
    }
}

/// True for addresses of this host (IPv4 127/8, `::1`, and IPv4-mapped loopback).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Result<Decision, Unauthenticated>);
    impl Authorizer for Fixed {
        fn decide(&self, _: &RequestMeta<'_>) -> Result<Decision, Unauthenticated> {
            self.0.clone()
        }
    }

    fn meta() -> RequestMeta<'static> {
        RequestMeta {
            peer: "10.0.0.9:4000".parse().unwrap(),
            authorization: None,
        }
    }

    #[test]
    fn rights_are_checked_per_endpoint_and_health_stays_open() {
        let stats = AuthStats::default();
        let reader = Fixed(Ok(Decision {
            who: "shop-team".into(),
            anonymous: false,
            rights: [Right::Read].into_iter().collect(),
            namespaces: Namespaces::Only(["shop".to_string()].into_iter().collect()),
        }));
        let m = meta();
        assert!(authorize(&reader, &stats, &m, &Method::GET, "/v1/logs")
            .unwrap()
            .is_some());
        let e = authorize(&reader, &stats, &m, &Method::GET, "/metrics").unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("metrics right"), "{}", e.message);
        let e = authorize(&reader, &stats, &m, &Method::POST, "/v1/ingest").unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let nobody = Fixed(Err(Unauthenticated("no token".into())));
        assert_eq!(
            authorize(&nobody, &stats, &m, &Method::GET, "/healthz"),
            Ok(None)
        );
        let e = authorize(&nobody, &stats, &m, &Method::GET, "/nowhere").unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        let mut page = String::new();
        stats.render(&mut page);
        assert!(
            page.contains("runnel_http_auth_total{result=\"token\"} 1\n"),
            "{page}"
        );
        assert!(
            page.contains("runnel_http_auth_total{result=\"forbidden\"} 2\n"),
            "{page}"
        );
        assert!(page.contains("runnel_http_auth_total{result=\"unauthenticated\"} 1\n"));
        assert!(page.contains("runnel_http_auth_total{result=\"open\"} 1\n"));
    }

    #[test]
    fn scoped_namespaces_hide_other_namespaces_and_plain_containers() {
        let ns = Namespaces::Only(["shop".to_string()].into_iter().collect());
        assert!(ns.allows(Some("shop")));
        assert!(!ns.allows(Some("kube-system")));
        assert!(!ns.allows(None));
        assert!(Namespaces::All.allows(None));
    }

    #[test]
    fn loopback_includes_mapped_v4() {
        assert!(is_loopback(&"127.0.0.5:1".parse().unwrap()));
        assert!(is_loopback(&"[::1]:1".parse().unwrap()));
        assert!(is_loopback(&"[::ffff:127.0.0.1]:1".parse().unwrap()));
        assert!(!is_loopback(&"10.1.2.3:1".parse().unwrap()));
        assert!(!is_loopback(&"[::ffff:10.0.0.1]:1".parse().unwrap()));
    }
}
