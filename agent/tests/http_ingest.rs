//! `POST /v1/ingest` against the real agent over a real socket: NDJSON, plain text, gzip, a bad
//! line (nothing stored), an oversized body (413), a retried request id (stored once), and
//! the records read back with `runnel logs` like any container's.

mod support;

use std::io::Write;
use support::{logs_from_dir, Agent, Node};

fn post(agent: &Agent, query: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut req = ureq::post(&agent.url(&format!("/v1/ingest?{query}")));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST /v1/ingest: {e}"),
    }
}

fn stored(body: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["stored"].as_u64().unwrap()
}

#[test]
fn ndjson_text_and_gzip_bodies_are_stored_and_read_back_like_container_logs() {
    let node = Node::new();
    let cfg = node.config_with_inputs("  http_ingest: { max_body_bytes: 64KiB }\n", "");
    let agent = Agent::start(&cfg);
    let q = "namespace=shop&pod=web-0&container=side";

    let nd = concat!(
        "{\"log\":\"first\\n\",\"time\":\"2026-12-01T10:00:00.5Z\",\"stream\":\"stdout\"}\n",
        "{\"message\":\"second\",\"time\":1796119200.25}\n",
        "{\"level\":\"warn\",\"code\":7}\n",
    );
    let (code, body) = post(
        &agent,
        q,
        &[("Content-Type", "application/x-ndjson")],
        nd.as_bytes(),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(stored(&body), 3);

    let (code, body) = post(
        &agent,
        &format!("{q}&stream=stderr"),
        &[("Content-Type", "text/plain")],
        b"plain one\nplain two\n",
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(stored(&body), 2);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"zipped\n").unwrap();
    let gz = gz.finish().unwrap();
    let (code, body) = post(
        &agent,
        q,
        &[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")],
        &gz,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(stored(&body), 1);

    // A bad line refuses the whole request, naming the line.
    let bad = "{\"log\":\"would be stored\"}\n{not json}\n";
    let (code, body) = post(
        &agent,
        q,
        &[("Content-Type", "application/x-ndjson")],
        bad.as_bytes(),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("line 2"), "{body}");

    // Over max_body_bytes: 413, plain and after gzip decoding (a small gzip of a big body).
    let big = vec![b'x'; 70 * 1024];
    let (code, body) = post(&agent, q, &[("Content-Type", "text/plain")], &big);
    assert_eq!(code, 413, "{body}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&big).unwrap();
    let gz = gz.finish().unwrap();
    let (code, body) = post(
        &agent,
        q,
        &[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")],
        &gz,
    );
    assert_eq!(code, 413, "{body}");

    // Missing pod, bad stream, unknown content type.
    assert_eq!(post(&agent, "container=c", &[], b"x\n").0, 400);
    assert_eq!(
        post(&agent, &format!("{q}&stream=both"), &[], b"x\n").0,
        400
    );
    assert_eq!(
        post(&agent, q, &[("Content-Type", "image/png")], b"x\n").0,
        415
    );

    // A retried request with the same id is acknowledged again and stored once.
    for _ in 0..3 {
        let (code, body) = post(
            &agent,
            q,
            &[("Content-Type", "text/plain"), ("X-Request-Id", "req-42")],
            b"once a\nonce b\n",
        );
        assert_eq!(code, 200, "{body}");
    }
    let (code, body) = post(
        &agent,
        &format!("{q}&request_id=req-42"),
        &[("Content-Type", "text/plain")],
        b"once a\nonce b\n",
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["stored"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(2))
    );

    // Stored: readable over HTTP at once (the 200 came after the sync).
    let (code, text) = agent.get("/v1/logs?namespace=shop&pod=web-0&container=side");
    assert_eq!(code, 200, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "first",
            "second",
            "{\"code\":7,\"level\":\"warn\"}",
            "plain one",
            "plain two",
            "zipped",
            "once a",
            "once b"
        ]
    );
    let (_, ts) =
        agent.get("/v1/logs?namespace=shop&pod=web-0&container=side&timestamps=true&tailLines=8");
    assert!(ts.starts_with("2026-12-01T10:00:00.5Z first\n"), "{ts}");
    let (_, metrics) = agent.get("/metrics");
    assert!(
        metrics.contains("runnel_ingest_duplicate_records_total 6"),
        "{metrics}"
    );
    agent.stop();
    let out = logs_from_dir(&node, &["-n", "shop", "web-0", "-c", "side", "--tail", "2"]);
    assert_eq!(out, "once a\nonce b\n");
}

/// A client that sends its whole body before reading (as most do) gets the 413 for a body far
/// over the limit, not a connection reset under its write.
#[test]
fn a_body_far_over_the_limit_is_answered_413_after_it_was_sent() {
    use std::io::Read;
    let node = Node::new();
    let cfg = node.config_with_inputs("  http_ingest: { max_body_bytes: 64KiB }\n", "");
    let agent = Agent::start(&cfg);
    let url = agent.url("/");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    // Past what the sockets buffer between the two ends (a few MiB each way on loopback).
    let body = vec![b'x'; 24 << 20];
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /v1/ingest?namespace=shop&pod=web-0&container=side HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: text/plain\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body)
        .expect("the whole body is read before the answer");
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_body_bytes"), "{answer}");
    agent.stop();
}

/// Bodies that cannot be what they claim: a gzip body cut short or damaged and NDJSON with
/// bytes that are not UTF-8 are refused whole with a 400 naming the problem (nothing stored);
/// plain text keeps non-UTF-8 bytes as they are; no namespace means `default`.
#[test]
fn damaged_gzip_and_non_utf8_ndjson_are_refused_whole_and_plain_text_keeps_its_bytes() {
    let node = Node::new();
    let cfg = node.config_with_inputs("  http_ingest: { max_body_bytes: 64KiB }\n", "");
    let agent = Agent::start(&cfg);
    let q = "namespace=shop&pod=bad-0&container=side";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..500 {
        writeln!(gz, "zipped line {i}").unwrap();
    }
    let whole = gz.finish().unwrap();
    let plain_gz = [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")];
    // Cut in the middle, then a damaged trailer (every byte decodes, the CRC does not match).
    let (code, body) = post(&agent, q, &plain_gz, &whole[..whole.len() / 2]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("gzip body cannot be decoded"), "{body}");
    let mut damaged = whole.clone();
    let n = damaged.len();
    damaged[n - 6] ^= 0xff;
    let (code, body) = post(&agent, q, &plain_gz, &damaged);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("gzip body cannot be decoded"), "{body}");
    // Not gzip at all.
    let (code, body) = post(&agent, q, &plain_gz, b"plain text said to be gzip\n");
    assert_eq!(code, 400, "{body}");

    // NDJSON whose second line holds a byte that is not UTF-8.
    let nd = b"{\"log\":\"fine\"}\n{\"log\":\"bad \xff byte\"}\n";
    let (code, body) = post(&agent, q, &[("Content-Type", "application/x-ndjson")], nd);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("line 2"), "{body}");
    assert!(body.contains("nothing was stored"), "{body}");

    // Nothing of the refused requests is there.
    let (code, text) = agent.get(&format!("/v1/logs?{q}"));
    assert_eq!(code, 404, "no record was stored for the pod: {text}");

    // Plain text: the bytes are the message, as a container's would be.
    let (code, body) = post(
        &agent,
        q,
        &[("Content-Type", "text/plain")],
        b"raw \xff\xfe bytes\n",
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(stored(&body), 1);
    // No namespace: the pod is in `default`.
    let (code, body) = post(
        &agent,
        "pod=nons-0&container=side",
        &[("Content-Type", "text/plain")],
        b"in default\n",
    );
    assert_eq!(code, 200, "{body}");
    let (code, text) = agent.get("/v1/logs?namespace=default&pod=nons-0&container=side");
    assert_eq!((code, text.as_str()), (200, "in default\n"));
    agent.stop();
    let out = std::process::Command::new(support::runnel_bin())
        .args(["logs", "--data-dir"])
        .arg(node.data_dir())
        .args(["-n", "shop", "bad-0", "-c", "side"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"raw \xff\xfe bytes\n", "bytes kept as sent");
}
