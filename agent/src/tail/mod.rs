//! The log inputs: follow every container's Docker json-file and CRI log on the node and write
//! their records into the index exactly once, in file order.
//!
//! A record's trip: [`discover`] finds `<id>/<id>-json.log` and
//! `<ns>_<pod>_<uid>/<container>/<restart>.log` (inotify plus a periodic rescan); a [`source`]
//! follows one container's live file and drains its rotated files oldest first; [`file`] reads
//! 64 KiB blocks into one buffer shared by all files; [`lines`] cuts lines, [`parse`]s them
//! without building JSON values, merges partial fragments and caps long lines; the records go in
//! bounded batches to the one ingest writer ([`crate::ingest`]), which appends them and syncs
//! once per group (group commit).
//!
//! Exactly once: each record carries `Position::File { file, offset }` where `file` is the
//! file's identity (dev, inode, xxh3 of its first line) and `offset` is just after the line's
//! final fragment. The index recovers, from its own data, the last durable offset per file
//! identity; at start the tailer asks `Store::durable_position` (and, for gzipped or copied
//! rotations whose inode changed, matches the fingerprint of the source's last durable record)
//! and resumes there. A crash loses only records not yet synced — they are re-read; a record
//! synced is never re-read because reading resumes after it.

pub mod discover;
pub mod file;
pub mod filter;
pub mod identity;
pub mod lines;
pub mod parse;
pub mod source;
pub mod stats;

mod tailer;

use crate::ingest::{Writer, WriterHandle, WriterSettings};
use crossbeam_channel::{bounded, Sender};
use runnel_index::Store;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

pub use stats::{Input, Stats};

/// Errors starting or running the inputs.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// A setting of the `inputs:` section cannot be used.
    #[error("inputs.{key}: {what}")]
    Config {
        /// The key.
        key: &'static str,
        /// What is wrong.
        what: String,
    },
    /// A thread could not be started.
    #[error("starting the {name} thread: {source}")]
    Thread {
        /// Thread name.
        name: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file watcher could not be created.
    #[error("watching {path}: {source}")]
    Watch {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: notify::Error,
    },
    /// The tailer thread stopped before the request was answered.
    #[error("the tailer thread stopped unexpectedly (see the log)")]
    Stopped,
}

pub(crate) enum Cmd {
    Oneshot(Sender<()>),
    Stop(Sender<()>),
    Reconfigure(Box<tailer::Settings>, Sender<()>),
}

/// The inputs' part of a config reload, checked and ready to apply ([`Ingest::prepare`]).
pub struct Reconfig(Box<tailer::Settings>);

/// Set once the first discovery pass is done (for `/readyz`).
#[derive(Default)]
pub(crate) struct Ready {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Ready {
    pub(crate) fn set(&self) {
        if let Ok(mut d) = self.done.lock() {
            *d = true;
        }
        self.cv.notify_all();
    }
}

/// The running file inputs: one tailer thread feeding the ingest writer.
pub struct Ingest {
    cmd: Sender<Cmd>,
    stats: Arc<Stats>,
    ready: Arc<Ready>,
    tailer: Option<JoinHandle<()>>,
    /// The writer this tailer started itself ([`Ingest::start`]); `None` when it was given one.
    own_writer: Option<Writer>,
}

impl Ingest {
    /// Start following the configured Docker and CRI roots into `store` with a writer of its
    /// own (tools and tests that run the file inputs alone). Roots that do not exist yet are
    /// waited for.
    pub fn start(cfg: &runnel_config::Config, store: Arc<Store>) -> Result<Ingest, TailError> {
        let writer =
            Writer::start(store.clone(), WriterSettings::from_config(cfg)).map_err(|source| {
                TailError::Thread {
                    name: "index writer",
                    source,
                }
            })?;
        let mut ingest = Ingest::start_with(cfg, store, writer.handle())?;
        ingest.own_writer = Some(writer);
        Ok(ingest)
    }

