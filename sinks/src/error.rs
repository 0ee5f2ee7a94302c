//! The crate's error type.

use std::path::PathBuf;

/// Everything starting or running the sink can fail with. Each variant names the file, endpoint
/// or setting involved so an operator can act on the message alone.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A setting is unusable (bad URL, unknown `%{field}` in the index pattern, …).
    #[error("sinks.elasticsearch.{key}: {message}")]
    Config {
        /// The config key.
        key: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A secret (password, API key, token) or TLS file could not be read.
    #[error("sinks.elasticsearch.{key}: cannot read {path}: {source}")]
    SecretFile {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The cursor file exists but cannot be understood.
    #[error("{path}: corrupt sink cursor file ({message}); move it away to resend from the oldest record still in the index")]
    CorruptCursor {
        /// The cursor file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An I/O error on a state file (cursor, dead letters).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The index failed a read.
    #[error("reading the index: {0}")]
    Index(#[from] runnel_index::Error),
    /// The HTTP client could not be built (TLS material rejected, …).
    #[error("building the HTTP client: {0}")]
    Client(String),
    /// `drain` gave up: nothing was acknowledged for `drain.no_progress_timeout`.
    #[error("drain gave up after {waited_secs:.1}s, the last {no_progress_secs:.1}s without progress (sinks.elasticsearch.drain.no_progress_timeout): {done_records} records shipped during the drain, {pending_records} not yet acknowledged (last error: {last_error})")]
    DrainTimeout {
        /// Seconds waited in all.
        waited_secs: f64,
        /// Seconds since the last document was acknowledged.
        no_progress_secs: f64,
        /// Records acknowledged, dead-lettered or found deleted during the drain.
        done_records: u64,
        /// Records still unacknowledged.
        pending_records: u64,
        /// The most recent shipping error, or "none".
        last_error: String,
    },
    /// The sink's worker has stopped (it panicked or was shut down).
    #[error("the elasticsearch sink is not running")]
    Stopped,
    /// The sink's thread or runtime could not start.
    #[error("starting the sink runtime: {0}")]
    Runtime(std::io::Error),
}
