//! `POST /v1/ingest`: scripts and small apps push lines over HTTP.
//!
//! `?namespace=NS&pod=POD&container=C[&stream=stdout|stderr][&request_id=ID]`; the body is
//! `application/x-ndjson` (objects with `log` or `message`, optional `time` as RFC 3339 or epoch
//! seconds, optional `stream`) or `text/plain` (one record a line, time of arrival), optionally
//! `Content-Encoding: gzip`. The whole request is parsed before anything is queued (a bad line
//! stores nothing), and the answer waits until the records are durable. A request id (the
//! `request_id` parameter or an `X-Request-Id` header) makes a retried request stored once,
//! exactly like a forward chunk.

use super::sidecar::{utc_style, PushInput, RequestBatch, SidecarSource};
use crate::ingest::{Appended, SubmitError, Submitter};
use runnel_index::{Stream, TimeStyle};
use std::io::Read;
use std::time::Duration;

/// Longest request id kept (longer ids are refused).
const MAX_REQUEST_ID: usize = 256;

/// What the endpoint needs: the way to the writer and its limits.
#[derive(Clone)]
pub struct IngestEndpoint {
    /// Hands batches to the writer.
    pub submitter: Submitter,
    /// Largest body after decoding.
    pub max_body_bytes: usize,
    /// How long to wait for room in the queue.
    pub queue_timeout: Duration,
}

/// A refused request: HTTP status, a message a person can act on, and the parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status code.
    pub status: u16,
    /// What is wrong and what to do.
    pub message: String,
    /// The query parameter (or `body`) at fault.
    pub parameter: Option<&'static str>,
}

fn refuse(status: u16, message: String, parameter: Option<&'static str>) -> Refusal {
    Refusal {
        status,
        message,
        parameter,
    }
}

/// The body's format, from `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object per line.
    Ndjson,
    /// One record per line.
    Text,
}

impl BodyFormat {
    /// The format a `Content-Type` names (missing = text).
    pub fn from_content_type(ct: Option<&str>) -> Result<BodyFormat, Refusal> {
        let Some(ct) = ct else {
            return Ok(BodyFormat::Text);
        };
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-ndjson" | "application/ndjson" | "application/jsonl"
            | "application/json" => Ok(BodyFormat::Ndjson),
            "text/plain" | "" => Ok(BodyFormat::Text),
            other => Err(refuse(
                415,
                format!(
                    "Content-Type {other:?} is not accepted; send application/x-ndjson or text/plain"
                ),
                Some("body"),
            )),
        }
    }
}

/// The query of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestQuery {
    /// The stream's source.
    pub source: SidecarSource,
    /// Default stream of the records.
    pub stream: Stream,
    /// Request id for exactly-once retries.
    pub request_id: Option<String>,
}

/// Parse the query string; `header_request_id` is the `X-Request-Id` header.
pub fn parse_query(query: &str, header_request_id: Option<&str>) -> Result<IngestQuery, Refusal> {
    let (mut ns, mut pod, mut container) = (None, None, None);
    let mut stream = Stream::Stdout;
    let mut request_id = header_request_id.map(str::to_string);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = crate::http::decode_query_value(v);
        match k {
            "namespace" => ns = Some(v),
            "pod" => pod = Some(v),
            "container" => container = Some(v),
            "stream" => {
                stream = parse_stream(&v).ok_or_else(|| {
                    refuse(
                        400,
                        format!("stream must be stdout or stderr, got {v:?}"),
                        Some("stream"),
                    )
                })?
            }
            "request_id" => request_id = Some(v),
            _ => {
                return Err(refuse(
                    400,
                    format!(
                    "unknown parameter {k:?}; known: namespace, pod, container, stream, request_id"
                ),
                    Some("query"),
                ))
            }
        }
    }
    let ns = ns.unwrap_or_else(|| "default".to_string());
    let pod = pod.ok_or_else(|| refuse(400, "pod is required".into(), Some("pod")))?;
    let container =
        container.ok_or_else(|| refuse(400, "container is required".into(), Some("container")))?;
    if request_id
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.len() > MAX_REQUEST_ID)
    {
        return Err(refuse(
            400,
            format!("request_id must be 1 to {MAX_REQUEST_ID} bytes"),
            Some("request_id"),
        ));
    }
    let source = SidecarSource::new(&ns, &pod, &container, PushInput::Http)
        .map_err(|(param, m)| refuse(400, m, Some(param)))?;
    Ok(IngestQuery {
        source,
        stream,
        request_id,
    })
}

fn parse_stream(s: &str) -> Option<Stream> {
    match s {
        "stdout" => Some(Stream::Stdout),
        "stderr" => Some(Stream::Stderr),
        _ => None,
    }
}

/// Undo `Content-Encoding: gzip` (several members allowed) within `max` bytes.
pub fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(body).take(max as u64 + 1);
    dec.read_to_end(&mut out).map_err(|e| {
        refuse(
            400,
            format!("the gzip body cannot be decoded: {e}"),
            Some("body"),
        )
    })?;
    if out.len() > max {
        return Err(too_large(max));
    }
    Ok(out)
}

/// The 413 for a body over the limit.
pub fn too_large(max: usize) -> Refusal {
    refuse(
        413,
        format!(
            "the body is larger than inputs.http_ingest.max_body_bytes ({max} bytes after decoding); split it"
        ),
        Some("body"),
    )
}

