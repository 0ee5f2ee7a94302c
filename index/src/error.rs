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
    /// An fsync of this segment failed earlier; it takes no more writes (retrying could report
    /// lost records durable).
    #[error(
        "{path}: fsync failed ({what}); records since the last successful sync may be lost, so \
         this segment takes no more writes: restart to recover from what is on disk"
    )]
    SyncFailed {
        /// The segment file.
        path: PathBuf,
        /// The error of the failed fsync.
        what: String,
    },
}

impl Error {
    /// Whether retrying cannot help and the writer should stop (the process restarts and
    /// recovers from the files).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::SyncFailed { .. })
    }
}
