//! Wiring of a running agent: start the parts in order, supervise them, reload the config
//! while they run, and shut them down in order on SIGTERM (final sync before exit).
//!
//! - [`supervise`]: a pipeline part that panics or ends ends the process (non-zero status);
//! - [`health`]: what `/healthz` calls stuck;
//! - [`reload`]: config diff → each part's share, all or nothing;
//! - [`parts`]: the parts a reload replaces (sink, metrics collector) and their slots;
//! - [`logging`]: the log output and its live level.

pub mod health;
pub mod logging;
pub mod parts;
pub mod reload;
pub mod supervise;

use crate::http::{self, AppState, HealthFn, MetricsFn, StatusFn, TopFn};
use crate::inputs::forward::running::ForwardInput;
use crate::{demo, ingest, tail};
use parts::Slot;
use runnel_config::{Config, ConfigWatcher};
use runnel_index::{Limits, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Period of the config re-read without a file event (the backstop of the directory watch).
const CONFIG_BACKSTOP: Duration = Duration::from_secs(10);

/// The backstop period: [`CONFIG_BACKSTOP`], or `RUNNEL_CONFIG_BACKSTOP` (a duration such as
/// `1h`; the reload tests set it long so that only the directory watch can see an update).
fn config_backstop() -> Duration {
    let Ok(text) = std::env::var("RUNNEL_CONFIG_BACKSTOP") else {
        return CONFIG_BACKSTOP;
    };
    match runnel_config::parse_duration(&text) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(value = %text, error = %e,
                "RUNNEL_CONFIG_BACKSTOP is not a duration; re-reading the config every {CONFIG_BACKSTOP:?}");
            CONFIG_BACKSTOP
        }
    }
}

/// How the agent was started.
pub struct Launch {
    /// The config in force at start.
    pub cfg: Config,
    /// The file it came from, with its sha256 (none: built-in defaults, nothing to reload).
    pub file: Option<(PathBuf, String)>,
    /// `--oneshot`.
    pub oneshot: bool,
    /// `--demo`: the temporary node layout.
    pub demo_root: Option<PathBuf>,
    /// The log output (its level changes on reload).
    pub log: logging::LogLevel,
}

/// Store limits from the `index:` section.
pub fn limits(cfg: &Config) -> Limits {
    let i = &cfg.index;
    Limits {
        segment_max_bytes: i.segment_max_bytes,
        segment_max_age: i.segment_max_age,
        block_raw_bytes: i.block_bytes as usize,
        zstd_level: i.zstd_level,
        max_disk_bytes: i.max_disk_bytes,
        max_age: i.max_age,
        max_open_maps: usize::try_from(i.max_open_maps).unwrap_or(usize::MAX),
    }
}

/// Point the inputs and the data dir at a temporary node layout for `--demo`.
pub fn demo_layout(cfg: &mut Config, root: &Path) {
    cfg.data_dir = root.join("data");
    cfg.inputs.docker.root = root.join("docker/containers");
    cfg.inputs.cri.root = root.join("pods");
    // On a Docker host the demo also shows the host's own containers, found through the API.
    if Path::new("/var/run/docker.sock").exists() {
        cfg.inputs.docker.api = Some("unix:///var/run/docker.sock".into());
    }
}

