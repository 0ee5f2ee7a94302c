//! The forward receiver against clients that are not our own encoder: a protocol suite built
//! byte for byte from the spec with Python's `msgpack`, then the index read back — every mode
//! stored, resent chunks stored once, identities from tags, kubernetes maps and fallbacks, and
//! every bad input counted.

mod support;

use support::{run_script, Agent, Node};

fn forward_config(node: &Node, forward: &str) -> std::path::PathBuf {
    node.config_with_inputs(
        &format!("  forward: {{ enabled: true, listen: \"127.0.0.1:0\", {forward} }}\n"),
        "",
    )
}

fn logs(agent: &Agent, query: &str) -> Vec<String> {
    let (code, body) = agent.get(&format!("/v1/logs?{query}"));
    assert_eq!(code, 200, "{query}: {body}");
    body.lines().map(str::to_string).collect()
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

#[test]
fn every_carrier_mode_is_acked_after_storage_and_stored_once() {
    let node = Node::new();
    let cfg = forward_config(
        &node,
        "max_frame_bytes: 64KiB, max_decompressed_bytes: 1MiB",
    );
    let (agent, addr) = Agent::start_forward(&cfg);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let stdout = run_script("forward/protocol.py", &[host, port]);
    assert!(stdout.contains("protocol suite passed"), "{stdout}");

    let mut pipelined: Vec<String> = (0..50).map(|i| format!("pipelined-{i:02}")).collect();
    let mut want: Vec<String> = [
        "message-eventtime",
        "message-int",
        "forward-1",
        "forward-2",
        "packed-bin-1",
        "packed-bin-2",
        "packed-str-1",
        "packed-str-2",
        "gzip-1",
        "gzip-2",
        "zstd-1",
        "zstd-2",
        "v15-metadata",
        "ext8-time",
        "after-heartbeat",
        "split-request",
    ]
    .map(String::from)
    .to_vec();
    want.append(&mut pipelined);
    want.extend(
        [
            "{\"level\":\"warn\",\"n\":7}",
            "no-ack",
            "after-no-ack",
            "while-a-slow-client-waits",
        ]
        .map(String::from),
    );
    // Append order: the resent chunks (c-msg, c-fwd) added nothing.
    assert_eq!(
        logs(&agent, "namespace=shop&pod=web-0&container=side"),
        want
    );
    let ts = logs(
        &agent,
        "namespace=shop&pod=web-0&container=side&timestamps=true&tailLines=100",
    );
    assert_eq!(ts[0], "2026-12-01T10:00:00.500000000Z message-eventtime");
    assert_eq!(ts[1], "2026-12-01T10:00:01.000000000Z message-int");
    assert_eq!(ts[13], "2026-12-01T10:00:08.000000042Z ext8-time");
    assert_eq!(
        logs(&agent, "namespace=shop&pod=web-1&container=app"),
        ["from-k8s-map"]
    );
    assert_eq!(
        logs(&agent, "namespace=default&pod=plain.tag&container=forward"),
        ["fallback"]
    );

    let (_, m) = agent.get("/metrics");
    assert_eq!(
        metric(&m, "runnel_ingest_duplicate_records_total"),
        3,
        "c-msg (1) and c-fwd (2) resent"
    );
    for reason in [
        "frame_too_large",
        "decompressed_too_large",
        "undecodable",
        "bad_compression",
    ] {
        assert_eq!(
            metric(
                &m,
                &format!("runnel_forward_rejected_total{{reason=\"{reason}\"}}")
            ),
            1,
            "{reason}"
        );
    }
    assert_eq!(
        metric(&m, "runnel_forward_rejected_total{reason=\"wrong_type\"}"),
        2
    );
    assert_eq!(
        metric(&m, "runnel_forward_heartbeats_total{transport=\"udp\"}"),
        1
    );
    assert_eq!(
        metric(&m, "runnel_forward_heartbeats_total{transport=\"tcp\"}"),
        1
    );
    let (_, sources) = agent.get("/v1/sources");
    assert!(
        sources.contains("\"runnel.io/input\": \"forward\""),
        "{sources}"
    );
    agent.stop();
}

#[test]
fn shared_key_handshake_admits_the_right_key_and_user_and_refuses_others() {
    let node = Node::new();
    let key = node.dir.path().join("shared_key");
    std::fs::write(&key, "s3cret-key\n").unwrap();
    let users = node.dir.path().join("users.yaml");
    std::fs::write(&users, "alice: wonderland\n").unwrap();
    let cfg = forward_config(
        &node,
        &format!(
            "shared_key_file: {}, users_file: {}, self_hostname: node-a",
            key.display(),
            users.display()
        ),
    );
    let (agent, addr) = Agent::start_forward(&cfg);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let run = |key: &str, user: &str, password: &str, expect: &str| {
        run_script(
            "forward/handshake.py",
            &[host, port, key, user, password, expect],
        )
    };
    assert_eq!(run("s3cret-key", "alice", "wonderland", "ok"), "ok node-a");
    assert_eq!(
        run("wrong-key", "alice", "wonderland", "refused"),
        "refused"
    );
    assert_eq!(run("s3cret-key", "alice", "guess", "refused"), "refused");
    assert_eq!(
        run("s3cret-key", "mallory", "wonderland", "refused"),
        "refused"
    );
    assert_eq!(
        logs(&agent, "namespace=shop&pod=auth-0&container=app"),
        ["after-handshake"]
    );
    let (_, m) = agent.get("/metrics");
    assert_eq!(metric(&m, "runnel_forward_handshakes_total"), 1);
    assert_eq!(
        metric(&m, "runnel_forward_rejected_total{reason=\"auth_failed\"}"),
        3
    );
    agent.stop();
}
