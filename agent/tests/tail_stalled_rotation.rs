//! Rotations the tailer sees late: while it is held (a full queue, a slow disk — here the debug
//! build's `tailer.pause` failpoint), the runtime copytruncates twice with logrotate's
//! numbering. When it looks again, the rotated-file event and the live file's truncation come
//! in one pass; the rest of the first content (now in `.2`) must be read before the second
//! content (`.1`) and the live file's third. Found by the chaos soak (seed 3: "line 539 came
//! after line 565").

mod live;
mod support;

use live::Live;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{append, container_id, cri_line, docker_line, time_at, Node};

const WAIT: Duration = Duration::from_secs(30);

fn lines(docker: bool, from: u64, to: u64) -> String {
    (from..to)
        .map(|i| {
            let (t, msg) = (time_at(i), format!("line {i:05}"));
            if docker {
                docker_line(&format!("{msg}\n"), "stdout", &t)
            } else {
                cri_line(&t, "stdout", "F", &msg)
            }
        })
        .collect()
}

/// logrotate's copytruncate with `rotate N`: shift `.k` to `.k+1`, copy the live file to `.1`,
/// truncate the live file in place.
fn copytruncate(live: &Path, kept: u32) {
    let name = |k: u32| PathBuf::from(format!("{}.{k}", live.display()));
    for k in (1..kept).rev() {
        if name(k).exists() {
            std::fs::rename(name(k), name(k + 1)).unwrap();
        }
    }
    std::fs::copy(live, name(1)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(live)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn stored(agent: &Live, query: &str) -> Vec<u64> {
    let (code, body) = agent.get(&format!("/v1/logs?{query}"));
    if code != 200 {
        return Vec::new();
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("line ").and_then(|n| n.parse().ok()))
        .collect()
}

fn two_copytruncates_while_the_tailer_is_held(docker: bool) {
    let node = Node::new();
    let failpoints = node.dir.path().join("failpoints");
    std::fs::create_dir_all(&failpoints).unwrap();
    let (live, query) = if docker {
        let id = container_id(5);
        let live = node.docker_container(
            &id,
            "k8s_app_pod_ns_uid_0",
            &[
                ("io.kubernetes.pod.namespace", "ns"),
                ("io.kubernetes.pod.name", "pod"),
                ("io.kubernetes.container.name", "app"),
            ],
        );
        (live, "namespace=ns&pod=pod")
    } else {
        (node.cri_log("ns", "pod", "app", 0), "namespace=ns&pod=pod")
    };
    let config = node.config("log: { format: text }\n");
    append(&live, &lines(docker, 0, 100));
    let agent = Live::start(&config, &node.dir.path().join("stderr"), Some(&failpoints));
    assert!(
        agent.until(WAIT, |a| stored(a, query).len() == 100),
        "the first 100 lines were not stored"
    );
    let pause = failpoints.join("tailer.pause");
    std::fs::write(&pause, "").unwrap();
    assert!(
        agent.until(WAIT, |_| failpoints.join("tailer.paused").exists()),
        "the tailer did not park at its failpoint"
    );
    // Unread when the tailer parked: lines 100..150 go only to the first copy (`.2` by the end).
    append(&live, &lines(docker, 100, 150));
    copytruncate(&live, 5);
    append(&live, &lines(docker, 150, 250));
    copytruncate(&live, 5);
    append(&live, &lines(docker, 250, 300));
    std::fs::remove_file(&pause).unwrap();
    let done = agent.until(WAIT, |a| stored(a, query).len() >= 300);
    let got = stored(&agent, query);
    let jumps: Vec<(u64, u64)> = got
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        done && got == (0..300).collect::<Vec<u64>>(),
        "docker={docker}: {} of 300 lines stored; jumps in the order: {jumps:?}",
        got.len()
    );
}

#[test]
fn cri_two_copytruncates_seen_late_keep_the_order() {
    two_copytruncates_while_the_tailer_is_held(false);
}

#[test]
fn docker_two_copytruncates_seen_late_keep_the_order() {
    two_copytruncates_while_the_tailer_is_held(true);
}
