//! The `runnel` binary as an operator meets it: `agent --demo` generating and serving both log
//! formats, `check-config` printing the effective config or errors with their lines, and
//! unparsable lines counted and skipped with a rate-limited warning naming file and offset.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

#[test]
fn demo_writes_docker_and_cri_logs_and_serves_them() {
    let node = Node::new();
    let config = node.dir.path().join("demo.yaml");
    std::fs::write(
        &config,
        "http: { listen: \"127.0.0.1:0\" }\nmetrics: { enabled: false }\nlog: { level: warn }\n",
    )
    .unwrap();
    let mut child = Command::new(runnel_bin())
        .args(["agent", "--demo", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let rx = stdout_lines(&mut child);
    let mut printed = Vec::new();
    while !printed
        .iter()
        .any(|l: &String| l.contains("stop with Ctrl-C"))
    {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => printed.push(l),
            Err(_) => panic!("the demo did not print its help: {printed:?}"),
        }
    }
    let text = printed.join("\n");
    let addr = printed
        .iter()
        .find_map(|l| l.strip_prefix("runnel: listening on http://"))
        .expect("listening line")
        .to_string();
    for want in [
        "curl -s http://",
        "/v1/sources",
        "follow=true",
        "runnel logs --server",
    ] {
        assert!(text.contains(want), "demo help lacks {want:?}:\n{text}");
    }
    let agent = Agent { child, addr };

    // Both formats are written and ingested, with Kubernetes identity.
    let ok = eventually(Duration::from_secs(30), || {
        let (_, body) = agent.get("/v1/sources");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let srcs = v["sources"].as_array().cloned().unwrap_or_default();
        let keys: Vec<String> = srcs
            .iter()
            .filter(|s| s["records"].as_u64().unwrap_or(0) >= 20)
            .map(|s| s["key"].as_str().unwrap_or("").to_string())
            .collect();
        keys.iter().filter(|k| k.starts_with("docker:")).count() >= 2
            && keys.iter().filter(|k| k.starts_with("cri:")).count() >= 2
    });
    assert!(
        ok,
        "demo sources not ingested: {}",
        agent.get("/v1/sources").1
    );
    let (code, body) = agent.get("/v1/logs?namespace=shop&pod=web-0&tailLines=5&timestamps=true");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.lines().count(), 5, "{body}");
    let out = runnel(&[
        "logs",
        "--server",
        &format!("http://{}", agent.addr),
        "-n",
        "platform",
        "mesh-gateway-0",
        "--tail",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    agent.stop();
}

#[test]
fn check_config_prints_the_effective_config_or_every_error_with_its_line() {
    let node = Node::new();
    let good = node.dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "node_name: ${RUNNEL_TEST_NODE:-node-a}\ninputs:\n  rescan_interval: 2s\n  max_line_bytes: 256KiB\n",
    )
    .unwrap();
    let out = runnel(&["check-config", good.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "node_name: node-a",
        "rescan_interval: 2s",
        "max_line_bytes: 256KiB",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    // Defaults are printed too.
    assert!(text.contains("listen: 0.0.0.0:2020"), "{text}");

    let bad = node.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "inputs:\n  rescan_interval: 2s\n  max_line_byte: 1MiB\n",
    )
    .unwrap();
    let out = runnel(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:", bad.display())) && err.contains("max_line_byte"),
        "{err}"
    );

    let invalid = node.dir.path().join("invalid.yaml");
    std::fs::write(
        &invalid,
        "index:\n  zstd_level: 40\nhttp:\n  listen: nowhere\n",
    )
    .unwrap();
    let out = runnel(&["check-config", invalid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let path = invalid.display();
    assert!(
        err.contains(&format!("{path}:2: index.zstd_level")),
        "{err}"
    );
    assert!(err.contains(&format!("{path}:4: http.listen")), "{err}");
}

#[test]
fn unparsable_lines_are_skipped_with_a_rate_limited_warning_naming_file_and_offset() {
    let node = Node::new();
    let log = node.cri_log("ns", "noisy", "app", 0);
    let mut text = String::new();
    let mut good = String::new();
    let mut first_bad = None;
    for i in 0..5000u64 {
        if i % 2 == 1 {
            if first_bad.is_none() {
                first_bad = Some(text.len());
            }
            text.push_str(&format!("this is not a CRI line {i}\n"));
        } else {
            text.push_str(&cri_line(&time_at(i), "stdout", "F", &format!("ok {i}")));
            good.push_str(&format!("ok {i}\n"));
        }
    }
    append(&log, &text);
    // Twenty more files of nothing but garbage: the limit holds across files too.
    for p in 0..20 {
        let garbage: String = (0..100).map(|i| format!("garbage {p} {i}\n")).collect();
        append(
            &node.cri_log("ns", &format!("junk-{p}"), "app", 0),
            &garbage,
        );
    }
    let config = node.config("log: { level: warn, format: text }\n");
    let out = Command::new(runnel_bin())
        .args(["agent", "--oneshot", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("unparsable log line skipped"))
        .collect();
    assert!(
        !warnings.is_empty() && warnings.len() <= 3,
        "4500 bad lines in 21 files must give a few warnings, not {}:\n{stderr}",
        warnings.len()
    );
    // Each warning names the file and the offset of the first line it skipped there.
    for w in &warnings {
        let want = if w.contains(&log.display().to_string()) {
            format!("offset={}", first_bad.unwrap())
        } else {
            assert!(w.contains("/app/0.log"), "{w}");
            "offset=0 ".to_string()
        };
        assert!(w.contains(&want), "{w}");
        assert!(w.contains("skipped="), "{w}");
    }
    assert_eq!(logs_from_dir(&node, &["-n", "ns", "noisy"]), good);
}

/// The text without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
