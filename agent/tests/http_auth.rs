//! Access control of the HTTP API against the real agent over real sockets: tokens with and
//! without each right, namespace scope on every endpoint (lists filtered, 403 outside, no
//! name of another namespace in any answer or hint), the anonymous policy, `runnel logs
//! --token-file` / `RUNNEL_TOKEN`, and a tokens Secret rotated the way the kubelet does it.

mod http_support;
mod support;

use http_support::*;
use std::time::Duration;
use support::*;

const SHOP: &str = "tok-shop-5a1d8f";
const PLATFORM: &str = "tok-platform-77c2e9";
const INGESTER: &str = "tok-ingest-0b3c41";
const SCRAPER: &str = "tok-metrics-9e8d7c";

fn config(node: &Node, http: &str) -> std::path::PathBuf {
    let path = node.dir.path().join("runnel.yaml");
    let text = format!(
        "data_dir: {data}\nnode_name: test-node\ninputs:\n  docker: {{ enabled: true, root: {docker} }}\n  \
         cri: {{ enabled: true, root: {cri} }}\n  rescan_interval: 1s\nhttp:\n  listen: \"127.0.0.1:0\"\n{http}\
         metrics: {{ enabled: false }}\nlog: {{ format: text, level: info }}\n",
        data = node.data_dir().display(),
        docker = node.docker_root().display(),
        cri = node.cri_root().display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn write(node: &Node, ns: &str, pod: &str, container: &str, lines: &[&str]) {
    let log = node.cri_log(ns, pod, container, 0);
    let text: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| cri_line(&time_at(i as u64), "stdout", "F", l))
        .collect();
    append(&log, &text);
}

fn source_names(body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let id = &s["identity"];
            match (id["namespace"].as_str(), id["pod"].as_str()) {
                (Some(ns), Some(p)) => format!("{ns}/{p}"),
                _ => format!("docker:{}", id["container_name"].as_str().unwrap_or("?")),
            }
        })
        .collect()
}

fn post_text(agent: &LoggedAgent, query: &str, token: &str, body: &str) -> (u16, String) {
    let url = format!("http://{}/v1/ingest?{query}", agent.addr);
    let r = ureq::post(&url)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "text/plain")
        .timeout(Duration::from_secs(30))
        .send_bytes(body.as_bytes());
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST /v1/ingest: {e}"),
    }
}

fn node_with_three_tenants() -> Node {
    let node = Node::new();
    write(
        &node,
        "shop",
        "web-0",
        "nginx",
        &["shop line 1", "shop line 2"],
    );
    write(
        &node,
        "kube-system",
        "coredns-7f9",
        "coredns",
        &["secret dns line"],
    );
    write(
        &node,
        "kube-system",
        "web-1",
        "proxy",
        &["kube-system web-1 line"],
    );
    let id = container_id(7);
    let docker = node.docker_container(&id, "plain-redis", &[]);
    append(&docker, &docker_line("redis line\n", "stdout", &time_at(0)));
    node
}

fn tokens_file(node: &Node) -> std::path::PathBuf {
    let path = node.dir.path().join("tokens.yaml");
    std::fs::write(
        &path,
        tokens_yaml(&[
            ("shop-team", SHOP, "[shop]", "[read]"),
            ("platform", PLATFORM, "[\"*\"]", "[read, metrics]"),
            ("shop-sidecars", INGESTER, "[shop]", "[ingest]"),
            ("prometheus", SCRAPER, "[\"*\"]", "[metrics]"),
        ]),
    )
    .unwrap();
    path
}

