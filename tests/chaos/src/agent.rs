//! The agent under test as a series of lives: started, scraped, SIGKILLed, restarted — and,
//! like the kubelet would, restarted when it dies on its own (each such death is recorded: the
//! agent must never crash or crash-loop). Its peak resident memory is watched from
//! `/proc/PID/status` (`VmHWM`, the kernel's own high-water mark, so a peak between two samples
//! is not missed).

use crate::inotify::QueueLimit;
use crate::metrics::Tally;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The inotify queue limit set around starts that should overflow it.
pub const SMALL_INOTIFY_QUEUE: u64 = 64;

struct Life {
    child: Child,
    addr: String,
    started: Instant,
}

/// What happened to the agent's lives.
#[derive(Debug, Default, Clone)]
pub struct Lives {
    /// Successful starts.
    pub starts: u64,
    /// SIGKILLs sent by the soak.
    pub kills: u64,
    /// Starts with the kernel inotify queue shrunk.
    pub small_queue_starts: u64,
    /// Deaths the soak did not cause, each with its exit status and log tail.
    pub unexpected_exits: Vec<String>,
    /// Starts that failed (the process exited or never became ready).
    pub failed_starts: Vec<String>,
    /// Highest `VmHWM` seen, bytes.
    pub peak_rss: u64,
    /// Highest `VmRSS` sampled (every 100 ms), bytes.
    pub max_sampled_rss: u64,
    /// The life (1-based start number) that had the peak.
    pub peak_life: u64,
}

/// The agent binary run under one config, one life at a time.
pub struct Supervisor {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    life: Mutex<Option<Life>>,
    pid: AtomicU32,
    addr: Mutex<Option<String>>,
    /// Counters of all lives.
    pub tally: Mutex<Tally>,
    /// Starts, kills, deaths, memory.
    pub lives: Mutex<Lives>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `GET url` with a timeout: status and body, or the transport error.
pub fn http_get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    match ureq::get(url).timeout(timeout).call() {
        Ok(r) => {
            let status = r.status();
            Ok((status, r.into_string().map_err(|e| e.to_string())?))
        }
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
        Err(e) => Err(e.to_string()),
    }
}

