//! One container log (a source): its live file and the rotated files still to drain, read
//! strictly in order (oldest first) so records reach the index in file order. Detects rotation
//! by rename (a new inode at the live path), copytruncate (size below the offset or a changed
//! fingerprint), gzip of rotated files (recognised by the fingerprint of the decompressed head)
//! and deletion (handle kept until drained).

use super::file::{is_gz, look, Looked, ReadOutcome, TailFile};
use super::lines::{Event, LineAssembler};
use super::parse::{Format, FormatRule};
use super::stats::{Input, Stats};
use crate::ingest::{Batch, Msg, QueuedRecord};
use crossbeam_channel::{Receiver, Sender};
use runnel_index::{FileId, Position, Query, SourceIdentity, Store};
use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How far back a restart looks in a source's records when its last file is gone.
const HISTORY_RECORDS: u64 = 4096;
/// Message bytes that look-back may read.
const HISTORY_BYTES: u64 = 8 << 20;
/// Fingerprints remembered per source (files already read, with how far).
const KNOWN_MAX: usize = 256;
/// Times a source's directory is listed and its files looked at before a view that keeps
/// changing (renames under way) is taken as it is, to be looked at again at the next poll.
const LIST_ATTEMPTS: usize = 5;

/// Rotated files of a source, as [`Source::list_rotated`] found them.
struct Listing {
    /// The files not open yet, oldest first, each looked at.
    files: Vec<(PathBuf, Looked)>,
    /// False when some file could not be looked at.
    all_seen: bool,
    /// Some look failed other than by the file being gone (EACCES, EMFILE): the caller counts
    /// it once in `read_errors`, however many times the view was taken.
    read_error: bool,
    /// Every rotated name and the file it held, as listed when the looks were made.
    names: Vec<(PathBuf, Option<(u64, u64)>)>,
}

/// Settings the tailer uses.
#[derive(Debug, Clone)]
pub struct TailSettings {
    /// Message cap.
    pub max_line: usize,
    /// Read block size.
    pub block: usize,
    /// Fingerprint length.
    pub fingerprint_bytes: usize,
    /// Open rotated files per source.
    pub max_open_rotated: usize,
    /// Bytes per batch sent to the writer.
    pub batch_bytes: usize,
}

/// Queue towards the writer; blocks when the writer is behind (backpressure).
pub struct Outbox {
    /// Channel to the writer.
    pub tx: Sender<Msg>,
    /// Batch being filled.
    pub batch: Batch,
    /// Emptied batches coming back from the writer, to be filled again.
    pub recycled: Receiver<Batch>,
    /// Flush at this many bytes.
    pub limit: usize,
    /// Counters.
    pub stats: Arc<Stats>,
}

impl Outbox {
    /// Send the current batch (blocking while the queue is full).
    pub fn flush(&mut self) {
        if self.batch.records.is_empty() {
            return;
        }
        let next = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Batch::with_budget(self.limit));
        let b = std::mem::replace(&mut self.batch, next);
        self.stats.queue.enqueued(b.records.len(), b.held_bytes());
        if self.tx.send(Msg::Records(b)).is_err() {
            tracing::error!(
                "index writer stopped; records not queued will be re-read after restart"
            );
        }
    }
    /// True when the batch should be sent before a message of `len` bytes is added.
    pub fn full(&self, len: usize) -> bool {
        !self.batch.records.is_empty() && !self.batch.fits(len)
    }
}

/// Buffers shared by every file read on the tailer thread.
pub struct Scratch {
    /// Read block.
    pub buf: Vec<u8>,
    /// Unescape buffer.
    pub unescape: Vec<u8>,
}

struct Known {
    hash: u64,
    id: FileId,
    offset: u64,
    done: bool,
    /// Held back by the open-rotated-files cap (counted once when it first happened).
    deferred: bool,
    /// The live file's content, truncated in place at `offset`, whose copy the next complete
    /// scan must find (copytruncate copies before it truncates).
    copy_expected: bool,
}

/// One container log being followed.
pub struct Source {
    /// Stable key.
    pub key: Arc<str>,
    /// Input.
    pub input: Input,
    /// The live file path.
    pub live: PathBuf,
    /// The canonical live path (symlink dedupe).
    pub canonical: PathBuf,
    /// Who wrote it.
    pub identity: SourceIdentity,
    files: VecDeque<TailFile>,
    known: VecDeque<Known>,
    announced: bool,
    initialised: bool,
    /// Set when the live path has gone and everything is drained.
    pub finished: bool,
    retry_scan: bool,
    /// Lines the live file held when it was truncated in place (fingerprint and identity of
    /// its old content): handed to its copy when the copy is opened, else emitted as they are.
    awaiting_copy: Option<(u64, FileId, LineAssembler)>,
    /// The index knew this source when it was first looked at (it was read before).
    known_to_index: bool,
    /// [`Source::held_bytes`] as last added to the tailer's node-wide total.
    pub held_accounted: usize,
    /// Why the live file could not be opened, as last logged: logged again only when the
    /// reason changes (every failed look is counted in `read_errors`).
    open_error: Option<std::io::ErrorKind>,
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// Order of rotated names: kubelet timestamps ascending, Docker/logrotate `.N` descending.
fn rotation_rank(live_name: &str, name: &str) -> Option<(u8, i64, String)> {
    let suffix = name.strip_prefix(live_name)?.strip_prefix('.')?;
    if suffix.ends_with(".tmp") || suffix.is_empty() {
        return None;
    }
    let core = suffix.strip_suffix(".gz").unwrap_or(suffix);
    match core.parse::<i64>() {
        Ok(n) => Some((1, -n, String::new())),
        Err(_) => Some((0, 0, core.to_string())),
    }
}

impl Source {
    /// A source for `live`, not yet opened.
    pub fn new(
        key: Arc<str>,
        input: Input,
        live: PathBuf,
        canonical: PathBuf,
        identity: SourceIdentity,
    ) -> Source {
        Source {
            key,
            input,
            live,
            canonical,
            identity,
            files: VecDeque::new(),
            known: VecDeque::new(),
            open_error: None,
            announced: false,
            initialised: false,
            finished: false,
            retry_scan: false,
            awaiting_copy: None,
            known_to_index: false,
            held_accounted: 0,
        }
    }

