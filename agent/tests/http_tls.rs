//! HTTPS against the real agent with real TLS clients (curl, and `runnel logs --cacert`),
//! with a test CA made by the openssl CLI: TLS 1.2+ only, plain HTTP refused on the TLS port,
//! the certificate re-read when its Secret is rotated (a broken one keeps the old), and
//! client certificates required when `client_ca_file` is set.

mod http_support;
mod support;

use http_support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use support::*;

fn tool(name: &str) -> &str {
    let ok = Command::new(name).arg("--version").output().is_ok()
        || Command::new(name).arg("version").output().is_ok();
    assert!(ok, "{name} is not installed: the TLS tests need it (scripts/test.sh installs it: apt-get install {name})");
    name
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(tool("openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>-ca.pem`, `<name>-ca.key`) and a certificate it signs for 127.0.0.1
/// (`<name>-server.pem/.key`) and one for a client (`<name>-client.pem/.key`).
fn make_pki(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=runnel test CA {name}"),
        ],
    );
    for (who, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}-{who}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}-{who}.key"),
                "-out",
                &format!("{name}-{who}.csr"),
                "-subj",
                &format!("/CN=runnel {who} {name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}-{who}.csr"),
                "-CA",
                &format!("{name}-ca.pem"),
                "-CAkey",
                &format!("{name}-ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}-{who}.pem"),
                "-extfile",
                &format!("{name}-{who}.ext"),
            ],
        );
    }
}

