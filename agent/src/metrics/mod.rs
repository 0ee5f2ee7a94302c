//! Per-container threads, sockets, file descriptors, processes, CPU, memory and IO, exposed with
//! cAdvisor's metric names at a fraction of cAdvisor's cost.
//!
//! A dedicated thread runs one [`collect::Collector`] pass every `metrics.interval` and publishes
//! the [`Snapshot`] (Prometheus text rendered once); `/metrics` and `/v1/top` read the latest
//! snapshot and never walk `/proc` themselves.
//!
//! Where the cost goes, per pass: one directory walk of the cgroup tree; a handful of small
//! controller files per container; per process one `stat` of `/proc/<pid>/fd` (whose size *is*
//! the descriptor count on Linux ≥ 6.2 — cAdvisor lists the directory and `readlink`s every
//! entry) and, only without a pids controller, one read of `status`; and, budgeted, one
//! `readlinkat` per descriptor for sockets.
//!
//! Modules: [`cgroup`] (layout, discovery, controller files), [`process`] (per-pid reads over
//! [`sys`]), [`tcp`], [`identity`] (labels without the Kubernetes API), [`growth`] (leak rates),
//! [`collect`] (one pass), [`render`] (Prometheus text), [`top`] (`/v1/top`).

pub mod cgroup;
pub mod collect;
pub mod growth;
pub mod identity;
pub mod process;
pub mod render;
pub mod snapshot;
pub mod sys;
pub mod tcp;
pub mod top;

pub use collect::{Collector, Settings};
pub use snapshot::Snapshot;

use crossbeam_channel::{bounded, Sender};
use runnel_index::Store;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// The running collector: a thread taking a snapshot every interval.
pub struct MetricsService {
    latest: Arc<RwLock<Arc<Snapshot>>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsService {
    /// Start collecting every `interval`; the first pass runs at once.
    pub fn start(
        settings: Settings,
        store: Option<Arc<Store>>,
        interval: Duration,
    ) -> std::io::Result<MetricsService> {
        let latest = Arc::new(RwLock::new(Arc::new(Snapshot::default())));
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let publish = latest.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let mut collector = Collector::new(settings, store);
                loop {
                    if crate::failpoint::at("metrics") == crate::failpoint::Action::Exit {
                        return;
                    }
                    let snap = Arc::new(collector.pass());
                    if let Ok(mut slot) = publish.write() {
                        *slot = snap;
                    }
                    match stop_rx.recv_timeout(interval) {
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })?;
        Ok(MetricsService {
            latest,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.latest.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Append the latest snapshot's Prometheus text.
    pub fn render_metrics(&self, out: &mut String) {
        out.push_str(&self.snapshot().text);
    }

    /// `/v1/top` over the latest snapshot.
    pub fn top(&self, by: &str, limit: usize) -> Result<serde_json::Value, String> {
        top::top(&self.snapshot(), by, limit)
    }

    /// True once the collector thread has ended (a panic or an unexpected return), for the
    /// supervisor.
    pub fn has_died(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| t.is_finished())
    }

    /// Stop the thread and wait for it.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsService {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
