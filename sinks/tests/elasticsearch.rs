//! The sink against a real OpenSearch-compatible server (osmem-server), directly and through
//! a fault-injecting proxy.

mod support;

use runnel_index::{
    FileId, Limits, NewRecord, Position, RecordFlags, SourceIdentity, Store, Stream, TimeStyle,
};
use runnel_sinks::{ElasticsearchSink, SinkHandle};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::proxy::{Fault, Proxy};
use support::{es_config, Osmem};

/// 2026-01-02T03:04:05Z
const T0: i64 = 1_767_323_045_000_000_000;

fn cri_identity() -> SourceIdentity {
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), "shop".to_string());
    labels.insert("app.kubernetes.io/name".to_string(), "web".to_string());
    SourceIdentity {
        container_id: Some("c0ffee".repeat(8)),
        container_name: Some("web".into()),
        image: Some("registry.example/web:1.2".into()),
        namespace: Some("shop".into()),
        pod: Some("web-0".into()),
        pod_uid: Some("uid-123".into()),
        container: Some("web".into()),
        restart: Some(0),
        labels,
        log_path: Some("/var/log/pods/shop_web-0_uid-123/web/0.log".into()),
    }
}

const CRI_KEY: &str = "cri:shop_web-0_uid-123/web/0";
const SIDECAR_KEY: &str = "stream:sidecar-1";

/// Write `n` records into source `key` (file positions for the CRI source, stream positions
/// otherwise); every `poison_every`-th message contains POISON (the proxy rejects those).
fn fill(store: &Store, key: &str, id: &SourceIdentity, from: usize, n: usize, poison_every: usize) {
    store.upsert_source(key, id).unwrap();
    for i in from..from + n {
        let msg = if poison_every > 0 && i % poison_every == poison_every - 1 {
            format!("{key} line {i} POISON")
        } else if i % 7 == 3 {
            format!("{{\"level\":\"info\",\"n\":{i},\"src\":\"{key}\"}}")
        } else {
            format!("{key} line {i} \"quoted\" tab\there")
        };
        let mut bytes = msg.into_bytes();
        if i % 11 == 5 {
            bytes.push(0xff); // invalid UTF-8
        }
        let position = if key == CRI_KEY {
            Position::File {
                file: FileId {
                    dev: 1,
                    ino: 2,
                    fingerprint: 3,
                },
                offset: (i as u64 + 1) * 100,
            }
        } else {
            Position::Stream {
                stream_id: 9,
                seq: i as u64,
            }
        };
        store
            .append(
                key,
                &NewRecord {
                    time_ns: T0 + i as i64 * 1_000_001,
                    time_style: TimeStyle::default(),
                    stream: if i % 2 == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    },
                    flags: RecordFlags(0),
                    message: &bytes,
                    position,
                },
            )
            .unwrap();
    }
    store.sync().unwrap();
}

fn open_store(dir: &Path) -> Arc<Store> {
    Arc::new(Store::open(&dir.join("index"), Limits::default()).unwrap())
}

fn start(cfg: &runnel_config::ElasticsearchConfig, store: &Arc<Store>, dir: &Path) -> SinkHandle {
    ElasticsearchSink::start(cfg, "node-a", store.clone(), &dir.join("sink")).unwrap()
}

