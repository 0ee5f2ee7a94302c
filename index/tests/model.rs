//! Model-based test of the segment store: random sequences of append / sync / seal / crash /
//! reopen / query / read_from / retention run against the real store and a plain in-memory
//! model, which must agree after every step.
//!
//! What the model asserts:
//! - after a reopen every synced record is present exactly once, with contiguous seqs; unsynced
//!   records may be lost, but only as a suffix of each source's records;
//! - a crash is either a drop without sync, a drop after sync, or a drop followed by a torn write:
//!   a file of the store that grew since the last sync is cut at a random offset inside the part
//!   written after that sync (what a power cut can do to data that was never fsynced);
//! - `query` returns the kubelet's answer (until exclusive, then the last N, then since inclusive,
//!   then stop once `limit_bytes` of messages are reached);
//! - `read_from` returns a contiguous run from the cursor, reporting retention gaps;
//! - retention deletes only from the front of a source and counts what it deleted;
//! - the tailer's resume offset (`durable_position`) is the last stored record's offset, and
//!   stays the last durable offset when retention deleted the records;
//! - `retire_source` syncs the store and marks the source; a retired source stays listed
//!   (`retired: true`) and reads exactly as the model says while it holds records, and is gone
//!   (not listed, directory removed, reads `UnknownSource`, its file positions forgotten,
//!   counted in `sources_removed`) from the moment it holds none — at once, after retention, or
//!   at open; an append clears the mark, and an append to a removed key starts a new source at
//!   sequence 0.
//!
//! Cases default to 256 (override with `PROPTEST_CASES`); each case is small and the store uses
//! tiny segments (4 KiB) and blocks (1 KiB) so sealing and block boundaries are exercised; half
//! the cases seal by age at every `seal_due`, so small segments are merged.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use runnel_index::{
    Error, FileId, Limits, NewRecord, Position, Query, RecordFlags, SourceIdentity, SourceInfo,
    Store, StoredRecord, Stream, TimeStyle,
};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const KEYS: [&str; 3] = [
    "cri:ns_pod-a_uid-a/app/0",
    "docker:0123456789abcdef",
    "cri:ns_pod-b_uid-b/side/2",
];
const START_NS: i64 = 1_700_000_000_000_000_000;

thread_local! {
    /// Torn writes actually applied on this test's thread (a file was cut), so the test can fail
    /// if none ever was.
    static TORN_CUTS: Cell<u64> = const { Cell::new(0) };
    /// What the random runs exercised, so the test fails if a generator change stops covering
    /// the interesting paths: (unsynced records lost in crashes, records deleted by retention,
    /// queries with a non-empty answer, read_from calls that reported a gap, sealed segments
    /// merged into a larger one by an age-due seal, sources removed when retired empty,
    /// retired sources removed after retention deleted their last record, retired sources
    /// that an append brought back, appends that recreated a removed source).
    static COVERAGE: Cell<[u64; 9]> = const { Cell::new([0; 9]) };
}

fn covered(what: usize, n: u64) {
    COVERAGE.with(|c| {
        let mut v = c.get();
        v[what] += n;
        c.set(v);
    });
}

#[derive(Debug, Clone)]
enum Crash {
    /// Drop the store without syncing.
    DropUnsynced,
    /// Sync, then drop.
    DropAfterSync,
    /// Drop without sync, then cut a file that grew since the last sync inside its unsynced part.
    TornWrite {
        file_sel: u32,
        cut_sel: u32,
        garbage: Option<(bool, u16)>,
    },
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        src: usize,
        step_ms: u16,
        back_ms: u16,
        stderr: bool,
        msg: Vec<u8>,
    },
    /// Many long records into one source at once (reaches the file before any sync).
    Burst {
        src: usize,
        count: u8,
        len: u16,
    },
    Sync,
    Seal {
        src: usize,
    },
    SealDue,
    Crash(Crash),
    Reopen,
    Query {
        src: usize,
        since: Option<(u16, i8)>,
        until: Option<(u16, i8)>,
        tail: Option<u8>,
        limit: Option<u16>,
    },
    ReadFrom {
        src: usize,
        from_sel: u16,
        max_records: u8,
        max_bytes: u16,
    },
    Retention {
        budget: u32,
    },
    /// The agent saw the container's log files gone and fully read; with `then_retention`,
    /// nothing is appended to it before retention runs with that budget (the common case:
    /// a gone container stays gone).
    Retire {
        src: usize,
        then_retention: Option<u32>,
    },
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(Vec::new()),
        10 => "[ -~]{1,60}".prop_map(|s| s.into_bytes()),
        4 => prop::collection::vec(any::<u8>(), 1..80),
        2 => (300usize..2500, any::<u8>()).prop_map(|(n, b)| {
            (0..n).map(|i| b.wrapping_add((i % 37) as u8)).collect()
        }),
    ]
}

fn time_sel() -> impl Strategy<Value = Option<(u16, i8)>> {
    prop::option::of((any::<u16>(), -1i8..=1))
}

/// A disk budget: mostly one that keeps part of the data, sometimes one that keeps nothing.
fn retention_budget() -> impl Strategy<Value = u32> {
    prop_oneof![3 => 1u32..40_000, 1 => 1u32..200]
}

