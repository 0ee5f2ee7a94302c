//! Adaptive request concurrency against a slow, overloaded server (the fault-injecting proxy,
//! acknowledging documents itself so that its pace is only its delay and capacity): the limit finds the server's capacity without a stampede of 429s,
//! requests in flight (retries included) and bytes in flight stay bounded, and throughput
//! comes back after an outage. Prints the figures beside a fixed limit of `max`.

mod support;

use runnel_config::Concurrency;
use runnel_index::{
    FileId, Limits, NewRecord, Position, RecordFlags, SourceIdentity, Store, Stream, TimeStyle,
};
use runnel_sinks::ElasticsearchSink;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::proxy::Proxy;
use support::{es_config, Osmem};

const SOURCES: usize = 4;
const PER_SOURCE: usize = 5000;
const MAX: usize = 12;
const CAPACITY: u64 = 3;
const MAX_IN_FLIGHT_BYTES: u64 = 4 << 20;

fn fill(store: &Store) {
    for s in 0..SOURCES {
        let key = format!("cri:ns_pod-{s}_uid-{s}/app/0");
        let id = SourceIdentity {
            namespace: Some("ns".into()),
            pod: Some(format!("pod-{s}")),
            container: Some("app".into()),
            ..Default::default()
        };
        store.upsert_source(&key, &id).unwrap();
        for i in 0..PER_SOURCE {
            let msg = format!("source {s} line {i} with some padding to look like a log line");
            store
                .append(
                    &key,
                    &NewRecord {
                        time_ns: 1_767_323_045_000_000_000 + i as i64 * 1000,
                        time_style: TimeStyle::default(),
                        stream: Stream::Stdout,
                        flags: RecordFlags(0),
                        message: msg.as_bytes(),
                        position: Position::File {
                            file: FileId {
                                dev: 1,
                                ino: s as u64,
                                fingerprint: 7,
                            },
                            offset: (i as u64 + 1) * 100,
                        },
                    },
                )
                .unwrap();
        }
    }
    store.sync().unwrap();
}

/// What one run showed.
#[derive(Debug)]
struct Figures {
    secs: f64,
    requests: u64,
    over_capacity: u64,
    proxy_max_in_flight: u64,
    sink_max_requests: u64,
    max_bytes_in_flight: u64,
    lowest_limit_in_outage: u64,
    max_in_flight_after_outage: u64,
    docs: u64,
}

impl Figures {
    fn rejected_share(&self) -> f64 {
        self.over_capacity as f64 / self.requests.max(1) as f64
    }
}

