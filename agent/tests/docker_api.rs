//! `inputs.docker.api` against the real Docker engine: containers found through the Engine API
//! (list, inspect, `start`/`die`/`destroy` events) are read by the file tailer with the name,
//! image and labels the API gives, a removed one is retired after its last line, and without a
//! socket the files alone are read while reconnects are counted.
//!
//! Needs `docker info` to succeed and `/bin/busybox` (Debian's `busybox-static`). Without them
//! the tests FAIL; `RUNNEL_SKIP_DOCKER=1` skips them explicitly.

mod docker_support;
mod live;
mod support;

use docker_support::{build_busybox_image, docker_ok, docker_root_or_fail, unique, Cleanup};
use std::path::Path;
use std::time::{Duration, Instant};
use support::Agent;

/// The engine's socket (the one `docker` talks to here).
const SOCKET: &str = "/var/run/docker.sock";
/// Lines the container prints at start; one more is printed when it is stopped.
const FIRST_LINES: usize = 5;

/// The busybox script: numbered lines, then idle until SIGTERM, which prints a last line;
/// each SIGUSR1 prints one more (`<tag> usr1`).
fn script(tag: &str) -> String {
    format!(
        "trap 'echo {tag} last-line; exit 0' TERM; trap 'echo {tag} usr1' USR1; \
         i=1; while [ $i -le {FIRST_LINES} ]; do echo \"{tag} line $i\"; i=$((i+1)); done; \
         while true; do sleep 0.1; done"
    )
}