    /// Files open now.
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// Memory held for lines not yet ended, over this source's open files.
    pub fn held_bytes(&self) -> usize {
        self.files.iter().map(|f| f.lines.held_bytes()).sum()
    }

    /// When the oldest line held by this source began (a global order), if any.
    pub fn oldest_held(&self) -> Option<u64> {
        self.files.iter().filter_map(|f| f.lines.oldest()).min()
    }

    /// Emit this source's oldest held line now, flagged truncated (the node-wide bound on
    /// pending lines, `inputs.max_pending_bytes`, is reached); counted as an eviction. False
    /// when it holds none.
    pub fn evict_oldest(&mut self, out: &mut Outbox, sc: &mut Scratch) -> bool {
        let (input, key, stats) = (self.input, self.key.clone(), out.stats.clone());
        let Some(f) = self
            .files
            .iter_mut()
            .filter(|f| f.lines.oldest().is_some())
            .min_by_key(|f| f.lines.oldest())
        else {
            return false;
        };
        let id = f.id;
        let evicted = f.lines.evict(&mut sc.unescape, &mut |ev| {
            queue(ev, &id, input, &key, out, &stats)
        });
        if evicted {
            stats
                .input(input)
                .pending_evictions
                .fetch_add(1, Ordering::Relaxed);
        }
        evicted
    }

    /// `--oneshot` at the end: store every line still held (see
    /// [`super::lines::LineAssembler::flush_at_eof`]).
    pub fn flush_at_eof(&mut self, out: &mut Outbox) {
        let (input, key, stats) = (self.input, self.key.clone(), out.stats.clone());
        for f in self.files.iter_mut() {
            let id = f.id;
            f.lines
                .flush_at_eof(&mut |ev| queue(ev, &id, input, &key, out, &stats));
        }
    }

    fn remember(&mut self, hash: u64, id: FileId, offset: u64, done: bool) {
        if let Some(k) = self.known.iter_mut().find(|k| k.hash == hash) {
            k.id = id;
            k.offset = k.offset.max(offset);
            k.done |= done;
            return;
        }
        if self.known.len() >= KNOWN_MAX {
            self.known.pop_front();
        }
        self.known.push_back(Known {
            hash,
            id,
            offset,
            done,
            deferred: false,
            copy_expected: false,
        });
    }

