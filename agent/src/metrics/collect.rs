//! One collection pass: find the container cgroups, read their controller files and their
//! processes, count sockets within the CPU budget, join identities, update growth, and return a
//! [`Snapshot`].
//!
//! Socket counting is the expensive part (one `readlinkat` per descriptor). It runs after
//! everything else, starting where the previous pass stopped, and stops once its CPU time passes
//! `socket_budget` — always finishing the container it started with, so a container with more
//! descriptors than the budget allows still gets counted. Containers it did not reach keep their
//! last count (marked stale) and come first next pass.

use super::cgroup::stats::StatReader;
use super::cgroup::{self, Layout};
use super::growth::Growth;
use super::identity::{IdentityPaths, Resolver};
use super::process::{Access, ProcError, ProcReader};
use super::snapshot::{ContainerSample, PassStats, Snapshot, Totals};
use super::sys::thread_cpu_time;
use super::tcp::{self, TcpStates};
use runnel_config::Config;
use runnel_index::Store;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Least time between two warnings about read errors.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(300);

/// What the collector reads and how much it may spend.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The host's cgroup filesystem (`metrics.cgroup_root`).
    pub cgroup_root: PathBuf,
    /// The host's proc filesystem (`metrics.proc_root`).
    pub proc_root: PathBuf,
    /// Count sockets (`metrics.sockets`).
    pub sockets: bool,
    /// CPU time allowed for socket counting per pass (`metrics.socket_budget`).
    pub socket_budget: Duration,
    /// Count TCP connections by state (`metrics.tcp_states`).
    pub tcp_states: bool,
    /// Window of the growth rates (`metrics.growth_window`).
    pub growth_window: Duration,
    /// Where container identity is read from.
    pub identity: IdentityPaths,
}

impl Settings {
    /// Settings from the agent's config: the `metrics:` section, and the log roots for identity.
    pub fn from_config(cfg: &Config) -> Settings {
        let m = &cfg.metrics;
        let docker = &cfg.inputs.docker;
        let cri = &cfg.inputs.cri;
        let identity = IdentityPaths::standard(
            docker.enabled.then(|| docker.root.clone()),
            cri.enabled.then(|| cri.root.clone()),
            m.runtime_state_dirs.clone(),
        );
        Settings {
            cgroup_root: m.cgroup_root.clone(),
            proc_root: m.proc_root.clone(),
            sockets: m.sockets,
            socket_budget: m.socket_budget,
            tcp_states: m.tcp_states,
            growth_window: m.growth_window,
            identity,
        }
    }
}

/// Per-process figures of one container, before they go into a sample.
struct ProcFigures {
    threads: Option<u64>,
    fds: Option<u64>,
}

/// The collector's state between passes.
pub struct Collector {
    settings: Settings,
    procs: ProcReader,
    stats: StatReader,
    resolver: Resolver,
    growth: Growth,
    socket_resume: Option<String>,
    last_sockets: HashMap<String, u64>,
    totals: Totals,
    warned: BTreeSet<Access>,
    /// Kinds of access denied during the current pass.
    denied_now: BTreeSet<Access>,
    warned_layout: bool,
    warned_not_visible: bool,
    last_error_log: Option<Instant>,
    buf: Vec<u8>,
}

impl Collector {
    /// A collector over `settings`, joining identities with `store`'s log sources when given.
    pub fn new(settings: Settings, store: Option<Arc<Store>>) -> Collector {
        Collector {
            procs: ProcReader::new(&settings.proc_root),
            stats: StatReader::default(),
            resolver: Resolver::new(settings.identity.clone(), store),
            growth: Growth::new(settings.growth_window),
            socket_resume: None,
            last_sockets: HashMap::new(),
            totals: Totals::default(),
            warned: BTreeSet::new(),
            denied_now: BTreeSet::new(),
            warned_layout: false,
            warned_not_visible: false,
            last_error_log: None,
            buf: Vec::with_capacity(4096),
            settings,
        }
    }

