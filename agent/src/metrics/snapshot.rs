//! What one collection pass produced: every container's figures and the pass's own cost and
//! health. Scrapes and `/v1/top` read the latest snapshot; they never walk `/proc` themselves.

use super::cgroup::stats::CgroupStats;
use super::cgroup::ContainerCgroup;
use super::growth::Rates;
use super::identity::Labels;
use super::process::Access;
use super::tcp::TcpStates;
use std::collections::BTreeMap;
use std::time::Duration;

/// One container's figures from one pass.
#[derive(Debug, Clone)]
pub struct ContainerSample {
    /// Its cgroup: id, runtime, pod uid, path.
    pub cgroup: ContainerCgroup,
    /// Namespace, pod, container and image.
    pub labels: Labels,
    /// Processes in the cgroup; `None` when `cgroup.procs` could not be read.
    pub processes: Option<u64>,
    /// Threads (`pids.current`, else the sum of `Threads:`); `None` when incomplete.
    pub threads: Option<u64>,
    /// The pids limit (0 = unlimited).
    pub threads_max: Option<u64>,
    /// Open descriptors; `None` when some process could not be read.
    pub fds: Option<u64>,
    /// Sockets; possibly from an earlier pass (see `sockets_fresh`).
    pub sockets: Option<u64>,
    /// Whether `sockets` was counted in this pass (the budget may have cut it short).
    pub sockets_fresh: bool,
    /// CPU, memory, IO and pids figures of the cgroup.
    pub stats: CgroupStats,
    /// TCP connections by state in the container's network namespace, when enabled.
    pub tcp: Option<TcpStates>,
    /// Growth of fds, threads and sockets per hour.
    pub growth: Rates,
}

/// The cost and health of one pass.
#[derive(Debug, Clone, Default)]
pub struct PassStats {
    /// `v1`, `v2`, or empty when no hierarchy was found.
    pub layout: &'static str,
    /// Wall time of the pass.
    pub wall: Duration,
    /// CPU time of the pass (the collector thread's).
    pub cpu: Duration,
    /// CPU time spent counting sockets.
    pub socket_cpu: Duration,
    /// The socket budget ran out before every container was counted.
    pub socket_cut_short: bool,
    /// Containers whose socket figure is from an earlier pass.
    pub sockets_stale: u64,
    /// Containers whose processes are outside this agent's pid namespace (no `hostPID`).
    pub not_visible: u64,
    /// Kinds of access denied during this pass.
    pub denied: Vec<Access>,
    /// Why the pass found nothing, when it could not even find the cgroup hierarchy.
    pub error: Option<String>,
    /// Unix time the pass ended, seconds.
    pub ended_unix: f64,
}

/// Counters over the collector's lifetime.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Passes run.
    pub passes: u64,
    /// Passes whose socket counting the budget cut short.
    pub socket_cut_short: u64,
    /// CPU seconds of all passes.
    pub cpu_seconds: f64,
    /// Reads that failed for another reason than a vanished process or cgroup.
    pub read_errors: u64,
    /// Denials by kind of access.
    pub denied: BTreeMap<Access, u64>,
}

/// The latest pass, as served.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Containers sorted by cgroup path.
    pub containers: Vec<ContainerSample>,
    /// This pass's cost and health.
    pub pass: PassStats,
    /// Lifetime counters.
    pub totals: Totals,
    /// The growth window, for `/v1/top`.
    pub growth_window: Duration,
    /// Whether TCP states were collected.
    pub tcp_states: bool,
    /// The Prometheus text of this snapshot, rendered once per pass.
    pub text: String,
}
