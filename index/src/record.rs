//! The record vocabulary shared by every part of Runnel: what a log line is once it is in the
//! index, where it came from, and which source (container instance) it belongs to.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which output stream of the container produced a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The name as Docker, the CRI and Elasticsearch documents spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Per-record flags, stored as one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct RecordFlags(pub u8);

impl RecordFlags {
    /// The message was assembled from several partial fragments (json-file without `\n`, CRI `P`).
    pub const PARTIAL_MERGED: u8 = 1;
    /// The message was longer than the configured maximum and was cut.
    pub const TRUNCATED: u8 = 2;

    /// True when the message was merged from partial fragments.
    pub fn partial_merged(self) -> bool {
        self.0 & Self::PARTIAL_MERGED != 0
    }
    /// True when the message was truncated to the line limit.
    pub fn truncated(self) -> bool {
        self.0 & Self::TRUNCATED != 0
    }
}

/// How a timestamp was written in the source file, so that `--timestamps` can print it exactly as
/// written (RFC 3339 with this many fraction digits and this zone) while the index compares the
/// parsed nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct TimeStyle {
    /// Zone offset east of UTC in seconds, as written (`+02:00` → 7200).
    pub offset_secs: i32,
    /// Digits written after the decimal point (0–9; Docker's RFC3339Nano drops trailing zeros).
    pub frac_digits: u8,
    /// The zone was written as `Z` rather than a numeric offset.
    pub zulu: bool,
}

/// Identity of a file on disk: device + inode + a hash of its first bytes, because inodes are
/// reused after deletion and a rotated file keeps its inode under a new name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    /// `st_dev` of the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub ino: u64,
    /// Hash of the file's first bytes (see the tailer for how many).
    pub fingerprint: u64,
}

/// Where a record came from, so an input can resume exactly after the last durable record.
/// An enum because sidecar streams (Fluent forward, NDJSON, HTTP) have no file offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Position {
    /// No resumable position (for example a generated record).
    None,
    /// A byte offset in a file: the offset just *after* the line that produced the record.
    File {
        /// The file's identity.
        file: FileId,
        /// Byte offset after the line (where reading resumes).
        offset: u64,
    },
    /// A position in a pushed stream: the stream's id and its own sequence number.
    Stream {
        /// The stream (connection or sender) identity chosen by the receiver.
        stream_id: u64,
        /// The sender-side sequence of the record.
        seq: u64,
    },
}

/// A record as an input hands it to [`crate::Store::append`]; borrowed so the hot path does not
/// allocate per line.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    /// Timestamp in nanoseconds since the Unix epoch (UTC).
    pub time_ns: i64,
    /// How the timestamp was written.
    pub time_style: TimeStyle,
    /// stdout or stderr.
    pub stream: Stream,
    /// Partial-merge and truncation flags.
    pub flags: RecordFlags,
    /// The message bytes without the trailing newline (may be invalid UTF-8).
    pub message: &'a [u8],
    /// The source position that produced the record.
    pub position: Position,
}

/// A record read back from the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The per-source sequence number, increasing by one per record from 0.
    pub seq: u64,
    /// Timestamp in nanoseconds since the Unix epoch (UTC).
    pub time_ns: i64,
    /// How the timestamp was written.
    pub time_style: TimeStyle,
    /// stdout or stderr.
    pub stream: Stream,
    /// Partial-merge and truncation flags.
    pub flags: RecordFlags,
    /// The message bytes without the trailing newline.
    pub message: Vec<u8>,
    /// The source position that produced the record.
    pub position: Position,
}

/// Who produced a source's records. Filled from what the inputs know: the CRI log path, Docker's
/// `config.v2.json` and labels. Every field is optional because plain Docker containers have no
/// Kubernetes identity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// Container runtime id (64 hex digits for Docker/containerd).
    pub container_id: Option<String>,
    /// Runtime container name (Docker's `Name` without the leading `/`).
    pub container_name: Option<String>,
    /// Image reference.
    pub image: Option<String>,
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Kubernetes pod name.
    pub pod: Option<String>,
    /// Kubernetes pod uid.
    pub pod_uid: Option<String>,
    /// Kubernetes container name (within the pod).
    pub container: Option<String>,
    /// Container restart count (the CRI `<restart>.log` number).
    pub restart: Option<u32>,
    /// Labels known for the container (Docker labels, Kubernetes pod labels where known).
    pub labels: BTreeMap<String, String>,
    /// The log path the source is read from (the live file).
    pub log_path: Option<String>,
}
