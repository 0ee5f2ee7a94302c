//! Helpers shared by the index integration tests.
#![allow(dead_code)]

use runnel_index::{FileId, Limits, NewRecord, Position, RecordFlags, Stream, TimeStyle};
use std::path::{Path, PathBuf};

/// The file identity used by the test records.
pub const FILE: FileId = FileId {
    dev: 1,
    ino: 42,
    fingerprint: 0xfeed,
};

/// A record at `time_ns` with `msg`, positioned at `offset` in [`FILE`].
pub fn rec(time_ns: i64, msg: &[u8], offset: u64) -> NewRecord<'_> {
    NewRecord {
        time_ns,
        time_style: TimeStyle {
            offset_secs: 3600,
            frac_digits: 6,
            zulu: false,
        },
        stream: if time_ns % 2 == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        },
        flags: RecordFlags(0),
        message: msg,
        position: Position::File { file: FILE, offset },
    }
}

/// Limits with small blocks so tests cover many blocks with little data.
pub fn small_limits() -> Limits {
    Limits {
        block_raw_bytes: 256,
        ..Limits::default()
    }
}

/// Message for record `i`.
pub fn msg(i: u64) -> Vec<u8> {
    format!("line {i:05} {}", "x".repeat((i % 7) as usize)).into_bytes()
}

/// A scratch directory on tmpfs when the machine has one (the crash tests reopen stores
/// thousands of times; fsync on a real disk would make them slow), else in the default temp dir.
pub fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Every file under `dir` (recursively) whose name ends with `suffix`, sorted.
pub fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_with(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Bytes of the frame for record `i` as `common::rec` builds it (file position, 32 bytes).
pub fn frame_len(i: u64) -> u64 {
    8 + 25 + 32 + msg(i).len() as u64
}