    /// Leave a rotated file on disk because `max_open_rotated_per_source` rotated files are
    /// open already; a later scan opens it once earlier files are released. Counted once per
    /// file, however many scans find it still waiting.
    fn defer(&mut self, hash: u64, id: FileId, start: u64, stats: &Stats) {
        self.remember(hash, id, start, false);
        self.retry_scan = true;
        if let Some(k) = self.known.iter_mut().find(|k| k.hash == hash) {
            if !k.deferred {
                k.deferred = true;
                stats
                    .input(self.input)
                    .forced_closes
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn opened(&mut self, hash: u64, id: FileId, start: u64) {
        self.remember(hash, id, start, false);
        if let Some(k) = self.known.iter_mut().find(|k| k.hash == hash) {
            k.deferred = false;
            k.copy_expected = false;
        }
    }

    fn rotated_on_disk(&self) -> Vec<PathBuf> {
        let live_name = file_name(&self.live).to_string();
        let Some(dir) = self.live.parent() else {
            return Vec::new();
        };
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<((u8, i64, String), PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let p = e.path();
                rotation_rank(&live_name, file_name(&p)).map(|r| (r, p))
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, p)| p).collect()
    }

    /// Start reading a file that was looked at. When that fails (a gzip whose content ends
    /// before the resume offset: it holds nothing unread) it is remembered as done.
    fn open_file(
        &mut self,
        path: &Path,
        looked: Looked,
        id: FileId,
        offset: u64,
        st: &TailSettings,
        stats: &Stats,
    ) -> Option<TailFile> {
        let hash = looked.print.hash;
        // A file under the Docker root is json-file; under the kubelet's pod directories it is
        // CRI unless its lines are json-file (dockershim links Docker's files there).
        let rule = match self.input {
            Input::Docker => FormatRule::Fixed(Format::JsonFile),
            Input::Cri => FormatRule::FirstParseable,
        };
        match TailFile::open(
            path,
            looked,
            id,
            offset,
            rule,
            st.max_line,
            st.fingerprint_bytes,
        ) {
            Ok(f) => {
                stats.open_files.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(path = %path.display(), ino = id.ino, print = format_args!("{:016x}", hash), offset, "log file opened");
                Some(f)
            }
            Err(e) => {
                stats
                    .input(self.input)
                    .read_errors
                    .fetch_add(1, Ordering::Relaxed);
                // Out of descriptors or memory: the file is fine, so it is opened again at
                // the next scan instead of being given up on.
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
                ) {
                    tracing::warn!(path = %path.display(), offset, error = %e, "cannot open log file now; will retry");
                    self.retry_scan = true;
                    return None;
                }
                tracing::warn!(path = %path.display(), offset, error = %e, "cannot read log file from its resume offset; skipping it");
                self.remember(hash, id, offset, true);
                None
            }
        }
    }

    /// First look at the source (startup or a new container): decide per file where reading
    /// starts, from what the index holds durably.
    fn initialise(&mut self, store: &Store, st: &TailSettings, stats: &Stats) {
        self.initialised = true;
        let live_ino = std::fs::metadata(&self.live).map(|m| m.ino()).ok();
        // An unknown source (first start) answers with an error: nothing was read before.
        let answer = store.query(
            &self.key,
            &Query {
                tail_lines: Some(1),
                ..Query::default()
            },
        );
        self.known_to_index = answer.is_ok();
        let last = answer
            .ok()
            .and_then(|r| r.records.last().map(|r| r.position));
        let last = match last {
            Some(Position::File { file, offset }) => Some((file, offset)),
            _ => None,
        };
        struct Cand {
            path: PathBuf,
            looked: Looked,
            id: FileId,
            len: Option<u64>,
            resume: Option<u64>,
        }
        let mut cands = Vec::new();
        // Opened once: the identity, the fingerprint and the handle read later are all of the
        // same file even if a rotation renames it meanwhile.
        for (path, looked) in self.look_all(st, stats) {
            let (m, print) = (&looked.meta, looked.print);
            let gz = is_gz(&path);
            let mut id = FileId {
                dev: m.dev(),
                ino: m.ino(),
                fingerprint: print.hash,
            };
            let mut resume = None;
            let mut ids = vec![id];
            if let Some(li) = live_ino {
                ids.push(FileId { ino: li, ..id });
            }
            // A source the index does not know has read nothing: positions the index holds for
            // the same (device, inode, first line) belong to another container whose file was
            // deleted and whose inode was reused, and must not skip this file's lines. (A known
            // source keeps its positions even after retention deleted all its records.)
            for cand in ids.iter().filter(|_| self.known_to_index) {
                if let Some(p) = store.durable_position(cand) {
                    if resume.is_none_or(|r| p > r) {
                        resume = Some(p);
                        if !gz {
                            id = *cand;
                        }
                    }
                }
            }
            if let Some((lf, lo)) = last {
                if lf.fingerprint == print.hash && resume.is_none_or(|r| lo > r) {
                    resume = Some(lo);
                    id = lf;
                }
            }
            let len = (!gz).then_some(m.len());
            cands.push(Cand {
                path,
                looked,
                id,
                len,
                resume,
            });
        }
        // A rotated file that begins like the live file is its copy, made by a copytruncate
        // that has not truncated yet: the content is read once, from the live file (the copy
        // resumes where that got to once the truncation is seen).
        let live_hash = cands
            .last()
            .filter(|c| c.path == self.live)
            .map(|c| c.looked.print.hash);
        cands.retain(|c| c.path == self.live || Some(c.looked.print.hash) != live_hash);
        // A rotated file being gzipped is on disk twice (`f` and `f.gz`, until `f` is removed):
        // the same content, read once, from the plain file (it knows its length; its handle
        // stays readable after the unlink).
        let twins: Vec<(usize, Option<u64>)> = cands
            .iter()
            .filter(|g| is_gz(&g.path))
            .filter_map(|g| {
                let hash = g.looked.print.hash;
                let plain = cands
                    .iter()
                    .position(|p| !is_gz(&p.path) && p.looked.print.hash == hash)?;
                Some((plain, g.resume))
            })
            .collect();
        for (plain, resume) in twins {
            cands[plain].resume = cands[plain].resume.max(resume);
        }
        let plain: Vec<u64> = cands
            .iter()
            .filter(|c| !is_gz(&c.path))
            .map(|c| c.looked.print.hash)
            .collect();
        cands.retain(|c| !(is_gz(&c.path) && plain.contains(&c.looked.print.hash)));
        let mut anchor = cands.iter().rposition(|c| c.resume.is_some());
        if cands.iter().any(|c| c.resume.is_none()) && last.is_some() {
            // A file without a match: its inode changed (gzip) or the last file read is gone
            // (deleted, or the live file truncated in place). Look further back in the source's records for a file whose content is still here
            // (a gzipped rotation changes the inode but not the fingerprint of the content).
            for (file, offset) in self.recent_positions(store) {
                for c in cands.iter_mut() {
                    if c.looked.print.hash == file.fingerprint
                        && c.resume.is_none_or(|x| offset > x)
                    {
                        c.resume = Some(offset);
                        c.id = file;
                    }
                }
            }
            anchor = cands.iter().rposition(|c| c.resume.is_some());
        }
        if let (None, Some((file, offset))) = (anchor, last) {
            if !cands.is_empty()
                && cands
                    .iter()
                    .all(|c| c.looked.print.hash != file.fingerprint)
            {
                // The file last read is on disk under no name and nothing here was read
                // before: rotations while the agent was down deleted it (its copy, for
                // copytruncate) before it was read to its end.
                stats
                    .input(self.input)
                    .rotated_lost
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %self.key, offset, "the log file last read before the restart was rotated away while the agent was down; its lines past the offset are lost");
            }
        }
        // With no match at all everything present is read from its start.
        let n = cands.len();
        let mut opened_rotated = 0;
        for (i, c) in cands.into_iter().enumerate() {
            let is_live = i + 1 == n && c.path == self.live;
            let start = match (anchor, c.resume) {
                (Some(a), None) if i < a => {
                    self.remember(c.looked.print.hash, c.id, 0, true);
                    continue;
                }
                (_, r) => r.unwrap_or(0),
            };
            if !is_live && c.len.is_some_and(|l| start >= l) {
                self.remember(c.looked.print.hash, c.id, start, true);
                continue;
            }
            if !is_live {
                if opened_rotated >= st.max_open_rotated {
                    // Left on disk: picked up by a later scan once earlier files are released.
                    self.defer(c.looked.print.hash, c.id, start, stats);
                    continue;
                }
                opened_rotated += 1;
            }
            let hash = c.looked.print.hash;
            if let Some(f) = self.open_file(&c.path, c.looked, c.id, start, st, stats) {
                self.opened(hash, c.id, start);
                self.files.push_back(f);
            }
        }
    }

