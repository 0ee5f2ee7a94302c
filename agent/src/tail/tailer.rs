//! The tailer thread: discovery (inotify + periodic rescan), polling sources, and commands
//! (oneshot drain, stop).

use super::discover::{self, Found};
use super::docker_api::{self, Discovery};
use super::filter::{Filter, Globs};
use super::source::{Outbox, Scratch, Source, TailSettings};
use super::stats::{Input, Stats};
use super::{Cmd, Ready, TailError};
use crate::ingest::Msg;
use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use notify::{RecursiveMode, Watcher};
use runnel_index::{SourceIdentity, Store};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod reconfigure;
mod watches;

/// How often every source is polled even without an inotify event.
const POLL_ALL_EVERY: Duration = Duration::from_secs(1);
/// Bytes read from one source before moving to the next (fairness).
const SOURCE_BUDGET: usize = 4 << 20;
/// inotify events buffered between the watcher thread and the tailer. When the tailer is held
/// back (backpressure from the index) and the buffer is full, further events are dropped and
/// the tailer rescans and polls everything instead: memory stays bounded, nothing is missed.
const EVENT_QUEUE: usize = 4096;

/// Settings derived from the config.
pub struct Settings {
    pub(crate) roots: Vec<(Input, PathBuf)>,
    pub(crate) filter: Filter,
    pub(crate) tail: TailSettings,
    pub(crate) rescan: Duration,
    /// `inputs.docker.api`: the Docker Engine API socket, when Docker discovery uses it.
    pub(crate) docker_api: Option<String>,
    /// Memory for lines not yet ended, all files together; past it the oldest is emitted.
    pub(crate) max_pending: usize,
}

fn usize_of(v: u64, key: &'static str) -> Result<usize, TailError> {
    usize::try_from(v).map_err(|_| TailError::Config {
        key,
        what: format!("{v} is too large"),
    })
}

impl Settings {
    /// Read the `inputs:` section.
    pub fn from_config(cfg: &runnel_config::Config) -> Result<Settings, TailError> {
        let i = &cfg.inputs;
        let mut roots = Vec::new();
        // Docker first: a CRI path that is a symlink into the Docker root is read as Docker.
        if i.docker.enabled {
            roots.push((Input::Docker, i.docker.root.clone()));
        }
        if i.cri.enabled {
            roots.push((Input::Cri, i.cri.root.clone()));
        }
        let inc = Globs::new(
            &i.include.namespaces,
            &i.include.pods,
            &i.include.containers,
        )
        .map_err(|what| TailError::Config {
            key: "include",
            what,
        })?;
        let exc = Globs::new(
            &i.exclude.namespaces,
            &i.exclude.pods,
            &i.exclude.containers,
        )
        .map_err(|what| TailError::Config {
            key: "exclude",
            what,
        })?;
        if i.max_line_bytes > runnel_index::MAX_MESSAGE as u64 {
            return Err(TailError::Config {
                key: "max_line_bytes",
                what: format!(
                    "{} is more than an index record can hold ({} bytes)",
                    i.max_line_bytes,
                    runnel_index::MAX_MESSAGE
                ),
            });
        }
        let max_line = usize_of(i.max_line_bytes, "max_line_bytes")?.max(16);
        let block = usize_of(i.read_buffer_bytes, "read_buffer_bytes")?.max(64 * 1024);
        // The queue's memory is `queue_max_bytes` in all: the batches waiting in the channel,
        // the one being filled and the one being appended.
        let batch_bytes = crate::ingest::WriterSettings::from_config(cfg).batch_bytes;
        Ok(Settings {
            roots,
            filter: Filter::new(inc, exc),
            tail: TailSettings {
                max_line,
                block,
                fingerprint_bytes: usize_of(i.fingerprint_bytes, "fingerprint_bytes")?
                    .clamp(16, 1 << 20),
                max_open_rotated: i.max_open_rotated_per_source.max(1),
                batch_bytes,
            },
            rescan: if i.rescan_interval.is_zero() {
                Duration::from_secs(10)
            } else {
                i.rescan_interval
            },
            docker_api: i.docker.api.clone().filter(|_| i.docker.enabled),
            max_pending: usize_of(i.max_pending_bytes, "max_pending_bytes")?,
        })
    }
}

