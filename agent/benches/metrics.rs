//! Cost of one container-metrics pass over 200 containers × 10 processes × 100 descriptors
//! (30 of them sockets), on a fixture tree and on the live `/proc` of 2000 processes this bench
//! forks, beside cAdvisor's method — list `/proc/<pid>/fd` and `readlink` every entry — on the
//! same processes in the same run. Figures are CPU time of the measuring thread (median of the
//! runs), so other load on the machine does not inflate them.
//!
//! `cargo bench -p runnel-agent --bench metrics`; sizes from `RUNNEL_BENCH_CONTAINERS`,
//! `RUNNEL_BENCH_PROCS`, `RUNNEL_BENCH_FDS`.

use runnel_agent::metrics::identity::IdentityPaths;
use runnel_agent::metrics::sys::thread_cpu_time;
use runnel_agent::metrics::{Collector, Settings};
use std::os::fd::IntoRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

const RUNS: usize = 7;
/// The target for one pass.
const TARGET_MS: f64 = 20.0;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Shape {
    containers: usize,
    procs: usize,
    fds: usize,
    sockets: usize,
}

fn container_id(i: usize) -> String {
    format!("{i:016x}").repeat(4)
}

/// A cgroup v2 tree (systemd driver, containerd) whose container `i` lists `pids[i]`.
fn write_cgroups(root: &Path, pids: &[Vec<u32>]) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
    for (i, list) in pids.iter().enumerate() {
        let uid = format!("{:08x}_aaaa_4bbb_8ccc_{:012x}", i, i);
        let dir = root.join(format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/\
             cri-containerd-{}.scope",
            container_id(i)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let procs: String = list.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(dir.join("cgroup.procs"), procs).unwrap();
        std::fs::write(
            dir.join("cpu.stat"),
            format!("usage_usec {}\nuser_usec 1\nsystem_usec 1\n", 1000 + i),
        )
        .unwrap();
        std::fs::write(dir.join("memory.current"), "73400320\n").unwrap();
        std::fs::write(
            dir.join("memory.stat"),
            "anon 41943040\nfile 31457280\nkernel 1531904\nshmem 0\ninactive_anon 0\n\
             active_anon 4096\ninactive_file 10485760\nactive_file 20971520\nunevictable 0\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("io.stat"),
            "8:0 rbytes=1048576 wbytes=2097152 rios=10 wios=20 dbytes=0 dios=0\n",
        )
        .unwrap();
        std::fs::write(dir.join("pids.current"), format!("{}\n", list.len())).unwrap();
        std::fs::write(dir.join("pids.max"), "max\n").unwrap();
    }
}

/// A proc tree with `status` and `fd/` symlinks for every pid.
fn write_procs(root: &Path, pids: &[Vec<u32>], shape: &Shape) {
    for pid in pids.iter().flatten() {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(dir.join("fd")).unwrap();
        std::fs::write(
            dir.join("status"),
            format!("Name:\tapp\nPid:\t{pid}\nThreads:\t1\n"),
        )
        .unwrap();
        for fd in 0..shape.fds {
            let target = if fd >= shape.fds - shape.sockets {
                format!("socket:[{}]", 100_000 + fd)
            } else {
                "/dev/null".to_string()
            };
            std::os::unix::fs::symlink(target, dir.join("fd").join(fd.to_string())).unwrap();
        }
    }
}

fn settings(cgroup_root: &Path, proc_root: &Path, sockets: bool, budget: Duration) -> Settings {
    Settings {
        cgroup_root: cgroup_root.to_path_buf(),
        proc_root: proc_root.to_path_buf(),
        sockets,
        socket_budget: budget,
        tcp_states: false,
        growth_window: Duration::from_secs(3600),
        identity: IdentityPaths::default(),
    }
}

