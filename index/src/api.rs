//! The types the store's API speaks in: limits, queries and their results, source summaries and
//! counters. The store itself is in `store.rs`.

use crate::{SourceIdentity, StoredRecord};
use std::sync::Arc;
use std::time::Duration;

/// Size and age limits of the store.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Seal the active segment when its raw (uncompressed frame) size reaches this. Default 32 MiB.
    pub segment_max_bytes: u64,
    /// Seal the active segment when its first record is older than this. Default 10 min.
    pub segment_max_age: Duration,
    /// Raw bytes per compressed block in sealed segments. Default 128 KiB.
    pub block_raw_bytes: usize,
    /// zstd level for sealed blocks.
    pub zstd_level: i32,
    /// Node-wide disk budget for all segments. Default 10 GiB.
    pub max_disk_bytes: u64,
    /// Records older than this (by segment max time) are deleted. Default 7 days.
    pub max_age: Duration,
    /// Sealed segments kept memory-mapped at once (least recently read unmapped first), so that
    /// thousands of segments stay far below `vm.max_map_count`. Default
    /// [`crate::DEFAULT_MAX_OPEN_MAPS`].
    pub max_open_maps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            segment_max_bytes: 32 << 20,
            segment_max_age: Duration::from_secs(600),
            block_raw_bytes: 128 << 10,
            zstd_level: 1,
            max_disk_bytes: 10 << 30,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_open_maps: crate::DEFAULT_MAX_OPEN_MAPS,
        }
    }
}

/// A time-window query, with the kubelet's semantics.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Inclusive lower bound on record time (ns).
    pub since_ns: Option<i64>,
    /// Exclusive upper bound on record time (ns).
    pub until_ns: Option<i64>,
    /// Keep only the last N records (applied before `since`, as the kubelet does).
    pub tail_lines: Option<u64>,
    /// Stop once the messages returned add up to at least this many bytes.
    pub limit_bytes: Option<u64>,
}

/// What a query returned and what it cost.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// Matching records in append order.
    pub records: Vec<StoredRecord>,
    /// Compressed bytes read from sealed segments.
    pub bytes_read: u64,
    /// Bytes decompressed.
    pub bytes_decompressed: u64,
    /// Blocks decompressed.
    pub blocks_decompressed: u64,
}

/// A batch read by sequence cursor.
#[derive(Debug, Clone, Default)]
pub struct ReadBatch {
    /// Records with `seq >= from` in order.
    pub records: Vec<StoredRecord>,
    /// Records the cursor asked for that retention deleted before they were read.
    pub gap: u64,
    /// The sequence to ask for next.
    pub next_seq: u64,
}

/// What a [`crate::Store::read_each`] read: how many records it handed out, and where the
/// cursor goes next (the fields of a [`ReadBatch`] without the records).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadEnd {
    /// Records handed to the visitor, in sequence order.
    pub records: usize,
    /// Records the cursor asked for that retention deleted before they were read.
    pub gap: u64,
    /// The sequence to ask for next.
    pub next_seq: u64,
}

/// Summary of one source.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// Stable source key.
    pub key: String,
    /// Who produced the records.
    pub identity: SourceIdentity,
    /// Min record time (ns), if any record is stored.
    pub min_time_ns: Option<i64>,
    /// Max record time (ns).
    pub max_time_ns: Option<i64>,
    /// First sequence still stored.
    pub first_seq: u64,
    /// Next sequence to be assigned (= records ever appended).
    pub next_seq: u64,
    /// Records stored now.
    pub records: u64,
    /// Bytes on disk (sealed + active).
    pub disk_bytes: u64,
    /// Number of segments holding records (sealed, plus the active one).
    pub segments: u64,
    /// The agent retired the source ([`crate::Store::retire_source`]): its container's log
    /// files are gone. It stays listed and readable until retention has deleted its last
    /// record, then it is removed.
    pub retired: bool,
}

/// Store-wide counters for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    /// Bytes on disk.
    pub disk_bytes: u64,
    /// Sealed segments holding records (position stubs not counted).
    pub sealed_segments: u64,
    /// Active segments holding records (open files; an empty one is not kept open).
    pub active_segments: u64,
    /// Records appended since open.
    pub records_appended: u64,
    /// Syncs since open.
    pub syncs: u64,
    /// Corrupt blocks skipped by reads since open.
    pub corrupt_blocks: u64,
    /// Bytes cut from torn active-segment tails at open.
    pub recovered_truncated_bytes: u64,
    /// Retention deletions by reason ("disk", "age"): (segments, records, bytes).
    pub retention: Vec<(String, u64, u64, u64)>,
    /// Seals that failed inside `append` (the records stay in the active segment; the next
    /// `seal_due` retries). The last message is in `Store::last_error`.
    pub seal_errors: u64,
    /// Retired sources still holding records (they are removed once retention deletes the last).
    pub retired_sources: u64,
    /// Retired sources removed since open (directory, position stub and memory freed), at
    /// `retire_source`, after retention or at open.
    pub sources_removed: u64,
    /// Sealed segments memory-mapped now (at most `Limits::max_open_maps`, plus one per read
    /// in progress).
    pub open_maps: u64,
}

/// Called after each sync for every source that received records: `(source key, next_seq)`.
pub type AppendListener = Arc<dyn Fn(&str, u64) + Send + Sync>;