pub(crate) struct Tailer {
    settings: Settings,
    store: Arc<Store>,
    out: Outbox,
    scratch: Scratch,
    stats: Arc<Stats>,
    ready: Arc<Ready>,
    watcher: Option<notify::RecommendedWatcher>,
    events: Receiver<notify::Result<notify::Event>>,
    events_tx: Sender<notify::Result<notify::Event>>,
    /// Set by the watcher thread when it had to drop events (queue full): rescan everything.
    events_lost: Arc<AtomicBool>,
    watches: watches::Watches,
    /// The last try to start inotify failed (said once until it works).
    inotify_failed: bool,
    /// Container directories outside the log roots that the Docker API named: each watched on
    /// its own (non-recursive), so that their writes wake the tailer as the roots' do.
    api_dirs: HashSet<PathBuf>,
    sources: HashMap<String, Source>,
    canonical: HashMap<PathBuf, String>,
    /// Logs found and not read (filtered, or a second path to a file read): not looked at
    /// again while they exist; pruned at each full scan to those still on disk, so pods that
    /// come and go do not grow it.
    ignored: HashSet<String>,
    /// Directories under the log roots the last full scan could not list, with why: said
    /// when one starts failing (or fails for another reason) and when it lists again.
    unlisted: HashMap<PathBuf, std::io::ErrorKind>,
    /// Sum of the sources' held bytes (lines not yet ended), kept under `max_pending`.
    pending_total: usize,
    dirty: HashSet<PathBuf>,
    rotated_dirty: HashSet<PathBuf>,
    /// Directories created recently: files created in them before inotify watched them send no
    /// event, so they are looked at again for a short while.
    young: Vec<(Input, PathBuf, Instant)>,
}

impl Tailer {
    pub(crate) fn new(
        settings: Settings,
        store: Arc<Store>,
        (tx, recycled): (Sender<Msg>, Receiver<crate::ingest::Batch>),
        stats: Arc<Stats>,
        ready: Arc<Ready>,
    ) -> Result<Tailer, TailError> {
        let (events_tx, events) = bounded(EVENT_QUEUE);
        let block = settings.tail.block;
        let limit = settings.tail.batch_bytes;
        Ok(Tailer {
            settings,
            store,
            out: Outbox {
                tx,
                batch: crate::ingest::Batch::with_budget(limit),
                recycled,
                limit,
                stats: stats.clone(),
            },
            scratch: Scratch {
                buf: vec![0; block],
                unescape: Vec::new(),
            },
            stats,
            ready,
            watcher: None,
            events,
            events_tx,
            events_lost: Arc::new(AtomicBool::new(false)),
            watches: watches::Watches::default(),
            inotify_failed: false,
            api_dirs: HashSet::new(),
            sources: HashMap::new(),
            canonical: HashMap::new(),
            ignored: HashSet::new(),
            unlisted: HashMap::new(),
            pending_total: 0,
            dirty: HashSet::new(),
            rotated_dirty: HashSet::new(),
            young: Vec::new(),
        })
    }