#[test]
fn ships_every_record_once_with_ecs_fields_and_resumes_from_the_cursor() {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let sidecar = SourceIdentity {
        container_name: Some("sidecar".into()),
        ..Default::default()
    };
    fill(&store, CRI_KEY, &cri_identity(), 0, 300, 0);
    fill(&store, SIDECAR_KEY, &sidecar, 0, 200, 0);
    let mut cfg = es_config(&es.url);
    cfg.parse_json = Some("json".into());
    cfg.template.install = true;
    cfg.template.name = "runnel-test".into();
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(60)).unwrap();
    assert_eq!(es.count("runnel-test-*"), 500);
    assert_eq!(sink.status()["state"], "ok", "{}", sink.status());
    let mut metrics = String::new();
    sink.render_metrics(&mut metrics);
    assert!(
        metrics.contains("runnel_sink_es_documents_acked_total 500"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "runnel_sink_es_cursor_lag_records{source=\"cri:shop_web-0_uid-123/web/0\"} 0"
        ),
        "{metrics}"
    );
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in {metrics}"))
    };
    let m = sink.metrics();
    let requests = m.requests_ok.load(Relaxed) as f64;
    assert!(requests >= 1.0);
    assert_eq!(value("runnel_sink_es_bulk_latency_seconds_count"), requests);
    assert_eq!(
        value("runnel_sink_es_bulk_latency_seconds_bucket{le=\"+Inf\"}"),
        requests
    );
    assert!(value("runnel_sink_es_bulk_latency_seconds_sum") > 0.0);
    assert_eq!(value("runnel_sink_es_in_flight_batches"), 0.0);
    assert_eq!(value("runnel_sink_es_documents_sent_total"), 500.0);
    let (raw, wire) = (
        value("runnel_sink_es_bytes_raw_total"),
        value("runnel_sink_es_bytes_compressed_total"),
    );
    assert!(
        raw > 500.0 * 300.0 && wire < raw / 3.0,
        "gzip: {wire} of {raw}"
    );
    sink.shutdown();

    // The template was installed.
    let (s, b) = support::http(
        "GET",
        &format!("{}/_index_template/runnel-test", es.url),
        b"",
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));

    // Documents match the records field by field.
    let docs = es.all_docs("runnel-test-*");
    assert_eq!(docs.len(), 500);
    let by_msg: BTreeMap<String, serde_json::Value> = docs
        .iter()
        .map(|(_, d)| (d["message"].as_str().unwrap().to_string(), d.clone()))
        .collect();
    assert_eq!(
        by_msg.len(),
        500,
        "messages are unique, so no document is duplicated"
    );
    let d = &by_msg[&format!("{CRI_KEY} line 5 \"quoted\" tab\there\u{fffd}")];
    assert_eq!(d["@timestamp"], "2026-01-02T03:04:05.005000005Z");
    assert_eq!(d["stream"], "stderr");
    assert_eq!(d["log"]["offset"], 600);
    assert_eq!(
        d["log"]["file"]["path"],
        "/var/log/pods/shop_web-0_uid-123/web/0.log"
    );
    assert_eq!(d["container"]["id"], "c0ffee".repeat(8));
    assert_eq!(d["container"]["name"], "web");
    assert_eq!(d["container"]["image"]["name"], "registry.example/web:1.2");
    assert_eq!(d["kubernetes"]["namespace"], "shop");
    assert_eq!(d["kubernetes"]["pod"]["name"], "web-0");
    assert_eq!(d["kubernetes"]["pod"]["uid"], "uid-123");
    assert_eq!(d["kubernetes"]["container"]["name"], "web");
    assert_eq!(d["kubernetes"]["node"]["name"], "node-a");
    assert_eq!(d["kubernetes"]["labels"]["app"], "shop");
    assert_eq!(d["kubernetes"]["labels"]["app_kubernetes_io/name"], "web");
    assert_eq!(d["host"]["name"], "node-a");
    assert_eq!(d["agent"]["type"], "runnel");
    assert_eq!(d["agent"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(d["event"]["dataset"], "runnel.container_logs");
    let j = &by_msg[&format!("{{\"level\":\"info\",\"n\":3,\"src\":\"{SIDECAR_KEY}\"}}")];
    assert_eq!(
        j["json"]["level"], "info",
        "parse_json puts the object under its field"
    );
    assert!(j.get("level").is_none(), "never merged into the root");
    assert_eq!(j["container"]["name"], "sidecar");
    assert!(
        j.get("log").is_none(),
        "no file position for a stream source"
    );

    // More records later, and a new sink on the same state: only the new ones are sent.
    fill(&store, CRI_KEY, &cri_identity(), 300, 50, 0);
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(60)).unwrap();
    assert_eq!(
        sink.metrics().docs_sent.load(Relaxed),
        50,
        "resumed from the cursor"
    );
    sink.shutdown();
    assert_eq!(es.count("runnel-test-*"), 550);
}

#[test]
fn an_aborted_sink_restarts_from_its_cursor_and_duplicates_nothing() {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, CRI_KEY, &cri_identity(), 0, 3000, 0);
    let mut cfg = es_config(&proxy.url);
    cfg.batch.max_docs = 50;
    cfg.concurrency = runnel_config::Concurrency::fixed(2);
    proxy.state.lock().unwrap().script =
        std::iter::repeat_n(Fault::Delay(Duration::from_millis(100)), 1000).collect();
    let sink = start(&cfg, &store, dir.path());
    let t0 = Instant::now();
    let cursor_file = dir.path().join("sink/cursor.json");
    while sink.metrics().docs_acked.load(Relaxed) < 600 || !cursor_file.exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Mid-shipping: batches in flight, cursor somewhere behind.
    sink.abort();
    let acked_before = es.count("runnel-test-*");
    assert!(
        acked_before < 3000,
        "aborted before the end ({acked_before})"
    );
    let cursor = std::fs::read_to_string(dir.path().join("sink/cursor.json")).unwrap();
    assert!(cursor.contains("\"version\":\"1\""), "{cursor}");
    proxy.state.lock().unwrap().script.clear();
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(60)).unwrap();
    let resent = sink.metrics().docs_sent.load(Relaxed);
    assert!(
        resent < 3000,
        "the restart resumed from the cursor, it sent {resent}"
    );
    sink.shutdown();
    assert_eq!(es.count("runnel-test-*"), 3000);
    assert!(proxy.state.lock().unwrap().violations.is_empty());
}

