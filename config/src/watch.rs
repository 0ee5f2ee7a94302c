//! Noticing that the config file changed, the way a ConfigMap changes it.
//!
//! The kubelet never rewrites a mounted ConfigMap file in place. Its AtomicWriter writes the new
//! files into a fresh `..<timestamp>` directory, points a `..data_tmp` symlink at it, renames
//! that symlink over `..data`, and removes the old directory; the file the agent is given is a
//! symlink `runnel.yaml -> ..data/runnel.yaml`. A watch on the file itself would follow the old
//! inode and miss the change, so the watcher watches the file's *directory* (every step above
//! is an event there), and on any event reads the file through its symlinks and compares the
//! sha256 of its bytes with the last content seen. A periodic re-read is the backstop for
//! missed events (inotify unavailable, a queue overflow), and [`ConfigWatcher::next`] takes a
//! wake-up channel for SIGHUP.

use crate::{Config, ConfigError};
use crossbeam_channel::{bounded, Receiver};
use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long after the first event in the directory the file is read: the AtomicWriter's steps
/// come in a burst, and one read after the burst is enough.
const SETTLE: Duration = Duration::from_millis(50);

/// A config file's bytes as read, with their sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Lower-case hex sha256 of the file's bytes (before interpolation).
    pub sha256: String,
    /// The file's text.
    pub text: String,
}

impl Snapshot {
    /// Read `path` (following symlinks); the error names the file.
    pub fn read(path: &Path) -> Result<Snapshot, ConfigError> {
        let origin = path.display();
        let bytes = std::fs::read(path).map_err(|e| ConfigError {
            problems: vec![format!("{origin}: cannot read: {e}")],
        })?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let text = String::from_utf8(bytes).map_err(|e| ConfigError {
            problems: vec![format!("{origin}: not UTF-8 text: {e}")],
        })?;
        Ok(Snapshot { sha256, text })
    }

    /// Parse and validate the text; errors are prefixed with `path`.
    pub fn parse(&self, path: &Path) -> Result<Config, ConfigError> {
        Config::from_yaml_str(&self.text, &path.display().to_string())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What the watcher found: the new content, parsed, or why it cannot be used.
#[derive(Debug)]
pub struct Candidate {
    /// The content's sha256 (`None` when the file could not be read).
    pub sha256: Option<String>,
    /// The parsed and validated config, or every problem (each naming file, line and key).
    pub config: Result<Config, ConfigError>,
    /// True when the content equals what was seen last (a SIGHUP with nothing changed).
    pub unchanged: bool,
}

/// Errors setting up the watch.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The config file has no directory to watch.
    #[error("{0}: the config file's directory cannot be found")]
    NoDirectory(PathBuf),
}

/// Watches one config file's directory; see the module doc.
pub struct ConfigWatcher {
    path: PathBuf,
    /// The sha256 of the last content seen, or the read error's text.
    last_seen: String,
    events: Receiver<()>,
    backstop: Duration,
    // Kept alive for its events; `None` when inotify is unavailable (the backstop remains).
    _watcher: Option<notify::RecommendedWatcher>,
}

impl ConfigWatcher {
    /// Watch `path`'s directory. `running_sha256` is the content already in use (no candidate
    /// is reported for it); `backstop` is the period of the re-read without an event.
    pub fn new(
        path: &Path,
        running_sha256: &str,
        backstop: Duration,
    ) -> Result<ConfigWatcher, WatchError> {
        let dir = match path.parent() {
            Some(d) if d.as_os_str().is_empty() => PathBuf::from("."),
            Some(d) => d.to_path_buf(),
            None => return Err(WatchError::NoDirectory(path.to_path_buf())),
        };
        // One pending wake-up is enough: the file is read after the burst anyway.
        let (tx, events) = bounded(1);
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let relevant = match ev {
                Ok(ev) => !matches!(ev.kind, notify::EventKind::Access(_)),
                Err(_) => true,
            };
            if relevant {
                // Full: a wake-up is pending already. Disconnected: the agent stopped watching.
                let _ = tx.try_send(());
            }
        })
        .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "cannot watch the config directory; re-reading it every {backstop:?} instead");
                None
            }
        };
        Ok(ConfigWatcher {
            path: path.to_path_buf(),
            last_seen: running_sha256.to_string(),
            events,
            backstop: backstop.max(Duration::from_millis(100)),
            _watcher: watcher,
        })
    }

    /// Wait until the file's content differs from the last seen (after a directory event or
    /// the backstop period), or until `wake` delivers (SIGHUP: the file is read and reported
    /// even if unchanged). Returns `None` once `wake` is disconnected (the agent stops).
    pub fn next(&mut self, wake: &Receiver<()>) -> Option<Candidate> {
        loop {
            let forced = crossbeam_channel::select! {
                recv(wake) -> w => match w {
                    Ok(()) => true,
                    Err(_) => return None,
                },
                recv(self.events) -> _ => {
                    std::thread::sleep(SETTLE);
                    while self.events.try_recv().is_ok() {}
                    false
                },
                default(self.backstop) => false,
            };
            if let Some(c) = self.check(forced) {
                return Some(c);
            }
        }
    }

    /// Read the file now; a candidate when its content changed (or always when `forced`).
    pub fn check(&mut self, forced: bool) -> Option<Candidate> {
        let (seen, candidate) = match Snapshot::read(&self.path) {
            Ok(snap) => {
                let config = snap.parse(&self.path);
                (
                    snap.sha256.clone(),
                    Candidate {
                        sha256: Some(snap.sha256),
                        config,
                        unchanged: false,
                    },
                )
            }
            Err(e) => (
                e.to_string(),
                Candidate {
                    sha256: None,
                    config: Err(e),
                    unchanged: false,
                },
            ),
        };
        let unchanged = seen == self.last_seen;
        if unchanged && !forced {
            return None;
        }
        self.last_seen = seen;
        Some(Candidate {
            unchanged,
            ..candidate
        })
    }
}
