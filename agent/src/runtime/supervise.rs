//! No half-alive agent: every long-lived pipeline thread is watched, and its panic or
//! unexpected end ends the process with a non-zero status and one log line naming the part.
//! The kubelet restarts the container, and a restart is exact by design (the tailers resume
//! from the index, the sink from its durable cursor).
//!
//! Two watchers: a panic hook, which sees a panic on a pipeline thread before it unwinds
//! (including panics inside the sink's tokio tasks, which tokio would otherwise swallow), and
//! a supervisor thread, which polls each part's "has it ended?" and catches a thread that
//! returned without panicking.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Exit status when a pipeline part died (EX_SOFTWARE).
pub const EXIT_PART_DIED: i32 = 70;

/// How often the supervisor looks at the parts.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Thread-name prefixes of the pipeline's threads, and the part each belongs to.
const PIPELINE_THREADS: &[(&str, &str)] = &[
    ("runnel-tailer", "tailer"),
    ("runnel-ingest-writer", "index writer"),
    ("runnel-es-sink", "elasticsearch sink"),
    ("metrics", "metrics collector"),
    ("runnel-reload", "config reloader"),
    ("runnel-docker-api", "docker api client"),
    ("runnel-ingest-bridge", "ingest bridge"),
    ("runnel-supervisor", "supervisor"),
];

/// Install the panic hook: a panic on a pipeline thread logs one line and exits with
/// [`EXIT_PART_DIED`]; panics elsewhere (an HTTP handler) keep the default report.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let name = std::thread::current().name().unwrap_or("").to_string();
        let part = PIPELINE_THREADS
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .map(|(_, part)| *part);
        let Some(part) = part else {
            default(info);
            return;
        };
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        died(part, &format!("panicked at {at}: {what}"));
    }));
}

/// Say once which part died and how, then exit with [`EXIT_PART_DIED`]. The one line goes
/// through the log (in its format) when the log shows errors, else straight to stderr.
pub fn died(part: &str, how: &str) -> ! {
    if tracing::enabled!(tracing::Level::ERROR) {
        tracing::error!(
            part,
            "runnel: pipeline part died: {part} {how}; exiting so that the agent is restarted"
        );
    } else {
        eprintln!(
            "runnel: pipeline part died: {part} {how}; exiting so that the agent is restarted"
        );
    }
    std::process::exit(EXIT_PART_DIED);
}

/// Answers "which part of yours has ended?" (`None`: all alive).
pub type Probe = Box<dyn Fn() -> Option<String> + Send>;

/// The supervisor thread and the flag that tells it a shutdown was asked for.
pub struct Supervisor {
    stopping: Arc<AtomicBool>,
    probes: Arc<Mutex<Vec<Probe>>>,
}

impl Supervisor {
    /// Start watching; parts are added with [`Supervisor::watch`].
    pub fn start() -> std::io::Result<Supervisor> {
        let stopping = Arc::new(AtomicBool::new(false));
        let probes: Arc<Mutex<Vec<Probe>>> = Arc::new(Mutex::new(Vec::new()));
        let (stop, list) = (stopping.clone(), probes.clone());
        std::thread::Builder::new()
            .name("runnel-supervisor".into())
            .spawn(move || loop {
                std::thread::sleep(CHECK_EVERY);
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let dead = match list.lock() {
                    Ok(l) => l.iter().find_map(|p| p()),
                    Err(_) => Some("supervisor state".to_string()),
                };
                // Checked again: a shutdown may have begun while the probes ran.
                if let Some(part) = dead.filter(|_| !stop.load(Ordering::Acquire)) {
                    died(&part, "ended unexpectedly");
                }
            })?;
        Ok(Supervisor { stopping, probes })
    }

    /// Watch one more part.
    pub fn watch(&self, probe: Probe) {
        if let Ok(mut l) = self.probes.lock() {
            l.push(probe);
        }
    }

    /// A shutdown was asked for: parts ending from now on are expected.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }
}
