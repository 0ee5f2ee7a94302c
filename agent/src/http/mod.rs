//! The agent's HTTP API (hyper): `/v1/logs` range reads and live follow, `/v1/sources`,
//! `/v1/top`, `/v1/status`, `/metrics`, `/healthz`, `/readyz`.
//!
//! This module is the router: every request is authorized once ([`auth::authorize`]) before
//! it is dispatched, and the handlers filter what they show by the same decision. Handlers
//! never block the runtime: index reads and page rendering run on the blocking pool, and
//! followers are woken per source by the index's after-sync listener.

pub mod auth;
mod body;
mod follow;
mod ingest;
mod limits;
mod logs;
mod reply;
mod serve;
mod state;
pub mod tls;
pub mod tokens;
mod watch;

pub use body::ResponseBody;
pub use logs::decode as decode_query_value;
pub use serve::Server;
pub use state::{AppState, HealthFn, MetricsFn, StatusFn, TopFn};

use auth::{Decision, RequestMeta};
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use serve::{ConnInfo, Ctx};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

async fn route(ctx: &Arc<Ctx>, info: ConnInfo, req: Request<Incoming>) -> Response<ResponseBody> {
    let path = req.uri().path().to_string();
    if info.probe_only && path != "/healthz" && path != "/readyz" {
        let resp = reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "{} connections are open (http.limits.max_connections); only /healthz and \
                 /readyz are answered until one closes",
                ctx.limits.config.max_connections
            ),
            None,
        );
        ctx.state.count_request(&path, resp.status().as_u16());
        return resp;
    }
    let resp = match check(ctx, info, &req, &path).await {
        Ok(decision) => dispatch(ctx, info, req, &path, decision).await,
        Err(refused) => *refused,
    };
    ctx.state.count_request(&path, resp.status().as_u16());
    resp
}

/// The checks every request passes before dispatch: the target's size, then who is calling
/// and whether they hold the endpoint's right. `Ok(None)` for open endpoints.
async fn check(
    ctx: &Ctx,
    info: ConnInfo,
    req: &Request<Incoming>,
    path: &str,
) -> Result<Option<Decision>, Box<Response<ResponseBody>>> {
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len as u64 > ctx.limits.config.max_uri_bytes {
        return Err(Box::new(reply::error(
            StatusCode::URI_TOO_LONG,
            &format!(
                "the request target is {target_len} bytes; at most {} are accepted (http.limits.max_uri_bytes)",
                ctx.limits.config.max_uri_bytes
            ),
            None,
        )));
    }
    let meta = RequestMeta::new(
        info.peer,
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        req.method(),
        path,
        req.uri().query().unwrap_or(""),
    );
    match auth::authorize(ctx.authorizer.as_ref(), &ctx.auth_stats, &meta).await {
        Ok(decision) => Ok(decision),
        Err(refusal) => {
            let mut resp = reply::error(refusal.status, &refusal.message, None);
            if refusal.status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"runnel\""),
                );
            }
            Err(Box::new(resp))
        }
    }
}

/// `decision` is None only for open endpoints.
async fn dispatch(
    ctx: &Arc<Ctx>,
    info: ConnInfo,
    req: Request<Incoming>,
    path: &str,
    decision: Option<Decision>,
) -> Response<ResponseBody> {
    let scope = decision
        .as_ref()
        .map_or(auth::Namespaces::All, |d| d.namespaces.clone());
    if path == "/v1/ingest" {
        let query = req.uri().query().unwrap_or("").to_string();
        return match &decision {
            Some(d) => ingest::handle(ctx, info, d, req, &query).await,
            None => reply::error(StatusCode::FORBIDDEN, "ingest needs a caller", None),
        };
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{} is not supported on {path}; use GET", req.method()),
            None,
        );
    }
    let query = req.uri().query().unwrap_or("");
    match (path, &decision) {
        ("/healthz", _) => healthz(&ctx.state),
        ("/readyz", _) => {
            if ctx.state.ready.load(Ordering::Acquire) {
                reply::text(StatusCode::OK, "text/plain", "ok\n")
            } else {
                reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: the index is opening or the first discovery pass is running",
                    None,
                )
            }
        }
        ("/v1/logs", Some(d)) => logs::handle(ctx, info, d, query).await,
        ("/v1/sources", _) => sources(ctx, scope).await,
        ("/v1/top", _) => top(ctx, query, scope).await,
        ("/v1/status", _) => status(ctx).await,
        ("/metrics", _) => metrics(ctx).await,
        _ => reply::error(
            StatusCode::NOT_FOUND,
            &format!(
                "no such endpoint {path}; try /v1/logs, /v1/sources, /v1/top, /v1/status, \
                 /metrics, /healthz, /readyz"
            ),
            None,
        ),
    }
}

