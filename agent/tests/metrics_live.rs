//! The collector against the live `/proc` of child processes this test starts with known numbers
//! of threads, open files and sockets: exact per-process counts, the new counts after some are
//! closed, the aggregation through `runnel agent`'s `/metrics` (parsed by Python's
//! `prometheus_client`, an independent parser) and `/v1/top`, and what happens without the
//! rights to read other users' descriptors.

mod support;

use runnel_agent::metrics::process::ProcReader;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;
use support::eventually;

/// A child that opens files and sockets and starts threads on command, then answers `ok`.
const HOLDER: &str = r#"
import os, socket, sys, threading
os.closerange(3, 65536)  # descriptors inherited from the test harness (cargo's jobserver)
files, socks, threads = [], [], []
def run(ev):
    ev.wait()
for line in sys.stdin:
    cmd, n = line.split()
    for _ in range(int(n)):
        if cmd == "files": files.append(open("/dev/null"))
        elif cmd == "socks": socks.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        elif cmd == "threads":
            ev = threading.Event(); t = threading.Thread(target=run, args=(ev,)); t.start()
            threads.append((ev, t))
        elif cmd == "close_files": files.pop().close()
        elif cmd == "close_socks": socks.pop().close()
        elif cmd == "stop_threads":
            ev, t = threads.pop(); ev.set(); t.join()
    sys.stdout.write("ok\n"); sys.stdout.flush()
"#;