#[test]
fn tokens_rights_and_namespace_scope_on_every_endpoint() {
    let node = node_with_three_tenants();
    let tokens = tokens_file(&node);
    let cfg = config(
        &node,
        &format!(
            "  auth: {{ anonymous: none, tokens_file: {} }}\n",
            tokens.display()
        ),
    );
    let agent = LoggedAgent::start(&cfg, node.dir.path().join("agent.log"));
    assert!(
        eventually(Duration::from_secs(10), || source_names(
            &agent.get("/v1/sources", Some(PLATFORM)).1
        )
        .len()
            == 4),
        "sources not ingested: {}",
        agent.get("/v1/sources", Some(PLATFORM)).1
    );

    // Without a token, or with a wrong one: 401 as a JSON Status, health probes open.
    for token in [None, Some("not-a-token"), Some(&SHOP[..SHOP.len() - 1])] {
        let (code, body) = agent.get("/v1/sources", token);
        assert_eq!(code, 401, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["reason"], "Unauthorized");
        assert!(!body.contains("shop"), "{body}");
    }
    let (code, body) = agent.get("/nowhere", None);
    assert_eq!(
        code, 401,
        "unknown paths are not shown to strangers: {body}"
    );
    assert_eq!(agent.get("/healthz", None).0, 200);
    assert_eq!(agent.get("/readyz", None).0, 200);

    // A token scoped to shop sees shop alone: in lists, in reads, in hints.
    let (code, body) = agent.get("/v1/sources", Some(SHOP));
    assert_eq!(code, 200);
    assert_eq!(source_names(&body), ["shop/web-0"]);
    let (code, body) = agent.get("/v1/logs?namespace=shop&pod=web-0", Some(SHOP));
    assert_eq!((code, body.as_str()), (200, "shop line 1\nshop line 2\n"));
    for q in [
        "namespace=kube-system&pod=coredns-7f9",
        "namespace=kube-system&pod=no-such-pod",
        "pod=plain-redis",
        "pod=coredns-7f9",
    ] {
        let (code, body) = agent.get(&format!("/v1/logs?{q}"), Some(SHOP));
        assert_eq!(code, 403, "{q}: {body}");
        assert!(
            !body.contains("coredns") || q.contains("coredns") && !body.contains("dns line"),
            "{q}: {body}"
        );
        assert!(!body.contains("line"), "{q}: {body}");
    }
    // A typo inside shop: the hint names shop's pod, never kube-system's web-1.
    let (code, body) = agent.get("/v1/logs?namespace=shop&pod=web-2", Some(SHOP));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("did you mean: shop/web-0"), "{body}");
    assert!(!body.contains("kube-system"), "{body}");
    let (code, body) = agent.get("/v1/logs?namespace=shop&pod=coredns-7f9", Some(SHOP));
    assert_eq!(code, 404, "{body}");
    assert!(
        !body.contains("kube-system") && !body.contains("did you mean"),
        "{body}"
    );
    // Rights the token does not hold.
    for path in ["/metrics", "/v1/status"] {
        let (code, body) = agent.get(path, Some(SHOP));
        assert_eq!(code, 403, "{path}: {body}");
        assert!(body.contains("metrics right"), "{body}");
    }
    let (code, body) = agent.request("POST", "/v1/ingest", Some(SHOP));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("ingest right"), "{body}");

    // The ingest token may only ingest, and only into its namespaces; the metrics token only
    // scrape.
    let (code, body) = post_text(
        &agent,
        "namespace=shop&pod=side-0&container=c",
        INGESTER,
        "pushed line\n",
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = post_text(
        &agent,
        "namespace=kube-system&pod=side-0&container=c",
        INGESTER,
        "intruder\n",
    );
    assert_eq!(code, 403, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["message"],
        "\"shop-sidecars\" is scoped to namespaces [shop], not namespace \"kube-system\""
    );
    assert_eq!(
        agent.get("/v1/logs?namespace=shop&pod=side-0", Some(SHOP)),
        (200, "pushed line\n".into())
    );
    let (code, _) = agent.get("/v1/logs?namespace=kube-system&pod=side-0", Some(PLATFORM));
    assert_eq!(code, 404, "a refused ingest was stored");
    assert_eq!(
        agent
            .get("/v1/logs?namespace=shop&pod=web-0", Some(INGESTER))
            .0,
        403
    );
    assert_eq!(agent.get("/v1/sources", Some(SCRAPER)).0, 403);
    assert_eq!(agent.get("/v1/status", Some(SCRAPER)).0, 200);

    // A platform token sees every namespace and the plain containers.
    let (_, body) = agent.get("/v1/sources", Some(PLATFORM));
    let mut names = source_names(&body);
    names.sort();
    assert_eq!(
        names,
        [
            "docker:plain-redis",
            "kube-system/coredns-7f9",
            "kube-system/web-1",
            "shop/side-0",
            "shop/web-0"
        ]
    );
    assert_eq!(
        agent.get(
            "/v1/logs?namespace=kube-system&pod=coredns-7f9",
            Some(PLATFORM)
        ),
        (200, "secret dns line\n".into())
    );

    // A scoped follow gets new lines of its own source.
    let url = format!(
        "http://{}/v1/logs?namespace=shop&pod=web-0&follow=true",
        agent.addr
    );
    let resp = ureq::get(&url)
        .set("Authorization", &format!("Bearer {SHOP}"))
        .call()
        .unwrap();
    let mut reader = std::io::BufReader::new(resp.into_reader());
    let mut line = String::new();
    use std::io::BufRead;
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "shop line 1\n");
    reader.read_line(&mut line).unwrap();
    write(&node, "shop", "web-0", "nginx", &["shop line 3"]);
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "shop line 3\n");

    // Every decision is counted; no token ever reaches the log.
    let forbidden = agent
        .metric(
            "runnel_http_auth_total{result=\"forbidden\"}",
            Some(SCRAPER),
        )
        .unwrap();
    assert!(forbidden >= 9.0, "{forbidden}");
    assert!(
        agent
            .metric(
                "runnel_http_auth_total{result=\"unauthenticated\"}",
                Some(SCRAPER)
            )
            .unwrap()
            >= 4.0
    );
    let log = agent.log_text();
    assert!(log.contains("request refused"), "{log}");
    for secret in [SHOP, PLATFORM, INGESTER, SCRAPER, "not-a-token"] {
        assert!(!log.contains(secret), "the log shows a token: {log}");
    }
    assert!(!log.contains(&SHOP[..SHOP.len() - 1]), "{log}");
}