    /// The file positions of the source's last records in the index (up to
    /// `HISTORY_RECORDS`), oldest first: where earlier runs got to in files by content, for
    /// files whose inode changed (a gzipped copy) or that a first look missed.
    fn recent_positions(&self, store: &Store) -> Vec<(FileId, u64)> {
        let q = Query {
            tail_lines: Some(HISTORY_RECORDS),
            limit_bytes: Some(HISTORY_BYTES),
            ..Query::default()
        };
        store
            .query(&self.key, &q)
            .map(|r| r.records)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|rec| match rec.position {
                Position::File { file, offset } => Some((file, offset)),
                _ => None,
            })
            .collect()
    }

    /// Where an earlier run of the agent got to in a file this run has not met yet, from the
    /// index: by (device, inode, first line) for a plain file, else by the content's
    /// fingerprint among the source's last records (`recent`, read once per scan and only
    /// when a scan needs it; a gzipped copy has a new inode). A file the first look at the
    /// source missed (renamed or gzipped while it was being looked at) is found by a later
    /// scan and must not be read again from its start.
    fn read_before(
        &self,
        store: &Store,
        recent: &mut Option<Vec<(FileId, u64)>>,
        id: FileId,
        gz: bool,
    ) -> Option<(FileId, u64)> {
        if !self.known_to_index {
            return None;
        }
        let mut best = if gz {
            None
        } else {
            store.durable_position(&id).map(|p| (id, p))
        };
        let recent = recent.get_or_insert_with(|| self.recent_positions(store));
        for &(file, offset) in recent.iter() {
            if file.fingerprint == id.fingerprint && best.is_none_or(|(_, b)| offset > b) {
                best = Some((file, offset));
            }
        }
        best
    }

