//! Exactly-once for pushed streams: which chunks of a sidecar source are already stored.
//!
//! A forward client that lost an ack resends the same chunk (same chunk id), possibly on a new
//! connection and after our restart. Every record of a chunk carries, as its index position,
//! `Position::Stream { stream_id: xxh3(chunk id), seq: arrival_secs << 24 | records_so_far }`
//! — "records_so_far" counts this record, so it is where a resend resumes, exactly as a file
//! offset is for a tailer. The writer thread (the only appender) keeps, per source, the recent
//! chunks and how many of their records are stored; a record at or below that count is a
//! duplicate and is not appended. The window is rebuilt at start from the index itself (the
//! source's newest records), so it is as durable as the records and cannot disagree with them.
//!
//! The window is bounded by chunk count and by age per source: a chunk resent after it left
//! the window is stored again (documented; Fluent Bit and Fluentd resend within seconds to
//! minutes of the original send).

use runnel_index::{Position, Store};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Bits of `seq` that count records within a chunk.
const COUNT_BITS: u32 = 24;
/// Most records one chunk may hold (the count must fit its bits).
pub const MAX_RECORDS_PER_CHUNK: usize = (1 << COUNT_BITS) - 1;
/// Records read back per step while rebuilding a window at start.
const RECOVER_STEP: usize = 4096;
/// Most records read back to rebuild one source's window (bounds start-up work).
const RECOVER_MAX_RECORDS: u64 = 1 << 20;

/// Id of a chunk as stored: a 64-bit hash of the client's chunk id.
pub fn chunk_hash(chunk_id: &[u8]) -> u64 {
    // 0 is kept for "no chunk" so a hash never collides with it.
    xxhash_rust::xxh3::xxh3_64(chunk_id).max(1)
}

/// The index position of the `n`-th record (1-based) of a chunk that arrived at `arrival_secs`.
pub fn chunk_position(chunk: u64, arrival_secs: u64, n: usize) -> Position {
    Position::Stream {
        stream_id: chunk,
        seq: (arrival_secs << COUNT_BITS) | (n as u64 & MAX_RECORDS_PER_CHUNK as u64),
    }
}

/// (chunk, arrival secs, records so far) of a chunk position.
#[inline]
fn split(p: &Position) -> Option<(u64, u64, u32)> {
    match *p {
        Position::Stream { stream_id, seq } if stream_id != 0 => Some((
            stream_id,
            seq >> COUNT_BITS,
            (seq & MAX_RECORDS_PER_CHUNK as u64) as u32,
        )),
        _ => None,
    }
}

/// Seconds since the epoch now.
pub fn now_secs() -> u64 {
    (crate::timefmt::now_ns() / 1_000_000_000) as u64
}

/// Bounds of the per-source window.
#[derive(Debug, Clone, Copy)]
pub struct WindowLimits {
    /// Chunks remembered per source.
    pub max_chunks: usize,
    /// Chunks older than this are forgotten.
    pub max_age: Duration,
}

#[derive(Default)]
struct SourceChunks {
    stored: HashMap<u64, u32>,
    /// Chunks in arrival order with their arrival time, for eviction.
    order: VecDeque<(u64, u64)>,
}

impl SourceChunks {
    fn note(&mut self, chunk: u64, arrival: u64, count: u32, lim: &WindowLimits, now: u64) {
        let oldest = now.saturating_sub(lim.max_age.as_secs());
        match self.stored.get_mut(&chunk) {
            Some(c) => *c = (*c).max(count),
            None if arrival < oldest || lim.max_chunks == 0 => return,
            None => {
                self.stored.insert(chunk, count);
                self.order.push_back((chunk, arrival));
            }
        }
        while let Some(&(c, at)) = self.order.front() {
            if self.order.len() <= lim.max_chunks && at >= oldest {
                break;
            }
            self.order.pop_front();
            self.stored.remove(&c);
        }
    }
}

/// What the writer decides for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a chunk record, or a new one: append it.
    Append,
    /// Already stored (a resent chunk): skip it.
    Duplicate,
}

/// The windows of every pushed source, owned by the writer thread.
pub struct ChunkWindows {
    limits: WindowLimits,
    sources: HashMap<Arc<str>, SourceChunks>,
}

impl ChunkWindows {
    /// Empty windows; each source's is rebuilt from the index the first time it is seen.
    pub fn new(limits: WindowLimits) -> ChunkWindows {
        ChunkWindows {
            limits,
            sources: HashMap::new(),
        }
    }

