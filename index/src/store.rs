//! The store: a lock file, one [`Source`] per source directory, the durable-position table, group
//! commit and follower notification.

use crate::active::sync_dir;
use crate::maps::MapCache;
use crate::partial::{PartialBlocks, PARTIAL_BLOCKS_BYTES};
use crate::source::{self, Source};
use crate::{
    query, AppendListener, Error, FileId, FrameView, Limits, NewRecord, Query, QueryResult,
    ReadBatch, ReadEnd, SourceIdentity, SourceInfo, StoreStats,
};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// Lock a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counters kept beside the sources.
#[derive(Default)]
pub(crate) struct Counters {
    pub stats: StoreStats,
    pub last_corruption: Option<String>,
    pub last_error: Option<String>,
    /// Load-time problems already counted (a refresh does not count them again).
    pub seen_problems: std::collections::HashSet<String>,
}

/// The store. `Send + Sync`; share it as `Arc<Store>`.
pub struct Store {
    pub(crate) dir: PathBuf,
    pub(crate) limits: Limits,
    /// `max_disk_bytes` and `max_age` as they are now: [`Store::set_retention`] changes them
    /// while the store is open (a config reload), `limits` keeps the values it opened with.
    retention: RwLock<(u64, Duration)>,
    read_only: bool,
    _lock: Option<File>,
    pub(crate) sources: RwLock<BTreeMap<String, Arc<Mutex<Source>>>>,
    listeners: Mutex<Vec<AppendListener>>,
    generation: Mutex<u64>,
    wake: Condvar,
    sync_lock: Mutex<()>,
    pub(crate) counters: Mutex<Counters>,
    /// The sealed segments' memory maps (bounded by `Limits::max_open_maps`).
    maps: Arc<MapCache>,
    /// A read-only store's sources that were listed but not loaded yet, by key: a reader loads
    /// only the sources it is asked about.
    unloaded: Mutex<BTreeMap<String, PathBuf>>,
    /// What [`Store::stats`] last saw of each source, used for a source that is busy (mid-seal,
    /// mid-sync) at the next call instead of waiting for it.
    stats_seen: Mutex<HashMap<String, SourceFigures>>,
    /// Sealed blocks a `read_from` stopped partway through, for the read that continues.
    partial: PartialBlocks,
}

/// One source's part of [`StoreStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SourceFigures {
    disk_bytes: u64,
    sealed_segments: u64,
    active: bool,
    retired: bool,
}

