//! Retention: a node-wide disk budget and a maximum age.
//!
//! Policy. Each source loses data only from its front, in append order (so a reader's cursor
//! can fall behind retention but never finds a hole in the middle). Across sources the choice is
//! by age: of every source's oldest sealed segment, the one with the smallest max record time
//! goes first — globally oldest data first, so no source is favoured: a chatty source loses its
//! old segments before a quiet source loses its newer ones. A front segment whose max time is
//! older than `max_age` goes (reason `age`); then, while the total bytes on disk (sealed +
//! active) exceed `max_disk_bytes`, the oldest front segment goes (reason `disk`). If the budget
//! is still exceeded when no sealed segment is left, the largest active segment is sealed so
//! that a second pass can delete it. Every deletion is counted in `StoreStats::retention` as
//! `(reason, segments, records, bytes)`; readers whose cursor pointed into a deleted segment get
//! an explicit `ReadBatch::gap`. A retired source left without records is then removed
//! (directory, position stub and memory; see the `retire` module).
//!
//! Positions outlive the records. The log file a deleted record came from may still be on disk
//! (a quiet container's live file holds lines older than `max_age`); if the store forgot how far
//! it had read that file, the tailer would read it again after a restart and ship the lines a
//! second time. So before a segment is deleted, the file positions that no later segment
//! supersedes move into the source's *position stub*: a sealed segment without blocks named
//! `seg-<N>-<N>.sealed`, N being the first sequence still stored, written (temp, fsync, rename)
//! before the segment is removed and replacing the previous stub. It keeps the positions of the
//! [`MAX_STUB_POSITIONS`] most recently deleted files, so its size is bounded; the tailer only
//! needs the files still on disk (a handful of rotations).

use crate::sealed::{self, SealedSegment};
use crate::source::Source;
use crate::store::lock;
use crate::{Error, FileId, Store};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// File positions a source's position stub keeps at most.
pub const MAX_STUB_POSITIONS: usize = 64;

fn count(store: &Store, reason: &str, records: u64, bytes: u64) {
    let mut c = lock(&store.counters);
    let r = &mut c.stats.retention;
    match r.iter_mut().find(|e| e.0 == reason) {
        Some(e) => {
            e.1 += 1;
            e.2 += records;
            e.3 += bytes;
        }
        None => r.push((reason.to_string(), 1, records, bytes)),
    }
}

/// Delete `seg`, the front data segment of `src`, carrying its positions into the stub.
/// Returns the bytes freed, or `None` when the segment is no longer the source's front.
fn delete_front(src: &mut Source, seg: &Arc<SealedSegment>) -> Result<Option<u64>, Error> {
    let front = src.sealed.iter().position(|s| !s.is_stub());
    if front.is_none_or(|i| !Arc::ptr_eq(&src.sealed[i], seg)) {
        return Ok(None);
    }
    let old_stub = src.sealed.iter().find(|s| s.is_stub()).cloned();
    // Positions that a remaining segment (or the active one) knows override the stub anyway.
    let mut later: HashSet<FileId> = src.active_positions.keys().copied().collect();
    for s in src
        .sealed
        .iter()
        .filter(|s| !s.is_stub() && !Arc::ptr_eq(s, seg))
    {
        later.extend(s.positions()?.iter().map(|p| p.0));
    }
    let mut carried: Vec<(FileId, u64)> = Vec::new();
    let mut seen = HashSet::new();
    let old_positions = match &old_stub {
        Some(s) => s.positions()?,
        None => &[],
    };
    for &(file, offset) in seg.positions()?.iter().chain(old_positions) {
        if carried.len() < MAX_STUB_POSITIONS && !later.contains(&file) && seen.insert(file) {
            carried.push((file, offset));
        }
    }
    let (mut freed, mut written) = (seg.file_len(), 0);
    let mut new_stub = None;
    if !carried.is_empty() && carried.as_slice() != old_positions {
        let path = sealed::write_stub(&src.dir, seg.end_seq, &carried)?;
        let stub = Arc::new(SealedSegment::open(&path)?);
        written = stub.file_len();
        new_stub = Some(stub);
    }
    crate::source::remove_segment(&seg.path)?;
    src.sealed.retain(|s| !Arc::ptr_eq(s, seg));
    if let Some(stub) = new_stub {
        if let Some(old) = old_stub {
            if old.path != stub.path {
                crate::source::remove_segment(&old.path)?;
            }
            freed += old.file_len();
            src.sealed.retain(|s| !Arc::ptr_eq(s, &old));
        }
        src.sealed.insert(0, stub);
    }
    // Same answer as a reopen would give: the stub first, then the remaining segments.
    src.rebuild_positions()?;
    Ok(Some(freed.saturating_sub(written)))
}

/// Apply the disk budget and max age (see the module doc for the policy).
pub fn enforce(store: &Store) -> Result<(), Error> {
    if store.is_read_only() {
        return Err(Error::ReadOnly);
    }
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let (max_disk_bytes, max_age) = store.retention();
    let cutoff = now_ns.saturating_sub(max_age.as_nanos().min(i64::MAX as u128) as i64);
    for pass in 0..2 {
        let all: Vec<Arc<Mutex<Source>>> = store
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut total = 0u64;
        // Each source's data segments in append order, and a heap of their fronts by max time.
        let mut queues: Vec<VecDeque<Arc<SealedSegment>>> = Vec::with_capacity(all.len());
        let mut heap = BinaryHeap::new();
        for (i, s) in all.iter().enumerate() {
            let src = lock(s);
            total += src.disk_bytes();
            let q: VecDeque<_> = src
                .sealed
                .iter()
                .filter(|x| !x.is_stub())
                .cloned()
                .collect();
            if let Some(f) = q.front() {
                heap.push(Reverse((f.max_time, f.first_seq, i)));
            }
            queues.push(q);
        }
        while let Some(Reverse((max_time, _, i))) = heap.pop() {
            let reason = if max_time < cutoff {
                "age"
            } else if total > max_disk_bytes {
                "disk"
            } else {
                break;
            };
            let Some(seg) = queues[i].pop_front() else {
                continue;
            };
            let freed = delete_front(&mut lock(&all[i]), &seg)?;
            if let Some(freed) = freed {
                total = total.saturating_sub(freed);
                count(store, reason, seg.records(), seg.file_len());
            }
            if let Some(f) = queues[i].front() {
                heap.push(Reverse((f.max_time, f.first_seq, i)));
            }
        }
        if total <= max_disk_bytes || pass == 1 {
            break;
        }
        // Over budget with no sealed segment left to delete: seal the largest active segment.
        let biggest = all
            .iter()
            .filter_map(|s| {
                let src = lock(s);
                let a = src.active.as_ref()?;
                (a.records() > 0).then(|| (a.len(), src.key.clone()))
            })
            .max();
        match biggest {
            Some((_, key)) => store.seal(&key)?,
            None => break,
        }
    }
    // Retired sources whose last segment just went are removed (see the `retire` module).
    store.remove_drained()
}