/// `/healthz`: `ok`, or 503 with a Status error whose message and `details.problems` say which
/// part is stuck (see `runtime::health`).
fn healthz(state: &AppState) -> Response<ResponseBody> {
    let problems = state.health.as_ref().map(|h| h()).unwrap_or_default();
    if problems.is_empty() {
        return reply::text(StatusCode::OK, "text/plain", "ok\n");
    }
    let mut v = serde_json::json!({
        "kind": "Status",
        "status": "Failure",
        "code": 503,
        "reason": "ServiceUnavailable",
        "message": format!("unhealthy: {}", problems.join("; ")),
    });
    v["details"] = serde_json::json!({ "problems": problems });
    reply::json(StatusCode::SERVICE_UNAVAILABLE, &v)
}

async fn sources(ctx: &Ctx, scope: auth::Namespaces) -> Response<ResponseBody> {
    let store = ctx.state.store.clone();
    match tokio::task::spawn_blocking(move || store.sources()).await {
        Ok(list) => {
            let items: Vec<serde_json::Value> = list
                .iter()
                .filter(|s| scope.allows(s.identity.namespace.as_deref()))
                .map(state::source_json)
                .collect();
            reply::json(StatusCode::OK, &serde_json::json!({ "sources": items }))
        }
        Err(e) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("listing sources failed: {e}"),
            None,
        ),
    }
}

/// Most containers `/v1/top` ranks at once (also the `limit` ceiling).
const TOP_MAX: usize = 10_000;

async fn top(ctx: &Ctx, query: &str, scope: auth::Namespaces) -> Response<ResponseBody> {
    let Some(top) = ctx.state.top.clone() else {
        return reply::error(
            StatusCode::NOT_FOUND,
            "container metrics are disabled (metrics.enabled: false)",
            None,
        );
    };
    let mut by = "fds".to_string();
    let mut limit = 10usize;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "by" => by = logs::decode(v),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=TOP_MAX).contains(&n) => limit = n,
                _ => {
                    return reply::error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "limit must be an integer from 1 to {TOP_MAX}, got {:?}",
                            logs::decode(v).chars().take(64).collect::<String>()
                        ),
                        Some("limit"),
                    )
                }
            },
            _ => {
                return reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "unknown parameter {:?}; known: by, limit",
                        k.chars().take(64).collect::<String>()
                    ),
                    Some("query"),
                )
            }
        }
    }
    // A scoped caller's ranking is of its namespaces only: rank everything, keep theirs, cut.
    let ranked = tokio::task::spawn_blocking(move || {
        let asked = if scope.is_all() { limit } else { TOP_MAX };
        top(&by, asked).map(|v| scope_top(v, &scope, limit))
    })
    .await;
    match ranked {
        Ok(Ok(v)) => reply::json(StatusCode::OK, &v),
        Ok(Err(message)) => reply::error(StatusCode::BAD_REQUEST, &message, Some("by")),
        Err(e) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("ranking containers failed: {e}"),
            None,
        ),
    }
}

