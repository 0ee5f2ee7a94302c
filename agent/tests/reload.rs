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

/// A sample on `/metrics` summed over its labels (`name{...} v` and `name v`).
fn metric_sum(agent: &Live, name: &str) -> f64 {
    let (_, body) = agent.get("/metrics");
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_lower_max_pending_bytes_applies_live_and_evicts_the_oldest_held_line() {
    let node = Node::new();
    let limits =
        |pending: &str| format!("  max_line_bytes: 16KiB\n  max_pending_bytes: {pending}\n");
    let mut cm = ConfigMap::new(
        &node.dir.path().join("cm"),
        &config(&node, &limits("1MiB"), ""),
    );
    let agent = Live::start(&cm.file(), &node.dir.path().join("stderr"), None);
    // Two pods each hold a 10 KB line that has not ended (no newline yet): 20 KB held, under
    // 1 MiB. A barrier line first, so that both are known to be read.
    let partial = |ns: &str, pod: &str, fill: char| {
        let path = node.cri_log(ns, pod, "app", 0);
        append(
            &path,
            &cri_line(&time_at(0), "stdout", "F", &format!("{pod} first")),
        );
        let mut held = format!("{} stdout F ", time_at(1));
        held.extend(std::iter::repeat_n(fill, 10_000));
        append(&path, &held);
    };
    partial("ns", "old", 'o');
    assert!(agent.until(WAIT, |l| lines(l, "ns", "old").len() == 1));
    partial("ns", "new", 'n');
    assert!(agent.until(WAIT, |l| lines(l, "ns", "new").len() == 1));
    assert!(
        agent.until(WAIT, |l| metric_sum(l, "runnel_input_pending_bytes")
            >= 20_000.0),
        "{}",
        agent.get("/metrics").1
    );
    assert_eq!(
        metric_sum(&agent, "runnel_input_pending_evictions_total"),
        0.0
    );

    // 16 KiB: the two held lines are over it; the oldest is emitted (truncated) at once, not
    // when some file next moves.
    cm.update(&config(&node, &limits("16KiB"), ""));
    assert!(
        agent.until(WAIT, |l| generation(l) == 2.0),
        "{}",
        agent.stderr()
    );
    assert!(
        agent.until(WAIT, |l| lines(l, "ns", "old").len() == 2),
        "the oldest held line was not emitted under the new max_pending_bytes:\n{}",
        agent.stderr()
    );
    assert_eq!(
        metric_sum(&agent, "runnel_input_pending_evictions_total"),
        1.0
    );
    assert_eq!(
        lines(&agent, "ns", "new").len(),
        1,
        "the newer one is still held"
    );
    let held = metric_sum(&agent, "runnel_input_pending_bytes");
    assert!((10_000.0..16_384.0).contains(&held), "held {held}");
}

#[test]
fn a_lower_max_disk_bytes_applies_live_and_evicts_the_oldest_segments() {
    let node = Node::new();
    let index = |max_disk: &str| {
        format!(
            "index: {{ max_disk_bytes: {max_disk}, max_age: 36500d, segment_max_bytes: 8KiB, \
             block_bytes: 1KiB }}\n"
        )
    };
    let mut cm = ConfigMap::new(
        &node.dir.path().join("cm"),
        &config(&node, "", &index("1GiB")),
    );
    let agent = Live::start(&cm.file(), &node.dir.path().join("stderr"), None);
    // Lines that do not compress to nothing: each carries a hash of its number.
    let n = 2000u64;
    for batch in 0..10 {
        let text: String = (batch * n / 10..(batch + 1) * n / 10)
            .map(|i| {
                let noise = (0..4)
                    .map(|k| format!("{:016x}", (i * 4 + k).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                    .collect::<String>();
                cri_line(&time_at(i), "stdout", "F", &format!("r {i} {noise}"))
            })
            .collect();
        append(&node.cri_log("ns", "pod", "app", 0), &text);
    }
    assert!(agent.until(WAIT, |l| lines(l, "ns", "pod").len() == n as usize));
    assert!(
        agent.until(WAIT, |l| l
            .metric("runnel_index_sealed_segments")
            .unwrap_or(0.0)
            >= 4.0),
        "{}",
        agent.get("/metrics").1
    );
    let disk_before = agent.metric("runnel_index_disk_bytes").unwrap_or(0.0);
    // The lines' times are of 2024: a max_age of a century keeps them; nothing was evicted.
    for reason in ["age", "disk"] {
        assert_eq!(
            agent.metric(&format!(
                "runnel_index_retention_segments_total{{reason=\"{reason}\"}}"
            )),
            Some(0.0)
        );
    }

    // A quarter of what is on disk: the oldest segments go at the writer's next maintenance.
    let budget = (disk_before / 4.0) as u64;
    cm.update(&config(&node, "", &index(&budget.to_string())));
    assert!(
        agent.until(WAIT, |l| generation(l) == 2.0),
        "{}",
        agent.stderr()
    );
    assert!(
        agent.until(WAIT, |l| l
            .metric("runnel_index_retention_segments_total{reason=\"disk\"}")
            .unwrap_or(0.0)
            > 0.0),
        "no segment was evicted under max_disk_bytes {budget} (on disk: {disk_before}):\n{}\n{}",
        agent.stderr(),
        agent
            .get("/metrics")
            .1
            .lines()
            .filter(|l| l.starts_with("runnel_index"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(agent.until(WAIT, |l| l
        .metric("runnel_index_disk_bytes")
        .unwrap_or(f64::MAX)
        <= budget as f64));
    let left = lines(&agent, "ns", "pod");
    assert!(
        !left.is_empty() && left.len() < n as usize,
        "{} lines left",
        left.len()
    );
    assert!(
        left[0] != "r 0" && !left[0].starts_with("r 0 "),
        "the oldest lines go first: {}",
        left[0]
    );
    assert!(
        left.last()
            .is_some_and(|l| l.starts_with(&format!("r {} ", n - 1))),
        "the newest lines stay"
    );
}