fn op() -> impl Strategy<Value = Op> {
    let src = 0..KEYS.len();
    prop_oneof![
        30 => (src.clone(), 0u16..2000, 0u16..300, any::<bool>(), message()).prop_map(
            |(src, step_ms, back_ms, stderr, msg)| Op::Append { src, step_ms, back_ms, stderr, msg }
        ),
        2 => (src.clone(), 10u8..60, 1000u16..3000)
            .prop_map(|(src, count, len)| Op::Burst { src, count, len }),
        6 => Just(Op::Sync),
        2 => src.clone().prop_map(|src| Op::Seal { src }),
        3 => Just(Op::SealDue),
        1 => Just(Op::Crash(Crash::DropUnsynced)),
        1 => Just(Op::Crash(Crash::DropAfterSync)),
        3 => (any::<u32>(), any::<u32>(), prop::option::of((any::<bool>(), 1u16..300)))
            .prop_map(|(file_sel, cut_sel, garbage)| {
                Op::Crash(Crash::TornWrite { file_sel, cut_sel, garbage })
            }),
        1 => Just(Op::Reopen),
        6 => (src.clone(), time_sel(), time_sel(), prop::option::of(0u8..20),
              prop::option::of(1u16..600))
            .prop_map(|(src, since, until, tail, limit)| Op::Query { src, since, until, tail, limit }),
        3 => (src, any::<u16>(), 1u8..20, 1u16..4000).prop_map(
            |(src, from_sel, max_records, max_bytes)| Op::ReadFrom { src, from_sel, max_records, max_bytes }
        ),
        1 => retention_budget().prop_map(|budget| Op::Retention { budget }),
        3 => (0..KEYS.len(), prop::option::weighted(0.3, retention_budget()))
            .prop_map(|(src, then_retention)| Op::Retire { src, then_retention }),
    ]
}

/// A record as the model keeps it.
#[derive(Debug, Clone, PartialEq)]
struct M {
    seq: u64,
    time_ns: i64,
    stream: Stream,
    message: Vec<u8>,
    offset: u64,
}

#[derive(Debug, Default)]
struct Source {
    /// Records still stored, `recs[i].seq == first_seq + i`.
    recs: Vec<M>,
    first_seq: u64,
    /// Records with `seq < synced` are durable.
    synced: u64,
    /// Records with `seq < promised` were reported durable by the store (handed out by
    /// `read_from`, or covered by `durable_position`): a crash must not lose them either.
    promised: u64,
    /// Source offset after the last record appended (where the "file" ends).
    last_offset: u64,
    /// Clock of the generator (advances; records may go back a little from it).
    clock_ns: i64,
    /// Retired (and still holding records).
    retired: bool,
    /// Removed: the store no longer holds the source; an append creates it anew.
    gone: bool,
    /// How many times the source was created (the initial one is 0).
    incarnation: u64,
}

impl Source {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.recs.len() as u64
    }
    fn next_offset(&self, len: usize) -> u64 {
        self.last_offset + len as u64 + 1
    }
    /// Retention deleted the records before `first_seq`; returns how many went.
    fn drop_front_to(&mut self, first_seq: u64) -> u64 {
        let n = (first_seq - self.first_seq) as usize;
        let n = n.min(self.recs.len());
        self.recs.drain(..n);
        self.first_seq = first_seq;
        self.synced = self.synced.max(first_seq);
        n as u64
    }
    /// The file the current incarnation's records come from.
    fn file(&self, src: usize) -> FileId {
        file_id(src, self.incarnation)
    }
}

/// Each incarnation of a source reads its own file (a container that came back after its
/// source was removed writes new files).
fn file_id(src: usize, incarnation: u64) -> FileId {
    FileId {
        dev: 7,
        ino: 100 + src as u64 + 1000 * incarnation,
        fingerprint: 0xabc0 + src as u64 + 0x10000 * incarnation,
    }
}

/// A source's directory under the store (hex of the key).
fn source_dir(root: &Path, key: &str) -> PathBuf {
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    root.join("sources").join(hex)
}

fn limits_with_segments(segment_max_bytes: u64, segment_max_age: Duration) -> Limits {
    Limits {
        segment_max_bytes,
        segment_max_age,
        block_raw_bytes: 1 << 10,
        zstd_level: 1,
        max_disk_bytes: 1 << 40,
        max_age: Duration::from_secs(100 * 365 * 24 * 3600),
        // Few maps: reads keep evicting and re-mapping sealed segments.
        max_open_maps: 2,
    }
}

struct Harness {
    dir: tempfile::TempDir,
    store: Option<Store>,
    model: Vec<Source>,
    /// File sizes at the last sync (or open): a torn write may only cut beyond them.
    synced_sizes: HashMap<PathBuf, u64>,
    /// The store was opened with a small disk budget: records may go from the front any time.
    retention_mode: bool,
    /// Records the model saw retention delete since the store was opened.
    deleted_since_open: u64,
    /// Sources the model saw removed since the store was opened.
    removed_since_open: u64,
    /// Files of removed sources: the store must have forgotten their positions.
    forgotten_files: Vec<FileId>,
    /// Limits of every open but the small-budget retention one.
    limits: Limits,
}

