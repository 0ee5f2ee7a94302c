//! Live reload from a ConfigMap, end to end: the real agent, its config mounted the way the
//! kubelet mounts a ConfigMap and updated with the AtomicWriter's exact steps. A valid update
//! is applied without a restart (same process, index open, nothing re-read or lost); an invalid
//! one, or one touching a key that needs a restart, is refused whole with one log line.

mod live;
mod support;

use live::{ConfigMap, Live};
use std::time::Duration;
use support::{append, cri_line, time_at, Node};

const WAIT: Duration = Duration::from_secs(20);

/// The agent config over `node` with extra `inputs:` keys and extra top-level YAML (text
/// logs unless `extra` sets `log:`).
fn config(node: &Node, inputs_extra: &str, extra: &str) -> String {
    let log = if extra.contains("log:") {
        ""
    } else {
        "log: { format: text }\n"
    };
    format!(
        "data_dir: {data}\nnode_name: test-node\ninputs:\n  docker: {{ enabled: true, root: {docker} }}\n  \
         cri: {{ enabled: true, root: {cri} }}\n  rescan_interval: 1s\n{inputs_extra}\
         http: {{ listen: \"127.0.0.1:0\" }}\nmetrics: {{ enabled: false }}\n{log}{extra}",
        data = node.data_dir().display(),
        docker = node.docker_root().display(),
        cri = node.cri_root().display(),
    )
}

fn include(namespaces: &[&str]) -> String {
    format!("  include: {{ namespaces: [{}] }}\n", namespaces.join(", "))
}

/// Append `n` lines `"<tag> <i>"` (from `from`) to a pod's CRI log.
fn write(node: &Node, ns: &str, pod: &str, tag: &str, from: u64, n: u64) {
    let path = node.cri_log(ns, pod, "app", 0);
    let text: String = (from..from + n)
        .map(|i| cri_line(&time_at(i), "stdout", "F", &format!("{tag} {i}")))
        .collect();
    append(&path, &text);
}

/// The pod's lines as the agent serves them.
fn lines(agent: &Live, ns: &str, pod: &str) -> Vec<String> {
    let (code, body) = agent.get(&format!("/v1/logs?namespace={ns}&pod={pod}"));
    if code != 200 {
        return Vec::new();
    }
    body.lines().map(str::to_string).collect()
}

fn generation(agent: &Live) -> f64 {
    agent.metric("runnel_config_generation").unwrap_or(-1.0)
}

fn reloads(agent: &Live, result: &str) -> f64 {
    agent
        .metric(&format!(
            "runnel_config_reloads_total{{result=\"{result}\"}}"
        ))
        .unwrap_or(-1.0)
}

fn status(agent: &Live) -> serde_json::Value {
    serde_json::from_str(&agent.get("/v1/status").1).unwrap()
}

