//! The emulated containers: which runtime writes each one's log, how fast, and how its files
//! rotate. One thread per container writes its lines the way the runtime does (one `write`
//! per fragment, `O_APPEND`) and rotates by one of the three schemes of [`crate::rotation`].

use crate::lines;
use crate::rng::Rng;
use crate::rotation::{After, Rotator, Scheme};
use crate::stop::Stop;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The container runtime whose log format a container writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Docker json-file under the Docker root.
    Docker,
    /// CRI lines under the kubelet's pod-log root.
    Cri,
}

/// How a container's writing rate varies.
#[derive(Debug, Clone, Copy)]
pub enum Profile {
    /// About the same rate all the time (lines per second).
    Steady(f64),
    /// A slow trickle, then `burst` lines at once every `every`.
    Bursty {
        /// Lines in one burst.
        burst: u64,
        /// Time between bursts.
        every: Duration,
    },
    /// The rate swings between nearly nothing and `peak` lines per second over `period`.
    Wave {
        /// Highest rate.
        peak: f64,
        /// Length of one swing.
        period: Duration,
    },
}

/// One emulated container.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Short name that starts each of its messages (`d03`, `c01`).
    pub name: String,
    /// Whose format it writes.
    pub runtime: Runtime,
    /// How its files rotate.
    pub scheme: Scheme,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name in the pod.
    pub container: String,
    /// The live log file.
    pub live: PathBuf,
    /// The live file is rotated once it reaches this size.
    pub max_bytes: u64,
    /// Rotated files kept (older ones are deleted, as the runtime does).
    pub keep: usize,
    /// Writing rate.
    pub profile: Profile,
}

/// What a container wrote.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Lines written (sequence numbers `0..lines`).
    pub lines: u64,
    /// Rotations done.
    pub rotations: u64,
    /// Sequence ranges (inclusive) of rotated files deleted because more than `keep` existed.
    pub deleted: Vec<(u64, u64)>,
}

/// A 64-hex Docker container id for container number `n` of run `seed`.
fn docker_id(seed: u64, n: usize) -> String {
    let mut r = Rng::fork(seed, &format!("id{n}"));
    (0..4).map(|_| format!("{:016x}", r.next_u64())).collect()
}

/// The containers of a run: `docker` json-file ones (Docker rename or copytruncate, turn about)
/// and `cri` ones (kubelet rename + gzip or copytruncate), with rates scaled by `scale`.
pub fn plan(
    seed: u64,
    docker: usize,
    cri: usize,
    scale: f64,
    docker_root: &Path,
    cri_root: &Path,
) -> Vec<Spec> {
    let mut r = Rng::fork(seed, "plan");
    let mut specs = Vec::new();
    for i in 0..docker + cri {
        let runtime = if i < docker {
            Runtime::Docker
        } else {
            Runtime::Cri
        };
        let n = if i < docker { i } else { i - docker };
        let (name, scheme) = match runtime {
            Runtime::Docker if n % 2 == 0 => (format!("d{n:02}"), Scheme::DockerRename),
            Runtime::Docker => (format!("d{n:02}"), Scheme::CopyTruncate),
            Runtime::Cri if n % 2 == 0 => (format!("c{n:02}"), Scheme::KubeletGzip),
            Runtime::Cri => (format!("c{n:02}"), Scheme::CopyTruncate),
        };
        let pod = format!("{name}-pod");
        let live = match runtime {
            Runtime::Docker => {
                let id = docker_id(seed, i);
                docker_root.join(&id).join(format!("{id}-json.log"))
            }
            Runtime::Cri => cri_root
                .join(format!("chaos_{pod}_uid-{pod}"))
                .join("app")
                .join("0.log"),
        };
        let profile = match r.range(0, 2) {
            0 => Profile::Steady(r.range(10, 100) as f64 / 10.0 * scale),
            1 => Profile::Bursty {
                burst: ((r.range(30, 200) as f64 * scale) as u64).max(1),
                every: r.millis(5_000, 20_000),
            },
            _ => Profile::Wave {
                peak: r.range(50, 200) as f64 / 10.0 * scale,
                period: r.millis(10_000, 40_000),
            },
        };
        specs.push(Spec {
            name,
            runtime,
            scheme,
            namespace: "chaos".into(),
            pod,
            container: "app".into(),
            live,
            max_bytes: r.range(24, 96) * 1024,
            keep: 4,
            profile,
        });
    }
    specs
}