impl SourceFigures {
    fn of(src: &Source) -> SourceFigures {
        SourceFigures {
            disk_bytes: src.disk_bytes(),
            sealed_segments: src.data_segments(),
            active: src.active.as_ref().is_some_and(|a| a.records() > 0),
            retired: src.retired,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Open (creating if needed) a writable store; recovers torn tails; takes a lock file.
    pub fn open(dir: &Path, limits: Limits) -> Result<Store, Error> {
        std::fs::create_dir_all(source::sources_dir(dir)).map_err(io(dir))?;
        let lock_path = dir.join("LOCK");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        // SAFETY: flock on a valid, owned descriptor.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(Error::Locked { path: lock_path });
        }
        let store = Store::new(dir, limits, false, Some(f));
        // Removals a crash interrupted: nothing under `removing/` is ever read, only deleted.
        if let Some(e) = crate::retire::purge_all(dir).pop() {
            lock(&store.counters).last_error = Some(e.to_string());
        }
        store.load(true)?;
        Ok(store)
    }

    /// Open without writing anything (for `runnel logs --data-dir` beside a running agent).
    /// Only the source directories are listed: a source is loaded when it is first asked about
    /// ([`Store::keys`], [`Store::identity`] and [`Store::source_info`] let a caller pick
    /// sources without loading the others; [`Store::sources`] loads them all), and its active
    /// segment is read from its index file and the frames after it (see `active_index`). A
    /// loaded source's sealed segments are opened by their footers; a segment's block index
    /// and position table are read when a query reaches it.
    pub fn open_read_only(dir: &Path) -> Result<Store, Error> {
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such store"),
            });
        }
        let store = Store::new(dir, Limits::default(), true, None);
        store.list_lazily()?;
        Ok(store)
    }

    /// List a read-only store's source directories by key without reading them.
    fn list_lazily(&self) -> Result<(), Error> {
        let sdir = source::sources_dir(&self.dir);
        let entries = match std::fs::read_dir(&sdir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&sdir)(e)),
        };
        let mut found = BTreeMap::new();
        for e in entries {
            let e = e.map_err(io(&sdir))?;
            let is_dir = match e.file_type() {
                Ok(t) if t.is_symlink() => e.path().is_dir(),
                Ok(t) => t.is_dir(),
                Err(_) => e.path().is_dir(),
            };
            if !is_dir {
                continue;
            }
            let dir = e.path();
            if let Some(key) = source::key_of_dir(&dir) {
                found.insert(key, dir);
            }
        }
        *lock(&self.unloaded) = found;
        Ok(())
    }

    /// Load a listed source of a read-only store now (nothing to do when it is loaded or not
    /// listed). A retired, drained source is dropped from the listing (the writer removes it).
    fn load_listed(&self, key: &str) -> Result<(), Error> {
        let mut unloaded = lock(&self.unloaded);
        let Some(dir) = unloaded.get(key).cloned() else {
            return Ok(());
        };
        let loaded = Source::load(&dir, false, self.chunk_target(), &self.maps)?;
        unloaded.remove(key);
        let Some((mut src, _)) = loaded.filter(|(s, _)| !crate::retire::drained(s)) else {
            return Ok(());
        };
        src.changed_gen = *lock(&self.generation);
        let problems: Vec<String> = src.problems.iter().map(|p| p.to_string()).collect();
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(src.key.clone(), Arc::new(Mutex::new(src)));
        drop(unloaded);
        let mut c = lock(&self.counters);
        for p in problems {
            if c.seen_problems.insert(p.clone()) {
                c.stats.corrupt_blocks += 1;
                c.last_corruption = Some(p);
            }
        }
        Ok(())
    }

    /// Load every listed source of a read-only store (for calls that look at all of them). A
    /// source that cannot be read is left out, with its error kept as the last error.
    fn load_all_listed(&self) {
        let keys: Vec<String> = lock(&self.unloaded).keys().cloned().collect();
        for k in keys {
            if let Err(e) = self.load_listed(&k) {
                lock(&self.unloaded).remove(&k);
                lock(&self.counters).last_error = Some(e.to_string());
            }
        }
    }

    /// Every source key, loaded or not (a read-only store lists them from directory names
    /// without reading the sources; retired sources included).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, s)| !lock(s).removed)
            .map(|(k, _)| k.clone())
            .collect();
        keys.extend(lock(&self.unloaded).keys().cloned());
        keys.sort();
        keys.dedup();
        keys
    }

    /// A source's identity; a read-only store reads just its `source.json` when the source is
    /// not loaded.
    pub fn identity(&self, key: &str) -> Option<SourceIdentity> {
        if let Some(s) = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            let s = lock(s);
            return (!s.removed).then(|| s.identity.clone());
        }
        let dir = lock(&self.unloaded).get(key).cloned()?;
        match source::read_source_file(&dir) {
            Some((k, identity)) if k == key => Some(identity),
            _ => Some(SourceIdentity::default()),
        }
    }

    /// The summary of one source (loading it, in a read-only store), or `None` when the store
    /// does not hold it.
    pub fn source_info(&self, key: &str) -> Result<Option<SourceInfo>, Error> {
        self.load_listed(key)?;
        Ok(self.source(key).and_then(|s| summary(&lock(&s))))
    }

    fn new(dir: &Path, limits: Limits, read_only: bool, lock: Option<File>) -> Store {
        let maps = MapCache::new(limits.max_open_maps);
        Store {
            dir: dir.to_path_buf(),
            retention: RwLock::new((limits.max_disk_bytes, limits.max_age)),
            limits,
            read_only,
            _lock: lock,
            sources: RwLock::new(BTreeMap::new()),
            listeners: Mutex::new(Vec::new()),
            generation: Mutex::new(0),
            wake: Condvar::new(),
            sync_lock: Mutex::new(()),
            counters: Mutex::new(Counters::default()),
            maps,
            unloaded: Mutex::new(BTreeMap::new()),
            stats_seen: Mutex::new(HashMap::new()),
            partial: PartialBlocks::new(PARTIAL_BLOCKS_BYTES),
        }
    }

    /// Change the disk budget and the maximum age of a running store (a config reload); the
    /// next retention pass applies them. Segment sizes and compression are not changed live:
    /// open segments were cut with them.
    pub fn set_retention(&self, max_disk_bytes: u64, max_age: Duration) {
        *self.retention.write().unwrap_or_else(|p| p.into_inner()) = (max_disk_bytes, max_age);
    }

    /// The disk budget and maximum age in force (see [`Store::set_retention`]).
    pub fn retention(&self) -> (u64, Duration) {
        *self.retention.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn chunk_target(&self) -> u64 {
        self.limits.block_raw_bytes.max(1) as u64
    }

    fn load(&self, writable: bool) -> Result<(), Error> {
        let sdir = source::sources_dir(&self.dir);
        let mut map = BTreeMap::new();
        let mut cut = 0;
        let mut problems = Vec::new();
        // Remember what was known so a refresh can tell which sources changed.
        let old: HashMap<String, (u64, u64)> = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, s)| {
                let s = lock(s);
                (k.clone(), (s.durable_next, s.changed_gen))
            })
            .collect();
        let gen = *lock(&self.generation) + 1;
        let entries = match std::fs::read_dir(&sdir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !writable => {
                *self.sources.write().unwrap_or_else(|p| p.into_inner()) = map;
                return Ok(());
            }
            Err(e) => return Err(io(&sdir)(e)),
        };
        let mut removed = 0;
        let mut remove_errors = Vec::new();
        for e in entries {
            let e = e.map_err(io(&sdir))?;
            if !e.path().is_dir() {
                continue;
            }
            if let Some((mut src, c)) =
                Source::load(&e.path(), writable, self.chunk_target(), &self.maps)?
            {
                // A retired source without records is gone: removed now by a writer (a crash
                // came between the mark, or retention, and the removal), skipped by a reader
                // (the writer removes it).
                if crate::retire::drained(&src) {
                    if !writable {
                        continue;
                    }
                    match crate::retire::detach(&self.dir, &src.dir) {
                        Ok(moved) => {
                            removed += 1;
                            remove_errors
                                .extend(moved.and_then(|p| crate::retire::purge(&p).err()));
                            continue;
                        }
                        // Kept, marked; the next retention pass tries again.
                        Err(e) => remove_errors.push(e),
                    }
                }
                src.changed_gen = match old.get(&src.key) {
                    Some(&(next, g)) if next == src.durable_next => g,
                    _ => gen,
                };
                cut += c;
                problems.extend(src.problems.iter().map(|p| p.to_string()));
                map.insert(src.key.clone(), Arc::new(Mutex::new(src)));
            }
        }
        *self.sources.write().unwrap_or_else(|p| p.into_inner()) = map;
        lock(&self.unloaded).clear();
        {
            let mut g = lock(&self.generation);
            *g = gen;
            self.wake.notify_all();
        }
        let mut c = lock(&self.counters);
        if writable {
            c.stats.recovered_truncated_bytes += cut;
            c.stats.sources_removed += removed;
        }
        if let Some(e) = remove_errors.pop() {
            c.last_error = Some(e.to_string());
        }
        for p in problems {
            if c.seen_problems.insert(p.clone()) {
                c.stats.corrupt_blocks += 1;
                c.last_corruption = Some(p);
            }
        }
        Ok(())
    }

    /// Re-read manifests and active segments written by another process (read-only stores).
    /// Torn tails are ignored, never cut.
    pub fn refresh(&self) -> Result<(), Error> {
        if !self.read_only {
            return Ok(());
        }
        self.load(false)
    }

    /// Re-read one source from disk (read-only stores; used by `wait_for` to follow a writer
    /// without rescanning every source). When only the writer's active segment grew, just the
    /// frames appended since the last look are read.
    pub fn refresh_source(&self, key: &str) -> Result<(), Error> {
        if !self.read_only {
            return Ok(());
        }
        let dir = source::sources_dir(&self.dir).join(source::dir_name(key));
        if !dir.is_dir() {
            lock(&self.unloaded).remove(key);
            self.forget_vanished(key);
            return Ok(());
        }
        if lock(&self.unloaded).contains_key(key) {
            // First look at a listed source: what it holds counts as new to whoever asks.
            self.load_listed(key)?;
            if let Some(s) = self.source(key) {
                let mut g = lock(&self.generation);
                *g += 1;
                lock(&s).changed_gen = *g;
                self.wake.notify_all();
            }
            return Ok(());
        }
        // Usually only the writer's active segment grew: read just the new frames.
        if let Some(s) = self.source(key) {
            let grew = {
                let mut src = lock(&s);
                let before = src.durable_next;
                src.catch_up()?.then(|| src.durable_next != before)
            };
            if let Some(grew) = grew {
                if grew {
                    // Lock order as everywhere: the generation before a source.
                    let mut g = lock(&self.generation);
                    *g += 1;
                    lock(&s).changed_gen = *g;
                    self.wake.notify_all();
                }
                return Ok(());
            }
        }
        let loaded = Source::load(&dir, false, self.chunk_target(), &self.maps)?;
        let Some((mut src, _)) = loaded.filter(|(s, _)| !crate::retire::drained(s)) else {
            // Vanished while it was read, or retired and drained (the writer removes it).
            self.forget_vanished(key);
            return Ok(());
        };
        let mut g = lock(&self.generation);
        let old = self.source(key);
        let changed = old
            .as_ref()
            .is_none_or(|o| lock(o).durable_next != src.durable_next);
        src.changed_gen = match &old {
            Some(o) if !changed => lock(o).changed_gen,
            _ => *g + 1,
        };
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), Arc::new(Mutex::new(src)));
        if changed {
            *g += 1;
            self.wake.notify_all();
        }
        Ok(())
    }

    /// A read-only store's source whose directory the writer removed: drop it from the listing
    /// and wake waiters.
    fn forget_vanished(&self, key: &str) {
        let mut g = lock(&self.generation);
        let gone = self
            .sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if let Some(s) = gone {
            lock(&s).removed = true;
            *g += 1;
            self.wake.notify_all();
        }
    }

    /// True when opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn source(&self, key: &str) -> Option<Arc<Mutex<Source>>> {
        let found = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        if found.is_some() || !self.read_only {
            return found;
        }
        // A read-only store loads a listed source on first use.
        if let Err(e) = self.load_listed(key) {
            lock(&self.counters).last_error = Some(e.to_string());
        }
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Run `f` on the source `key` under its lock; [`Error::UnknownSource`] when the store does
    /// not hold it, or removed it after the lookup.
    pub(crate) fn with_source<R>(
        &self,
        key: &str,
        f: impl FnOnce(&mut Source) -> R,
    ) -> Result<R, Error> {
        if self.read_only {
            self.load_listed(key)?;
        }
        let s = self
            .source(key)
            .ok_or_else(|| Error::UnknownSource(key.into()))?;
        let mut src = lock(&s);
        if src.removed {
            return Err(Error::UnknownSource(key.into()));
        }
        Ok(f(&mut src))
    }

    /// Run `f` on the source `key`, created if needed, under its lock. A source removed between
    /// the lookup and the lock is no longer in the map, so the next lookup creates it afresh.
    pub(crate) fn with_live_source<R>(
        &self,
        key: &str,
        identity: Option<&SourceIdentity>,
        f: impl FnOnce(&mut Source) -> Result<R, Error>,
    ) -> Result<R, Error> {
        loop {
            let s = self.source_or_create(key, identity)?;
            let mut src = lock(&s);
            if !src.removed {
                return f(&mut src);
            }
        }
    }

    fn source_or_create(
        &self,
        key: &str,
        identity: Option<&SourceIdentity>,
    ) -> Result<Arc<Mutex<Source>>, Error> {
        if let Some(s) = self.source(key) {
            return Ok(s);
        }
        let mut map = self.sources.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(key) {
            return Ok(s.clone());
        }
        let dir = source::sources_dir(&self.dir).join(source::dir_name(key));
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let identity = identity.cloned().unwrap_or_default();
        source::write_source_file(&dir, key, &identity)?;
        sync_dir(&source::sources_dir(&self.dir))?;
        let s = Arc::new(Mutex::new(
            Source::empty(key, identity, dir).in_maps(&self.maps),
        ));
        map.insert(key.to_string(), s.clone());
        Ok(s)
    }

    /// Create the source or update its identity. A retired source stays retired (only an
    /// append says the container is back).
    pub fn upsert_source(&self, key: &str, identity: &SourceIdentity) -> Result<(), Error> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.with_live_source(key, Some(identity), |src| {
            if &src.identity != identity {
                source::write_source_file(&src.dir, key, identity)?;
                src.identity = identity.clone();
            }
            Ok(())
        })
    }

    /// Append one record; returns its sequence number. Not durable until [`Store::sync`].
    /// A source that was never upserted (or was removed) is created with an empty identity.
    /// An append to a retired source clears its mark first (the container came back). When the
    /// active segment reaches `segment_max_bytes` it is sealed here (which also makes it
    /// durable). For many records of one source, [`Store::append_run`] looks it up once.
    pub fn append(&self, key: &str, record: &NewRecord<'_>) -> Result<u64, Error> {
        self.append_run(key, |a| a.append(record))?
    }

    /// Make every record appended so far durable (group commit: one fdatasync per source that
    /// received records), then wake followers and call listeners.
    pub fn sync(&self) -> Result<(), Error> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let _g = lock(&self.sync_lock);
        let all: Vec<_> = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut changed = Vec::new();
        let gen = *lock(&self.generation) + 1;
        for s in all {
            let mut src = lock(&s);
            if let Some(a) = src.active.as_mut() {
                a.sync()?;
            }
            src.mark_durable();
            if src.durable_next > src.notified_next {
                src.notified_next = src.durable_next;
                src.changed_gen = gen;
                changed.push((src.key.clone(), src.durable_next));
            }
        }
        lock(&self.counters).stats.syncs += 1;
        if !changed.is_empty() {
            {
                let mut g = lock(&self.generation);
                *g = gen.max(*g + 1);
                self.wake.notify_all();
            }
            let ls = lock(&self.listeners).clone();
            for (k, n) in &changed {
                for l in &ls {
                    l(k, *n);
                }
            }
        }
        Ok(())
    }

    /// Last durable byte offset for a file identity (where its tailer resumes).
    pub fn durable_position(&self, file: &FileId) -> Option<u64> {
        if self.read_only {
            self.load_all_listed();
            for s in self
                .sources
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
            {
                if let Err(e) = lock(s).complete_positions() {
                    lock(&self.counters).last_error = Some(e.to_string());
                }
            }
        }
        let all: Vec<_> = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.iter()
            .find_map(|s| lock(s).positions.get(file).copied())
    }

    /// Seal the source's active segment now, into a segment of its own.
    pub fn seal(&self, key: &str) -> Result<(), Error> {
        self.seal_with(key, None)
    }

    fn seal_with(&self, key: &str, merge: Option<source::Merge>) -> Result<(), Error> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.with_source(key, |src| {
            src.seal(
                self.limits.block_raw_bytes,
                self.limits.zstd_level,
                self.chunk_target(),
                merge,
            )
        })?
    }

    /// How age-due seals merge small segments: the previous segment is rewritten while it holds
    /// less than a quarter of `segment_max_bytes`, up to `segment_max_bytes` and a time span of
    /// `max_age / 16` (so data outlives `max_age` by at most a sixteenth of it).
    fn merge_limits(&self) -> source::Merge {
        let max_age = self.retention().1.as_nanos().min(i64::MAX as u128) as i64;
        source::Merge {
            max_prev_raw: self.limits.segment_max_bytes / 4,
            max_raw: self.limits.segment_max_bytes,
            max_span_ns: max_age / 16,
        }
    }

    /// Seal every active segment that reached its size or age limit. A segment sealed for its
    /// age is merged with a small previous segment (see `merge_limits`), so a quiet source
    /// keeps a few segments over `max_age`, not one per `segment_max_age`.
    pub fn seal_due(&self) -> Result<(), Error> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let keys: Vec<String> = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for k in keys {
            let due = self.source(&k).is_some_and(|s| {
                let src = lock(&s);
                src.active.as_ref().is_some_and(|a| {
                    a.records() > 0
                        && (a.len() >= self.limits.segment_max_bytes
                            || a.opened.elapsed() >= self.limits.segment_max_age)
                })
            });
            if due {
                self.seal_with(&k, Some(self.merge_limits()))?;
            }
        }
        Ok(())
    }

    fn note_bad(&self, bad: Vec<Error>) {
        if bad.is_empty() {
            return;
        }
        let mut c = lock(&self.counters);
        c.stats.corrupt_blocks += bad.len() as u64;
        c.last_corruption = bad.last().map(|e| e.to_string());
    }

    /// kubelet-style range read (see the `query` module for the exact order of filters).
    pub fn query(&self, key: &str, q: &Query) -> Result<QueryResult, Error> {
        let mut bad = Vec::new();
        let res = self.with_source(key, |src| query::query(src, q, &mut bad))?;
        self.note_bad(bad);
        Ok(res)
    }

    /// Read by sequence cursor (for the sink). Only durable records are returned.
    /// [`Error::UnknownSource`] once the source was removed (retired and drained): the sink
    /// drops its cursor.
    pub fn read_from(
        &self,
        key: &str,
        from_seq: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch, Error> {
        let mut bad = Vec::new();
        let batch = self.with_source(key, |src| {
            query::read_from(
                src,
                from_seq,
                src.durable_next,
                max_records,
                max_bytes,
                &self.partial,
                &mut bad,
            )
        })?;
        self.note_bad(bad);
        Ok(batch)
    }

    /// [`Store::read_from`] without copies: each record is handed to `visit` as a view into
    /// its decompressed block (the message is borrowed, not allocated), in sequence order; the
    /// same records, gaps and next sequence as `read_from` with the same arguments. `visit`
    /// runs under the source's lock (appends to this source wait), so it should only encode.
    pub fn read_each(
        &self,
        key: &str,
        from_seq: u64,
        max_records: usize,
        max_bytes: usize,
        visit: &mut dyn FnMut(&FrameView<'_>),
    ) -> Result<ReadEnd, Error> {
        let mut bad = Vec::new();
        let end = self.with_source(key, |src| {
            query::read_each(
                src,
                (from_seq, src.durable_next),
                (max_records, max_bytes),
                &self.partial,
                &mut bad,
                visit,
            )
        })?;
        self.note_bad(bad);
        Ok(end)
    }

    fn durable_next(&self, key: &str) -> u64 {
        self.source(key).map(|s| lock(&s).durable_next).unwrap_or(0)
    }

    /// Block until the source has a durable record with `seq >= after_seq` or the timeout passes;
    /// returns the source's next durable sequence. Woken by [`Store::sync`] through a condition
    /// variable; an unknown source is treated as empty (it may appear while waiting). A
    /// read-only store refreshes from disk every 100 ms while waiting.
    pub fn wait_for(&self, key: &str, after_seq: u64, timeout: Duration) -> Result<u64, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let next = self.durable_next(key);
            let now = Instant::now();
            if next > after_seq || now >= deadline {
                return Ok(next);
            }
            let mut wait = deadline - now;
            if self.read_only {
                wait = wait.min(Duration::from_millis(100));
            }
            let g = lock(&self.generation);
            let seen = *g;
            // Re-check under the generation lock so a sync between the check and the wait
            // is not missed.
            if self.durable_next(key) > after_seq {
                continue;
            }
            let (g, _) = self
                .wake
                .wait_timeout_while(g, wait, |g| *g == seen)
                .unwrap_or_else(|p| p.into_inner());
            drop(g);
            if self.read_only {
                self.refresh_source(key)?;
            }
        }
    }

    /// The current change generation: it grows by one with every sync that made records durable
    /// (and every refresh of a read-only store). Pair with [`Store::changed_since`].
    pub fn generation(&self) -> u64 {
        *lock(&self.generation)
    }

    /// Sources whose records became durable in a sync after generation `gen`, with their durable
    /// next sequence: a sink remembers [`Store::generation`] and asks only about what changed.
    pub fn changed_since(&self, gen: u64) -> Vec<(String, u64)> {
        self.load_all_listed();
        let all: Vec<_> = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.iter()
            .filter_map(|s| {
                let src = lock(s);
                (src.changed_gen > gen && !src.removed).then(|| (src.key.clone(), src.durable_next))
            })
            .collect()
    }

    /// Register a listener called after each sync for each source that got records.
    pub fn add_listener(&self, listener: AppendListener) {
        lock(&self.listeners).push(listener);
    }

    /// Apply the disk budget and max age (policy in the `retention` module).
    pub fn enforce_retention(&self) -> Result<(), Error> {
        crate::retention::enforce(self)
    }

    /// Every source with its summary (removed sources are not listed; retired ones are, with
    /// [`SourceInfo::retired`]).
    pub fn sources(&self) -> Vec<SourceInfo> {
        self.load_all_listed();
        let all: Vec<_> = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.iter().filter_map(|s| summary(&lock(s))).collect()
    }

    /// The first stored and the next durable sequence of one source, without listing every
    /// source (what an input needs to read back its own recent records at start).
    pub fn seq_range(&self, key: &str) -> Option<(u64, u64)> {
        self.with_source(key, |src| (src.first_seq(), src.durable_next))
            .ok()
    }

    /// Store-wide counters, without waiting on any source: a source whose lock is held (a
    /// seal, an fsync, a long append run) counts with the figures the previous call saw of it,
    /// and while the source map itself is being changed (a source created or removed) every
    /// source does. So a `/metrics` scrape never queues behind the write path; a busy source's
    /// disk and segment figures are at most one call old.
    pub fn stats(&self) -> StoreStats {
        self.load_all_listed();
        let mut st = lock(&self.counters).stats.clone();
        st.open_maps = self.maps.open_maps() as u64;
        let mut seen = lock(&self.stats_seen);
        let map = match self.sources.try_read() {
            Ok(m) => Some(m),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(map) = map {
            seen.retain(|k, _| map.contains_key(k));
            for (key, s) in map.iter() {
                let now = match s.try_lock() {
                    Ok(src) => SourceFigures::of(&src),
                    Err(std::sync::TryLockError::Poisoned(p)) => SourceFigures::of(&p.into_inner()),
                    Err(std::sync::TryLockError::WouldBlock) => continue,
                };
                match seen.get_mut(key) {
                    Some(f) => *f = now,
                    None => {
                        seen.insert(key.clone(), now);
                    }
                }
            }
        }
        st.disk_bytes = 0;
        st.sealed_segments = 0;
        st.active_segments = 0;
        st.retired_sources = 0;
        for f in seen.values() {
            st.disk_bytes += f.disk_bytes;
            st.sealed_segments += f.sealed_segments;
            st.active_segments += u64::from(f.active);
            st.retired_sources += u64::from(f.retired);
        }
        st
    }

    /// The most recent error that was counted rather than returned (a failed seal in `append`).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.counters).last_error.clone()
    }

    /// The most recent corruption seen (open, query, read or verify), described with path and
    /// offset.
    pub fn last_corruption(&self) -> Option<String> {
        lock(&self.counters).last_corruption.clone()
    }
}

