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

/// What a request does, in the verbs a Kubernetes SubjectAccessReview uses (the kubelet maps
/// its API the same way): `get` one pod's logs, `list` sources or the ranking, `watch` a
/// follow, `create` pushed records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// A range read, a status or metrics page, a probe.
    Get,
    /// `/v1/sources`, `/v1/top`.
    List,
    /// `/v1/logs?follow=true`.
    Watch,
    /// `POST /v1/ingest`.
    Create,
}

impl Verb {
    /// The SubjectAccessReview name.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
        }
    }
}

/// What the authorizer sees of a request: who is calling (the peer and the credential, what
/// a TokenReview needs) and what they ask for (method, path, verb, right and namespace, what
/// a SubjectAccessReview needs).
pub struct RequestMeta<'a> {
    /// The connection's peer.
    pub peer: SocketAddr,
    /// The `Authorization` header, if any (raw bytes; it may not be UTF-8).
    pub authorization: Option<&'a [u8]>,
    /// The request's method.
    pub method: &'a Method,
    /// The request's path (no query).
    pub path: &'a str,
    /// What the request does.
    pub verb: Verb,
    /// What the endpoint requires (from [`access_for`]).
    pub access: Access,
    /// The namespace the request names (`namespace=` of `/v1/logs` and `/v1/ingest`;
    /// `default` for `/v1/logs` without it). None for node-wide lists and pages, whose
    /// answers are filtered by [`Decision::namespaces`] instead.
    pub namespace: Option<String>,
}

impl<'a> RequestMeta<'a> {
    /// The attributes of a request to `path` with `query` (undecoded).
    pub fn new(
        peer: SocketAddr,
        authorization: Option<&'a [u8]>,
        method: &'a Method,
        path: &'a str,
        query: &str,
    ) -> RequestMeta<'a> {
        let param = |name: &str| {
            query
                .split('&')
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| crate::logs::request::percent_decode(v))
        };
        let (verb, namespace) = match path {
            "/v1/logs" => {
                let follow = param("follow").is_some_and(|v| v == "true" || v == "1");
                let ns = param("namespace").filter(|n| !n.is_empty());
                (
                    if follow { Verb::Watch } else { Verb::Get },
                    Some(ns.unwrap_or_else(|| "default".into())),
                )
            }
            "/v1/ingest" => (Verb::Create, param("namespace").filter(|n| !n.is_empty())),
            "/v1/sources" | "/v1/top" => (Verb::List, None),
            _ => (Verb::Get, None),
        };
        RequestMeta {
            peer,
            authorization,
            method,
            path,
            verb,
            access: access_for(method, path),
            namespace,
        }
    }
}

/// Why a caller could not be identified (a 401); the text names no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthenticated(pub String);

/// What [`Authorizer::decide`] returns: a future, so that an authorizer may wait.
pub type DecideFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Decision, Unauthenticated>> + Send + 'a>,
>;

