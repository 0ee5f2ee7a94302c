//! `runnel agent --demo`: a background thread that writes realistic container logs into a
//! temporary node layout, so a newcomer sees the agent ingest, rotate and serve on a laptop.
//!
//! Layout under `root`: Docker json-file at `docker/containers/<id>/<id>-json.log` (with
//! `config.v2.json`), CRI at `pods/<ns>_<pod>_<uid>/<container>/0.log`. Four containers in two
//! namespaces write a few lines a second each, including lines over 16 KiB (json-file fragments,
//! CRI `P` lines), and rotate their files every so often as Docker and the kubelet do.
//!
//! [`format`] holds the pure line-formatting helpers (`write_*`) that tests reuse.

pub mod format;
pub mod layout;
pub mod workload;

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use format::{format_time, write_cri_entry, write_json_file_entry, PodRef};
use layout::{LogFiles, Runtime};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use workload::{Kind, Rng};

/// Why the demo generator could not start or write.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or directory of the demo layout could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The generator thread could not be spawned.
    #[error("spawning the demo generator thread: {0}")]
    Spawn(std::io::Error),
}

/// How often the generator wakes up; each container writes a line on some ticks.
const TICK: Duration = Duration::from_millis(200);
/// Lines a container writes between rotations.
const ROTATE_EVERY: u64 = 150;
/// Lines written at start-up, back-dated, so there is something to query at once.
const BACKLOG_LINES: u64 = 20;

/// One demo container: identity, files, and its line counter.
struct Container {
    kind: Kind,
    files: LogFiles,
    seq: u64,
    /// Chance per tick of writing a line, in percent.
    rate_pct: u64,
}

struct Spec {
    runtime: Runtime,
    kind: Kind,
    ns: &'static str,
    pod: &'static str,
    container: &'static str,
    image: &'static str,
    rate_pct: u64,
}

const SPECS: [Spec; 4] = [
    Spec {
        runtime: Runtime::Docker,
        kind: Kind::Web,
        ns: "shop",
        pod: "web-0",
        container: "nginx",
        image: "nginx:1.27",
        rate_pct: 60,
    },
    Spec {
        runtime: Runtime::Docker,
        kind: Kind::Worker,
        ns: "shop",
        pod: "worker-0",
        container: "worker",
        image: "registry.local/shop/worker:2.3.1",
        rate_pct: 40,
    },
    Spec {
        runtime: Runtime::Cri,
        kind: Kind::Sidecar,
        ns: "platform",
        pod: "mesh-gateway-0",
        container: "proxy",
        image: "envoyproxy/envoy:v1.31",
        rate_pct: 90,
    },
    Spec {
        runtime: Runtime::Cri,
        kind: Kind::Report,
        ns: "platform",
        pod: "report-0",
        container: "report",
        image: "registry.local/platform/report:0.9",
        rate_pct: 25,
    },
];

impl Container {
    /// Write one line (split as the runtime splits long lines); rotate every `ROTATE_EVERY`.
    fn write(&mut self, time_ns: i64, rng: &mut Rng, buf: &mut Vec<u8>) -> Result<(), DemoError> {
        let line = workload::line(self.kind, self.seq, &format_time(time_ns), rng);
        buf.clear();
        match self.files.runtime {
            Runtime::Docker => write_json_file_entry(buf, &line.text, line.stream, time_ns),
            Runtime::Cri => write_cri_entry(buf, &line.text, line.stream, time_ns),
        };
        self.files.append(buf)?;
        self.seq += 1;
        if self.seq.is_multiple_of(ROTATE_EVERY) {
            self.files.rotate(time_ns)?;
        }
        Ok(())
    }
}

/// The running demo generator. Dropping it stops the thread too.
pub struct Generator {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    errors: Arc<AtomicU64>,
    root: PathBuf,
}

