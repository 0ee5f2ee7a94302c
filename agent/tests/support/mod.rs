//! Shared pieces of the end-to-end tests: a temporary node layout, the real `runnel` binary as a
//! child process, log lines formatted as Docker and the kubelet write them, and HTTP over real
//! sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `runnel` binary built for this test run.
pub fn runnel_bin() -> &'static str {
    env!("CARGO_BIN_EXE_runnel")
}

/// A TCP port on 127.0.0.1 held for one test, for a test whose client must find the agent at
/// the same port after a restart. Keep it alive as long as the agent may bind the port.
///
/// A port found with `bind(":0")` and released may be taken before the agent binds it: as the
/// source port of any outgoing connection, or by another listener (CI hit "Address already in
/// use" twice, once with a port from below the ephemeral range). So the port stays bound, with
/// `SO_REUSEADDR` and never listening, for the test's life: the kernel then hands it to no
/// `connect` and no `bind(":0")`, and refuses a plain `bind`, while the agent (tokio binds with
/// `SO_REUSEADDR`) can listen on it, again after each restart. The port is also taken from
/// below the ephemeral range, so the agent's UDP heartbeat socket on the same number does not
/// meet a client's source port either.
pub struct ReservedPort {
    _held: std::os::fd::OwnedFd,
    port: u16,
}

impl ReservedPort {
    pub fn number(&self) -> u16 {
        self.port
    }
}

impl std::fmt::Display for ReservedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.port)
    }
}

/// Reserve a port as [`ReservedPort`] explains.
pub fn reserve_port() -> ReservedPort {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .filter(|&p| p > 11_000)
        .unwrap_or(32_768);
    let span = low - 10_000;
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let start = (std::process::id().wrapping_mul(7919) + call.wrapping_mul(104_729)) % span;
    (0..span)
        .map(|i| 10_000 + (start + i) % span)
        .find_map(|p| hold_port(u16::try_from(p).ok()?))
        .expect("no free TCP port on 127.0.0.1 below the ephemeral range")
}

/// Bind (never listen) a `SO_REUSEADDR` TCP socket to 127.0.0.1:`port`, or `None` if taken.
fn hold_port(port: u16) -> Option<ReservedPort> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: plain socket calls on a descriptor this function owns from its creation.
    unsafe {
        let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if raw < 0 {
            return None;
        }
        let fd = OwnedFd::from_raw_fd(raw);
        let one: libc::c_int = 1;
        let set = libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        if set != 0 {
            return None;
        }
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let bound = libc::bind(
            raw,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        // A listener elsewhere on the number (TCP or the UDP heartbeat's) rules it out.
        let udp_free = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        (bound == 0 && udp_free).then_some(ReservedPort { _held: fd, port })
    }
}

/// A node's directories in a tempdir.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Node {
        let dir = tempfile::Builder::new()
            .prefix("runnel-e2e-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        std::fs::create_dir_all(dir.path().join("pods")).unwrap();
        Node { dir }
    }
    pub fn docker_root(&self) -> PathBuf {
        self.dir.path().join("docker")
    }
    pub fn cri_root(&self) -> PathBuf {
        self.dir.path().join("pods")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    pub fn index_dir(&self) -> PathBuf {
        self.data_dir().join("index")
    }
    /// Write the agent config; `extra` is appended YAML (top-level keys).
    pub fn config(&self, extra: &str) -> PathBuf {
        let path = self.dir.path().join("runnel.yaml");
        let text = format!(
            "data_dir: {data}\nnode_name: test-node\ninputs:\n  docker: {{ enabled: true, root: {docker} }}\n  \
             cri: {{ enabled: true, root: {cri} }}\n  rescan_interval: 1s\nhttp: {{ listen: \"127.0.0.1:0\" }}\n\
             metrics: {{ enabled: false }}\n{extra}",
            data = self.data_dir().display(),
            docker = self.docker_root().display(),
            cri = self.cri_root().display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }
    /// [`Node::config`] with `inputs_extra` (lines indented under `inputs:`) added.
    pub fn config_with_inputs(&self, inputs_extra: &str, extra: &str) -> PathBuf {
        let path = self.config(extra);
        let text = std::fs::read_to_string(&path).unwrap().replacen(
            "inputs:\n",
            &format!("inputs:\n{inputs_extra}"),
            1,
        );
        std::fs::write(&path, text).unwrap();
        path
    }
    /// Path of a CRI container log: `<ns>_<pod>_<uid>/<container>/<restart>.log`.
    pub fn cri_log(&self, ns: &str, pod: &str, container: &str, restart: u32) -> PathBuf {
        let dir = self
            .cri_root()
            .join(format!("{ns}_{pod}_uid-{pod}"))
            .join(container);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(format!("{restart}.log"))
    }
    /// Create a Docker container dir with config.v2.json; returns the live log path.
    pub fn docker_container(&self, id: &str, name: &str, labels: &[(&str, &str)]) -> PathBuf {
        let dir = self.docker_root().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let cfg = serde_json::json!({
            "ID": id, "Name": format!("/{name}"),
            "Config": { "Image": "registry.local/app:1.0", "Labels": labels },
            "Image": "sha256:0123",
        });
        std::fs::write(dir.join("config.v2.json"), cfg.to_string()).unwrap();
        dir.join(format!("{id}-json.log"))
    }
}

/// A 64-hex container id made from a number.
pub fn container_id(n: u32) -> String {
    format!("{n:08x}").repeat(8)
}

/// The RFC 3339 time `i` milliseconds after 2024-05-01T12:00:00Z, with nanosecond digits
/// trimmed as Docker trims them.
pub fn time_at(ms: u64) -> String {
    let s = ms / 1000;
    let frac = format!("{:09}", (ms % 1000) * 1_000_000 + 123);
    format!(
        "2024-05-01T12:{:02}:{:02}.{}Z",
        s / 60 % 60,
        s % 60,
        frac.trim_end_matches('0')
    )
}

/// One CRI line.
pub fn cri_line(time: &str, stream: &str, tag: &str, msg: &str) -> String {
    format!("{time} {stream} {tag} {msg}\n")
}

/// One json-file line (`log` keeps its trailing newline unless it is a fragment).
pub fn docker_line(log: &str, stream: &str, time: &str) -> String {
    let mut s = serde_json::json!({ "log": log, "stream": stream, "time": time }).to_string();
    s.push('\n');
    s
}

/// Append text to a file (creating it), flushing to the OS.
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The lines `child` prints on its (piped) stdout, as they come, read by a thread.
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The `host:port` an agent prints in its `listening on` line, waiting at most 30 s.
pub fn listening_address(lines: &std::sync::mpsc::Receiver<String>) -> Option<String> {
    listening_address_after(lines, &mut Vec::new())
}

/// [`listening_address`], keeping the lines printed before it in `printed`.
pub fn listening_address_after(
    lines: &std::sync::mpsc::Receiver<String>,
    printed: &mut Vec<String>,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()?;
        if let Some(addr) = line.strip_prefix("runnel: listening on http://") {
            return Some(addr.to_string());
        }
        printed.push(line);
    }
}

