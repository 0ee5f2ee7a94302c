//! Retiring sources. A container that is gone leaves a source whose directory, position stub and
//! in-memory state would stay forever once retention has deleted its records; on a node with
//! container churn (CronJobs, rolling deploys) that grows without bound. Only the agent knows
//! when a container is gone, so it calls [`Store::retire_source`]; the store removes the source
//! once it holds no records: at once if it holds none, else when retention deletes its last
//! segment (or at the next open).
//!
//! On disk. The mark is `retired.json` in the source directory (`{"version":"1"}`; its presence
//! is the mark, the version leaves room for more). Removal moves the whole source directory, in
//! one `rename`, to `<data_dir>/removing/<unique name>`, fsyncs `sources/`, then deletes it;
//! open deletes whatever `removing/` still holds and never reads from it.
//!
//! Crash safety, step by step:
//! 1. `retire_source` first syncs the store, so the source's last records are durable before
//!    anything is forgotten (their log file is gone; they could not be read again).
//! 2. The mark is written like every small file of the store (temp file, fsync, rename,
//!    directory fsync) before `retire_source` returns: after a crash the source is either not
//!    marked (the temp file is removed at open) or marked.
//! 3. An append clears the mark (file removed, directory fsynced) before the record is appended,
//!    so a marked source never holds a record appended after the mark.
//! 4. A source is removed only while marked and holding no record (sealed or active, durable or
//!    not), checked under the write lock of the source map and the source's own lock, so no
//!    append or read can slip in; readers that looked it up earlier see it as removed
//!    ([`crate::Error::UnknownSource`]), an append creates the source afresh.
//! 5. The rename is the one step that removes: before it, the directory is whole in `sources/`,
//!    marked and without records, and open removes it again; after it, the directory is under
//!    `removing/`, which is only ever deleted. No directory is ever half-removed inside
//!    `sources/`, so no source comes back with a short sequence range or a lost position stub.
//!    The fsync of `sources/` after the rename makes the removal durable before it is counted;
//!    were it lost, step 5 would simply run again at open.
//! 6. Retention deletes a segment (after moving its positions into the stub) before it removes
//!    a drained source; a crash in between leaves a marked source without records: step 5.
//!
//! A key that comes back after its source was removed starts a new source at sequence 0 (for
//! the container-instance keys the agent uses, a key does not come back).

use crate::active::sync_dir;
use crate::source::{self, Source};
use crate::store::lock;
use crate::{Error, Store};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// File name of the retirement mark in a source directory.
pub const MARK: &str = "retired.json";

/// `retired.json`, tagged by version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum RetiredFile {
    /// Version 1: no fields; the file's presence is the mark.
    #[serde(rename = "1")]
    V1 {},
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where removed source directories go before they are deleted.
pub fn removing_dir(root: &Path) -> PathBuf {
    root.join("removing")
}

