//! `runnel logs` prints what `kubectl logs` prints for the same log and flags. Expected output
//! is computed here from the kubelet's documented semantics (tail first, then since, then a
//! byte limit that cuts mid-line; `--timestamps` prefixes the time as written), independently
//! of the agent's code, and compared with both `--data-dir` and `--server` answers.

mod support;

use support::*;

/// A line as the kubelet would serve it: time (ms since the fixture epoch), text, message.
#[derive(Clone)]
struct Line {
    ms: u64,
    time: String,
    msg: String,
}

/// kubectl logs semantics over `lines` in file order.
fn expected(
    lines: &[Line],
    tail: Option<usize>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    limit: Option<usize>,
    timestamps: bool,
) -> String {
    let mut sel: Vec<&Line> = lines
        .iter()
        .filter(|l| until_ms.is_none_or(|u| l.ms < u))
        .collect();
    if let Some(n) = tail {
        sel = sel.split_off(sel.len().saturating_sub(n));
    }
    let mut out = String::new();
    for l in sel
        .into_iter()
        .filter(|l| since_ms.is_none_or(|s| l.ms >= s))
    {
        if timestamps {
            out.push_str(&l.time);
            out.push(' ');
        }
        out.push_str(&l.msg);
        out.push('\n');
    }
    if let Some(n) = limit {
        out.truncate(n.min(out.len()));
    }
    out
}

/// A CRI log with jittered (non-monotonic) times, partial fragments and two restarts, plus a
/// Docker container with Kubernetes labels.
fn build(node: &Node) -> (Vec<Line>, Vec<Line>, Vec<Line>) {
    let mut web = Vec::new();
    let path = node.cri_log("shop", "web-7d9", "nginx", 1);
    let mut text = String::new();
    for i in 0..60u64 {
        // Every 7th line is one second "early": timestamps are not monotonic.
        let ms = i * 1000 + if i % 7 == 3 { 0 } else { 500 }
            - if i % 7 == 3 && i > 0 { 1000 } else { 0 };
        let time = time_at(ms);
        let msg = format!("GET /item/{i} 200 {}", "x".repeat((i % 5) as usize * 10));
        if i % 10 == 4 {
            // Partial fragments: the merged line carries the first fragment's time.
            let (a, b) = msg.split_at(8);
            text.push_str(&cri_line(&time, "stdout", "P", a));
            text.push_str(&cri_line(&time_at(ms + 1), "stdout", "F", b));
        } else {
            text.push_str(&cri_line(
                &time,
                if i % 9 == 0 { "stderr" } else { "stdout" },
                "F",
                &msg,
            ));
        }
        web.push(Line { ms, time, msg });
    }
    append(&path, &text);

    let mut old = Vec::new();
    let path0 = node.cri_log("shop", "web-7d9", "nginx", 0);
    for i in 0..5u64 {
        let time = time_at(i);
        let msg = format!("previous instance line {i}");
        append(&path0, &cri_line(&time, "stdout", "F", &msg));
        old.push(Line { ms: i, time, msg });
    }
    append(
        &node.cri_log("shop", "web-7d9", "sidecar", 0),
        &cri_line(&time_at(5), "stdout", "F", "sidecar up"),
    );

    let mut worker = Vec::new();
    let id = container_id(7);
    let log = node.docker_container(
        &id,
        "k8s_worker_jobs-0_batch_uid-jobs_0",
        &[
            ("io.kubernetes.pod.name", "jobs-0"),
            ("io.kubernetes.pod.namespace", "batch"),
            ("io.kubernetes.container.name", "worker"),
            ("io.kubernetes.pod.uid", "uid-jobs"),
        ],
    );
    for i in 0..30u64 {
        let time = time_at(i * 2000);
        let msg =
            format!("{{\"level\":\"info\",\"job\":{i},\"note\":\"tab\\there \\\"quoted\\\"\"}}");
        append(&log, &docker_line(&format!("{msg}\n"), "stdout", &time));
        worker.push(Line {
            ms: i * 2000,
            time,
            msg,
        });
    }
    (web, old, worker)
}

#[test]
fn runnel_logs_matches_kubectl_semantics_from_data_dir_and_server() {
    let node = Node::new();
    let (web, old, worker) = build(&node);
    let config = node.config("");
    oneshot(&config);

    let t = |ms: u64| time_at(ms);
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec![], expected(&web, None, None, None, None, false)),
        (
            vec!["--tail=5".into()],
            expected(&web, Some(5), None, None, None, false),
        ),
        (vec!["--tail=0".into()], String::new()),
        (
            vec![format!("--since-time={}", t(30_000))],
            expected(&web, None, Some(30_000), None, None, false),
        ),
        (
            vec![format!("--until-time={}", t(20_000))],
            expected(&web, None, None, Some(20_000), None, false),
        ),
        // Tail applies before since, as in the kubelet: asking for 20 lines since t=50s gives
        // only the lines of the last 20 that are at or after 50s.
        (
            vec!["--tail=20".into(), format!("--since-time={}", t(50_000))],
            expected(&web, Some(20), Some(50_000), None, None, false),
        ),
        (
            vec!["--limit-bytes=100".into()],
            expected(&web, None, None, None, Some(100), false),
        ),
        (
            vec!["--timestamps".into(), "--tail=7".into()],
            expected(&web, Some(7), None, None, None, true),
        ),
        (
            vec!["--timestamps".into(), "--limit-bytes=333".into()],
            expected(&web, None, None, None, Some(333), true),
        ),
        (
            vec![
                format!("--since-time={}", t(10_000)),
                format!("--until-time={}", t(12_000)),
                "--timestamps".into(),
            ],
            expected(&web, None, Some(10_000), Some(12_000), None, true),
        ),
        (
            vec!["--previous".into()],
            expected(&old, None, None, None, None, false),
        ),
    ];
    let mut ran = 0;
    for (flags, want) in &cases {
        let mut args = vec!["-n", "shop", "web-7d9", "-c", "nginx"];
        args.extend(flags.iter().map(String::as_str));
        let got = logs_from_dir(&node, &args);
        assert_eq!(got, *want, "runnel logs {args:?} (data dir)");
        ran += 1;
    }
    assert_eq!(ran, cases.len());

    let got = logs_from_dir(&node, &["-n", "batch", "jobs-0", "--tail=3"]);
    assert_eq!(got, expected(&worker, Some(3), None, None, None, false));

    // The same answers over HTTP from a running agent on the same data (which must not
    // re-ingest what the oneshot run already stored).
    let agent = Agent::start(&config);
    let server = format!("http://{}", agent.addr);
    for (flags, want) in &cases {
        let mut args = vec![
            "logs", "--server", &server, "-n", "shop", "web-7d9", "-c", "nginx",
        ];
        args.extend(flags.iter().map(String::as_str));
        let out = runnel(&args);
        assert!(
            out.status.success(),
            "runnel {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            *want,
            "runnel {args:?} (server)"
        );
    }
    agent.stop();
}