/// The stores live on tmpfs when there is one: the crash simulation never relies on fsync
/// (a dropped store's written bytes stay in the file), and thousands of fsyncs on a shared disk
/// would make the test slow. `RUNNEL_MODEL_DIR` overrides the location.
fn model_tempdir() -> std::io::Result<tempfile::TempDir> {
    if let Some(dir) = std::env::var_os("RUNNEL_MODEL_DIR") {
        return tempfile::tempdir_in(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return Ok(d);
        }
    }
    tempfile::tempdir()
}

fn files_under(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(md) = e.metadata() else { continue };
        if md.is_dir() {
            files_under(&e.path(), out);
        } else if md.is_file() {
            out.push((e.path(), md.len()));
        }
    }
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond {
        Ok(())
    } else {
        Err(TestCaseError::fail(msg()))
    }
}

fn to_m(r: &StoredRecord) -> M {
    let offset = match r.position {
        Position::File { offset, .. } => offset,
        _ => u64::MAX,
    };
    M {
        seq: r.seq,
        time_ns: r.time_ns,
        stream: r.stream,
        message: r.message.clone(),
        offset,
    }
}

/// The kubelet's answer over `recs` (append order).
fn expected(recs: &[M], q: &Query) -> Vec<M> {
    let mut v: Vec<&M> = recs
        .iter()
        .filter(|r| q.until_ns.is_none_or(|u| r.time_ns < u))
        .collect();
    if let Some(n) = q.tail_lines {
        let cut = v.len().saturating_sub(n as usize);
        v.drain(..cut);
    }
    v.retain(|r| q.since_ns.is_none_or(|s| r.time_ns >= s));
    if let Some(limit) = q.limit_bytes {
        let mut sum = 0u64;
        let mut out = Vec::new();
        for r in v {
            if sum >= limit {
                break;
            }
            sum += r.message.len() as u64;
            out.push(r);
        }
        v = out;
    }
    v.into_iter().cloned().collect()
}

impl Harness {
    fn new(limits: Limits) -> Result<Harness, TestCaseError> {
        let dir = model_tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut h = Harness {
            dir,
            store: None,
            model: (0..KEYS.len()).map(|_| Source::default()).collect(),
            synced_sizes: HashMap::new(),
            retention_mode: false,
            deleted_since_open: 0,
            removed_since_open: 0,
            forgotten_files: Vec::new(),
            limits,
        };
        h.open(h.limits.clone())?;
        for (i, key) in KEYS.iter().enumerate() {
            let identity = SourceIdentity {
                container_id: Some(format!("c{i}")),
                log_path: Some(format!("/var/log/x/{i}.log")),
                ..SourceIdentity::default()
            };
            h.store()?
                .upsert_source(key, &identity)
                .map_err(|e| TestCaseError::fail(format!("upsert_source {key}: {e}")))?;
            h.model[i].clock_ns = START_NS;
        }
        Ok(h)
    }

    fn store(&self) -> Result<&Store, TestCaseError> {
        self.store
            .as_ref()
            .ok_or_else(|| TestCaseError::fail("store is closed"))
    }

