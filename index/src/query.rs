//! Reads: kubelet-style time-window queries and sequence-cursor reads over one source.
//!
//! Query order (the kubelet's, plus `until`):
//! 1. keep records with `time < until` (exclusive; our extension);
//! 2. of those, keep the last `tail_lines` (kubelet finds the start of the last N lines first);
//! 3. drop records with `time < since` (inclusive lower bound);
//! 4. stop after the record whose message bytes make the running total reach `limit_bytes`
//!    (the HTTP/CLI layer applies the exact output-byte cut, as kubelet's LimitWriter does).
//!
//! Segments and blocks whose time range cannot contribute are neither read nor decompressed.
//! For `tail`, blocks are walked newest first to find where the tail starts; a block entirely
//! before both `until` and `since` only consumes its record count from the tail budget without
//! being decompressed. Records are then collected forward from there, stopping at `limit_bytes`,
//! so a query's memory and work follow its answer, not the size of the history.

use crate::block::{Block, RecordError};
use crate::frame::FrameView;
use crate::partial::PartialBlocks;
use crate::sealed::{BlockMeta, SealedSegment};
use crate::source::Source;
use crate::{Error, Query, QueryResult, ReadBatch, ReadEnd, StoredRecord};

/// Where a block lives.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Sealed(usize, usize),
    Active(usize),
}

#[derive(Debug, Clone, Copy)]
struct BlockInfo {
    loc: Loc,
    max_time: i64,
    first_seq: u64,
    count: u64,
}

/// A sealed segment's block index; one that cannot be read (opened lazily, damaged since) adds
/// its error to `bad` and lists no blocks.
fn block_index<'a>(seg: &'a SealedSegment, bad: &mut Vec<Error>) -> &'a [BlockMeta] {
    seg.blocks().unwrap_or_else(|e| {
        bad.push(e);
        &[]
    })
}

/// Blocks that may hold records in `[since, until)` (or, for `tail`, any record before `until`)
/// and sequences `>= from_seq`, in sequence order.
fn blocks(
    src: &Source,
    (since, until): (i64, i64),
    tail: bool,
    from_seq: u64,
    bad: &mut Vec<Error>,
) -> Vec<BlockInfo> {
    let mut out = Vec::new();
    let keep = |min: i64, max: i64| min < until && (tail || max >= since);
    let start = src.sealed.partition_point(|s| s.end_seq <= from_seq);
    for (si, seg) in src.sealed.iter().enumerate().skip(start) {
        if seg.records() == 0 || !keep(seg.min_time, seg.max_time) {
            continue;
        }
        for (bi, b) in block_index(seg, bad).iter().enumerate() {
            if keep(b.min_time, b.max_time) && b.first_seq + b.count as u64 > from_seq {
                out.push(BlockInfo {
                    loc: Loc::Sealed(si, bi),
                    max_time: b.max_time,
                    first_seq: b.first_seq,
                    count: b.count as u64,
                });
            }
        }
    }
    if let Some(a) = &src.active {
        for (ci, c) in a.chunks.iter().enumerate() {
            if keep(c.min_time, c.max_time) && c.first_seq + c.count > from_seq {
                out.push(BlockInfo {
                    loc: Loc::Active(ci),
                    max_time: c.max_time,
                    first_seq: c.first_seq,
                    count: c.count,
                });
            }
        }
    }
    out
}

