//! Every sink setting changes live: a reload stops the Elasticsearch sink (its cursor saved)
//! and starts it with the new settings, against a real OpenSearch-compatible server. Nothing is
//! lost or shipped twice across a change of index, a disable and an enable again.

#[path = "../../sinks/tests/support/mod.rs"]
mod es;
mod live;
mod support;

use es::Osmem;
use live::{ConfigMap, Live};
use std::time::Duration;
use support::{append, cri_line, time_at, Node};

const WAIT: Duration = Duration::from_secs(30);

fn config(node: &Node, sink: &str) -> String {
    format!(
        "data_dir: {data}\nnode_name: test-node\ninputs:\n  docker: {{ enabled: false }}\n  \
         cri: {{ enabled: true, root: {cri} }}\n  rescan_interval: 1s\n\
         http: {{ listen: \"127.0.0.1:0\" }}\nmetrics: {{ enabled: false }}\nlog: {{ format: text }}\n{sink}",
        data = node.data_dir().display(),
        cri = node.cri_root().display(),
    )
}

fn sink(url: &str, enabled: bool, index: &str) -> String {
    format!(
        "sinks:\n  elasticsearch:\n    enabled: {enabled}\n    endpoints: [\"{url}\"]\n    \
         index: \"{index}\"\n    batch: {{ max_docs: 100, timeout: 50ms }}\n    \
         retry: {{ initial: 20ms, max: 200ms }}\n    request_timeout: 5s\n"
    )
}

fn write(node: &Node, from: u64, n: u64) {
    let text: String = (from..from + n)
        .map(|i| cri_line(&time_at(i), "stdout", "F", &format!("line {i}")))
        .collect();
    append(&node.cri_log("ns", "pod", "app", 0), &text);
}

/// Documents in `index`; 0 before it exists.
fn count(osmem: &Osmem, index: &str) -> u64 {
    let (status, _) = es::http("GET", &format!("{}/{index}/_count", osmem.url), b"");
    if status == 404 {
        return 0;
    }
    osmem.count(index)
}

fn generation(agent: &Live) -> f64 {
    agent.metric("runnel_config_generation").unwrap_or(-1.0)
}

#[test]
fn sink_settings_change_live_and_the_cursor_carries_over() {
    let osmem = Osmem::start();
    let node = Node::new();
    let mut cm = ConfigMap::new(
        &node.dir.path().join("cm"),
        &config(&node, &sink(&osmem.url, true, "reload-a")),
    );
    write(&node, 0, 50);
    let agent = Live::start(&cm.file(), &node.dir.path().join("stderr"), None);
    assert!(agent.until(WAIT, |_| count(&osmem, "reload-a") == 50));

    // A new index: the sink restarts; new lines go to the new index, none is sent again.
    cm.update(&config(&node, &sink(&osmem.url, true, "reload-b")));
    assert!(
        agent.until(WAIT, |l| generation(l) == 2.0),
        "{}",
        agent.stderr()
    );
    write(&node, 50, 30);
    assert!(agent.until(WAIT, |_| count(&osmem, "reload-b") == 30));

    // Disabled: lines written now wait in the index.
    cm.update(&config(&node, &sink(&osmem.url, false, "reload-b")));
    assert!(
        agent.until(WAIT, |l| generation(l) == 3.0),
        "{}",
        agent.stderr()
    );
    let st: serde_json::Value = serde_json::from_str(&agent.get("/v1/status").1).unwrap();
    assert_eq!(st["components"]["elasticsearch"]["enabled"], false, "{st}");
    write(&node, 80, 20);
    assert!(agent.until(WAIT, |l| l
        .get("/v1/logs?namespace=ns&pod=pod")
        .1
        .lines()
        .count()
        == 100));

    // Enabled again: it resumes from its durable cursor and ships exactly those 20.
    cm.update(&config(&node, &sink(&osmem.url, true, "reload-b")));
    assert!(
        agent.until(WAIT, |l| generation(l) == 4.0),
        "{}",
        agent.stderr()
    );
    assert!(agent.until(WAIT, |_| count(&osmem, "reload-b") == 50));
    assert_eq!(count(&osmem, "reload-a"), 50);
    let mut shipped: Vec<String> = osmem
        .all_docs("reload-*")
        .into_iter()
        .filter_map(|(_, d)| d["message"].as_str().map(str::to_string))
        .collect();
    shipped.sort();
    let mut want: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    want.sort();
    assert_eq!(shipped, want, "every line once across the reloads");

    // A sink share that cannot be applied (an unreadable secret file) refuses the whole
    // update; the running sink keeps shipping.
    let missing = node.dir.path().join("no-such-password");
    cm.update(&config(
        &node,
        &format!(
            "{}    auth: {{ user: elastic, password_file: {} }}\n",
            sink(&osmem.url, true, "reload-c"),
            missing.display()
        ),
    ));
    assert!(agent.until(WAIT, |l| l
        .metric("runnel_config_reloads_total{result=\"error\"}")
        == Some(1.0)));
    let st: serde_json::Value = serde_json::from_str(&agent.get("/v1/status").1).unwrap();
    let last = st["components"]["config"]["last_error"]
        .as_str()
        .unwrap_or("");
    assert!(last.contains("password_file"), "{st}");
    assert_eq!(generation(&agent), 4.0);
    write(&node, 100, 5);
    assert!(agent.until(WAIT, |_| count(&osmem, "reload-b") == 55));
    assert_eq!(count(&osmem, "reload-c"), 0);

    // The secret appears; the file is the same bytes as the refused update, and a SIGHUP
    // applies it now (it is not "unchanged": the running config is not that file).
    std::fs::write(&missing, "secret\n").unwrap();
    agent.signal(libc::SIGHUP);
    assert!(
        agent.until(WAIT, |l| generation(l) == 5.0),
        "the SIGHUP did not retry the refused update:\n{}",
        agent.stderr()
    );
    let st: serde_json::Value = serde_json::from_str(&agent.get("/v1/status").1).unwrap();
    assert!(st["components"]["config"]["last_error"].is_null(), "{st}");
    assert_eq!(
        st["components"]["config"]["sha256"],
        cm.sha256().as_str(),
        "{st}"
    );
    write(&node, 105, 5);
    assert!(agent.until(WAIT, |_| count(&osmem, "reload-c") == 5));
    // A second SIGHUP with nothing refused and nothing changed is a no-op.
    agent.signal(libc::SIGHUP);
    assert!(agent.until(WAIT, |l| l
        .stderr()
        .contains("config file unchanged; nothing to reload")));
    assert_eq!(generation(&agent), 5.0);
}