#[test]
fn filters_change_live_a_new_namespace_is_read_from_disk_and_an_excluded_one_stops() {
    let node = Node::new();
    let mut cm = ConfigMap::new(
        &node.dir.path().join("cm"),
        &config(&node, &include(&["keep"]), ""),
    );
    write(&node, "keep", "a", "a", 0, 50);
    write(&node, "later", "b", "b", 0, 30);
    let mut agent = Live::start(&cm.file(), &node.dir.path().join("stderr"), None);
    let pid = agent.child.id();
    assert!(agent.until(WAIT, |l| lines(l, "keep", "a").len() == 50));
    assert!(lines(&agent, "later", "b").is_empty(), "excluded at start");
    assert_eq!(generation(&agent), 1.0);
    assert_eq!(
        status(&agent)["components"]["config"]["sha256"],
        cm.sha256()
    );

    // Include the second namespace: its lines, written while it was excluded, are read from
    // what is on disk; the first namespace's lines are not read again.
    cm.update(&config(
        &node,
        &include(&["keep", "later"]),
        "log: { level: debug, format: text }\n",
    ));
    assert!(
        agent.until(WAIT, |l| generation(l) == 2.0),
        "{}",
        agent.stderr()
    );
    assert_eq!(reloads(&agent, "ok"), 1.0);
    assert!(agent.until(WAIT, |l| lines(l, "later", "b").len() == 30));
    write(&node, "keep", "a", "a", 50, 10);
    assert!(agent.until(WAIT, |l| lines(l, "keep", "a").len() == 60));
    let a = lines(&agent, "keep", "a");
    let want: Vec<String> = (0..60).map(|i| format!("a {i}")).collect();
    assert_eq!(a, want, "each line once, in order");
    let st = status(&agent);
    assert_eq!(st["components"]["config"]["sha256"], cm.sha256());
    assert_eq!(st["components"]["config"]["generation"], 2);
    assert!(st["components"]["config"]["last_error"].is_null());
    // The new log level is in force: debug lines appear.
    assert!(
        agent.until(WAIT, |l| l.stderr().contains("DEBUG")),
        "log.level: debug was not applied"
    );

    // Exclude the first namespace: it stops. Lines written to it now are not read, while the
    // other namespace (the barrier) keeps being read.
    cm.update(&config(
        &node,
        &format!(
            "{}  exclude: {{ namespaces: [keep] }}\n",
            include(&["keep", "later"])
        ),
        "",
    ));
    assert!(
        agent.until(WAIT, |l| generation(l) == 3.0),
        "{}",
        agent.stderr()
    );
    write(&node, "keep", "a", "a", 60, 10);
    write(&node, "later", "b", "b", 30, 5);
    assert!(agent.until(WAIT, |l| lines(l, "later", "b").len() == 35));
    // The tailer reads files in one pass; give it two more passes' worth of the barrier.
    write(&node, "later", "b", "b", 35, 5);
    assert!(agent.until(WAIT, |l| lines(l, "later", "b").len() == 40));
    assert_eq!(
        lines(&agent, "keep", "a").len(),
        60,
        "an excluded container stops"
    );
    assert_eq!(agent.child.id(), pid);
    assert!(
        agent.wait_exit(Duration::ZERO).is_none(),
        "still the same process"
    );
}

#[test]
fn an_invalid_or_restart_only_update_is_refused_whole_and_the_running_config_stays() {
    let node = Node::new();
    let mut cm = ConfigMap::new(
        &node.dir.path().join("cm"),
        &config(&node, &include(&["keep"]), ""),
    );
    write(&node, "keep", "a", "a", 0, 5);
    write(&node, "later", "b", "b", 0, 5);
    let agent = Live::start(&cm.file(), &node.dir.path().join("stderr"), None);
    assert!(agent.until(WAIT, |l| lines(l, "keep", "a").len() == 5));
    let running_sha = cm.sha256();

    // An unknown key: refused with one line naming file, line and key.
    let bad = config(
        &node,
        &include(&["keep", "later"]),
        "index:\n  max_disk_byte: 1GiB\n",
    );
    let bad_line = bad
        .lines()
        .position(|l| l.contains("max_disk_byte"))
        .unwrap()
        + 1;
    cm.update(&bad);
    assert!(
        agent.until(WAIT, |l| reloads(l, "error") == 1.0),
        "{}",
        agent.stderr()
    );
    let err = agent.stderr();
    let refused: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("config reload refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{err}");
    let want = format!("{}:{bad_line}:", cm.file().display());
    assert!(
        refused[0].contains(&want),
        "names file and line {want}: {}",
        refused[0]
    );
    assert!(
        refused[0].contains("max_disk_byte"),
        "names the key: {}",
        refused[0]
    );
    let st = status(&agent);
    assert_eq!(st["components"]["config"]["state"], "degraded");
    assert_eq!(st["components"]["config"]["sha256"], running_sha);
    assert_eq!(generation(&agent), 1.0);

    // A change of data_dir next to a filter change: refused whole, saying a restart is needed;
    // the filter change is not applied either.
    let moved = config(&node, &include(&["keep", "later"]), "")
        .replace(&node.data_dir().display().to_string(), "/elsewhere/runnel");
    cm.update(&moved);
    assert!(
        agent.until(WAIT, |l| reloads(l, "error") == 2.0),
        "{}",
        agent.stderr()
    );
    let last = status(&agent)["components"]["config"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("data_dir cannot change"), "{last}");
    assert!(last.contains("restart the agent"), "{last}");
    write(&node, "keep", "a", "a", 5, 5);
    assert!(
        agent.until(WAIT, |l| lines(l, "keep", "a").len() == 10),
        "still running"
    );
    assert!(
        lines(&agent, "later", "b").is_empty(),
        "nothing of the refused update applied"
    );
    assert_eq!(generation(&agent), 1.0);

    // SIGHUP re-reads the file: still the refused content, still refused.
    agent.signal(libc::SIGHUP);
    assert!(agent.until(WAIT, |l| l
        .stderr()
        .contains("SIGHUP: re-reading the config file")));
    // The fixed file is applied.
    cm.update(&config(&node, &include(&["keep", "later"]), ""));
    assert!(
        agent.until(WAIT, |l| generation(l) == 2.0),
        "{}",
        agent.stderr()
    );
    assert!(agent.until(WAIT, |l| lines(l, "later", "b").len() == 5));
    let st = status(&agent);
    assert_eq!(st["components"]["config"]["state"], "ok");
    assert_eq!(st["components"]["config"]["sha256"], cm.sha256());
}