fn config(node: &Node, tls: &str) -> PathBuf {
    let path = node.dir.path().join("runnel.yaml");
    let text = format!(
        "data_dir: {data}\nnode_name: test-node\ninputs:\n  docker: {{ enabled: false }}\n  \
         cri: {{ enabled: true, root: {cri} }}\n  rescan_interval: 1s\nhttp:\n  listen: \"127.0.0.1:0\"\n  tls: {tls}\n\
         metrics: {{ enabled: false }}\nlog: {{ format: text, level: info }}\n",
        data = node.data_dir().display(),
        cri = node.cri_root().display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn curl(agent: &LoggedAgent, path: &str, args: &[&str]) -> Output {
    Command::new(tool("curl"))
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("https://127.0.0.1:{}{path}", agent.port()))
        .output()
        .unwrap()
}

fn curl_ok(agent: &LoggedAgent, path: &str, args: &[&str]) -> Option<String> {
    let out = curl(agent, path, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    (out.status.success() && code == "200").then(|| body.to_string())
}

fn node_with_logs() -> Node {
    let node = Node::new();
    let text: String = (0..3)
        .map(|i| cri_line(&time_at(i), "stdout", "F", &format!("tls line {i}")))
        .collect();
    append(&node.cri_log("shop", "web-0", "app", 0), &text);
    node
}

#[test]
fn https_with_a_test_ca_tls12_and_up_and_plain_http_refused() {
    let node = node_with_logs();
    let pki = node.dir.path();
    make_pki(pki, "a");
    let cfg = config(
        &node,
        &format!(
            "{{ cert_file: {0}/a-server.pem, key_file: {0}/a-server.key }}",
            pki.display()
        ),
    );
    let agent = LoggedAgent::start(&cfg, pki.join("agent.log"));
    assert_eq!(agent.scheme, "https");
    let ca = pki.join("a-ca.pem");
    let ca = ca.to_str().unwrap();
    assert!(eventually(Duration::from_secs(30), || curl_ok(
        &agent,
        "/readyz",
        &["--cacert", ca]
    )
    .is_some()));
    assert!(eventually(Duration::from_secs(10), || curl_ok(
        &agent,
        "/v1/logs?namespace=shop&pod=web-0",
        &["--cacert", ca]
    )
    .as_deref()
        == Some("tls line 0\ntls line 1\ntls line 2\n")));
    for v in [
        ["--tlsv1.2", "--tls-max", "1.2"],
        ["--tlsv1.3", "--tls-max", "1.3"],
    ] {
        assert_eq!(
            curl_ok(&agent, "/healthz", &["--cacert", ca, v[0], v[1], v[2]]).as_deref(),
            Some("ok\n"),
            "{v:?}"
        );
    }
    let old = curl(
        &agent,
        "/healthz",
        &[
            "--cacert",
            ca,
            "--tlsv1.1",
            "--tls-max",
            "1.1",
            "--ciphers",
            "DEFAULT@SECLEVEL=0",
        ],
    );
    assert!(
        !old.status.success(),
        "TLS 1.1 accepted: {}",
        String::from_utf8_lossy(&old.stdout)
    );
    // Refused by the server, which answered the TLS 1.1 hello with an alert; the client's own
    // library did not stop short (that says "no protocols available" or "unsupported").
    let why = String::from_utf8_lossy(&old.stderr);
    assert!(why.contains("alert"), "{why}");
    // Without the CA the server is not trusted.
    let untrusted = curl(&agent, "/healthz", &[]);
    assert!(!untrusted.status.success());

    // The CLI is a TLS client too.
    let server = format!("https://127.0.0.1:{}", agent.port());
    let out = runnel(&[
        "logs", "--server", &server, "--cacert", ca, "-n", "shop", "web-0", "--tail", "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tls line 1\ntls line 2\n"
    );
    let out = runnel(&["logs", "--server", &server, "-n", "shop", "web-0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("cannot reach the agent")
            && err.to_lowercase().contains("certificate"),
        "{err}"
    );

    // Plain HTTP on the TLS port: a readable refusal, nothing served.
    let answer = raw_exchange(
        &agent.addr,
        b"GET /v1/logs?namespace=shop&pod=web-0 HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status_of(&answer), Some(400), "{answer}");
    assert!(
        answer.contains("HTTPS only") && !answer.contains("tls line"),
        "{answer}"
    );
    let out = runnel(&[
        "logs",
        "--server",
        &format!("http://{}", agent.addr),
        "-n",
        "shop",
        "web-0",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTPS only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = curl_ok(&agent, "/metrics", &["--cacert", ca]).unwrap();
    assert!(
        page.contains("runnel_http_plain_refused_total 2\n"),
        "{page}"
    );
    assert!(
        page.lines().any(
            |l| l.starts_with("runnel_http_tls_handshake_failures_total ") && !l.ends_with(" 0")
        ),
        "{page}"
    );
}

#[test]
fn certificate_rotation_is_picked_up_and_a_broken_one_keeps_the_old() {
    let node = node_with_logs();
    let pki = node.dir.path();
    for n in ["a", "b", "c"] {
        make_pki(pki, n);
    }
    let read = |f: &str| std::fs::read(pki.join(f)).unwrap();
    let mut vol = SecretVolume::create(
        &pki.join("tls-secret"),
        &[
            ("tls.crt", &read("a-server.pem")),
            ("tls.key", &read("a-server.key")),
        ],
    );
    let cfg = config(
        &node,
        &format!(
            "{{ cert_file: {}, key_file: {} }}",
            vol.path("tls.crt").display(),
            vol.path("tls.key").display()
        ),
    );
    let agent = LoggedAgent::start(&cfg, pki.join("agent.log"));
    let ca = |n: &str| {
        pki.join(format!("{n}-ca.pem"))
            .to_str()
            .unwrap()
            .to_string()
    };
    assert!(eventually(Duration::from_secs(30), || curl_ok(
        &agent,
        "/healthz",
        &["--cacert", &ca("a")]
    )
    .is_some()));

    vol.update(&[
        ("tls.crt", &read("b-server.pem")),
        ("tls.key", &read("b-server.key")),
    ]);
    assert!(
        eventually(Duration::from_secs(10), || curl_ok(
            &agent,
            "/healthz",
            &["--cacert", &ca("b")]
        )
        .is_some()),
        "the rotated certificate was not picked up"
    );
    assert!(curl_ok(&agent, "/healthz", &["--cacert", &ca("a")]).is_none());

    // A certificate with somebody else's key cannot be used: the one in force stays.
    vol.update(&[
        ("tls.crt", &read("c-server.pem")),
        ("tls.key", &read("b-server.key")),
    ]);
    assert!(
        eventually(Duration::from_secs(10), || agent
            .log_text()
            .contains("keeping the certificate in force")),
        "{}",
        agent.log_text()
    );
    assert!(curl_ok(&agent, "/healthz", &["--cacert", &ca("b")]).is_some());
    let page = curl_ok(&agent, "/metrics", &["--cacert", &ca("b")]).unwrap();
    assert!(
        page.contains("runnel_http_tls_reload_errors_total 1\n"),
        "{page}"
    );
}

#[test]
fn client_certificates_are_required_with_client_ca_file() {
    let node = node_with_logs();
    let pki = node.dir.path();
    make_pki(pki, "a");
    make_pki(pki, "z");
    let cfg = config(&node, &format!(
        "{{ cert_file: {0}/a-server.pem, key_file: {0}/a-server.key, client_ca_file: {0}/a-ca.pem }}", pki.display()));
    let agent = LoggedAgent::start(&cfg, pki.join("agent.log"));
    let p = |f: &str| pki.join(f).to_str().unwrap().to_string();
    let with_cert = [
        "--cacert".to_string(),
        p("a-ca.pem"),
        "--cert".into(),
        p("a-client.pem"),
        "--key".into(),
        p("a-client.key"),
    ];
    let with_cert: Vec<&str> = with_cert.iter().map(String::as_str).collect();
    assert!(eventually(Duration::from_secs(30), || curl_ok(
        &agent, "/readyz", &with_cert
    )
    .is_some()));
    assert_eq!(
        curl_ok(
            &agent,
            "/v1/logs?namespace=shop&pod=web-0&tailLines=1",
            &with_cert
        )
        .as_deref(),
        Some("tls line 2\n")
    );
    assert!(
        curl_ok(&agent, "/healthz", &["--cacert", &p("a-ca.pem")]).is_none(),
        "served without a client certificate"
    );
    let foreign = [
        "--cacert",
        &p("a-ca.pem"),
        "--cert",
        &p("z-client.pem"),
        "--key",
        &p("z-client.key"),
    ];
    assert!(
        curl_ok(&agent, "/healthz", &foreign).is_none(),
        "served a client certificate of another CA"
    );
}

#[test]
fn forward_over_tls_with_client_certificates_and_plain_tcp_refused() {
    let node = Node::new();
    let dir = node.dir.path();
    make_pki(dir, "fwd");
    make_pki(dir, "other");
    let cfg = node.config_with_inputs(
        &format!(
            "  forward: {{ enabled: true, listen: \"127.0.0.1:0\", tls: {{ cert_file: {d}/fwd-server.pem, key_file: {d}/fwd-server.key, client_ca_file: {d}/fwd-ca.pem }} }}\n",
            d = dir.display()
        ),
        "",
    );
    let (agent, addr) = Agent::start_forward(&cfg);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let f = |n: &str| dir.join(n).display().to_string();
    let ca = f("fwd-ca.pem");
    let run = |cert: &str, key: &str, mode: &str| {
        run_script("forward/tls_client.py", &[host, port, &ca, cert, key, mode])
    };
    assert_eq!(
        run(&f("fwd-client.pem"), &f("fwd-client.key"), "ok"),
        "acked"
    );
    assert_eq!(
        run(&f("other-client.pem"), &f("other-client.key"), "refused"),
        "refused"
    );
    assert_eq!(run("-", "-", "refused"), "refused");
    assert_eq!(run("-", "-", "plain"), "no ack in plain");
    let (code, body) = agent.get("/v1/logs?namespace=shop&pod=tls-0&container=app");
    assert_eq!((code, body.as_str()), (200, "over-tls\n"));
    agent.stop();
}

#[test]
fn silent_and_half_sent_tls_handshakes_are_cut_at_the_header_timeout() {
    use std::io::{Read, Write};
    let node = node_with_logs();
    let pki = node.dir.path();
    make_pki(pki, "a");
    let cfg = config(
        &node,
        &format!(
            "{{ cert_file: {0}/a-server.pem, key_file: {0}/a-server.key }}\n  limits: {{ header_timeout: 1s }}",
            pki.display()
        ),
    );
    let agent = LoggedAgent::start(&cfg, pki.join("agent.log"));
    let ca = pki.join("a-ca.pem");
    let ca = ca.to_str().unwrap();
    assert!(eventually(Duration::from_secs(30), || curl_ok(
        &agent,
        "/readyz",
        &["--cacert", ca]
    )
    .is_some()));
    // A TLS record header announcing a 512-byte ClientHello, and the first bytes of it.
    let half: &[u8] = &[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let start = std::time::Instant::now();
    let mut conns = Vec::new();
    for i in 0..40 {
        let mut s = std::net::TcpStream::connect(&agent.addr).unwrap();
        match i % 2 {
            0 => {}                          // connects and sends nothing
            _ => s.write_all(half).unwrap(), // starts a handshake and stalls
        }
        conns.push(s);
    }
    // Others are served meanwhile.
    assert!(curl_ok(&agent, "/readyz", &["--cacert", ca]).is_some());
    for (i, s) in conns.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 256];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break Some(start.elapsed()),
                Ok(_) => continue, // a TLS alert before the close is fine
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    break None
                }
                Err(_) => break Some(start.elapsed()),
            }
        };
        let kind = if i % 2 == 0 {
            "silent"
        } else {
            "half-sent handshake"
        };
        let t = closed.unwrap_or_else(|| panic!("connection {i} ({kind}) still open after 15 s"));
        assert!(
            t >= Duration::from_millis(900),
            "connection {i} ({kind}) cut before the timeout: {t:?}"
        );
    }
    let page = curl_ok(&agent, "/metrics", &["--cacert", ca]).expect("/metrics over TLS");
    let cut: f64 = page
        .lines()
        .find_map(|l| l.strip_prefix("runnel_http_slow_clients_cut_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(cut >= 40.0, "slow clients cut: {cut}");
}
