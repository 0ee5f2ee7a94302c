//! The chaos soak: a black-box test of the `runnel` binary on an emulated node having a bad day.
//!
//! For a configured time, containers write at varied rates into a Docker root (json-file) and a
//! kubelet pod-log root (CRI), their files rotating by all three schemes (Docker's rename,
//! the kubelet's rename + gzip, copytruncate); the agent is SIGKILLed at random moments and
//! restarted; the fault-injecting proxy in front of a real `osmem-server` answers with 429s,
//! 5xx, resets, stalls and bad bodies; the data dir's small tmpfs is filled by a ballast file
//! and given back; inotify is made to overflow. Then everything is drained, the agent is
//! stopped cleanly, and the run is judged:
//!
//! - every line is in the index exactly once and in order (read back with `runnel logs`), or
//!   its loss is explained by a file the runtime deleted *and* counted by the agent;
//! - every stored line is in the server exactly once, poison lines in the dead-letter file;
//! - the agent's resident memory never passed the bound (the DaemonSet's limit);
//! - the agent never died on its own and recovered from every full disk.
//!
//! [`run::run`] does it; [`report::Summary::table`] prints the figures. See
//! `tests/chaos/README.md` for how to run it for an hour.

pub mod agent;
pub mod binary;
pub mod containers;
pub mod disk;
pub mod faults;
pub mod inotify;
pub mod judge;
pub mod lines;
pub mod metrics;
pub mod node;
pub mod report;
pub mod rng;
pub mod rotation;
pub mod run;
pub mod server;
pub mod settings;
pub mod stop;
pub mod timefmt;
pub mod verify;

/// The fault-injecting Elasticsearch proxy shared with the sink's tests.
#[path = "../../../sinks/tests/support/proxy.rs"]
pub mod proxy;