/// Agent config: Docker input at `root` with the API at `api`, reading only `name`.
fn config(dir: &Path, root: &Path, api: &str, name: &str, rescan: &str) -> std::path::PathBuf {
    let path = dir.join("runnel.yaml");
    let text = format!(
        "data_dir: {data}\nnode_name: test-node\ninputs:\n  \
         docker: {{ enabled: true, root: {root}, api: \"{api}\" }}\n  \
         cri: {{ enabled: false }}\n  include: {{ containers: [\"{name}\"] }}\n  \
         rescan_interval: {rescan}\nhttp: {{ listen: \"127.0.0.1:0\" }}\nmetrics: {{ enabled: false }}\n",
        data = dir.join("data").display(),
        root = root.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The `/v1/sources` entry of `key`, if listed.
fn source(agent: &Agent, key: &str) -> Option<serde_json::Value> {
    let (status, body) = agent.get("/v1/sources");
    assert_eq!(status, 200, "/v1/sources: {body}");
    let v: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/v1/sources is not JSON ({e}): {body}"));
    let list = v
        .get("sources")
        .and_then(|s| s.as_array())
        .cloned()
        .or_else(|| v.as_array().cloned())
        .unwrap_or_else(|| panic!("/v1/sources has no list: {body}"));
    list.into_iter().find(|s| s["key"] == key)
}

/// Wait until `f` gives Some, up to `limit`; panics with `what` and the last state otherwise.
fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => {
                panic!("{what}: not within {limit:?}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The container's `State.StartedAt`, from the engine (`date` parses its RFC 3339 text).
fn started_at(id: &str) -> std::time::SystemTime {
    let text = docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", id]);
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &text, "+%s%N"])
        .output()
        .unwrap_or_else(|e| panic!("running date: {e}"));
    let nanos: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("date -d {text:?}: {e}: {out:?}"));
    std::time::UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn records(s: &serde_json::Value) -> u64 {
    s["records"].as_u64().unwrap_or(0)
}

#[test]
fn a_container_found_only_through_the_api_is_read_and_retired_after_its_last_line() {
    if docker_root_or_fail("Docker API discovery (list, start/die/destroy events)").is_none() {
        return;
    }
    let image = unique("runnel-api-img");
    let name = unique("runnel-api");
    let mut cleanup = Cleanup {
        containers: vec![name.clone()],
        image: image.clone(),
    };
    build_busybox_image(&image);
    let tmp = tempfile::tempdir().unwrap();
    // An empty Docker root and an hour between rescans: the container's log (under the
    // engine's real root) can only be found through the API.
    let empty_root = tmp.path().join("no-containers-here");
    std::fs::create_dir_all(&empty_root).unwrap();
    let cfg = config(
        tmp.path(),
        &empty_root,
        &format!("unix://{SOCKET}"),
        &name,
        "1h",
    );
    let agent = Agent::start(&cfg);
    wait_for(Duration::from_secs(10), "the API connects", || match agent
        .metric("runnel_input_docker_api_connected")
    {
        Some(1.0) => Ok(()),
        v => Err(format!("{v:?}")),
    });

    let id = docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "runnel.test=docker-api",
        &image,
        "sh",
        "-c",
        &script(&name),
    ]);
    // `docker run -d` returns once the container has started.
    let started = Instant::now();
    cleanup.containers.push(id.clone());
    let key = format!("docker:{id}");
    let s = wait_for(
        Duration::from_secs(10),
        "the container's lines arrive",
        || match source(&agent, &key) {
            Some(s) if records(&s) >= FIRST_LINES as u64 => Ok(s),
            s => Err(format!("{s:?}")),
        },
    );
    let seen = std::time::SystemTime::now();
    let took = started.elapsed();
    // From the engine's own start time (the same clock): the start event, the inspect, the
    // tailer's read and the index's group commit, plus at most one 20 ms poll of this test.
    let since_start = seen
        .duration_since(started_at(&id))
        .unwrap_or(Duration::ZERO);
    eprintln!(
        "container start to {FIRST_LINES} records in /v1/sources: {since_start:?} \
         ({took:?} after `docker run -d` returned)"
    );
    assert!(
        since_start < Duration::from_secs(1),
        "a new container must be read within a second of starting; took {since_start:?}"
    );
    let ident = &s["identity"];
    assert_eq!(ident["container_name"], name.as_str(), "{s}");
    assert_eq!(ident["container_id"], id.as_str(), "{s}");
    assert_eq!(ident["image"], image.as_str(), "{s}");
    assert_eq!(ident["labels"]["runnel.test"], "docker-api", "{s}");
    assert_eq!(s["retired"], false, "{s}");
    assert_eq!(
        agent.metric("runnel_input_docker_api_reconnects_total"),
        Some(0.0)
    );

    // Later lines are read as they are written: the log is outside every watched root, so
    // this needs the watch on its directory (a once-a-second pass over all sources would
    // take 0.5 s per line on average). One line per SIGUSR1; the trap runs within the
    // script's 0.1 s sleep.
    const LATER: u64 = 8;
    let mut total = Duration::ZERO;
    for k in 1..=LATER {
        docker_ok(&["kill", "-s", "USR1", &name]);
        let sent = Instant::now();
        wait_for(
            Duration::from_secs(10),
            "a later line arrives",
            || match source(&agent, &key) {
                Some(s) if records(&s) == FIRST_LINES as u64 + k => Ok(()),
                s => Err(format!("{s:?}")),
            },
        );
        total += sent.elapsed();
    }
    eprintln!(
        "{LATER} later lines, signal to record: {:?} on average",
        total / LATER as u32
    );
    assert!(
        total < Duration::from_millis(250) * LATER as u32,
        "later lines took {:?} on average",
        total / LATER as u32
    );

    // Stop (the trap prints one last line): it is read; remove: the source is retired.
    docker_ok(&["stop", "-t", "10", &name]);
    let all = FIRST_LINES as u64 + LATER + 1;
    wait_for(
        Duration::from_secs(10),
        "the last line arrives",
        || match source(&agent, &key) {
            Some(s) if records(&s) == all => Ok(()),
            s => Err(format!("{s:?}")),
        },
    );
    let (status, body) = agent.get(&format!("/v1/logs?pod={name}"));
    assert_eq!(status, 200, "{body}");
    let want: Vec<String> = (1..=FIRST_LINES)
        .map(|i| format!("{name} line {i}"))
        .chain((0..LATER).map(|_| format!("{name} usr1")))
        .chain([format!("{name} last-line")])
        .collect();
    assert_eq!(body.lines().collect::<Vec<_>>(), want, "{body}");
    docker_ok(&["rm", &name]);
    let s = wait_for(
        Duration::from_secs(10),
        "the removed container is retired",
        || match source(&agent, &key) {
            Some(s) if s["retired"] == true => Ok(s),
            s => Err(format!("{s:?}")),
        },
    );
    assert_eq!(records(&s), all, "{s}");
    agent.stop();
}