    /// Decide whether the record at `position` of source `key` is appended, and remember it
    /// when it is (call only for records that are then appended).
    pub fn check(&mut self, store: &Store, key: &Arc<str>, position: &Position) -> Verdict {
        self.run(store, key).check(position)
    }

    /// Check a run of records of source `key`: call [`RunCheck::check`] for each record, in
    /// order, before it is appended. The source's window is looked up (rebuilt from the index
    /// the first time it is seen) once per chunk in the run, not once per record, and only when
    /// a record carries a chunk position.
    pub fn run<'w>(&'w mut self, store: &'w Store, key: &'w Arc<str>) -> RunCheck<'w> {
        RunCheck {
            windows: self,
            store,
            key,
            now: None,
            current: None,
        }
    }

    fn window(&mut self, store: &Store, key: &Arc<str>) -> &mut SourceChunks {
        let lim = self.limits;
        self.sources
            .entry(key.clone())
            .or_insert_with(|| recover(store, key, &lim))
    }

    /// Forget a source (retired or removed).
    pub fn forget(&mut self, key: &str) {
        self.sources.remove(key);
    }

    /// Sources with a window in memory.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// True when no window is held.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

/// The chunk a run is in: consecutive records of one chunk are checked against this copy of
/// its window entry, which is written back once when the chunk changes or the run ends.
struct CurrentChunk {
    chunk: u64,
    /// Arrival time to note: of the record that entered the chunk into the window in this run,
    /// else of its first record appended in this run.
    arrival: u64,
    /// What the window holds for the chunk, as if each record appended so far had been noted.
    stored: Option<u32>,
    /// Highest count appended in this run, to note at the end.
    appended: Option<u32>,
}

/// Checks a run of one source's records against its window (see [`ChunkWindows::run`]); the
/// verdicts are those of [`ChunkWindows::check`] record by record. The window is updated when
/// the run is dropped.
pub struct RunCheck<'w> {
    windows: &'w mut ChunkWindows,
    store: &'w Store,
    key: &'w Arc<str>,
    now: Option<u64>,
    current: Option<CurrentChunk>,
}

impl RunCheck<'_> {
    /// Decide whether the record at `position` is appended, and remember it when it is (call
    /// only for records that are then appended).
    #[inline]
    pub fn check(&mut self, position: &Position) -> Verdict {
        // File records (most of them) are decided here, without a call.
        match split(position) {
            None => Verdict::Append,
            Some((chunk, arrival, count)) => self.check_chunk(chunk, arrival, count),
        }
    }

    fn check_chunk(&mut self, chunk: u64, arrival: u64, count: u32) -> Verdict {
        if self.current.as_ref().is_none_or(|c| c.chunk != chunk) {
            self.put_back();
            let stored = self
                .windows
                .window(self.store, self.key)
                .stored
                .get(&chunk)
                .copied();
            self.current = Some(CurrentChunk {
                chunk,
                arrival,
                stored,
                appended: None,
            });
        }
        let now = *self.now.get_or_insert_with(now_secs);
        let lim = self.windows.limits;
        let Some(cur) = self.current.as_mut() else {
            return Verdict::Append;
        };
        if cur.stored.is_some_and(|c| count <= c) {
            return Verdict::Duplicate;
        }
        if cur.appended.is_none() {
            cur.arrival = arrival;
        }
        cur.appended = cur.appended.max(Some(count));
        // What `SourceChunks::note` does to the chunk's entry: raise a held count; insert a
        // new chunk unless it is too old for the window or the window holds none.
        cur.stored = match cur.stored {
            Some(c) => Some(c.max(count)),
            None if arrival < now.saturating_sub(lim.max_age.as_secs()) || lim.max_chunks == 0 => {
                None
            }
            None => {
                // Entered the window here: its arrival is this record's.
                cur.arrival = arrival;
                Some(count)
            }
        };
        Verdict::Append
    }

    fn put_back(&mut self) {
        if let Some(CurrentChunk {
            chunk,
            arrival,
            appended: Some(count),
            ..
        }) = self.current.take()
        {
            let now = *self.now.get_or_insert_with(now_secs);
            let lim = self.windows.limits;
            self.windows
                .window(self.store, self.key)
                .note(chunk, arrival, count, &lim, now);
        }
    }
}

impl Drop for RunCheck<'_> {
    fn drop(&mut self) {
        self.put_back();
    }
}

