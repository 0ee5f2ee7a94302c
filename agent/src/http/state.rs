//! What the HTTP handlers share: the store, readiness, the per-source follow wake-ups, and
//! the renderers other parts of the agent plug in for `/metrics`, `/v1/top` and `/v1/status`.

use super::follow::Followers;
use crate::timefmt::utc_nanos_string;
use runnel_index::{SourceInfo, Store};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Appends Prometheus text for one part of the agent.
pub type MetricsFn = Arc<dyn Fn(&mut String) + Send + Sync>;
/// `/v1/top`: `(by, limit)` → JSON, or a message about `by`.
pub type TopFn = Arc<dyn Fn(&str, usize) -> Result<serde_json::Value, String> + Send + Sync>;
/// One component's status for `/v1/status`.
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;
/// `/healthz`: why the agent is unhealthy (empty: healthy).
pub type HealthFn = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Shared state of the HTTP server.
pub struct AppState {
    /// The index.
    pub store: Arc<Store>,
    /// Set once the index is open and the first discovery pass is done.
    pub ready: Arc<AtomicBool>,
    /// Per-source wake-ups after index syncs; followers wait on their source's channel.
    pub followers: Arc<Followers>,
    /// Renderers for `/metrics` beside the HTTP and index metrics.
    pub metrics: Vec<MetricsFn>,
    /// `/v1/top`, when container metrics are on.
    pub top: Option<TopFn>,
    /// Components reporting into `/v1/status`.
    pub status: Vec<(String, StatusFn)>,
    /// The liveness check behind `/healthz` (none: always healthy).
    pub health: Option<HealthFn>,
    /// `POST /v1/ingest`, when enabled.
    pub ingest: Arc<crate::inputs::http_ingest::IngestSlot>,
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    components_page: Mutex<PageCache>,
}

/// The last rendered index-and-components page, and whether a render is running.
#[derive(Default)]
struct PageCache {
    page: Option<(Instant, Arc<String>)>,
    rendering: bool,
}

/// Clears `rendering` however the render ends (a renderer may panic).
struct Rendering<'a>(&'a Mutex<PageCache>);

impl Drop for Rendering<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.0.lock() {
            c.rendering = false;
        }
    }
}

/// A `/metrics` page of the index and the components is reused for this long, so a burst of
/// scrapes renders it once.
const COMPONENTS_PAGE_FRESH: Duration = Duration::from_secs(1);

impl AppState {
    /// State over `store`; registers the after-sync listener that wakes followers.
    pub fn new(store: Arc<Store>, ready: Arc<AtomicBool>) -> AppState {
        let followers = Followers::attach(&store);
        AppState {
            store,
            ready,
            followers,
            metrics: Vec::new(),
            top: None,
            status: Vec::new(),
            health: None,
            ingest: Arc::default(),
            requests: Mutex::new(BTreeMap::new()),
            components_page: Mutex::new(PageCache::default()),
        }
    }

    /// Count a served request; unknown paths are folded into one label value.
    pub fn count_request(&self, path: &str, code: u16) {
        const KNOWN: [&str; 8] = [
            "/v1/logs",
            "/v1/ingest",
            "/v1/sources",
            "/v1/top",
            "/v1/status",
            "/metrics",
            "/healthz",
            "/readyz",
        ];
        let path = if KNOWN.contains(&path) { path } else { "other" };
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((path.to_string(), code)).or_insert(0) += 1;
        }
    }

    /// Append the request counters (cheap: one small map).
    pub fn render_requests(&self, out: &mut String) {
        out.push_str(
            "# HELP runnel_http_requests_total HTTP requests served, by path and status code.\n",
        );
        out.push_str("# TYPE runnel_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((path, code), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "runnel_http_requests_total{{path=\"{path}\",code=\"{code}\"}} {n}"
                );
            }
        }
    }

    /// The index's and the components' part of `/metrics`, and how old it is. Blocking (the
    /// components take their own locks): call it on the blocking pool. One render serves all
    /// scrapes within a second, and while a render is running (a component slow to answer)
    /// other scrapes get the previous page at once instead of queueing behind it; the index's
    /// figures themselves never wait on a source (see `Store::stats`).
    pub fn components_page(&self) -> (Arc<String>, Duration) {
        {
            let Ok(mut c) = self.components_page.lock() else {
                return (
                    Arc::new("# metrics page cache poisoned\n".into()),
                    Duration::ZERO,
                );
            };
            if let Some((at, page)) = c.page.as_ref() {
                if at.elapsed() < COMPONENTS_PAGE_FRESH || c.rendering {
                    return (page.clone(), at.elapsed());
                }
            }
            c.rendering = true;
        }
        let _rendering = Rendering(&self.components_page);
        let mut out = String::with_capacity(16 << 10);
        render_index_metrics(&self.store, &mut out);
        for render in &self.metrics {
            render(&mut out);
        }
        let page = Arc::new(out);
        if let Ok(mut c) = self.components_page.lock() {
            c.page = Some((Instant::now(), page.clone()));
        }
        (page, Duration::ZERO)
    }

    /// `/v1/status`: every component's status, and `degraded` if any is not ok.
    pub fn status_json(&self) -> serde_json::Value {
        let mut components = serde_json::Map::new();
        let mut overall = "ok";
        for (name, status) in &self.status {
            let v = status();
            if v.get("state")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s != "ok")
            {
                overall = "degraded";
            }
            components.insert(name.clone(), v);
        }
        serde_json::json!({ "state": overall, "components": components })
    }
}

