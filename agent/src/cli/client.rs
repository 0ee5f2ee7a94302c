//! The HTTP side of `runnel logs --server`: one GET to `/v1/logs`, streamed to stdout, over
//! http:// or https:// (`--cacert` names the CA that signed the agent's certificate), with a
//! bearer token from `--token-file` or `RUNNEL_TOKEN`.

use crate::logs::LogRequest;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// How the client proves who it is and whom it trusts.
#[derive(Debug, Clone, Default)]
pub struct ClientAuth {
    /// Sent as `Authorization: Bearer …`.
    pub token: Option<String>,
    /// PEM CA certificate(s) trusted for https:// instead of the built-in roots.
    pub cacert: Option<PathBuf>,
}

impl ClientAuth {
    /// From the flags, falling back to `RUNNEL_TOKEN`; a token file is read and trimmed.
    pub fn from_flags(
        token_file: Option<&PathBuf>,
        cacert: Option<&PathBuf>,
    ) -> Result<ClientAuth, String> {
        let token = match token_file {
            Some(path) => {
                let t = std::fs::read_to_string(path)
                    .map_err(|e| format!("error: --token-file {}: {e}", path.display()))?;
                let t = t.trim().to_string();
                if t.is_empty() {
                    return Err(format!(
                        "error: --token-file {}: the file is empty",
                        path.display()
                    ));
                }
                Some(t)
            }
            None => std::env::var("RUNNEL_TOKEN")
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        };
        Ok(ClientAuth {
            token,
            cacert: cacert.cloned(),
        })
    }
}

/// An error with its causes, one clause each (reqwest's own text hides the TLS reason).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Stream a request's answer to stdout; errors are worded like kubectl's.
pub fn stream_logs(server: &str, req: &LogRequest, auth: &ClientAuth) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("error: starting the HTTP client: {e}"))?;
    runtime.block_on(fetch(server, req, auth))
}

fn client(auth: &ClientAuth) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .min_tls_version(reqwest::tls::Version::TLS_1_2);
    if let Some(path) = &auth.cacert {
        let pem =
            std::fs::read(path).map_err(|e| format!("error: --cacert {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("error: --cacert {}: {}", path.display(), chain(&e)))?;
        if certs.is_empty() {
            return Err(format!(
                "error: --cacert {}: no CERTIFICATE in the file",
                path.display()
            ));
        }
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| format!("error: starting the HTTP client: {}", chain(&e)))
}

async fn fetch(server: &str, req: &LogRequest, auth: &ClientAuth) -> Result<(), String> {
    let base = server.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!(
            "error: --server {server:?}: expected an http:// or https:// URL such as http://127.0.0.1:2020"
        ));
    }
    let url = format!("{base}/v1/logs?{}", req.to_query());
    let mut get = client(auth)?.get(&url);
    if let Some(t) = &auth.token {
        get = get.bearer_auth(t);
    }
    let mut resp = get.send().await.map_err(|e| {
        format!(
            "error: cannot reach the agent at {base}: {} (is `runnel agent` running? try --data-dir)",
            chain(&e)
        )
    })?;
    let status = resp.status();
    if !status.is_success() {
        let bytes = resp.bytes().await.unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let reason = v["reason"].as_str().unwrap_or("Unknown");
        let message = v["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        return Err(format!("Error from server ({reason}): {message}"));
    }
    let stdout = std::io::stdout();
    while let Some(data) = resp
        .chunk()
        .await
        .map_err(|e| format!("error: reading from the agent: {}", chain(&e)))?
    {
        let mut lock = stdout.lock();
        if lock.write_all(&data).and_then(|_| lock.flush()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
