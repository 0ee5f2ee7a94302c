//! `GET /v1/logs`: a chunked text stream of one source's lines with kubectl semantics, and with
//! `follow=true` new lines as they become durable (woken by the index's after-sync listener).

use super::body::ResponseBody;
use super::reply;
use super::state::AppState;
use crate::logs::{LogRequest, LogStream, LogsError, Progress};
use bytes::Bytes;
use hyper::{header, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Chunks buffered per response before the reader waits for the client.
const CHANNEL_CHUNKS: usize = 8;
/// A follower re-checks its source this often even without a wake-up (retention, clock).
const FOLLOW_BACKSTOP: Duration = Duration::from_secs(5);

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

/// Serve one `/v1/logs` request.
pub async fn handle(state: Arc<AppState>, query: &str) -> Response<ResponseBody> {
    let req = match LogRequest::from_query(query) {
        Ok(r) => r,
        Err(e) => return error_response(&LogsError::Request(e)),
    };
    let store = state.store.clone();
    let opened = {
        let req = req.clone();
        tokio::task::spawn_blocking(move || LogStream::open(&store, &req)).await
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
    tokio::spawn(pump(state, stream, req.follow, tx));
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
    let mut appended = state.appended.clone();
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
                    changed = appended.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(FOLLOW_BACKSTOP) => {}
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