#[test]
fn faults_end_with_exactly_the_good_documents_and_poison_in_the_dead_letter_file() {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let n = 2000;
    fill(&store, CRI_KEY, &cri_identity(), 0, n, 97);
    fill(&store, SIDECAR_KEY, &SourceIdentity::default(), 0, n, 0);
    let poison = (0..n).filter(|i| i % 97 == 96).count();
    {
        let mut s = proxy.state.lock().unwrap();
        s.item_fault_every = 13;
        s.script = [
            Fault::Status(429),
            Fault::Status(500),
            Fault::Reset,
            Fault::Truncated,
            Fault::Empty,
            Fault::Delay(Duration::from_millis(300)),
            Fault::TooLargeIfMany,
            Fault::Status(503),
            Fault::Reset,
            Fault::Truncated,
            Fault::Status(401),
            Fault::Status(403),
            Fault::Status(404),
            Fault::Delay(Duration::from_millis(1500)),
            Fault::NotJson,
            Fault::MissingItem,
        ]
        .into();
    }
    let mut cfg = es_config(&proxy.url);
    cfg.batch.max_bytes = 16 << 10;
    cfg.max_in_flight_bytes = 64 << 10;
    cfg.request_timeout = Duration::from_secs(1);
    cfg.dead_letter.path = Some(dir.path().join("dead/letters.ndjson"));
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(120)).unwrap();
    let m = sink.metrics();
    let high = m.in_flight_bytes_max.load(Relaxed);
    assert!(
        high > 0 && high <= 64 << 10,
        "in-flight high-water {high} over the limit"
    );
    assert!(m.docs_retried.load(Relaxed) > 0);
    assert_eq!(m.docs_dead_lettered.load(Relaxed), poison as u64);
    assert!(m.requests_failed.load(Relaxed) >= 15);
    sink.shutdown();
    assert_eq!(es.count("runnel-test-*"), (2 * n - poison) as u64);
    let dl = std::fs::read_to_string(dir.path().join("dead/letters.ndjson")).unwrap();
    let lines: Vec<serde_json::Value> = dl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), poison);
    for l in &lines {
        assert_eq!(l["status"], 400);
        assert_eq!(l["reason"]["type"], "mapper_parsing_exception");
        assert!(l["document"]["message"]
            .as_str()
            .unwrap()
            .contains("POISON"));
        assert!(l["index"].as_str().unwrap().starts_with("runnel-test-"));
    }
    let s = proxy.state.lock().unwrap();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert!(s.item_faults > 0 && s.script.is_empty());
}

/// Wait until `cond` holds, for at most `limit`.
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_dead_letter_file_that_cannot_be_written_holds_the_batch_until_it_can() {
    // The dead-letter path is a symlink to /dev/full: every write fails with ENOSPC, as on a
    // full data disk. The rejected documents must not be counted as dead-lettered nor passed
    // by the cursor: a restart sends them again, and once the path can be written (the link
    // now points at a real file) each lands in the file exactly once.
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let (n, every) = (300, 10);
    fill(&store, CRI_KEY, &cri_identity(), 0, n, every);
    let poison = n / every;
    std::fs::create_dir_all(dir.path().join("dead")).unwrap();
    let link = dir.path().join("dead/letters.ndjson");
    std::os::unix::fs::symlink("/dev/full", &link).unwrap();
    let mut cfg = es_config(&proxy.url);
    cfg.dead_letter.path = Some(link.clone());
    for life in 0..2 {
        let sink = start(&cfg, &store, dir.path());
        let m = sink.metrics();
        wait_for(Duration::from_secs(60), "dead-letter write errors", || {
            m.dead_letter_errors.load(Relaxed) >= 3
        });
        assert_eq!(
            m.docs_dead_lettered.load(Relaxed),
            0,
            "life {life}: nothing is dead-lettered before it is in the file"
        );
        let status = sink.status();
        assert!(
            status["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("dead-letter file")),
            "{status}"
        );
        let mut text = String::new();
        sink.render_metrics(&mut text);
        assert!(
            text.lines().any(
                |l| l.starts_with("runnel_sink_es_dead_letter_write_errors_total")
                    && !l.ends_with(" 0")
            ),
            "the failed writes are on /metrics"
        );
        if life == 0 {
            sink.shutdown();
            continue;
        }
        // Space returns: the path now leads to a real file.
        let real = dir.path().join("dead/real.ndjson");
        let tmp = dir.path().join("dead/next");
        std::os::unix::fs::symlink(&real, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        sink.drain(Duration::from_secs(60)).unwrap();
        assert_eq!(m.docs_dead_lettered.load(Relaxed), poison as u64);
        sink.shutdown();
        let text = std::fs::read_to_string(&real).unwrap();
        let mut messages: Vec<String> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                // `fill` appends an invalid byte to some messages: shipped as U+FFFD.
                let m = v["document"]["message"].as_str().unwrap();
                m.trim_end_matches('\u{fffd}').to_string()
            })
            .collect();
        messages.sort();
        let mut want: Vec<String> = (0..n)
            .filter(|i| i % every == every - 1)
            .map(|i| format!("{CRI_KEY} line {i} POISON"))
            .collect();
        want.sort();
        assert_eq!(messages, want, "every rejected document once, none lost");
    }
    assert_eq!(es.count("runnel-test-*"), (n - poison) as u64);
}

#[test]
fn fails_over_between_endpoints_with_path_prefix_auth_and_no_template_api() {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "/es");
    proxy.state.lock().unwrap().no_template_api = true;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, CRI_KEY, &cri_identity(), 0, 400, 0);
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let mut cfg = es_config(&proxy.url);
    // A dead endpoint first: every other attempt fails over to the proxy.
    cfg.endpoints = vec!["http://127.0.0.1:9".into(), format!("{}/", proxy.url)];
    cfg.batch.max_docs = 40;
    cfg.auth.user = Some("elastic".into());
    cfg.auth.password_file = Some(pw);
    cfg.template.install = true;
    let t0 = Instant::now();
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(60)).unwrap();
    let failed = sink.metrics().requests_failed.load(Relaxed);
    let took = t0.elapsed();
    sink.shutdown();
    assert_eq!(es.count("runnel-test-*"), 400);
    // The dead endpoint is skipped for retry.max (200 ms, the quarantine floor is 100 ms)
    // after each refusal, instead of taking every other request.
    let quarantines = took.as_millis() as u64 / 100 + 1;
    assert!(
        failed <= quarantines,
        "{failed} failed requests in {took:?} for 10 batches"
    );
    let s = proxy.state.lock().unwrap();
    assert_eq!(
        s.template_requests, 1,
        "template was attempted; its 404 was only a warning"
    );
    // base64("elastic:s3cret")
    assert!(
        s.authorization
            .iter()
            .all(|a| a == "Basic ZWxhc3RpYzpzM2NyZXQ="),
        "{:?}",
        s.authorization
    );
    assert!(!s.authorization.is_empty());
}