    /// Look for rotated files not tracked yet (gzipped copies, copytruncate copies, rotations
    /// that happened while we were not looking).
    pub fn scan_rotated(&mut self, store: &Store, st: &TailSettings, stats: &Stats) {
        if !self.initialised {
            // The first poll decides where each file present at start resumes.
            return;
        }
        // A rotated file is older than the live file's content only if that content is still
        // what it was: a copytruncate not seen yet (the tailer stalled, or the scan runs on the
        // copy's own event) must be seen first, or the next rotation's copy would be read
        // before the rest of this one.
        self.check_truncation(stats);
        // With the live file not open (new, or emptied by a truncation), its content now can
        // already have a copy beside it (copytruncate copies, then truncates): that content is
        // read from the live file, and its copy resumes where that read got to.
        let live_print = match self.live_position() {
            Some(_) => None,
            None => look(&self.live, st.fingerprint_bytes)
                .ok()
                .flatten()
                .map(|l| l.print.hash),
        };
        self.retry_scan = false;
        let mut seen = Vec::new();
        // A rotated file met here for the first time, with nothing of it read before: content
        // that was live after every content this run has read.
        let mut met_unread = false;
        let mut recent = None;
        let Listing {
            files: listed,
            all_seen,
            read_error,
            ..
        } = self.list_rotated(st);
        if read_error {
            self.count_read_error(stats);
        }
        for (path, looked) in listed {
            let gz = is_gz(&path);
            let (m, print) = (looked.meta.clone(), looked.print);
            if !gz && self.files.iter().any(|f| f.dev_ino == (m.dev(), m.ino())) {
                continue;
            }
            seen.push(print.hash);
            if live_print == Some(print.hash)
                || self.files.iter().any(|f| f.id.fingerprint == print.hash)
            {
                // A copy of a file still open or of the live file's content (gzip or
                // copytruncate in progress).
                continue;
            }
            let (id, start) = match self.known.iter().find(|k| k.hash == print.hash) {
                Some(k) if k.done => continue,
                Some(k) => (k.id, k.offset),
                None => {
                    let id = FileId {
                        dev: m.dev(),
                        ino: m.ino(),
                        fingerprint: print.hash,
                    };
                    self.read_before(store, &mut recent, id, gz)
                        .unwrap_or_else(|| {
                            met_unread = true;
                            (id, 0)
                        })
                }
            };
            if !gz && start >= m.len() {
                self.remember(print.hash, id, start, true);
                continue;
            }
            let rotated_open = self.files.len() - usize::from(self.live_position().is_some());
            if rotated_open >= st.max_open_rotated {
                self.defer(print.hash, id, start, stats);
                continue;
            }
            if let Some(mut f) = self.open_file(&path, looked, id, start, st, stats) {
                self.opened(print.hash, id, start);
                if let Some((_, _, lines)) = self
                    .awaiting_copy
                    .take_if(|(hash, ..)| *hash == print.hash && !gz)
                {
                    // The copy of a file truncated in place goes on where that file stopped,
                    // inside the lines it was assembling.
                    f.lines = lines;
                }
                // Rotated content is older than the live file: read it before.
                match self.live_position() {
                    Some(i) => self.files.insert(i, f),
                    None => self.files.push_back(f),
                }
            }
        }
        if all_seen {
            self.count_lost(&seen, stats);
            self.settle_expected_copies(&seen, met_unread, stats);
        }
    }

    /// The rotated files on disk not open yet, oldest first, each looked at (opened and
    /// fingerprinted). Names give the order, and a rotation renaming files while they are
    /// looked at (logrotate shifting `.1` to `.2` before copying the new `.1`) would pair a
    /// name with another file: the directory is listed before and after, and the files are
    /// looked at again until both listings agree and each opened file is the one its name
    /// held.
    fn list_rotated(&mut self, st: &TailSettings) -> Listing {
        let mut read_error = false;
        let mut listed = Vec::new();
        let mut all_seen = true;
        let mut before = Vec::new();
        for attempt in 1..=LIST_ATTEMPTS {
            listed.clear();
            all_seen = true;
            before = self.rotated_snapshot();
            let mut stable = true;
            for (path, ino) in &before {
                let Some(ino) = *ino else {
                    all_seen = false;
                    stable = false;
                    continue;
                };
                if !is_gz(path) && self.files.iter().any(|f| f.dev_ino == ino) {
                    continue;
                }
                match look(path, st.fingerprint_bytes) {
                    Ok(Some(l)) => {
                        stable &= (l.meta.dev(), l.meta.ino()) == ino;
                        listed.push((path.clone(), l));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // Gone meanwhile is a rename under way; anything else (EACCES, EMFILE)
                        // is reported, and the file looked at again next time.
                        read_error |= e.kind() != std::io::ErrorKind::NotFound;
                        all_seen = false;
                        stable = false;
                    }
                }
            }
            if stable && self.rotated_snapshot() == before {
                break;
            }
            if attempt == LIST_ATTEMPTS {
                // Still renaming: take what is there, and look again at the next poll.
                self.retry_scan = true;
            }
        }
        Listing {
            files: listed,
            all_seen,
            read_error,
            names: before,
        }
    }

    fn count_read_error(&self, stats: &Stats) {
        stats
            .input(self.input)
            .read_errors
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The rotated names on disk with the file each holds now.
    fn rotated_snapshot(&self) -> Vec<(PathBuf, Option<(u64, u64)>)> {
        self.rotated_on_disk()
            .into_iter()
            .map(|p| {
                let ino = std::fs::metadata(&p).ok().map(|m| (m.dev(), m.ino()));
                (p, ino)
            })
            .collect()
    }

    /// Every file of the source, rotated ones oldest first and the live file last, each looked
    /// at, as one view: a rotation or a gzip between listing the directory and looking at the
    /// live file (which would leave a file out, to be met later as one never read) makes it
    /// look again.
    fn look_all(&mut self, st: &TailSettings, stats: &Stats) -> Vec<(PathBuf, Looked)> {
        for attempt in 1..=LIST_ATTEMPTS {
            let listing = self.list_rotated(st);
            let live = look(&self.live, st.fingerprint_bytes);
            let settled = self.rotated_snapshot() == listing.names;
            if settled || attempt == LIST_ATTEMPTS {
                if !settled {
                    self.retry_scan = true;
                }
                // Once for the view, not once per attempt at it.
                let live_failed = live
                    .as_ref()
                    .is_err_and(|e| e.kind() != std::io::ErrorKind::NotFound);
                if listing.read_error || live_failed {
                    self.count_read_error(stats);
                }
                let mut all = listing.files;
                if let Ok(Some(l)) = live {
                    all.push((self.live.clone(), l));
                }
                return all;
            }
        }
        Vec::new()
    }

    /// Rotated files held back by the cap that are no longer on disk (under any name, gzipped
    /// or not) were deleted before they could be read: count them and stop waiting for them.
    fn count_lost(&mut self, seen: &[u64], stats: &Stats) {
        let open: Vec<u64> = self.files.iter().map(|f| f.id.fingerprint).collect();
        for k in self.known.iter_mut() {
            if k.deferred && !k.done && !seen.contains(&k.hash) && !open.contains(&k.hash) {
                k.deferred = false;
                k.done = true;
                stats
                    .input(self.input)
                    .rotated_lost
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %self.key, offset = k.offset, "a rotated file held back by inputs.max_open_rotated_per_source was deleted before it was read; its remaining lines are lost");
            }
        }
    }