struct Figure {
    cpu_ms: f64,
    wall_ms: f64,
    fds: u64,
    sockets: u64,
    stale: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median cost of a steady-state pass (one warm-up pass first).
fn runnel_pass(s: Settings) -> Figure {
    let mut c = Collector::new(s, None);
    c.pass();
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..RUNS {
        let (w0, c0) = (Instant::now(), thread_cpu_time());
        let snap = c.pass();
        cpu.push((thread_cpu_time() - c0).as_secs_f64() * 1e3);
        wall.push(w0.elapsed().as_secs_f64() * 1e3);
        last = Some(snap);
    }
    let snap = last.unwrap();
    Figure {
        cpu_ms: median(cpu),
        wall_ms: median(wall),
        fds: snap.containers.iter().filter_map(|c| c.fds).sum(),
        sockets: snap
            .containers
            .iter()
            .filter(|c| c.sockets_fresh)
            .filter_map(|c| c.sockets)
            .sum(),
        stale: snap.pass.sockets_stale,
    }
}

/// cAdvisor's way: list every `/proc/<pid>/fd` and `readlink` each entry by its full path.
fn cadvisor_pass(proc_root: &Path, pids: &[Vec<u32>]) -> Figure {
    let one = || {
        let (mut fds, mut sockets) = (0u64, 0u64);
        for pid in pids.iter().flatten() {
            let dir = proc_root.join(pid.to_string()).join("fd");
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                fds += 1;
                if let Ok(t) = std::fs::read_link(e.path()) {
                    sockets += u64::from(t.as_os_str().as_encoded_bytes().starts_with(b"socket:["));
                }
            }
        }
        (fds, sockets)
    };
    one();
    let (mut cpu, mut wall, mut last) = (Vec::new(), Vec::new(), (0, 0));
    for _ in 0..RUNS {
        let (w0, c0) = (Instant::now(), thread_cpu_time());
        last = one();
        cpu.push((thread_cpu_time() - c0).as_secs_f64() * 1e3);
        wall.push(w0.elapsed().as_secs_f64() * 1e3);
    }
    Figure {
        cpu_ms: median(cpu),
        wall_ms: median(wall),
        fds: last.0,
        sockets: last.1,
        stale: 0,
    }
}

/// Fork `n` children that hold the descriptors open here (`fds` in all, the last `sockets` of
/// them sockets) and pause until killed.
fn fork_holders(n: usize, shape: &Shape) -> Vec<u32> {
    let mut opened = Vec::new();
    // 0, 1 and 2 are open already.
    for i in 3..shape.fds {
        let fd = if i >= shape.fds - shape.sockets {
            std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .into_raw_fd()
        } else {
            std::fs::File::open("/dev/null").unwrap().into_raw_fd()
        };
        opened.push(fd);
    }
    let mut pids = Vec::with_capacity(n);
    for _ in 0..n {
        // SAFETY: the child only calls async-signal-safe pause() until it is killed.
        let pid = unsafe { libc::fork() };
        match pid {
            0 => loop {
                unsafe { libc::pause() };
            },
            p if p > 0 => pids.push(p as u32),
            _ => panic!("fork failed: {}", std::io::Error::last_os_error()),
        }
    }
    for fd in opened {
        unsafe { libc::close(fd) };
    }
    pids
}

fn kill_all(pids: &[u32]) {
    for &p in pids {
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
    }
    for &p in pids {
        unsafe { libc::waitpid(p as i32, std::ptr::null_mut(), 0) };
    }
}

fn row(name: &str, f: &Figure, yardstick: &Figure) {
    println!(
        "{name:<46} {:>9.2} {:>9.2} {:>9} {:>8} {:>6} {:>9.1}x",
        f.cpu_ms,
        f.wall_ms,
        f.fds,
        f.sockets,
        f.stale,
        yardstick.cpu_ms / f.cpu_ms.max(1e-9)
    );
}