#[test]
fn without_the_socket_the_files_are_read_and_reconnects_are_counted() {
    let Some(root) = docker_root_or_fail("reading files while the Docker API is away") else {
        return;
    };
    let image = unique("runnel-noapi-img");
    let name = unique("runnel-noapi");
    let mut cleanup = Cleanup {
        containers: vec![name.clone()],
        image: image.clone(),
    };
    build_busybox_image(&image);
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-docker.sock");
    let cfg = config(
        tmp.path(),
        &root,
        &format!("unix://{}", missing.display()),
        &name,
        "1s",
    );
    let agent = Agent::start(&cfg);
    let id = docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "runnel.test=no-api",
        &image,
        "sh",
        "-c",
        &script(&name),
    ]);
    cleanup.containers.push(id.clone());
    let key = format!("docker:{id}");
    let s = wait_for(
        Duration::from_secs(15),
        "the file is read without the API",
        || match source(&agent, &key) {
            Some(s) if records(&s) >= FIRST_LINES as u64 => Ok(s),
            s => Err(format!("{s:?}")),
        },
    );
    // The identity came from config.v2.json beside the file.
    assert_eq!(s["identity"]["container_name"], name.as_str(), "{s}");
    assert_eq!(s["identity"]["labels"]["runnel.test"], "no-api", "{s}");
    wait_for(
        Duration::from_secs(10),
        "reconnects are counted",
        || match agent.metric("runnel_input_docker_api_reconnects_total") {
            Some(v) if v >= 2.0 => Ok(()),
            v => Err(format!("{v:?}")),
        },
    );
    assert_eq!(agent.metric("runnel_input_docker_api_connected"), Some(0.0));
    assert_eq!(
        agent.metric("runnel_input_docker_api_containers_total"),
        Some(0.0)
    );
    agent.stop();
}

/// A Unix-socket proxy to the engine that the test can take away (listener and every open
/// connection, the event stream included) and bring back at the same path.
struct Proxy {
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(path: &Path) -> Proxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        use std::sync::atomic::Ordering;
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::<UnixStream>::new()));
        let (s, c) = (stop.clone(), conns.clone());
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = UnixStream::connect(SOCKET) else {
                    continue;
                };
                let mut list = c.lock().unwrap();
                for (from, to) in [(&client, &upstream), (&upstream, &client)] {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                list.push(client);
                list.push(upstream);
            }
        });
        Proxy {
            path: path.to_path_buf(),
            stop,
            conns,
            thread: Some(thread),
        }
    }

    /// Close the listener and cut every connection; the socket file is removed.
    fn close(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = std::os::unix::net::UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shut();
    }
}

