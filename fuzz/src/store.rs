//! Scratch stores for the segment targets: write real records through `Store`, find the segment
//! files they landed in, damage those bytes, and compare what a reopened store returns with what
//! was written.

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use runnel_index::{
    FileId, Limits, NewRecord, Position, Query, RecordFlags, Store, StoredRecord, Stream, TimeStyle,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The one source key the segment targets write to.
pub const KEY: &str = "fuzz:source";

/// A fresh directory, on tmpfs when there is one (fsync is then nearly free).
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let mut b = tempfile::Builder::new();
    b.prefix("runnel-fuzz-");
    match shm.is_dir().then(|| b.tempdir_in(shm)) {
        Some(Ok(d)) => d,
        _ => b
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a scratch dir: {e}")),
    }
}

/// Limits that keep everything in one active segment until `Store::seal`, with small blocks
/// (so a sealed segment has several and damage to one leaves the others readable).
pub fn limits(block_raw_bytes: usize) -> Limits {
    Limits {
        segment_max_bytes: 1 << 30,
        segment_max_age: Duration::from_secs(365 * 86_400),
        block_raw_bytes,
        zstd_level: 1,
        max_disk_bytes: 1 << 40,
        max_age: Duration::from_secs(100 * 365 * 86_400),
        // Few maps: fuzzed reads also cover unmapping and mapping again.
        max_open_maps: 2,
    }
}

/// A record as written (its sequence is its index in the written list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Time (ns).
    pub time_ns: i64,
    /// Time style.
    pub style: TimeStyle,
    /// Stream.
    pub stream: Stream,
    /// Flags bits.
    pub flags: u8,
    /// Message.
    pub message: Vec<u8>,
    /// Position.
    pub position: Position,
}

impl Written {
    /// Borrow as a record to append.
    pub fn as_new(&self) -> NewRecord<'_> {
        NewRecord {
            time_ns: self.time_ns,
            time_style: self.style,
            stream: self.stream,
            flags: RecordFlags(self.flags),
            message: &self.message,
            position: self.position,
        }
    }

    /// True when `r` is this record exactly.
    pub fn is(&self, r: &StoredRecord) -> bool {
        r.time_ns == self.time_ns
            && r.time_style == self.style
            && r.stream == self.stream
            && r.flags.0 == self.flags
            && r.message == self.message
            && r.position == self.position
    }
}

/// The file identities records are attributed to (a few, so positions repeat per file).
pub fn file_id(i: u8) -> FileId {
    FileId {
        dev: 7,
        ino: u64::from(i % 3),
        fingerprint: 0xfeed_0000 + u64::from(i % 3),
    }
}

/// `n` records from the input: times that wander (not monotonic), both streams, file positions
/// that grow per file, short messages.
pub fn records(u: &mut Unstructured<'_>, n: usize) -> Result<Vec<Written>> {
    let mut out = Vec::with_capacity(n);
    let mut t = 1_700_000_000_000_000_000i64;
    let mut offsets = [0u64; 3];
    for _ in 0..n {
        t += i64::from(u.arbitrary::<i16>()?) * 1_000_000;
        let f = u.arbitrary::<u8>()?;
        let position = match f % 4 {
            0 => Position::None,
            3 => Position::Stream {
                stream_id: 9,
                seq: out.len() as u64,
            },
            _ => {
                let file = file_id(f >> 2);
                let k = usize::from((f >> 2) % 3);
                offsets[k] += 1 + u64::from(u.arbitrary::<u8>()?);
                Position::File {
                    file,
                    offset: offsets[k],
                }
            }
        };
        let len = u.int_in_range(0..=80usize)?;
        let message = u.bytes(len)?.to_vec();
        out.push(Written {
            time_ns: t,
            style: TimeStyle {
                offset_secs: 0,
                frac_digits: 9,
                zulu: true,
            },
            stream: if f & 0x80 != 0 {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            flags: f & 3,
            message,
            position,
        });
    }
    Ok(out)
}

/// Append `recs` to [`KEY`] and sync; optionally seal. Panics on any error: the store is fine.
pub fn write(dir: &Path, limits: Limits, recs: &[Written], seal: bool) {
    let store = Store::open(dir, limits).unwrap_or_else(|e| panic!("open: {e}"));
    for (i, r) in recs.iter().enumerate() {
        let seq = store
            .append(KEY, &r.as_new())
            .unwrap_or_else(|e| panic!("append: {e}"));
        assert_eq!(seq, i as u64);
    }
    store.sync().unwrap_or_else(|e| panic!("sync: {e}"));
    if seal {
        store.seal(KEY).unwrap_or_else(|e| panic!("seal: {e}"));
    }
}

/// The segment files of the source whose name ends with `suffix` (`.active`, `.sealed`).
pub fn segment_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let sources = dir.join("sources");
    for s in std::fs::read_dir(&sources).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(s.path()).into_iter().flatten().flatten() {
            if f.file_name().to_string_lossy().ends_with(suffix) {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// Damage `bytes` as the input says: flip bits, cut the file, append or insert garbage.
/// Returns true when only bit flips and appends were applied (nothing was cut or shifted, so a
/// truncation at a frame boundary cannot hide a loss).
pub fn corrupt(u: &mut Unstructured<'_>, bytes: &mut Vec<u8>) -> Result<bool> {
    let mut no_cut = true;
    let ops = u.int_in_range(1..=4u8)?;
    for _ in 0..ops {
        let kind = u.int_in_range(0..=9u8)?;
        let at = usize::from(u.arbitrary::<u16>()?) % bytes.len().max(1);
        match kind {
            0..=5 => {
                let x = u.int_in_range(1..=255u8)?;
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= x;
                }
            }
            6 => {
                bytes.truncate(at);
                no_cut = false;
            }
            7 => {
                let n = u.int_in_range(1..=64usize)?;
                bytes.extend_from_slice(u.bytes(n.min(u.len()))?);
            }
            _ => {
                let n = u.int_in_range(1..=16usize)?;
                let g = u.bytes(n.min(u.len()))?.to_vec();
                let at = at.min(bytes.len());
                bytes.splice(at..at, g);
                no_cut = false;
            }
        }
    }
    Ok(no_cut)
}

/// Every record of [`KEY`] (an unknown source reads as none).
pub fn read_all(store: &Store) -> Vec<StoredRecord> {
    query(store, &Query::default())
}

/// A query of [`KEY`]; an unknown source reads as none, any other error fails the target.
pub fn query(store: &Store, q: &Query) -> Vec<StoredRecord> {
    match store.query(KEY, q) {
        Ok(r) => r.records,
        Err(runnel_index::Error::UnknownSource(_)) => Vec::new(),
        Err(e) => panic!("query {q:?} failed: {e}"),
    }
}

/// `full` filtered to `[since, until)`, as a window query must return it.
pub fn window(full: &[StoredRecord], since: Option<i64>, until: Option<i64>) -> Vec<StoredRecord> {
    full.iter()
        .filter(|r| since.is_none_or(|s| r.time_ns >= s) && until.is_none_or(|e| r.time_ns < e))
        .cloned()
        .collect()
}
