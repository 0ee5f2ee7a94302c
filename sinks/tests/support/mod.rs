//! Test support: a real osmem-server, a fault-injecting proxy, a tiny blocking HTTP client and
//! helpers to fill a real store.
#![allow(dead_code)]

pub mod proxy;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running osmem-server, killed on drop.
pub struct Osmem {
    child: Child,
    /// `http://127.0.0.1:port`
    pub url: String,
}

fn osmem_binary() -> PathBuf {
    if let Ok(p) = std::env::var("RUNNEL_OSMEM") {
        return PathBuf::from(p);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = repo.join(".venv");
    let direct = venv.join("bin/osmem-server");
    if direct.exists() {
        return direct;
    }
    // pip installs the server binary inside the package, not into bin/.
    if let Ok(rd) = std::fs::read_dir(venv.join("lib")) {
        for e in rd.flatten() {
            let p = e.path().join("site-packages/osmem_server/bin/osmem-server");
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "osmem-server not found: set RUNNEL_OSMEM or run the README test command \
         (./scripts/test.sh, which creates {}/.venv and runs `pip install osmem-server==0.1.6 prometheus_client`)",
        repo.display()
    );
}

impl Osmem {
    /// Start a fresh in-memory server on a free port.
    pub fn start() -> Osmem {
        let bin = osmem_binary();
        let mut child = Command::new(&bin)
            .args(["-addr", "127.0.0.1:0", "-no-stdin-watch", "-no-ja"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("osmem printed {line:?}, not its JSON banner: {e}"));
        let url = v["url"].as_str().unwrap().to_string();
        Osmem { child, url }
    }

    /// Refresh then count documents in `index` (wildcards allowed).
    pub fn count(&self, index: &str) -> u64 {
        http("POST", &format!("{}/{index}/_refresh", self.url), b"");
        let (s, b) = http("GET", &format!("{}/{index}/_count", self.url), b"");
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        v["count"].as_u64().unwrap()
    }

    /// All `_source`s with their `_id`s.
    pub fn all_docs(&self, index: &str) -> Vec<(String, serde_json::Value)> {
        http("POST", &format!("{}/{index}/_refresh", self.url), b"");
        let (s, b) = http(
            "POST",
            &format!("{}/{index}/_search", self.url),
            br#"{"size":10000,"query":{"match_all":{}}}"#,
        );
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        v["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["_id"].as_str().unwrap().to_string(), h["_source"].clone()))
            .collect()
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal blocking HTTP/1.1 request (Connection: close); returns status and body.
pub fn http(method: &str, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// A sink config for tests: one endpoint, small fast retries.
pub fn es_config(endpoint: &str) -> runnel_config::ElasticsearchConfig {
    let mut c = runnel_config::Config::default().sinks.elasticsearch;
    c.enabled = true;
    c.endpoints = vec![endpoint.to_string()];
    c.index = "runnel-test-%Y.%m.%d".into();
    c.retry.initial = std::time::Duration::from_millis(20);
    c.retry.max = std::time::Duration::from_millis(200);
    c.batch.timeout = std::time::Duration::from_millis(50);
    c.request_timeout = std::time::Duration::from_secs(5);
    c
}

/// The Python interpreter for helper scripts: `RUNNEL_PYTHON`, else the README's `.venv`,
/// else `python3`.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("RUNNEL_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// The test TLS material (`tests/tls/README.md`).
pub fn tls_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tls")
        .join(name)
}

/// A TLS-terminating forwarder (`support/tls_forward.py`) in front of an HTTP server,
/// presenting `tests/tls/server.pem`; killed on drop.
pub struct TlsForward {
    child: Child,
    /// `https://127.0.0.1:port`
    pub url: String,
    /// Handshakes the forwarder refused, with the reason.
    pub handshake_errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TlsForward {
    /// Forward to `upstream` (`http://host:port`); require a client certificate signed by
    /// `tests/tls/ca.pem` when `client_auth`.
    pub fn start(upstream: &str, client_auth: bool) -> TlsForward {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/tls_forward.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .arg(tls_file("server.pem"))
            .arg(tls_file("server.key"))
            .arg(upstream.trim_start_matches("http://"));
        if client_auth {
            cmd.arg(tls_file("ca.pem"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("tls_forward.py printed {line:?}: {e}"));
        let url = format!("https://127.0.0.1:{}", v["port"]);
        let handshake_errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let errs = handshake_errors.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(e) = v["handshake_error"].as_str() {
                        errs.lock().unwrap().push(e.to_string());
                    }
                }
            }
        });
        TlsForward {
            child,
            url,
            handshake_errors,
        }
    }
}

impl Drop for TlsForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