    /// The first complete scan after the live file was truncated in place decides what became
    /// of its old content. Its copy was opened (nothing to do), or it is on disk under no
    /// name: with copies of later contents here, the rotation that made the copy happened and
    /// later rotations deleted it before the tailer could look (stalled by a full disk, or
    /// rotations faster than polls), so what the content held past the read offset is lost:
    /// counted in `rotated_lost`. With no later copy it was a plain truncation (the held
    /// lines go out as they are).
    fn settle_expected_copies(&mut self, seen: &[u64], met_unread: bool, stats: &Stats) {
        for k in self.known.iter_mut().filter(|k| k.copy_expected) {
            k.copy_expected = false;
            if k.done || seen.contains(&k.hash) || !met_unread {
                continue;
            }
            k.done = true;
            stats
                .input(self.input)
                .rotated_lost
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(source = %self.key, offset = k.offset, "the copy of a log file truncated in place (copytruncate) was rotated away before it was read; its lines past the offset are lost");
        }
    }

    /// Open the file now at the live path if it is new (first time, or after a rename rotation).
    fn check_live(&mut self, store: &Store, st: &TailSettings, stats: &Stats) -> bool {
        let Ok(m) = std::fs::metadata(&self.live) else {
            return false;
        };
        if self
            .files
            .iter()
            .any(|f| !f.gz && f.dev_ino == (m.dev(), m.ino()))
        {
            return false;
        }
        let looked = match look_counted(&self.live, st.fingerprint_bytes, stats, self.input) {
            Ok(Some(l)) => {
                self.open_error = None;
                l
            }
            Ok(None) => return false,
            Err(e) => {
                // EACCES (a root-owned 0600 file under a non-root agent), EMFILE, EIO: the
                // file is looked at again at every poll; said once per reason, not per poll.
                if e.kind() != std::io::ErrorKind::NotFound && self.open_error != Some(e.kind()) {
                    tracing::warn!(source = %self.key, path = %self.live.display(), error = %e,
                        "cannot open the log file; retrying at every poll (counted in runnel_input_read_errors_total)");
                    self.open_error = Some(e.kind());
                }
                return false;
            }
        };
        let (m, print) = (looked.meta.clone(), looked.print);
        if self
            .files
            .iter()
            .any(|f| !f.gz && f.dev_ino == (m.dev(), m.ino()))
        {
            // Replaced by a file already open between the two looks.
            return false;
        }
        let id = FileId {
            dev: m.dev(),
            ino: m.ino(),
            fingerprint: print.hash,
        };
        let start = Some(id)
            .filter(|_| self.known_to_index)
            .and_then(|id| store.durable_position(&id))
            .or_else(|| {
                self.known
                    .iter()
                    .find(|k| k.hash == print.hash)
                    .map(|k| k.offset)
            })
            .unwrap_or(0);
        if let Some(f) = self.open_file(&self.live.clone(), looked, id, start, st, stats) {
            self.opened(print.hash, id, start);
            self.files.push_back(f);
            self.finished = false;
            return true;
        }
        false
    }

