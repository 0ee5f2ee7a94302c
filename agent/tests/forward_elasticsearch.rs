//! Sidecar records reach a real OpenSearch-compatible server (`osmem-server`) like file
//! records: once each, with the same ECS fields (Kubernetes names, stream, time, host, agent).

#[path = "../../sinks/tests/support/mod.rs"]
mod es;
mod support;

use es::Osmem;
use std::time::Duration;
use support::{eventually, run_script, Agent, Node};

const INDEX: &str = "runnel-sidecar";

fn count(osmem: &Osmem) -> u64 {
    let (status, _) = es::http("GET", &format!("{}/{INDEX}/_count", osmem.url), b"");
    if status == 404 {
        return 0;
    }
    osmem.count(INDEX)
}

#[test]
fn forward_and_http_ingest_records_reach_elasticsearch_once_with_ecs_fields() {
    let osmem = Osmem::start();
    let node = Node::new();
    let cfg = node.config_with_inputs(
        "  forward: { enabled: true, listen: \"127.0.0.1:0\" }\n",
        &format!(
            "sinks:\n  elasticsearch:\n    enabled: true\n    endpoints: [\"{}\"]\n    \
             index: \"{INDEX}\"\n    batch: {{ max_docs: 500, timeout: 50ms }}\n",
            osmem.url
        ),
    );
    let (agent, addr) = Agent::start_forward(&cfg);
    let (host, port) = addr.rsplit_once(':').unwrap();
    for _ in 0..2 {
        // Sent twice (the second as if the first ack were lost): shipped once.
        assert_eq!(
            run_script("forward/lost_ack.py", &[host, port, "resend"]),
            "acked"
        );
    }
    let r = ureq::post(
        &agent.url("/v1/ingest?namespace=shop&pod=script-0&container=cron&stream=stderr"),
    )
    .set("Content-Type", "text/plain")
    .send_string("from a script\n")
    .expect("POST /v1/ingest");
    assert_eq!(r.status(), 200);
    assert!(
        eventually(Duration::from_secs(60), || count(&osmem) >= 201),
        "shipped {} of 201",
        count(&osmem)
    );
    let docs = osmem.all_docs(INDEX);
    assert_eq!(docs.len(), 201);
    let find = |msg: &str| &docs.iter().find(|(_, d)| d["message"] == msg).unwrap().1;
    let d = find("chunk-007");
    assert_eq!(d["@timestamp"], "2026-12-01T10:00:00.000000007Z");
    assert_eq!(d["stream"], "stdout");
    assert_eq!(d["kubernetes"]["namespace"], "shop");
    assert_eq!(d["kubernetes"]["pod"]["name"], "lost-0");
    assert_eq!(d["kubernetes"]["container"]["name"], "app");
    assert_eq!(d["kubernetes"]["node"]["name"], "test-node");
    assert_eq!(d["host"]["name"], "test-node");
    assert_eq!(d["agent"]["type"], "runnel");
    assert_eq!(d["event"]["dataset"], "runnel.container_logs");
    let h = find("from a script");
    assert_eq!(h["stream"], "stderr");
    assert_eq!(h["kubernetes"]["pod"]["name"], "script-0");
    assert_eq!(h["kubernetes"]["container"]["name"], "cron");
    agent.stop();
}