/// The newest blocks holding records before `until`, just enough of them to hold the last `n`
/// such records (blocks entirely before `until` count whole), in sequence order: what a tail
/// query can touch, without listing every block of the history.
fn tail_blocks(src: &Source, until: i64, n: u64, bad: &mut Vec<Error>) -> Vec<BlockInfo> {
    let mut out = Vec::new();
    let mut counted = 0u64;
    let mut see = |out: &mut Vec<BlockInfo>, b: BlockInfo, min: i64| {
        if min < until {
            out.push(b);
            if b.max_time < until {
                counted = counted.saturating_add(b.count);
            }
        }
        counted >= n
    };
    'walk: {
        if let Some(a) = &src.active {
            for (ci, c) in a.chunks.iter().enumerate().rev() {
                let b = BlockInfo {
                    loc: Loc::Active(ci),
                    max_time: c.max_time,
                    first_seq: c.first_seq,
                    count: c.count,
                };
                if see(&mut out, b, c.min_time) {
                    break 'walk;
                }
            }
        }
        for (si, seg) in src.sealed.iter().enumerate().rev() {
            if seg.records() == 0 || seg.min_time >= until {
                continue;
            }
            for (bi, m) in block_index(seg, bad).iter().enumerate().rev() {
                let b = BlockInfo {
                    loc: Loc::Sealed(si, bi),
                    max_time: m.max_time,
                    first_seq: m.first_seq,
                    count: m.count as u64,
                };
                if see(&mut out, b, m.min_time) {
                    break 'walk;
                }
            }
        }
    }
    out.reverse();
    out
}

/// Load a block's raw content; corruption is pushed to `bad` and yields `None`.
fn load(src: &Source, loc: Loc, cost: &mut QueryResult, bad: &mut Vec<Error>) -> Option<Block> {
    match loc {
        Loc::Sealed(si, bi) => {
            let seg = &src.sealed[si];
            cost.bytes_read += seg.block_len(bi);
            match seg.block(bi) {
                Ok(raw) => {
                    cost.blocks_decompressed += 1;
                    cost.bytes_decompressed += raw.raw_len() as u64;
                    Some(raw)
                }
                Err(e) => {
                    bad.push(e);
                    None
                }
            }
        }
        Loc::Active(ci) => {
            let a = src.active.as_ref()?;
            let c = a.chunks.get(ci)?;
            match a.read(c.offset, c.len) {
                Ok(raw) => Some(Block::Frames(raw)),
                Err(e) => {
                    bad.push(e);
                    None
                }
            }
        }
    }
}

/// Decode the records of a block, checking that sequences are the ones the index promised;
/// a bad record ends the block and is reported.
fn frames_of<'a>(
    src: &Source,
    b: &BlockInfo,
    raw: &'a Block,
    bad: &mut Vec<Error>,
) -> Vec<FrameView<'a>> {
    let mut out = Vec::with_capacity(b.count as usize);
    for r in raw.records(b.first_seq) {
        match r {
            Ok(f) => out.push(f),
            Err(e) => {
                bad.push(bad_record(src, b, e));
                break;
            }
        }
    }
    out
}

/// The error for a record of block `b` that does not decode.
fn bad_record(src: &Source, b: &BlockInfo, e: RecordError) -> Error {
    let path = match b.loc {
        Loc::Sealed(si, _) => src.sealed[si].path.clone(),
        Loc::Active(_) => src
            .active
            .as_ref()
            .map_or_else(|| src.dir.clone(), |a| a.path.clone()),
    };
    Error::Corrupt {
        path,
        offset: e.at as u64,
        what: format!(
            "bad record inside a block (offset within the raw block): {}",
            e.what
        ),
    }
}

/// Decompressed blocks kept from the backward tail pass for the forward pass, in raw bytes.
const TAIL_CACHE_BYTES: usize = 8 << 20;