fn render_index_metrics(store: &Store, out: &mut String) {
    let s = store.stats();
    let gauges: [(&str, &str, u64); 5] = [
        (
            "runnel_index_disk_bytes",
            "Bytes the index uses on disk.",
            s.disk_bytes,
        ),
        (
            "runnel_index_sealed_segments",
            "Sealed segments in the index.",
            s.sealed_segments,
        ),
        (
            "runnel_index_active_segments",
            "Active (appendable) segments.",
            s.active_segments,
        ),
        (
            "runnel_index_retired_sources",
            "Sources of removed containers whose records are kept until retention.",
            s.retired_sources,
        ),
        (
            "runnel_index_open_maps",
            "Sealed segments memory-mapped now (bounded by index.max_open_maps).",
            s.open_maps,
        ),
    ];
    for (name, help, v) in gauges {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
        );
    }
    let counters: [(&str, &str, u64); 6] = [
        (
            "runnel_index_records_appended_total",
            "Records appended since start.",
            s.records_appended,
        ),
        (
            "runnel_index_syncs_total",
            "Group-commit syncs since start.",
            s.syncs,
        ),
        (
            "runnel_index_corrupt_blocks_total",
            "Corrupt sealed blocks skipped by reads.",
            s.corrupt_blocks,
        ),
        (
            "runnel_index_recovered_truncated_bytes_total",
            "Bytes cut from torn active-segment tails at open.",
            s.recovered_truncated_bytes,
        ),
        (
            "runnel_index_seal_errors_total",
            "Seals that failed inside append (retried by the next maintenance pass).",
            s.seal_errors,
        ),
        (
            "runnel_index_sources_removed_total",
            "Retired sources forgotten once retention deleted their last record.",
            s.sources_removed,
        ),
    ];
    for (name, help, v) in counters {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        );
    }
    let families = [
        (
            "runnel_index_retention_segments_total",
            "Segments deleted by retention, by reason.",
        ),
        (
            "runnel_index_retention_records_total",
            "Records deleted by retention, by reason.",
        ),
        (
            "runnel_index_retention_bytes_total",
            "Bytes deleted by retention, by reason.",
        ),
    ];
    // Both reasons are always present (zero until retention first deletes something), so a
    // rate() or an alert on them works from the start.
    let mut retention: Vec<(&str, [u64; 3])> = vec![("age", [0; 3]), ("disk", [0; 3])];
    for (reason, segs, recs, bytes) in &s.retention {
        match retention.iter_mut().find(|(r, _)| r == reason) {
            Some((_, v)) => *v = [*segs, *recs, *bytes],
            None => retention.push((reason.as_str(), [*segs, *recs, *bytes])),
        }
    }
    for (i, (name, help)) in families.iter().enumerate() {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n");
        for (reason, v) in &retention {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {}", v[i]);
        }
    }
}

/// A source as `/v1/sources` lists it.
pub fn source_json(s: &SourceInfo) -> serde_json::Value {
    serde_json::json!({
        "key": s.key,
        "identity": s.identity,
        "min_time": s.min_time_ns.map(utc_nanos_string),
        "max_time": s.max_time_ns.map(utc_nanos_string),
        "first_seq": s.first_seq,
        "next_seq": s.next_seq,
        "records": s.records,
        "disk_bytes": s.disk_bytes,
        "segments": s.segments,
        "retired": s.retired,
    })
}