/// Rebuild one source's window from its newest durable records: read backwards in steps
/// until the window is full, the records are older than its age, or the read-back bound.
fn recover(store: &Store, key: &str, lim: &WindowLimits) -> SourceChunks {
    let mut w = SourceChunks::default();
    let Some((first, next)) = store.seq_range(key) else {
        return w;
    };
    let now = now_secs();
    let oldest = now.saturating_sub(lim.max_age.as_secs());
    let floor = first.max(next.saturating_sub(RECOVER_MAX_RECORDS));
    // Newest chunks first; `found` collects in reverse arrival order.
    let mut found: Vec<(u64, u64, u32)> = Vec::new();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut end = next;
    'steps: while end > floor {
        let start = end.saturating_sub(RECOVER_STEP as u64).max(floor);
        let batch = match store.read_from(key, start, (end - start) as usize, 64 << 20) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(source = key, error = %e, "reading back recent chunks failed; resent chunks of this source may be stored twice");
                break;
            }
        };
        for r in batch.records.iter().rev() {
            if r.seq >= end {
                continue;
            }
            let Some((chunk, arrival, count)) = split(&r.position) else {
                continue;
            };
            if arrival < oldest {
                break 'steps;
            }
            match seen.get(&chunk) {
                Some(&i) => found[i].2 = found[i].2.max(count),
                None => {
                    if found.len() >= lim.max_chunks {
                        break 'steps;
                    }
                    seen.insert(chunk, found.len());
                    found.push((chunk, arrival, count));
                }
            }
        }
        end = start;
    }
    for (chunk, arrival, count) in found.into_iter().rev() {
        w.note(chunk, arrival, count, lim, now);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdicts record by record, as the writer took them before runs: look the chunk
    /// up, then note it.
    fn reference(w: &mut SourceChunks, lim: &WindowLimits, p: &Position, now: u64) -> Verdict {
        let Some((chunk, arrival, count)) = split(p) else {
            return Verdict::Append;
        };
        if w.stored.get(&chunk).is_some_and(|&c| count <= c) {
            return Verdict::Duplicate;
        }
        w.note(chunk, arrival, count, lim, now);
        Verdict::Append
    }

    #[test]
    fn runs_decide_as_record_by_record_checks_do() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), runnel_index::Limits::default()).unwrap();
        let key: Arc<str> = "sidecar:ns/p/c".into();
        let now = now_secs();
        for (max_chunks, seed) in [(0usize, 1u64), (1, 2), (3, 3), (8, 4), (1000, 5)] {
            let lim = WindowLimits {
                max_chunks,
                max_age: Duration::from_secs(600),
            };
            let mut windows = ChunkWindows::new(lim);
            let mut model = SourceChunks::default();
            let mut x = seed;
            let mut rand = move |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            // Requests of whole or partly resent chunks, some old, some not chunked.
            let mut positions = Vec::new();
            for _ in 0..400 {
                let chunk = 1 + rand(12);
                let arrival = if rand(10) == 0 { now - 3600 } else { now };
                let (from, to) = (1 + rand(5), 3 + rand(8));
                for n in from..=to {
                    positions.push(if rand(20) == 0 {
                        Position::None
                    } else {
                        chunk_position(chunk, arrival, n as usize)
                    });
                }
            }
            let mut at = 0;
            while at < positions.len() {
                let end = (at + 1 + rand(30) as usize).min(positions.len());
                let mut run = windows.run(&store, &key);
                for p in &positions[at..end] {
                    assert_eq!(
                        run.check(p),
                        reference(&mut model, &lim, p, now),
                        "window of {max_chunks} chunks, record {at}"
                    );
                }
                drop(run);
                at = end;
            }
            let held = &windows.sources[&key];
            assert_eq!(held.stored, model.stored, "window of {max_chunks} chunks");
            assert_eq!(held.order, model.order);
        }
    }

    #[test]
    fn position_round_trips_chunk_arrival_and_count() {
        let p = chunk_position(77, 1_800_000_000, 1000);
        assert_eq!(split(&p), Some((77, 1_800_000_000, 1000)));
        assert_eq!(split(&Position::None), None);
    }

    #[test]
    fn window_evicts_by_count_and_age() {
        let lim = WindowLimits {
            max_chunks: 2,
            max_age: Duration::from_secs(60),
        };
        let mut w = SourceChunks::default();
        let now = 10_000;
        w.note(1, now, 5, &lim, now);
        w.note(2, now, 5, &lim, now);
        w.note(3, now, 5, &lim, now);
        assert!(!w.stored.contains_key(&1));
        assert!(w.stored.contains_key(&3));
        w.note(4, now - 120, 1, &lim, now);
        assert!(!w.stored.contains_key(&4), "an old chunk does not stay");
    }
}