#[test]
fn inputs_and_the_metrics_collector_are_enabled_and_disabled_live() {
    let node = Node::new();
    let with = |cri: bool, metrics: bool| {
        config(&node, "", "")
            .replace(
                &format!(
                    "cri: {{ enabled: true, root: {} }}",
                    node.cri_root().display()
                ),
                &format!(
                    "cri: {{ enabled: {cri}, root: {} }}",
                    node.cri_root().display()
                ),
            )
            .replace(
                "metrics: { enabled: false }",
                &format!("metrics: {{ enabled: {metrics}, interval: 200ms }}"),
            )
    };
    let mut cm = ConfigMap::new(&node.dir.path().join("cm"), &with(false, false));
    write(&node, "ns", "cri-pod", "c", 0, 20);
    let agent = Live::start(&cm.file(), &node.dir.path().join("stderr"), None);
    // Ready means the first discovery pass is done: it found nothing to read.
    assert_eq!(
        agent.metric("runnel_input_sources"),
        Some(0.0),
        "CRI disabled at start"
    );
    assert!(agent.metric("runnel_metrics_passes_total").is_none());

    // Enable the CRI input and the collector.
    cm.update(&with(true, true));
    assert!(
        agent.until(WAIT, |l| generation(l) == 2.0),
        "{}",
        agent.stderr()
    );
    assert!(agent.until(WAIT, |l| lines(l, "ns", "cri-pod").len() == 20));
    assert!(agent.until(WAIT, |l| l
        .metric("runnel_metrics_passes_total")
        .is_some_and(|n| n >= 1.0)));

    // Disable both: the CRI source stops; the collector's families leave /metrics. A Docker
    // container keeps being read (the barrier).
    cm.update(&with(false, false));
    assert!(
        agent.until(WAIT, |l| generation(l) == 3.0),
        "{}",
        agent.stderr()
    );
    assert!(agent.until(WAIT, |l| l.metric("runnel_metrics_passes_total").is_none()));
    write(&node, "ns", "cri-pod", "c", 20, 5);
    let id = support::container_id(3);
    let docker = node.docker_container(
        &id,
        "k8s_app_dock_ns_uid-dock_0",
        &[
            ("io.kubernetes.pod.namespace", "ns"),
            ("io.kubernetes.pod.name", "dock"),
            ("io.kubernetes.container.name", "app"),
        ],
    );
    append(
        &docker,
        &support::docker_line("d 0\n", "stdout", &time_at(0)),
    );
    assert!(agent.until(WAIT, |l| lines(l, "ns", "dock").len() == 1));
    append(
        &docker,
        &support::docker_line("d 1\n", "stdout", &time_at(1)),
    );
    assert!(agent.until(WAIT, |l| lines(l, "ns", "dock").len() == 2));
    assert_eq!(
        lines(&agent, "ns", "cri-pod").len(),
        20,
        "a disabled input stops"
    );
}