#[test]
fn when_the_socket_goes_away_the_files_are_read_and_the_api_comes_back() {
    let Some(root) = docker_root_or_fail("Docker API reconnect after the socket went away") else {
        return;
    };
    let image = unique("runnel-proxy-img");
    let prefix = unique("runnel-proxy");
    let (a, b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let mut cleanup = Cleanup {
        containers: vec![a.clone(), b.clone()],
        image: image.clone(),
    };
    build_busybox_image(&image);
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("docker-proxy.sock");
    let proxy = Proxy::start(&sock);
    let cfg = config(
        tmp.path(),
        &root,
        &format!("unix://{}", sock.display()),
        &format!("{prefix}-*"),
        "1s",
    );
    let agent = Agent::start(&cfg);
    let connected = |want: f64| {
        wait_for(
            Duration::from_secs(60),
            &format!("runnel_input_docker_api_connected == {want}"),
            || match agent.metric("runnel_input_docker_api_connected") {
                Some(v) if v == want => Ok(()),
                v => Err(format!("{v:?}")),
            },
        )
    };
    connected(1.0);
    proxy.close();
    connected(0.0);

    // While the API is away, a new container is found and read from its file.
    let run = |name: &str| {
        docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            &image,
            "sh",
            "-c",
            &script(name),
        ])
    };
    let id_a = run(&a);
    cleanup.containers.push(id_a.clone());
    wait_for(
        Duration::from_secs(15),
        "container a read from its file",
        || match source(&agent, &format!("docker:{id_a}")) {
            Some(s) if records(&s) >= FIRST_LINES as u64 => Ok(()),
            s => Err(format!("{s:?}")),
        },
    );
    wait_for(
        Duration::from_secs(15),
        "a reconnect is counted",
        || match agent.metric("runnel_input_docker_api_reconnects_total") {
            Some(v) if v >= 1.0 => Ok(()),
            v => Err(format!("{v:?}")),
        },
    );

    // The socket comes back: the client reconnects (backoff capped at 30 s) and relists.
    let _proxy = Proxy::start(&sock);
    connected(1.0);
    // The relist counted what exists now (a, and other tests' containers); b is new.
    let listed = agent
        .metric("runnel_input_docker_api_containers_total")
        .unwrap_or(0.0);
    let id_b = run(&b);
    cleanup.containers.push(id_b.clone());
    wait_for(
        Duration::from_secs(30),
        "b's start event is seen on the new event stream",
        || match agent.metric("runnel_input_docker_api_containers_total") {
            Some(v) if v > listed => Ok(()),
            v => Err(format!("{v:?}, {listed} after the relist")),
        },
    );
    for id in [&id_a, &id_b] {
        docker_ok(&["stop", "-t", "10", id]);
    }
    // Both found by the API and by inotify on the same root: each line stored once.
    for id in [&id_a, &id_b] {
        let key = format!("docker:{id}");
        wait_for(
            Duration::from_secs(15),
            "every line of a and b",
            || match source(&agent, &key) {
                Some(s) if records(&s) > FIRST_LINES as u64 => Ok(s),
                s => Err(format!("{s:?}")),
            },
        );
    }
    let sync = agent.get("/v1/sources").1;
    for id in [&id_a, &id_b] {
        let s = source(&agent, &format!("docker:{id}")).unwrap_or_else(|| panic!("{sync}"));
        assert_eq!(records(&s), FIRST_LINES as u64 + 1, "read once: {s}");
    }
    agent.stop();
}