impl Generator {
    /// Create the layout under `root` (Docker under `root/docker/containers`, CRI under
    /// `root/pods`), write a short back-dated backlog, and start the writer thread.
    pub fn start(root: &Path) -> Result<Generator, DemoError> {
        let seed = crate::timefmt::now_ns() as u64;
        let mut rng = Rng::new(seed);
        let mut containers = Vec::with_capacity(SPECS.len());
        for (i, s) in SPECS.iter().enumerate() {
            let pod = PodRef {
                namespace: s.ns.to_string(),
                pod: s.pod.to_string(),
                uid: format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    rng.next_u64() as u32,
                    i,
                    i,
                    i,
                    seed & 0xffff_ffff_ffff
                ),
                container: s.container.to_string(),
            };
            let id = format!(
                "{:016x}{:016x}{:016x}{:016x}",
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64()
            );
            let files = LogFiles::create(root, s.runtime, &id, &pod, s.image)?;
            containers.push(Container {
                kind: s.kind,
                files,
                seq: 0,
                rate_pct: s.rate_pct,
            });
        }
        let mut buf = Vec::new();
        let start = crate::timefmt::now_ns();
        for c in &mut containers {
            for i in 0..BACKLOG_LINES {
                let back = i64::try_from((BACKLOG_LINES - i) * 500_000_000).unwrap_or(0);
                c.write(start - back, &mut rng, &mut buf)?;
            }
        }
        let errors = Arc::new(AtomicU64::new(0));
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let thread_errors = errors.clone();
        let thread = std::thread::Builder::new()
            .name("runnel-demo".into())
            .spawn(move || loop {
                match stop_rx.recv_timeout(TICK) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                for c in &mut containers {
                    if rng.below(100) >= c.rate_pct {
                        continue;
                    }
                    if let Err(e) = c.write(crate::timefmt::now_ns(), &mut rng, &mut buf) {
                        // Keep going: a full disk or a deleted dir should not kill the agent.
                        if thread_errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            tracing::warn!(error = %e, "demo generator could not write");
                        }
                    }
                }
            })
            .map_err(DemoError::Spawn)?;
        Ok(Generator {
            stop: Some(stop_tx),
            thread: Some(thread),
            errors,
            root: root.to_path_buf(),
        })
    }

    /// Where the layout lives.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes that failed so far (each is also logged, the first few in full).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Stop the writer thread and wait for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.try_send(());
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("demo generator thread panicked");
            }
        }
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                all_files(&p, out);
            } else {
                out.push(p);
            }
        }
    }

    #[test]
    fn generator_writes_parseable_docker_and_cri_logs_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let g = Generator::start(dir.path()).unwrap();
        std::thread::sleep(Duration::from_millis(700));
        g.stop();
        let mut files = Vec::new();
        all_files(dir.path(), &mut files);
        let (mut docker, mut cri, mut configs, mut fragments) = (0, 0, 0, 0);
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(f).unwrap();
            if name == "config.v2.json" {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert!(v["Config"]["Labels"]["io.kubernetes.pod.namespace"] == "shop");
                configs += 1;
            } else if name.contains("-json.log") {
                for l in text.lines() {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    assert!(crate::timefmt::parse_rfc3339(v["time"].as_str().unwrap()).is_ok());
                    if !v["log"].as_str().unwrap().ends_with('\n') {
                        fragments += 1;
                    }
                    docker += 1;
                }
            } else if name.starts_with("0.log") {
                for l in text.lines() {
                    let mut parts = l.splitn(4, ' ');
                    assert!(
                        crate::timefmt::parse_rfc3339(parts.next().unwrap()).is_ok(),
                        "{l}"
                    );
                    assert!(matches!(parts.next(), Some("stdout" | "stderr")));
                    assert!(matches!(parts.next(), Some("P" | "F")));
                    cri += 1;
                }
            }
        }
        assert_eq!(configs, 2);
        // The backlog alone: 20 lines per container, the worker's 20 include no dump yet.
        assert!(docker >= 40 && cri >= 40, "docker {docker} cri {cri}");
        assert_eq!(fragments, 0);
        let pods: Vec<String> = std::fs::read_dir(dir.path().join("pods"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            pods.iter().any(|p| p.starts_with("platform_report-0_")),
            "{pods:?}"
        );
    }

    #[test]
    fn containers_rotate_after_enough_lines() {
        let dir = tempfile::tempdir().unwrap();
        let pod = PodRef {
            namespace: "shop".into(),
            pod: "worker-0".into(),
            uid: "u".into(),
            container: "worker".into(),
        };
        let files = LogFiles::create(dir.path(), Runtime::Docker, "abc", &pod, "img").unwrap();
        let live = files.live.clone();
        let mut c = Container {
            kind: Kind::Worker,
            files,
            seq: 0,
            rate_pct: 100,
        };
        let (mut rng, mut buf) = (Rng::new(7), Vec::new());
        for i in 0..ROTATE_EVERY + 5 {
            c.write(1_714_564_800_000_000_000 + i as i64, &mut rng, &mut buf)
                .unwrap();
        }
        let rotated = std::fs::read_to_string(format!("{}.1", live.display())).unwrap();
        let fragments = rotated
            .lines()
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                !v["log"].as_str().unwrap().ends_with('\n')
            })
            .count();
        // Lines 39, 79, 119 are ~40 KiB payload dumps: two fragments each without newline.
        assert_eq!(fragments, 6);
        assert_eq!(std::fs::read_to_string(&live).unwrap().lines().count(), 5);
    }
}
