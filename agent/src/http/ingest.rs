//! The HTTP side of `POST /v1/ingest`: method, size limit and encoding of the body; the
//! records themselves are parsed and stored by [`crate::inputs::http_ingest`].

use super::auth::{self, Decision};
use super::body::ResponseBody;
use super::reply;
use super::serve::{ConnInfo, Ctx};
use crate::inputs::http_ingest::{self, BodyFormat, Refusal};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};

fn refusal(r: Refusal) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    reply::error(status, &r.message, r.parameter)
}

/// Answer one ingest request of a caller allowed by `decision` (records of its namespaces
/// only); the answer comes only after the records are durable.
pub(super) async fn handle(
    ctx: &Ctx,
    info: ConnInfo,
    decision: &Decision,
    req: Request<Incoming>,
    query: &str,
) -> Response<ResponseBody> {
    let state = &ctx.state;
    if req.method() != Method::POST {
        return reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{} is not supported on /v1/ingest; use POST", req.method()),
            None,
        );
    }
    let Some(ep) = state.ingest.get() else {
        return reply::error(
            StatusCode::NOT_FOUND,
            "HTTP ingest is disabled (inputs.http_ingest.enabled: false)",
            None,
        );
    };
    let h = req.headers();
    let text = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let request_id = h
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let q = match http_ingest::parse_query(query, request_id.as_deref()) {
        Ok(q) => q,
        Err(r) => return refusal(r),
    };
    let namespace = q.source.identity.namespace.as_deref();
    if !decision.namespaces.allows(namespace) {
        let r = auth::outside_scope(
            &ctx.auth_stats,
            info.peer,
            "/v1/ingest",
            decision,
            namespace.unwrap_or(""),
        );
        return reply::error(r.status, &r.message, Some("namespace"));
    }
    let format = match BodyFormat::from_content_type(text(header::CONTENT_TYPE).as_deref()) {
        Ok(f) => f,
        Err(r) => return refusal(r),
    };
    let gzip = match text(header::CONTENT_ENCODING).as_deref().map(str::trim) {
        None | Some("") | Some("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(e) => {
            return reply::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("Content-Encoding {e:?} is not accepted; send gzip or none"),
                Some("body"),
            )
        }
    };
    let max = ep.max_body_bytes;
    let body = match read_body(req.into_body(), max).await {
        Ok(Some(b)) => b,
        Ok(None) => return refusal(http_ingest::too_large(max)),
        Err(e) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                &format!("reading the body failed: {e}"),
                Some("body"),
            );
        }
    };
    let decoded;
    let body: &[u8] = if gzip {
        decoded = match http_ingest::gunzip(&body, max) {
            Ok(d) => d,
            Err(r) => return refusal(r),
        };
        &decoded
    } else {
        &body
    };
    let batch = match http_ingest::parse_body(&q, format, body) {
        Ok(b) => b,
        Err(r) => return refusal(r),
    };
    match http_ingest::store(&ep, &q, batch).await {
        Ok(done) => reply::json(
            StatusCode::OK,
            &serde_json::json!({ "stored": done.stored, "duplicates": done.duplicates }),
        ),
        Err(r) => refusal(r),
    }
}

/// Bytes of a refused body read past the limit (and thrown away) before the 413 goes out.
const DRAIN_MAX: usize = 32 << 20;

/// The body, or `None` when it is longer than `max` bytes. A longer body is still read on,
/// discarded, up to [`DRAIN_MAX`] more bytes: a client that sends its whole body before reading
/// the answer (most do) then gets the 413, instead of a connection reset under its write when
/// the server closes with unread bytes.
async fn read_body(mut body: Incoming, max: usize) -> Result<Option<bytes::Bytes>, hyper::Error> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= max {
            kept.extend_from_slice(&data);
        } else if seen > max.saturating_add(DRAIN_MAX) {
            break;
        }
    }
    Ok((seen <= max).then(|| kept.into()))
}