/// Parse a whole body into one batch; the first bad line refuses the request.
pub fn parse_body(
    q: &IngestQuery,
    format: BodyFormat,
    body: &[u8],
) -> Result<RequestBatch, Refusal> {
    let mut batch = RequestBatch::new(q.request_id.as_deref().map(str::as_bytes), body.len() * 2);
    let arrival = crate::timefmt::now_ns();
    let mut json_buf = Vec::new();
    // A final newline ends the last line; it does not start an empty one.
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        if body.is_empty() {
            break;
        }
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let at = |m: String| {
            refuse(
                400,
                format!("line {}: {m}; nothing was stored", i + 1),
                Some("body"),
            )
        };
        match format {
            BodyFormat::Text => {
                batch
                    .push(&q.source, arrival, utc_style(9), q.stream, line)
                    .map_err(at)?;
            }
            BodyFormat::Ndjson => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let rec = ndjson_record(line, q.stream, arrival, &mut json_buf).map_err(at)?;
                batch
                    .push(&q.source, rec.0, rec.1, rec.2, &json_buf)
                    .map_err(at)?;
            }
        }
    }
    Ok(batch)
}

/// One NDJSON line: (time, style, stream) with the message left in `msg`.
fn ndjson_record(
    line: &[u8],
    default_stream: Stream,
    arrival: i64,
    msg: &mut Vec<u8>,
) -> Result<(i64, TimeStyle, Stream), String> {
    let v: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(obj) = v else {
        return Err("not a JSON object".into());
    };
    msg.clear();
    match obj.get("log").or_else(|| obj.get("message")) {
        Some(serde_json::Value::String(s)) => {
            msg.extend_from_slice(s.strip_suffix('\n').unwrap_or(s).as_bytes())
        }
        Some(other) => msg.extend_from_slice(other.to_string().as_bytes()),
        // Other fields are not silently lost: the whole object is the message.
        None => serde_json::to_writer(&mut *msg, &obj)
            .map_err(|e| format!("the object cannot be written back as JSON: {e}"))?,
    }
    let stream = match obj.get("stream") {
        None | Some(serde_json::Value::Null) => default_stream,
        Some(serde_json::Value::String(s)) => {
            parse_stream(s).ok_or_else(|| format!("stream must be stdout or stderr, got {s:?}"))?
        }
        Some(other) => return Err(format!("stream must be a string, got {other}")),
    };
    let (time, style) = match obj.get("time") {
        None | Some(serde_json::Value::Null) => (arrival, utc_style(9)),
        Some(serde_json::Value::String(s)) => crate::timefmt::parse_rfc3339(s)
            .map_err(|_| format!("time {s:?} is not RFC 3339 (e.g. 2026-12-01T10:00:00.5Z)"))?,
        Some(serde_json::Value::Number(n)) => epoch_seconds(n)?,
        Some(other) => {
            return Err(format!(
                "time must be RFC 3339 text or epoch seconds, got {other}"
            ))
        }
    };
    Ok((time, style, stream))
}

fn epoch_seconds(n: &serde_json::Number) -> Result<(i64, TimeStyle), String> {
    // ~year 2262: the last second whose nanoseconds fit an i64.
    const MAX_SECS: f64 = 9_223_372_036.0;
    if let Some(s) = n.as_i64() {
        if s.unsigned_abs() as f64 >= MAX_SECS {
            return Err(format!("time {s} is outside the years 1678..2262"));
        }
        return Ok((s * 1_000_000_000, utc_style(0)));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if !f.is_finite() || f.abs() >= MAX_SECS {
        return Err(format!("time {n} is not a usable epoch-seconds number"));
    }
    Ok(((f * 1e9).round() as i64, utc_style(9)))
}

/// Queue the parsed request and wait until it is durable.
pub async fn store(
    ep: &IngestEndpoint,
    q: &IngestQuery,
    batch: RequestBatch,
) -> Result<Appended, Refusal> {
    if batch.is_empty() {
        return Ok(Appended::default());
    }
    ep.submitter
        .announce(&q.source.key, &q.source.identity)
        .map_err(|e| refuse(503, e.to_string(), None))?;
    ep.submitter
        .submit_durable(batch.into_batch(), Some(ep.queue_timeout))
        .await
        .map_err(|e| match e {
            SubmitError::QueueFull(_) => refuse(
                503,
                format!("{e}; nothing of this request was stored"),
                None,
            ),
            SubmitError::WriterStopped => refuse(503, format!("{e}; retry"), None),
        })
}

/// The endpoint as the HTTP server reads it: replaced whole by a reload.
#[derive(Default)]
pub struct IngestSlot(std::sync::RwLock<Option<IngestEndpoint>>);

impl IngestSlot {
    /// The endpoint now (`None`: ingest disabled).
    pub fn get(&self) -> Option<IngestEndpoint> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Set the endpoint for `cfg` (`inputs.http_ingest`).
    pub fn configure(&self, cfg: &runnel_config::Config, submitter: &Submitter) {
        let h = &cfg.inputs.http_ingest;
        let ep = h.enabled.then(|| IngestEndpoint {
            submitter: submitter.clone(),
            max_body_bytes: usize::try_from(h.max_body_bytes).unwrap_or(usize::MAX),
            queue_timeout: h.queue_timeout,
        });
        match self.0.write() {
            Ok(mut g) => *g = ep,
            Err(p) => *p.into_inner() = ep,
        }
    }
}
