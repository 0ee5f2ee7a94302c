//! Live reload: a new config is parsed and validated in full, compared with the running one
//! key by key ([`runnel_config::Diff`]), and each part is handed its share — all or nothing.
//!
//! Order: (1) refuse keys that cannot change live; (2) check every part's share without
//! applying anything (globs compile, secret files read, the log filter parses); (3) start
//! what replaces something (a new metrics collector) while the old one still runs; (4) the
//! sink: stop it (its cursor is saved) and start it with the new settings — a failure starts
//! the old settings again and refuses the update (the forward listener is replaced the same
//! way, before the sink, and put back if the sink fails); (5) apply the shares that cannot fail
//! (inputs, retention, log level, health). Nothing that holds data is rebuilt: the index
//! stays open, the ingest queue keeps its records, the sink resumes from its durable cursor
//! and its deterministic `_id`s make the re-sent tail of a batch a 409, not a duplicate.

use super::logging::LogLevel;
use super::parts::{self, Slot};
use crate::ingest::Submitter;
use crate::inputs::forward::running::ForwardInput;
use crate::inputs::http_ingest::IngestSlot;
use crate::metrics::MetricsService;
use crate::tail::Ingest;
use runnel_config::{Candidate, Config, ConfigWatcher, Diff};
use runnel_index::Store;
use runnel_sinks::SinkHandle;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long a reload waits for the tailer to take its new settings (it may be held back by a
/// full queue; the settings are queued and applied when it is free).
const INPUTS_APPLY_WAIT: Duration = Duration::from_secs(10);

/// Adjusts every loaded config the way the running one was adjusted (`--demo` points the
/// data dir and roots at its temporary layout).
pub type Fixup = Box<dyn Fn(&mut Config) + Send + Sync>;

/// The running config and the reload counters.
struct Running {
    cfg: Config,
    sha256: String,
    generation: u64,
    last_error: Option<String>,
    ok: u64,
    errors: u64,
}

/// The parts a reload reconfigures.
pub struct Parts {
    /// The index (retention limits).
    pub store: Arc<Store>,
    /// The file inputs (weak: a shutdown owns them).
    pub ingest: Weak<Ingest>,
    /// The Elasticsearch sink, when enabled.
    pub sink: Arc<Slot<SinkHandle>>,
    /// Why the sink did not start (at start or after a reload), when it did not.
    pub sink_failure: Arc<Slot<runnel_sinks::FailedSink>>,
    /// The metrics collector, when enabled.
    pub metrics: Arc<Slot<MetricsService>>,
    /// The log filter.
    pub log: LogLevel,
}

/// Applies config updates to a running agent; see the module doc.
pub struct Reloader {
    path: PathBuf,
    pushed: Mutex<Option<(Arc<ForwardInput>, Submitter)>>,
    http_ingest: Mutex<Option<Arc<IngestSlot>>>,
    running: Mutex<Running>,
    fixup: Fixup,
    parts: Parts,
}

impl Reloader {
    /// A reloader for an agent started with `cfg` read from `path` (content `sha256`).
    pub fn new(path: PathBuf, cfg: Config, sha256: String, fixup: Fixup, parts: Parts) -> Self {
        Reloader {
            path,
            pushed: Mutex::new(None),
            http_ingest: Mutex::new(None),
            running: Mutex::new(Running {
                cfg,
                sha256,
                generation: 1,
                last_error: None,
                ok: 0,
                errors: 0,
            }),
            fixup,
            parts,
        }
    }

    /// The forward input (started on the HTTP runtime, after the reloader exists).
    pub fn attach_pushed_inputs(&self, forward: Arc<ForwardInput>, submitter: Submitter) {
        *self.pushed.lock().unwrap_or_else(|p| p.into_inner()) = Some((forward, submitter));
    }

    /// The HTTP ingest endpoint the server reads.
    pub fn attach_http_ingest(&self, slot: Arc<IngestSlot>) {
        *self.http_ingest.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
    }

    fn pushed(&self) -> Option<(Arc<ForwardInput>, Submitter)> {
        self.pushed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn http_ingest(&self) -> Option<Arc<IngestSlot>> {
        self.http_ingest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `health.stall_timeout` of the running config.
    pub fn stall_timeout(&self) -> Duration {
        self.running().cfg.health.stall_timeout
    }

    /// Handle what the watcher found: apply it, or refuse it with one log line.
    pub fn handle(&self, c: Candidate) {
        if c.unchanged {
            // The same bytes as the last update seen. When that update was refused, the cause
            // may have been outside the file (an unreadable secret since fixed): a SIGHUP
            // retries it against the running config rather than calling it unchanged.
            let r = self.running();
            if r.last_error.is_none() || c.sha256.as_deref() == Some(r.sha256.as_str()) {
                tracing::info!(file = %self.path.display(), "config file unchanged; nothing to reload");
                return;
            }
            tracing::info!(file = %self.path.display(),
                "config file unchanged since the refused update; applying it again");
        }
        let mut new = match c.config {
            Ok(cfg) => cfg,
            Err(e) => return self.refused(e.one_line()),
        };
        (self.fixup)(&mut new);
        // Reloads run on one thread; the running config is read here and replaced below.
        let old = self.running().cfg.clone();
        match self.apply(&old, &new) {
            Ok(changed) => {
                // At the new level: with `log.level: debug` this line is its first effect.
                for key in &changed {
                    tracing::debug!(key = %key, "config key changed");
                }
                let mut r = self.running();
                r.cfg = new;
                r.sha256 = c.sha256.unwrap_or_default();
                r.generation += 1;
                r.ok += 1;
                r.last_error = None;
                tracing::info!(file = %self.path.display(), generation = r.generation,
                    changed = %changed.join(","), "config reloaded");
            }
            Err(msg) => self.refused(msg),
        }
    }

    fn refused(&self, msg: String) {
        let mut r = self.running();
        r.errors += 1;
        tracing::error!(file = %self.path.display(), generation = r.generation,
            "config reload refused, the running config stays in force: {msg}");
        r.last_error = Some(msg);
    }

    /// Apply `new` over `old`, all or nothing; returns the changed keys.
    fn apply(&self, old: &Config, new: &Config) -> Result<Vec<String>, String> {
        let diff = Diff::between(old, new);
        let restart = diff.needs_restart();
        if !restart.is_empty() {
            return Err(restart.join("; "));
        }
        let p = &self.parts;
        // (2) Check every share.
        let inputs = if diff.touches("inputs") {
            Some(Ingest::prepare(new).map_err(|e| e.to_string())?)
        } else {
            None
        };
        let forward = if diff.touches("inputs.forward") {
            Some(ForwardInput::prepare(new)?)
        } else {
            None
        };
        let sink_changed = diff.touches("sinks.elasticsearch") || diff.touches("node_name");
        if sink_changed {
            parts::check_sink(new)?;
        }
        let metrics_changed =
            diff.touches("metrics") || diff.touches("inputs.docker") || diff.touches("inputs.cri");
        let level = if diff.touches("log.level") {
            Some(LogLevel::prepare(&new.log.level)?)
        } else {
            None
        };
        // (3) Start the replacement collector while the old one runs.
        let new_metrics = if metrics_changed {
            Some(parts::start_metrics(new, &p.store)?)
        } else {
            None
        };
        // (4) Listeners and the sink: stop, start with the new settings, or go back to the
        // old ones (and undo what was switched before).
        let pushed = self.pushed();
        let forward_before = match (&forward, &pushed) {
            (Some(settings), Some((f, _))) => {
                let before = f.running_settings();
                let addr = f.apply(settings.clone())?;
                if let Some(a) = addr {
                    tracing::info!(listen = %a, "forward input listening with the new settings");
                }
                Some(before)
            }
            _ => None,
        };
        let undo_forward = || {
            if let (Some(before), Some((f, _))) = (&forward_before, &pushed) {
                if let Err(e) = f.apply(before.clone()) {
                    tracing::error!(error = %e, "the forward input could not go back to the running settings");
                }
            }
        };
        if sink_changed {
            if let Some(s) = p.sink.replace(None) {
                s.shutdown();
            }
            match parts::start_sink(new, &p.store) {
                Ok(s) => {
                    p.sink.replace(s);
                    p.sink_failure.replace(None);
                }
                Err(e) => {
                    match parts::start_sink(old, &p.store) {
                        Ok(s) => {
                            p.sink.replace(s);
                        }
                        Err(e2) => tracing::error!(error = %e2,
                            "the sink could not be started again with the running settings"),
                    }
                    undo_forward();
                    return Err(e);
                }
            }
        }
        // (5) The shares that cannot fail.
        if let Some(m) = new_metrics {
            if let Some(old) = p.metrics.replace(m) {
                old.shutdown();
            }
        }
        if let Some(r) = inputs {
            if let Some(ingest) = p.ingest.upgrade() {
                if !ingest.reconfigure(r, INPUTS_APPLY_WAIT) {
                    tracing::warn!(
                        "the tailer is busy; the new inputs settings apply when it is free"
                    );
                }
            }
        }
        if diff.touches("inputs.http_ingest") {
            if let (Some(slot), Some((_, sub))) = (self.http_ingest(), &pushed) {
                slot.configure(new, sub);
            }
        }
        if diff.touches("index") {
            p.store
                .set_retention(new.index.max_disk_bytes, new.index.max_age);
        }
        if let Some(l) = level {
            p.log.apply(l);
        }
        // health.stall_timeout is read from the running config by every /healthz.
        Ok(diff.changed)
    }

    /// `runnel_config_reloads_total` and `runnel_config_generation`.
    pub fn render_metrics(&self, out: &mut String) {
        let r = self.running();
        let _ = write!(
            out,
            "# HELP runnel_config_reloads_total Config reloads, by result (error: refused, the \
             running config stays in force).\n# TYPE runnel_config_reloads_total counter\n\
             runnel_config_reloads_total{{result=\"ok\"}} {}\n\
             runnel_config_reloads_total{{result=\"error\"}} {}\n\
             # HELP runnel_config_generation Generation of the running config (1 at start, \
             +1 per applied reload).\n# TYPE runnel_config_generation gauge\n\
             runnel_config_generation {}\n",
            r.ok, r.errors, r.generation
        );
    }

    /// The `config` component of `/v1/status`: degraded while the last reload was refused
    /// (the file on disk is not what runs).
    pub fn status(&self) -> serde_json::Value {
        let r = self.running();
        serde_json::json!({
            "state": if r.last_error.is_some() { "degraded" } else { "ok" },
            "file": self.path.display().to_string(),
            "sha256": r.sha256,
            "generation": r.generation,
            "reloads_ok": r.ok,
            "reloads_error": r.errors,
            "last_error": r.last_error,
        })
    }
}

/// Run the reload loop on its own thread until `wake` is disconnected; each message on
/// `wake` (SIGHUP) forces a re-read.
pub fn spawn(
    reloader: Arc<Reloader>,
    mut watcher: ConfigWatcher,
    wake: crossbeam_channel::Receiver<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("runnel-reload".into())
        .spawn(move || {
            while let Some(c) = watcher.next(&wake) {
                reloader.handle(c);
            }
        })
}