    fn ensure_watches(&mut self) {
        if self.watcher.is_none() {
            let tx = self.events_tx.clone();
            let lost = self.events_lost.clone();
            let stats = self.stats.clone();
            match notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
                note_pending(&stats, &ev);
                if let Err(TrySendError::Full(_)) = tx.try_send(ev) {
                    lost.store(true, Ordering::Release);
                }
            }) {
                Ok(w) => {
                    self.watcher = Some(w);
                    self.inotify_failed = false;
                }
                Err(e) => {
                    if !std::mem::replace(&mut self.inotify_failed, true) {
                        tracing::warn!(error = %e, "inotify unavailable; relying on the periodic rescan (tried again at every rescan)");
                    }
                    return;
                }
            }
        }
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        self.watches.forget_replaced_roots(w);
        self.watches.refresh(w);
        for (input, root) in &self.settings.roots {
            if self.watches.covered(root) || !root.is_dir() {
                continue;
            }
            let depth = match input {
                Input::Docker => 1,
                Input::Cri => 2,
            };
            self.watches.watch_root(w, root, depth);
        }
    }

    fn add(&mut self, f: Found) {
        self.add_with(f, None);
    }

    /// Add a found log; `known` is its identity when the finder already has it (the Docker
    /// API), else it is read from disk.
    fn add_with(&mut self, f: Found, known: Option<SourceIdentity>) {
        if self.sources.contains_key(&f.key) || self.ignored.contains(&f.key) {
            return;
        }
        let canonical = std::fs::canonicalize(&f.live).unwrap_or_else(|_| f.live.clone());
        if let Some(owner) = self.canonical.get(&canonical) {
            if *owner != f.key {
                self.stats
                    .input(f.input)
                    .duplicates
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(path = %f.live.display(), read_as = %owner, "log file reached twice (symlink); read once");
                self.ignored.insert(f.key);
                return;
            }
        }
        let identity = known.unwrap_or_else(|| discover::identity_of(&f, &self.stats));
        if !self.settings.filter.allows(&identity) {
            self.stats
                .input(f.input)
                .skipped_by_filter
                .fetch_add(1, Ordering::Relaxed);
            self.ignored.insert(f.key);
            return;
        }
        self.canonical.insert(canonical.clone(), f.key.clone());
        self.dirty.insert(parent(&f.live));
        self.stats.sources.fetch_add(1, Ordering::Relaxed);
        let src = Source::new(
            Arc::from(f.key.as_str()),
            f.input,
            f.live,
            canonical,
            identity,
        );
        self.sources.insert(f.key, src);
    }

    fn scan_all(&mut self) {
        self.ensure_watches();
        let mut found = Vec::new();
        let mut unlisted = Vec::new();
        for (input, root) in &self.settings.roots {
            let mut u = discover::Unlisted::default();
            match input {
                Input::Docker => discover::scan_docker(root, &mut found, &mut u),
                Input::Cri => discover::scan_cri(root, &mut found, &mut u),
            }
            unlisted.extend(u.0.into_iter().map(|(dir, e)| (*input, dir, e)));
        }
        self.note_unlisted(unlisted);
        let present: HashSet<&str> = found.iter().map(|f| f.key.as_str()).collect();
        self.ignored.retain(|k| present.contains(k.as_str()));
        for f in found {
            self.add(f);
        }
        self.stats
            .ignored_sources
            .store(self.ignored.len() as i64, Ordering::Relaxed);
        for s in self.sources.values_mut() {
            s.scan_rotated(&self.store, &self.settings.tail, &self.stats);
        }
    }

    /// Directories a full scan could not list: every failed listing is counted in
    /// `runnel_input_read_errors_total`, and said once per directory and reason (a rescan
    /// every few seconds must not flood the agent's log), and once more when it lists again.
    fn note_unlisted(&mut self, now: Vec<(Input, PathBuf, std::io::Error)>) {
        let mut next = HashMap::with_capacity(now.len());
        for (input, dir, e) in now {
            self.stats
                .input(input)
                .read_errors
                .fetch_add(1, Ordering::Relaxed);
            if self.unlisted.get(&dir) != Some(&e.kind()) {
                tracing::warn!(dir = %dir.display(), error = %e, input = input.as_str(),
                    "cannot list a directory under a log root: the logs in it are not read (tried again at every rescan; counted in runnel_input_read_errors_total)");
            }
            next.insert(dir, e.kind());
        }
        for dir in self.unlisted.keys().filter(|d| !next.contains_key(*d)) {
            tracing::info!(dir = %dir.display(), "a directory under a log root can be listed again");
        }
        self.stats
            .unlisted_dirs
            .store(next.len() as i64, Ordering::Relaxed);
        self.unlisted = next;
    }

    /// Bring the node-wide total of held bytes up to date for source `key`.
    fn account(&mut self, key: &str) {
        let Some(s) = self.sources.get_mut(key) else {
            return;
        };
        let now = s.held_bytes();
        self.pending_total = self.pending_total.saturating_sub(s.held_accounted) + now;
        s.held_accounted = now;
    }

    /// While the lines not yet ended hold more than `max_pending_bytes`, emit the oldest one
    /// (truncated; the rest of it is skipped when it comes).
    fn enforce_pending(&mut self) {
        while self.pending_total > self.settings.max_pending {
            let oldest = self
                .sources
                .iter()
                .filter_map(|(k, s)| s.oldest_held().map(|b| (b, k)))
                .min()
                .map(|(_, k)| k.clone());
            let Some(key) = oldest else { break };
            let evicted = self
                .sources
                .get_mut(&key)
                .is_some_and(|s| s.evict_oldest(&mut self.out, &mut self.scratch));
            self.account(&key);
            if !evicted {
                // Every eviction drops one held line, so the loop ends; never spin regardless.
                break;
            }
        }
        self.stats
            .pending_bytes
            .store(self.pending_total as i64, Ordering::Relaxed);
    }

    fn on_event(&mut self, ev: notify::Event) {
        if ev.need_rescan() {
            // The kernel's inotify queue overflowed: events were lost.
            self.events_lost.store(true, Ordering::Release);
            return;
        }
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            // Our own opens and reads: ignoring them avoids a feedback loop.
            return;
        }
        let rotated = matches!(
            ev.kind,
            notify::EventKind::Create(_)
                | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
        );
        for path in ev.paths {
            if let Some(dir) = path.parent().filter(|d| self.api_dirs.contains(*d)) {
                if rotated {
                    self.rotated_dirty.insert(dir.to_path_buf());
                }
                self.dirty.insert(dir.to_path_buf());
                continue;
            }
            for (input, root) in self.settings.roots.clone() {
                let Ok(rel) = path.strip_prefix(&root) else {
                    continue;
                };
                let comps: Vec<_> = rel.components().collect();
                if comps.is_empty() && matches!(ev.kind, notify::EventKind::Remove(_)) {
                    // The root itself went: its watch went with it. Watched again once it is
                    // back (the check below every loop).
                    if let Some(w) = self.watcher.as_mut() {
                        self.watches.forget_root(w, &root);
                    }
                    continue;
                }
                let mut found = Vec::new();
                let dir = match input {
                    Input::Docker if !comps.is_empty() => {
                        let d = root.join(comps[0]);
                        discover::docker_in_dir(&d, &mut found, &mut discover::Unlisted::default());
                        d
                    }
                    Input::Cri if comps.len() >= 2 => {
                        let d = root.join(comps[0]).join(comps[1]);
                        discover::cri_in_container_dir(
                            &root,
                            &d,
                            &mut found,
                            &mut discover::Unlisted::default(),
                        );
                        d
                    }
                    Input::Cri if comps.len() == 1 && path.is_dir() => {
                        // A new pod directory: its container dirs may already exist.
                        let mut f2 = Vec::new();
                        for c in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                            discover::cri_in_container_dir(
                                &root,
                                &c.path(),
                                &mut f2,
                                &mut discover::Unlisted::default(),
                            );
                        }
                        found.extend(f2);
                        path.clone()
                    }
                    _ => continue,
                };
                for f in found {
                    self.add(f);
                }
                if matches!(ev.kind, notify::EventKind::Create(_)) && path.is_dir() {
                    if let Some(w) = self.watcher.as_mut() {
                        self.watches.created_dir(w, &path);
                    }
                    self.young.push((input, path.clone(), Instant::now()));
                }
                if rotated {
                    self.rotated_dirty.insert(dir.clone());
                }
                self.dirty.insert(dir);
            }
        }
    }

    fn recheck_young(&mut self) {
        self.young
            .retain(|(_, _, t)| t.elapsed() < Duration::from_secs(3));
        let mut found = Vec::new();
        for (input, dir, _) in &self.young {
            let root = self
                .settings
                .roots
                .iter()
                .find(|(i, _)| i == input)
                .map(|(_, r)| r.clone());
            let Some(root) = root else { continue };
            match input {
                Input::Docker => {
                    discover::docker_in_dir(dir, &mut found, &mut discover::Unlisted::default())
                }
                Input::Cri => {
                    if dir.parent() == Some(root.as_path()) {
                        for c in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                            discover::cri_in_container_dir(
                                &root,
                                &c.path(),
                                &mut found,
                                &mut discover::Unlisted::default(),
                            );
                        }
                    } else {
                        discover::cri_in_container_dir(
                            &root,
                            dir,
                            &mut found,
                            &mut discover::Unlisted::default(),
                        );
                    }
                }
            }
        }
        for f in found {
            self.add(f);
        }
    }

    /// Poll sources (all, or those with events). Returns (bytes read, files released).
    fn poll(&mut self, all: bool, budget: usize) -> (usize, bool) {
        let dirty = std::mem::take(&mut self.dirty);
        let rotated = std::mem::take(&mut self.rotated_dirty);
        let mut total = 0;
        let mut released = false;
        let mut finished = Vec::new();
        let keys: Vec<String> = self.sources.keys().cloned().collect();
        for key in keys {
            let Some(s) = self.sources.get_mut(&key) else {
                continue;
            };
            let dir = parent(&s.live);
            if rotated.contains(&dir) {
                s.scan_rotated(&self.store, &self.settings.tail, &self.stats);
            }
            if all || dirty.contains(&dir) {
                let (n, r) = s.poll(
                    &self.store,
                    &self.settings.tail,
                    &mut self.out,
                    &mut self.scratch,
                    budget,
                );
                total += n;
                released |= r;
                if n > 0 {
                    self.stats.input_beat.beat();
                }
                if n > 0 || r {
                    // It may have more (budget spent): poll it again next round.
                    self.dirty.insert(dir);
                }
                if s.finished && s.open_files() == 0 && !s.live.exists() {
                    finished.push(key.clone());
                }
                self.account(&key);
                self.enforce_pending();
            } else if s.finished && s.open_files() == 0 && !s.live.exists() {
                finished.push(key.clone());
            }
        }
        self.out.flush();
        for k in finished {
            if let Some(s) = self.sources.remove(&k) {
                self.unwatch_api_dir(&s.live);
                self.pending_total = self.pending_total.saturating_sub(s.held_accounted);
                self.canonical.remove(&s.canonical);
                self.stats.sources.fetch_sub(1, Ordering::Relaxed);
                // After the records just flushed, in the same queue.
                let _ = self.out.tx.send(Msg::Retire(s.key.clone()));
                tracing::info!(source = %k, "log file removed and drained; source closed");
            }
        }
        (total, released)
    }

    /// Retire the index's file sources that discovery did not find: their containers were
    /// removed while the agent was not running. Their records stay until retention.
    fn retire_vanished(&mut self) {
        let store = self.store.clone();
        for info in store.sources() {
            let file_source = info.key.starts_with("docker:") || info.key.starts_with("cri:");
            if file_source && !info.retired && !self.sources.contains_key(&info.key) {
                tracing::info!(source = %info.key, "log files gone while the agent was down; source retired");
                let _ = self.out.tx.send(Msg::Retire(info.key.into()));
            }
        }
    }

    fn drain_to_eof(&mut self) {
        self.scan_all();
        self.retire_vanished();
        loop {
            let (n, released) = self.poll(true, usize::MAX);
            if n == 0 && !released {
                break;
            }
        }
        // Lines still held at the end of what is there are stored too: a backfill must not
        // leave a line that never ended (a progress bar) behind.
        for s in self.sources.values_mut() {
            s.flush_at_eof(&mut self.out);
            s.held_accounted = s.held_bytes();
        }
        self.pending_total = self.sources.values().map(|s| s.held_accounted).sum();
        self.stats
            .pending_bytes
            .store(self.pending_total as i64, Ordering::Relaxed);
        self.out.flush();
    }

    fn sync_writer(&mut self) {
        self.out.flush();
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.out.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    pub(crate) fn run(mut self, cmds: Receiver<Cmd>) {
        self.scan_all();
        let (mut api_client, mut api) = self.start_docker_api();
        self.await_docker_api(&api);
        self.retire_vanished();
        self.ready.set();
        let mut last_rescan = Instant::now();
        let mut last_all = Instant::now();
        let mut all = true;
        loop {
            if crate::failpoint::at("tailer") == crate::failpoint::Action::Exit {
                return;
            }
            let (n, _) = self.poll(all, SOURCE_BUDGET);
            if all {
                last_all = Instant::now();
            }
            // Keep reading without sleeping while there is data (budget hit).
            let wait = if n > 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(250)
            };
            let events = self.events.clone();
            select! {
                recv(cmds) -> c => match c {
                    Ok(Cmd::Oneshot(ack)) => {
                        self.drain_to_eof();
                        self.sync_writer();
                        let _ = ack.send(());
                        return;
                    }
                    Ok(Cmd::Reconfigure(settings, ack)) => {
                        if self.reconfigure(*settings) {
                            // The old client stops (its thread joined) before the new one
                            // lists: what it finds again is known by its key.
                            drop(api_client.take());
                            (api_client, api) = self.start_docker_api();
                            tracing::info!(api = ?self.settings.docker_api, "Docker API client restarted for the new config");
                        }
                        let _ = ack.send(());
                    }
                    Ok(Cmd::Stop(ack)) => {
                        self.sync_writer();
                        let _ = ack.send(());
                        return;
                    }
                    Err(_) => {
                        self.sync_writer();
                        return;
                    }
                },
                recv(events) -> ev => {
                    if let Ok(Ok(ev)) = ev {
                        self.on_event(ev);
                    }
                    while let Ok(ev) = self.events.try_recv() {
                        if let Ok(ev) = ev {
                            self.on_event(ev);
                        }
                    }
                }
                recv(api) -> d => match d {
                    Ok(d) => {
                        self.on_docker_api(d);
                        while let Ok(d) = api.try_recv() {
                            self.on_docker_api(d);
                        }
                    }
                    // The client thread ended (it logged why): the files alone are read.
                    Err(_) => api = crossbeam_channel::never(),
                },
                default(wait) => {}
            }
            self.recheck_young();
            // A root that could not be watched at all (or no inotify) is tried again at the
            // next rescan.
            let root_appeared = self.watcher.is_some()
                && self.settings.roots.iter().any(|(_, r)| {
                    !self.watches.covered(r) && !self.watches.failed(r) && r.is_dir()
                });
            let lost = self.events_lost.swap(false, Ordering::AcqRel);
            if lost {
                self.stats.events_lost.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("file events were dropped (queue full); rescanning everything");
            }
            if lost || root_appeared || last_rescan.elapsed() >= self.settings.rescan {
                self.scan_all();
                last_rescan = Instant::now();
            }
            all = lost || last_all.elapsed() >= POLL_ALL_EVERY;
            let open: usize = self.sources.values().map(Source::open_files).sum();
            self.stats.open_files.store(open as i64, Ordering::Relaxed);
            self.stats.input_beat.beat();
        }
    }
}