    /// Run one pass and return its snapshot (Prometheus text included).
    pub fn pass(&mut self) -> Snapshot {
        let (wall0, cpu0) = (Instant::now(), thread_cpu_time());
        let mut pass = PassStats::default();
        self.denied_now.clear();
        let (mut containers, mut pids) = (Vec::new(), Vec::new());
        match Layout::detect(&self.settings.cgroup_root) {
            Ok(layout) => {
                pass.layout = layout.version();
                self.warned_layout = false;
                (containers, pids) = self.read_containers(&layout, &mut pass);
            }
            Err(e) => {
                if !self.warned_layout {
                    tracing::warn!("container metrics: {e}");
                    self.warned_layout = true;
                }
                pass.error = Some(e);
            }
        }
        if self.settings.sockets {
            self.count_sockets(&mut containers, &pids, &mut pass);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        for c in &mut containers {
            let sockets = c.sockets.filter(|_| c.sockets_fresh);
            c.growth = self
                .growth
                .record(&c.cgroup.path, now, c.fds, c.threads, sockets);
        }
        let live: HashSet<&str> = containers.iter().map(|c| c.cgroup.path.as_str()).collect();
        self.growth.retain(&live);
        self.last_sockets.retain(|k, _| live.contains(k.as_str()));
        let live_ids: HashSet<&str> = containers.iter().map(|c| c.cgroup.id.as_str()).collect();
        self.resolver.retain(&live_ids);

        self.report_denials(&mut pass);
        self.report_errors();
        pass.wall = wall0.elapsed();
        pass.cpu = thread_cpu_time().saturating_sub(cpu0);
        pass.ended_unix = now;
        self.totals.passes += 1;
        self.totals.cpu_seconds += pass.cpu.as_secs_f64();
        self.totals.socket_cut_short += u64::from(pass.socket_cut_short);
        let mut snap = Snapshot {
            containers,
            pass,
            totals: self.totals.clone(),
            growth_window: self.settings.growth_window,
            tcp_states: self.settings.tcp_states,
            text: String::new(),
        };
        snap.text = super::render::render(&snap);
        snap
    }

    fn read_containers(
        &mut self,
        layout: &Layout,
        pass: &mut PassStats,
    ) -> (Vec<ContainerSample>, Vec<Vec<u32>>) {
        let (found, errors) = cgroup::discover(layout);
        self.stats.errors.extend(errors);
        self.resolver.begin_pass();
        let mut netns_cache: HashMap<String, TcpStates> = HashMap::new();
        let mut out = Vec::with_capacity(found.len());
        let mut out_pids = Vec::with_capacity(found.len());
        for cg in found {
            let procs = match cgroup::procs(layout, &cg.path, &mut self.buf) {
                Ok(p) => Some(p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.stats.errors.push(e.to_string());
                    None
                }
            };
            let stats = self.stats.read(layout, &cg.path);
            let mut visible_pids = Vec::new();
            let mut sample = ContainerSample {
                labels: self.resolver.labels(&cg.id, cg.pod_uid.as_deref()),
                processes: None,
                threads: stats.pids_current,
                threads_max: stats.pids_max,
                fds: None,
                sockets: None,
                sockets_fresh: false,
                tcp: None,
                growth: Default::default(),
                stats,
                cgroup: cg,
            };
            if let Some(procs) = procs {
                sample.processes = Some(procs.pids.len() as u64 + procs.invisible);
                // v2 lists hidden processes as 0; v1 leaves them out, which shows as an empty
                // list in a cgroup that still has tasks.
                let hidden = procs.invisible > 0
                    || (procs.pids.is_empty() && sample.stats.pids_current.unwrap_or(0) > 0);
                if hidden {
                    pass.not_visible += 1;
                    if procs.invisible == 0 {
                        sample.processes = None;
                    }
                } else {
                    let figures = self.read_processes(&procs.pids, sample.threads.is_none());
                    sample.fds = figures.fds;
                    if sample.threads.is_none() {
                        sample.threads = figures.threads;
                    }
                    if self.settings.tcp_states {
                        sample.tcp = self.tcp_states(&procs.pids, &mut netns_cache);
                    }
                    visible_pids = procs.pids;
                }
            }
            out.push(sample);
            out_pids.push(visible_pids);
        }
        if pass.not_visible > 0 && !self.warned_not_visible {
            tracing::warn!(
                containers = pass.not_visible,
                "container metrics: processes of {} containers are outside this agent's pid \
                 namespace, so their threads, file descriptors and sockets are not counted; run \
                 the agent with hostPID: true and metrics.proc_root at the host's /proc",
                pass.not_visible
            );
            self.warned_not_visible = true;
        }
        (out, out_pids)
    }

    /// Threads (when `want_threads`) and descriptors summed over `pids`. A process that exited
    /// meanwhile is left out; a denied or failed read makes the figure unknown (`None`) rather
    /// than an undercount.
    fn read_processes(&mut self, pids: &[u32], want_threads: bool) -> ProcFigures {
        let mut threads = want_threads.then_some(0u64);
        let mut fds = Some(0u64);
        for &pid in pids {
            if want_threads {
                let n = self.procs.threads(pid);
                self.add(&mut threads, n);
            }
            let n = self.procs.fds(pid);
            self.add(&mut fds, n);
        }
        ProcFigures { threads, fds }
    }

    /// Add one process's figure to `total`: a process that exited meanwhile adds nothing; any
    /// other failure makes the total unknown (and is counted by [`Self::failed`]).
    fn add(&mut self, total: &mut Option<u64>, figure: Result<u64, ProcError>) {
        match figure {
            Ok(n) => *total = total.map(|t| t + n),
            Err(ProcError::Gone) => {}
            Err(e) => {
                self.failed(e);
                *total = None;
            }
        }
    }

    /// Count a failed per-process read: a denial by kind, anything else as a read error.
    fn failed(&mut self, e: ProcError) {
        match e {
            ProcError::Denied(a) => {
                self.denied_now.insert(a);
                *self.totals.denied.entry(a).or_insert(0) += 1;
            }
            ProcError::Other(msg) => self.stats.errors.push(msg),
            ProcError::Gone => {}
        }
    }

    fn tcp_states(
        &mut self,
        pids: &[u32],
        cache: &mut HashMap<String, TcpStates>,
    ) -> Option<TcpStates> {
        for &pid in pids {
            let ns = match self.procs.netns(pid) {
                Ok(ns) => ns,
                Err(ProcError::Gone) => continue,
                Err(e) => {
                    self.failed(e);
                    return None;
                }
            };
            if let Some(s) = cache.get(&ns) {
                return Some(*s);
            }
            let mut states = TcpStates::default();
            for (table, counts) in [("tcp", &mut states.v4), ("tcp6", &mut states.v6)] {
                match self.procs.net_table(pid, table) {
                    Ok(text) => {
                        let (c, bad) = tcp::count_states(text);
                        *counts = c;
                        if bad > 0 {
                            self.stats
                                .errors
                                .push(format!("{pid}/net/{table}: {bad} unparsable lines"));
                        }
                    }
                    // No IPv6 in the namespace: the table is absent.
                    Err(ProcError::Gone) if table == "tcp6" => {}
                    Err(ProcError::Gone) => break,
                    Err(e) => {
                        self.failed(e);
                        return None;
                    }
                }
            }
            cache.insert(ns, states);
            return Some(states);
        }
        None
    }

    fn count_sockets(
        &mut self,
        containers: &mut [ContainerSample],
        pids: &[Vec<u32>],
        pass: &mut PassStats,
    ) {
        let n = containers.len();
        let start = self
            .socket_resume
            .take()
            .and_then(|p| containers.iter().position(|c| c.cgroup.path >= p))
            .unwrap_or(0);
        let cpu0 = thread_cpu_time();
        for k in 0..n {
            let i = (start + k) % n;
            let c = &mut containers[i];
            let spent = thread_cpu_time().saturating_sub(cpu0);
            if k > 0 && spent >= self.settings.socket_budget {
                pass.socket_cut_short = true;
                self.socket_resume = Some(c.cgroup.path.clone());
                break;
            }
            if c.fds.is_none() {
                continue; // processes hidden or unreadable: nothing to count
            }
            let mut total = Some(0u64);
            for &pid in &pids[i] {
                let n = self.procs.sockets(pid).map(|links| links.matching);
                self.add(&mut total, n);
                if total.is_none() {
                    break;
                }
            }
            if let Some(t) = total {
                c.sockets = Some(t);
                c.sockets_fresh = true;
                self.last_sockets.insert(c.cgroup.path.clone(), t);
            }
        }
        pass.socket_cpu = thread_cpu_time().saturating_sub(cpu0);
        for c in containers.iter_mut().filter(|c| !c.sockets_fresh) {
            c.sockets = self.last_sockets.get(&c.cgroup.path).copied();
            pass.sockets_stale += u64::from(c.sockets.is_some());
        }
    }

    fn report_denials(&mut self, pass: &mut PassStats) {
        for a in &self.denied_now {
            if self.warned.insert(*a) {
                tracing::warn!(
                    access = a.as_str(),
                    "container metrics degraded: {} (counted in runnel_metrics_access_denied_total)",
                    a.remedy()
                );
            }
        }
        pass.denied = self.denied_now.iter().copied().collect();
    }

    fn report_errors(&mut self) {
        let errors = std::mem::take(&mut self.stats.errors);
        if errors.is_empty() {
            return;
        }
        self.totals.read_errors += errors.len() as u64;
        let due = self
            .last_error_log
            .is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL);
        if due {
            self.last_error_log = Some(Instant::now());
            tracing::warn!(
                errors = errors.len(),
                first = %errors[0],
                "container metrics: read errors in this pass (counted in \
                 runnel_metrics_read_errors_total; next warning in 5 minutes at the earliest)"
            );
        }
    }
}