/// Where the last `n` records with `time < until` start: walks blocks newest first. A block
/// entirely before both `until` and `since` only consumes its record count (all of its records
/// count toward the tail and are then dropped by `since`), without being decompressed. Blocks
/// that were decompressed are kept in `cache` (up to [`TAIL_CACHE_BYTES`]) for the forward pass.
/// Returns the first sequence of the tail, or `None` when `list` ran out first (the tail
/// reaches back to the first record listed).
fn tail_start(
    src: &Source,
    list: &[BlockInfo],
    n: u64,
    (since, until): (i64, i64),
    cost: &mut QueryResult,
    cache: &mut Vec<(usize, Block)>,
    bad: &mut Vec<Error>,
) -> Option<u64> {
    let mut need = n;
    let mut cached = 0usize;
    for (i, b) in list.iter().enumerate().rev() {
        if b.max_time < until && b.max_time < since {
            if need <= b.count {
                return Some(b.first_seq + b.count - need);
            }
            need -= b.count;
            continue;
        }
        let Some(raw) = load(src, b.loc, cost, bad) else {
            continue;
        };
        for f in frames_of(src, b, &raw, bad).iter().rev() {
            if f.time_ns < until {
                need -= 1;
                if need == 0 {
                    let start = f.seq;
                    if cached + raw.raw_len() <= TAIL_CACHE_BYTES {
                        cache.push((i, raw));
                    }
                    return Some(start);
                }
            }
        }
        if cached + raw.raw_len() <= TAIL_CACHE_BYTES {
            cached += raw.raw_len();
            cache.push((i, raw));
        }
    }
    None
}

/// Run a kubelet-style query over one source (the order of filters is in the module doc).
///
/// Memory and work are bounded by the answer, not by the history: with `tail_lines` a backward
/// pass over block metadata (decompressing only blocks that can hold counted records) finds the
/// first sequence of the tail; a forward pass from there decompresses only blocks that overlap
/// the window and stops as soon as `limit_bytes` is reached. Without `limit_bytes` the whole
/// window is returned, so callers that page (the HTTP layer) pass one.
pub fn query(src: &Source, q: &Query, bad: &mut Vec<Error>) -> QueryResult {
    let since = q.since_ns.unwrap_or(i64::MIN);
    let until = q.until_ns.unwrap_or(i64::MAX);
    let mut res = QueryResult::default();
    if q.limit_bytes == Some(0) || q.tail_lines == Some(0) {
        return res;
    }
    let reported = bad.len();
    let mut list = match q.tail_lines {
        Some(n) => tail_blocks(src, until, n, bad),
        None => blocks(src, (since, until), false, 0, bad),
    };
    let mut cache: Vec<(usize, Block)> = Vec::new();
    let start_seq = match q.tail_lines {
        Some(n) => match tail_start(src, &list, n, (since, until), &mut res, &mut cache, bad) {
            Some(start) => start,
            None => {
                // The newest blocks held fewer records than their counts say (damaged ones
                // read as errors): walk the whole history instead, reporting each damage once.
                cache.clear();
                bad.truncate(reported);
                list = blocks(src, (since, until), true, 0, bad);
                tail_start(src, &list, n, (since, until), &mut res, &mut cache, bad).unwrap_or(0)
            }
        },
        None => 0,
    };
    let limit = q.limit_bytes.unwrap_or(u64::MAX);
    let mut total = 0u64;
    let mut picked: Vec<StoredRecord> = Vec::new();
    let mut scratch = Vec::new();
    'blocks: for (i, b) in list.iter().enumerate() {
        if b.first_seq + b.count <= start_seq || b.max_time < since {
            continue;
        }
        // The backward pass pushed blocks newest first: the forward pass finds them at the end.
        while cache.last().is_some_and(|(ci, _)| *ci < i) {
            cache.pop();
        }
        let hit = cache.last().is_some_and(|(ci, _)| *ci == i);
        let (raw, bad_sink) = match cache.pop().filter(|_| hit) {
            // Corruption in a cached block was reported by the backward pass already.
            Some((_, raw)) => (raw, &mut scratch),
            None => match load(src, b.loc, &mut res, bad) {
                Some(raw) => (raw, &mut *bad),
                None => continue,
            },
        };
        for f in frames_of(src, b, &raw, bad_sink) {
            if f.seq < start_seq || f.time_ns < since || f.time_ns >= until {
                continue;
            }
            total = total.saturating_add(f.message.len() as u64);
            picked.push(f.to_stored());
            if total >= limit {
                break 'blocks;
            }
        }
    }
    res.records = picked;
    res
}

