//! inotify watches over the log roots. A root is watched recursively as a whole. inotify needs
//! read permission on every directory it watches, so one directory the agent may not read (a
//! root-owned 0700 pod directory) fails the whole recursive watch; the root is then watched
//! level by level instead, each directory under it on its own, so that only the closed one is
//! left to the periodic rescan and is tried again at every rescan. Each failure is said once
//! per directory and reason (the tailer retries at every rescan, which must not flood its log).

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A directory's (device, inode): a root deleted and made again is another directory, which
/// the old watch (gone with the old inode) does not cover.
fn dir_id(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// What is watched under the log roots.
#[derive(Default)]
pub(crate) struct Watches {
    /// Roots whose files wake the tailer (watched whole, or level by level), with the
    /// directory that was watched.
    covered: HashMap<PathBuf, (u64, u64)>,
    /// Directories watched on their own (non-recursively), with how many levels of directories
    /// below them are watched one by one: new directories in them are watched as they appear.
    split: HashMap<PathBuf, usize>,
    /// Directories watched recursively below a split one.
    whole: HashSet<PathBuf>,
    /// Directories whose watch failed, with the reason last said.
    failed: HashMap<PathBuf, String>,
}

/// The reason of a watch failure without its paths (the path is said beside it).
fn reason(e: &notify::Error) -> String {
    match &e.kind {
        notify::ErrorKind::Io(io) => io.to_string(),
        other => format!("{other:?}"),
    }
}

impl Watches {
    /// True when `root` can neither be watched nor was tried at the last rescan: the tailer
    /// tries again at the next rescan rather than at every loop.
    pub fn failed(&self, root: &Path) -> bool {
        self.failed.contains_key(root)
    }

    /// Watch `root`, whose layout has `depth` levels of directories (Docker: one, container
    /// directories; CRI: two, pod and container directories).
    pub fn watch_root(&mut self, w: &mut RecommendedWatcher, root: &Path, depth: usize) {
        let Some(id) = dir_id(root) else {
            return;
        };
        if self.watch_tree(w, root, depth) {
            self.covered.insert(root.to_path_buf(), id);
            tracing::info!(root = %root.display(), "watching log root");
        }
    }

    /// Whether `root` was watched (no system call: asked every loop). A root deleted is
    /// forgotten on its own removal event; [`Watches::forget_replaced_roots`] catches one whose
    /// event was lost.
    pub fn covered(&self, root: &Path) -> bool {
        self.covered.contains_key(root)
    }

    /// At every rescan: roots that were watched but are gone, or were deleted and made again
    /// (another inode, which the old watch does not see), are forgotten, to be watched again
    /// once they are there.
    pub fn forget_replaced_roots(&mut self, w: &mut RecommendedWatcher) {
        let stale: Vec<PathBuf> = self
            .covered
            .iter()
            .filter(|(r, id)| dir_id(r) != Some(**id))
            .map(|(r, _)| r.clone())
            .collect();
        for root in &stale {
            tracing::info!(root = %root.display(), "log root deleted or replaced; watching it again when it is there");
            self.forget_root(w, root);
        }
    }

    /// Watch `dir` and what is below it; false when `dir` itself cannot be watched.
    fn watch_tree(&mut self, w: &mut RecommendedWatcher, dir: &Path, depth: usize) -> bool {
        let whole = match w.watch(dir, RecursiveMode::Recursive) {
            Ok(()) => {
                self.whole.insert(dir.to_path_buf());
                self.succeeded(dir);
                return true;
            }
            Err(e) => e,
        };
        if depth == 0 {
            self.fail(dir, &whole);
            return false;
        }
        if let Err(e) = w.watch(dir, RecursiveMode::NonRecursive) {
            self.fail(dir, &e);
            return false;
        }
        tracing::info!(dir = %dir.display(), error = %reason(&whole),
            "cannot watch all of a directory under a log root; watching the directories in it one by one");
        self.split.insert(dir.to_path_buf(), depth);
        for sub in subdirs(dir) {
            self.watch_tree(w, &sub, depth - 1);
        }
        true
    }

    fn fail(&mut self, dir: &Path, e: &notify::Error) {
        let why = reason(e);
        if self.failed.get(dir) != Some(&why) {
            tracing::warn!(dir = %dir.display(), error = %why,
                "cannot watch a directory under a log root; its logs are found by the periodic rescan (tried again at every rescan)");
        }
        self.failed.insert(dir.to_path_buf(), why);
    }

    fn succeeded(&mut self, dir: &Path) {
        if self.failed.remove(dir).is_some() {
            tracing::info!(dir = %dir.display(), "watching a directory under a log root again");
        }
    }

    /// At every rescan: forget directories that are gone, and watch those under split
    /// directories that are not watched yet (new, or closed at the last try).
    pub fn refresh(&mut self, w: &mut RecommendedWatcher) {
        self.whole.retain(|d| d.is_dir());
        self.split.retain(|d, _| d.is_dir());
        self.failed.retain(|d, _| d.is_dir());
        let split: Vec<(PathBuf, usize)> =
            self.split.iter().map(|(d, n)| (d.clone(), *n)).collect();
        for (dir, depth) in split {
            for sub in subdirs(&dir) {
                if !self.whole.contains(&sub) && !self.split.contains_key(&sub) {
                    self.watch_tree(w, &sub, depth - 1);
                }
            }
        }
    }

    /// Stop watching `root` and everything under it (a root dropped by a new config).
    pub fn forget_root(&mut self, w: &mut RecommendedWatcher, root: &Path) {
        self.covered.remove(root);
        for dir in self.whole.iter().chain(self.split.keys()) {
            if dir.starts_with(root) {
                let _ = w.unwatch(dir);
            }
        }
        self.whole.retain(|d| !d.starts_with(root));
        self.split.retain(|d, _| !d.starts_with(root));
        self.failed.retain(|d, _| !d.starts_with(root));
    }

    /// A directory was created: watched at once when its parent is watched level by level
    /// (a recursive watch adds it by itself).
    pub fn created_dir(&mut self, w: &mut RecommendedWatcher, dir: &Path) {
        let Some(depth) = dir.parent().and_then(|p| self.split.get(p)).copied() else {
            return;
        };
        if !self.whole.contains(dir) && !self.split.contains_key(dir) {
            self.watch_tree(w, dir, depth - 1);
        }
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}
