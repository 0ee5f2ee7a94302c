//! `GET /v1/logs`: a chunked text stream of one source's lines with kubectl semantics, and with
//! `follow=true` new lines as they become durable (woken by the index's after-sync listener,
//! for this source only). Only sources in the caller's namespaces are seen.

use super::auth::{self, Decision};
use super::body::ResponseBody;
use super::reply;
use super::serve::{ConnInfo, Ctx};
use super::state::AppState;
use crate::logs::{LogRequest, LogStream, LogsError, Progress};
use bytes::Bytes;
use hyper::{header, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Chunks buffered per response before the reader waits for the client.
const CHANNEL_CHUNKS: usize = 8;
/// A follower re-checks its source this often even without a wake-up (retention, clock);
/// long, so that an idle follower costs next to nothing.
const FOLLOW_BACKSTOP: Duration = Duration::from_secs(60);

/// Decode a query-string value.
pub fn decode(v: &str) -> String {
    crate::logs::request::percent_decode(v)
}

fn error_response(e: &LogsError) -> Response<ResponseBody> {
    match e {
        LogsError::Request(r) => {
            reply::error(StatusCode::BAD_REQUEST, &r.to_string(), Some(r.parameter))
        }
        LogsError::Resolve(r) if r.is_not_found() => {
            reply::error(StatusCode::NOT_FOUND, &r.to_string(), None)
        }
        LogsError::Resolve(r) => reply::error(StatusCode::BAD_REQUEST, &r.to_string(), None),
        LogsError::Index(_) => {
            reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None)
        }
    }
}

/// Serve one `/v1/logs` request for a caller allowed by `decision`.
pub(super) async fn handle(
    ctx: &Ctx,
    info: ConnInfo,
    decision: &Decision,
    query: &str,
) -> Response<ResponseBody> {
    let req = match LogRequest::from_query(query) {
        Ok(r) => r,
        Err(e) => return error_response(&LogsError::Request(e)),
    };
    // The namespace is checked before anything is looked up, so a 403 says nothing about
    // what exists there.
    let namespace = req.namespace.as_deref().unwrap_or("default");
    if !decision.namespaces.allows(Some(namespace)) {
        let r = auth::outside_scope(&ctx.auth_stats, info.peer, "/v1/logs", decision, namespace);
        return reply::error(r.status, &r.message, Some("namespace"));
    }
    let permit = if req.follow {
        match ctx.limits.follow() {
            Some(p) => Some(p),
            None => {
                return reply::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "too many concurrent follows: {} are running (http.limits.max_follows); \
                         retry later, or ask without follow=true",
                        ctx.limits.config.max_follows
                    ),
                    None,
                )
            }
        }
    } else {
        None
    };
    let state = ctx.state.clone();
    let store = state.store.clone();
    let opened = {
        let req = req.clone();
        let scope = decision.namespaces.clone();
        tokio::task::spawn_blocking(move || {
            LogStream::open_within(&store, &req, |s| {
                scope.allows(s.identity.namespace.as_deref())
            })
        })
        .await
    };
    let stream = match opened {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return error_response(&e),
        Err(e) => {
            return reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("log reader failed: {e}"),
                None,
            )
        }
    };
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        pump(state, stream, req.follow, tx).await;
        drop(permit);
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .body(ResponseBody::Stream(rx))
        .unwrap_or_else(|_| Response::new(ResponseBody::full("internal error\n")))
}

/// Move chunks from the index to the client until done, caught up (without follow), or the
/// client goes away.
async fn pump(state: Arc<AppState>, stream: LogStream, follow: bool, tx: mpsc::Sender<Bytes>) {
    // Woken only by syncs that gave this source records.
    let mut appended = state.followers.subscribe(stream.key());
    let mut stream = Some(stream);
    loop {
        // Mark the current generation seen before reading, so a sync that lands during the read
        // wakes the wait below instead of being missed.
        appended.borrow_and_update();
        let Some(mut s) = stream.take() else { return };
        let store = state.store.clone();
        let step = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(crate::logs::stream::CHUNK_BYTES + 4096);
            let mut progress = Progress::More;
            while progress == Progress::More && out.len() < crate::logs::stream::CHUNK_BYTES {
                progress = match s.next_chunk(&store, &mut out) {
                    Ok(p) => p,
                    Err(e) => return (s, out, Err(e)),
                };
            }
            (s, out, Ok(progress))
        })
        .await;
        let (s, out, progress) = match step {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "http: log reader task failed");
                return;
            }
        };
        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
            return; // client went away
        }
        match progress {
            Ok(Progress::More) => {}
            Ok(Progress::Done) => return,
            Ok(Progress::CaughtUp) if !follow => return,
            Ok(Progress::CaughtUp) => {
                tokio::select! {
                    changed = appended.changed() => {
                        if changed.is_err() { return }
                        state.followers.woke();
                    }
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(FOLLOW_BACKSTOP) => state.followers.backstop(),
                }
            }
            Err(e) => {
                tracing::warn!(source = s.key(), error = %e, "http: log stream ended by an index error");
                let _ = tx
                    .send(Bytes::from(format!("\nrunnel: stream ended: {e}\n")))
                    .await;
                return;
            }
        }
        stream = Some(s);
    }
}
