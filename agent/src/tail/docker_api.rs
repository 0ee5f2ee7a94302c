//! Docker Engine API discovery (`inputs.docker.api`): on a plain Docker host the engine says
//! what runs. The client lists every container once per connection and follows its
//! `start`/`die`/`destroy` events; each container's `LogPath`, name, image and labels go to the
//! tailer, which stays the one reader of files (a container found here and by inotify has the
//! same key, `docker:<id>`, and is read once).
//!
//! The client runs on a thread of its own with a current-thread tokio runtime and hands its
//! findings over a bounded channel; when the tailer is slow the client waits (the engine keeps
//! the events). When the socket goes away the files alone keep being read (inotify and rescan)
//! and the client reconnects with a doubling backoff, counted.

use super::discover::Found;
use super::identity;
use super::stats::{Input, Stats};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use bollard::Docker;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use futures_util::StreamExt;
use runnel_index::SourceIdentity;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// Findings queued between the client and the tailer (the client waits when it is full).
const QUEUE: usize = 1024;
/// First wait before a reconnect; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A session that stayed up this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);
/// Seconds allowed for one request's response (the event stream's body is not limited).
const REQUEST_TIMEOUT_S: u64 = 10;
/// The oldest API version asked for before negotiating (Docker 1.13 and later speak it).
const MIN_VERSION: bollard::ClientVersion = bollard::ClientVersion {
    major_version: 1,
    minor_version: 25,
};

/// What the client tells the tailer.
#[derive(Debug)]
pub enum Discovery {
    /// A container and its json-file log (from the list or a `start` event).
    Container(Found, Box<SourceIdentity>),
    /// The container died or was removed: look at its file now (drained, then retired once the
    /// file is gone).
    Gone(String),
    /// The first connection attempt is over (listed, or failed): the tailer may retire the
    /// index's sources nobody found.
    Synced,
}

/// The client's counters (`runnel_input_docker_api_*`).
#[derive(Default)]
pub struct ApiStats {
    /// 1 while a session with the engine is up.
    pub connected: AtomicI64,
    /// Connection attempts after the first one (the socket went away or never answered).
    pub reconnects: AtomicU64,
    /// Containers handed to the tailer (list and `start` events).
    pub discovered: AtomicU64,
    /// Containers that could not be used: inspect failed, or no json-file `LogPath` (another
    /// logging driver).
    pub skipped: AtomicU64,
}

