//! Pieces shared by the HTTP access and limits tests: the agent with its log captured (to
//! check what it says and never says), tokens files in the kubelet's Secret-volume layout,
//! requests with headers, and raw sockets for what a well-behaved client never does.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running agent whose stderr goes to a file.
pub struct LoggedAgent {
    pub child: Child,
    /// `host:port`.
    pub addr: String,
    /// `http` or `https`.
    pub scheme: String,
    pub log: PathBuf,
}

impl LoggedAgent {
    /// Start `runnel agent --config`, wait for its listening line (any scheme) and, over
    /// plain HTTP, for `/readyz`.
    pub fn start(config: &Path, log: PathBuf) -> LoggedAgent {
        let err = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["agent", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("starting runnel agent");
        let lines = super::support::stdout_lines(&mut child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let (scheme, addr) = loop {
            let line = match lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "agent printed no listening line; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            };
            if let Some(rest) = line.strip_prefix("runnel: listening on ") {
                let (scheme, addr) = rest.split_once("://").unwrap();
                break (scheme.to_string(), addr.to_string());
            }
        };
        let agent = LoggedAgent {
            child,
            addr,
            scheme,
            log,
        };
        if agent.scheme == "http" {
            assert!(
                super::support::eventually(Duration::from_secs(30), || agent
                    .get("/readyz", None)
                    .0
                    == 200),
                "agent never became ready"
            );
        }
        agent
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    /// GET with an optional bearer token; status and body.
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.request("GET", path, token)
    }

    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let url = format!("http://{}{}", self.addr, path);
        let mut r = ureq::request(method, &url).timeout(Duration::from_secs(30));
        if let Some(t) = token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        match r.call() {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    /// What the agent logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of one un-labelled or labelled sample on `/metrics` (exact series text).
    pub fn metric(&self, series: &str, token: Option<&str>) -> Option<f64> {
        let (code, page) = self.get("/metrics", token);
        assert_eq!(code, 200, "{page}");
        page.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for LoggedAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lowercase hex SHA-256, as `sha256sum` prints it.
pub fn sha256_hex(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A tokens file: `(name, token, namespaces yaml, rights yaml)`.
pub fn tokens_yaml(entries: &[(&str, &str, &str, &str)]) -> String {
    let mut s = String::from("tokens:\n");
    for (name, token, ns, rights) in entries {
        s.push_str(&format!(
            "  - {{ name: {name}, token_sha256: \"{}\", namespaces: {ns}, rights: {rights} }}\n",
            sha256_hex(token)
        ));
    }
    s
}

/// A Secret volume as the kubelet's AtomicWriter lays it out: `..<ts>/` with the files,
/// `..data -> ..<ts>`, and `<name> -> ..data/<name>` for each file.
pub struct SecretVolume {
    pub dir: PathBuf,
    generation: u32,
}

impl SecretVolume {
    pub fn create(dir: &Path, files: &[(&str, &[u8])]) -> SecretVolume {
        std::fs::create_dir_all(dir).unwrap();
        let mut v = SecretVolume {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        let ts = v.write_generation(files);
        std::os::unix::fs::symlink(&ts, dir.join("..data")).unwrap();
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        v
    }

    fn write_generation(&mut self, files: &[(&str, &[u8])]) -> String {
        self.generation += 1;
        let ts = format!(
            "..2026_12_01_22_00_{:02}.{}",
            self.generation,
            1000 + self.generation
        );
        let d = self.dir.join(&ts);
        std::fs::create_dir(&d).unwrap();
        for (name, bytes) in files {
            std::fs::write(d.join(name), bytes).unwrap();
        }
        ts
    }

    /// An update, step by step as AtomicWriter does it: new timestamped directory,
    /// `..data_tmp` symlink to it renamed over `..data`, old directory removed.
    pub fn update(&mut self, files: &[(&str, &[u8])]) {
        let old = std::fs::read_link(self.dir.join("..data")).unwrap();
        let ts = self.write_generation(files);
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&ts, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        std::fs::remove_dir_all(self.dir.join(old)).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Send raw bytes and read the whole answer (until the server closes or `timeout`).
pub fn raw_exchange(addr: &str, bytes: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP answer.
pub fn status_of(answer: &str) -> Option<u16> {
    answer.split(' ').nth(1).and_then(|c| c.parse().ok())
}

/// A local IPv4 address that is not loopback (the address a pod's peers would come from),
/// found from the routing table without sending anything.
pub fn non_loopback_ip() -> std::net::IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    for probe in ["192.0.2.1:9", "10.255.255.1:9", "172.31.255.1:9"] {
        if s.connect(probe).is_ok() {
            if let Ok(a) = s.local_addr() {
                if !a.ip().is_loopback() && !a.ip().is_unspecified() {
                    return a.ip();
                }
            }
        }
    }
    panic!("this machine has no non-loopback IPv4 address: the anonymous-loopback test needs one (a network interface with an address)");
}

/// Raise the open-files limit (the agent inherits it) so that thousands of sockets fit.
pub fn raise_nofile(want: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    let cur = want.min(r.rlim_max);
    r.rlim_cur = cur;
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    assert!(
        cur >= want,
        "the open-files hard limit is {}; this test needs {want} (raise ulimit -Hn)",
        r.rlim_max
    );
}
