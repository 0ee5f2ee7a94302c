//! A fast local bulk endpoint for the benches: a tiny hyper server on 127.0.0.1 (one worker
//! thread) that gunzips each `_bulk` body, parses every line as JSON as a cluster would, and
//! acknowledges every item with 201. It counts what it acknowledged — requests, items, and
//! the bytes of the documents' `message` strings (decoded) — and answers
//! `GET /_bench/stats` with them as `{"requests":R,"items":N,"message_bytes":M}`.
//!
//! Shared by `benches/bulk.rs` (its server child process) and `examples/bulk_server.rs` (the
//! end-to-end bench's endpoint).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::borrow::Cow;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// What the server has acknowledged so far.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    items: AtomicU64,
    message_bytes: AtomicU64,
}

/// The one field of a document the server looks at; the rest is parsed and ignored.
#[derive(serde::Deserialize)]
struct Doc<'a> {
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
}

fn reply(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    counts: Arc<Counts>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if req.uri().path() == "/_bench/stats" {
        let s = format!(
            "{{\"requests\":{},\"items\":{},\"message_bytes\":{}}}",
            counts.requests.load(Relaxed),
            counts.items.load(Relaxed),
            counts.message_bytes.load(Relaxed)
        );
        return Ok(reply(200, s.into_bytes()));
    }
    let gz = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let raw = req.into_body().collect().await?.to_bytes();
    let mut body = Vec::new();
    if gz {
        if flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut body)
            .is_err()
        {
            return Ok(reply(400, b"{}".to_vec()));
        }
    } else {
        body = raw.to_vec();
    }
    let (mut items, mut message_bytes) = (0u64, 0u64);
    let mut out = Vec::with_capacity(64 * 1024);
    out.extend_from_slice(b"{\"errors\":false,\"items\":[");
    for (i, line) in body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        // Every line is parsed as JSON, as a cluster would.
        let valid = if i % 2 == 0 {
            line.starts_with(b"{\"create\"")
                && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
        } else {
            match serde_json::from_slice::<Doc>(line) {
                Ok(doc) => {
                    message_bytes += doc.message.map_or(0, |m| m.len() as u64);
                    true
                }
                Err(_) => false,
            }
        };
        if !valid {
            return Ok(reply(400, b"{}".to_vec()));
        }
        if i % 2 == 0 {
            if items > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"create\":{\"status\":201}}");
            items += 1;
        }
    }
    out.extend_from_slice(b"]}");
    counts.requests.fetch_add(1, Relaxed);
    counts.items.fetch_add(items, Relaxed);
    counts.message_bytes.fetch_add(message_bytes, Relaxed);
    Ok(reply(200, out))
}

/// Bind 127.0.0.1 on `port` (0: any), print `http://ADDR` on stdout, and serve; returns when
/// stdin closes if `until_stdin_closes`, never otherwise (the caller kills the process).
pub fn serve(port: u16, until_stdin_closes: bool) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))?;
    println!("http://{}", listener.local_addr()?);
    let counts = Arc::new(Counts::default());
    let server = async move {
        while let Ok((sock, _)) = listener.accept().await {
            let counts = counts.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, counts.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), service)
                    .await;
            });
        }
    };
    if until_stdin_closes {
        rt.spawn(server);
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    } else {
        rt.block_on(server);
    }
    Ok(())
}
