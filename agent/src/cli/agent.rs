//! `runnel agent`: open the index, start the inputs, the metrics collector and the sinks, serve
//! HTTP, and shut everything down in order on SIGTERM (final sync before exit).

use super::AgentArgs;
use crate::http::{self, AppState, MetricsFn, StatusFn, TopFn};
use crate::{demo, metrics, tail};
use runnel_config::Config;
use runnel_index::{Limits, Store};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long `--oneshot` waits for the sink to ship everything.
const ONESHOT_SINK_TIMEOUT: Duration = Duration::from_secs(300);

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
    }
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        runnel_config::LogFormat::Json => builder.json().try_init(),
        runnel_config::LogFormat::Text => builder.try_init(),
    };
}

/// Point the inputs and the data dir at a temporary node layout for `--demo`.
fn demo_layout(cfg: &mut Config, root: &Path) {
    cfg.data_dir = root.join("data");
    cfg.inputs.docker.root = root.join("docker/containers");
    cfg.inputs.cri.root = root.join("pods");
}

/// Run the agent; returns the process exit code.
pub fn run_agent(args: &AgentArgs) -> i32 {
    let mut cfg = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("runnel: invalid config:\n{e}");
                return 2;
            }
        },
        None => Config::default(),
    };
    init_logging(&cfg);
    let demo_dir = if args.demo {
        match tempfile::Builder::new().prefix("runnel-demo-").tempdir() {
            Ok(d) => {
                demo_layout(&mut cfg, d.path());
                Some(d)
            }
            Err(e) => {
                eprintln!("runnel: cannot create the demo directory: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    match run(&cfg, args, demo_dir.as_ref().map(|d| d.path())) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("runnel: {e}");
            1
        }
    }
}

fn run(cfg: &Config, args: &AgentArgs, demo_root: Option<&Path>) -> Result<(), String> {
    let generator = match demo_root {
        Some(root) => {
            Some(demo::Generator::start(root).map_err(|e| format!("demo generator: {e}"))?)
        }
        None => None,
    };
    let index_dir = cfg.data_dir.join("index");
    let store = Arc::new(
        Store::open(&index_dir, limits(cfg)).map_err(|e| format!("opening the index: {e}"))?,
    );
    let ingest =
        tail::Ingest::start(cfg, store.clone()).map_err(|e| format!("starting inputs: {e}"))?;
    let sink = if cfg.sinks.elasticsearch.enabled {
        let state_dir = cfg.data_dir.join("sinks").join("elasticsearch");
        Some(
            runnel_sinks::ElasticsearchSink::start(
                &cfg.sinks.elasticsearch,
                &cfg.node_name,
                store.clone(),
                &state_dir,
            )
            .map_err(|e| format!("starting the elasticsearch sink: {e}"))?,
        )
    } else {
        None
    };

    if args.oneshot {
        ingest
            .run_until_eof()
            .map_err(|e| format!("ingesting: {e}"))?;
        if let Some(sink) = sink {
            sink.drain(ONESHOT_SINK_TIMEOUT)
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

    let container_metrics = if cfg.metrics.enabled {
        Some(Arc::new(
            metrics::MetricsService::start(
                metrics::Settings::from_config(cfg),
                Some(store.clone()),
                cfg.metrics.interval,
            )
            .map_err(|e| format!("starting the metrics collector: {e}"))?,
        ))
    } else {
        None
    };
    let ingest = Arc::new(ingest);
    let sink = sink.map(Arc::new);
    let ready = Arc::new(AtomicBool::new(false));
    {
        let (ingest, ready) = (ingest.clone(), ready.clone());
        std::thread::Builder::new()
            .name("readiness".into())
            .spawn(move || {
                ingest.wait_ready();
                ready.store(true, Ordering::Release);
            })
            .map_err(|e| format!("spawning a thread: {e}"))?;
    }
    let mut state = AppState::new(store.clone(), ready);
    {
        let ingest = ingest.clone();
        state
            .metrics
            .push(Arc::new(move |out: &mut String| ingest.render_metrics(out)) as MetricsFn);
    }
    if let Some(m) = &container_metrics {
        let (render, top) = (m.clone(), m.clone());
        state
            .metrics
            .push(Arc::new(move |out: &mut String| render.render_metrics(out)) as MetricsFn);
        state.top = Some(Arc::new(move |by: &str, limit: usize| top.top(by, limit)) as TopFn);
    }
    if let Some(s) = &sink {
        let (render, status) = (s.clone(), s.clone());
        state
            .metrics
            .push(Arc::new(move |out: &mut String| render.render_metrics(out)) as MetricsFn);
        state.status.push((
            "elasticsearch".into(),
            Arc::new(move || status.status()) as StatusFn,
        ));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("runnel-http")
        .enable_all()
        .build()
        .map_err(|e| format!("starting the HTTP runtime: {e}"))?;
    let state = Arc::new(state);
    runtime.block_on(serve_until_signal(cfg, state.clone(), demo_root.is_some()))?;
    // Drop what the server's tasks still hold on their threads first, so that the last
    // references to the components are dropped here, outside any async context.
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(state);

    tracing::info!("shutting down: stopping inputs and syncing the index");
    if let Ok(ingest) = Arc::try_unwrap(ingest) {
        ingest.shutdown();
    }
    if let Some(m) = container_metrics.and_then(|m| Arc::try_unwrap(m).ok()) {
        m.shutdown();
    }
    if let Some(sink) = sink.and_then(|s| Arc::try_unwrap(s).ok()) {
        sink.shutdown();
    }
    if let Some(g) = generator {
        g.stop();
    }
    Ok(())
}

async fn serve_until_signal(cfg: &Config, state: Arc<AppState>, demo: bool) -> Result<(), String> {
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
    let server = tokio::spawn(server.serve(listener, stop_rx));
    wait_for_signal().await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
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