#[test]
fn runnel_logs_errors_name_what_is_missing() {
    let node = Node::new();
    build(&node);
    oneshot(&node.config(""));

    let dir = node.index_dir();
    let dir = dir.to_str().unwrap();
    let out = runnel(&["logs", "--data-dir", dir, "-n", "shop", "web-7d8"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"web-7d8\" not found") && err.contains("shop/web-7d9"),
        "{err}"
    );

    let out = runnel(&["logs", "--data-dir", dir, "-n", "shop", "web-7d9"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("choose one of: [nginx sidecar]"),
        "{err}"
    );

    let out = runnel(&[
        "logs",
        "--data-dir",
        dir,
        "-n",
        "shop",
        "web-7d9",
        "-c",
        "sidecar",
        "--previous",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("previous terminated container"),
        "{err}"
    );

    let out = runnel(&[
        "logs",
        "--data-dir",
        dir,
        "-n",
        "shop",
        "web-7d9",
        "-c",
        "nginx",
        "--since-time",
        "noon",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--since-time") && err.contains("noon"),
        "{err}"
    );
}

#[test]
fn since_is_relative_to_now() {
    let node = Node::new();
    let path = node.cri_log("default", "clock", "app", 0);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let style = runnel_index::TimeStyle {
        offset_secs: 0,
        frac_digits: 9,
        zulu: true,
    };
    for (age_s, msg) in [
        (7200, "two hours ago"),
        (90, "ninety seconds ago"),
        (5, "five seconds ago"),
    ] {
        let mut t = Vec::new();
        runnel_agent::timefmt::format_rfc3339(now_ns - age_s * 1_000_000_000, style, &mut t);
        append(
            &path,
            &cri_line(std::str::from_utf8(&t).unwrap(), "stdout", "F", msg),
        );
    }
    oneshot(&node.config(""));
    assert_eq!(
        logs_from_dir(&node, &["clock", "--since=1m"]),
        "five seconds ago\n"
    );
    assert_eq!(
        logs_from_dir(&node, &["clock", "--since=2m"]),
        "ninety seconds ago\nfive seconds ago\n"
    );
}

/// `runnel logs -f` keeps streaming lines written after it started, from a running agent
/// (`--server`) and from the store the agent writes (`--data-dir`), across a rotation.
#[test]
fn follow_keeps_streaming_from_server_and_data_dir() {
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let node = Node::new();
    let log = node.cri_log("shop", "follow-me", "app", 0);
    let write = |r: std::ops::Range<u64>| {
        let text: String = r
            .map(|i| cri_line(&time_at(i * 1000), "stdout", "F", &format!("f{i}")))
            .collect();
        append(&log, &text);
    };
    write(0..10);
    let agent = Agent::start(&node.config(""));
    assert!(eventually(Duration::from_secs(30), || {
        agent
            .get("/v1/logs?namespace=shop&pod=follow-me")
            .1
            .lines()
            .count()
            == 10
    }));
    let server = format!("http://{}", agent.addr);
    let index = node.index_dir();
    let mut followers = Vec::new();
    for source in [
        vec!["--server", server.as_str()],
        vec!["--data-dir", index.to_str().unwrap()],
    ] {
        let mut args = vec!["logs", "-f", "--tail", "2", "-n", "shop", "follow-me"];
        args.extend(source);
        let mut child = Command::new(runnel_bin())
            .args(&args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = stdout_lines(&mut child);
        followers.push((args.join(" "), child, rx));
    }
    let next = |rx: &std::sync::mpsc::Receiver<String>, what: &str| {
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{what}: no line within 10 s"))
    };
    for (what, _, rx) in &followers {
        assert_eq!([next(rx, what), next(rx, what)], ["f8", "f9"], "{what}");
    }
    write(10..15);
    std::fs::rename(&log, format!("{}.20240501-120000", log.display())).unwrap();
    write(15..20);
    for (what, child, rx) in &mut followers {
        let got: Vec<String> = (10..20).map(|_| next(rx, what)).collect();
        let want: Vec<String> = (10..20).map(|i| format!("f{i}")).collect();
        assert_eq!(got, want, "{what}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: -f must keep running"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
    agent.stop();
}