/// Create the container's directory (and Docker's `config.v2.json` with Kubernetes labels).
pub fn prepare(spec: &Spec) -> std::io::Result<()> {
    let dir = spec.live.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    if spec.runtime == Runtime::Docker {
        let id = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let cfg = serde_json::json!({
            "ID": id,
            "Name": format!("/k8s_{}_{}_{}_uid-{}_0", spec.container, spec.pod, spec.namespace, spec.pod),
            "Config": { "Image": "registry.local/chaos:1", "Labels": {
                "io.kubernetes.pod.namespace": spec.namespace,
                "io.kubernetes.pod.name": spec.pod,
                "io.kubernetes.container.name": spec.container,
                "io.kubernetes.pod.uid": format!("uid-{}", spec.pod),
            }},
            "Image": "sha256:c0ffee",
        });
        std::fs::write(dir.join("config.v2.json"), cfg.to_string())?;
    }
    Ok(())
}

/// When the next line is due, given the previous due time.
struct Pace {
    profile: Profile,
    start: Instant,
    next: Instant,
    in_burst: u64,
    next_burst: Instant,
}

impl Pace {
    fn new(profile: Profile, r: &mut Rng) -> Pace {
        let now = Instant::now();
        Pace {
            profile,
            start: now,
            next: now,
            in_burst: 0,
            next_burst: now + r.millis(500, 5_000),
        }
    }

    fn after_line(&mut self) -> Instant {
        let gap = |rate: f64| Duration::from_secs_f64(1.0 / rate.max(0.2));
        match self.profile {
            Profile::Steady(rate) => self.next += gap(rate),
            Profile::Bursty { burst, every } => {
                if self.in_burst > 0 {
                    self.in_burst -= 1;
                } else if Instant::now() >= self.next_burst {
                    self.in_burst = burst;
                    self.next_burst += every;
                } else {
                    self.next += gap(0.5);
                }
            }
            Profile::Wave { peak, period } => {
                let phase = (self.next - self.start).as_secs_f64() / period.as_secs_f64();
                let tri = 1.0 - (2.0 * (phase.fract() - 0.5)).abs();
                self.next += gap(0.3 + peak * tri);
            }
        }
        // Never schedule in the past by more than a moment (a stalled writer does not
        // make up for lost time at once).
        let now = Instant::now();
        if self.next + Duration::from_secs(1) < now {
            self.next = now;
        }
        self.next
    }
}

/// Per-line timestamps that strictly increase within a container.
struct Clock(i64);

impl Clock {
    fn tick(&mut self) -> String {
        self.0 = crate::timefmt::now_ns().max(self.0 + 1_000);
        crate::timefmt::rfc3339_nano(self.0)
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Write `spec`'s lines until `stop`, rotating its files; `count` follows the lines written.
pub fn write(seed: u64, spec: &Spec, stop: &Stop, count: &AtomicU64) -> Result<Written, String> {
    let io = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", spec.live.display());
    let mut r = Rng::fork(seed, &format!("writer-{}", spec.name));
    let mut pace = Pace::new(spec.profile, &mut r);
    let mut clock = Clock(0);
    let mut rot = Rotator::new(spec.scheme, &spec.live, spec.keep);
    let mut file = open_append(&spec.live).map_err(|e| io("open", e))?;
    let mut size = 0u64;
    let mut out = Written::default();
    let mut seq = 0u64;
    while !stop.is_raised() {
        let due = pace.after_line();
        let wait = due.saturating_duration_since(Instant::now());
        if !wait.is_zero() && stop.pause(wait) {
            break;
        }
        let msg = lines::message(seed, &spec.name, seq);
        let stream = lines::stream(seed, &spec.name, seq);
        let records = match spec.runtime {
            Runtime::Docker => lines::docker_lines(&msg, stream, &clock.tick()),
            Runtime::Cri => lines::cri_lines(&msg, stream, || clock.tick()),
        };
        for rec in &records {
            file.write_all(rec.as_bytes()).map_err(|e| io("write", e))?;
            size += rec.len() as u64;
        }
        rot.wrote(seq);
        seq += 1;
        count.store(seq, Ordering::Release);
        if size >= spec.max_bytes {
            match rot.rotate(&mut out.deleted).map_err(|e| io("rotate", e))? {
                After::Reopen => file = open_append(&spec.live).map_err(|e| io("reopen", e))?,
                // copytruncate: the writer keeps its descriptor; O_APPEND writes land at the
                // new end.
                After::Truncate => file.set_len(0).map_err(|e| io("truncate", e))?,
            }
            size = 0;
            out.rotations += 1;
        }
    }
    out.lines = seq;
    Ok(out)
}

/// Counters a running writer shares.
pub type Counts = Vec<Arc<AtomicU64>>;

/// Sum of the lines written so far by all writers.
pub fn total(counts: &Counts) -> u64 {
    counts.iter().map(|c| c.load(Ordering::Acquire)).sum()
}
