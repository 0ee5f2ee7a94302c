//! The public face: [`ElasticsearchSink::start`] builds everything, checks the config, installs
//! the index template if asked, and runs the pipeline on its own tokio runtime;
//! [`SinkHandle`] drains, stops, reports metrics and status.

use crate::concurrency::Controller;
use crate::cursor::CursorStore;
use crate::dead_letter::DeadLetter;
use crate::index_name::IndexPattern;
use crate::metrics::Metrics;
use crate::pipeline::{Command, Pipeline, Settings};
use crate::ship::ShipContext;
use crate::status::Status;
use crate::transport::{Answer, Transport};
use crate::SinkError;
use runnel_config::{ElasticsearchConfig, EsMode, IdMode};
use runnel_index::Store;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{self, Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// Default dead-letter file name inside the state directory.
pub const DEAD_LETTER_FILE: &str = "dead_letter.ndjson";

/// Starts the Elasticsearch/OpenSearch sink.
#[derive(Debug)]
pub struct ElasticsearchSink;

/// A running sink. Dropping it shuts it down cleanly (cursors saved).
#[derive(Debug)]
pub struct SinkHandle {
    cmds: mpsc::UnboundedSender<Command>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    endpoints: Vec<String>,
    dead_letter_path: std::path::PathBuf,
    /// The pipeline task: it ends only on `Command::Shutdown`, so its end before that is a
    /// dead sink (see [`SinkHandle::is_finished`]).
    pipeline: tokio::task::JoinHandle<()>,
}

/// A check the pipeline makes at the top of every turn; `true` makes it return (an embedder's
/// fault injection: the agent's debug failpoints). Set once per process.
pub type LoopHook = fn() -> bool;

static LOOP_HOOK: std::sync::OnceLock<LoopHook> = std::sync::OnceLock::new();

/// Install the [`LoopHook`] (the first call wins).
pub fn set_loop_hook(hook: LoopHook) {
    let _ = LOOP_HOOK.set(hook);
}

/// The pipeline's turn check: `true` when the hook asks it to return.
pub(crate) fn loop_hook() -> bool {
    LOOP_HOOK.get().is_some_and(|h| h())
}

impl ElasticsearchSink {
    /// Check the config, open the cursor (a corrupt cursor file is an error naming it), build
    /// the HTTP client (secret files must be readable) and start shipping from the cursor.
    pub fn start(
        cfg: &ElasticsearchConfig,
        node_name: &str,
        store: Arc<Store>,
        state_dir: &Path,
    ) -> Result<SinkHandle, SinkError> {
        let index = IndexPattern::parse(&cfg.index)?;
        if matches!(cfg.mode, EsMode::DataStream) && index.has_time() {
            return Err(SinkError::Config {
                key: "index",
                message: format!(
                    "{:?} names a new data stream every day or hour; in mode: data_stream the \
                     cluster rolls the stream over itself, so give a fixed name such as \
                     \"logs-runnel-default\" (%{{field}} parts are fine)",
                    cfg.index
                ),
            });
        }
        let transport = Transport::new(cfg)?;
        let cursors = Arc::new(CursorStore::new(state_dir)?);
        let saved = cursors.load()?;
        let batch_bytes = usize::try_from(cfg.batch.max_bytes)
            .unwrap_or(usize::MAX)
            .max(1024);
        let max_in_flight = cfg.max_in_flight_bytes.max(batch_bytes as u64);
        // `as`: the config may type max_docs as usize or u64.
        #[allow(clippy::unnecessary_cast)]
        let batch_docs = (cfg.batch.max_docs as usize).max(1);
        let settings = Settings {
            node: node_name.to_string(),
            index,
            deterministic_ids: matches!(cfg.id, IdMode::Deterministic),
            batch_bytes,
            batch_docs,
            batch_timeout: cfg.batch.timeout,
            max_in_flight,
            parse_json: cfg.parse_json.clone().filter(|f| !f.is_empty()),
        };
        let dead_letter_path = cfg
            .dead_letter
            .path
            .clone()
            .unwrap_or_else(|| state_dir.join(DEAD_LETTER_FILE));
        let metrics = Arc::new(Metrics::default());
        let status = Arc::new(Status::default());
        let endpoints = transport.endpoints().to_vec();
        let wake = Arc::new(Notify::new());
        let concurrency = Controller::new(&cfg.concurrency);
        metrics
            .concurrency_limit
            .store(concurrency.limit() as u64, Relaxed);
        let ctx = Arc::new(ShipContext {
            transport,
            metrics: metrics.clone(),
            status: status.clone(),
            dead_letter: Mutex::new(DeadLetter::new(
                dead_letter_path.clone(),
                cfg.dead_letter.max_bytes,
            )),
            retry_initial: cfg.retry.initial.max(Duration::from_millis(1)),
            retry_max: cfg.retry.max.max(cfg.retry.initial),
            concurrency,
            wake: wake.clone(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(4)
            .thread_name("runnel-es-sink")
            .enable_all()
            .build()
            .map_err(SinkError::Runtime)?;
        {
            let wake = wake.clone();
            store.add_listener(Arc::new(move |_key: &str, _next: u64| wake.notify_one()));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let template = cfg.template.install.then(|| {
            (
                cfg.template.name.clone(),
                template_body(&cfg.index, matches!(cfg.mode, EsMode::DataStream)),
            )
        });
        // Shipping waits for the template (so the first index gets its mappings), while the
        // pipeline already answers drain and shutdown.
        let gate = Arc::new(AtomicBool::new(template.is_none()));
        if let Some((name, body)) = template {
            let (ctx, gate, wake) = (ctx.clone(), gate.clone(), wake.clone());
            runtime.spawn(async move {
                install_template(&ctx, &name, body).await;
                gate.store(true, Ordering::Release);
                wake.notify_one();
            });
        }
        let pipeline = Pipeline::new(store, settings, ctx, cursors, saved);
        let pipeline = runtime.spawn(pipeline.run(rx, wake, gate));
        Ok(SinkHandle {
            cmds: tx,
            metrics,
            status,
            runtime: Mutex::new(Some(runtime)),
            endpoints,
            dead_letter_path,
            pipeline,
        })
    }
}

/// The index template: `@timestamp` as `date_nanos`, `message` as text, other strings as
/// keywords; `data_stream: {}` in data stream mode. Patterns are the literal prefix of the
/// index pattern followed by `*`.
pub fn template_body(index: &str, data_stream: bool) -> Vec<u8> {
    let prefix: String = index.chars().take_while(|&c| c != '%').collect();
    let mut t = serde_json::json!({
        "index_patterns": [format!("{prefix}*")],
        "priority": 150,
        "template": { "mappings": {
            "dynamic_templates": [{ "strings_as_keyword": {
                "match_mapping_type": "string",
                "mapping": { "type": "keyword", "ignore_above": 1024 } } }],
            "properties": {
                "@timestamp": { "type": "date_nanos" },
                "message": { "type": "text" },
                "log": { "properties": { "offset": { "type": "long" } } }
            } } }
    });
    if data_stream {
        t["data_stream"] = serde_json::json!({});
    }
    serde_json::to_vec(&t).unwrap_or_default()
}

/// Put the index template. A server that answers (even with an error such as 404 from a
/// server without the `_index_template` API, or 403 for a key without template privileges)
/// gets one warning and shipping goes on without the template. While the cluster cannot be
/// reached or is overloaded (connection errors, timeouts, 429, 502–504) the install is retried
/// with backoff, and shipping waits: without it the first daily index would be created with
/// dynamic mappings, and in data stream mode as a plain index.
async fn install_template(ctx: &ShipContext, name: &str, body: Vec<u8>) {
    let path = format!("/_index_template/{name}");
    let mut attempt = 0u32;
    loop {
        let error = match ctx.transport.put_json(&path, body.clone()).await {
            Answer::Status(s, _) if (200..300).contains(&s) => {
                tracing::info!(template = name, "index template installed");
                return;
            }
            Answer::Status(s @ (429 | 502 | 503 | 504), b) => {
                format!(
                    "HTTP {s}: {}",
                    String::from_utf8_lossy(&b[..b.len().min(200)])
                )
            }
            Answer::Status(s, b) => {
                tracing::warn!(
                    template = name,
                    status = s,
                    body = %String::from_utf8_lossy(&b[..b.len().min(200)]),
                    "the cluster did not accept the index template (no _index_template API?); shipping without it"
                );
                return;
            }
            Answer::Failed { message, .. } => message,
        };
        if attempt == 0 {
            tracing::warn!(template = name, error = %error,
                "cannot install the index template yet; shipping starts once it is installed (retrying)");
        }
        ctx.status
            .set_error(format!("installing the index template {name}: {error}"));
        tokio::time::sleep(ctx.backoff(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

impl SinkHandle {
    /// Ship everything stored in the index now and wait until it is acknowledged (or
    /// dead-lettered) and the cursor is saved — for `--oneshot`. Waits as long as shipping
    /// makes progress (documents acknowledged, dead-lettered, or found deleted by retention);
    /// gives up only after `no_progress` without any, saying how far it got.
    pub fn drain(&self, no_progress: Duration) -> Result<(), SinkError> {
        let t0 = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        self.cmds
            .send(Command::Drain(tx))
            .map_err(|_| SinkError::Stopped)?;
        let m = &self.metrics;
        let progress = || {
            m.docs_acked.load(Relaxed)
                + m.docs_dead_lettered.load(Relaxed)
                + m.records_lost.load(Relaxed)
        };
        let start = progress();
        let (mut seen, mut last_progress) = (start, Instant::now());
        let step = no_progress.clamp(Duration::from_millis(1), Duration::from_millis(200));
        loop {
            match rx.recv_timeout(step) {
                Ok(()) => return Ok(()),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(SinkError::Stopped)
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = progress();
            if now != seen {
                (seen, last_progress) = (now, Instant::now());
            } else if last_progress.elapsed() >= no_progress {
                return Err(SinkError::DrainTimeout {
                    waited_secs: t0.elapsed().as_secs_f64(),
                    no_progress_secs: last_progress.elapsed().as_secs_f64(),
                    done_records: now - start,
                    pending_records: self
                        .metrics
                        .lag
                        .lock()
                        .map(|l| l.values().map(|x| x.records).sum())
                        .unwrap_or(0),
                    last_error: self.status.last_error().unwrap_or_else(|| "none".into()),
                });
            }
        }
    }

    /// Stop: cancel in-flight requests (they will be re-sent after a restart, harmlessly),
    /// save the cursors, stop the runtime.
    pub fn shutdown(self) {
        self.stop(true);
    }

    /// Stop at once without saving anything, as a crash would (for tests of resume).
    pub fn abort(self) {
        self.stop(false);
    }

    fn stop(&self, graceful: bool) {
        let Some(rt) = self.runtime.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        // Blocking inside another runtime's worker would panic: stop without waiting there.
        let in_async = tokio::runtime::Handle::try_current().is_ok();
        if graceful && !in_async {
            let (tx, rx) = std::sync::mpsc::channel();
            if self.cmds.send(Command::Shutdown(tx)).is_ok() {
                let _ = rx.recv_timeout(Duration::from_secs(10));
            }
            rt.shutdown_timeout(Duration::from_secs(2));
        } else {
            rt.shutdown_background();
        }
    }

    /// True when the pipeline task has ended (returned or panicked) although no shutdown was
    /// asked for: the sink ships nothing any more. A supervisor polls this.
    pub fn is_finished(&self) -> bool {
        let stopped = self.runtime.lock().map(|r| r.is_none()).unwrap_or(false);
        !stopped && self.pipeline.is_finished()
    }

    /// Prometheus text for the sink's counters (`runnel_sink_es_*`).
    pub fn render_metrics(&self, out: &mut String) {
        crate::metrics::render_up(out, true);
        self.metrics.render(out);
    }

    /// `{"state":"ok"|"degraded","last_error":…,…}` plus endpoints and the dead-letter path.
    pub fn status(&self) -> serde_json::Value {
        let mut v = self.status.to_json();
        v["endpoints"] = serde_json::json!(self.endpoints);
        v["dead_letter_file"] = serde_json::json!(self.dead_letter_path.display().to_string());
        v["documents_acked"] = serde_json::json!(self.metrics.docs_acked.load(Relaxed));
        v["documents_dead_lettered"] =
            serde_json::json!(self.metrics.docs_dead_lettered.load(Relaxed));
        v
    }

    /// The counters, for tests and embedding.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.stop(true);
    }
}