/// Whether the source directory carries the mark.
pub fn is_marked(dir: &Path) -> Result<bool, Error> {
    let path = dir.join(MARK);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Write the mark durably (temp file, fsync, rename, directory fsync).
pub fn write_mark(dir: &Path) -> Result<(), Error> {
    let path = dir.join(MARK);
    let body = serde_json::to_vec(&RetiredFile::V1 {}).map_err(|e| Error::Corrupt {
        path: path.clone(),
        offset: 0,
        what: e.to_string(),
    })?;
    crate::sealed::write_file(dir, MARK, &body).map(drop)
}

/// Remove the mark durably (directory fsynced).
pub fn clear_mark(dir: &Path) -> Result<(), Error> {
    let path = dir.join(MARK);
    match std::fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Move a source directory out of `sources/` into `removing/` (one rename) and fsync `sources/`.
/// Returns where it went, or `None` when the directory was already gone.
pub fn detach(root: &Path, dir: &Path) -> Result<Option<PathBuf>, Error> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let bin = removing_dir(root);
    std::fs::create_dir_all(&bin).map_err(io(&bin))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // A name of its own (not the key's hex, which may already be near the name length limit).
    let to = bin.join(format!(
        "{nanos}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::rename(dir, &to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(dir)(e)),
    }
    sync_dir(&source::sources_dir(root))?;
    Ok(Some(to))
}

/// Delete a detached directory (nothing in it is ever read again; a crash half-way leaves the
/// rest to the next open).
pub fn purge(path: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// At open: delete everything left in `removing/` (removals a crash interrupted). Returns the
/// errors instead of failing: a directory that cannot be deleted is harmless there.
pub fn purge_all(root: &Path) -> Vec<Error> {
    let bin = removing_dir(root);
    let entries = match std::fs::read_dir(&bin) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => return vec![io(&bin)(e)],
    };
    let mut errors = Vec::new();
    for e in entries {
        let path = match e {
            Ok(e) => e.path(),
            Err(e) => {
                errors.push(io(&bin)(e));
                continue;
            }
        };
        let res = if path.is_dir() {
            purge(&path)
        } else {
            std::fs::remove_file(&path).map_err(io(&path))
        };
        errors.extend(res.err());
    }
    errors
}

/// Whether `src` may be removed now: marked, not yet removed, holding no record. A source with
/// a segment that could not be opened at load is kept: the failure may be passing (out of
/// descriptors or memory), and removing would delete records that are still on disk.
pub fn drained(src: &Source) -> bool {
    src.retired && !src.removed && src.records() == 0 && src.problems.is_empty()
}

impl Store {
    /// Mark a source retired: its container is gone, its log files deleted and fully read (call
    /// it once every record from them was appended). The store is synced first, so those
    /// records are durable before their files are forgotten. A source that holds no records is
    /// removed at once (directory, position stub, memory); one that does stays listed
    /// ([`crate::SourceInfo::retired`]) and readable, and is removed when retention deletes its
    /// last segment. The mark survives restarts; an [`Store::append`] to the source clears it
    /// (the container came back). Calling it again is harmless. See the `retire` module for
    /// the on-disk steps and why a crash at any point is safe.
    ///
    /// Errors: [`Error::UnknownSource`] for a key the store does not hold (or no longer holds),
    /// [`Error::ReadOnly`] on a read-only store, I/O errors from the sync, the mark or the
    /// removal.
    pub fn retire_source(&self, key: &str) -> Result<(), Error> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        self.with_source(key, |_| ())?;
        self.sync()?;
        self.with_source(key, |src| {
            if !src.retired {
                write_mark(&src.dir)?;
                src.retired = true;
            }
            Ok(())
        })??;
        self.remove_if_drained(key).map(drop)
    }

    /// Remove `key` if it is retired and holds no records; returns whether it was removed.
    pub(crate) fn remove_if_drained(&self, key: &str) -> Result<bool, Error> {
        let detached = {
            // The map's write lock, then the source's: nobody can look the source up, or
            // create a new one with the same directory, until the directory is gone.
            let mut map = self.sources.write().unwrap_or_else(|p| p.into_inner());
            let Some(s) = map.get(key).cloned() else {
                return Ok(false);
            };
            let mut src = lock(&s);
            if !drained(&src) {
                return Ok(false);
            }
            let detached = detach(&self.dir, &src.dir)?;
            src.removed = true;
            src.forget();
            drop(src);
            map.remove(key);
            detached
        };
        let purged = detached.map_or(Ok(()), |p| purge(&p));
        let mut c = lock(&self.counters);
        c.stats.sources_removed += 1;
        if let Err(e) = purged {
            c.last_error = Some(e.to_string());
        }
        Ok(true)
    }

    /// Remove every retired source that holds no records (after retention). Tries them all and
    /// returns the first error.
    pub(crate) fn remove_drained(&self) -> Result<(), Error> {
        let keys: Vec<String> = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, s)| drained(&lock(s)))
            .map(|(k, _)| k.clone())
            .collect();
        let mut first = None;
        for k in keys {
            if let Err(e) = self.remove_if_drained(&k) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_is_versioned_json_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        assert!(!is_marked(d.path()).unwrap());
        write_mark(d.path()).unwrap();
        assert!(is_marked(d.path()).unwrap());
        let body = std::fs::read(d.path().join(MARK)).unwrap();
        assert_eq!(body, br#"{"version":"1"}"#);
        assert!(serde_json::from_slice::<RetiredFile>(&body).is_ok());
        clear_mark(d.path()).unwrap();
        assert!(!is_marked(d.path()).unwrap());
        clear_mark(d.path()).unwrap();
    }

    #[test]
    fn detach_of_a_vanished_directory_is_none_and_purge_all_empties_removing() {
        let root = tempfile::tempdir().unwrap();
        let sources = source::sources_dir(root.path());
        std::fs::create_dir_all(sources.join("6b")).unwrap();
        std::fs::write(sources.join("6b/source.json"), b"{}").unwrap();
        assert!(detach(root.path(), &sources.join("00")).unwrap().is_none());
        let moved = detach(root.path(), &sources.join("6b")).unwrap().unwrap();
        assert!(moved.join("source.json").is_file());
        assert!(!sources.join("6b").exists());
        std::fs::write(removing_dir(root.path()).join("stray"), b"x").unwrap();
        assert!(purge_all(root.path()).is_empty());
        let left = std::fs::read_dir(removing_dir(root.path()))
            .unwrap()
            .count();
        assert_eq!(left, 0);
    }
}
