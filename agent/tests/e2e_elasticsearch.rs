//! The whole path to a real OpenSearch-compatible server (`osmem-server`): container logs on
//! disk → `runnel agent` → index → Elasticsearch sink → `_count`. Lines arrive exactly once with
//! their ECS fields; a SIGKILL of the agent in the middle of shipping and a restart still leave
//! exactly N documents; an outage keeps the agent ready, shows the sink degraded in
//! `/v1/status`, and ends with every line shipped once the cluster is back.

#[path = "../../sinks/tests/support/mod.rs"]
mod es;
mod support;

use es::proxy::{Fault, Proxy};
use es::Osmem;
use std::collections::BTreeSet;
use std::time::Duration;
use support::{append, container_id, cri_line, docker_line, eventually, time_at, Agent, Node};

const INDEX: &str = "runnel-e2e";

fn sink_yaml(endpoint: &str) -> String {
    format!(
        "sinks:\n  elasticsearch:\n    enabled: true\n    endpoints: [\"{endpoint}\"]\n    \
         index: \"{INDEX}\"\n    batch: {{ max_docs: 500, timeout: 50ms }}\n    \
         retry: {{ initial: 20ms, max: 200ms }}\n    request_timeout: 5s\n"
    )
}

/// A Docker container (Kubernetes labels in config.v2.json) and a CRI pod, `n` lines each.
/// Returns the messages written.
fn write_logs(node: &Node, n: usize) -> BTreeSet<String> {
    let mut messages = BTreeSet::new();
    let id = container_id(7);
    let docker = node.docker_container(
        &id,
        "k8s_api_api-0_prod_uid-api_0",
        &[
            ("io.kubernetes.pod.namespace", "prod"),
            ("io.kubernetes.pod.name", "api-0"),
            ("io.kubernetes.container.name", "api"),
            ("io.kubernetes.pod.uid", "uid-api"),
            ("app", "api"),
        ],
    );
    let cri = node.cri_log("shop", "web-0", "web", 0);
    let (mut d, mut c) = (String::new(), String::new());
    for i in 0..n {
        let msg = format!("docker line {i}");
        d.push_str(&docker_line(
            &format!("{msg}\n"),
            "stdout",
            &time_at(i as u64),
        ));
        messages.insert(msg);
        let msg = format!("cri line {i}");
        c.push_str(&cri_line(&time_at(i as u64), "stderr", "F", &msg));
        messages.insert(msg);
    }
    append(&docker, &d);
    append(&cri, &c);
    messages
}

/// Documents in the index; 0 before the first one created it.
fn count(osmem: &Osmem) -> u64 {
    let (status, _) = es::http("GET", &format!("{}/{INDEX}/_count", osmem.url), b"");
    if status == 404 {
        return 0;
    }
    osmem.count(INDEX)
}