#[test]
fn bad_config_and_state_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let err = |cfg: &runnel_config::ElasticsearchConfig| {
        ElasticsearchSink::start(cfg, "n", store.clone(), &dir.path().join("sink"))
            .unwrap_err()
            .to_string()
    };
    let e = err(&es_config("localhost:9200"));
    assert!(
        e.contains("endpoints") && e.contains("localhost:9200"),
        "{e}"
    );
    let mut cfg = es_config("http://127.0.0.1:9200");
    cfg.auth.user = Some("u".into());
    cfg.auth.password_file = Some(dir.path().join("missing-password"));
    let e = err(&cfg);
    assert!(
        e.contains("auth.password_file") && e.contains("missing-password"),
        "{e}"
    );
    let e = err(&es_config("https://elastic:hunter2@es.example:9200"));
    assert!(
        e.contains("credentials in the URL") && !e.contains("hunter2"),
        "{e}"
    );
    let mut cfg = es_config("http://127.0.0.1:9200");
    cfg.index = "logs-%{nope}".into();
    assert!(err(&cfg).contains("unknown field %{nope}"));
    cfg.index = "Logs-%Y".into();
    assert!(err(&cfg).contains("not allowed in an index name"));
    cfg.index = "logs-runnel-%Y.%m.%d".into();
    cfg.mode = runnel_config::EsMode::DataStream;
    let e = err(&cfg);
    assert!(
        e.contains("sinks.elasticsearch.index") && e.contains("logs-runnel-default"),
        "{e}"
    );
    let mut cfg = es_config("http://127.0.0.1:9200");
    cfg.auth.api_key_file = Some(dir.path().join("key"));
    cfg.auth.bearer_token_file = Some(dir.path().join("token"));
    assert!(err(&cfg).contains("not several"));
    let mut cfg = es_config("http://127.0.0.1:9200");
    cfg.auth.password_file = Some(dir.path().join("pw"));
    assert!(err(&cfg).contains("auth.user is not"));
    let mut cfg = es_config("http://127.0.0.1:9200");
    cfg.tls.ca_file = Some(dir.path().join("missing-ca.pem"));
    let e = err(&cfg);
    assert!(
        e.contains("tls.ca_file") && e.contains("missing-ca.pem"),
        "{e}"
    );
    let mut cfg = es_config("http://127.0.0.1:9200");
    cfg.tls.cert_file = Some(dir.path().join("client.pem"));
    assert!(err(&cfg).contains("cert_file and key_file must be set together"));
    std::fs::create_dir_all(dir.path().join("sink")).unwrap();
    std::fs::write(dir.path().join("sink/cursor.json"), "{garbage").unwrap();
    let e = err(&es_config("http://127.0.0.1:9200"));
    assert!(
        e.contains("corrupt sink cursor file") && e.contains("cursor.json"),
        "{e}"
    );
}

#[test]
fn an_outage_keeps_the_data_and_reports_degraded_and_lag_until_the_cluster_is_back() {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, CRI_KEY, &cri_identity(), 0, 100, 0);
    let mut cfg = es_config(&proxy.url);
    cfg.template.install = false;
    proxy.state.lock().unwrap().down = true;
    let sink = start(&cfg, &store, dir.path());
    let t0 = Instant::now();
    while sink.status()["state"] != "degraded" {
        assert!(t0.elapsed() < Duration::from_secs(10), "never degraded");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(sink.status()["last_error"]
        .as_str()
        .unwrap()
        .contains("503"));
    // Lag while down: all 100 records, and from the oldest unacknowledged record (T0) to
    // the newest (T0 + 99 × 1.000001 ms).
    loop {
        assert!(t0.elapsed() < Duration::from_secs(10), "lag never reported");
        let lag = sink.metrics().lag.lock().unwrap().get(CRI_KEY).cloned();
        if let Some(l) = lag.filter(|l| l.records > 0) {
            assert_eq!(l.records, 100);
            assert!((l.seconds - 0.099000099).abs() < 1e-6, "{}", l.seconds);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy.state.lock().unwrap().down = false;
    sink.drain(Duration::from_secs(60)).unwrap();
    assert_eq!(sink.status()["state"], "ok");
    sink.shutdown();
    assert_eq!(es.count("runnel-test-*"), 100);
}

#[test]
fn the_handle_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SinkHandle>();
}

#[test]
fn api_keys_and_bearer_tokens_come_from_files() {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, CRI_KEY, &cri_identity(), 0, 20, 0);
    let key = dir.path().join("api-key");
    std::fs::write(&key, "myid:mykey\n").unwrap();
    let mut cfg = es_config(&proxy.url);
    cfg.auth.api_key_file = Some(key);
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(30)).unwrap();
    sink.shutdown();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-123").unwrap();
    fill(&store, CRI_KEY, &cri_identity(), 20, 20, 0);
    let mut cfg = es_config(&proxy.url);
    cfg.auth.bearer_token_file = Some(token);
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(30)).unwrap();
    assert!(
        !format!("{:?} {}", sink, sink.status()).contains("tok-123"),
        "secrets never shown"
    );
    let transport = runnel_sinks::transport::Transport::new(&cfg).unwrap();
    assert!(
        !format!("{transport:?}").contains("tok-123"),
        "nor in the client's Debug output"
    );
    sink.shutdown();
    assert_eq!(es.count("runnel-test-*"), 40);
    let seen = proxy.state.lock().unwrap().authorization.clone();
    // base64("myid:mykey")
    assert!(
        seen.contains(&"ApiKey bXlpZDpteWtleQ==".to_string()),
        "{seen:?}"
    );
    assert!(seen.contains(&"Bearer tok-123".to_string()), "{seen:?}");
}

