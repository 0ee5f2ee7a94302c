//! The Elasticsearch side: a real OpenSearch-compatible `osmem-server` with the project's
//! fault-injecting proxy (`sinks/tests/support/proxy.rs`) in front of it, and the queries that
//! read back what landed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The index the agent ships to.
pub const INDEX: &str = "runnel-chaos";

fn venv_osmem(venv: &std::path::Path) -> Option<PathBuf> {
    let direct = venv.join("bin/osmem-server");
    if direct.is_file() {
        return Some(direct);
    }
    // pip installs the server binary inside the package, not into bin/.
    for e in std::fs::read_dir(venv.join("lib")).ok()?.flatten() {
        let p = e.path().join("site-packages/osmem_server/bin/osmem-server");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// `osmem-server`: `RUNNEL_OSMEM`, else the venv of `RUNNEL_PYTHON`, else the workspace `.venv`.
fn osmem_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("RUNNEL_OSMEM") {
        return Ok(PathBuf::from(p));
    }
    let mut venvs = Vec::new();
    if let Some(py) = std::env::var_os("RUNNEL_PYTHON") {
        // <venv>/bin/python
        if let Some(v) = PathBuf::from(py).parent().and_then(|b| b.parent()) {
            venvs.push(v.to_path_buf());
        }
    }
    venvs.push(crate::binary::workspace_root().join(".venv"));
    venvs
        .iter()
        .find_map(|v| venv_osmem(v))
        .ok_or_else(|| {
            format!(
                "osmem-server not found in {venvs:?}: set RUNNEL_PYTHON to the test venv's python \
                 (scripts/test.sh makes it with `pip install osmem-server==0.1.6`) or RUNNEL_OSMEM to the binary"
            )
        })
}

/// A running osmem-server, killed on drop.
pub struct Osmem {
    child: Child,
    /// `http://127.0.0.1:port`
    pub url: String,
}

impl Osmem {
    /// Start a fresh in-memory server on a free port.
    pub fn start() -> Result<Osmem, String> {
        let bin = osmem_binary()?;
        let mut child = Command::new(&bin)
            .args(["-addr", "127.0.0.1:0", "-no-stdin-watch", "-no-ja"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let url = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["url"].as_str().map(str::to_string));
        match url {
            Some(url) => Ok(Osmem { child, url }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "osmem-server printed {line:?}, not its JSON banner"
                ))
            }
        }
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
        let url = format!("{}{path}", self.url);
        let r = ureq::post(&url)
            .timeout(Duration::from_secs(60))
            .set("content-type", "application/json")
            .send_string(&body.to_string());
        match r {
            Ok(r) => {
                let text = r.into_string().map_err(|e| format!("{url}: {e}"))?;
                serde_json::from_str(&text).map_err(|e| format!("{url}: {e}: {text:.200}"))
            }
            Err(ureq::Error::Status(404, _)) => Ok(serde_json::Value::Null),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }

    /// Documents in the index now (0 before the first one created it).
    pub fn count(&self) -> Result<u64, String> {
        self.post(&format!("/{INDEX}/_refresh"), &serde_json::json!({}))?;
        let v = self.post(&format!("/{INDEX}/_count"), &serde_json::json!({}))?;
        Ok(v["count"].as_u64().unwrap_or(0))
    }

    /// Every document's `message` (a scroll over the whole index).
    pub fn messages(&self) -> Result<Vec<String>, String> {
        self.post(&format!("/{INDEX}/_refresh"), &serde_json::json!({}))?;
        let mut out = Vec::new();
        let mut v = self.post(
            &format!("/{INDEX}/_search?scroll=2m"),
            &serde_json::json!({"size": 5000, "_source": ["message"], "query": {"match_all": {}}}),
        )?;
        loop {
            let hits = v["hits"]["hits"].as_array().cloned().unwrap_or_default();
            if hits.is_empty() {
                break;
            }
            for h in &hits {
                out.push(h["_source"]["message"].as_str().unwrap_or("").to_string());
            }
            let Some(id) = v["_scroll_id"].as_str().map(str::to_string) else {
                break;
            };
            v = self.post(
                "/_search/scroll",
                &serde_json::json!({"scroll": "2m", "scroll_id": id}),
            )?;
        }
        Ok(out)
    }
}

impl Osmem {
    /// The server's peak resident memory (`VmHWM`), bytes: it holds every document in memory,
    /// which bounds how long a soak can run at a given rate.
    pub fn peak_rss(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Faults injected by kind.
pub type FaultCounts = BTreeMap<&'static str, u64>;