impl ApiStats {
    /// Append the Prometheus text.
    pub fn render(&self, out: &mut String) {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, i64); 4] = [
            (
                "runnel_input_docker_api_connected",
                "gauge",
                "1 while the Docker Engine API session is up.",
                self.connected.load(Ordering::Relaxed),
            ),
            (
                "runnel_input_docker_api_reconnects_total",
                "counter",
                "Reconnects to the Docker Engine API after a failed or lost session.",
                c(&self.reconnects) as i64,
            ),
            (
                "runnel_input_docker_api_containers_total",
                "counter",
                "Containers found through the Docker Engine API.",
                c(&self.discovered) as i64,
            ),
            (
                "runnel_input_docker_api_skipped_total",
                "counter",
                "Containers the API named but that could not be read (inspect failed, no json-file log).",
                c(&self.skipped) as i64,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

/// The running client; dropping it stops and joins its thread.
pub struct Client {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    /// Start the client for `addr` (`unix:///path`); its findings arrive on the receiver.
    pub fn start(addr: &str, stats: Arc<Stats>) -> std::io::Result<(Client, Receiver<Discovery>)> {
        let path = addr.strip_prefix("unix://").unwrap_or(addr).to_string();
        let (tx, rx) = bounded(QUEUE);
        let (stop_tx, stop_rx) = oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("runnel-docker-api".into())
            .spawn(move || rt.block_on(run(path, tx, stats, stop_rx)))?;
        Ok((
            Client {
                stop: Some(stop_tx),
                thread: Some(thread),
            },
            rx,
        ))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The tailer went away.
struct Closed;

/// Why a session ended.
enum End {
    Closed,
    Lost(String),
}

impl From<bollard::errors::Error> for End {
    fn from(e: bollard::errors::Error) -> End {
        End::Lost(e.to_string())
    }
}

impl From<Closed> for End {
    fn from(_: Closed) -> End {
        End::Closed
    }
}

async fn run(
    path: String,
    tx: Sender<Discovery>,
    stats: Arc<Stats>,
    mut stop: oneshot::Receiver<()>,
) {
    let api = &stats.docker_api;
    let mut backoff = MIN_BACKOFF;
    let mut synced = false;
    let mut first = true;
    loop {
        if !first {
            api.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let began = Instant::now();
        let end = tokio::select! {
            _ = &mut stop => {
                // Stopped (shutdown, or a reload that turned the API off or changed it).
                api.connected.store(0, Ordering::Relaxed);
                return;
            }
            end = session(&path, &tx, &stats, &mut synced) => end,
        };
        api.connected.store(0, Ordering::Relaxed);
        match end {
            End::Closed => return,
            End::Lost(e) => {
                // One line per lost session or per first failure, not per retry.
                if first || began.elapsed() >= STABLE {
                    tracing::warn!(socket = %path, error = %e, "Docker API unavailable; reading the files alone and reconnecting with backoff");
                } else {
                    tracing::debug!(socket = %path, error = %e, "Docker API reconnect failed");
                }
            }
        }
        if !synced {
            synced = true;
            if send(&tx, Discovery::Synced).await.is_err() {
                return;
            }
        }
        if began.elapsed() >= STABLE {
            backoff = MIN_BACKOFF;
        }
        first = false;
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Connect speaking the engine's API version, capped at the newest bollard knows. bollard's
/// own negotiation only lowers the version, and an engine refuses a client newer than itself
/// (Docker 20.10: "client version 1.53 is too new"), so ask at the oldest version first.
async fn connect(path: &str) -> Result<Docker, bollard::errors::Error> {
    let old = Docker::connect_with_unix(path, REQUEST_TIMEOUT_S, &MIN_VERSION)?;
    let server = old.version().await?.api_version.and_then(|v| {
        let (major, minor) = v.split_once('.')?;
        Some(bollard::ClientVersion {
            major_version: major.parse().ok()?,
            minor_version: minor.parse().ok()?,
        })
    });
    let newest = bollard::API_DEFAULT_VERSION;
    let v = match server {
        Some(s) if s < *newest => s,
        Some(_) => *newest,
        None => MIN_VERSION,
    };
    Docker::connect_with_unix(path, REQUEST_TIMEOUT_S, &v)
}

/// One connection: list everything, then follow events until the stream ends.
async fn session(path: &str, tx: &Sender<Discovery>, stats: &Stats, synced: &mut bool) -> End {
    let docker = match connect(path).await {
        Ok(d) => d,
        Err(e) => return e.into(),
    };
    // Events from a second before the list: a container started meanwhile is not missed
    // (found twice is harmless, the tailer knows it by its key).
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(1))
        .unwrap_or(0);
    let filters: HashMap<&str, Vec<&str>> = HashMap::from([
        ("type", vec!["container"]),
        ("event", vec!["start", "die", "destroy"]),
    ]);
    let opts = EventsOptionsBuilder::new()
        .since(&since.to_string())
        .filters(&filters)
        .build();
    let mut events = docker.events(Some(opts));
    let list = ListContainersOptionsBuilder::new().all(true).build();
    let containers = match docker.list_containers(Some(list)).await {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    stats.docker_api.connected.store(1, Ordering::Relaxed);
    tracing::info!(socket = %path, containers = containers.len(), "Docker API connected");
    for c in containers {
        if let Some(id) = c.id {
            if let Err(e) = found(&docker, &id, tx, stats).await {
                return e;
            }
        }
    }
    if !*synced {
        *synced = true;
        if let Err(e) = send(tx, Discovery::Synced).await {
            return e.into();
        }
    }
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => return e.into(),
        };
        let Some(id) = ev.actor.and_then(|a| a.id) else {
            continue;
        };
        let r = match ev.action.as_deref() {
            Some("start") => found(&docker, &id, tx, stats).await,
            Some("die") | Some("destroy") => send(tx, Discovery::Gone(format!("docker:{id}")))
                .await
                .map_err(End::from),
            _ => Ok(()),
        };
        if let Err(e) = r {
            return e;
        }
    }
    End::Lost("the event stream ended".into())
}

/// Inspect one container and hand it to the tailer; a container that cannot be used is
/// counted and skipped.
async fn found(
    docker: &Docker,
    id: &str,
    tx: &Sender<Discovery>,
    stats: &Stats,
) -> Result<(), End> {
    let api = &stats.docker_api;
    let c = match docker.inspect_container(id, None).await {
        Ok(c) => c,
        Err(e) => {
            // Removed between the list (or event) and the inspect, or the engine went away.
            api.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(container = %id, error = %e, "Docker API inspect failed; container skipped");
            return Ok(());
        }
    };
    let Some(log_path) = c.log_path.filter(|p| !p.is_empty()) else {
        api.skipped.fetch_add(1, Ordering::Relaxed);
        tracing::info!(container = %id, "container has no json-file log (another logging driver); not read");
        return Ok(());
    };
    let full_id = c.id.unwrap_or_else(|| id.to_string());
    let live = PathBuf::from(log_path);
    let config = c.config;
    let image = config.as_ref().and_then(|k| k.image.clone()).or(c.image);
    let labels: BTreeMap<String, String> = config
        .and_then(|k| k.labels)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let ident = identity::docker_identity_of(&full_id, c.name, image, labels, &live);
    let f = Found {
        key: format!("docker:{full_id}"),
        input: Input::Docker,
        live,
    };
    api.discovered.fetch_add(1, Ordering::Relaxed);
    send(tx, Discovery::Container(f, Box::new(ident)))
        .await
        .map_err(End::from)
}

/// Queue one finding, waiting (without blocking the runtime) while the queue is full.
async fn send(tx: &Sender<Discovery>, mut d: Discovery) -> Result<(), Closed> {
    loop {
        match tx.try_send(d) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(back)) => {
                d = back;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(TrySendError::Disconnected(_)) => return Err(Closed),
        }
    }
}
