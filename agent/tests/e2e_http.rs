//! The HTTP API of a running agent over real sockets: range reads, tail, limitBytes, errors
//! that name the parameter, `/v1/sources`, `/metrics` read by an independent Prometheus parser,
//! and `follow` delivering new lines within milliseconds, across a rotation.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn write_lines(path: &std::path::Path, range: std::ops::Range<u64>) {
    let mut text = String::new();
    for i in range {
        text.push_str(&cri_line(
            &time_at(i * 1000),
            "stdout",
            "F",
            &format!("line {i}"),
        ));
    }
    append(path, &text);
}

fn lines(range: std::ops::Range<u64>) -> String {
    range.map(|i| format!("line {i}\n")).collect()
}

fn total_records(agent: &Agent) -> u64 {
    let (_, body) = agent.get("/v1/sources");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["records"].as_u64().unwrap_or(0))
        .sum()
}

fn python() -> String {
    let candidates = [
        std::env::var("RUNNEL_PYTHON").ok(),
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python").to_string()),
    ];
    for c in candidates.into_iter().flatten() {
        let ok = Command::new(&c)
            .args(["-c", "import prometheus_client"])
            .output()
            .map(|o| o.status.success());
        if ok.unwrap_or(false) {
            return c;
        }
    }
    panic!("python with prometheus_client not found: run the README test command (scripts/test.sh), which installs it into .venv");
}

