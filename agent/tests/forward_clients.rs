//! Real forward clients against the real agent: Python's `fluent-logger`, Fluentd's Go client
//! with `RequestAck` through SIGKILLs of the agent, and a chunk whose ack was lost resent
//! after a restart. Every record must be in the index exactly once.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{eventually, python, reserve_port, run_script, Agent, Node};

fn forward_config(node: &Node, port: u16) -> std::path::PathBuf {
    node.config_with_inputs(
        &format!("  forward: {{ enabled: true, listen: \"127.0.0.1:{port}\" }}\n"),
        "",
    )
}

/// The lines of a source, or none while it does not exist yet.
fn lines_if_any(agent: &Agent, query: &str) -> Vec<String> {
    match agent.get(&format!("/v1/logs?{query}")) {
        (200, body) => body.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn lines(agent: &Agent, query: &str) -> Vec<String> {
    let (code, body) = agent.get(&format!("/v1/logs?{query}"));
    assert_eq!(code, 200, "{body}");
    body.lines().map(str::to_string).collect()
}

#[test]
fn python_fluent_logger_records_are_stored_with_their_streams() {
    let node = Node::new();
    let reserved = reserve_port();
    let port = reserved.number();
    let (agent, _) = Agent::start_forward(&forward_config(&node, port));
    let port_s = port.to_string();
    assert_eq!(
        run_script("forward/fluent_logger.py", &["127.0.0.1", &port_s, "100"]),
        "done"
    );
    let want: Vec<String> = (0..100).map(|i| format!("py-{i:04}")).collect();
    // fluent-logger asks for no ack: wait for the records to be stored.
    let q = "namespace=shop&pod=py-0&container=app";
    assert!(
        eventually(Duration::from_secs(30), || lines_if_any(&agent, q).len()
            >= 100),
        "got {:?}",
        lines(&agent, q).len()
    );
    assert_eq!(lines(&agent, q), want);
    let out = support::runnel(&[
        "logs",
        "--server",
        &agent.url(""),
        "-n",
        "shop",
        "py-0",
        "-c",
        "app",
        "--tail",
        "1",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "py-0099\n");
    agent.stop();
}

fn go_client() -> std::path::PathBuf {
    let out_dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("goclient");
    std::fs::create_dir_all(&out_dir).unwrap();
    let bin = out_dir.join("goclient");
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/forward/goclient/main.go"
    );
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(src)
        .env("GOPATH", "/usr/share/gocode")
        .env("GO111MODULE", "off")
        .env("GOCACHE", out_dir.join("cache"))
        .env("GOFLAGS", "-mod=mod")
        .output();
    match built {
        Ok(o) if o.status.success() => bin,
        Ok(o) => panic!(
            "building the Go forward client failed (scripts/test.sh installs golang-go and golang-github-fluent-fluent-logger-golang-dev):\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("`go` is missing ({e}): run the tests with scripts/test.sh, which installs golang-go and golang-github-fluent-fluent-logger-golang-dev"),
    }
}

#[test]
fn go_client_with_acks_loses_and_repeats_nothing_across_sigkills() {
    let bin = go_client();
    let node = Node::new();
    let reserved = reserve_port();
    let port = reserved.number();
    let cfg = forward_config(&node, port);
    let (mut agent, _) = Agent::start_forward(&cfg);
    const N: usize = 3000;
    let mut client = Command::new(&bin)
        .args([
            "127.0.0.1",
            &port.to_string(),
            &N.to_string(),
            "kube.shop.go-0.app",
        ])
        .env("GOCACHE", "/tmp")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let progress = BufReader::new(client.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in progress.lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let wait_for = |what: &str| loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) if l == what => return,
            Ok(_) => {}
            Err(e) => panic!("the Go client never printed {what:?}: {e}"),
        }
    };
    for at in ["sent 600", "sent 1800"] {
        wait_for(at);
        agent.kill9();
        agent = Agent::start_forward(&cfg).0;
    }
    wait_for("done");
    assert!(client.wait().unwrap().success());
    let got = lines(&agent, "namespace=shop&pod=go-0&container=app");
    let want: Vec<String> = (0..N).map(|i| format!("go-{i:05}")).collect();
    if got != want {
        let mut seen = std::collections::HashMap::new();
        for l in &got {
            *seen.entry(l.clone()).or_insert(0) += 1;
        }
        let dups: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
        let missing: Vec<_> = want.iter().filter(|w| !seen.contains_key(*w)).collect();
        panic!(
            "{} records, duplicated {:?}, missing {:?}",
            got.len(),
            &dups[..dups.len().min(10)],
            &missing[..missing.len().min(10)]
        );
    }
    agent.stop();
}

#[test]
fn a_chunk_whose_ack_was_lost_is_acked_again_after_a_restart_and_stored_once() {
    let node = Node::new();
    let reserved = reserve_port();
    let port = reserved.number();
    let cfg = forward_config(&node, port);
    let (agent, _) = Agent::start_forward(&cfg);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/forward/lost_ack.py");
    let mut sender = Command::new(python())
        .args([script, "127.0.0.1", &port.to_string(), "send"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let q = "namespace=shop&pod=lost-0&container=app";
    assert!(
        eventually(Duration::from_secs(30), || lines_if_any(&agent, q).len()
            == 200),
        "the chunk was never stored"
    );
    // Readers see records still in the writer's buffer; the ack is written only once they
    // are durable, so the ack count (not the query) says the agent may die now.
    assert!(
        eventually(Duration::from_secs(30), || agent
            .metric("runnel_forward_acks_total")
            == Some(1.0)),
        "the stored chunk was never acked"
    );
    // Durable, the ack unread by the client: the agent dies now.
    agent.kill9();
    let _ = sender.kill();
    let _ = sender.wait();
    let (agent, _) = Agent::start_forward(&cfg);
    assert_eq!(
        run_script(
            "forward/lost_ack.py",
            &["127.0.0.1", &port.to_string(), "resend"]
        ),
        "acked"
    );
    let got = lines(&agent, q);
    let want: Vec<String> = (0..200).map(|i| format!("chunk-{i:03}")).collect();
    assert_eq!(got, want, "the resent chunk was stored once");
    let (_, m) = agent.get("/metrics");
    assert!(
        m.contains("runnel_ingest_duplicate_records_total 200"),
        "{m}"
    );
    agent.stop();
}