#[test]
fn records_deleted_by_retention_during_an_outage_are_counted_never_hidden() {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    proxy.state.lock().unwrap().down = true;
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        segment_max_bytes: 32 << 10,
        block_raw_bytes: 8 << 10,
        max_disk_bytes: 64 << 10,
        ..Limits::default()
    };
    let store = Arc::new(Store::open(&dir.path().join("index"), limits).unwrap());
    let mut cfg = es_config(&proxy.url);
    cfg.batch.max_bytes = 8 << 10;
    cfg.max_in_flight_bytes = 16 << 10;
    let sink = start(&cfg, &store, dir.path());
    let n = 4000;
    fill(&store, CRI_KEY, &cri_identity(), 0, n, 0);
    store.seal(CRI_KEY).unwrap();
    store.enforce_retention().unwrap();
    let first = store.sources()[0].first_seq;
    assert!(
        first > 0,
        "retention deleted the oldest records (first_seq {first})"
    );
    proxy.state.lock().unwrap().down = false;
    sink.drain(Duration::from_secs(60)).unwrap();
    let lost = sink.metrics().records_lost.load(Relaxed);
    sink.shutdown();
    let shipped = es.count("runnel-test-*");
    assert!(lost > 0, "the cursor was overtaken by retention");
    assert_eq!(
        shipped + lost,
        n as u64,
        "every record is shipped or counted as lost"
    );
}

#[test]
fn batches_respect_bytes_docs_and_timeout_and_go_gzipped_as_ndjson_by_default() {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, CRI_KEY, &cri_identity(), 0, 600, 0);
    // Bytes bind (a document is ~800 bytes encoded, so 16 KiB holds ~20, far below
    // max_docs).
    let mut cfg = es_config(&proxy.url);
    cfg.batch.max_bytes = 16 << 10;
    cfg.batch.max_docs = 100_000;
    assert_eq!(cfg.compression, runnel_config::Compression::Gzip, "default");
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(60)).unwrap();
    sink.shutdown();
    {
        let mut s = proxy.state.lock().unwrap();
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        assert_eq!(s.gzipped, s.requests, "gzip is on by default");
        assert!(
            s.max_body_bytes <= 16 << 10,
            "a body of {} bytes",
            s.max_body_bytes
        );
        assert!(
            s.max_docs < 100 && s.requests >= 20,
            "{} requests",
            s.requests
        );
        assert!(
            s.actions
                .iter()
                .all(|a| a.starts_with("create runnel-test-2026.01.02")),
            "{:?}",
            s.actions
        );
        s.requests = 0;
        s.gzipped = 0;
        s.max_docs = 0;
    }
    // Documents bind.
    fill(&store, CRI_KEY, &cri_identity(), 600, 100, 0);
    let mut cfg = es_config(&proxy.url);
    cfg.batch.max_docs = 7;
    cfg.compression = runnel_config::Compression::None;
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(60)).unwrap();
    sink.shutdown();
    {
        let s = proxy.state.lock().unwrap();
        assert_eq!(s.max_docs, 7);
        assert!(s.requests >= 100 / 7, "{} requests", s.requests);
        assert_eq!(s.gzipped, 0, "compression: none sends plain bodies");
    }
    // The wait binds: a few records with no drain go out after batch.timeout.
    let mut cfg = es_config(&proxy.url);
    cfg.batch.timeout = Duration::from_millis(300);
    let sink = start(&cfg, &store, dir.path());
    let before = proxy.state.lock().unwrap().requests;
    fill(&store, CRI_KEY, &cri_identity(), 700, 3, 0);
    let t0 = Instant::now();
    while es.count("runnel-test-*") < 703 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "a partial batch was never sent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "sent after {waited:?}, before the timeout"
    );
    assert_eq!(
        proxy.state.lock().unwrap().requests,
        before + 1,
        "one request for the three"
    );
    sink.shutdown();
}