/// A file under a log root was created or written: bytes may wait to be read (`/healthz`
/// compares this stamp with the tailer's progress).
fn note_pending(stats: &Stats, ev: &notify::Result<notify::Event>) {
    if let Ok(ev) = ev {
        use notify::event::ModifyKind;
        if matches!(
            ev.kind,
            notify::EventKind::Create(_)
                | notify::EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_))
        ) {
            stats.input_pending.beat();
        }
    }
}

impl Tailer {
    /// Start the Docker API client when `inputs.docker.api` is set; without it (or when its
    /// thread cannot start) the receiver never yields and discovery is by files alone.
    fn start_docker_api(&self) -> (Option<docker_api::Client>, Receiver<Discovery>) {
        let Some(addr) = &self.settings.docker_api else {
            return (None, crossbeam_channel::never());
        };
        match docker_api::Client::start(addr, self.stats.clone()) {
            Ok((c, rx)) => (Some(c), rx),
            Err(e) => {
                tracing::error!(socket = %addr, error = %e, "cannot start the Docker API client; reading the files alone");
                (None, crossbeam_channel::never())
            }
        }
    }

    /// At start, take the API's first list (or its first failure) before retiring the index's
    /// sources that nobody found: a container whose log is outside the Docker root is known
    /// only to the API. Bounded so a hung engine does not hold the files back.
    fn await_docker_api(&mut self, api: &Receiver<Discovery>) {
        if self.settings.docker_api.is_none() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(d) = api.recv_deadline(deadline) {
            if matches!(d, Discovery::Synced) {
                return;
            }
            self.on_docker_api(d);
        }
        tracing::warn!(
            "the Docker API did not list its containers within 5 s; going on with the files"
        );
    }