    fn sealed_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        files_under(self.dir.path(), &mut files);
        files
            .into_iter()
            .map(|f| f.0)
            .filter(|p| p.to_string_lossy().ends_with(".sealed"))
            .collect()
    }

    fn snapshot_sizes(&mut self) {
        let mut files = Vec::new();
        files_under(self.dir.path(), &mut files);
        self.synced_sizes = files.into_iter().collect();
    }

    fn open(&mut self, limits: Limits) -> Result<(), TestCaseError> {
        self.retention_mode = limits.max_disk_bytes < (1 << 40);
        self.deleted_since_open = 0;
        self.removed_since_open = 0;
        let store = Store::open(self.dir.path(), limits)
            .map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
        self.store = Some(store);
        self.snapshot_sizes();
        Ok(())
    }

    /// Checks a store that was just (re)opened against the model and lets the model forget the
    /// unsynced records the store lost.
    fn check_recovered(&mut self) -> Result<(), TestCaseError> {
        let infos = self.store()?.sources();
        for (i, key) in KEYS.iter().enumerate() {
            if self.model[i].gone {
                continue;
            }
            let Some(info) = infos.iter().find(|s| s.key == *key) else {
                // Only a retired source that a crash left without records goes at open.
                let m = &self.model[i];
                ensure(m.retired && m.synced == m.first_seq, || {
                    format!(
                        "{key}: source lost after reopen (retired {}, durable records {}..{})",
                        m.retired, m.first_seq, m.synced
                    )
                })?;
                covered(0, m.recs.len() as u64);
                self.note_removed(i);
                continue;
            };
            let m = &self.model[i];
            ensure(info.retired == m.retired, || {
                format!(
                    "{key}: retired {} after reopen, model {}",
                    info.retired, m.retired
                )
            })?;
            ensure(
                info.next_seq >= m.synced && info.next_seq <= m.next_seq(),
                || {
                    format!(
                        "{key}: next_seq {} after reopen, synced {} appended {}",
                        info.next_seq,
                        m.synced,
                        m.next_seq()
                    )
                },
            )?;
            ensure(
                info.first_seq >= m.first_seq
                    && (self.retention_mode || info.first_seq == m.first_seq),
                || {
                    format!(
                        "{key}: first_seq {} after reopen, model {}",
                        info.first_seq, m.first_seq
                    )
                },
            )?;
            let keep = (info.next_seq.max(m.first_seq) - m.first_seq) as usize;
            covered(0, m.recs.len().saturating_sub(keep) as u64);
            let resume = self.store()?.durable_position(&m.file(i));
            let m = &mut self.model[i];
            if keep < m.recs.len() {
                // Lost records: the tailer re-reads from where the index says it is durable.
                m.recs.truncate(keep);
                m.last_offset = m.recs.last().map_or(resume.unwrap_or(0), |r| r.offset);
            }
            m.synced = m.next_seq();
            if info.first_seq > m.first_seq {
                let n = m.drop_front_to(info.first_seq.min(m.next_seq()));
                self.deleted_since_open += n;
            }
            // Every stored record exactly once, in order, equal to what was appended.
            let all = self.read_all(i)?;
            let m = &self.model[i];
            ensure(all == m.recs, || {
                format!(
                    "{key}: after reopen stored seqs {:?} != model seqs {:?}",
                    all.iter().map(|r| r.seq).collect::<Vec<_>>(),
                    m.recs.iter().map(|r| r.seq).collect::<Vec<_>>()
                )
            })?;
            // The tailer resumes after the last stored record.
            if let Some(last) = m.recs.last() {
                let pos = self.store()?.durable_position(&m.file(i));
                ensure(pos == Some(last.offset), || {
                    format!(
                        "{key}: durable_position {pos:?} after reopen, last stored offset {}",
                        last.offset
                    )
                })?;
            }
        }
        self.check_sources()?;
        Ok(())
    }

    fn read_all(&self, i: usize) -> Result<Vec<M>, TestCaseError> {
        let mut out = Vec::new();
        let mut seq = self.model[i].first_seq;
        loop {
            let b = self
                .store()?
                .read_from(KEYS[i], seq, 64, 1 << 20)
                .map_err(|e| TestCaseError::fail(format!("read_from {}: {e}", KEYS[i])))?;
            if b.records.is_empty() {
                break;
            }
            ensure(b.next_seq > seq, || {
                format!("read_from({seq}) made no progress")
            })?;
            out.extend(b.records.iter().map(to_m));
            seq = b.next_seq;
        }
        Ok(out)
    }

    /// Retention may have dropped records from the front since the last look; when it just ran
    /// (`retention_ran`), it may also have removed a retired source whose last record it
    /// deleted.
    fn follow_retention(&mut self, retention_ran: bool) -> Result<(), TestCaseError> {
        let infos = self.store()?.sources();
        for (i, key) in KEYS.iter().enumerate() {
            if self.model[i].gone {
                continue;
            }
            let Some(info) = infos.iter().find(|s| s.key == *key) else {
                let m = &self.model[i];
                ensure(retention_ran && m.retired, || {
                    format!(
                        "{key}: source missing (retired {}, retention ran {retention_ran})",
                        m.retired
                    )
                })?;
                // Every record it held was deleted by retention, then it was removed.
                let n = m.recs.len() as u64;
                covered(1, n);
                covered(6, 1);
                self.deleted_since_open += n;
                self.note_removed(i);
                continue;
            };
            let m = &mut self.model[i];
            ensure(info.first_seq >= m.first_seq, || {
                format!(
                    "{key}: first_seq went back {} -> {}",
                    m.first_seq, info.first_seq
                )
            })?;
            if info.first_seq > m.first_seq {
                ensure(self.retention_mode, || {
                    format!(
                        "{key}: records {}..{} vanished without a disk budget",
                        m.first_seq, info.first_seq
                    )
                })?;
                ensure(info.first_seq <= m.next_seq(), || {
                    format!("{key}: first_seq {} beyond next_seq", info.first_seq)
                })?;
                covered(1, info.first_seq - m.first_seq);
                let n = m.drop_front_to(info.first_seq);
                self.deleted_since_open += n;
            }
        }
        Ok(())
    }

    /// The store removed source `i`: the model forgets it (its file's position with it).
    fn note_removed(&mut self, i: usize) {
        let m = &mut self.model[i];
        m.gone = true;
        m.retired = false;
        m.recs.clear();
        self.forgotten_files.push(m.file(i));
        self.removed_since_open += 1;
    }

    /// A removed source is gone everywhere: listing, directory, reads, positions.
    fn check_gone(&self, i: usize, infos: &[SourceInfo]) -> Result<(), TestCaseError> {
        let key = KEYS[i];
        ensure(infos.iter().all(|s| s.key != key), || {
            format!("{key}: removed but still listed")
        })?;
        let dir = source_dir(self.dir.path(), key);
        ensure(!dir.exists(), || {
            format!("{key}: removed but {} is still there", dir.display())
        })?;
        let store = self.store()?;
        ensure(
            matches!(
                store.read_from(key, 0, 10, 1 << 20),
                Err(Error::UnknownSource(_))
            ) && matches!(
                store.query(key, &Query::default()),
                Err(Error::UnknownSource(_))
            ),
            || format!("{key}: removed but read_from or query do not say UnknownSource"),
        )
    }

    fn check_sources(&self) -> Result<(), TestCaseError> {
        let infos = self.store()?.sources();
        for (i, key) in KEYS.iter().enumerate() {
            if self.model[i].gone {
                self.check_gone(i, &infos)?;
                continue;
            }
            let info = infos
                .iter()
                .find(|s| s.key == *key)
                .ok_or_else(|| TestCaseError::fail(format!("{key}: source missing")))?;
            let m = &self.model[i];
            ensure(info.retired == m.retired, || {
                format!("{key}: retired {}, model {}", info.retired, m.retired)
            })?;
            // A retired source is removed the moment it holds no records.
            ensure(!m.retired || !m.recs.is_empty(), || {
                format!("{key}: retired without records but still listed")
            })?;
            ensure(
                info.first_seq == m.first_seq
                    && info.next_seq == m.next_seq()
                    && info.records == m.recs.len() as u64,
                || {
                    format!(
                        "{key}: sources() first {} next {} records {}, model first {} next {} records {}",
                        info.first_seq,
                        info.next_seq,
                        info.records,
                        m.first_seq,
                        m.next_seq(),
                        m.recs.len()
                    )
                },
            )?;
            let min = m.recs.iter().map(|r| r.time_ns).min();
            let max = m.recs.iter().map(|r| r.time_ns).max();
            ensure(info.min_time_ns == min && info.max_time_ns == max, || {
                format!(
                    "{key}: sources() time range {:?}..{:?}, model {min:?}..{max:?}",
                    info.min_time_ns, info.max_time_ns
                )
            })?;
        }
        for f in &self.forgotten_files {
            let pos = self.store()?.durable_position(f);
            ensure(pos.is_none(), || {
                format!("{f:?}: position {pos:?} of a removed source still known")
            })?;
        }
        let removing = self.dir.path().join("removing");
        ensure(
            std::fs::read_dir(&removing).map_or(true, |mut d| d.next().is_none()),
            || format!("{} not emptied", removing.display()),
        )?;
        let stats = self.store()?.stats();
        let counted: u64 = stats.retention.iter().map(|r| r.2).sum();
        let deleted = self.deleted_since_open;
        ensure(counted == deleted, || {
            format!(
                "retention counted {counted} deleted records since open, model saw {deleted} go ({:?})",
                stats.retention
            )
        })?;
        let retired = self.model.iter().filter(|m| m.retired).count() as u64;
        ensure(
            stats.sources_removed == self.removed_since_open && stats.retired_sources == retired,
            || {
                format!(
                    "stats: {} sources removed since open, {} retired; model {} and {retired}",
                    stats.sources_removed, stats.retired_sources, self.removed_since_open
                )
            },
        )
    }

    fn crash(&mut self, kind: &Crash) -> Result<(), TestCaseError> {
        if let Crash::DropAfterSync = kind {
            self.sync()?;
        }
        self.store = None;
        if let Crash::TornWrite {
            file_sel,
            cut_sel,
            garbage,
        } = kind
        {
            self.tear(*file_sel, *cut_sel, *garbage)?;
        }
        self.open(self.limits.clone())?;
        self.check_recovered()
    }

    /// A torn write on one active segment: cut it inside the part written since the last sync
    /// (if it grew), then maybe leave a half-written tail: random bytes, or a copy of the file's
    /// own first frames (valid CRCs, stale sequence numbers).
    fn tear(
        &mut self,
        file_sel: u32,
        cut_sel: u32,
        garbage: Option<(bool, u16)>,
    ) -> Result<(), TestCaseError> {
        let fail =
            |p: &Path, e: std::io::Error| TestCaseError::fail(format!("{}: {e}", p.display()));
        let mut files = Vec::new();
        files_under(self.dir.path(), &mut files);
        files.retain(|(p, _)| is_active_segment(p));
        files.sort();
        if files.is_empty() {
            return Ok(());
        }
        let (path, len) = files[file_sel as usize % files.len()].clone();
        let at_sync = self.synced_sizes.get(&path).copied().unwrap_or(0);
        let mut torn = false;
        if len > at_sync {
            let end = at_sync + (cut_sel as u64 % (len - at_sync + 1));
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| fail(&path, e))?;
            f.set_len(end).map_err(|e| fail(&path, e))?;
            torn = end < len;
        }
        if let Some((copy, n)) = garbage {
            let bytes = std::fs::read(&path).map_err(|e| fail(&path, e))?;
            let n = n as usize;
            let tail: Vec<u8> = if copy && bytes.len() > 8 {
                bytes[8..].iter().copied().cycle().take(n).collect()
            } else {
                (0..n)
                    .map(|i| (cut_sel as usize).wrapping_mul(31).wrapping_add(i * 131) as u8)
                    .collect()
            };
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| fail(&path, e))?;
            std::io::Write::write_all(&mut f, &tail).map_err(|e| fail(&path, e))?;
            torn |= n > 0;
        }
        if torn {
            TORN_CUTS.with(|c| c.set(c.get() + 1));
        }
        Ok(())
    }

    /// The tailer resumes at `durable_position`: every record up to it must survive a crash, and
    /// it never points past the last record stored.
    fn note_durable_positions(&mut self) -> Result<(), TestCaseError> {
        for (i, key) in KEYS.iter().enumerate() {
            if self.model[i].gone {
                continue;
            }
            let Some(pos) = self.store()?.durable_position(&self.model[i].file(i)) else {
                continue;
            };
            let m = &mut self.model[i];
            let last = m.last_offset;
            ensure(pos <= last, || {
                format!("{key}: durable_position {pos} beyond the last record appended ({last})")
            })?;
            if let Some(r) = m.recs.iter().find(|r| r.offset == pos) {
                m.promised = m.promised.max(r.seq + 1);
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), TestCaseError> {
        self.store()?
            .sync()
            .map_err(|e| TestCaseError::fail(format!("sync: {e}")))?;
        self.note_synced()
    }

    /// The store synced: every record appended so far is durable.
    fn note_synced(&mut self) -> Result<(), TestCaseError> {
        for s in &mut self.model {
            s.synced = s.next_seq();
        }
        self.snapshot_sizes();
        for (i, key) in KEYS.iter().enumerate() {
            if let Some(last) = self.model[i].recs.last() {
                let pos = self.store()?.durable_position(&self.model[i].file(i));
                ensure(pos == Some(last.offset), || {
                    format!(
                        "{key}: durable_position {pos:?} after sync, expected {}",
                        last.offset
                    )
                })?;
            }
        }
        self.check_reader()
    }

    /// A reader opened now (sources listed and loaded on first use, active segments read
    /// through their index files) sees exactly the records synced, and their file positions.
    fn check_reader(&self) -> Result<(), TestCaseError> {
        let r = Store::open_read_only(self.dir.path())
            .map_err(|e| TestCaseError::fail(format!("open_read_only: {e}")))?;
        for (i, key) in KEYS.iter().enumerate() {
            let m = &self.model[i];
            if m.gone || m.recs.is_empty() {
                continue;
            }
            let b = r
                .read_from(key, m.first_seq, usize::MAX, usize::MAX)
                .map_err(|e| TestCaseError::fail(format!("reader read_from {key}: {e}")))?;
            let got: Vec<M> = b.records.iter().map(to_m).collect();
            ensure(got == m.recs, || {
                format!(
                    "{key}: a reader sees seqs {:?}, the model {}..{}",
                    got.iter().map(|r| r.seq).collect::<Vec<_>>(),
                    m.first_seq,
                    m.next_seq()
                )
            })?;
            let q = Query {
                tail_lines: Some(3),
                ..Query::default()
            };
            let tail = r
                .query(key, &q)
                .map_err(|e| TestCaseError::fail(format!("reader tail {key}: {e}")))?;
            let got: Vec<M> = tail.records.iter().map(to_m).collect();
            ensure(got == expected(&m.recs, &q), || {
                format!("{key}: a reader's tail 3 disagrees with the model")
            })?;
        }
        for (i, key) in KEYS.iter().enumerate() {
            if let Some(last) = self.model[i].recs.last() {
                let pos = r.durable_position(&self.model[i].file(i));
                ensure(pos == Some(last.offset), || {
                    format!(
                        "{key}: a reader's durable_position {pos:?}, expected {}",
                        last.offset
                    )
                })?;
            }
        }
        Ok(())
    }

    fn pick_time(&self, src: usize, sel: Option<(u16, i8)>) -> Option<i64> {
        let (idx, delta) = sel?;
        let recs = &self.model[src].recs;
        if recs.is_empty() || idx % 8 == 0 {
            return Some(START_NS + idx as i64 * 1_000_000 + delta as i64);
        }
        Some(recs[idx as usize % recs.len()].time_ns + delta as i64)
    }

    fn append(
        &mut self,
        src: usize,
        step_ms: u16,
        back_ms: u16,
        stderr: bool,
        msg: &[u8],
    ) -> Result<(), TestCaseError> {
        let m = &mut self.model[src];
        if m.gone {
            // The key comes back after its source was removed: a new source, from sequence 0,
            // reading a new file.
            covered(8, 1);
            *m = Source {
                clock_ns: m.clock_ns,
                incarnation: m.incarnation + 1,
                ..Source::default()
            };
        }
        if m.retired {
            // The container came back: the append clears the mark.
            covered(7, 1);
            m.retired = false;
        }
        m.clock_ns += step_ms as i64 * 1_000_000;
        let time_ns = m.clock_ns - back_ms as i64 * 1_000_000;
        let offset = m.next_offset(msg.len());
        let stream = if stderr {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        let rec = NewRecord {
            time_ns,
            time_style: TimeStyle {
                offset_secs: 0,
                frac_digits: 9,
                zulu: true,
            },
            stream,
            flags: RecordFlags::default(),
            message: msg,
            position: Position::File {
                file: m.file(src),
                offset,
            },
        };
        let seq = self
            .store()?
            .append(KEYS[src], &rec)
            .map_err(|e| TestCaseError::fail(format!("append: {e}")))?;
        let m = &mut self.model[src];
        ensure(seq == m.next_seq(), || {
            format!(
                "{}: append returned seq {seq}, expected {}",
                KEYS[src],
                m.next_seq()
            )
        })?;
        m.last_offset = offset;
        m.recs.push(M {
            seq,
            time_ns,
            stream,
            message: msg.to_vec(),
            offset,
        });
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Append {
                src,
                step_ms,
                back_ms,
                stderr,
                msg,
            } => self.append(*src, *step_ms, *back_ms, *stderr, msg)?,
            Op::Burst { src, count, len } => {
                for i in 0..*count {
                    let msg: Vec<u8> = (0..*len)
                        .map(|j| b'a' + ((i as u16 + j) % 26) as u8)
                        .collect();
                    self.append(*src, 10, (i % 3) as u16, false, &msg)?;
                }
            }
            Op::Sync => self.sync()?,
            Op::Seal { src } => {
                let res = self.store()?.seal(KEYS[*src]);
                if self.model[*src].gone {
                    expect_unknown(res, "seal")?;
                } else {
                    res.map_err(|e| TestCaseError::fail(format!("seal: {e}")))?;
                }
                self.follow_retention(false)?;
            }
            Op::SealDue => {
                let sealed_before = self.sealed_files();
                self.store()?
                    .seal_due()
                    .map_err(|e| TestCaseError::fail(format!("seal_due: {e}")))?;
                let after = self.sealed_files();
                // A sealed file that vanished was merged into a larger one.
                covered(
                    4,
                    sealed_before.iter().filter(|p| !after.contains(p)).count() as u64,
                );
                self.follow_retention(false)?;
            }
            Op::Crash(kind) => self.crash(kind)?,
            Op::Reopen => {
                self.sync()?;
                self.store = None;
                self.open(self.limits.clone())?;
                self.check_recovered()?;
            }
            Op::Query {
                src,
                since,
                until,
                tail,
                limit,
            } => {
                self.follow_retention(false)?;
                let q = Query {
                    since_ns: self.pick_time(*src, *since),
                    until_ns: self.pick_time(*src, *until),
                    tail_lines: tail.map(u64::from),
                    limit_bytes: limit.map(u64::from),
                };
                let res = self.store()?.query(KEYS[*src], &q);
                if self.model[*src].gone {
                    return expect_unknown(res, "query");
                }
                let res = res.map_err(|e| TestCaseError::fail(format!("query {q:?}: {e}")))?;
                let got: Vec<M> = res.records.iter().map(to_m).collect();
                let m = &self.model[*src];
                let all = expected(&m.recs, &q);
                covered(2, u64::from(!got.is_empty()));
                // Appended records are readable at once, synced or not.
                ensure(got == all, || {
                    format!(
                        "{}: query {q:?} returned seqs {:?}, model {:?} (synced below {})",
                        KEYS[*src],
                        got.iter().map(|r| r.seq).collect::<Vec<_>>(),
                        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
                        m.synced
                    )
                })?;
            }
            Op::ReadFrom {
                src,
                from_sel,
                max_records,
                max_bytes,
            } => {
                self.follow_retention(false)?;
                let m = &self.model[*src];
                let from = *from_sel as u64 % (m.next_seq() + 1);
                let res = self.store()?.read_from(
                    KEYS[*src],
                    from,
                    *max_records as usize,
                    *max_bytes as usize,
                );
                if self.model[*src].gone {
                    return expect_unknown(res, "read_from");
                }
                let b = res.map_err(|e| TestCaseError::fail(format!("read_from: {e}")))?;
                let m = &self.model[*src];
                let start = from.max(m.first_seq);
                let got: Vec<M> = b.records.iter().map(to_m).collect();
                covered(3, u64::from(b.gap > 0));
                let promised = b.next_seq;
                let i0 = (start - m.first_seq) as usize;
                let want = &m.recs[i0..(i0 + got.len()).min(m.recs.len())];
                ensure(
                    got == want
                        && got.len() <= *max_records as usize
                        && b.gap == start - from
                        && b.next_seq == start + got.len() as u64,
                    || {
                        format!(
                            "{}: read_from({from}, {max_records}, {max_bytes}) gave seqs {:?} gap {} next {}; \
                             model first {} next {} synced {}",
                            KEYS[*src],
                            got.iter().map(|r| r.seq).collect::<Vec<_>>(),
                            b.gap,
                            b.next_seq,
                            m.first_seq,
                            m.next_seq(),
                            m.synced
                        )
                    },
                )?;
                let m = &mut self.model[*src];
                m.promised = m.promised.max(promised);
                let m = &self.model[*src];
                // Progress: a durable record that fits is never withheld.
                if start < m.synced {
                    let first = &m.recs[i0];
                    if first.message.len() + 256 <= *max_bytes as usize {
                        ensure(!got.is_empty(), || {
                            format!("{}: read_from({from}) returned nothing though seq {start} is durable", KEYS[*src])
                        })?;
                    }
                }
            }
            Op::Retention { budget } => {
                self.sync()?;
                self.store = None;
                let limits = Limits {
                    max_disk_bytes: *budget as u64,
                    ..self.limits.clone()
                };
                self.open(limits)?;
                self.check_recovered()?;
                self.store()?
                    .enforce_retention()
                    .map_err(|e| TestCaseError::fail(format!("enforce_retention: {e}")))?;
                self.follow_retention(true)?;
                // Deleting records does not make the tailer read their lines again.
                for (i, key) in KEYS.iter().enumerate() {
                    let m = &self.model[i];
                    if m.last_offset > 0 && !m.gone {
                        let pos = self.store()?.durable_position(&m.file(i));
                        ensure(pos == Some(m.last_offset), || {
                            format!(
                                "{key}: durable_position {pos:?} after retention, last durable offset {} ({} records left)",
                                m.last_offset,
                                m.recs.len()
                            )
                        })?;
                    }
                }
                let stats = self.store()?.stats();
                ensure(
                    stats.disk_bytes <= *budget as u64 || stats.sealed_segments == 0,
                    || {
                        format!(
                            "retention left {} bytes on disk over a {budget} budget with {} sealed segments",
                            stats.disk_bytes, stats.sealed_segments
                        )
                    },
                )?;
            }
            Op::Retire {
                src,
                then_retention,
            } => {
                let res = self.store()?.retire_source(KEYS[*src]);
                if self.model[*src].gone {
                    expect_unknown(res, "retire_source")?;
                } else {
                    res.map_err(|e| TestCaseError::fail(format!("retire_source: {e}")))?;
                    // It synced the store first.
                    self.note_synced()?;
                    self.model[*src].retired = true;
                    if self.model[*src].recs.is_empty() {
                        covered(5, 1);
                        self.note_removed(*src);
                    }
                }
                if let Some(budget) = then_retention {
                    self.check_sources()?;
                    self.apply(&Op::Retention { budget: *budget })?;
                }
            }
        }
        if !matches!(
            op,
            Op::Append { .. } | Op::Query { .. } | Op::ReadFrom { .. }
        ) {
            self.check_sources()?;
            self.note_durable_positions()?;
        }
        Ok(())
    }
}

/// `res` must be [`Error::UnknownSource`] (the source was removed).
fn expect_unknown<T>(res: Result<T, Error>, what: &str) -> Result<(), TestCaseError> {
    match res {
        Err(Error::UnknownSource(_)) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!(
            "{what} on a removed source: {e}, expected UnknownSource"
        ))),
        Ok(_) => Err(TestCaseError::fail(format!(
            "{what} on a removed source succeeded, expected UnknownSource"
        ))),
    }
}

