//! HTTP to the cluster: endpoint rotation with failover, credentials, TLS, gzip, and the raw
//! bulk request.
//!
//! Built on `reqwest` (rustls) directly rather than the official `elasticsearch` crate, which
//! wraps the same `reqwest::Client`. Checked against `elasticsearch` 9.1.0-alpha.1 (crates.io
//! has no stable 8.x/9.x release, only alphas; stable is 7.17): its `Transport::send` can carry
//! a raw body with overriding headers, but by default it sends `Content-Type:
//! application/json` even for bulk, its own request compression is gzip level 6 run inline on
//! the async task (measured in `benches/bulk.rs`: level 6 ≈ 233 MiB/s vs level 1 ≈ 1100 MiB/s
//! on our NDJSON, for 3.5 % vs 5.2 % ratio), and it adds 21 crates to the sink's tree (154 vs
//! 114 unique crates: chrono, time, serde_with, darling, schemars, …) for a typed API the sink
//! does not use. The sink builds and gzips (level 1, on the blocking pool) its NDJSON itself,
//! sets `Content-Type: application/x-ndjson` (osmem answers 406 to the ES8
//! `compatible-with` media type), and rotates endpoints per request so a retry fails over.

use crate::SinkError;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use runnel_config::ElasticsearchConfig;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Environment variables read when no secret file is configured.
pub const ENV_PASSWORD: &str = "RUNNEL_ES_PASSWORD";
/// API key (`id:key` or the already base64-encoded form).
pub const ENV_API_KEY: &str = "RUNNEL_ES_API_KEY";
/// Bearer token.
pub const ENV_BEARER_TOKEN: &str = "RUNNEL_ES_BEARER_TOKEN";

/// What a request came back with.
#[derive(Debug)]
pub enum Answer {
    /// An HTTP response (any status) with its body.
    Status(u16, Bytes),
    /// No usable response: connection refused/reset, timeout, truncated body.
    Failed {
        /// What happened, with the URL.
        message: String,
        /// The request timed out (the cluster may be overloaded: a back-pressure signal).
        timeout: bool,
    },
}

/// The configured cluster endpoints and an HTTP client for them.
#[derive(Debug)]
pub struct Transport {
    client: reqwest::Client,
    endpoints: Vec<String>,
    /// Per endpoint: milliseconds since `epoch` until which it is skipped (0 = up).
    down_until_ms: Vec<AtomicU64>,
    /// How long an endpoint that refused a connection or timed out is skipped.
    quarantine: Duration,
    epoch: Instant,
    next: AtomicUsize,
    gzip: bool,
}