    /// Read what is new, in file order, up to `budget` bytes. Returns bytes read and whether a
    /// file was released.
    pub fn poll(
        &mut self,
        store: &Store,
        st: &TailSettings,
        out: &mut Outbox,
        sc: &mut Scratch,
        budget: usize,
    ) -> (usize, bool) {
        let stats = out.stats.clone();
        if !self.initialised {
            self.initialise(store, st, &stats);
        }
        if !self.announced {
            if out
                .tx
                .send(Msg::Source(
                    self.key.clone(),
                    Box::new(self.identity.clone()),
                ))
                .is_err()
            {
                return (0, false);
            }
            self.announced = true;
        }
        if self.retry_scan || self.awaiting_copy.is_some() {
            // Lines held from a truncation seen by a scan outside poll go to the copy if it is
            // here by now, else out as they are.
            self.scan_rotated(store, st, &stats);
            self.flush_awaiting_copy(out, &stats);
        }
        if self.check_live(store, st, &stats) {
            // A new live file: a file rotated before we ever opened it is older; find it now so
            // it is read first.
            self.scan_rotated(store, st, &stats);
        }
        let mut total = 0;
        let mut released = false;
        while !self.files.is_empty() {
            let live = self.live_position() == Some(0);
            if live && self.check_truncation(&stats) {
                self.scan_rotated(store, st, &stats);
                self.flush_awaiting_copy(out, &stats);
                continue;
            }
            let more = self.files.len() > 1;
            let live_exists = self.live.exists();
            let Some(f) = self.files.front_mut() else {
                break;
            };
            let (n, end) = read_file(
                f,
                self.input,
                &self.key,
                out,
                sc,
                &stats,
                budget.saturating_sub(total),
            );
            total += n;
            match end {
                FileEnd::More => break,
                FileEnd::Replaced => {
                    self.start_over(0, &stats);
                    self.scan_rotated(store, st, &stats);
                    self.flush_awaiting_copy(out, &stats);
                    continue;
                }
                FileEnd::Eof => {}
            }
            // At the end. Release a rotated file once something newer exists (or it is deleted).
            // Files held back by the open-file cap are newer rotations waiting for this one.
            let waiting = self.known.iter().any(|k| k.deferred && !k.done);
            let newer_exists = more || (!live && live_exists) || (!live && waiting);
            let deleted = f.stat().map(|s| s.3 == 0).unwrap_or(true);
            let release = if f.gz {
                f.gz_done()
            } else {
                !live && (newer_exists || deleted)
            } || (live && deleted && !live_exists);
            if !release {
                break;
            }
            // The last file of a container whose logs were removed (the live path is gone and
            // nothing newer waits): not a rotation; the source is finished once it is drained.
            let container_gone = deleted && !live_exists && !more && !waiting;
            let Some(mut f) = self.files.pop_front() else {
                break;
            };
            let (input, key) = (self.input, self.key.clone());
            f.lines
                .finish(&mut |ev| queue(ev, &f.id, input, &key, out, &stats));
            self.remember(f.id.fingerprint, f.id, f.offset, true);
            tracing::debug!(path = %f.path.display(), print = format_args!("{:016x}", f.id.fingerprint), offset = f.offset, "log file released");
            stats.open_files.fetch_sub(1, Ordering::Relaxed);
            stats
                .input(self.input)
                .rotations
                .fetch_add(u64::from(!live && !container_gone), Ordering::Relaxed);
            released = true;
            if live || container_gone {
                self.finished = true;
            }
            if self.retry_scan {
                // Rotated files left on disk by the open-file cap come before the live file.
                self.scan_rotated(store, st, &stats);
            }
        }
        (total, released)
    }

    /// Where the live file is in `files`, if it is open.
    fn live_position(&self) -> Option<usize> {
        let m = std::fs::metadata(&self.live).ok()?;
        self.files
            .iter()
            .position(|f| !f.gz && f.dev_ino == (m.dev(), m.ino()))
    }

    /// Detect copytruncate/truncation on the live file, wherever it is in the read order.
    /// Returns true when the file was reset to offset 0.
    fn check_truncation(&mut self, stats: &Stats) -> bool {
        let Some(i) = self.live_position() else {
            return false;
        };
        let f = &mut self.files[i];
        let Ok((_, _, size, _)) = f.stat() else {
            return false;
        };
        // The head is checked even with nothing new: a writer that copytruncates and fills
        // the file again between two polls can leave it empty, or as long as before, each
        // time the tailer looks; the old content's copy waits until this is seen.
        let changed = size < f.offset
            || match f.current_print() {
                Ok(Some(p)) => p.hash != f.id.fingerprint,
                Ok(None) => true,
                Err(_) => false,
            };
        if !changed {
            return false;
        }
        self.start_over(i, stats);
        true
    }