/// Which files a torn write may cut: the active segments (sealed segments and manifests are
/// written whole and renamed into place, so a crash cannot tear them).
fn is_active_segment(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".active"))
}

/// Runs `ops` on a fresh store with segments sealed at `segment_max_bytes`: 4 KiB exercises
/// sealing; 256 KiB lets unsynced appends reach the active file (the store buffers 64 KiB), so
/// torn writes cut real frames.
fn run_ops(segment_max_bytes: u64, age_seals: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let age = if age_seals {
        Duration::ZERO
    } else {
        Duration::from_secs(3600)
    };
    let mut h = Harness::new(limits_with_segments(segment_max_bytes, age))?;
    for (i, op) in ops.iter().enumerate() {
        h.apply(op)
            .map_err(|e| TestCaseError::fail(format!("step {i} {op:?}: {e}")))?;
    }
    // Finally: a clean crash after sync keeps everything.
    h.crash(&Crash::DropAfterSync)?;
    Ok(())
}

#[test]
fn store_agrees_with_model_under_random_ops_and_crashes() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 2000,
        ..Config::default()
    });
    let case = (
        prop_oneof![Just(4u64 << 10), Just(256 << 10)],
        any::<bool>(),
        prop::collection::vec(op(), 1..80),
    );
    let result = runner.run(&case, |(seg, age_seals, ops)| run_ops(seg, age_seals, &ops));
    if let Err(e) = result {
        panic!("{e}");
    }
    let torn = TORN_CUTS.with(Cell::get);
    let [lost, deleted, answered, gaps, merged, retired_empty, drained, back, recreated] =
        COVERAGE.with(Cell::get);
    eprintln!(
        "model coverage over {cases} cases: {torn} torn writes, {lost} unsynced records lost, \
         {deleted} records deleted by retention, {answered} non-empty queries, {gaps} read_from gaps, \
         {merged} segments merged, {retired_empty} sources removed when retired empty, \
         {drained} retired sources removed after retention, {back} retired sources appended to, \
         {recreated} appends that recreated a removed source"
    );
    if cases >= 64 {
        assert!(
            torn > 0,
            "no torn write ever found an active segment file to cut: is_active_segment() is stale"
        );
        assert!(
            lost > 0 && deleted > 0 && answered > 0 && gaps > 0 && merged > 0,
            "the random runs no longer reach crash loss, retention, queries, gaps and merges"
        );
        assert!(
            retired_empty > 0 && drained > 0 && back > 0 && recreated > 0,
            "the random runs no longer reach every way a retired source goes or comes back"
        );
    }
}

