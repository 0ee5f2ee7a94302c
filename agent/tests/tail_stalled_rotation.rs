//! Copytruncate seen late or half-way: while the tailer is held (a full queue, a slow disk —
//! here the debug build's `tailer.pause` failpoint) or the agent is down, the runtime's
//! rotations run on. Every line must be stored once, in the order written. Found by the chaos
//! soak (seed 3: "line 539 came after line 565") and its burst reproductions (a file's lines
//! stored twice).

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
    copy_only(live, kept);
    truncate(live);
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

/// A node with one container (Docker or CRI) and its live log; the query naming its pod.
fn container(node: &Node, docker: bool) -> (PathBuf, &'static str) {
    if docker {
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
    }
}

/// Copy the live file to `.1` (after shifting older copies), not truncating it yet: the first
/// half of logrotate's copytruncate.
fn copy_only(live: &Path, kept: u32) {
    let name = |k: u32| PathBuf::from(format!("{}.{k}", live.display()));
    for k in (1..kept).rev() {
        if name(k).exists() {
            std::fs::rename(name(k), name(k + 1)).unwrap();
        }
    }
    std::fs::copy(live, name(1)).unwrap();
}

fn truncate(live: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(live)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn assert_exactly(agent: &Live, query: &str, n: u64, what: &str) {
    let done = agent.until(WAIT, |a| stored(a, query).len() as u64 >= n);
    let got = stored(agent, query);
    let jumps: Vec<(u64, u64)> = got
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        done && got == (0..n).collect::<Vec<u64>>(),
        "{what}: {} of {n} lines stored; jumps in the order: {jumps:?}",
        got.len()
    );
}

fn hold_tailer(agent: &Live, failpoints: &Path) -> PathBuf {
    let pause = failpoints.join("tailer.pause");
    std::fs::write(&pause, "").unwrap();
    assert!(
        agent.until(WAIT, |_| failpoints.join("tailer.paused").exists()),
        "the tailer did not park at its failpoint"
    );
    pause
}

/// An agent (with failpoints) over one container whose first 100 lines are stored.
struct Setup {
    node: Node,
    failpoints: PathBuf,
    live: PathBuf,
    query: &'static str,
    docker: bool,
    agent: Live,
}

impl Setup {
    fn start(docker: bool) -> Setup {
        let node = Node::new();
        let failpoints = node.dir.path().join("failpoints");
        std::fs::create_dir_all(&failpoints).unwrap();
        let (live, query) = container(&node, docker);
        append(&live, &lines(docker, 0, 100));
        let s = Setup {
            agent: Self::spawn(&node, &failpoints),
            node,
            failpoints,
            live,
            query,
            docker,
        };
        assert!(
            s.agent.until(WAIT, |a| stored(a, query).len() == 100),
            "the first 100 lines were not stored"
        );
        s
    }

    fn spawn(node: &Node, failpoints: &Path) -> Live {
        let config = node.config("log: { format: text }\n");
        Live::start(&config, &node.dir.path().join("stderr"), Some(failpoints))
    }

    fn write(&self, from: u64, to: u64) {
        append(&self.live, &lines(self.docker, from, to));
    }

    fn assert_exactly(&self, n: u64) {
        assert_exactly(
            &self.agent,
            self.query,
            n,
            &format!("docker={}", self.docker),
        );
    }
}

fn two_copytruncates_while_the_tailer_is_held(docker: bool) {
    let s = Setup::start(docker);
    let pause = hold_tailer(&s.agent, &s.failpoints);
    // Unread when the tailer parked: lines 100..150 go only to the first copy (`.2` by the end).
    s.write(100, 150);
    copytruncate(&s.live, 5);
    s.write(150, 250);
    copytruncate(&s.live, 5);
    s.write(250, 300);
    std::fs::remove_file(&pause).unwrap();
    s.assert_exactly(300);
}

/// The live file was emptied by a truncation the tailer saw; then, while it is held, the
/// runtime writes new lines and the copy of them is made, but the truncation is not done yet.
/// The tailer finds the copy and the live file holding the same lines in one pass.
fn copy_made_before_the_tailer_sees_the_new_content(docker: bool) {
    let s = Setup::start(docker);
    copytruncate(&s.live, 5);
    let sample = format!(
        "runnel_input_file_truncations_total{{input=\"{}\"}}",
        if docker { "docker" } else { "cri" }
    );
    assert!(
        s.agent
            .until(WAIT, |a| a.metric(&sample).is_some_and(|v| v >= 1.0)),
        "the truncation was not seen"
    );
    let pause = hold_tailer(&s.agent, &s.failpoints);
    s.write(100, 150);
    copy_only(&s.live, 5);
    std::fs::remove_file(&pause).unwrap();
    assert!(s.agent.until(WAIT, |a| stored(a, s.query).len() >= 150));
    truncate(&s.live);
    s.write(150, 200);
    s.assert_exactly(200);
}

/// The agent is down while the runtime writes lines and copies the live file, not truncating
/// it yet: at start the copy and the live file hold the same unread lines.
fn copy_made_while_the_agent_is_down(docker: bool) {
    let mut s = Setup::start(docker);
    s.agent.child.kill().unwrap(); // SIGKILL
    s.agent.child.wait().unwrap();
    s.write(100, 150);
    copy_only(&s.live, 5);
    s.agent = Setup::spawn(&s.node, &s.failpoints);
    assert!(s.agent.until(WAIT, |a| stored(a, s.query).len() >= 150));
    truncate(&s.live);
    s.write(150, 200);
    s.assert_exactly(200);
}

#[test]
fn a_copy_made_before_the_tailer_sees_the_new_content_is_not_read_twice() {
    copy_made_before_the_tailer_sees_the_new_content(false);
    copy_made_before_the_tailer_sees_the_new_content(true);
}

#[test]
fn a_copy_made_while_the_agent_is_down_is_not_read_twice() {
    copy_made_while_the_agent_is_down(false);
    copy_made_while_the_agent_is_down(true);
}

#[test]
fn cri_two_copytruncates_seen_late_keep_the_order() {
    two_copytruncates_while_the_tailer_is_held(false);
}

#[test]
fn docker_two_copytruncates_seen_late_keep_the_order() {
    two_copytruncates_while_the_tailer_is_held(true);
}
