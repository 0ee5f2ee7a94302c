//! runnel-agent: the inputs, wiring, HTTP server and CLI of the Runnel node agent.
//!
//! A record's trip: [`tail`] (discover, read, parse, merge partials) → the ingest writer
//! (`Store::append`, group `sync`) → followers woken / sink cursor. [`metrics`] collects
//! per-container cgroup and /proc stats. [`http`] serves range reads, follow, `/metrics`;
//! [`cli`] implements `runnel logs` and friends.

pub mod cli;
pub mod demo;
pub mod failpoint;
pub mod http;
pub mod ingest;
pub mod inputs;
pub mod logs;
pub mod metrics;
pub mod progress;
pub mod runtime;
pub mod tail;
pub mod timefmt;