#[test]
fn the_template_waits_for_the_cluster_and_goes_before_the_first_bulk() {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    proxy.state.lock().unwrap().down = true;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, CRI_KEY, &cri_identity(), 0, 50, 0);
    let mut cfg = es_config(&proxy.url);
    cfg.template.install = true;
    cfg.template.name = "runnel-late".into();
    let sink = start(&cfg, &store, dir.path());
    let t0 = Instant::now();
    while proxy.state.lock().unwrap().log.len() < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the template was not retried"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sink.status()["state"], "degraded");
    assert!(sink.status()["last_error"]
        .as_str()
        .unwrap()
        .contains("runnel-late"));
    proxy.state.lock().unwrap().down = false;
    sink.drain(Duration::from_secs(30)).unwrap();
    sink.shutdown();
    assert_eq!(es.count("runnel-test-*"), 50);
    let log = proxy.state.lock().unwrap().log.clone();
    let first_bulk = log.iter().position(|l| l == "POST /_bulk").unwrap();
    assert!(
        log[..first_bulk]
            .iter()
            .all(|l| l == "PUT /_index_template/runnel-late"),
        "{log:?}"
    );
    let (s, b) = support::http(
        "GET",
        &format!("{}/_index_template/runnel-late", es.url),
        b"",
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
}

#[test]
fn data_stream_mode_creates_into_the_named_stream_and_a_server_without_streams_dead_letters_with_its_reason(
) {
    // osmem accepts the data-stream template but answers every write into a data stream
    // with a 400 item (`data streams are not supported by osmem`): each document must land
    // in the dead-letter file with that reason, be counted, and show in the status.
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, CRI_KEY, &cri_identity(), 0, 30, 0);
    let mut cfg = es_config(&proxy.url);
    cfg.mode = runnel_config::EsMode::DataStream;
    cfg.index = "logs-runnel-%{kubernetes.namespace}".into();
    cfg.template.install = true;
    cfg.template.name = "runnel-ds".into();
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(30)).unwrap();
    let status = sink.status();
    assert_eq!(sink.metrics().docs_dead_lettered.load(Relaxed), 30);
    sink.shutdown();
    assert!(
        status["last_dead_letter_reason"]
            .as_str()
            .unwrap()
            .contains("data streams are not supported"),
        "{status}"
    );
    let s = proxy.state.lock().unwrap();
    assert_eq!(
        s.actions.iter().collect::<Vec<_>>(),
        ["create logs-runnel-shop"],
        "op_type create into one fixed stream"
    );
    let (st, b) = support::http("GET", &format!("{}/_index_template/runnel-ds", es.url), b"");
    assert_eq!(st, 200);
    let t: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let t = &t["index_templates"][0]["index_template"];
    assert!(t["data_stream"].is_object(), "{t}");
    assert_eq!(t["index_patterns"][0], "logs-runnel-*");
    let dl = std::fs::read_to_string(dir.path().join("sink").join(runnel_sinks::DEAD_LETTER_FILE))
        .unwrap();
    assert_eq!(dl.lines().count(), 30);
    let first: serde_json::Value = serde_json::from_str(dl.lines().next().unwrap()).unwrap();
    assert_eq!(first["status"], 400);
    assert_eq!(first["index"], "logs-runnel-shop");
    assert_eq!(first["reason"]["type"], "unsupported_operation_exception");
    assert_eq!(first["document"]["kubernetes"]["namespace"], "shop");
}

/// Start a sink that cannot get through, wait until it reports the failure, and return the
/// last error.
fn refused(cfg: &runnel_config::ElasticsearchConfig, store: &Arc<Store>, dir: &Path) -> String {
    let sink = start(cfg, store, dir);
    let t0 = Instant::now();
    while sink.status()["state"] != "degraded" {
        assert!(t0.elapsed() < Duration::from_secs(15), "never degraded");
        std::thread::sleep(Duration::from_millis(10));
    }
    let e = sink.status()["last_error"].as_str().unwrap().to_string();
    sink.shutdown();
    e
}

#[test]
fn tls_verifies_by_default_trusts_a_custom_ca_and_presents_a_client_certificate() {
    let es = Osmem::start();
    let tls = support::TlsForward::start(&es.url, true);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, CRI_KEY, &cri_identity(), 0, 20, 0);
    let base = es_config(&tls.url);
    assert!(base.tls.verify, "verification is on by default");

    // No CA configured: the server's certificate is not trusted.
    let e = refused(&base, &store, dir.path());
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // The wrong CA: still not trusted.
    let mut cfg = base.clone();
    cfg.tls.ca_file = Some(support::tls_file("other-ca.pem"));
    let e = refused(&cfg, &store, dir.path());
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert_eq!(es.count("runnel-test-*"), 0);
    // The right CA but no client certificate: the server refuses us.
    cfg.tls.ca_file = Some(support::tls_file("ca.pem"));
    let e = refused(&cfg, &store, dir.path());
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert!(
        tls.handshake_errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.to_lowercase().contains("certificate")),
        "{:?}",
        tls.handshake_errors.lock().unwrap()
    );
    assert_eq!(es.count("runnel-test-*"), 0);
    // CA and client certificate: shipped.
    cfg.tls.cert_file = Some(support::tls_file("client.pem"));
    cfg.tls.key_file = Some(support::tls_file("client.key"));
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(30)).unwrap();
    sink.shutdown();
    assert_eq!(es.count("runnel-test-*"), 20);
    // verify: false trusts any server certificate (the client certificate is still sent).
    fill(&store, CRI_KEY, &cri_identity(), 20, 20, 0);
    let mut cfg = base.clone();
    cfg.tls.verify = false;
    cfg.tls.cert_file = Some(support::tls_file("client.pem"));
    cfg.tls.key_file = Some(support::tls_file("client.key"));
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(30)).unwrap();
    sink.shutdown();
    assert_eq!(es.count("runnel-test-*"), 40);
}

