//! The crate's error type.

use std::path::PathBuf;

/// Everything the index can fail with; each variant names the file and, where it applies, the
/// byte offset, so an operator can act without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a file of the store.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what the format says.
    #[error("{path}: offset {offset}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The store directory is held by another writer.
    #[error("{path}: store is locked by another process (is another runnel agent running on this data_dir?)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// No source with this key.
    #[error("unknown source {0:?}")]
    UnknownSource(String),
    /// A record's message is longer than the store can frame; nothing was appended.
    #[error("record of {len} bytes exceeds the largest message the index stores ({max} bytes)")]
    TooLarge {
        /// Message bytes offered.
        len: usize,
        /// The limit ([`crate::MAX_MESSAGE`]).
        max: usize,
    },
    /// A write was attempted on a store opened read-only.
    #[error("store was opened read-only")]
    ReadOnly,
}
