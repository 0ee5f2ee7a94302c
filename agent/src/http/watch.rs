//! Re-reading files mounted from Secrets (tokens, TLS certificate and key) when they change.
//!
//! The kubelet updates a Secret volume with its AtomicWriter: it writes a new `..<timestamp>`
//! directory, points a `..data_tmp` symlink at it, renames that over `..data`, and removes the
//! old directory; `tokens.yaml` itself is a symlink to `..data/tokens.yaml` and never changes.
//! So the file's own inode is never written: the watch is on the directory that holds it
//! (every step above is an event there), and each event re-reads the file through its path.
//! A periodic re-read is the backstop for missed events, as elsewhere in the agent.

use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Events closer together than this are handled by one re-read.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Keeps a watch alive; dropping it stops the watching thread.
pub struct FileWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Call `reload` after any change in the directories holding `files`, and every `backstop`.
/// `reload` must be cheap when nothing changed (compare the content it reads).
pub fn watch_files(
    name: &str,
    files: &[PathBuf],
    backstop: Duration,
    mut reload: impl FnMut() + Send + 'static,
) -> Result<FileWatch, String> {
    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok() {
            let _ = tx.send(());
        }
    })
    .map_err(|e| format!("{name}: cannot watch files: {e}"))?;
    let mut dirs: Vec<&Path> = files
        .iter()
        .map(|f| {
            f.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        // A directory that does not exist yet (a tokens file configured before its volume is
        // there) is re-read by the backstop only.
        if !d.is_dir() {
            tracing::warn!(dir = %d.display(), backstop = ?backstop, "{name}: directory does not exist; re-reading on the backstop only");
            continue;
        }
        watcher
            .watch(d, RecursiveMode::NonRecursive)
            .map_err(|e| format!("{name}: cannot watch {}: {e}", d.display()))?;
    }
    std::thread::Builder::new()
        .name(format!("watch-{name}"))
        .spawn(move || loop {
            match rx.recv_timeout(backstop) {
                Ok(()) => {
                    // Let the rest of a swap (several events) land, then read once; a
                    // directory that never goes quiet is still re-read every second.
                    let until = std::time::Instant::now() + Duration::from_secs(1);
                    while std::time::Instant::now() < until && rx.recv_timeout(DEBOUNCE).is_ok() {}
                    reload();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => reload(),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        })
        .map_err(|e| format!("{name}: spawning the watch thread: {e}"))?;
    Ok(FileWatch { _watcher: watcher })
}