const CHILD_ENV: &str = "RUNNEL_SINK_TEST_CHILD";

/// The child side of the SIGKILL test: ship `dir`'s index through `url` until killed (at
/// most a minute, should the parent die first). The password comes from the environment.
fn ship_until_killed(spec: &str) {
    let v: serde_json::Value = serde_json::from_str(spec).unwrap();
    let dir = Path::new(v["dir"].as_str().unwrap());
    let store = open_store(dir);
    let mut cfg = es_config(v["url"].as_str().unwrap());
    cfg.batch.max_docs = 50;
    cfg.auth.user = Some("elastic".into());
    let _sink = start(&cfg, &store, dir);
    std::thread::sleep(Duration::from_secs(60));
    std::process::exit(3);
}

#[test]
fn sigkill_mid_shipping_and_restart_still_yields_exactly_n_documents() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        ship_until_killed(&spec);
        return;
    }
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    let dir = tempfile::tempdir().unwrap();
    let n = 3000;
    {
        let store = open_store(dir.path());
        fill(&store, CRI_KEY, &cri_identity(), 0, n, 0);
    }
    proxy.state.lock().unwrap().script =
        std::iter::repeat_n(Fault::Delay(Duration::from_millis(100)), 1000).collect();
    let spec = serde_json::json!({"dir": dir.path(), "url": proxy.url}).to_string();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_mid_shipping_and_restart_still_yields_exactly_n_documents",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, spec)
        .env(runnel_sinks::transport::ENV_PASSWORD, "s3cret")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cursor_file = dir.path().join("sink/cursor.json");
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the shipper exited early"
        );
        let in_flight = proxy.state.lock().unwrap().in_flight;
        if in_flight > 0 && cursor_file.exists() && es.count("runnel-test-*") >= 600 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0);
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let landed = es.count("runnel-test-*");
    assert!(landed < n as u64, "killed before the end ({landed})");
    let auth = proxy.state.lock().unwrap().authorization.clone();
    // base64("elastic:s3cret"), the password from RUNNEL_ES_PASSWORD.
    assert!(
        !auth.is_empty() && auth.iter().all(|a| a == "Basic ZWxhc3RpYzpzM2NyZXQ="),
        "{auth:?}"
    );

    // Restart on the same index and state.
    proxy.state.lock().unwrap().script.clear();
    let store = open_store(dir.path());
    let mut cfg = es_config(&proxy.url);
    cfg.batch.max_docs = 50;
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(60)).unwrap();
    let resent = sink.metrics().docs_sent.load(Relaxed);
    sink.shutdown();
    assert!(
        resent < n as u64,
        "resumed from the cursor, not from 0 ({resent} sent)"
    );
    assert!(
        resent >= n as u64 - landed,
        "everything not landed was sent ({resent} sent, {landed} had landed)"
    );
    assert_eq!(es.count("runnel-test-*"), n as u64, "exactly N");
    let docs = es.all_docs("runnel-test-*");
    let messages: std::collections::BTreeSet<_> = docs
        .iter()
        .map(|(_, d)| d["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages.len(), n, "every record once");
}

#[test]
fn every_named_config_key_is_read_from_yaml_and_takes_effect() {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "/prefix");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let yaml = format!(
        r#"
sinks:
  elasticsearch:
    enabled: true
    endpoints: ["{url}"]
    index: "yaml-%{{kubernetes.namespace}}-%Y.%m"
    mode: index
    id: auto
    batch: {{ max_bytes: 64KiB, max_docs: 9, timeout: 100ms }}
    compression: none
    concurrency: 3
    auth: {{ user: elastic, password_file: "{d}/pw" }}
    tls: {{ ca_file: "{ca}", verify: true }}
    dead_letter: {{ path: "{d}/dl/rejects.ndjson", max_bytes: 4KiB }}
    retry: {{ initial: 10ms, max: 100ms }}
    template: {{ install: true, name: from-yaml }}
"#,
        url = proxy.url,
        d = dir.path().display(),
        ca = support::tls_file("ca.pem").display(),
    );
    let cfg = runnel_config::Config::from_yaml_str(&yaml, "test.yaml")
        .unwrap()
        .sinks
        .elasticsearch;
    let store = open_store(dir.path());
    fill(&store, CRI_KEY, &cri_identity(), 0, 40, 7);
    let sink = start(&cfg, &store, dir.path());
    sink.drain(Duration::from_secs(30)).unwrap();
    sink.shutdown();
    let s = proxy.state.lock().unwrap();
    assert_eq!(s.max_docs, 9, "batch.max_docs");
    assert_eq!(s.gzipped, 0, "compression: none");
    assert_eq!(s.template_requests, 1);
    assert!(
        s.log
            .contains(&"PUT /_index_template/from-yaml".to_string()),
        "{:?}",
        s.log
    );
    assert!(s
        .authorization
        .iter()
        .all(|a| a == "Basic ZWxhc3RpYzpzM2NyZXQ="));
    assert_eq!(
        s.actions.iter().collect::<Vec<_>>(),
        ["create yaml-shop-2026.01"]
    );
    drop(s);
    assert_eq!(es.count("yaml-shop-*"), 40 - 40 / 7);
    let docs = es.all_docs("yaml-shop-*");
    assert!(
        docs.iter().all(|(id, _)| id.len() != 32),
        "id: auto leaves the ids to the server"
    );
    let dl = std::fs::read_to_string(dir.path().join("dl/rejects.ndjson")).unwrap();
    assert_eq!(dl.lines().count(), 40 / 7, "dead_letter.path");
}