/// The runs over one tree: cAdvisor's method, then a pass with sockets off, with the default
/// budget, and with every socket counted.
fn table(title: &str, cgroups: &Path, procs: &Path, pids: &[Vec<u32>]) -> [Figure; 4] {
    println!("\n{title}");
    println!(
        "{:<46} {:>9} {:>9} {:>9} {:>8} {:>6} {:>10}",
        "method", "cpu ms", "wall ms", "fds", "sockets", "stale", "vs cadv"
    );
    let cadvisor = cadvisor_pass(procs, pids);
    let no_sockets = runnel_pass(settings(cgroups, procs, false, Duration::ZERO));
    let budget = runnel_conf_budget();
    let budgeted = runnel_pass(settings(cgroups, procs, true, budget));
    let full = runnel_pass(settings(cgroups, procs, true, Duration::from_secs(60)));
    row("cAdvisor: list + readlink every fd", &cadvisor, &cadvisor);
    row("runnel pass, sockets off", &no_sockets, &cadvisor);
    row(
        &format!("runnel pass, sockets on, budget {} ms", budget.as_millis()),
        &budgeted,
        &cadvisor,
    );
    row("runnel pass, sockets on, no budget", &full, &cadvisor);
    [cadvisor, no_sockets, budgeted, full]
}

fn runnel_conf_budget() -> Duration {
    runnel_config::Config::default().metrics.socket_budget
}

fn main() {
    let shape = Shape {
        containers: env("RUNNEL_BENCH_CONTAINERS", 200),
        procs: env("RUNNEL_BENCH_PROCS", 10),
        fds: env("RUNNEL_BENCH_FDS", 100),
        sockets: env("RUNNEL_BENCH_FDS", 100) * 3 / 10,
    };
    println!(
        "container metrics pass: {} containers x {} processes x {} fds ({} sockets each), \
         median of {RUNS} passes, CPU of the measuring thread",
        shape.containers, shape.procs, shape.fds, shape.sockets
    );
    let dir = tempfile::Builder::new()
        .prefix("runnel-metrics-bench-")
        .tempdir()
        .unwrap();

    // Fixture tree: made-up pids, files on disk.
    let fake: Vec<Vec<u32>> = (0..shape.containers)
        .map(|c| {
            (0..shape.procs)
                .map(|p| (10_000 + c * shape.procs + p) as u32)
                .collect()
        })
        .collect();
    let fixture_cg = dir.path().join("fixture-cgroup");
    let fixture_proc = dir.path().join("fixture-proc");
    write_cgroups(&fixture_cg, &fake);
    write_procs(&fixture_proc, &fake, &shape);
    let fixture = table(
        "fixture tree (files on disk; fd counts by listing, not procfs st_size):",
        &fixture_cg,
        &fixture_proc,
        &fake,
    );

    // Live /proc: real processes holding real descriptors.
    let live = fork_holders(shape.containers * shape.procs, &shape);
    let grouped: Vec<Vec<u32>> = live.chunks(shape.procs).map(|c| c.to_vec()).collect();
    let live_cg = dir.path().join("live-cgroup");
    write_cgroups(&live_cg, &grouped);
    let live_fig = table(
        &format!("live /proc ({} forked processes):", live.len()),
        &live_cg,
        Path::new("/proc"),
        &grouped,
    );
    kill_all(&live);

    println!();
    let budget = runnel_conf_budget().as_millis();
    let [cadvisor, off, on, full] = &live_fig;
    let verdict = if off.cpu_ms <= TARGET_MS {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "target: a pass over the live /proc <= {TARGET_MS} ms CPU, socket counting capped by its \
         own budget: {:.2} ms {verdict}; with the default socket budget ({budget} ms) {:.2} ms",
        off.cpu_ms, on.cpu_ms
    );
    println!(
        "  within the budget a pass counted {} of {} sockets; the other containers keep their \
         last count and come first next pass. Counting every socket: {:.2} ms, cAdvisor's method \
         {:.2} ms.",
        on.sockets, full.sockets, full.cpu_ms, cadvisor.cpu_ms
    );
    let [_, foff, ..] = &fixture;
    println!(
        "  on the fixture tree (plain files: descriptors counted by listing, no procfs st_size) \
         a pass costs {:.2} ms.",
        foff.cpu_ms
    );
}