#[test]
fn torn_tail_after_sync_loses_only_the_unsynced_suffix() {
    // 20 records synced, then 20 bigger ones (over 64 KiB) that reach the file but not the disk.
    let mut ops = Vec::new();
    for i in 0..40u16 {
        let len = if i < 20 {
            i as usize * 7
        } else {
            4000 + i as usize
        };
        ops.push(Op::Append {
            src: 0,
            step_ms: 100,
            back_ms: i % 3 * 40,
            stderr: i % 5 == 0,
            msg: format!("line {i} {}", "x".repeat(len)).into_bytes(),
        });
        if i == 19 {
            ops.push(Op::Sync);
        }
    }
    let garbage = [None, Some((false, 50)), Some((true, 200)), Some((true, 7))];
    for (n, cut) in [0u32, 1, 17, 100, 333, 1000, 65_536, u32::MAX]
        .into_iter()
        .enumerate()
    {
        let mut case = ops.clone();
        case.push(Op::Crash(Crash::TornWrite {
            file_sel: 0,
            cut_sel: cut.wrapping_mul(7919),
            garbage: garbage[n % garbage.len()],
        }));
        let before = TORN_CUTS.with(Cell::get);
        run_ops(1 << 20, false, &case).unwrap_or_else(|e| panic!("cut selector {cut}: {e}"));
        assert!(
            TORN_CUTS.with(Cell::get) > before,
            "cut selector {cut}: the active segment did not grow after the sync, nothing was torn"
        );
    }
}
