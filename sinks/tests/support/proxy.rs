//! A fault-injecting HTTP proxy between the sink and osmem (tokio + hyper).
//!
//! For every `/_bulk` request it gunzips the NDJSON, then applies, in order:
//! * the next scripted whole-request fault, if any (429, 500, 413 for big bodies, connection
//!   reset, delay, 200 with an HTML page, 200 with a truncated or empty body or one item
//!   short — the last three after forwarding, so the documents did land and the retry must
//!   meet 409s);
//! * item faults: documents whose message contains `POISON` are never forwarded and answered
//!   `400 mapper_parsing_exception`; every `item_fault_every`-th document of a request is
//!   answered 429 or 500 without being forwarded.
//!
//! It also checks the request (Content-Type must be `application/x-ndjson`, the body must
//! end with a newline, action lines must be JSON), strips an optional path prefix, and
//! records what it saw (paths in order, gzip, largest body, most documents, actions). While
//! `down` is set every request, bulk or template, is answered 503.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted whole-request fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Answer with this status and a JSON error body, forward nothing.
    Status(u16),
    /// Close the connection without an answer.
    Reset,
    /// Wait, then forward.
    Delay(Duration),
    /// Forward, then answer 200 with the first half of the real body.
    Truncated,
    /// Forward, then answer 200 with an empty body.
    Empty,
    /// 413 if the request has more than one document, else forward.
    TooLargeIfMany,
    /// Answer 200 with an HTML page (a misconfigured load balancer), forward nothing.
    NotJson,
    /// Forward, then answer 200 with the last item missing from `items`.
    MissingItem,
}

/// What the proxy saw and does.
#[derive(Debug, Default)]
pub struct State {
    /// Faults applied to the next bulk requests, in order.
    pub script: VecDeque<Fault>,
    /// Every n-th document of each request gets a 429/500 item (0 = off).
    pub item_fault_every: usize,
    /// Bulk requests seen.
    pub requests: u64,
    /// Item faults injected.
    pub item_faults: u64,
    /// Poison documents answered 400.
    pub poisoned: u64,
    /// Problems with the requests (wrong content type, no trailing newline, …).
    pub violations: Vec<String>,
    /// Authorization headers seen.
    pub authorization: Vec<String>,
    /// Answer 404 to `_index_template` (a server without the template API).
    pub no_template_api: bool,
    /// Template requests seen.
    pub template_requests: u64,
    /// While true every request is answered 503 (an outage).
    pub down: bool,
    /// `METHOD path` of every request, in order.
    pub log: Vec<String>,
    /// Bulk requests that came gzipped.
    pub gzipped: u64,
    /// Largest uncompressed bulk body seen.
    pub max_body_bytes: usize,
    /// Most documents in one bulk request.
    pub max_docs: usize,
    /// Every action line seen (op type and `_index`), e.g. `create logs-x`.
    pub actions: std::collections::BTreeSet<String>,
    /// Bulk requests received and not yet answered.
    pub in_flight: u64,
    /// Highest `in_flight` seen (reset it to watch a phase).
    pub max_in_flight: u64,
    /// A slow server: every bulk request waits this long before it is handled.
    pub delay: Duration,
    /// An overloaded server: a bulk request arriving while this many are in flight is
    /// answered 429 (0 = no limit).
    pub capacity: u64,
    /// Requests answered 429 for being over `capacity`.
    pub over_capacity: u64,
    /// Answer every bulk document 201 here instead of forwarding (a server whose pace is
    /// only `delay` and `capacity`), recording the `_id`s in `acked_ids`.
    pub ack_locally: bool,
    /// Distinct `_id`s acknowledged with `ack_locally`.
    pub acked_ids: std::collections::HashSet<String>,
}

/// Counts a bulk request in flight until it is answered or its connection dies.
struct InFlight(Arc<Mutex<State>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.lock() {
            s.in_flight -= 1;
        }
    }
}

/// A running proxy.
pub struct Proxy {
    /// `http://127.0.0.1:port` (+ prefix if configured).
    pub url: String,
    /// Shared state.
    pub state: Arc<Mutex<State>>,
    _rt: tokio::runtime::Runtime,
}