/// Ship everything through a server that takes `CAPACITY` requests at once and 30 ms each;
/// a fifth of the way in, an outage (503 for everything) until the sink has backed off.
fn run(concurrency: Concurrency) -> Figures {
    let es = Osmem::start();
    let proxy = Proxy::start(&es.url, "");
    {
        let mut s = proxy.state.lock().unwrap();
        s.delay = Duration::from_millis(30);
        s.capacity = CAPACITY;
        s.ack_locally = true;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("index"), Limits::default()).unwrap());
    fill(&store);
    let n = (SOURCES * PER_SOURCE) as u64;
    let mut cfg = es_config(&proxy.url);
    cfg.batch.max_docs = 100;
    cfg.batch.timeout = Duration::from_millis(20);
    cfg.concurrency = concurrency;
    cfg.max_in_flight_bytes = MAX_IN_FLIGHT_BYTES;
    cfg.retry.initial = Duration::from_millis(10);
    cfg.retry.max = Duration::from_millis(200);
    let t0 = Instant::now();
    let sink =
        ElasticsearchSink::start(&cfg, "node-c", store.clone(), &dir.path().join("sink")).unwrap();
    let (lowest, after) = std::thread::scope(|scope| {
        let drain = scope.spawn(|| sink.drain(Duration::from_secs(60)));
        let m = sink.metrics();
        let wait = |what: &str, cond: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !cond() {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait("a fifth shipped", &|| m.docs_acked.load(Relaxed) >= n / 5);
        proxy.state.lock().unwrap().down = true;
        let failed0 = m.requests_failed.load(Relaxed);
        let mut lowest = u64::MAX;
        let deadline = Instant::now() + Duration::from_secs(60);
        while m.requests_failed.load(Relaxed) < failed0 + 20 {
            assert!(Instant::now() < deadline, "the outage was not seen");
            lowest = lowest.min(m.concurrency_limit.load(Relaxed));
            std::thread::sleep(Duration::from_millis(2));
        }
        lowest = lowest.min(m.concurrency_limit.load(Relaxed));
        {
            let mut s = proxy.state.lock().unwrap();
            s.down = false;
            s.max_in_flight = 0;
        }
        drain.join().unwrap().unwrap();
        (lowest, proxy.state.lock().unwrap().max_in_flight)
    });
    let secs = t0.elapsed().as_secs_f64();
    let m = sink.metrics();
    let s = proxy.state.lock().unwrap();
    let f = Figures {
        secs,
        requests: s.requests,
        over_capacity: s.over_capacity,
        proxy_max_in_flight: s.max_in_flight,
        sink_max_requests: m.requests_in_flight_max.load(Relaxed),
        max_bytes_in_flight: m.in_flight_bytes_max.load(Relaxed),
        lowest_limit_in_outage: lowest,
        max_in_flight_after_outage: after,
        docs: s.acked_ids.len() as u64,
    };
    drop(s);
    sink.shutdown();
    f
}

#[test]
fn adaptive_concurrency_finds_the_capacity_without_a_stampede_stays_bounded_and_recovers() {
    let adaptive = run(Concurrency {
        adaptive: true,
        min: 1,
        max: MAX,
        ..Concurrency::default()
    });
    let fixed = run(Concurrency::fixed(MAX));
    let n = (SOURCES * PER_SOURCE) as u64;
    println!(
        "server: {CAPACITY} requests at once, 30 ms each; an outage (503) a fifth of the way in"
    );
    println!("| limit | secs | requests | 429 over capacity | share | max requests in flight | max bytes in flight | lowest limit in outage | max in flight after |");
    for (name, f) in [("adaptive 1..12", &adaptive), ("fixed 12", &fixed)] {
        println!(
            "| {name} | {:.2} | {} | {} | {:.0}% | {} | {:.0} KiB | {} | {} |",
            f.secs,
            f.requests,
            f.over_capacity,
            f.rejected_share() * 100.0,
            f.sink_max_requests,
            f.max_bytes_in_flight as f64 / 1024.0,
            if f.lowest_limit_in_outage == u64::MAX {
                "-".to_string()
            } else {
                f.lowest_limit_in_outage.to_string()
            },
            f.max_in_flight_after_outage,
        );
    }
    for f in [&adaptive, &fixed] {
        assert_eq!(f.docs, n, "every document acknowledged: {f:?}");
        assert!(
            f.sink_max_requests <= MAX as u64,
            "retries stay inside the limit: {f:?}"
        );
        assert!(f.proxy_max_in_flight <= MAX as u64, "{f:?}");
        assert!(
            f.max_bytes_in_flight <= MAX_IN_FLIGHT_BYTES,
            "memory bounded: {f:?}"
        );
    }
    assert_eq!(
        adaptive.lowest_limit_in_outage, 1,
        "backs off to min in an outage: {adaptive:?}"
    );
    assert!(
        adaptive.max_in_flight_after_outage >= CAPACITY,
        "climbs back to the server's capacity after the outage: {adaptive:?}"
    );
    assert!(
        adaptive.rejected_share() < 0.35
            && adaptive.rejected_share() * 2.0 < fixed.rejected_share(),
        "no stampede: adaptive {:.2} vs fixed {:.2} of requests refused for overload",
        adaptive.rejected_share(),
        fixed.rejected_share()
    );
}
