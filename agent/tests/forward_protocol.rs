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

/// Read from a socket the agent should close: EOF or a reset, never data, within 30 s.
fn assert_closed_by_agent(s: &mut std::net::TcpStream, what: &str) {
    use std::io::Read;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: got {n} bytes instead of a close"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{what}: still open after 30 s"
        ),
    }
}

/// `inputs.forward.max_connections` against real sockets: a connection past the cap is closed
/// at once and counted; once a client leaves, its slot serves a new client (a message built
/// byte for byte from the spec is acked and stored).
#[test]
fn connections_past_max_connections_are_refused_and_counted_and_a_freed_slot_serves_again() {
    use std::net::TcpStream;
    let node = Node::new();
    let cfg = forward_config(&node, "max_connections: 3");
    let (agent, addr) = Agent::start_forward(&cfg);
    let metric_now = |series: &str| metric(&agent.get("/metrics").1, series);
    let mut held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    assert!(
        support::eventually(std::time::Duration::from_secs(30), || {
            metric_now("runnel_forward_connections") == 3
        }),
        "the three connections were accepted"
    );
    let mut over = TcpStream::connect(&addr).unwrap();
    assert_closed_by_agent(&mut over, "a connection over the cap");
    assert!(
        support::eventually(std::time::Duration::from_secs(30), || {
            metric_now("runnel_forward_rejected_total{reason=\"too_many_connections\"}") >= 1
        }),
        "the refusal is counted"
    );
    drop(held.pop());
    assert!(
        support::eventually(std::time::Duration::from_secs(30), || {
            metric_now("runnel_forward_connections") == 2
        }),
        "the agent saw the client leave"
    );
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    send_and_read_ack(
        &mut c,
        &message_with_chunk("slot.test", "after", "c-01"),
        "c-01",
    );
    assert_eq!(
        logs(&agent, "namespace=default&pod=slot.test&container=forward"),
        ["after"]
    );
    agent.stop();
}

/// `inputs.forward.idle_timeout`: connections that stay silent, and one that sends half a
/// request and stops, are closed after the timeout and counted; nothing of the half request
/// is stored.
#[test]
fn silent_and_half_sent_forward_connections_are_closed_at_idle_timeout() {
    use std::net::TcpStream;
    let node = Node::new();
    let cfg = forward_config(&node, "idle_timeout: 1s");
    let (agent, addr) = Agent::start_forward(&cfg);
    let metric_now = |series: &str| metric(&agent.get("/metrics").1, series);
    let mut silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let mut half = TcpStream::connect(&addr).unwrap();
    let whole = message_with_chunk("half.test", "never", "h-1");
    std::io::Write::write_all(&mut half, &whole[..whole.len() / 2]).unwrap();
    for s in &mut silent {
        assert_closed_by_agent(s, "a silent connection");
    }
    assert_closed_by_agent(&mut half, "a half-sent request");
    assert!(
        support::eventually(std::time::Duration::from_secs(30), || {
            metric_now("runnel_forward_idle_closed_total") == 4
        }),
        "the four idle closes are counted"
    );
    let (code, body) = agent.get("/v1/logs?namespace=default&pod=half.test&container=forward");
    assert_eq!(code, 404, "nothing of the half request was stored: {body}");
    agent.stop();
}

/// Send `msg` on `c` and read until the answer names `chunk`; returns the answer's bytes.
fn send_and_read_ack(
    c: &mut (impl std::io::Read + std::io::Write),
    msg: &[u8],
    chunk: &str,
) -> Vec<u8> {
    c.write_all(msg).unwrap();
    let mut ack = Vec::new();
    let mut buf = [0u8; 64];
    while !ack.windows(chunk.len()).any(|w| w == chunk.as_bytes()) {
        let n = c.read(&mut buf).expect("the ack arrives");
        assert!(n > 0, "closed before the ack: {ack:?}");
        ack.extend_from_slice(&buf[..n]);
    }
    assert!(
        ack.windows(3).any(|w| w == b"ack"),
        "the answer is an ack: {ack:?}"
    );
    ack
}

/// Encode `["<tag>", 1700000000, {"log": "<log>"}, {"chunk": "<chunk>"}]` from the spec.
fn message_with_chunk(tag: &str, log: &str, chunk: &str) -> Vec<u8> {
    fn fixstr(out: &mut Vec<u8>, s: &str) {
        assert!(s.len() < 32);
        out.push(0xa0 | s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    let mut m = vec![0x94];
    fixstr(&mut m, tag);
    m.push(0xce);
    m.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    m.push(0x81);
    fixstr(&mut m, "log");
    fixstr(&mut m, log);
    m.push(0x81);
    fixstr(&mut m, "chunk");
    fixstr(&mut m, chunk);
    m
}

/// `inputs.forward.unix_path`: a socket left by an earlier run is replaced, the socket gets
/// `unix_mode`, and an event sent over it is acked and stored; a path that holds anything but
/// a socket is never touched: the agent refuses to start, naming the setting.
#[test]
fn the_unix_socket_replaces_a_stale_one_has_its_mode_and_carries_events_but_never_a_regular_file() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let node = Node::new();
    let sock = node.data_dir().with_file_name("forward.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists(), "a stale socket is left on disk");
    let cfg = forward_config(
        &node,
        &format!("unix_path: \"{}\", unix_mode: \"0640\"", sock.display()),
    );
    let (agent, _addr) = Agent::start_forward(&cfg);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    send_and_read_ack(
        &mut c,
        &message_with_chunk("unix.test", "over-unix", "u-1"),
        "u-1",
    );
    assert_eq!(
        logs(&agent, "namespace=default&pod=unix.test&container=forward"),
        ["over-unix"],
        "acked means stored"
    );
    agent.stop();

    // A regular file where the socket should go: left as it is, and the start fails.
    std::fs::remove_file(&sock).unwrap();
    std::fs::write(&sock, "not a socket").unwrap();
    let mut child = std::process::Command::new(support::runnel_bin())
        .args(["agent", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = support::eventually(std::time::Duration::from_secs(30), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    assert!(exited, "the agent started over a regular file at unix_path");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!child.wait().unwrap().success());
    assert!(
        err.contains("unix_path") && err.contains("not a socket"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "not a socket");
}