    /// File `i` (the live file) was truncated in place: read it again from its start under
    /// the fingerprint of its new content, and remember how far its old content was read (its
    /// copy, if one is made, resumes there).
    fn start_over(&mut self, i: usize, stats: &Stats) {
        let Some(f) = self.files.get_mut(i) else {
            return;
        };
        let size = f.stat().map_or(0, |s| s.2);
        stats
            .input(self.input)
            .file_truncations
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(path = %f.path.display(), offset = f.offset, size, print = format_args!("{:016x}", f.id.fingerprint), "log file truncated in place; reading from its start");
        let (old, off) = (f.id, f.offset);
        let held = f.lines.take();
        f.offset = 0;
        match f.current_print() {
            Ok(Some(p)) => f.id.fingerprint = p.hash,
            _ => {
                // Not enough content to identify yet: drop the handle, reopen when it grows.
                self.files.remove(i);
                stats.open_files.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.remember(old.fingerprint, old, off, false);
        if let Some(k) = self.known.iter_mut().find(|k| k.hash == old.fingerprint) {
            k.copy_expected = !k.done;
        }
        if held.busy() {
            self.awaiting_copy = Some((old.fingerprint, old, held));
        }
    }

    /// Lines a truncated file held whose copy was not found (a plain truncation, or a copy held
    /// back by the open-files cap): emitted as they are rather than lost.
    fn flush_awaiting_copy(&mut self, out: &mut Outbox, stats: &Stats) {
        if let Some((_, id, mut lines)) = self.awaiting_copy.take() {
            let (input, key) = (self.input, self.key.clone());
            lines.finish(&mut |ev| queue(ev, &id, input, &key, out, stats));
        }
    }
}

/// Where [`read_file`] stopped.
enum FileEnd {
    /// The budget ran out or a read failed: more may be there.
    More,
    /// At the end of what the file holds now.
    Eof,
    /// Truncated in place and rewritten since it was checked: start it over.
    Replaced,
}

fn queue(
    ev: Event<'_>,
    file: &FileId,
    input: Input,
    key: &Arc<str>,
    out: &mut Outbox,
    stats: &Stats,
) {
    let p = stats.input(input);
    let r = match ev {
        Event::Record(r) => r,
        Event::Skipped(n) => {
            p.skipped_bytes.fetch_add(n, Ordering::Relaxed);
            return;
        }
        Event::Bad { .. } => {
            p.parse_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    p.lines.fetch_add(1, Ordering::Relaxed);
    if r.flags.partial_merged() {
        p.partial_merges.fetch_add(1, Ordering::Relaxed);
    }
    if r.flags.truncated() {
        p.truncations.fetch_add(1, Ordering::Relaxed);
    }
    if out.full(r.message.len()) {
        // Mid-block if need be: a batch never holds more than its budget.
        out.flush();
    }
    out.batch.push(
        QueuedRecord {
            key: key.clone(),
            time_ns: r.time_ns,
            style: r.style,
            stream: r.stream,
            flags: r.flags,
            start: 0,
            len: 0,
            position: Position::File {
                file: *file,
                offset: r.offset,
            },
        },
        r.message,
    );
}

/// Milliseconds (on a process-wide monotonic clock) of the last unparsable-line warning.
static LAST_BAD_LINE_WARNING_MS: AtomicU64 = AtomicU64::new(0);
/// Least time between two unparsable-line warnings across all files.
const BAD_LINE_WARNING_GAP_MS: u64 = 200;

/// True when an unparsable-line warning may be logged now (and takes the slot).
fn warn_slot() -> bool {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let now =
        EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + BAD_LINE_WARNING_GAP_MS;
    let last = LAST_BAD_LINE_WARNING_MS.load(Ordering::Relaxed);
    now >= last + BAD_LINE_WARNING_GAP_MS
        && LAST_BAD_LINE_WARNING_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Read `f` until EOF or the budget is spent. Returns (bytes, at_eof).
fn read_file(
    f: &mut TailFile,
    input: Input,
    key: &Arc<str>,
    out: &mut Outbox,
    sc: &mut Scratch,
    stats: &Stats,
    budget: usize,
) -> (usize, FileEnd) {
    let mut total = 0;
    loop {
        if total >= budget {
            return (total, FileEnd::More);
        }
        let id = f.id;
        let path = f.path.clone();
        let mut bad = Vec::new();
        let r = {
            let Scratch { buf, unescape } = sc;
            f.read_block(buf, unescape, &mut |ev| match ev {
                Event::Bad { offset, error } => bad.push((offset, error)),
                ev => queue(ev, &id, input, key, out, stats),
            })
        };
        if !bad.is_empty() {
            stats
                .input(input)
                .parse_errors
                .fetch_add(bad.len() as u64, Ordering::Relaxed);
            f.unreported_bad += bad.len() as u64;
            // At most one warning a second per file, and a few a second over all files (a node
            // full of garbage logs must not flood the agent's own log); the count of lines
            // skipped since the file's last warning goes with the next one.
            let due = f
                .last_warn
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due && warn_slot() {
                if let Some((offset, error)) = bad.first() {
                    tracing::warn!(path = %path.display(), offset, error = %error, skipped = f.unreported_bad, "unparsable log line skipped");
                }
                f.unreported_bad = 0;
                f.last_warn = Some(Instant::now());
            }
        }
        match r {
            Ok(ReadOutcome::Data(n)) => {
                stats
                    .input(input)
                    .bytes
                    .fetch_add(n as u64, Ordering::Relaxed);
                total += n;
            }
            Ok(ReadOutcome::Eof) => return (total, FileEnd::Eof),
            Ok(ReadOutcome::Replaced) => return (total, FileEnd::Replaced),
            Err(e) => {
                // A corrupt gzip never gets better: release it (what was read is kept). A plain
                // file is retried at the next poll, never released on an error.
                tracing::warn!(path = %path.display(), offset = f.offset, error = %e, gz = f.gz, "reading log file failed");
                let counters = stats.input(input);
                counters.read_errors.fetch_add(1, Ordering::Relaxed);
                if f.gz {
                    counters.corrupt_gz.fetch_add(1, Ordering::Relaxed);
                    f.mark_gz_done();
                }
                return (total, if f.gz { FileEnd::Eof } else { FileEnd::More });
            }
        }
    }
}

/// [`look`] with a failure other than the file being gone counted in
/// `runnel_input_read_errors_total` (say EMFILE: out of descriptors); the caller looks again
/// at its next poll or scan.
fn look_counted(
    path: &Path,
    n: usize,
    stats: &Stats,
    input: Input,
) -> std::io::Result<Option<Looked>> {
    let r = look(path, n);
    if let Err(e) = &r {
        if e.kind() != std::io::ErrorKind::NotFound {
            stats
                .input(input)
                .read_errors
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    r
}
