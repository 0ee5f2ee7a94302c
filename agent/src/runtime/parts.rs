//! The replaceable parts of a running agent — the Elasticsearch sink and the metrics
//! collector — held in slots that the HTTP renderers read, so that a reload can stop one and
//! start another in its place while `/metrics` and `/v1/status` keep answering.

use crate::metrics;
use runnel_config::{Config, EsMode};
use runnel_index::Store;
use runnel_sinks::SinkHandle;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A part a reload may replace (or remove, or add).
pub struct Slot<T>(RwLock<Option<Arc<T>>>);

impl<T> Slot<T> {
    /// A slot holding `v`.
    pub fn new(v: Option<T>) -> Slot<T> {
        Slot(RwLock::new(v.map(Arc::new)))
    }

    /// The part now in the slot.
    pub fn get(&self) -> Option<Arc<T>> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Put `v` in the slot; returns what was there, owned once no reader holds it any more.
    pub fn replace(&self, v: Option<T>) -> Option<T> {
        let old = match self.0.write() {
            Ok(mut g) => std::mem::replace(&mut *g, v.map(Arc::new)),
            Err(p) => std::mem::replace(&mut *p.into_inner(), v.map(Arc::new)),
        };
        old.and_then(sole)
    }
}

/// Wait (briefly) until a render that cloned the part has dropped its clone, so that the part
/// is stopped here, on this thread, and not inside an HTTP task. `None` when a holder kept it
/// longer (it is then stopped when that holder drops it).
fn sole<T>(mut a: Arc<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Arc::try_unwrap(a) {
            Ok(v) => return Some(v),
            Err(back) if Instant::now() < deadline => {
                a = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => {
                tracing::warn!("a replaced part is still in use; it stops when released");
                return None;
            }
        }
    }
}

/// Check the sink settings of a new config as far as possible without starting it: the index
/// pattern parses, the mode fits it, the secret and TLS files are readable.
pub fn check_sink(cfg: &Config) -> Result<(), String> {
    let es = &cfg.sinks.elasticsearch;
    if !es.enabled {
        return Ok(());
    }
    let index = runnel_sinks::index_name::IndexPattern::parse(&es.index)
        .map_err(|e| format!("sinks.elasticsearch.index: {e}"))?;
    if matches!(es.mode, EsMode::DataStream) && index.has_time() {
        return Err(format!(
            "sinks.elasticsearch.index: {:?} has a date in data_stream mode; give a fixed name",
            es.index
        ));
    }
    runnel_sinks::transport::Transport::new(es).map_err(|e| e.to_string())?;
    Ok(())
}

/// Start the sink the config asks for (none when disabled). Its cursor lives in the data dir,
/// so a sink started again resumes where the previous one stopped.
pub fn start_sink(cfg: &Config, store: &Arc<Store>) -> Result<Option<SinkHandle>, String> {
    if !cfg.sinks.elasticsearch.enabled {
        return Ok(None);
    }
    let state_dir = cfg.data_dir.join("sinks").join("elasticsearch");
    runnel_sinks::ElasticsearchSink::start(
        &cfg.sinks.elasticsearch,
        &cfg.node_name,
        store.clone(),
        &state_dir,
    )
    .map(Some)
    .map_err(|e| format!("starting the elasticsearch sink: {e}"))
}

/// Start the metrics collector the config asks for (none when disabled).
pub fn start_metrics(
    cfg: &Config,
    store: &Arc<Store>,
) -> Result<Option<metrics::MetricsService>, String> {
    if !cfg.metrics.enabled {
        return Ok(None);
    }
    metrics::MetricsService::start(
        metrics::Settings::from_config(cfg),
        Some(store.clone()),
        cfg.metrics.interval,
    )
    .map(Some)
    .map_err(|e| format!("starting the metrics collector: {e}"))
}
