//! runnel-index: the node's durable, time-indexed store of container log records.
//!
//! ```
//! use runnel_index::{NewRecord, Position, Query, RecordFlags, Store, Stream, TimeStyle, Limits};
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), Limits::default()).unwrap();
//! let rec = NewRecord {
//!     time_ns: 1_700_000_000_000_000_000,
//!     time_style: TimeStyle::default(),
//!     stream: Stream::Stdout,
//!     flags: RecordFlags::default(),
//!     message: b"hello",
//!     position: Position::None,
//! };
//! let seq = store.append("docker:abc", &rec).unwrap();
//! store.sync().unwrap(); // group commit: durable now, followers woken
//! let got = store.query("docker:abc", &Query { tail_lines: Some(10), ..Query::default() }).unwrap();
//! assert_eq!(got.records[0].seq, seq);
//! ```
//!
//! One directory per source (container instance) under `<data_dir>/sources/<hex(key)>/` holds
//! `source.json` (key and identity, tagged by version), at most one active segment
//! `seg-<first seq>.active` and sealed segments `seg-<first seq>-<end seq>.sealed`; after
//! retention deleted records, a *position stub* `seg-<N>-<N>.sealed` (a sealed segment without
//! blocks, N = first sequence still stored) keeps the file positions of the deleted records.
//! `retired.json` (`{"version":"1"}`) marks a source the agent retired
//! ([`Store::retire_source`]: its container is gone); once it holds no records the whole
//! directory is renamed into `<data_dir>/removing/` and deleted there (open deletes what a crash
//! left in `removing/` and never reads it). `LOCK` in the data dir is `flock`ed by the one
//! writer.
//!
//! ```text
//! frame (all integers little-endian):
//!   len:u32 | crc32c(payload):u32 | payload[len]
//!   payload = seq:u64 | time_ns:i64 | tz_offset_secs:i32 | frac_digits:u8 | zulu:u8
//!           | stream:u8 (0 stdout, 1 stderr) | flags:u8 | pos_kind:u8 (0 none, 1 file, 2 stream)
//!           | [file: dev:u64 ino:u64 fingerprint:u64 offset:u64 | stream: id:u64 seq:u64]
//!           | message bytes (the rest)
//!
//! active segment:  "RNLACT01" | frame | frame | ...          (appended; torn tail cut at open)
//!
//! active index (seg-<first seq>.idx, a hint beside the active segment; see `active_index`):
//!                  "RNLAIX01" | first_seq:u64 | crc32c(header[0..16]):u32 | reserved:u32
//!                  | per finished chunk (56 bytes): offset:u64 len:u64 first_seq:u64 count:u64
//!                  |     min_time:i64 max_time:i64 reserved:u32 crc32c(entry[0..52]):u32
//!
//! sealed segment:  "RNLSEG02" (format 2; format 1, "RNLSEG01", is still read)
//!                  | block 0 | block 1 | ...     each block = zstd(raw block), ~128 KiB of frames
//!                  |     format 2 raw block: the records' header fields as columns (deltas,
//!                  |         runs), then their messages, then crc32c (see `block`)
//!                  |     format 1 raw block: frame | frame | ...
//!                  | block index: per block (48 bytes)
//!                  |     min_time:i64 max_time:i64 first_seq:u64 count:u32 raw_len:u32
//!                  |     offset:u64 len:u32 crc32c(compressed):u32
//!                  | positions: per file identity (32 bytes) dev ino fingerprint last_offset
//!                  | footer (72 bytes):
//!                  |     index_offset:u64 blocks:u32 positions:u32 first_seq:u64 count:u64
//!                  |     min_time:i64 max_time:i64 crc32c(index+positions):u32
//!                  |     version:u32 (= format: 2, or 1 for "RNLSEG01")
//!                  |     reserved:u32 crc32c(footer[0..60]):u32 "RNLFOOT1"
//! ```
//!
//! Durability: [`Store::append`] only buffers and writes; [`Store::sync`] writes out and
//! `fdatasync`s every active segment that changed (group commit: one sync for many records), and
//! only then marks the records durable, moves their file positions into the durable-position
//! table and wakes followers. At open, each active segment is scanned and cut at the first torn
//! or corrupt frame (or sequence discontinuity); every frame a sync covered was fully written
//! before that sync returned, so it survives. Sealing writes the sealed file under a `.tmp`
//! name, fsyncs it, renames it and fsyncs the directory before the active file is removed; a
//! crash in between leaves the active file, which open discards once the sealed twin exists.
//! An age-due seal ([`Store::seal_due`]) may rewrite a small previous sealed segment together with
//! the active records into one segment, written the same way before the pieces are removed; a
//! crash in between leaves a segment inside the merged one, which open discards.
//! [`Store::durable_position`] is rebuilt at open from the data itself (sealed position tables,
//! the position stub, and the scanned active segments), never from a separate checkpoint that
//! could disagree.
//! The active index is written after the frames it describes are synced and is never synced
//! itself: a reader uses only the prefix of entries that agree with the segment (CRCs,
//! contiguity, file length, the frame at the last entry) and scans the rest; a writer's open
//! scans every frame and rewrites the index to match, so nothing depends on it.
//! Sealed segment lists come from file names and footers: the directory is the manifest.
//! Sealed segments are read with `pread` at open and memory-mapped only while their blocks are
//! read, at most [`Limits::max_open_maps`] at once (least recently used unmapped first).
//! Retiring marks durably before anything goes, and a source leaves `sources/` in one rename
//! only when marked and empty, so a crash at any point leaves it either whole (and open removes
//! it) or out of `sources/` (the `retire` module spells out each step).

#![deny(missing_docs)]

mod active;
mod active_index;
mod api;
mod append;
#[doc(hidden)]
pub mod bench_support;
mod block;
pub mod crc;
mod error;
mod frame;
mod maps;
mod partial;
mod query;
mod record;
mod retention;
mod retire;
mod sealed;
mod segment_writer;
mod source;
mod store;
mod verify;

pub use api::*;
pub use append::Appender;
pub use error::Error;
pub use frame::{FrameView, MAX_MESSAGE};
pub use maps::DEFAULT_MAX_OPEN_MAPS;
pub use record::*;
pub use store::Store;
pub use verify::{verify_dir, Problem, VerifyReport};