    /// Start following the configured roots, handing records to the shared `writer`.
    pub fn start_with(
        cfg: &runnel_config::Config,
        store: Arc<Store>,
        writer: WriterHandle,
    ) -> Result<Ingest, TailError> {
        let settings = tailer::Settings::from_config(cfg)?;
        let stats = Arc::new(Stats::new(writer.stats.clone()));
        let ready = Arc::new(Ready::default());
        let (ctx, crx) = bounded(4);
        let t = tailer::Tailer::new(
            settings,
            store,
            (writer.tx, writer.pool),
            stats.clone(),
            ready.clone(),
        )?;
        let tailer = std::thread::Builder::new()
            .name("runnel-tailer".into())
            .spawn(move || t.run(crx))
            .map_err(|source| TailError::Thread {
                name: "tailer",
                source,
            })?;
        Ok(Ingest {
            cmd: ctx,
            stats,
            ready,
            tailer: Some(tailer),
            own_writer: None,
        })
    }

    /// Block until the first discovery pass is done (every log present at start is known).
    pub fn wait_ready(&self) {
        let Ok(mut d) = self.ready.done.lock() else {
            return;
        };
        while !*d {
            if self.tailer.as_ref().is_some_and(|t| t.is_finished()) {
                return;
            }
            d = match self
                .ready
                .cv
                .wait_timeout(d, std::time::Duration::from_millis(200))
            {
                Ok((d, _)) => d,
                Err(_) => return,
            };
        }
    }

    /// `--oneshot`: ingest everything present (rotated and gzipped files included) to the end,
    /// sync the index, and stop.
    pub fn run_until_eof(mut self) -> Result<(), TailError> {
        let (tx, rx) = bounded(1);
        self.cmd
            .send(Cmd::Oneshot(tx))
            .map_err(|_| TailError::Stopped)?;
        rx.recv().map_err(|_| TailError::Stopped)?;
        self.join();
        Ok(())
    }

    /// Stop reading, hand everything read to the index, final sync.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let (tx, rx) = bounded(1);
        if self.cmd.send(Cmd::Stop(tx)).is_ok() {
            let _ = rx.recv();
        }
        self.join();
    }

    fn join(&mut self) {
        if let Some(t) = self.tailer.take() {
            let _ = t.join();
        }
        if let Some(w) = self.own_writer.take() {
            w.shutdown();
        }
    }

    /// Check the `inputs:` section of a new config (globs compile, sizes fit) without
    /// applying anything: the first half of an all-or-nothing reload.
    pub fn prepare(cfg: &runnel_config::Config) -> Result<Reconfig, TailError> {
        tailer::Settings::from_config(cfg).map(|s| Reconfig(Box::new(s)))
    }

    /// Hand a prepared reconfiguration to the tailer thread, which applies it between polls;
    /// waits up to `wait` for it to be applied (a tailer held back by a full queue applies it
    /// when it is free). Returns false when it was not applied in time.
    pub fn reconfigure(&self, r: Reconfig, wait: std::time::Duration) -> bool {
        let (tx, rx) = bounded(1);
        if self.cmd.send(Cmd::Reconfigure(r.0, tx)).is_err() {
            return false;
        }
        rx.recv_timeout(wait).is_ok()
    }

    /// The name of a thread of this input that has ended (a panic or an unexpected return),
    /// for the supervisor; `None` while it runs (or after a requested shutdown).
    pub fn dead_part(&self) -> Option<&'static str> {
        if self.tailer.as_ref().is_some_and(|t| t.is_finished()) {
            return Some("tailer");
        }
        if self.own_writer.as_ref().is_some_and(|w| w.is_finished()) {
            return Some("index writer");
        }
        None
    }

    /// True once the tailer thread has ended (it should only when stopped).
    pub fn is_finished(&self) -> bool {
        self.tailer.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The counters (for tests and the HTTP layer).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Prometheus text (0.0.4) of the input counters.
    pub fn render_metrics(&self, out: &mut String) {
        self.stats.render(out);
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.tailer.is_some() {
            self.stop();
        }
    }
}