/// The last `n` lines of a file.
pub fn tail_of(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `VmRSS` and `VmHWM` of a process, bytes.
fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

impl Supervisor {
    /// A supervisor for `bin agent --config config`, logging to `log`; nothing runs yet.
    pub fn new(bin: &Path, config: &Path, log: &Path) -> Supervisor {
        Supervisor {
            bin: bin.to_path_buf(),
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            life: Mutex::new(None),
            pid: AtomicU32::new(0),
            addr: Mutex::new(None),
            tally: Mutex::new(Tally::default()),
            lives: Mutex::new(Lives::default()),
        }
    }

    /// The agent's `host:port`, when one is up.
    pub fn addr(&self) -> Option<String> {
        lock(&self.addr).clone()
    }

    /// `GET path` on the running agent.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        let addr = self.addr().ok_or("the agent is not running")?;
        http_get(&format!("http://{addr}{path}"), Duration::from_secs(10))
    }

    fn note_memory(&self) {
        let pid = self.pid.load(Ordering::Acquire);
        if pid == 0 {
            return;
        }
        if let Some((rss, hwm)) = memory_of(pid) {
            let mut l = lock(&self.lives);
            l.max_sampled_rss = l.max_sampled_rss.max(rss);
            if hwm > l.peak_rss {
                l.peak_rss = hwm;
                l.peak_life = l.starts;
            }
        }
    }

    /// Sample the memory of the running agent (called often by a watcher thread).
    pub fn sample_memory(&self) {
        self.note_memory();
    }

    fn spawn(&self) -> Result<Life, String> {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let _ = writeln!(log, "==== soak: starting the agent");
        let mut child = Command::new(&self.bin)
            .args(["agent", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone().map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.bin.display()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(a) = line.strip_prefix("runnel: listening on http://") {
                        let _ = tx.send(a.to_string());
                    }
                    let _ = writeln!(log, "stdout: {line}");
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(a) => break a,
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!(
                            "the agent exited with {status} before listening:\n{}",
                            tail_of(&self.log, 15)
                        ));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err("the agent printed no listening line within 60 s".into());
                    }
                }
            }
        };
        let ready = crate::stop::wait_for(Duration::from_secs(60), || {
            matches!(
                http_get(&format!("http://{addr}/readyz"), Duration::from_secs(5)),
                Ok((200, _))
            ) || matches!(child.try_wait(), Ok(Some(_)))
        });
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the agent exited with {status} before it was ready:\n{}",
                tail_of(&self.log, 15)
            ));
        }
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the agent at {addr} was not ready within 60 s"));
        }
        Ok(Life {
            child,
            addr,
            started: Instant::now(),
        })
    }

    /// Start a life (the slot is empty); retries like a kubelet, for at most two minutes.
    fn start_into(
        &self,
        slot: &mut Option<Life>,
        queue: Option<&QueueLimit>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut backoff = Duration::from_millis(500);
        loop {
            let shrunk = queue.is_some_and(|q| q.shrink(SMALL_INOTIFY_QUEUE));
            let life = self.spawn();
            if shrunk {
                if let Some(q) = queue {
                    q.restore();
                }
            }
            match life {
                Ok(life) => {
                    self.pid.store(life.child.id(), Ordering::Release);
                    *lock(&self.addr) = Some(life.addr.clone());
                    *slot = Some(life);
                    let mut l = lock(&self.lives);
                    l.starts += 1;
                    if shrunk {
                        l.small_queue_starts += 1;
                    }
                    return Ok(());
                }
                Err(e) => {
                    lock(&self.lives).failed_starts.push(e.clone());
                    if Instant::now() > deadline {
                        return Err(format!(
                            "the agent could not be started for 2 minutes; last failure: {e}"
                        ));
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Start the first life.
    pub fn start(&self) -> Result<(), String> {
        let mut slot = lock(&self.life);
        self.start_into(&mut slot, None)
    }

    fn scrape_life(&self, life: &Life) {
        if let Ok((200, page)) = http_get(
            &format!("http://{}/metrics", life.addr),
            Duration::from_secs(5),
        ) {
            lock(&self.tally).update(&page);
        }
    }

    fn forget_life(&self) {
        self.pid.store(0, Ordering::Release);
        *lock(&self.addr) = None;
        lock(&self.tally).end_life();
    }

    /// SIGKILL the running agent and leave it down (until [`Supervisor::start`]).
    pub fn kill(&self) {
        let mut slot = lock(&self.life);
        if let Some(mut life) = slot.take() {
            self.scrape_life(&life);
            self.note_memory();
            let _ = life.child.kill();
            let _ = life.child.wait();
            self.forget_life();
            lock(&self.lives).kills += 1;
        }
    }

    /// SIGKILL the running agent, stay down for `down`, and start it again (with the kernel's
    /// inotify queue shrunk while it starts when `queue` is given).
    pub fn kill_and_restart(
        &self,
        down: Duration,
        queue: Option<&QueueLimit>,
    ) -> Result<(), String> {
        self.kill();
        let mut slot = lock(&self.life);
        std::thread::sleep(down);
        self.start_into(&mut slot, queue)
    }

    /// Scrape the counters, and if the agent died on its own, record it and restart it.
    pub fn check(&self) -> Result<(), String> {
        let mut slot = lock(&self.life);
        let Some(life) = slot.as_mut() else {
            return Ok(());
        };
        let status = match life.child.try_wait() {
            Ok(None) => {
                self.scrape_life(life);
                return Ok(());
            }
            Ok(Some(s)) => s.to_string(),
            Err(e) => format!("an unknown status ({e})"),
        };
        let lived = life.started.elapsed();
        slot.take();
        self.forget_life();
        lock(&self.lives).unexpected_exits.push(format!(
            "the agent exited on its own with {status} after {:.1} s:\n{}",
            lived.as_secs_f64(),
            tail_of(&self.log, 15)
        ));
        self.start_into(&mut slot, None)
    }

    /// Stop the agent with SIGTERM; an error if it does not exit cleanly within 60 s.
    pub fn stop(&self) -> Result<(), String> {
        let mut slot = lock(&self.life);
        let Some(mut life) = slot.take() else {
            return Err("the agent was not running at the end".into());
        };
        self.scrape_life(&life);
        self.note_memory();
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(life.child.id() as i32, libc::SIGTERM) };
        let ok = crate::stop::wait_for(Duration::from_secs(60), || {
            matches!(life.child.try_wait(), Ok(Some(_)))
        });
        let result = match life.child.try_wait() {
            Ok(Some(s)) if s.success() => Ok(()),
            Ok(Some(s)) => Err(format!(
                "the agent exited with {s} after SIGTERM:\n{}",
                tail_of(&self.log, 15)
            )),
            _ => {
                let _ = life.child.kill();
                Err(format!(
                    "the agent did not exit within 60 s of SIGTERM (ok={ok})"
                ))
            }
        };
        let _ = life.child.wait();
        self.forget_life();
        result
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(mut life) = lock(&self.life).take() {
            let _ = life.child.kill();
            let _ = life.child.wait();
        }
    }
}

/// A shared supervisor.
pub type Shared = Arc<Supervisor>;
