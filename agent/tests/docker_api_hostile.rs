//! `inputs.docker.api` against an engine that answers badly: a fake Engine API on a Unix socket
//! (a real socket and real HTTP/1.1, spoken by the agent's own Docker client) that sends
//! malformed JSON, JSON of the wrong shape, an inspect answer that cannot be parsed, and an
//! event stream that sends its headers and then nothing. In every case the files under the
//! Docker root keep being read, a bad answer ends the session and is counted as a reconnect,
//! an unusable container is counted as skipped, and a silent event stream holds nothing up.
//! No Docker engine is needed.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{append, container_id, docker_line, eventually, time_at, Agent, Node};

/// What the fake engine answers to each kind of request.
#[derive(Clone)]
struct Answers {
    /// Body of `GET /containers/json`.
    list: String,
    /// Body of `GET /containers/<id>/json`, by id (404 for others).
    inspect: Vec<(String, String)>,
}

/// The fake engine: one thread per connection, keep-alive, requests counted by kind.
struct FakeEngine {
    stop: Arc<AtomicBool>,
    lists: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
}

impl FakeEngine {
    fn start(path: &Path, answers: Answers) -> FakeEngine {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let lists = Arc::new(AtomicU64::new(0));
        let events = Arc::new(AtomicU64::new(0));
        let (s, l, e) = (stop.clone(), lists.clone(), events.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (a, s, l, e) = (answers.clone(), s.clone(), l.clone(), e.clone());
                        std::thread::spawn(move || serve(conn, &a, &s, &l, &e));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeEngine {
            stop,
            lists,
            events,
        }
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn respond(conn: &mut UnixStream, status: &str, body: &str) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answer requests on one connection until it closes or the engine stops.
fn serve(conn: UnixStream, a: &Answers, stop: &AtomicBool, lists: &AtomicU64, events: &AtomicU64) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let mut content_length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
        let path = path.split('?').next().unwrap_or("");
        let r = if path.ends_with("/_ping") {
            respond(&mut out, "200 OK", "OK")
        } else if path.ends_with("/version") {
            respond(
                &mut out,
                "200 OK",
                r#"{"ApiVersion":"1.41","Version":"fake"}"#,
            )
        } else if path.ends_with("/containers/json") {
            lists.fetch_add(1, Ordering::Relaxed);
            respond(&mut out, "200 OK", &a.list)
        } else if path.ends_with("/events") {
            events.fetch_add(1, Ordering::Relaxed);
            // Headers, then silence: a stream that never sends an event and never ends.
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let _ = out.flush();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        } else if let Some(id) = path
            .split("/containers/")
            .nth(1)
            .and_then(|r| r.strip_suffix("/json"))
        {
            match a.inspect.iter().find(|(i, _)| i == id) {
                Some((_, body)) => respond(&mut out, "200 OK", body),
                None => respond(
                    &mut out,
                    "404 Not Found",
                    r#"{"message":"No such container"}"#,
                ),
            }
        } else {
            respond(&mut out, "404 Not Found", r#"{"message":"page not found"}"#)
        };
        if r.is_err() {
            return;
        }
    }
}

fn write_lines(log: &Path, tag: &str, n: u64) {
    let text: String = (0..n)
        .map(|i| docker_line(&format!("{tag} {i}\n"), "stdout", &time_at(i)))
        .collect();
    append(log, &text);
}

/// The node's config with the Docker input's API at `socket`.
fn config(node: &Node, socket: &Path) -> std::path::PathBuf {
    let path = node.config("");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "docker: { enabled: true, root: ",
        &format!(
            "docker: {{ enabled: true, api: \"unix://{}\", root: ",
            socket.display()
        ),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn malformed_or_misshapen_container_lists_are_counted_as_reconnects_and_the_files_are_still_read() {
    for (what, list) in [
        ("malformed JSON", "[{\"Id\": \"abc\", "),
        ("JSON of the wrong shape", r#"{"containers": 5}"#),
        (
            "a list of the wrong types",
            r#"[{"Id": 5, "Names": "x"}, 7, null]"#,
        ),
    ] {
        let node = Node::new();
        let socket = node.dir.path().join("docker.sock");
        let engine = FakeEngine::start(
            &socket,
            Answers {
                list: list.to_string(),
                inspect: Vec::new(),
            },
        );
        let id = container_id(1);
        let log = node.docker_container(&id, "web", &[]);
        write_lines(&log, "web", 50);
        let agent = Agent::start(&config(&node, &socket));
        let key = format!("docker:{id}");
        assert!(
            eventually(Duration::from_secs(30), || agent.records(&key) == 50),
            "{what}: the file under the Docker root is read without the API ({} of 50)",
            agent.records(&key)
        );
        assert!(
            eventually(Duration::from_secs(30), || {
                agent.metric("runnel_input_docker_api_reconnects_total").unwrap_or(0.0) >= 2.0
            }),
            "{what}: a bad list ends the session and is retried with backoff (reconnects {:?}, lists asked {})",
            agent.metric("runnel_input_docker_api_reconnects_total"),
            engine.lists.load(Ordering::Relaxed)
        );
        assert!(
            engine.lists.load(Ordering::Relaxed) >= 2,
            "{what}: the list was asked again"
        );
        assert_eq!(
            agent.metric("runnel_input_docker_api_connected"),
            Some(0.0),
            "{what}"
        );
        assert_eq!(
            agent.metric("runnel_input_docker_api_containers_total"),
            Some(0.0),
            "{what}: nothing found through answers that could not be read"
        );
        // More lines after the bad answers are read too: the tailer was never held up.
        write_lines(&log, "web-more", 25);
        assert!(
            eventually(Duration::from_secs(30), || agent.records(&key) == 75),
            "{what}: later lines are read ({} of 75)",
            agent.records(&key)
        );
        let (status, body) = agent.get("/healthz");
        assert_eq!(
            status, 200,
            "{what}: a bad engine answer does not make the agent unhealthy: {body}"
        );
        agent.stop();
    }
}

#[test]
fn an_unparsable_inspect_is_skipped_and_counted_and_a_silent_event_stream_holds_nothing_up() {
    let node = Node::new();
    let socket = node.dir.path().join("docker.sock");
    // A container the API alone knows of: its log is outside the Docker root, with no
    // config.v2.json beside it, so only the inspect answer can name it.
    let elsewhere = node.dir.path().join("elsewhere");
    let (good, bad, missing) = (container_id(7), container_id(8), container_id(9));
    let good_dir = elsewhere.join(&good);
    std::fs::create_dir_all(&good_dir).unwrap();
    let good_log = good_dir.join(format!("{good}-json.log"));
    write_lines(&good_log, "api-only", 40);
    let inspect_good = serde_json::json!({
        "Id": good,
        "Name": "/from-the-api",
        "LogPath": good_log.display().to_string(),
        "Config": { "Image": "registry.local/api:2", "Labels": { "team": "a" } },
    })
    .to_string();
    let engine = FakeEngine::start(
        &socket,
        Answers {
            list: format!(r#"[{{"Id":"{bad}"}},{{"Id":"{missing}"}},{{"Id":"{good}"}}]"#),
            inspect: vec![
                (bad.clone(), r#"{"Id": "x", "LogPath": [1, 2"#.to_string()),
                (good.clone(), inspect_good),
            ],
        },
    );
    // One more container under the root, found by the files.
    let rooted = container_id(10);
    let rooted_log = node.docker_container(&rooted, "rooted", &[]);
    write_lines(&rooted_log, "rooted", 30);
    let agent = Agent::start(&config(&node, &socket));

    let key = format!("docker:{good}");
    assert!(
        eventually(Duration::from_secs(30), || agent.records(&key) == 40),
        "the container named by the API is read ({} of 40)",
        agent.records(&key)
    );
    let s = agent.source(&key);
    assert_eq!(s["identity"]["container_name"], "from-the-api", "{s}");
    assert_eq!(s["identity"]["labels"]["team"], "a", "{s}");
    assert!(
        eventually(Duration::from_secs(30), || {
            agent.metric("runnel_input_docker_api_skipped_total") == Some(2.0)
        }),
        "the unparsable inspect and the unknown container are counted as skipped: {:?}",
        agent.metric("runnel_input_docker_api_skipped_total")
    );
    assert_eq!(
        agent.metric("runnel_input_docker_api_containers_total"),
        Some(1.0)
    );
    // The event stream sent its headers and then nothing: the session stays up (it is not a
    // failure), and neither the files nor the API-found container wait on it.
    assert!(
        eventually(Duration::from_secs(30), || engine
            .events
            .load(Ordering::Relaxed)
            >= 1),
        "the agent asked for events"
    );
    assert_eq!(agent.metric("runnel_input_docker_api_connected"), Some(1.0));
    let rooted_key = format!("docker:{rooted}");
    assert!(
        eventually(Duration::from_secs(30), || agent.records(&rooted_key) == 30),
        "the file under the root is read while the event stream is silent ({} of 30)",
        agent.records(&rooted_key)
    );
    write_lines(&good_log, "api-only-more", 10);
    assert!(
        eventually(Duration::from_secs(30), || agent.records(&key) == 50),
        "new lines of the API-found container are read while the event stream is silent ({} of 50)",
        agent.records(&key)
    );
    assert_eq!(
        agent.metric("runnel_input_docker_api_reconnects_total"),
        Some(0.0),
        "a silent stream is not a lost session"
    );
    agent.stop();
}