#[test]
fn a_source_the_index_forgets_leaves_the_cursor_file_and_a_recreated_one_ships_from_its_start() {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let other = SourceIdentity {
        container_name: Some("other".into()),
        ..Default::default()
    };
    fill(&store, CRI_KEY, &cri_identity(), 0, 50, 0);
    fill(&store, SIDECAR_KEY, &other, 0, 10, 0);
    let sink = start(&es_config(&es.url), &store, dir.path());
    sink.drain(Duration::from_secs(60)).unwrap();
    assert_eq!(es.count("runnel-test-*"), 60);
    let cursor_file = dir.path().join("sink").join("cursor.json");
    let cursors = || std::fs::read_to_string(&cursor_file).unwrap();
    assert!(cursors().contains(CRI_KEY), "{}", cursors());

    // The container is removed, and retention deletes its (2026-01-02) lines: the index
    // forgets the source. The sink drops its cursor without an error.
    store.retire_source(CRI_KEY).unwrap();
    store.seal(CRI_KEY).unwrap();
    store.enforce_retention().unwrap();
    assert!(store.sources().iter().all(|s| s.key != CRI_KEY));
    fill(&store, SIDECAR_KEY, &other, 10, 5, 0);
    sink.drain(Duration::from_secs(60)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cursors().contains(CRI_KEY) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!cursors().contains(CRI_KEY), "cursor kept: {}", cursors());
    assert_eq!(sink.status()["state"], "ok", "{}", sink.status());

    // The same key comes back (a new source from sequence 0): shipped from its start, and the
    // already shipped documents of the first life are not duplicated (same _ids are 409s).
    fill(&store, CRI_KEY, &cri_identity(), 1000, 3, 0);
    sink.drain(Duration::from_secs(60)).unwrap();
    assert_eq!(es.count("runnel-test-*"), 60 + 5 + 3);
    sink.shutdown();
}

#[test]
fn a_drain_waits_while_documents_are_acknowledged_and_gives_up_only_after_no_progress() {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    fill(&store, CRI_KEY, &cri_identity(), 0, 60, 0);
    let mut cfg = es_config(&proxy.url);
    cfg.template.install = false;
    cfg.batch.max_docs = 2;
    cfg.concurrency = runnel_config::Concurrency::fixed(1);
    // A slow server: 30 requests of 300 ms each, twice the no-progress limit in all (the
    // limit is generous: a loaded machine stalls osmem for seconds at times).
    proxy.state.lock().unwrap().delay = Duration::from_millis(300);
    let sink = start(&cfg, &store, dir.path());
    let t0 = Instant::now();
    sink.drain(Duration::from_secs(4)).unwrap();
    assert!(
        t0.elapsed() > Duration::from_secs(8),
        "the drain outlasted its no-progress limit ({:?})",
        t0.elapsed()
    );
    assert_eq!(es.count("runnel-test-*"), 60);

    // Then an outage: nothing moves, and the drain says how far it got.
    proxy.state.lock().unwrap().down = true;
    fill(&store, CRI_KEY, &cri_identity(), 60, 10, 0);
    let t0 = Instant::now();
    let e = sink
        .drain(Duration::from_millis(500))
        .unwrap_err()
        .to_string();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(e.contains("without progress"), "{e}");
    assert!(e.contains("0 records shipped during the drain"), "{e}");
    assert!(e.contains("10 not yet acknowledged"), "{e}");
    assert!(e.contains("503"), "the last error is named: {e}");
    assert!(
        e.contains("drain.no_progress_timeout"),
        "names the setting: {e}"
    );
    proxy.state.lock().unwrap().down = false;
    sink.drain(Duration::from_secs(30)).unwrap();
    assert_eq!(es.count("runnel-test-*"), 70);
    sink.shutdown();
}

#[test]
fn concurrency_is_a_fixed_number_or_an_adaptive_map_and_unknown_keys_are_named() {
    let parse = |body: &str| {
        runnel_config::Config::from_yaml_str(
            &format!("sinks:\n  elasticsearch:\n    concurrency: {body}\n"),
            "t.yaml",
        )
        .map(|c| c.sinks.elasticsearch.concurrency)
    };
    assert_eq!(parse("3").unwrap(), runnel_config::Concurrency::fixed(3));
    let c = parse("{ min: 2, max: 6 }").unwrap();
    assert!(c.adaptive);
    assert_eq!((c.min, c.max), (2, 6));
    let e = parse("{ maximum: 6 }").unwrap_err().to_string();
    assert!(e.contains("maximum"), "{e}");
    let e = parse("{ min: 5, max: 2 }").unwrap_err().to_string();
    assert!(e.contains("sinks.elasticsearch.concurrency"), "{e}");
    let d = runnel_config::Config::from_yaml_str(
        "sinks:\n  elasticsearch:\n    drain: { no_progress_timeout: 90s }\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(
        d.sinks.elasticsearch.drain.no_progress_timeout,
        Duration::from_secs(90)
    );
}
