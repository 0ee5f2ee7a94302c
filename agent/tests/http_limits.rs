//! Limits that hold under abuse, against the real agent over real sockets: slowloris
//! connections cut at the header timeout, the connection and follow caps (429 with a clear
//! message), 1000 idle follows that are not woken by another source's syncs, a flood of
//! unknown-pod queries with long names, and hostile parameters that stay 4xx.

mod http_support;
mod support;

use http_support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

fn config(node: &Node, http: &str) -> std::path::PathBuf {
    let path = node.dir.path().join("runnel.yaml");
    let text = format!(
        "data_dir: {data}\nnode_name: test-node\ninputs:\n  docker: {{ enabled: false }}\n  \
         cri: {{ enabled: true, root: {cri} }}\n  rescan_interval: 1s\nhttp:\n  listen: \"127.0.0.1:0\"\n{http}\
         metrics: {{ enabled: false }}\nlog: {{ format: text, level: info }}\n",
        data = node.data_dir().display(),
        cri = node.cri_root().display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn write(node: &Node, ns: &str, pod: &str, lines: std::ops::Range<u64>) {
    let text: String = lines
        .map(|i| cri_line(&time_at(i), "stdout", "F", &format!("{pod} line {i}")))
        .collect();
    append(&node.cri_log(ns, pod, "app", 0), &text);
}

fn records(agent: &LoggedAgent) -> u64 {
    let (_, body) = agent.get("/v1/sources", None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["sources"]
        .as_array()
        .map(|a| a.iter().map(|s| s["records"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// Read from `s` until `needle` has arrived, the peer closes, or `deadline`.
fn read_until(s: &mut TcpStream, needle: &str, deadline: Instant) -> (bool, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if String::from_utf8_lossy(&got).contains(needle) {
            return (true, String::from_utf8_lossy(&got).into_owned());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (false, String::from_utf8_lossy(&got).into_owned());
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (false, String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// How long until the server closes `s` (reads until EOF or reset), at most `limit`.
fn time_to_close(s: &mut TcpStream, start: Instant, limit: Duration) -> Option<Duration> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
}

fn follow_request(ns: &str, pod: &str) -> String {
    format!("GET /v1/logs?namespace={ns}&pod={pod}&follow=true HTTP/1.1\r\nHost: x\r\n\r\n")
}

#[test]
fn slowloris_connections_are_cut_at_the_header_timeout() {
    let node = Node::new();
    write(&node, "shop", "web-0", 0..1);
    let cfg = config(&node, "  limits: { header_timeout: 1s }\n");
    let agent = LoggedAgent::start(&cfg, node.dir.path().join("agent.log"));
    let start = Instant::now();
    let mut conns = Vec::new();
    for i in 0..150 {
        let mut s = TcpStream::connect(&agent.addr).unwrap();
        match i % 3 {
            0 => {} // connects and sends nothing
            1 => s
                .write_all(b"GET /v1/sources HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap(),
            _ => {
                // a complete request on a keep-alive connection, then silence
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
            }
        }
        conns.push(s);
    }
    // The server still answers others meanwhile.
    assert_eq!(agent.get("/v1/sources", None).0, 200);
    for (i, s) in conns.iter_mut().enumerate() {
        let closed = time_to_close(s, start, Duration::from_secs(15));
        let Some(t) = closed else {
            panic!("connection {i} (kind {}) was still open after 15 s", i % 3)
        };
        assert!(
            t >= Duration::from_millis(900),
            "connection {i} cut before the timeout: {t:?}"
        );
    }
    // Each kind is cut by the timeout and counted: silent (no byte), half a head, idle on a
    // kept-alive connection (the next head never comes).
    let mut cut = 0.0;
    assert!(
        eventually(Duration::from_secs(30), || {
            cut = agent
                .metric("runnel_http_slow_clients_cut_total", None)
                .unwrap_or(0.0);
            cut == 150.0
        }),
        "cut {cut} of 150"
    );
}

#[test]
fn connection_and_follow_caps_refuse_clearly_and_free_up() {
    let node = Node::new();
    write(&node, "shop", "web-0", 0..1);
    let cfg = config(
        &node,
        "  limits: { max_connections: 30, max_follows: 10 }\n",
    );
    let agent = LoggedAgent::start(&cfg, node.dir.path().join("agent.log"));
    assert!(eventually(Duration::from_secs(10), || records(&agent) == 1));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut follows = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(&agent.addr).unwrap();
        s.write_all(follow_request("shop", "web-0").as_bytes())
            .unwrap();
        let (ok, got) = read_until(&mut s, "web-0 line 0", deadline);
        assert!(ok, "{got}");
        follows.push(s);
    }
    let answer = raw_exchange(
        &agent.addr,
        b"GET /v1/logs?namespace=shop&pod=web-0&follow=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status_of(&answer), Some(429), "{answer}");
    assert!(
        answer.contains("too many concurrent follows") && answer.contains("max_follows"),
        "{answer}"
    );
    // A range read (no follow) is still served.
    assert_eq!(agent.get("/v1/logs?namespace=shop&pod=web-0", None).0, 200);
    assert!(eventually(Duration::from_secs(10), || agent
        .metric("runnel_http_connections", None)
        == Some(11.0)));

    // Fill the remaining 20 connection slots, then one more is closed at once, unanswered.
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&agent.addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (ok, got) = read_until(&mut s, "ok\n", deadline);
        assert!(ok, "{got}");
        idle.push(s);
    }
    // Over the cap a health probe is still answered, from the probe reserve (so a client
    // holding every connection cannot get the agent restarted), and nothing else is.
    for probe in ["/healthz", "/readyz"] {
        let answer = raw_exchange(
            &agent.addr,
            format!("GET {probe} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
            Duration::from_secs(10),
        );
        assert_eq!(
            status_of(&answer),
            Some(200),
            "{probe} over the cap: {answer}"
        );
    }
    let answer = raw_exchange(
        &agent.addr,
        b"GET /v1/sources HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status_of(&answer), Some(503), "{answer}");
    assert!(answer.contains("max_connections"), "{answer}");
    // With the reserve held too (silent connections, cut after a second), the next one is
    // closed at once, unanswered.
    let held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(&agent.addr).unwrap())
        .collect();
    let mut extra = TcpStream::connect(&agent.addr).unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let (answered, got) = read_until(&mut extra, "ok\n", deadline);
    assert!(
        !answered && got.is_empty(),
        "over the cap and the reserve but answered: {got}"
    );
    drop(held);

    // Freed slots are usable again.
    drop(idle.pop());
    drop(follows.pop());
    assert!(eventually(Duration::from_secs(10), || {
        let mut s = TcpStream::connect(&agent.addr).unwrap();
        let _ = s.write_all(follow_request("shop", "web-0").as_bytes());
        let ok = read_until(
            &mut s,
            "web-0 line 0",
            Instant::now() + Duration::from_secs(2),
        )
        .0;
        if ok {
            follows.push(s);
        }
        ok
    }));
    drop(follows);
    drop(idle);
    assert!(eventually(Duration::from_secs(10), || agent
        .metric("runnel_http_connections_refused_total", None)
        .is_some_and(|n| n >= 1.0)));
    assert!(agent.metric("runnel_http_follows_refused_total", None) >= Some(1.0));
}

#[test]
fn a_thousand_idle_follows_sleep_through_another_sources_syncs() {
    raise_nofile(8192);
    let node = Node::new();
    write(&node, "shop", "idle-0", 0..1);
    write(&node, "shop", "busy-0", 0..1);
    let cfg = config(&node, "");
    let agent = LoggedAgent::start(&cfg, node.dir.path().join("agent.log"));
    assert!(eventually(Duration::from_secs(10), || records(&agent) == 2));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut follows = Vec::with_capacity(1000);
    for i in 0..1000 {
        let mut s = TcpStream::connect(&agent.addr).unwrap();
        s.write_all(follow_request("shop", "idle-0").as_bytes())
            .unwrap();
        let (ok, got) = read_until(&mut s, "idle-0 line 0", deadline);
        assert!(ok, "follow {i}: {got}");
        follows.push(s);
    }
    assert_eq!(agent.metric("runnel_http_follows", None), Some(1000.0));
    assert_eq!(
        agent.metric("runnel_http_followed_sources", None),
        Some(1.0)
    );
    // Another source ingests (many syncs): none of the 1000 is woken.
    // Waves, each waited for, so that they land in separate syncs.
    let syncs_before = agent.metric("runnel_index_syncs_total", None).unwrap();
    for wave in 0..10u64 {
        write(
            &node,
            "shop",
            "busy-0",
            1 + wave * 1000..1 + (wave + 1) * 1000,
        );
        let want = 2 + (wave + 1) * 1000;
        assert!(eventually(Duration::from_secs(60), || records(&agent) == want));
    }
    // (The index part of /metrics is a snapshot at most a second old.)
    assert!(eventually(Duration::from_secs(10), || agent
        .metric("runnel_index_syncs_total", None)
        .is_some_and(|n| n >= syncs_before + 10.0)));
    assert_eq!(
        agent.metric("runnel_http_follow_wakeups_total", None),
        Some(0.0)
    );
    // One line on their source wakes every one of them.
    write(&node, "shop", "idle-0", 1..2);
    for (i, s) in follows.iter_mut().enumerate() {
        let (ok, got) = read_until(s, "idle-0 line 1", deadline);
        assert!(ok, "follow {i} not woken: {got}");
    }
    let woken = agent
        .metric("runnel_http_follow_wakeups_total", None)
        .unwrap();
    assert!((1000.0..=2000.0).contains(&woken), "{woken}");
}

#[test]
fn a_flood_of_unknown_pods_with_long_names_and_hostile_parameters_stay_4xx() {
    let node = Node::new();
    for i in 0..200 {
        write(&node, "shop", &format!("{}-{i}", "w".repeat(40)), 0..1);
    }
    let cfg = config(&node, "");
    let agent = LoggedAgent::start(&cfg, node.dir.path().join("agent.log"));
    assert!(
        eventually(Duration::from_secs(30), || records(&agent) == 200),
        "{} of 200 ingested; log: {}",
        records(&agent),
        agent.log_text()
    );
    let addr = agent.addr.clone();
    let flood: Vec<_> = (0..4)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut codes = std::collections::BTreeMap::new();
                for i in 0..250 {
                    let len = if i % 2 == 0 { 253 } else { 254 + i };
                    let pod: String = format!("{}-{t}-{i}", "w".repeat(len))
                        .chars()
                        .take(len)
                        .collect();
                    let url = format!("http://{addr}/v1/logs?namespace=shop&pod={pod}");
                    let code = match ureq::get(&url).timeout(Duration::from_secs(30)).call() {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(c, _)) => c,
                        Err(e) => panic!("{e}"),
                    };
                    *codes.entry(code).or_insert(0u32) += 1;
                }
                codes
            })
        })
        .collect();
    // Health stays answered during the flood.
    assert_eq!(agent.get("/healthz", None).0, 200);
    let mut codes = std::collections::BTreeMap::new();
    for f in flood {
        for (c, n) in f.join().unwrap() {
            *codes.entry(c).or_insert(0u32) += n;
        }
    }
    assert_eq!(
        codes,
        [(400, 500), (404, 500)].into_iter().collect(),
        "{codes:?}"
    );
    let (code, body) = agent.get(
        &format!("/v1/logs?namespace=shop&pod={}", "w".repeat(254)),
        None,
    );
    assert_eq!(code, 400);
    assert!(body.contains("at most 253 bytes"), "{body}");
    let (code, body) = agent.get(
        &format!("/v1/logs?namespace=shop&pod={}-7x", "w".repeat(40)),
        None,
    );
    assert_eq!(code, 404);
    assert!(body.contains("did you mean"), "{body}");

    let exists = format!("namespace=shop&pod={}-0", "w".repeat(40));
    for (q, want) in [
        ("tailLines=-1".to_string(), 400),
        ("tailLines=99999999999999999999999".into(), 400),
        ("limitBytes=0".into(), 400),
        ("limitBytes=abc".into(), 400),
        ("follow=maybe".into(), 400),
        ("sinceTime=9999-99-99T99:99:99Z".into(), 400),
        (
            "sinceTime=2024-05-01T12:00:00Z&untilTime=2024-05-01T11:00:00Z".into(),
            400,
        ),
        ("sinceSeconds=5&sinceTime=2024-05-01T12:00:00Z".into(), 400),
        ("tail=5".into(), 400),
        ("=&=&&&".into(), 400),
        ("%ff%fe=%00".into(), 400),
        ("sinceSeconds=18446744073709551615".into(), 200),
        ("container=%00%ff".into(), 404),
        (format!("container={}", "c".repeat(300)), 400),
    ] {
        let (code, body) = agent.get(&format!("/v1/logs?{exists}&{q}"), None);
        assert_eq!(code, want, "{q}: {body}");
        if want == 400 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["reason"], "BadRequest", "{q}: {body}");
        }
    }
    let (code, body) = agent.get(&format!("/v1/logs?pod={}", "a".repeat(9000)), None);
    assert_eq!(code, 414, "{body}");
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(20_000)
    );
    let answer = raw_exchange(&agent.addr, big_header.as_bytes(), Duration::from_secs(10));
    assert_eq!(status_of(&answer), Some(431), "{answer}");
    let answer = raw_exchange(&agent.addr, b"GARBAGE\r\n\r\n", Duration::from_secs(10));
    assert_eq!(status_of(&answer), Some(400), "{answer}");
    assert_eq!(agent.request("DELETE", "/v1/logs", None).0, 405);
    assert_eq!(agent.get("/healthz", None).0, 200);
}

#[test]
fn head_caps_do_not_cap_large_responses() {
    let node = Node::new();
    write(&node, "shop", "big-0", 0..30_000);
    let cfg = config(
        &node,
        "  limits: { max_header_bytes: 8KiB, max_uri_bytes: 1KiB }\n",
    );
    let agent = LoggedAgent::start(&cfg, node.dir.path().join("agent.log"));
    assert!(eventually(Duration::from_secs(30), || records(&agent) == 30_000));
    let (code, body) = agent.get("/v1/logs?namespace=shop&pod=big-0", None);
    assert_eq!(code, 200);
    assert_eq!(body.lines().count(), 30_000);
    assert!(body.ends_with("big-0 line 29999\n"));
    let (code, _) = agent.get(
        &format!("/v1/logs?namespace=shop&pod={}", "b".repeat(1100)),
        None,
    );
    assert_eq!(code, 414);
}