impl Proxy {
    /// Start a proxy to `upstream`; requests must start with `prefix` ("" for none).
    pub fn start(upstream: &str, prefix: &str) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.to_string();
        let url = format!("http://{addr}{prefix}");
        let prefix = prefix.to_string();
        let st = state.clone();
        rt.spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let (st, client, upstream, prefix) =
                    (st.clone(), client.clone(), upstream.clone(), prefix.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(
                            req,
                            st.clone(),
                            client.clone(),
                            upstream.clone(),
                            prefix.clone(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        Proxy {
            url,
            state,
            _rt: rt,
        }
    }
}

type Upstream = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn json_response(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn forward(
    client: &Upstream,
    upstream: &str,
    method: hyper::Method,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    let req = Request::builder()
        .method(method)
        .uri(format!("{upstream}{path}"))
        .header("content-type", ct)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let b = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((status, b.to_bytes().to_vec()))
}

async fn handle(
    req: Request<Incoming>,
    st: Arc<Mutex<State>>,
    client: Upstream,
    upstream: String,
    prefix: String,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let method = req.method().clone();
    let path_q = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let Some(path) = path_q.strip_prefix(&prefix) else {
        return Ok(json_response(
            404,
            format!("{{\"error\":\"no such path {path_q}\"}}").into_bytes(),
        ));
    };
    let path = path.to_string();
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let gz = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    if let Some(a) = req.headers().get("authorization") {
        st.lock()
            .unwrap()
            .authorization
            .push(a.to_str().unwrap_or("").to_string());
    }
    let raw = req
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let body = if gz {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        out
    } else {
        raw.to_vec()
    };
    {
        let mut s = st.lock().unwrap();
        s.log.push(format!("{method} {path}"));
        if s.down {
            return Ok(json_response(
                503,
                b"{\"error\":\"outage\",\"status\":503}".to_vec(),
            ));
        }
    }
    if path.starts_with("/_index_template") {
        let no_api = {
            let mut s = st.lock().unwrap();
            s.template_requests += 1;
            s.no_template_api
        };
        if no_api {
            return Ok(json_response(
                404,
                b"{\"error\":\"no handler found\"}".to_vec(),
            ));
        }
    }
    if path != "/_bulk" {
        let (s, b) = forward(&client, &upstream, method, &path, &ct, body)
            .await
            .map_err(std::io::Error::other)?;
        return Ok(json_response(s, b));
    }
    // A bulk request.
    let _in_flight = InFlight(st.clone());
    let (over, delay) = {
        let mut s = st.lock().unwrap();
        s.in_flight += 1;
        s.requests += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        let over = s.capacity > 0 && s.in_flight > s.capacity;
        if over {
            s.over_capacity += 1;
        }
        (over, s.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if over {
        return Ok(json_response(
            429,
            b"{\"error\":{\"type\":\"es_rejected_execution_exception\"},\"status\":429}".to_vec(),
        ));
    }
    let (fault, every) = {
        let mut s = st.lock().unwrap();
        if ct != "application/x-ndjson" {
            s.violations.push(format!("content-type {ct:?}"));
        }
        if !body.ends_with(b"\n") {
            s.violations.push("body does not end with a newline".into());
        }
        if gz {
            s.gzipped += 1;
        }
        s.max_body_bytes = s.max_body_bytes.max(body.len());
        (s.script.pop_front(), s.item_fault_every)
    };
    let lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if !lines.len().is_multiple_of(2) {
        st.lock()
            .unwrap()
            .violations
            .push("odd number of NDJSON lines".into());
    }
    let docs: Vec<(&[u8], &[u8])> = lines
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0], c[1]))
        .collect();
    {
        let mut s = st.lock().unwrap();
        s.max_docs = s.max_docs.max(docs.len());
        for (action, _) in &docs {
            let v: serde_json::Value = serde_json::from_slice(action).unwrap_or_default();
            match v.as_object().and_then(|o| o.iter().next()) {
                Some((op, target)) => {
                    let index = target["_index"].as_str().unwrap_or("?").to_string();
                    s.actions.insert(format!("{op} {index}"));
                }
                None => s.violations.push("action line is not a JSON object".into()),
            }
        }
    }
    if st.lock().unwrap().ack_locally {
        let mut s = st.lock().unwrap();
        let mut items = Vec::with_capacity(docs.len());
        for (action, _) in &docs {
            let v: serde_json::Value = serde_json::from_slice(action).unwrap_or_default();
            let id = v["create"]["_id"].as_str().unwrap_or("").to_string();
            let status = if s.acked_ids.insert(id) { 201 } else { 409 };
            items.push(serde_json::json!({"create": {"status": status}}));
        }
        let out = serde_json::json!({"errors": false, "items": items});
        return Ok(json_response(200, serde_json::to_vec(&out).unwrap()));
    }
    match fault {
        Some(Fault::Status(s)) => {
            return Ok(json_response(
                s,
                format!("{{\"error\":\"injected {s}\",\"status\":{s}}}").into_bytes(),
            ))
        }
        Some(Fault::Reset) => return Err(std::io::Error::other("injected reset")),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::TooLargeIfMany) if docs.len() > 1 => {
            return Ok(json_response(413, b"{\"error\":\"too large\"}".to_vec()))
        }
        Some(Fault::NotJson) => {
            return Ok(Response::builder()
                .status(200)
                .header("content-type", "text/html")
                .body(Full::new(Bytes::from_static(b"<html>gateway ok</html>")))
                .unwrap())
        }
        _ => {}
    }
    // Decide per document: forward, poison (400) or item fault (429/500).
    enum Plan {
        Forward,
        Item(u16, &'static str),
    }
    let mut plans = Vec::with_capacity(docs.len());
    let mut fwd = Vec::new();
    {
        let mut s = st.lock().unwrap();
        for (i, (action, doc)) in docs.iter().enumerate() {
            let poison = doc.windows(6).any(|w| w == b"POISON");
            if poison {
                s.poisoned += 1;
                plans.push(Plan::Item(400, "mapper_parsing_exception"));
            } else if every > 0 && (i + s.requests as usize).is_multiple_of(every) {
                s.item_faults += 1;
                plans.push(if i % 2 == 0 {
                    Plan::Item(429, "es_rejected_execution_exception")
                } else {
                    Plan::Item(500, "internal_server_error")
                });
            } else {
                plans.push(Plan::Forward);
                fwd.extend_from_slice(action);
                fwd.push(b'\n');
                fwd.extend_from_slice(doc);
                fwd.push(b'\n');
            }
        }
    }
    let mut upstream_items: VecDeque<serde_json::Value> = VecDeque::new();
    let mut real = Vec::new();
    if !fwd.is_empty() {
        let (s, b) = forward(
            &client,
            &upstream,
            method,
            "/_bulk",
            "application/x-ndjson",
            fwd,
        )
        .await
        .map_err(std::io::Error::other)?;
        if s != 200 {
            return Ok(json_response(s, b));
        }
        let v: serde_json::Value = serde_json::from_slice(&b).map_err(std::io::Error::other)?;
        upstream_items = v["items"].as_array().cloned().unwrap_or_default().into();
        real = b;
    }
    let mut items = Vec::new();
    for p in plans {
        match p {
            Plan::Forward => items.push(upstream_items.pop_front().unwrap_or_default()),
            Plan::Item(status, kind) => items.push(serde_json::json!({"create": {
                "status": status,
                "error": {"type": kind, "reason": format!("injected {kind}")}
            }})),
        }
    }
    if fault == Some(Fault::MissingItem) {
        items.pop();
    }
    let out = serde_json::to_vec(&serde_json::json!({"errors": true, "items": items})).unwrap();
    let _ = real;
    match fault {
        Some(Fault::Truncated) => Ok(json_response(200, out[..out.len() / 2].to_vec())),
        Some(Fault::Empty) => Ok(json_response(200, Vec::new())),
        _ => Ok(json_response(200, out)),
    }
}