    fn on_docker_api(&mut self, d: Discovery) {
        match d {
            Discovery::Container(f, identity) => {
                let (key, live) = (f.key.clone(), f.live.clone());
                self.add_with(f, Some(*identity));
                if self.sources.contains_key(&key) {
                    self.watch_api_dir(&live);
                }
            }
            // Poll it now: its last lines are read, and once its file is gone it is retired.
            Discovery::Gone(key) => {
                if let Some(s) = self.sources.get(&key) {
                    self.dirty.insert(parent(&s.live));
                }
            }
            Discovery::Synced => {}
        }
    }
}

impl Tailer {
    /// Watch the directory of a log the API named when no root's watch covers it: without it
    /// the file would be looked at only by the once-a-second pass over every source.
    fn watch_api_dir(&mut self, live: &Path) {
        let dir = parent(live);
        let covered = self
            .settings
            .roots
            .iter()
            .any(|(_, r)| self.watches.covered(r) && dir.starts_with(r));
        if covered || self.api_dirs.contains(&dir) {
            return;
        }
        if let Some(w) = self.watcher.as_mut() {
            match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.api_dirs.insert(dir);
                }
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot watch a container directory; it is polled once a second")
                }
            }
        }
    }

    /// Stop watching the directory of a log that is no longer read.
    pub(super) fn unwatch_api_dir(&mut self, live: &Path) {
        let dir = parent(live);
        if self.api_dirs.remove(&dir) {
            if let Some(w) = self.watcher.as_mut() {
                // Gone with the directory already, when the container was removed.
                let _ = w.unwatch(&dir);
            }
        }
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}
