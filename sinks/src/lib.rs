//! runnel-sinks: ships the index to Elasticsearch or OpenSearch.
//!
//! The sink is a reader of the index with its own durable cursor per source (see [`cursor`]):
//! an outage costs disk, not memory, and a restart resumes where the cluster last
//! acknowledged. Documents are ECS JSON encoded straight into the bulk body ([`encode`]),
//! sent with `op_type: create` and a deterministic `_id` so a re-sent record answers 409 and
//! never becomes a second document (both Fluent Bit and Vector duplicate on retry). Every
//! bulk response is read item by item ([`response`]): done items advance the cursor over a
//! contiguous prefix, 429/5xx items are retried alone with backoff, other rejected items go to
//! a size-capped dead-letter file ([`dead_letter`]) and are counted — never retried forever,
//! never dropped silently. Memory is bounded by `max_in_flight_bytes`.
//!
//! ```no_run
//! # fn f(cfg: &runnel_config::ElasticsearchConfig, store: std::sync::Arc<runnel_index::Store>)
//! # -> Result<(), runnel_sinks::SinkError> {
//! let sink = runnel_sinks::ElasticsearchSink::start(cfg, "node-1", store, "/var/lib/runnel/sinks/es".as_ref())?;
//! sink.drain(std::time::Duration::from_secs(60))?;
//! sink.shutdown();
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod batch;
pub mod cursor;
pub mod dead_letter;
pub mod encode;
mod error;
pub mod index_name;
pub mod metrics;
pub mod pipeline;
pub mod response;
pub mod ship;
mod sink;
pub mod status;
pub mod transport;

pub use error::SinkError;
pub use sink::{template_body, ElasticsearchSink, SinkHandle, DEAD_LETTER_FILE};