fn python() -> String {
    std::env::var("RUNNEL_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A running holder process.
struct Holder {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn spawn() -> Holder {
        let mut child = Command::new(python())
            .args(["-I", "-S", "-c", HOLDER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} for the live metrics test: {e}; install Python 3 \
                     (scripts/test.sh sets RUNNEL_PYTHON to its venv)",
                    python()
                )
            });
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut h = Holder {
            child,
            stdin,
            stdout,
        };
        h.cmd("files 0");
        h
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `cmd n` and wait until it is done.
    fn cmd(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ok\n", "holder answered {line:?} to {cmd:?}");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Descriptors and sockets of `pid` counted the plain way (list and readlink every fd), as an
/// independent reference for the collector's reads.
fn reference_counts(pid: u32) -> (u64, u64) {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let (mut fds, mut sockets) = (0, 0);
    for e in std::fs::read_dir(&dir).unwrap() {
        let target = std::fs::read_link(e.unwrap().path()).unwrap();
        fds += 1;
        sockets += u64::from(target.to_string_lossy().starts_with("socket:["));
    }
    (fds, sockets)
}

#[test]
fn live_process_counts_are_exact_and_follow_closes() {
    let mut h = Holder::spawn();
    let pid = h.pid();
    let mut r = ProcReader::new(Path::new("/proc"));
    // Only stdin, stdout and stderr to begin with.
    assert_eq!(r.fds(pid).unwrap(), 3);
    assert_eq!(r.sockets(pid).unwrap().matching, 0);
    assert_eq!(r.threads(pid).unwrap(), 1);

    h.cmd("files 5");
    h.cmd("socks 4");
    h.cmd("threads 3");
    assert_eq!(r.fds(pid).unwrap(), 3 + 5 + 4);
    let links = r.sockets(pid).unwrap();
    assert_eq!((links.entries, links.matching), (12, 4));
    assert_eq!(r.threads(pid).unwrap(), 4);
    assert_eq!(reference_counts(pid), (12, 4));

    h.cmd("close_files 2");
    h.cmd("close_socks 3");
    h.cmd("stop_threads 2");
    // close() is synchronous: the descriptors are gone when the holder answers.
    assert_eq!(r.fds(pid).unwrap(), 3 + 3 + 1);
    assert_eq!(r.sockets(pid).unwrap().matching, 1);
    assert_eq!(reference_counts(pid), (7, 1));
    // A joined Python thread has finished its work but the kernel task may linger a moment
    // before it leaves /proc/<pid>/task: wait for it, with a deadline.
    let mut threads = 0;
    let gone = eventually(Duration::from_secs(30), || {
        threads = r.threads(pid).unwrap();
        threads == 2
    });
    assert!(gone, "threads did not drop to 2 within 10 s: {threads}");
}

const UID: &str = "5b1e2c3d-4f5a-4b6c-8d7e-9f0a1b2c3d4e";
const CID: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A v2 cgroup tree with one containerd container whose `cgroup.procs` lists `pids`, no pids
/// controller (threads come from `/proc/<pid>/status`), and the kubelet's log names for identity.
fn live_node(pids: &[u32]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("runnel-metrics-")
        .tempdir()
        .unwrap();
    let root = dir.path().join("cgroup");
    let uid_ = UID.replace('-', "_");
    let cg = root.join(format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/\
         cri-containerd-{CID}.scope"
    ));
    std::fs::create_dir_all(&cg).unwrap();
    std::fs::write(root.join("cgroup.controllers"), "cpu io memory\n").unwrap();
    let procs: String = pids.iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(cg.join("cgroup.procs"), procs).unwrap();
    std::fs::write(
        cg.join("cpu.stat"),
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
    )
    .unwrap();
    std::fs::write(cg.join("memory.current"), "73400320\n").unwrap();
    std::fs::write(
        cg.join("memory.stat"),
        "anon 41943040\nfile 31457280\ninactive_file 10485760\nactive_file 20971520\n",
    )
    .unwrap();
    std::fs::write(
        cg.join("io.stat"),
        "8:0 rbytes=1048576 wbytes=2097152 rios=10 wios=20 dbytes=0 dios=0\n",
    )
    .unwrap();
    let pods = dir.path().join("pods");
    std::fs::create_dir_all(pods.join(format!("shop_cart-1_{UID}/cart"))).unwrap();
    let links = dir.path().join("containers");
    std::fs::create_dir_all(&links).unwrap();
    std::fs::write(links.join(format!("cart-1_shop_cart-{CID}.log")), "").unwrap();
    (dir, root)
}

fn agent_config(dir: &Path, cgroup_root: &Path) -> PathBuf {
    let path = dir.join("runnel.yaml");
    let text = format!(
        "data_dir: {data}\ninputs:\n  docker: {{ enabled: false }}\n  cri: {{ enabled: true, root: {pods} }}\n\
         http: {{ listen: \"127.0.0.1:0\" }}\n\
         metrics:\n  enabled: true\n  cgroup_root: {cg}\n  proc_root: /proc\n  interval: 200ms\n  \
         tcp_states: true\n  growth_window: 2s\n  runtime_state_dirs: []\n",
        data = dir.join("data").display(),
        pods = dir.join("pods").display(),
        cg = cgroup_root.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `/metrics` parsed by `prometheus_client`: (family, sample name, labels, value) per sample.
type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

fn parse_with_prometheus_client(text: &str) -> Samples {
    const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(python())
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse /metrics (is it installed? scripts/test.sh puts it \
         in ./.venv and sets RUNNEL_PYTHON): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

#[test]
fn metrics_endpoint_aggregates_live_pids_of_a_fixture_cgroup() {
    let (mut a, mut b) = (Holder::spawn(), Holder::spawn());
    a.cmd("files 2");
    a.cmd("socks 3");
    a.cmd("threads 2");
    b.cmd("files 1");
    b.cmd("socks 1");
    let (dir, cgroup_root) = live_node(&[a.pid(), b.pid()]);
    let agent = support::Agent::start(&agent_config(dir.path(), &cgroup_root));
    let who = [
        ("namespace", "shop"),
        ("pod", "cart-1"),
        ("container", "cart"),
    ];
    let scrape = || parse_with_prometheus_client(&agent.get("/metrics").1);
    let want = |samples: &Samples, name: &str| sample(samples, name, &who);

    let mut samples = Samples::new();
    let seen = eventually(Duration::from_secs(30), || {
        samples = scrape();
        want(&samples, "container_sockets") == Some(4.0)
    });
    assert!(
        seen,
        "no container_sockets 4 for shop/cart-1/cart in {samples:?}"
    );
    assert_eq!(want(&samples, "container_processes"), Some(2.0));
    assert_eq!(want(&samples, "container_threads"), Some(3.0 + 1.0));
    assert_eq!(
        want(&samples, "container_file_descriptors"),
        Some(8.0 + 5.0)
    );
    assert_eq!(
        want(&samples, "container_cpu_usage_seconds_total"),
        Some(2.5)
    );
    assert_eq!(
        want(&samples, "container_memory_working_set_bytes"),
        Some((73400320 - 10485760) as f64)
    );
    assert_eq!(want(&samples, "container_memory_rss"), Some(41943040.0));
    assert_eq!(
        want(&samples, "container_fs_reads_bytes_total"),
        Some(1048576.0)
    );
    assert_eq!(
        want(&samples, "container_fs_writes_bytes_total"),
        Some(2097152.0)
    );
    let id = sample(&samples, "container_threads", &[("id", &format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope",
        UID.replace('-', "_")
    ))]);
    assert_eq!(id, Some(4.0), "the id label is the cgroup path");
    // Both processes share the test's network namespace: its TCP table is read once.
    assert!(sample(
        &samples,
        "container_network_tcp_usage_total",
        &[("tcp_state", "listen")]
    )
    .is_some());
    assert_eq!(
        sample(&samples, "runnel_metrics_read_errors_total", &[]),
        Some(0.0)
    );

    a.cmd("close_socks 2");
    a.cmd("close_files 1");
    a.cmd("stop_threads 1");
    // Every figure is waited for: a collector pass may fall between the closes, and a stopped
    // thread's task leaves /proc a moment after the holder answers.
    let settled = eventually(Duration::from_secs(30), || {
        samples = scrape();
        want(&samples, "container_sockets") == Some(2.0)
            && want(&samples, "container_file_descriptors") == Some(5.0 + 5.0)
            && want(&samples, "container_threads") == Some(2.0 + 1.0)
    });
    assert!(
        settled,
        "sockets 2, fds 10, threads 3 not reached within 10 s: {samples:?}"
    );

    // Leaks: fds grow steadily (5 every 100 ms, the pace of a leak, not a wait for a result);
    // within the 2 s window the growth gauge and /v1/top show it. Leaking goes on until they
    // do, with a deadline, so a collector held back by a loaded machine is waited for.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut leaked = 0;
    let (growth, top) = loop {
        a.cmd("files 5");
        leaked += 1;
        std::thread::sleep(Duration::from_millis(100));
        if leaked < 12 {
            continue;
        }
        let growth = want(
            &scrape(),
            "runnel_container_file_descriptors_growth_per_hour",
        );
        let (code, body) = agent.get("/v1/top?by=growth&limit=5");
        assert_eq!(code, 200, "{body}");
        let top: serde_json::Value = serde_json::from_str(&body).unwrap();
        let first = &top["containers"][0];
        let shown = growth.is_some_and(|g| g > 3600.0)
            && first["pod"] == "cart-1"
            && first["growth_per_hour"]["fds"]
                .as_f64()
                .is_some_and(|g| g > 3600.0);
        if shown || std::time::Instant::now() > deadline {
            break (growth, top);
        }
    };
    assert!(
        growth.is_some_and(|g| g > 3600.0),
        "fd growth per hour {growth:?}"
    );
    let first = &top["containers"][0];
    assert_eq!(first["pod"], "cart-1", "{top}");
    assert!(
        first["growth_per_hour"]["fds"]
            .as_f64()
            .is_some_and(|g| g > 3600.0),
        "{top}"
    );
    let (code, body) = agent.get("/v1/top?by=sockets");
    assert_eq!(code, 200);
    assert!(body.contains("\"container_id\": \"e3b0c442"), "{body}");
    let (code, body) = agent.get("/v1/top?by=memory");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("fds, threads, sockets, growth"), "{body}");
    agent.stop();
}

#[test]
fn missing_rights_degrade_what_is_collected_and_say_so_once() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let mut holder = Holder::spawn();
    holder.cmd("socks 2");
    // As root, run the agent as nobody against our (root-owned) child; otherwise pid 1 is
    // another user's process already.
    let (target, run_as_nobody) = if euid == 0 {
        (holder.pid(), true)
    } else {
        (1, false)
    };
    let (dir, cgroup_root) = live_node(&[target]);
    for p in [dir.path().to_path_buf(), dir.path().join("data")] {
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    let config = agent_config(dir.path(), &cgroup_root);
    let stderr_path = dir.path().join("agent.stderr");
    let mut cmd = Command::new(support::runnel_bin());
    cmd.args(["agent", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    if run_as_nobody {
        cmd.uid(65534).gid(65534);
    }
    let mut child = cmd.spawn().unwrap();
    let lines = support::stdout_lines(&mut child);
    let addr = support::listening_address(&lines).expect("agent printed no listening address");
    let get = |path: &str| -> String {
        ureq::get(&format!("http://{addr}{path}"))
            .call()
            .map(|r| r.into_string().unwrap())
            .unwrap_or_default()
    };
    let mut samples = Samples::new();
    let degraded = eventually(Duration::from_secs(30), || {
        samples = parse_with_prometheus_client(&get("/metrics"));
        sample(&samples, "runnel_metrics_passes_total", &[]).unwrap_or(0.0) >= 4.0
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(degraded, "fewer than 4 passes: {samples:?}");
    let denied = |what: &str| {
        sample(
            &samples,
            "runnel_metrics_access_denied_total",
            &[("what", what)],
        )
        .unwrap_or(0.0)
    };
    let flagged = |what: &str| sample(&samples, "runnel_metrics_degraded", &[("what", what)]);
    assert!(
        denied("fd_list") + denied("fd_readlink") >= 4.0,
        "denials counted every pass: {samples:?}"
    );
    assert!(
        flagged("fd_list") == Some(1.0) || flagged("fd_readlink") == Some(1.0),
        "{samples:?}"
    );
    let who = [("pod", "cart-1")];
    assert_eq!(
        sample(&samples, "container_sockets", &who),
        None,
        "no socket figure when the links cannot be read"
    );
    assert_eq!(
        sample(&samples, "container_processes", &who),
        Some(1.0),
        "what can be read still is"
    );
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    let warnings = log.matches("container metrics degraded").count();
    assert!(
        (1..=2).contains(&warnings),
        "one line per kind of denial, not one per pass: {warnings} in\n{log}"
    );
    assert!(log.contains("CAP_"), "the line names the capability: {log}");
}
