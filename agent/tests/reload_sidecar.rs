//! Live reload of the sidecar inputs: the forward receiver's settings and HTTP ingest change
//! without a restart (same process, nothing lost), and a bad forward setting is refused whole
//! while the running receiver keeps working.

mod live;
mod support;

use live::{ConfigMap, Live};
use std::process::Command;
use std::time::Duration;
use support::{python, Node};

const WAIT: Duration = Duration::from_secs(20);

fn config(node: &Node, port: u16, forward_extra: &str, ingest: bool) -> String {
    format!(
        "data_dir: {data}\nnode_name: test-node\ninputs:\n  docker: {{ enabled: false }}\n  \
         cri: {{ enabled: false }}\n  forward: {{ enabled: true, listen: \"127.0.0.1:{port}\"{forward_extra} }}\n  \
         http_ingest: {{ enabled: {ingest} }}\nhttp: {{ listen: \"127.0.0.1:0\" }}\nmetrics: {{ enabled: false }}\n\
         log: {{ format: text }}\n",
        data = node.data_dir().display(),
    )
}

fn send(port: u16, tag: &str, chunk: &str, msg: &str) {
    let code = format!(
        "import msgpack, socket, struct\n\
         s = socket.create_connection(('127.0.0.1', {port}), timeout=30)\n\
         s.sendall(msgpack.packb(['{tag}', msgpack.ExtType(0, struct.pack('>II', 1796119200, 0)), {{'log': '{msg}'}}, {{'chunk': '{chunk}'}}], use_bin_type=True))\n\
         u = msgpack.Unpacker(raw=False)\n\
         while True:\n    d = s.recv(64)\n    assert d, 'closed without an ack'\n    u.feed(d)\n    o = next(u, None)\n    if o is not None:\n        assert o == {{'ack': '{chunk}'}}, o\n        break\n"
    );
    let out = Command::new(python()).args(["-c", &code]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn lines(agent: &Live, q: &str) -> Vec<String> {
    match agent.get(&format!("/v1/logs?{q}")) {
        (200, body) => body.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn forward_settings_and_http_ingest_change_live_and_a_bad_pattern_is_refused() {
    let node = Node::new();
    let reserved = support::reserve_port();
    let port = reserved.number();
    let mut cm = ConfigMap::new(&node.dir.path().join("cm"), &config(&node, port, "", true));
    let agent = Live::start(&cm.file(), &node.dir.path().join("stderr"), None);
    send(port, "kube.shop.web-0.side", "c1", "before");
    assert_eq!(
        lines(&agent, "namespace=shop&pod=web-0&container=side"),
        ["before"]
    );

    // A new tag pattern, and HTTP ingest switched off.
    cm.update(&config(
        &node,
        port,
        ", tag_pattern: \"app.{namespace}.{pod}.{container}\"",
        false,
    ));
    assert!(
        agent.until(WAIT, |a| a.metric("runnel_config_generation") == Some(2.0)),
        "the reload was not applied: {}",
        agent.stderr()
    );
    send(port, "app.shop.web-0.side", "c2", "after");
    assert_eq!(
        lines(&agent, "namespace=shop&pod=web-0&container=side"),
        ["before", "after"]
    );
    let (code, _) = {
        let r = ureq::post(&format!(
            "http://{}/v1/ingest?pod=p&container=c",
            agent.addr
        ))
        .send_string("x\n");
        match r {
            Ok(r) => (r.status(), ()),
            Err(ureq::Error::Status(c, _)) => (c, ()),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(code, 404, "HTTP ingest is off after the reload");

    // A pattern without {pod} is refused whole: the running receiver keeps its settings.
    cm.update(&config(
        &node,
        port,
        ", tag_pattern: \"app.{namespace}\"",
        true,
    ));
    assert!(
        agent.until(WAIT, |a| a
            .metric("runnel_config_reloads_total{result=\"error\"}")
            == Some(1.0)),
        "the bad update was not refused: {}",
        agent.stderr()
    );
    assert!(
        agent.stderr().contains("inputs.forward.tag_pattern"),
        "{}",
        agent.stderr()
    );
    send(port, "app.shop.web-0.side", "c3", "still");
    assert_eq!(
        lines(&agent, "namespace=shop&pod=web-0&container=side"),
        ["before", "after", "still"]
    );
}