#[test]
fn runnel_logs_sends_the_token_from_a_file_or_the_environment() {
    let node = node_with_three_tenants();
    let tokens = tokens_file(&node);
    let cfg = config(
        &node,
        &format!(
            "  auth: {{ anonymous: none, tokens_file: {} }}\n",
            tokens.display()
        ),
    );
    let agent = LoggedAgent::start(&cfg, node.dir.path().join("agent.log"));
    let server = format!("http://{}", agent.addr);
    assert!(eventually(Duration::from_secs(10), || agent
        .get("/v1/logs?namespace=shop&pod=web-0", Some(SHOP))
        .0
        == 200));
    let token_file = node.dir.path().join("token");
    std::fs::write(&token_file, format!("{SHOP}\n")).unwrap();
    let run = |args: &[&str], env: Option<&str>| {
        let mut c = std::process::Command::new(runnel_bin());
        c.args(["logs", "--server", &server])
            .args(args)
            .env_remove("RUNNEL_TOKEN");
        if let Some(t) = env {
            c.env("RUNNEL_TOKEN", t);
        }
        c.output().unwrap()
    };
    let out = run(
        &[
            "--token-file",
            token_file.to_str().unwrap(),
            "-n",
            "shop",
            "web-0",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "shop line 1\nshop line 2\n"
    );
    let out = run(&["-n", "shop", "web-0", "--tail", "1"], Some(SHOP));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "shop line 2\n");
    let out = run(&["-n", "shop", "web-0"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Error from server (Unauthorized)"), "{err}");
    let out = run(&["-n", "kube-system", "coredns-7f9"], Some(SHOP));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Error from server (Forbidden)"), "{err}");
    let out = run(&["--token-file", "/nonexistent/token", "web-0"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file /nonexistent/token"));
}

#[test]
fn anonymous_loopback_admits_local_callers_only() {
    let node = node_with_three_tenants();
    let path = node.dir.path().join("runnel.yaml");
    let text = std::fs::read_to_string(config(&node, "")).unwrap();
    std::fs::write(&path, text.replace("127.0.0.1:0", "0.0.0.0:0")).unwrap();
    let agent = LoggedAgent::start(&path, node.dir.path().join("agent.log"));
    let local = format!("127.0.0.1:{}", agent.port());
    let remote = format!("{}:{}", non_loopback_ip(), agent.port());
    let ask = |addr: &str, path: &str, auth: &str| {
        raw_exchange(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(10),
        )
    };
    assert_eq!(status_of(&ask(&local, "/v1/sources", "")), Some(200));
    let answer = ask(&remote, "/v1/sources", "");
    assert_eq!(status_of(&answer), Some(401), "{answer}");
    assert!(answer.contains("www-authenticate: Bearer"), "{answer}");
    assert_eq!(status_of(&ask(&remote, "/healthz", "")), Some(200));
    // A token presented from loopback is checked, not waved through.
    let answer = ask(&local, "/v1/sources", "Authorization: Bearer nope\r\n");
    assert_eq!(status_of(&answer), Some(401), "{answer}");
}

#[test]
fn tokens_secret_rotation_like_the_kubelet_and_a_broken_update_keeps_the_old_tokens() {
    let node = node_with_three_tenants();
    let first = tokens_yaml(&[
        ("old", "tok-old-1", "[shop]", "[read]"),
        ("ops", "tok-ops", "[\"*\"]", "[metrics]"),
    ]);
    let mut vol = SecretVolume::create(
        &node.dir.path().join("secret"),
        &[("tokens.yaml", first.as_bytes())],
    );
    let cfg = config(
        &node,
        &format!(
            "  auth: {{ anonymous: none, tokens_file: {} }}\n",
            vol.path("tokens.yaml").display()
        ),
    );
    let agent = LoggedAgent::start(&cfg, node.dir.path().join("agent.log"));
    assert_eq!(agent.get("/v1/sources", Some("tok-old-1")).0, 200);
    assert_eq!(agent.get("/v1/sources", Some("tok-new-2")).0, 401);

    let second = tokens_yaml(&[
        ("new", "tok-new-2", "[shop]", "[read]"),
        ("ops", "tok-ops", "[\"*\"]", "[metrics]"),
    ]);
    vol.update(&[("tokens.yaml", second.as_bytes())]);
    assert!(
        eventually(Duration::from_secs(10), || agent
            .get("/v1/sources", Some("tok-new-2"))
            .0
            == 200),
        "the rotated token was not picked up"
    );
    assert_eq!(
        agent.get("/v1/sources", Some("tok-old-1")).0,
        401,
        "the revoked token still works"
    );

    vol.update(&[("tokens.yaml", b"tokens: [ { name: half-written")]);
    assert!(
        eventually(Duration::from_secs(10), || agent
            .log_text()
            .contains("keeping the previous tokens")),
        "a broken update was not reported: {}",
        agent.log_text()
    );
    assert_eq!(
        agent.get("/v1/sources", Some("tok-new-2")).0,
        200,
        "a broken file dropped the tokens"
    );
    let (code, status) = agent.get("/v1/status", Some("tok-ops"));
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["components"]["http"]["state"], "degraded", "{status}");
    assert!(v["components"]["http"]["tokens_error"]
        .as_str()
        .unwrap()
        .contains("previous tokens"));
    assert_eq!(
        agent.metric("runnel_http_tokens_reload_errors_total", Some("tok-ops")),
        Some(1.0)
    );

    let third = tokens_yaml(&[
        ("third", "tok-third-3", "[shop]", "[read]"),
        ("ops", "tok-ops", "[\"*\"]", "[metrics]"),
    ]);
    vol.update(&[("tokens.yaml", third.as_bytes())]);
    assert!(eventually(Duration::from_secs(10), || agent
        .get("/v1/sources", Some("tok-third-3"))
        .0
        == 200));
    assert_eq!(agent.get("/v1/sources", Some("tok-new-2")).0, 401);
    let v: serde_json::Value =
        serde_json::from_str(&agent.get("/v1/status", Some("tok-ops")).1).unwrap();
    assert_eq!(v["components"]["http"]["state"], "ok");
}

#[test]
fn a_tokens_secret_created_after_start_is_picked_up_and_removing_the_file_revokes() {
    let node = node_with_three_tenants();
    // The optional Secret's volume before the Secret exists: an empty directory.
    let dir = node.dir.path().join("secret");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = config(
        &node,
        &format!(
            "  auth: {{ anonymous: loopback, tokens_file: {} }}\n",
            dir.join("tokens.yaml").display()
        ),
    );
    let agent = LoggedAgent::start(&cfg, node.dir.path().join("agent.log"));
    assert_eq!(agent.get("/v1/sources", Some(SHOP)).0, 401);
    let (code, status) = agent.get("/v1/status", None);
    assert_eq!(code, 200, "{status}");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        v["components"]["http"]["tokens_file_missing"], true,
        "{status}"
    );
    assert_eq!(v["components"]["http"]["tokens"], 0, "{status}");
    assert!(v["components"]["http"]["tokens_note"]
        .as_str()
        .is_some_and(|n| n.contains("401")));
    assert_eq!(
        agent.metric("runnel_http_tokens_file_missing", None),
        Some(1.0)
    );
    assert_eq!(
        agent
            .log_text()
            .matches("tokens file does not exist")
            .count(),
        1,
        "{}",
        agent.log_text()
    );

    let text = tokens_yaml(&[("shop-team", SHOP, "[shop]", "[read]")]);
    let mut vol = SecretVolume::create(&dir, &[("tokens.yaml", text.as_bytes())]);
    assert!(
        eventually(Duration::from_secs(10), || agent
            .get("/v1/sources", Some(SHOP))
            .0
            == 200),
        "the Secret that appeared was not picked up: {}",
        agent.log_text()
    );
    let v: serde_json::Value = serde_json::from_str(&agent.get("/v1/status", None).1).unwrap();
    assert_eq!(v["components"]["http"]["tokens"], 1);
    assert!(v["components"]["http"]["tokens_file_missing"].is_null());

    // The key is dropped from the Secret: `tokens.yaml` now points at nothing.
    vol.update(&[("unrelated", b"x")]);
    assert!(
        eventually(Duration::from_secs(10), || agent
            .get("/v1/sources", Some(SHOP))
            .0
            == 401),
        "removing the tokens file did not revoke the token"
    );
    assert!(agent.log_text().contains("every token is revoked"));
    assert_eq!(
        agent.metric("runnel_http_tokens_file_missing", None),
        Some(1.0)
    );
}

#[test]
fn refusals_are_logged_rate_limited_with_the_suppressed_count_and_never_the_token() {
    let node = node_with_three_tenants();
    let tokens = tokens_file(&node);
    let cfg = config(
        &node,
        &format!(
            "  auth: {{ anonymous: none, tokens_file: {} }}\n",
            tokens.display()
        ),
    );
    let agent = LoggedAgent::start(&cfg, node.dir.path().join("agent.log"));
    let refused = |log: &str| {
        log.lines()
            .filter(|l| l.contains("request refused"))
            .count()
    };
    let bad: Vec<String> = (0..50).map(|i| format!("guess-{i:03}-b7e1")).collect();
    for t in &bad {
        assert_eq!(agent.get("/v1/sources", Some(t)).0, 401);
    }
    // The 403 kind is limited by the same log.
    assert_eq!(agent.get("/metrics", Some(SHOP)).0, 403);
    assert!(
        eventually(Duration::from_secs(5), || refused(&agent.log_text()) >= 1),
        "no refusal was logged: {}",
        agent.log_text()
    );
    assert_eq!(refused(&agent.log_text()), 1, "{}", agent.log_text());
    // After the interval, the next refusal's line carries the count of those held back.
    assert!(
        eventually(Duration::from_secs(25), || {
            agent.get("/v1/sources", Some("guess-late-b7e1"));
            refused(&agent.log_text()) >= 2
        }),
        "no second refusal line: {}",
        agent.log_text()
    );
    let log = agent.log_text();
    assert_eq!(refused(&log), 2, "{log}");
    let second = log
        .lines()
        .filter(|l| l.contains("request refused"))
        .nth(1)
        .unwrap();
    let suppressed: u64 = second
        .split("suppressed_since_last=")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no suppressed count in {second:?}"));
    assert!(suppressed >= 50, "{second}");
    for t in bad
        .iter()
        .map(String::as_str)
        .chain(["guess-late-b7e1", SHOP])
    {
        assert!(!log.contains(t), "the log shows a token: {t}");
    }
}

/// A v2 cgroup tree with one containerd container per `(namespace, pod, container, uid, id)`,
/// each listing this test's own process, and the kubelet's log names that identify them.
fn metrics_node(dir: &std::path::Path, containers: &[(&str, &str, &str, &str, &str)]) {
    let root = dir.join("cgroup");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("cgroup.controllers"), "cpu io memory\n").unwrap();
    std::fs::create_dir_all(dir.join("containers")).unwrap();
    for (ns, pod, container, uid, cid) in containers {
        let cg = root.join(format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/\
             cri-containerd-{cid}.scope",
            uid.replace('-', "_")
        ));
        std::fs::create_dir_all(&cg).unwrap();
        std::fs::write(cg.join("cgroup.procs"), format!("{}\n", std::process::id())).unwrap();
        std::fs::write(cg.join("memory.current"), "1048576\n").unwrap();
        std::fs::create_dir_all(dir.join(format!("pods/{ns}_{pod}_{uid}/{container}"))).unwrap();
        std::fs::write(
            dir.join(format!("containers/{pod}_{ns}_{container}-{cid}.log")),
            "",
        )
        .unwrap();
    }
}