/// Run the agent until SIGTERM (or, with `--oneshot`, until everything present is ingested).
pub fn run(launch: Launch) -> Result<(), String> {
    let Launch {
        cfg,
        file,
        oneshot,
        demo_root,
        log,
    } = launch;
    supervise::install_panic_hook();
    crate::failpoint::install_sink_hook();
    let generator = match &demo_root {
        Some(root) => {
            Some(demo::Generator::start(root).map_err(|e| format!("demo generator: {e}"))?)
        }
        None => None,
    };
    let index_dir = cfg.data_dir.join("index");
    let store = Arc::new(
        Store::open(&index_dir, limits(&cfg)).map_err(|e| format!("opening the index: {e}"))?,
    );
    let writer = ingest::Writer::start(store.clone(), ingest::WriterSettings::from_config(&cfg))
        .map_err(|e| format!("starting the index writer: {e}"))?;
    let files = tail::Ingest::start_with(&cfg, store.clone(), writer.handle())
        .map_err(|e| format!("starting inputs: {e}"))?;
    // A backfill must ship or fail; a running agent collects locally even without its sink.
    let (sink, sink_failure) = if oneshot {
        (parts::start_sink(&cfg, &store)?, None)
    } else {
        parts::start_sink_or_report(&cfg, &store)
    };

    if oneshot {
        files
            .run_until_eof()
            .map_err(|e| format!("ingesting: {e}"))?;
        writer.shutdown();
        if let Some(sink) = sink {
            sink.drain(cfg.sinks.elasticsearch.drain.no_progress_timeout)
                .map_err(|e| format!("shipping to elasticsearch: {e}"))?;
            sink.shutdown();
        }
        if let Some(g) = generator {
            g.stop();
        }
        let records: u64 = store.sources().iter().map(|s| s.records).sum();
        println!(
            "runnel: oneshot done: {records} records in {}",
            index_dir.display()
        );
        return Ok(());
    }

    let metrics = Arc::new(Slot::new(parts::start_metrics(&cfg, &store)?));
    let sink = Arc::new(Slot::new(sink));
    let sink_failure = Arc::new(Slot::new(sink_failure));
    let files = Arc::new(files);
    let writer = Arc::new(writer);
    let supervisor =
        supervise::Supervisor::start().map_err(|e| format!("spawning a thread: {e}"))?;
    watch_parts(&supervisor, &files, &writer, &metrics, &sink);
    let forward_probe = Arc::new(std::sync::OnceLock::<Arc<ForwardInput>>::new());
    {
        let probe = forward_probe.clone();
        supervisor.watch(Box::new(move || {
            let f = probe.get()?;
            f.has_died().then(|| "forward input".to_string())
        }));
    }
    let ready = Arc::new(AtomicBool::new(false));
    {
        let (files, ready) = (files.clone(), ready.clone());
        std::thread::Builder::new()
            .name("readiness".into())
            .spawn(move || {
                files.wait_ready();
                ready.store(true, Ordering::Release);
            })
            .map_err(|e| format!("spawning a thread: {e}"))?;
    }
    let reloader = Arc::new(reload::Reloader::new(
        file.as_ref().map(|(p, _)| p.clone()).unwrap_or_default(),
        cfg.clone(),
        file.as_ref().map(|(_, h)| h.clone()).unwrap_or_default(),
        match demo_root.clone() {
            Some(root) => Box::new(move |c: &mut Config| demo_layout(c, &root)),
            None => Box::new(|_: &mut Config| {}),
        },
        reload::Parts {
            store: store.clone(),
            ingest: Arc::downgrade(&files),
            sink: sink.clone(),
            sink_failure: sink_failure.clone(),
            metrics: metrics.clone(),
            log,
        },
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("runnel-http")
        .enable_all()
        .build()
        .map_err(|e| format!("starting the HTTP runtime: {e}"))?;
    let forward = Arc::new(ForwardInput::new(
        runtime.handle().clone(),
        writer.submitter(),
    ));
    if let Some(addr) = forward.apply(ForwardInput::prepare(&cfg)?)? {
        println!("runnel: forward listening on {addr}");
    }
    reloader.attach_pushed_inputs(forward.clone(), writer.submitter());
    let _ = forward_probe.set(forward.clone());
    let mut state = app_state(
        &store,
        ready,
        &files,
        (&sink, &sink_failure),
        &metrics,
        &reloader,
    );
    {
        let f = forward.clone();
        state
            .metrics
            .push(Arc::new(move |out: &mut String| f.stats().render(out)) as MetricsFn);
    }
    state.ingest.configure(&cfg, &writer.submitter());
    reloader.attach_http_ingest(state.ingest.clone());
    let state = Arc::new(state);
    // SIGHUP and the file watch wake the reload thread; dropping `wake_tx` stops it.
    let (wake_tx, wake_rx) = crossbeam_channel::bounded::<()>(1);
    let reload_thread = match &file {
        Some((path, sha)) => {
            let watcher = ConfigWatcher::new(path, sha, config_backstop())
                .map_err(|e| format!("watching the config: {e}"))?;
            Some(
                reload::spawn(reloader.clone(), watcher, wake_rx)
                    .map_err(|e| format!("spawning a thread: {e}"))?,
            )
        }
        None => None,
    };

    let served = runtime.block_on(serve_until_signal(
        &cfg,
        state.clone(),
        demo_root.is_some(),
        wake_tx,
        file.is_some(),
    ));
    supervisor.stopping();
    forward.shutdown();
    // Drop what the server's tasks still hold on their threads first, so that the last
    // references to the components are dropped here, outside any async context.
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(state);
    if let Some(t) = reload_thread {
        let _ = t.join();
    }
    drop(reloader);
    served?;

    tracing::info!("shutting down: stopping inputs and syncing the index");
    if let Ok(files) = Arc::try_unwrap(files) {
        files.shutdown();
    }
    // After every input: what they sent is appended and synced.
    match Arc::try_unwrap(writer) {
        Ok(w) => w.shutdown(),
        Err(_) => tracing::warn!("the index writer is still shared; it stops when released"),
    }
    if let Some(m) = metrics.replace(None) {
        m.shutdown();
    }
    if let Some(s) = sink.replace(None) {
        s.shutdown();
    }
    if let Some(g) = generator {
        g.stop();
    }
    Ok(())
}

/// Give the supervisor a probe per part (weak references: a shutdown owns the parts).
fn watch_parts(
    sup: &supervise::Supervisor,
    files: &Arc<tail::Ingest>,
    writer: &Arc<ingest::Writer>,
    metrics: &Arc<Slot<crate::metrics::MetricsService>>,
    sink: &Arc<Slot<runnel_sinks::SinkHandle>>,
) {
    let files = Arc::downgrade(files);
    sup.watch(Box::new(move || {
        files
            .upgrade()
            .and_then(|i| i.dead_part().map(str::to_string))
    }));
    let writer = Arc::downgrade(writer);
    sup.watch(Box::new(move || {
        let w = writer.upgrade()?;
        w.is_finished().then(|| "index writer".to_string())
    }));
    // The forward input is watched once it runs (see `run`); HTTP ingest runs inside HTTP
    // requests, whose server the runtime watches.
    let metrics = Arc::downgrade(metrics);
    sup.watch(Box::new(move || {
        let m = metrics.upgrade()?.get()?;
        m.has_died().then(|| "metrics collector".to_string())
    }));
    // A panic in the sink's tasks is seen by the panic hook (its runtime's threads are
    // named); a pipeline task that returned is seen here.
    let sink = Arc::downgrade(sink);
    sup.watch(Box::new(move || {
        let s = sink.upgrade()?.get()?;
        s.is_finished().then(|| "elasticsearch sink".to_string())
    }));
}

/// What the HTTP server reads: the renderers read the slots, so a reload that replaces a
/// part is seen by the next request.
fn app_state(
    store: &Arc<Store>,
    ready: Arc<AtomicBool>,
    ingest: &Arc<tail::Ingest>,
    (sink, sink_failure): (
        &Arc<Slot<runnel_sinks::SinkHandle>>,
        &Arc<Slot<runnel_sinks::FailedSink>>,
    ),
    metrics: &Arc<Slot<crate::metrics::MetricsService>>,
    reloader: &Arc<reload::Reloader>,
) -> AppState {
    let mut state = AppState::new(store.clone(), ready);
    let i = ingest.clone();
    state
        .metrics
        .push(Arc::new(move |out: &mut String| i.render_metrics(out)) as MetricsFn);
    let m = metrics.clone();
    state.metrics.push(Arc::new(move |out: &mut String| {
        if let Some(m) = m.get() {
            m.render_metrics(out)
        }
    }) as MetricsFn);
    let m = metrics.clone();
    state.top = Some(Arc::new(move |by: &str, limit: usize| match m.get() {
        Some(m) => m.top(by, limit),
        None => Err("container metrics are disabled (metrics.enabled: false)".into()),
    }) as TopFn);
    let (s, f) = (sink.clone(), sink_failure.clone());
    state.metrics.push(Arc::new(move |out: &mut String| {
        if let Some(s) = s.get() {
            s.render_metrics(out)
        } else if let Some(f) = f.get() {
            f.render_metrics(out)
        }
    }) as MetricsFn);
    let (s, f) = (sink.clone(), sink_failure.clone());
    state.status.push((
        "elasticsearch".into(),
        Arc::new(move || match (s.get(), f.get()) {
            (Some(s), _) => s.status(),
            (None, Some(f)) => f.status(),
            (None, None) => serde_json::json!({ "state": "ok", "enabled": false }),
        }) as StatusFn,
    ));
    let r = reloader.clone();
    state
        .metrics
        .push(Arc::new(move |out: &mut String| r.render_metrics(out)) as MetricsFn);
    let r = reloader.clone();
    state
        .status
        .push(("config".into(), Arc::new(move || r.status()) as StatusFn));
    let (i, r) = (ingest.clone(), reloader.clone());
    state.health =
        Some(Arc::new(move || health::problems(i.stats(), r.stall_timeout())) as HealthFn);
    state
}

async fn serve_until_signal(
    cfg: &Config,
    state: Arc<AppState>,
    demo: bool,
    wake_reload: crossbeam_channel::Sender<()>,
    has_file: bool,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
        .await
        .map_err(|e| format!("http.listen {}: {e}", cfg.http.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("http.listen {}: {e}", cfg.http.listen))?;
    let server = http::Server::new(&cfg.http, state).map_err(|e| format!("http: {e}"))?;
    println!("runnel: listening on {}://{addr}", server.scheme());
    if demo {
        print_demo_help(cfg, addr);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(server.serve(listener, stop_rx));
    tokio::select! {
        _ = wait_for_signal(wake_reload, has_file) => {}
        r = &mut server => {
            // The server loop only ends when told to: anything else is a dead part.
            let how = match r {
                Err(e) if e.is_panic() => "panicked",
                _ => "ended unexpectedly",
            };
            supervise::died("http server", how);
        }
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    Ok(())
}

/// Wait for SIGTERM or Ctrl-C; on the way, each SIGHUP wakes the reload thread.
async fn wait_for_signal(wake_reload: crossbeam_channel::Sender<()>, has_file: bool) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; reloads follow the file only");
            None
        }
    };
    let hangup = async {
        loop {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
            if has_file {
                tracing::info!("SIGHUP: re-reading the config file");
                // Full: a re-read is pending already.
                let _ = wake_reload.try_send(());
            } else {
                tracing::info!("SIGHUP: the agent runs without --config; nothing to reload");
            }
        }
    };
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
                _ = hangup => {},
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on Ctrl-C only");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = hangup => {},
            }
        }
    }
}

fn print_demo_help(cfg: &Config, addr: std::net::SocketAddr) {
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    println!(
        "runnel demo: writing Docker logs under {} and CRI logs under {}\n\
         try:\n  curl -s http://{host}/v1/sources\n  \
         curl -s 'http://{host}/v1/logs?namespace=shop&pod=web-0&tailLines=5&timestamps=true'\n  \
         curl -sN 'http://{host}/v1/logs?namespace=shop&pod=web-0&follow=true'\n  \
         curl -s http://{host}/metrics | grep ^runnel_\n  \
         runnel logs --server http://{host} -n shop web-0 --tail 5\n  \
         runnel logs --data-dir {} -n shop web-0 --since 1m\n\
         stop with Ctrl-C",
        cfg.inputs.docker.root.display(),
        cfg.inputs.cri.root.display(),
        cfg.data_dir.join("index").display(),
    );
}