fn shipped_messages(osmem: &Osmem) -> Vec<String> {
    osmem
        .all_docs(INDEX)
        .into_iter()
        .map(|(_, d)| d["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn container_logs_reach_elasticsearch_once_with_their_ecs_fields() {
    let osmem = Osmem::start();
    let node = Node::new();
    let written = write_logs(&node, 150);
    support::oneshot(&node.config(&sink_yaml(&osmem.url)));
    assert_eq!(count(&osmem), written.len() as u64);
    let docs = osmem.all_docs(INDEX);
    let got: BTreeSet<String> = docs
        .iter()
        .map(|(_, d)| d["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, written);

    let find = |msg: &str| &docs.iter().find(|(_, d)| d["message"] == msg).unwrap().1;
    let d = find("docker line 3");
    assert_eq!(d["@timestamp"], "2024-05-01T12:00:00.003000123Z");
    assert_eq!(d["stream"], "stdout");
    assert_eq!(d["container"]["id"], container_id(7));
    assert_eq!(d["container"]["name"], "k8s_api_api-0_prod_uid-api_0");
    assert_eq!(d["container"]["image"]["name"], "registry.local/app:1.0");
    assert_eq!(d["kubernetes"]["namespace"], "prod");
    assert_eq!(d["kubernetes"]["pod"]["name"], "api-0");
    assert_eq!(d["kubernetes"]["pod"]["uid"], "uid-api");
    assert_eq!(d["kubernetes"]["container"]["name"], "api");
    assert_eq!(d["kubernetes"]["node"]["name"], "test-node");
    assert_eq!(d["kubernetes"]["labels"]["app"], "api");
    assert_eq!(d["host"]["name"], "test-node");
    assert_eq!(d["agent"]["type"], "runnel");
    assert!(d["agent"]["version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    assert_eq!(d["event"]["dataset"], "runnel.container_logs");
    let path = d["log"]["file"]["path"].as_str().unwrap();
    assert!(
        path.ends_with(&format!("{}-json.log", container_id(7))),
        "{path}"
    );
    let first_len = docker_line("docker line 0\n", "stdout", &time_at(0)).len() as u64;
    assert_eq!(
        find("docker line 0")["log"]["offset"],
        first_len,
        "log.offset is the byte offset after the line"
    );

    let c = find("cri line 9");
    assert_eq!(c["stream"], "stderr");
    assert_eq!(c["kubernetes"]["namespace"], "shop");
    assert_eq!(c["kubernetes"]["pod"]["name"], "web-0");
    assert_eq!(c["kubernetes"]["container"]["name"], "web");
    assert_eq!(c["kubernetes"]["pod"]["uid"], "uid-web-0");

    // A second oneshot over the same node ships nothing new: the cursor and the index agree.
    support::oneshot(&node.config(&sink_yaml(&osmem.url)));
    assert_eq!(count(&osmem), written.len() as u64);
}

#[test]
fn sigkill_in_the_middle_of_shipping_and_a_restart_leave_exactly_n_documents() {
    let osmem = Osmem::start();
    let proxy = Proxy::start(&osmem.url, "");
    // Slow bulks, so that the kill lands while documents are on the wire.
    proxy
        .state
        .lock()
        .unwrap()
        .script
        .extend([Fault::Delay(Duration::from_millis(150)); 200]);
    let node = Node::new();
    let written = write_logs(&node, 4000);
    let config = node.config(&sink_yaml(&proxy.url));
    let agent = Agent::start(&config);
    let mid = eventually(Duration::from_secs(60), || {
        let n = count(&osmem);
        n > 0 && n < written.len() as u64
    });
    assert!(mid, "never caught the agent in the middle of shipping");
    agent.kill9();
    let at_kill = count(&osmem);
    assert!(at_kill < written.len() as u64);

    proxy.state.lock().unwrap().script.clear();
    let agent = Agent::start(&config);
    let done = eventually(Duration::from_secs(120), || {
        count(&osmem) >= written.len() as u64
    });
    // A clean stop ends every request in flight: nothing can land after it, so the counts
    // below see any duplicate a retry made (no sleep needed to let one arrive).
    agent.stop();
    assert!(done, "only {} of {} shipped", count(&osmem), written.len());
    let shipped = shipped_messages(&osmem);
    assert_eq!(
        shipped.len(),
        written.len(),
        "a re-sent document became a second one"
    );
    let unique: BTreeSet<String> = shipped.into_iter().collect();
    assert_eq!(unique, written);
}

#[test]
fn an_outage_keeps_the_agent_ready_shows_the_sink_degraded_and_loses_nothing() {
    let osmem = Osmem::start();
    let proxy = Proxy::start(&osmem.url, "");
    proxy.state.lock().unwrap().down = true;
    let node = Node::new();
    let written = write_logs(&node, 100);
    let agent = Agent::start(&node.config(&sink_yaml(&proxy.url)));

    let degraded = eventually(Duration::from_secs(30), || {
        let (_, body) = agent.get("/v1/status");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["components"]["elasticsearch"]["state"] == "degraded"
            && v["components"]["elasticsearch"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("503"))
    });
    let (_, status) = agent.get("/v1/status");
    assert!(
        degraded,
        "sink not degraded with the 503 as its last error: {status}"
    );
    assert_eq!(
        agent.get("/readyz").0,
        200,
        "logs are still captured while ES is down"
    );
    let index_dir = node.index_dir();
    let indexed = eventually(Duration::from_secs(30), || {
        let dir = index_dir.to_str().unwrap();
        let out = support::runnel(&[
            "logs",
            "--data-dir",
            dir,
            "-n",
            "shop",
            "web-0",
            "--tail",
            "1",
        ]);
        out.stdout == b"cri line 99\n"
    });
    assert!(indexed, "the lines reach the index meanwhile");
    assert_eq!(count(&osmem), 0);

    proxy.state.lock().unwrap().down = false;
    let caught_up = eventually(Duration::from_secs(60), || {
        count(&osmem) == written.len() as u64
    });
    assert!(
        caught_up,
        "{} of {} after the outage",
        count(&osmem),
        written.len()
    );
    let ok = eventually(Duration::from_secs(30), || {
        let (_, body) = agent.get("/v1/status");
        body.contains("\"state\":\"ok\"") || body.contains("\"state\": \"ok\"")
    });
    assert!(
        ok,
        "status did not return to ok: {}",
        agent.get("/v1/status").1
    );
    agent.stop();
}

#[test]
fn a_sink_that_cannot_start_is_reported_failed_while_logs_are_still_collected() {
    let node = Node::new();
    let cri = node.cri_log("shop", "web-0", "web", 0);
    append(
        &cri,
        &cri_line(&time_at(0), "stdout", "F", "collected anyway"),
    );
    let cfg = node.config(&format!(
        "{}    auth: {{ user: elastic, password_file: {} }}\n",
        sink_yaml("http://127.0.0.1:9"),
        node.dir.path().join("missing-secret").display()
    ));
    let agent = Agent::start(&cfg);
    assert!(
        eventually(Duration::from_secs(30), || {
            agent.get("/v1/logs?namespace=shop&pod=web-0").1 == "collected anyway\n"
        }),
        "local collection stopped with the sink"
    );
    let (code, status) = agent.get("/v1/status");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let es = v
        .get("components")
        .and_then(|c| c.get("elasticsearch"))
        .or_else(|| v.get("elasticsearch"))
        .unwrap_or_else(|| panic!("no elasticsearch component in {status}"));
    assert_eq!(es["state"], "failed", "{status}");
    assert!(
        es["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("missing-secret"),
        "{status}"
    );
    let (_, m) = agent.get("/metrics");
    assert!(m.contains("runnel_sink_es_up 0"), "{m}");
    agent.stop();
}
