//! Probes and scrapes do not queue behind the write path: with a source's lock held (as a
//! seal or an fsync of that source holds it), `/metrics` still renders a fresh page from a
//! snapshot and `/healthz` and `/readyz` answer at once. The real server over a real socket,
//! on a store the test holds in the same process.

use runnel_agent::http::{AppState, Server};
use runnel_config::HttpConfig;
use runnel_index::{Limits, NewRecord, Position, RecordFlags, Store, Stream, TimeStyle};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn record(message: &[u8]) -> NewRecord<'_> {
    NewRecord {
        time_ns: 1_700_000_000_000_000_000,
        time_style: TimeStyle::default(),
        stream: Stream::Stdout,
        flags: RecordFlags::default(),
        message,
        position: Position::None,
    }
}

/// GET within `timeout`: status and body, or None if the server did not answer in time.
fn get(addr: &str, path: &str, timeout: Duration) -> Option<(u16, String)> {
    match ureq::get(&format!("http://{addr}{path}"))
        .timeout(timeout)
        .call()
    {
        Ok(r) => Some((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(code, r)) => Some((code, r.into_string().unwrap_or_default())),
        Err(_) => None,
    }
}

fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn metrics_and_health_answer_while_a_source_lock_is_held_as_by_a_seal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Limits::default()).unwrap());
    for key in ["busy", "calm"] {
        store.append(key, &record(b"a line")).unwrap();
    }
    store.sync().unwrap();
    store.seal("busy").unwrap();

    let state = Arc::new(AppState::new(
        store.clone(),
        Arc::new(AtomicBool::new(true)),
    ));
    let cfg = HttpConfig {
        listen: "127.0.0.1:0".into(),
        ..HttpConfig::default()
    };
    let server = Server::new(&cfg, state).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    rt.spawn(server.serve(listener, stop_rx));

    let (code, page) = get(&addr, "/metrics", Duration::from_secs(10)).expect("first scrape");
    assert_eq!(code, 200, "{page}");
    let sealed = sample(&page, "runnel_index_sealed_segments");
    assert_eq!(sealed, Some(1.0), "{page}");

    // Hold "busy"'s lock on another thread until released (what a seal or an fsync of
    // that source does for its whole duration).
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = {
        let store = store.clone();
        std::thread::spawn(move || {
            store
                .append_run("busy", |a| {
                    a.append(&record(b"held")).unwrap();
                    held_tx.send(()).unwrap();
                    let _ = release_rx.recv_timeout(Duration::from_secs(60));
                })
                .unwrap();
        })
    };
    held_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the source lock was taken");

    let quick = Duration::from_secs(3);
    let mut fresh = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while fresh.is_none() && Instant::now() < deadline {
        for probe in ["/healthz", "/readyz"] {
            let answer = get(&addr, probe, quick);
            assert_eq!(
                answer.as_ref().map(|a| a.0),
                Some(200),
                "{probe} did not answer while a source was held: {answer:?}"
            );
        }
        let (code, page) =
            get(&addr, "/metrics", quick).expect("/metrics did not answer while a source was held");
        assert_eq!(code, 200, "{page}");
        // A page rendered now (not the cached one from before the hold).
        if sample(&page, "runnel_http_metrics_page_age_seconds") == Some(0.0) {
            fresh = Some(page);
        }
    }
    let _ = release_tx.send(());
    holder.join().unwrap();
    let page = fresh.expect("no freshly rendered /metrics page while the source was held");
    assert_eq!(
        sample(&page, "runnel_index_sealed_segments"),
        sealed,
        "the busy source's figures were not the last ones seen: {page}"
    );
    assert_eq!(
        sample(&page, "runnel_index_records_appended_total"),
        Some(2.0)
    );
}