fn read_secret(key: &'static str, path: &Path) -> Result<String, SinkError> {
    let text = std::fs::read_to_string(path).map_err(|source| SinkError::SecretFile {
        key,
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, SinkError> {
    std::fs::read(path).map_err(|source| SinkError::SecretFile {
        key,
        path: path.to_path_buf(),
        source,
    })
}

/// Standard base64 with padding (for Basic and ApiKey credentials).
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `Authorization` header value, from files first, then the environment. Never logged.
fn authorization(cfg: &ElasticsearchConfig) -> Result<Option<HeaderValue>, SinkError> {
    let a = &cfg.auth;
    let methods = [
        a.user.is_some() || a.password_file.is_some(),
        a.api_key_file.is_some(),
        a.bearer_token_file.is_some(),
    ];
    if methods.iter().filter(|&&m| m).count() > 1 {
        return Err(SinkError::Config {
            key: "auth",
            message:
                "set one of user (+ password_file), api_key_file or bearer_token_file, not several"
                    .into(),
        });
    }
    if a.password_file.is_some() && a.user.is_none() {
        return Err(SinkError::Config {
            key: "auth.user",
            message: "auth.password_file is set but auth.user is not".into(),
        });
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let value = if let Some(p) = &a.bearer_token_file {
        Some(format!(
            "Bearer {}",
            read_secret("auth.bearer_token_file", p)?
        ))
    } else if let Some(p) = &a.api_key_file {
        Some(api_key(&read_secret("auth.api_key_file", p)?))
    } else if let Some(user) = &a.user {
        let pw = match &a.password_file {
            Some(p) => read_secret("auth.password_file", p)?,
            None => env(ENV_PASSWORD).ok_or_else(|| SinkError::Config {
                key: "auth.password_file",
                message: format!(
                    "auth.user is set but there is no password: set auth.password_file or the {ENV_PASSWORD} environment variable"
                ),
            })?,
        };
        Some(format!(
            "Basic {}",
            base64(format!("{user}:{pw}").as_bytes())
        ))
    } else if let Some(t) = env(ENV_BEARER_TOKEN) {
        Some(format!("Bearer {t}"))
    } else {
        env(ENV_API_KEY).map(|k| api_key(&k))
    };
    match value {
        None => Ok(None),
        Some(v) => {
            let mut h = HeaderValue::from_str(&v).map_err(|_| SinkError::Config {
                key: "auth",
                message: "the credential contains characters not allowed in an HTTP header".into(),
            })?;
            h.set_sensitive(true);
            Ok(Some(h))
        }
    }
}

fn api_key(k: &str) -> String {
    if k.contains(':') {
        format!("ApiKey {}", base64(k.as_bytes()))
    } else {
        format!("ApiKey {k}")
    }
}

/// Check and normalise an endpoint URL: `http(s)://host[:port][/prefix]`, no trailing slash.
pub fn normalize_endpoint(e: &str) -> Result<String, SinkError> {
    let bad = |m: &str| SinkError::Config {
        key: "endpoints",
        message: format!(
            "{e:?}: {m} (expected http://host:port or https://host:port/optional/prefix)"
        ),
    };
    let url = reqwest::Url::parse(e).map_err(|err| bad(&err.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad("scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // The URL shows up in logs and in /v1/status: credentials must not be in it.
        return Err(SinkError::Config {
            key: "endpoints",
            message: format!(
                "{}://…@{}: credentials in the URL would be logged; use auth.user with \
                 auth.password_file (or {ENV_PASSWORD}) instead",
                url.scheme(),
                url.host_str().unwrap_or("")
            ),
        });
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

impl Transport {
    /// Build the client from the config: endpoints, credentials, TLS, timeout.
    pub fn new(cfg: &ElasticsearchConfig) -> Result<Transport, SinkError> {
        if cfg.endpoints.is_empty() {
            return Err(SinkError::Config {
                key: "endpoints",
                message: "no endpoint configured".into(),
            });
        }
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|e| normalize_endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut headers = HeaderMap::new();
        if let Some(a) = authorization(cfg)? {
            headers.insert(AUTHORIZATION, a);
        }
        let mut b = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(std::time::Duration::from_secs(10)))
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .no_proxy()
            .user_agent(concat!("runnel/", env!("CARGO_PKG_VERSION")));
        if !cfg.tls.verify {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(ca) = &cfg.tls.ca_file {
            let pem = read_file("tls.ca_file", ca)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| SinkError::Client(format!("tls.ca_file {}: {e}", ca.display())))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        match (&cfg.tls.cert_file, &cfg.tls.key_file) {
            (Some(c), Some(k)) => {
                let mut pem = read_file("tls.cert_file", c)?;
                pem.push(b'\n');
                pem.extend_from_slice(&read_file("tls.key_file", k)?);
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    SinkError::Client(format!(
                        "tls.cert_file {} / tls.key_file {}: {e}",
                        c.display(),
                        k.display()
                    ))
                })?;
                b = b.identity(id);
            }
            (None, None) => {}
            _ => {
                return Err(SinkError::Config {
                    key: "tls",
                    message: "cert_file and key_file must be set together".into(),
                })
            }
        }
        let client = b.build().map_err(|e| SinkError::Client(e.to_string()))?;
        Ok(Transport {
            client,
            down_until_ms: endpoints.iter().map(|_| AtomicU64::new(0)).collect(),
            quarantine: cfg
                .retry
                .max
                .clamp(Duration::from_millis(100), Duration::from_secs(30)),
            epoch: Instant::now(),
            endpoints,
            next: AtomicUsize::new(0),
            gzip: matches!(cfg.compression, runnel_config::Compression::Gzip),
        })
    }

    /// The normalised endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Whether bodies are gzipped.
    pub fn gzip(&self) -> bool {
        self.gzip
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Round-robin over the endpoints that are up: each request goes to the next one. An
    /// endpoint that refused a connection or timed out is skipped for a while (its
    /// quarantine), so a dead node costs one failed attempt per quarantine, not every other
    /// request. When every endpoint is in quarantine, plain round-robin.
    fn pick(&self) -> usize {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.down_until_ms[i].load(Ordering::Relaxed) <= now)
            .unwrap_or(start % n)
    }

    /// Whether some endpoint is outside its quarantine (a failed request can be retried
    /// there at once).
    pub fn any_up(&self) -> bool {
        let now = self.now_ms();
        self.down_until_ms
            .iter()
            .any(|d| d.load(Ordering::Relaxed) <= now)
    }

    fn mark_down(&self, i: usize) {
        let until = self.now_ms() + self.quarantine.as_millis() as u64;
        self.down_until_ms[i].store(until, Ordering::Relaxed);
    }

    /// POST `/_bulk` with an NDJSON body (already gzipped when `gzipped`).
    pub async fn bulk(&self, body: Bytes, gzipped: bool) -> Answer {
        let ep = self.pick();
        let url = format!("{}/_bulk", self.endpoints[ep]);
        let mut req = self
            .client
            .post(&url)
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        if gzipped {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        self.finish(ep, &url, req).await
    }

    /// PUT a JSON body at `path` (for the index template).
    pub async fn put_json(&self, path: &str, body: Vec<u8>) -> Answer {
        let ep = self.pick();
        let url = format!("{}{path}", self.endpoints[ep]);
        let req = self
            .client
            .put(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.finish(ep, &url, req).await
    }

    async fn finish(&self, ep: usize, url: &str, req: reqwest::RequestBuilder) -> Answer {
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(b) => Answer::Status(status, b),
                    Err(e) => Answer::Failed {
                        message: format!("{url}: reading the response: {e}"),
                        timeout: e.is_timeout(),
                    },
                }
            }
            Err(e) => {
                if e.is_connect() || e.is_timeout() {
                    self.mark_down(ep);
                }
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                };
                let mut msg = format!("{url}: {what}: {e}");
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                Answer::Failed {
                    message: msg,
                    timeout: e.is_timeout(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn endpoints_are_checked_and_keep_their_path_prefix() {
        assert_eq!(
            normalize_endpoint("http://h:9200/").unwrap(),
            "http://h:9200"
        );
        assert_eq!(normalize_endpoint("https://h/es/").unwrap(), "https://h/es");
        let e = normalize_endpoint("localhost:9200")
            .unwrap_err()
            .to_string();
        assert!(e.contains("endpoints"), "{e}");
        assert!(normalize_endpoint("ftp://h").is_err());
        assert!(normalize_endpoint("not a url").is_err());
    }
}