#[test]
fn api_found_containers_survive_an_inputs_reload_and_the_api_is_switched_off_and_on_live() {
    if docker_root_or_fail("Docker API discovery across config reloads").is_none() {
        return;
    }
    let image = unique("runnel-reload-img");
    let prefix = unique("runnel-reload");
    let (a, b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let mut cleanup = Cleanup {
        containers: vec![a.clone(), b.clone()],
        image: image.clone(),
    };
    build_busybox_image(&image);
    let tmp = tempfile::tempdir().unwrap();
    // As in the first test: the logs are outside the (empty) Docker root, so only the API
    // finds them, and rescans are an hour apart.
    let empty_root = tmp.path().join("no-containers-here");
    std::fs::create_dir_all(&empty_root).unwrap();
    let text = |api: bool, max_line: &str| {
        let api = if api {
            format!(", api: \"unix://{SOCKET}\"")
        } else {
            String::new()
        };
        format!(
            "data_dir: {data}\nnode_name: test-node\ninputs:\n  \
             docker: {{ enabled: true, root: {root}{api} }}\n  cri: {{ enabled: false }}\n  \
             include: {{ containers: [\"{prefix}-*\"] }}\n  max_line_bytes: {max_line}\n  \
             rescan_interval: 1h\nhttp: {{ listen: \"127.0.0.1:0\" }}\nmetrics: {{ enabled: false }}\n\
             log: {{ format: text }}\n",
            data = tmp.path().join("data").display(),
            root = empty_root.display(),
        )
    };
    let mut cm = live::ConfigMap::new(&tmp.path().join("cm"), &text(true, "1MiB"));
    let agent = live::Live::start(&cm.file(), &tmp.path().join("stderr"), None);
    let generation = |want: f64| {
        assert!(
            agent.until(Duration::from_secs(20), |l| l
                .metric("runnel_config_generation")
                == Some(want)),
            "generation {want} not reached:\n{}",
            agent.stderr()
        )
    };
    let connected = |want: f64| {
        assert!(
            agent.until(Duration::from_secs(20), |l| l
                .metric("runnel_input_docker_api_connected")
                == Some(want)),
            "runnel_input_docker_api_connected never {want}:\n{}",
            agent.stderr()
        )
    };
    let records_of = |id: &str| {
        let body = agent.get("/v1/sources").1;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["sources"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|s| s["key"] == format!("docker:{id}"))
                    .cloned()
            })
            .map(|s| records(&s))
    };
    let has = |id: &str, n: u64| {
        assert!(
            agent.until(Duration::from_secs(10), |_| records_of(id) == Some(n)),
            "docker:{id} did not reach {n} records (has {:?}):\n{}",
            records_of(id),
            agent.stderr()
        )
    };
    connected(1.0);
    let run = |name: &str| {
        docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            &image,
            "sh",
            "-c",
            &script(name),
        ])
    };
    let id_a = run(&a);
    cleanup.containers.push(id_a.clone());
    has(&id_a, FIRST_LINES as u64);

    // An inputs change (live): the container found by the API alone is still read.
    cm.update(&text(true, "512KiB"));
    generation(2.0);
    docker_ok(&["kill", "-s", "USR1", &a]);
    has(&id_a, FIRST_LINES as u64 + 1);

    // The API switched off live: the client stops, and a, known to the API alone, is no
    // longer read (as a source under no input's root).
    cm.update(&text(false, "512KiB"));
    generation(3.0);
    connected(0.0);
    assert!(
        agent.until(Duration::from_secs(10), |l| l
            .metric("runnel_input_sources")
            == Some(0.0)),
        "{}",
        agent.stderr()
    );
    assert_eq!(
        agent.metric("runnel_config_reloads_total{result=\"error\"}"),
        Some(0.0)
    );
    // Written while nobody reads: a line of a, and a new container b.
    docker_ok(&["kill", "-s", "USR1", &a]);
    let id_b = run(&b);
    cleanup.containers.push(id_b.clone());

    // And on again: the new client lists what runs. b is read from its start, a from its
    // durable position: the line written meanwhile once, nothing twice.
    cm.update(&text(true, "512KiB"));
    generation(4.0);
    connected(1.0);
    has(&id_b, FIRST_LINES as u64);
    has(&id_a, FIRST_LINES as u64 + 2);
    docker_ok(&["stop", "-t", "10", &b]);
    has(&id_b, FIRST_LINES as u64 + 1);
    assert_eq!(records_of(&id_a), Some(FIRST_LINES as u64 + 2));
}

#[test]
fn the_demo_turns_the_api_on_when_the_socket_is_present() {
    if docker_root_or_fail("`--demo` turning the Docker API on").is_none() {
        return;
    }
    assert!(
        Path::new(SOCKET).exists(),
        "{SOCKET} is missing although `docker info` works (DOCKER_HOST elsewhere?)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("demo.yaml");
    std::fs::write(
        &cfg,
        "http: { listen: \"127.0.0.1:0\" }\nmetrics: { enabled: false }\nlog: { level: warn }\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(support::runnel_bin())
        .args(["agent", "--demo", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = support::stdout_lines(&mut child);
    let addr = support::listening_address(&lines);
    let agent = Agent {
        child,
        addr: addr.unwrap_or_default(),
    };
    assert!(!agent.addr.is_empty(), "the demo printed no listening line");
    wait_for(
        Duration::from_secs(20),
        "the demo's Docker API client connects to the host's engine",
        || match agent.metric("runnel_input_docker_api_connected") {
            Some(1.0) => Ok(()),
            v => Err(format!("{v:?}")),
        },
    );
    agent.stop();
}