#[test]
fn top_of_a_scoped_token_ranks_only_its_namespaces_and_needs_read() {
    let dir = tempfile::tempdir().unwrap();
    metrics_node(
        dir.path(),
        &[
            (
                "shop",
                "cart-1",
                "cart",
                "5b1e2c3d-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                "kube-system",
                "coredns-7f9",
                "coredns",
                "6c2f3d4e-5a6b-4c7d-9e8f-0a1b2c3d4e5f",
                "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
            ),
        ],
    );
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        tokens_yaml(&[
            ("shop-team", SHOP, "[shop]", "[read]"),
            ("platform", PLATFORM, "[\"*\"]", "[read, metrics]"),
            ("prometheus", SCRAPER, "[\"*\"]", "[metrics]"),
        ]),
    )
    .unwrap();
    let cfg = dir.path().join("runnel.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {d}/data\ninputs:\n  docker: {{ enabled: false }}\n  cri: {{ enabled: true, root: {d}/pods }}\n\
             http:\n  listen: \"127.0.0.1:0\"\n  auth: {{ anonymous: none, tokens_file: {t} }}\n\
             metrics:\n  enabled: true\n  cgroup_root: {d}/cgroup\n  proc_root: /proc\n  interval: 200ms\n  \
             runtime_state_dirs: []\nlog: {{ format: text, level: info }}\n",
            d = dir.path().display(),
            t = tokens.display()
        ),
    )
    .unwrap();
    let agent = LoggedAgent::start(&cfg, dir.path().join("agent.log"));
    let pods = |body: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}/{}",
                    c["namespace"].as_str().unwrap_or("?"),
                    c["pod"].as_str().unwrap_or("?")
                )
            })
            .collect()
    };
    // The platform token sees both once the collector has run.
    let mut all = Vec::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            let (code, body) = agent.get("/v1/top?by=fds&limit=10", Some(PLATFORM));
            all = if code == 200 { pods(&body) } else { Vec::new() };
            all.len() == 2
        }),
        "the collector did not rank both containers: {all:?}; log:\n{}",
        agent.log_text()
    );
    assert!(
        all.contains(&"kube-system/coredns-7f9".to_string()),
        "{all:?}"
    );

    for query in [
        "/v1/top",
        "/v1/top?by=fds&limit=10",
        "/v1/top?by=threads&limit=1",
    ] {
        let (code, body) = agent.get(query, Some(SHOP));
        assert_eq!(code, 200, "{query}: {body}");
        assert_eq!(pods(&body), ["shop/cart-1"], "{query}: {body}");
        for other in ["kube-system", "coredns", "a1b2c3d4e5f6", "6c2f3d4e"] {
            assert!(!body.contains(other), "{query} shows {other}: {body}");
        }
    }
    // A token without read: 403, and the refusal names nothing of the node.
    let (code, body) = agent.get("/v1/top", Some(SCRAPER));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("read right"), "{body}");
    assert!(
        !body.contains("coredns") && !body.contains("cart-1"),
        "{body}"
    );
    assert_eq!(agent.get("/v1/top", None).0, 401);
}