/// A running agent.
pub struct Agent {
    pub child: Child,
    pub addr: String,
}

impl Agent {
    /// Start `runnel agent --config` and wait for its listening line.
    pub fn start(config: &Path) -> Agent {
        Agent::spawn(config).0
    }

    /// Start an agent with the forward input on; returns it and the forward `host:port`.
    pub fn start_forward(config: &Path) -> (Agent, String) {
        let (mut agent, printed) = Agent::spawn(config);
        let forward = printed
            .iter()
            .find_map(|l| l.strip_prefix("runnel: forward listening on "));
        match forward {
            Some(f) => {
                let f = f.to_string();
                (agent, f)
            }
            None => {
                let _ = agent.child.kill();
                panic!("runnel agent printed no forward listening line (is inputs.forward.enabled set?)");
            }
        }
    }

    /// Spawn the agent, wait for its HTTP listening line and readiness; returns it and the
    /// lines it printed before that one.
    fn spawn(config: &Path) -> (Agent, Vec<String>) {
        let mut child = Command::new(runnel_bin())
            .args(["agent", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting runnel agent");
        let lines = stdout_lines(&mut child);
        let mut printed = Vec::new();
        let Some(addr) = listening_address_after(&lines, &mut printed) else {
            let _ = child.kill();
            panic!("runnel agent did not print its listening address within 30 s");
        };
        let agent = Agent { child, addr };
        agent.wait_ready();
        (agent, printed)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, _)) = self.try_get("/readyz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("agent at {} never became ready", self.addr);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn try_get(&self, path: &str) -> Result<(u16, String), String> {
        match ureq::get(&self.url(path))
            .timeout(Duration::from_secs(30))
            .call()
        {
            Ok(r) => Ok((r.status(), r.into_string().map_err(|e| e.to_string())?)),
            Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// GET a path; returns status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The `/v1/sources` entry of `key` (null while it is not listed).
    pub fn source(&self, key: &str) -> serde_json::Value {
        let (_, body) = self.get("/v1/sources");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["key"] == key)
            .cloned()
            .unwrap_or_default()
    }

    /// Records stored for `key` (0 while it is not listed).
    pub fn records(&self, key: &str) -> u64 {
        self.source(key)["records"].as_u64().unwrap_or(0)
    }

    /// The value of one series on `/metrics` (`name` with its labels, as printed).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        body.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "agent exited with {status} after SIGTERM");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("agent did not exit within 30 s of SIGTERM");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `runnel` with arguments to completion.
pub fn runnel(args: &[&str]) -> Output {
    Command::new(runnel_bin())
        .args(args)
        .output()
        .expect("running runnel")
}

/// Run `runnel agent --oneshot` and assert it succeeded.
pub fn oneshot(config: &Path) {
    let out = Command::new(runnel_bin())
        .args(["agent", "--oneshot", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oneshot failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `runnel logs --data-dir` output as a string, asserting success.
pub fn logs_from_dir(node: &Node, args: &[&str]) -> String {
    let dir = node.index_dir();
    let mut all = vec!["logs", "--data-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = runnel(&all);
    assert!(
        out.status.success(),
        "runnel {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The Python of the test venv (scripts/test.sh makes it, with msgpack, fluent-logger and
/// zstandard); fails with a clear message when it is missing.
pub fn python() -> String {
    let py = std::env::var("RUNNEL_PYTHON")
        .unwrap_or_else(|_| format!("{}/../.venv/bin/python", env!("CARGO_MANIFEST_DIR")));
    assert!(
        Path::new(&py).exists(),
        "{py} is missing: run the tests with scripts/test.sh, which creates .venv with the Python packages they need"
    );
    py
}

/// Run one of the Python scripts under `agent/tests/` with the test venv's Python; asserts
/// it succeeded and returns its trimmed stdout.
pub fn run_script(script: &str, args: &[&str]) -> String {
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {path}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