/// The summary of a source the store lists (`None` once it was removed).
fn summary(src: &Source) -> Option<SourceInfo> {
    if src.removed {
        return None;
    }
    let (min_time_ns, max_time_ns) = src.time_range();
    Some(SourceInfo {
        key: src.key.clone(),
        identity: src.identity.clone(),
        min_time_ns,
        max_time_ns,
        first_seq: src.first_seq(),
        next_seq: src.next_seq,
        records: src.records(),
        disk_bytes: src.disk_bytes(),
        segments: src.data_segments()
            + u64::from(src.active.as_ref().is_some_and(|a| a.records() > 0)),
        retired: src.retired,
    })
}

#[cfg(test)]
mod stats_tests {
    use super::*;
    use std::sync::mpsc;

    fn record(msg: &[u8]) -> NewRecord<'_> {
        NewRecord {
            time_ns: 1,
            time_style: crate::TimeStyle::default(),
            stream: crate::Stream::Stdout,
            flags: crate::RecordFlags::default(),
            message: msg,
            position: crate::Position::None,
        }
    }

    /// Run `f` on another thread while `hold` keeps the lock it takes; `f` must return
    /// within the deadline (it would hang forever if it waited on the lock).
    fn while_held<T: Send + 'static>(
        hold: impl FnOnce(mpsc::Sender<()>, mpsc::Receiver<()>) + Send + 'static,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let holder = std::thread::spawn(move || hold(held_tx, release_rx));
        held_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the lock was taken");
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done_tx.send(f());
        });
        let got = done_rx.recv_timeout(Duration::from_secs(10));
        let _ = release_tx.send(());
        holder.join().unwrap();
        got.expect("stats() waited on a held lock")
    }

    #[test]
    fn stats_do_not_wait_on_a_busy_source_or_the_source_map() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), Limits::default()).unwrap());
        for key in ["a", "b"] {
            store.append(key, &record(b"one line")).unwrap();
        }
        store.sync().unwrap();
        store.seal("a").unwrap();
        let before = store.stats();
        assert_eq!(before.sealed_segments, 1);
        assert_eq!(before.active_segments, 1);
        assert!(before.disk_bytes > 0);

        // Source "a" held as a seal or an append run holds it.
        let (s1, s2) = (store.clone(), store.clone());
        let during = while_held(
            move |held, release| {
                s1.append_run("a", |ap| {
                    ap.append(&record(b"two")).unwrap();
                    held.send(()).unwrap();
                    let _ = release.recv_timeout(Duration::from_secs(30));
                })
                .unwrap();
            },
            move || s2.stats(),
        );
        assert_eq!(during.sealed_segments, before.sealed_segments);
        assert_eq!(during.disk_bytes, before.disk_bytes);
        assert_eq!(during.active_segments, before.active_segments);

        // The source map held for writing, as while a source directory is created and fsynced.
        let (s1, s2) = (store.clone(), store.clone());
        let during = while_held(
            move |held, release| {
                let _map = s1.sources.write().unwrap();
                held.send(()).unwrap();
                let _ = release.recv_timeout(Duration::from_secs(30));
            },
            move || s2.stats(),
        );
        assert_eq!(during.sealed_segments, before.sealed_segments);
        assert_eq!(during.disk_bytes, before.disk_bytes);

        // Free again: the figures are current (a's new record made it active again).
        let after = store.stats();
        assert_eq!(after.active_segments, 2);
        assert_eq!(after.records_appended, 3);
    }
}
