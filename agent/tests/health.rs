//! Health that means progress, and no half-alive agent, end to end with the real binary. The
//! parts are stalled or killed for real through the debug build's failpoints
//! (`RUNNEL_FAILPOINTS=<dir>`: `<part>.pause` holds the part's thread while the file exists,
//! `<part>.panic` panics it, `<part>.exit` makes it return).

mod live;
mod support;

use live::Live;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{append, cri_line, time_at, Node};

const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    node: Node,
    failpoints: PathBuf,
    agent: Live,
}

/// An agent with `health.stall_timeout: 1s` over a node with one CRI pod; `metrics` replaces
/// the `metrics:` section when not empty.
fn start(metrics: &str) -> Setup {
    let node = Node::new();
    let failpoints = node.dir.path().join("failpoints");
    std::fs::create_dir_all(&failpoints).unwrap();
    let config = node.config("health: { stall_timeout: 1s }\nlog: { format: text }\n");
    if !metrics.is_empty() {
        let text = std::fs::read_to_string(&config).unwrap();
        let replaced = text.replace("metrics: { enabled: false }", metrics);
        assert_ne!(text, replaced, "the support config sets metrics");
        std::fs::write(&config, replaced).unwrap();
    }
    write(&node, 0, 10);
    let agent = Live::start(&config, &node.dir.path().join("stderr"), Some(&failpoints));
    assert!(agent.until(WAIT, |l| count(l) == 10));
    Setup {
        node,
        failpoints,
        agent,
    }
}

fn write(node: &Node, from: u64, n: u64) {
    let text: String = (from..from + n)
        .map(|i| cri_line(&time_at(i), "stdout", "F", &format!("line {i}")))
        .collect();
    append(&node.cri_log("ns", "pod", "app", 0), &text);
}

fn count(agent: &Live) -> usize {
    let (code, body) = agent.get("/v1/logs?namespace=ns&pod=pod");
    if code == 200 {
        body.lines().count()
    } else {
        0
    }
}

/// `/healthz` as (status, problems).
fn health(agent: &Live) -> (u16, Vec<String>) {
    let (code, body) = agent.get("/healthz");
    if code == 200 {
        assert_eq!(body, "ok\n");
        return (200, Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let problems = v["details"]["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (code, problems)
}

#[test]
fn an_idle_agent_stays_healthy_past_the_stall_timeout() {
    let s = start("");
    // Three stall timeouts of nothing to do: every answer is ok.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        assert_eq!(health(&s.agent), (200, Vec::new()));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_writer_that_stops_syncing_while_records_wait_fails_healthz_until_it_moves_again() {
    let s = start("");
    let pause = s.failpoints.join("writer.pause");
    std::fs::write(&pause, "").unwrap();
    // The writer parks at its next turn: an idle writer turns at least once a second. (A line
    // written now could reach it before or after it parks, so none is written until it has.)
    assert!(s
        .agent
        .until(WAIT, |_| s.failpoints.join("writer.paused").exists()));
    write(&s.node, 10, 100);
    assert!(
        s.agent.until(WAIT, |l| health(l).0 == 503),
        "healthz stayed ok with a paused writer"
    );
    let (_, problems) = health(&s.agent);
    assert!(
        problems.iter().any(|p| p.starts_with("writer stalled")),
        "{problems:?}"
    );
    assert_eq!(s.agent.get("/readyz").0, 200, "readiness keeps its meaning");
    std::fs::remove_file(&pause).unwrap();
    assert!(s.agent.until(WAIT, |l| count(l) == 110));
    assert!(s.agent.until(WAIT, |l| health(l).0 == 200));
}

#[test]
fn an_input_with_unread_bytes_that_makes_no_progress_fails_healthz() {
    let s = start("");
    let pause = s.failpoints.join("tailer.pause");
    std::fs::write(&pause, "").unwrap();
    // The tailer parks at the start of its next pass (several a second).
    assert!(s
        .agent
        .until(WAIT, |_| s.failpoints.join("tailer.paused").exists()));
    write(&s.node, 10, 5);
    assert!(
        s.agent.until(WAIT, |l| health(l).0 == 503),
        "healthz stayed ok with a stuck tailer and unread bytes"
    );
    let (_, problems) = health(&s.agent);
    assert!(
        problems.iter().any(|p| p.starts_with("input stalled")),
        "{problems:?}"
    );
    std::fs::remove_file(&pause).unwrap();
    assert!(s.agent.until(WAIT, |l| count(l) == 15));
    assert!(s.agent.until(WAIT, |l| health(l).0 == 200));
}

/// The part dies: the process ends by itself with status 70 and one line naming the death
/// (every line of stderr that mentions a dead part is counted: the log line and any other).
fn assert_dies(mut s: Setup, failpoint: &str, says: &str) {
    std::fs::write(s.failpoints.join(failpoint), "").unwrap();
    let status = s.agent.wait_exit(WAIT);
    let err = s.agent.stderr();
    let Some(status) = status else {
        panic!("the agent kept running after {failpoint}:\n{err}");
    };
    assert_eq!(status.code(), Some(70), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("part died") || l.contains(says))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains(&format!("runnel: pipeline part died: {says}")),
        "{}",
        lines[0]
    );
}

#[test]
fn a_tailer_panic_ends_the_process() {
    assert_dies(start(""), "tailer.panic", "tailer panicked");
}

#[test]
fn a_tailer_that_returns_ends_the_process() {
    assert_dies(start(""), "tailer.exit", "tailer ended unexpectedly");
}

#[test]
fn a_writer_panic_ends_the_process() {
    assert_dies(start(""), "writer.panic", "index writer panicked");
}

#[test]
fn a_writer_that_returns_ends_the_process() {
    assert_dies(start(""), "writer.exit", "index writer ended unexpectedly");
}

const METRICS_ON: &str = "metrics: { enabled: true, interval: 100ms }";

#[test]
fn a_metrics_collector_panic_ends_the_process() {
    assert!(
        PathBuf::from("/proc").is_dir(),
        "the metrics collector test needs /proc"
    );
    assert_dies(
        start(METRICS_ON),
        "metrics.panic",
        "metrics collector panicked",
    );
}

#[test]
fn a_metrics_collector_that_returns_ends_the_process() {
    assert!(
        PathBuf::from("/proc").is_dir(),
        "the metrics collector test needs /proc"
    );
    assert_dies(
        start(METRICS_ON),
        "metrics.exit",
        "metrics collector ended unexpectedly",
    );
}

/// An agent whose Elasticsearch sink runs (against a port where nothing listens: the pipeline
/// loop turns, retrying, which is all these tests need).
fn start_with_sink() -> Setup {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let s = start(&format!(
        "metrics: {{ enabled: false }}\nsinks:\n  elasticsearch:\n    enabled: true\n    \
         endpoints: [\"{url}\"]\n    template: {{ install: false }}\n"
    ));
    let (_, st) = s.agent.get("/v1/status");
    let st: serde_json::Value = serde_json::from_str(&st).unwrap_or_default();
    assert!(
        st["components"]["elasticsearch"]["endpoints"].is_array(),
        "the sink did not start: {st}"
    );
    s
}

#[test]
fn a_sink_panic_ends_the_process() {
    assert_dies(
        start_with_sink(),
        "sink.panic",
        "elasticsearch sink panicked",
    );
}

#[test]
fn a_sink_pipeline_that_returns_ends_the_process() {
    assert_dies(
        start_with_sink(),
        "sink.exit",
        "elasticsearch sink ended unexpectedly",
    );
}
