//! The agent's HTTP API (hyper): `/v1/logs` range reads and live follow, `/v1/sources`,
//! `/v1/top`, `/v1/status`, `/metrics`, `/healthz`, `/readyz`.
//!
//! Handlers never block the runtime: index reads run on the blocking pool, and followers are
//! woken by the index's after-sync listener through a `watch` channel.

mod body;
mod ingest;
mod logs;
mod reply;
mod state;

pub use body::ResponseBody;
pub use logs::decode as decode_query_value;
pub use state::{AppState, HealthFn, MetricsFn, StatusFn, TopFn};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Accept connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "http: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(state, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http: connection ended with an error");
            }
        });
    }
}

async fn route(state: Arc<AppState>, req: Request<Incoming>) -> Response<ResponseBody> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let resp = if path == "/v1/ingest" {
        ingest::handle(&state, req, &query).await
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{} is not supported on {path}; use GET", req.method()),
            None,
        )
    } else {
        match path.as_str() {
            "/v1/logs" => logs::handle(state.clone(), &query).await,
            "/v1/sources" => sources(&state).await,
            "/v1/top" => top(&state, &query),
            "/v1/status" => reply::json(StatusCode::OK, &state.status_json()),
            "/metrics" => reply::text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                state.render_metrics(),
            ),
            "/healthz" => healthz(&state),
            "/readyz" => {
                if state.ready.load(Ordering::Acquire) {
                    reply::text(StatusCode::OK, "text/plain", "ok\n")
                } else {
                    reply::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: the index is opening or the first discovery pass is running",
                        None,
                    )
                }
            }
            _ => reply::error(
                StatusCode::NOT_FOUND,
                &format!(
                    "no such endpoint {path}; try /v1/logs, /v1/sources, /v1/top, /v1/status, \
                     /metrics, /healthz, /readyz"
                ),
                None,
            ),
        }
    };
    state.count_request(&path, resp.status().as_u16());
    resp
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

async fn sources(state: &Arc<AppState>) -> Response<ResponseBody> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.sources()).await {
        Ok(list) => {
            let items: Vec<serde_json::Value> = list.iter().map(state::source_json).collect();
            reply::json(StatusCode::OK, &serde_json::json!({ "sources": items }))
        }
        Err(e) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("listing sources failed: {e}"),
            None,
        ),
    }
}

fn top(state: &AppState, query: &str) -> Response<ResponseBody> {
    let Some(top) = &state.top else {
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
                Ok(n) if (1..=10_000).contains(&n) => limit = n,
                _ => {
                    return reply::error(
                        StatusCode::BAD_REQUEST,
                        &format!("limit must be an integer from 1 to 10000, got {v:?}"),
                        Some("limit"),
                    )
                }
            },
            _ => {
                return reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown parameter {k:?}; known: by, limit"),
                    Some("query"),
                )
            }
        }
    }
    match top(&by, limit) {
        Ok(v) => reply::json(StatusCode::OK, &v),
        Err(message) => reply::error(StatusCode::BAD_REQUEST, &message, Some("by")),
    }
}