#[test]
fn range_tail_limit_sources_metrics_and_errors() {
    let node = Node::new();
    let log = node.cri_log("shop", "web-0", "nginx", 0);
    write_lines(&log, 0..100);
    let agent = Agent::start(&node.config(""));
    assert!(
        eventually(Duration::from_secs(30), || total_records(&agent) == 100),
        "lines not ingested"
    );

    let base = "/v1/logs?namespace=shop&pod=web-0&container=nginx";
    assert_eq!(agent.get(base), (200, lines(0..100)));
    assert_eq!(
        agent.get(&format!("{base}&tailLines=3")),
        (200, lines(97..100))
    );
    let range = format!(
        "{base}&sinceTime={}&untilTime={}",
        time_at(10_000),
        time_at(20_000)
    );
    assert_eq!(agent.get(&range), (200, lines(10..20)));
    assert_eq!(
        agent.get(&format!("{base}&limitBytes=15")),
        (200, "line 0\nline 1\nl".to_string())
    );
    let (code, body) = agent.get(&format!("{base}&tailLines=1&timestamps=true"));
    assert_eq!(
        (code, body.as_str()),
        (200, format!("{} line 99\n", time_at(99_000)).as_str())
    );
    // The pod's only container is implied.
    assert_eq!(
        agent.get("/v1/logs?namespace=shop&pod=web-0&tailLines=1").1,
        lines(99..100)
    );

    for (query, parameter) in [
        ("tailLines=-1", "tailLines"),
        ("limitBytes=0", "limitBytes"),
        ("sinceTime=yesterday", "sinceTime"),
        ("sinceSeconds=abc", "sinceSeconds"),
        ("follow=perhaps", "follow"),
        ("colour=red", "query"),
    ] {
        let (code, body) = agent.get(&format!("{base}&{query}"));
        assert_eq!(code, 400, "{query}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["details"]["parameter"], parameter, "{query}: {body}");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    let (code, body) = agent.get("/v1/logs?namespace=shop&pod=web-1");
    assert_eq!(code, 404, "{body}");
    assert!(
        body.contains("shop/web-0"),
        "404 should list close matches: {body}"
    );
    assert_eq!(
        agent
            .get("/v1/logs?namespace=shop&pod=web-0&container=php")
            .0,
        404
    );
    assert_eq!(agent.get("/nope").0, 404);
    let post = ureq::post(&agent.url("/v1/logs")).call();
    assert!(
        matches!(post, Err(ureq::Error::Status(405, _))),
        "POST must be refused"
    );

    let (code, body) = agent.get("/v1/sources");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let src = &v["sources"][0];
    assert_eq!(src["identity"]["namespace"], "shop");
    assert_eq!(src["identity"]["pod"], "web-0");
    assert_eq!(src["identity"]["container"], "nginx");
    assert_eq!(src["identity"]["pod_uid"], "uid-web-0");
    assert_eq!(src["records"], 100);
    assert_eq!(src["min_time"], "2024-05-01T12:00:00.000000123Z");

    assert_eq!(agent.get("/healthz").0, 200);
    assert_eq!(agent.get("/readyz").0, 200);

    // /metrics through an independent parser (Python's prometheus_client).
    let (code, text) = agent.get("/metrics");
    assert_eq!(code, 200);
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
def total(name, **labels):
    return sum(s.value for s in fams[name].samples if all(s.labels.get(k) == v for k, v in labels.items()))
print(int(total("runnel_http_requests", path="/v1/logs", code="400")))
print(int(total("runnel_index_records_appended")))
print(len(fams))
# Every counter the issue names, with the labels it needs.
required = {
    "runnel_input_lines": ["docker", "cri"],
    "runnel_input_bytes": ["docker", "cri"],
    "runnel_input_parse_errors": ["docker", "cri"],
    "runnel_input_partial_merges": ["docker", "cri"],
    "runnel_input_truncated_lines": ["docker", "cri"],
    "runnel_input_rotations": ["docker", "cri"],
    "runnel_input_open_files": None,
    "runnel_ingest_queue_records": None,
    "runnel_ingest_queue_bytes": None,
    "runnel_index_disk_bytes": None,
    "runnel_index_sealed_segments": None,
    "runnel_index_active_segments": None,
    "runnel_index_retention_records": ["age", "disk"],
    "runnel_index_retention_bytes": ["age", "disk"],
}
missing = []
for name, labels in required.items():
    f = fams.get(name)
    if f is None or not f.samples:
        missing.append(name)
        continue
    got = sorted(set(s.labels.get("input", s.labels.get("reason")) for s in f.samples))
    if labels is not None and got != sorted(labels):
        missing.append(f"{name}{got}")
print(",".join(missing) or "none")
print(int(total("runnel_input_lines", input="cri")))
print(int(total("runnel_input_bytes", input="cri")))
print(int(total("runnel_index_disk_bytes")))
"#;
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let parsed: Vec<&str> = stdout.lines().collect();
    let num = |i: usize| parsed[i].parse::<u64>().unwrap();
    assert_eq!(num(0), 6, "400s counted by path and code");
    assert_eq!(num(1), 100, "index appends");
    assert!(
        num(2) >= 20,
        "expected the agent's metric families, got {}",
        num(2)
    );
    assert_eq!(parsed[3], "none", "metric families missing or unlabelled");
    assert_eq!(num(4), 100, "lines read from the CRI input");
    assert_eq!(
        num(5),
        std::fs::metadata(&log).unwrap().len(),
        "bytes read from the CRI input"
    );
    assert!(num(6) > 0, "index bytes on disk");
    agent.stop();
}

#[test]
fn follow_delivers_each_new_line_once_in_order_across_rotations() {
    let node = Node::new();
    let log = node.cri_log("shop", "tail-me", "app", 0);
    write_lines(&log, 0..5);
    let agent = Agent::start(&node.config(""));
    assert!(eventually(Duration::from_secs(30), || total_records(
        &agent
    ) == 5));

    let url = agent.url("/v1/logs?namespace=shop&pod=tail-me&follow=true&tailLines=2");
    let resp = ureq::get(&url).call().expect("follow request");
    assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(resp.into_reader());
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            let _ = tx.send((std::mem::take(&mut line), Instant::now()));
        }
    });
    let recv = || {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("followed line did not arrive")
            .0
    };
    assert_eq!(recv(), "line 3\n");
    assert_eq!(recv(), "line 4\n");

    let mut latencies = Vec::new();
    for i in 5..35u64 {
        if i == 15 {
            // kubelet rotation mid-follow: the stream continues with the new file's lines.
            std::fs::rename(&log, format!("{}.20240501-120000", log.display())).unwrap();
        }
        if i == 25 {
            // copytruncate mid-follow: the same file starts over from byte 0.
            std::fs::copy(&log, format!("{}.20240501-120100", log.display())).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
        let sent = Instant::now();
        write_lines(&log, i..i + 1);
        let (line, at) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("followed line did not arrive");
        assert_eq!(line, format!("line {i}\n"));
        latencies.push(at.duration_since(sent));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing more arrives: no line was delivered twice across the rotations.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    latencies.sort();
    let slow = latencies
        .iter()
        .filter(|l| **l >= Duration::from_millis(50))
        .count();
    eprintln!(
        "follow latency over {} lines: median {:?}, p90 {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 9 / 10],
        latencies.last().unwrap()
    );
    // The figures are printed, not asserted: on a shared or loaded machine a timed assertion
    // fails for reasons that are not the agent's (latency is measured by benches/). What is
    // asserted is that every line arrives, once and in order, within the 30 s deadline.
    eprintln!("{slow} of {} lines took 50 ms or more", latencies.len());
    agent.stop();
}