/// Read records `from..` up to `upto` (exclusive: the durable end), at most `max_records` and
/// about `max_bytes` of messages (at least one record). Sequences that are no longer stored
/// (retention, corrupt blocks) are reported as `gap`.
pub fn read_from(
    src: &Source,
    from: u64,
    upto: u64,
    max_records: usize,
    max_bytes: usize,
    partial: &PartialBlocks,
    bad: &mut Vec<Error>,
) -> ReadBatch {
    let mut records = Vec::new();
    // Room for what was asked (capped), so filling it does not reallocate and move records.
    let want = max_records.max(1).min(upto.saturating_sub(from) as usize);
    records.reserve(want.min(16 * 1024));
    let end = read_each(
        src,
        (from, upto),
        (max_records, max_bytes),
        partial,
        bad,
        &mut |f| records.push(f.to_stored()),
    );
    ReadBatch {
        records,
        gap: end.gap,
        next_seq: end.next_seq,
    }
}

/// [`read_from`], handing each record to `visit` as a view into its block instead of
/// collecting copies.
pub fn read_each(
    src: &Source,
    (from, upto): (u64, u64),
    (max_records, max_bytes): (usize, usize),
    partial: &PartialBlocks,
    bad: &mut Vec<Error>,
    visit: &mut dyn FnMut(&FrameView<'_>),
) -> ReadEnd {
    let mut batch = ReadEnd {
        records: 0,
        gap: 0,
        next_seq: from,
    };
    let mut cursor = from;
    let mut bytes = 0usize;
    let mut cost = QueryResult::default();
    let all = blocks(src, (i64::MIN, i64::MAX), true, from, bad);
    for b in &all {
        if cursor >= upto || batch.records >= max_records.max(1) || bytes >= max_bytes.max(1) {
            break;
        }
        let end = b.first_seq + b.count;
        if end <= cursor {
            continue;
        }
        if b.first_seq > cursor {
            batch.gap += b.first_seq.min(upto) - cursor;
            cursor = b.first_seq.min(upto);
            if cursor >= upto {
                break;
            }
        }
        let sealed = match b.loc {
            Loc::Sealed(si, _) => Some((src.sealed[si].map_id(), b.first_seq, b.count)),
            Loc::Active(_) => None,
        };
        let Some(raw) = sealed
            .and_then(|key| partial.take(key))
            .or_else(|| load(src, b.loc, &mut cost, bad))
        else {
            batch.gap += end.min(upto) - cursor;
            cursor = end.min(upto);
            continue;
        };
        // Records are decoded only as far as the read goes: a read that stops at its limits
        // partway through a block leaves the rest undecoded (and a damaged record beyond that
        // point is reported by the read that reaches it).
        let mut stopped = false;
        for r in raw.records(b.first_seq) {
            let f = match r {
                Ok(f) => f,
                Err(e) => {
                    bad.push(bad_record(src, b, e));
                    break;
                }
            };
            if f.seq < cursor {
                continue;
            }
            if f.seq >= upto || batch.records >= max_records.max(1) || bytes >= max_bytes.max(1) {
                stopped = true;
                break;
            }
            bytes += f.message.len();
            visit(&f);
            batch.records += 1;
            cursor = f.seq + 1;
        }
        if let Some(key) = sealed.filter(|_| stopped && cursor < end) {
            // The next read of this source starts here: keep the block for it.
            partial.keep(key, raw);
        } else if !stopped && cursor < end.min(upto) {
            // The block ended (or went bad) before the records its index promised: the rest of
            // it is unreadable.
            batch.gap += end.min(upto) - cursor;
            cursor = end.min(upto);
        }
    }
    // Everything below `upto` that no block holds (deleted at the end) is a gap too.
    let stored_end = all.last().map(|b| b.first_seq + b.count).unwrap_or(0);
    if cursor < upto && cursor >= stored_end && batch.records < max_records.max(1) {
        let first_live = src.first_seq().max(stored_end);
        if first_live > cursor {
            batch.gap += first_live.min(upto) - cursor;
            cursor = first_live.min(upto);
        }
    }
    batch.next_seq = cursor;
    batch
}