/// Decides who a caller is and what they may do.
///
/// Called once per request that is not open ([`Access::Open`]), before dispatch, with the
/// request's attributes. The static tokens file answers at once; a Kubernetes authorizer
/// (a TokenReview of the bearer token, then a SubjectAccessReview of `verb` on the pods' `log`
/// subresource in `namespace`: the kubelet's model) would await the API server here and cache
/// its answers as the kubelet does. The future is polled on the async workers: it must wait
/// asynchronously (or hand blocking work to `spawn_blocking`), never block the thread.
pub trait Authorizer: Send + Sync {
    /// The caller's identity, rights and namespaces, or why they are not known.
    fn decide<'a>(&'a self, req: &'a RequestMeta<'a>) -> DecideFuture<'a>;
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
pub async fn authorize(
    authorizer: &dyn Authorizer,
    stats: &AuthStats,
    meta: &RequestMeta<'_>,
) -> Result<Option<Decision>, Refusal> {
    let path = meta.path;
    if meta.access == Access::Open {
        stats.open.fetch_add(1, Ordering::Relaxed);
        return Ok(None);
    }
    let decision = match authorizer.decide(meta).await {
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
    if let Access::Need(right) = meta.access {
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
        fn decide<'a>(&'a self, _: &'a RequestMeta<'a>) -> DecideFuture<'a> {
            Box::pin(std::future::ready(self.0.clone()))
        }
    }

    /// What the recording authorizer saw: "METHOD path", verb, access, namespace.
    type Seen = (String, Verb, Access, Option<String>);

    /// Records what it was asked, and answers only after an await (as a network call would).
    #[derive(Default)]
    struct Recording(Mutex<Vec<Seen>>);
    impl Authorizer for Recording {
        fn decide<'a>(&'a self, req: &'a RequestMeta<'a>) -> DecideFuture<'a> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.0.lock().unwrap().push((
                    format!("{} {}", req.method, req.path),
                    req.verb,
                    req.access,
                    req.namespace.clone(),
                ));
                Ok(Decision::anonymous())
            })
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn ask(
        a: &dyn Authorizer,
        stats: &AuthStats,
        method: &Method,
        path: &str,
        query: &str,
    ) -> Result<Option<Decision>, Refusal> {
        let meta = RequestMeta::new("10.0.0.9:4000".parse().unwrap(), None, method, path, query);
        run(authorize(a, stats, &meta))
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
        assert!(ask(&reader, &stats, &Method::GET, "/v1/logs", "")
            .unwrap()
            .is_some());
        let e = ask(&reader, &stats, &Method::GET, "/metrics", "").unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("metrics right"), "{}", e.message);
        let e = ask(&reader, &stats, &Method::POST, "/v1/ingest", "").unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let nobody = Fixed(Err(Unauthenticated("no token".into())));
        assert_eq!(ask(&nobody, &stats, &Method::GET, "/healthz", ""), Ok(None));
        let e = ask(&nobody, &stats, &Method::GET, "/nowhere", "").unwrap_err();
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
    fn the_authorizer_sees_verb_right_and_namespace_and_may_await() {
        let stats = AuthStats::default();
        let rec = Recording::default();
        for (method, path, query) in [
            (
                Method::GET,
                "/v1/logs",
                "namespace=shop&pod=web-0&follow=true",
            ),
            (Method::GET, "/v1/logs", "pod=web-0"),
            (Method::GET, "/v1/logs", "namespace=a%2Fb&pod=x"),
            (Method::GET, "/v1/sources", ""),
            (Method::GET, "/v1/top", "by=fds"),
            (
                Method::POST,
                "/v1/ingest",
                "namespace=shop&pod=p&container=c",
            ),
            (Method::GET, "/metrics", ""),
            (Method::GET, "/healthz", ""),
        ] {
            assert!(ask(&rec, &stats, &method, path, query).is_ok());
        }
        let seen = rec.0.into_inner().unwrap();
        let want = [
            (
                "GET /v1/logs",
                Verb::Watch,
                Access::Need(Right::Read),
                Some("shop"),
            ),
            (
                "GET /v1/logs",
                Verb::Get,
                Access::Need(Right::Read),
                Some("default"),
            ),
            (
                "GET /v1/logs",
                Verb::Get,
                Access::Need(Right::Read),
                Some("a/b"),
            ),
            (
                "GET /v1/sources",
                Verb::List,
                Access::Need(Right::Read),
                None,
            ),
            ("GET /v1/top", Verb::List, Access::Need(Right::Read), None),
            (
                "POST /v1/ingest",
                Verb::Create,
                Access::Need(Right::Ingest),
                Some("shop"),
            ),
            (
                "GET /metrics",
                Verb::Get,
                Access::Need(Right::Metrics),
                None,
            ),
        ];
        assert_eq!(
            seen.len(),
            want.len(),
            "the open /healthz is not asked about: {seen:?}"
        );
        for (got, (what, verb, access, ns)) in seen.iter().zip(want) {
            assert_eq!(
                (got.0.as_str(), got.1, got.2, got.3.as_deref()),
                (what, verb, access, ns)
            );
        }
        assert_eq!(Verb::Watch.name(), "watch");
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
