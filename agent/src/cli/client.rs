//! The HTTP side of `runnel logs --server`: one GET to `/v1/logs`, streamed to stdout.

use crate::logs::LogRequest;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::Write;

/// Stream a request's answer to stdout; errors are worded like kubectl's.
pub fn stream_logs(server: &str, req: &LogRequest) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("error: starting the HTTP client: {e}"))?;
    runtime.block_on(fetch(server, req))
}

async fn fetch(server: &str, req: &LogRequest) -> Result<(), String> {
    let base = server.trim_end_matches('/');
    if !base.starts_with("http://") {
        return Err(format!(
            "error: --server {server:?}: expected an http:// URL such as http://127.0.0.1:2020"
        ));
    }
    let url = format!("{base}/v1/logs?{}", req.to_query());
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("error: --server {server:?}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client
        .get(uri)
        .await
        .map_err(|e| format!("error: cannot reach the agent at {base}: {e} (is `runnel agent` running? try --data-dir)"))?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let reason = v["reason"].as_str().unwrap_or("Unknown");
        let message = v["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        return Err(format!("Error from server ({reason}): {message}"));
    }
    let stdout = std::io::stdout();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("error: reading from the agent: {e}"))?;
        if let Ok(data) = frame.into_data() {
            let mut lock = stdout.lock();
            if lock.write_all(&data).and_then(|_| lock.flush()).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}
