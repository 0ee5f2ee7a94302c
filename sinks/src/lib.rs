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
//! The record's trip: [`pipeline`] reads each source from its [`sources::Cursor`], encodes
//! into a [`batch`], and hands full batches to [`ship`] tasks — at most as many as the
//! [`concurrency`] limit allows, which adapts (AIMD) to the cluster's latency and 429/503s;
//! a batch keeps its slot through its retries, so retries never add requests or memory.
//!
//! # Choices an operator should know
//!
//! - **`op_type: create`, always.** With deterministic `_id`s (the default, `id: deterministic`)
//!   a re-sent record answers 409 "version conflict", which the sink counts as done: a record
//!   is never indexed twice, whatever was retried or resent after a crash. `index` would
//!   silently overwrite (and bump versions); data streams accept only `create` anyway. The `_id`
//!   is xxh3-128 of node name, container id (or source key), and the record's position: file
//!   identity + byte offset, stream id + sequence for pushed streams, or the index sequence
//!   when there is no position. `id: auto` leaves ids to the server (retries may duplicate).
//! - **Index names** come from a pattern (`index`): `%Y %m %d %H` from the record time in UTC,
//!   `%%`, and `%{kubernetes.namespace}`, `%{kubernetes.pod.name}`,
//!   `%{kubernetes.container.name}`, `%{container.name}`, `%{container.id}`, `%{host.name}`
//!   (see [`index_name`]). `mode: data_stream` writes to the named data stream and, when
//!   `template.install` is on, installs the template with `data_stream: {}`. A server without
//!   the `_index_template` API gets a warning, not an error.
//! - **Credentials** come from files (`auth.password_file`, `auth.api_key_file`,
//!   `auth.bearer_token_file`) or, when no file is set, from `RUNNEL_ES_PASSWORD` (with
//!   `auth.user`), `RUNNEL_ES_API_KEY`, `RUNNEL_ES_BEARER_TOKEN`. They are never logged.
//! - **Dead letters** go to `dead_letter.path` (default `<state_dir>/dead_letter.ndjson`, i.e.
//!   `<data_dir>/sinks/elasticsearch/dead_letter.ndjson` as the config documents), one NDJSON
//!   line per rejected document with its status and reason, rotated to `.1` at
//!   `dead_letter.max_bytes` (so at most twice that on disk).
//! - **Data streams**: `mode: data_stream` needs a fixed `index` name (no `%Y…`: the cluster
//!   rolls the stream over); a time pattern there is a config error.
//! - **Endpoints** are used round-robin; one that refuses connections or times out is skipped
//!   for `retry.max` (at least 100 ms, at most 30 s) and the request fails over at once.
//!   Credentials inside an endpoint URL are refused (the URL is logged).
//! - **Cursor**: `<state_dir>/cursor.json`, `{"version":"1","cursors":{"<source key>":<next
//!   seq>}}`. Delete it to resend everything still in the index (harmless: 409s).
//! - **Transport**: `reqwest` with rustls, not the `elasticsearch` crate (see [`transport`]).
//!   gzip is flate2 on its `zlib-rs` backend (pure Rust, no C toolchain or cmake): on our
//!   NDJSON at level 1 it takes about 23 % less CPU than the default `miniz_oxide` (1445 vs
//!   1120 MiB/s of one core, gzip CRC included) for a 5.5 % instead of 5.2 % ratio, and at
//!   level 6 less than half (`benches/bulk.rs` prints both).
//! - **Concurrency**: `concurrency: {adaptive, min, max, decrease_ratio, latency_threshold}`
//!   (see [`concurrency`]); a plain number is a fixed limit.
//! - **Drain** (`--oneshot`): waits as long as documents are acknowledged and gives up after
//!   `drain.no_progress_timeout` without any, saying how many were shipped and how many remain.
//! - **A sink that cannot start** (unreadable secret, corrupt cursor) is an error from
//!   [`ElasticsearchSink::start`]; the agent keeps collecting and reports a [`FailedSink`].
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
pub mod concurrency;
pub mod cursor;
pub mod dead_letter;
pub mod encode;
mod error;
mod failed;
pub mod gzip;
pub mod index_name;
pub mod metrics;
pub mod pipeline;
pub mod response;
pub mod ship;
mod sink;
pub mod sources;
pub mod status;
pub mod transport;

pub use error::SinkError;
pub use failed::FailedSink;
pub use sink::{
    set_loop_hook, template_body, ElasticsearchSink, LoopHook, SinkHandle, DEAD_LETTER_FILE,
};