/// Keep only the containers of `scope`'s namespaces in a `/v1/top` answer, at most `limit`.
fn scope_top(
    mut v: serde_json::Value,
    scope: &auth::Namespaces,
    limit: usize,
) -> serde_json::Value {
    if scope.is_all() {
        return v;
    }
    if let Some(list) = v["containers"].as_array_mut() {
        list.retain(|c| scope.allows(c["namespace"].as_str()));
        list.truncate(limit);
    }
    v["limit"] = limit.into();
    v
}

async fn status(ctx: &Ctx) -> Response<ResponseBody> {
    let state = ctx.state.clone();
    let tokens = ctx.tokens.clone();
    let tls = ctx.tls.clone();
    let v = tokio::task::spawn_blocking(move || {
        let mut v = state.status_json();
        let mut http = serde_json::json!({ "state": "ok" });
        if let Some(t) = &tokens {
            let st = t.state();
            http["tokens"] = t.current().len().into();
            http["tokens_file"] = t.path().display().to_string().into();
            if st.missing {
                http["tokens_file_missing"] = true.into();
                http["tokens_note"] =
                    format!("{} {}", t.path().display(), tokens::MISSING_NOTE).into();
            }
            if let Some(e) = st.last_error {
                http["state"] = "degraded".into();
                http["tokens_error"] = format!("{e} (the previous tokens are in force)").into();
            }
        }
        if let Some(e) = tls.as_ref().and_then(|t| t.last_error()) {
            http["state"] = "degraded".into();
            http["tls_error"] = format!("{e} (the previous certificate is in force)").into();
        }
        if http["state"] != "ok" {
            v["state"] = "degraded".into();
        }
        v["components"]["http"] = http;
        v
    })
    .await
    .unwrap_or_else(|e| serde_json::json!({ "state": "unknown", "error": e.to_string() }));
    reply::json(StatusCode::OK, &v)
}

/// `/metrics`, rendered on the blocking pool: the async workers that answer probes and
/// follows never wait for it.
async fn metrics(ctx: &Arc<Ctx>) -> Response<ResponseBody> {
    let ctx = ctx.clone();
    let page = tokio::task::spawn_blocking(move || {
        let mut out = String::with_capacity(32 << 10);
        ctx.state.render_requests(&mut out);
        ctx.auth_stats.render(&mut out);
        ctx.limits.render(&mut out);
        ctx.state.followers.render(&mut out);
        if let Some(t) = &ctx.tokens {
            t.render(&mut out);
        }
        if let Some(t) = &ctx.tls {
            t.render(&mut out);
        }
        let (components, age) = ctx.state.components_page();
        let _ = write!(
            out,
            "# HELP runnel_http_metrics_page_age_seconds Age of the index and components part of this page (cached for 1 s; older while a render is slow).\n\
             # TYPE runnel_http_metrics_page_age_seconds gauge\n\
             runnel_http_metrics_page_age_seconds {:.3}\n",
            age.as_secs_f64()
        );
        out.push_str(&components);
        out
    })
    .await;
    match page {
        Ok(out) => reply::text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            out,
        ),
        Err(e) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("rendering metrics failed: {e}"),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_of_a_scoped_caller_shows_only_its_namespaces() {
        let v = serde_json::json!({ "by": "fds", "limit": 10000, "containers": [
            { "namespace": "kube-system", "pod": "coredns-1", "fds": 90 },
            { "namespace": "shop", "pod": "web-0", "fds": 80 },
            { "namespace": null, "pod": null, "fds": 70 },
            { "namespace": "shop", "pod": "web-1", "fds": 60 },
            { "namespace": "shop", "pod": "web-2", "fds": 50 },
        ]});
        let shop = auth::Namespaces::Only(["shop".to_string()].into_iter().collect());
        let out = scope_top(v.clone(), &shop, 2);
        let pods: Vec<&str> = out["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["pod"].as_str().unwrap())
            .collect();
        assert_eq!(pods, ["web-0", "web-1"]);
        assert_eq!(out["limit"], 2);
        assert!(!out.to_string().contains("kube-system"));
        assert_eq!(scope_top(v.clone(), &auth::Namespaces::All, 2), v);
    }
}
