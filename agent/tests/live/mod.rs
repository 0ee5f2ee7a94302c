//! Pieces of the reload and health tests: a ConfigMap volume updated with the kubelet's
//! AtomicWriter steps, and the real agent run with its stderr kept in a file and debug
//! failpoints (`RUNNEL_FAILPOINTS`) in a directory of the test's.
#![allow(dead_code)]

use crate::support::{listening_address, runnel_bin, stdout_lines};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A ConfigMap volume: `runnel.yaml -> ..data/runnel.yaml`, `..data -> ..<timestamp>`.
pub struct ConfigMap {
    dir: PathBuf,
    current: Option<PathBuf>,
    n: u32,
}

impl ConfigMap {
    /// The volume in `dir` (created) with its first content.
    pub fn new(dir: &Path, text: &str) -> ConfigMap {
        std::fs::create_dir_all(dir).unwrap();
        let mut cm = ConfigMap {
            dir: dir.to_path_buf(),
            current: None,
            n: 0,
        };
        cm.update(text);
        symlink("..data/runnel.yaml", cm.file()).unwrap();
        cm
    }

    /// The path the agent is given.
    pub fn file(&self) -> PathBuf {
        self.dir.join("runnel.yaml")
    }

    /// One AtomicWriter update: new timestamped dir, `..data_tmp` symlink renamed over
    /// `..data`, old dir removed.
    pub fn update(&mut self, text: &str) {
        self.n += 1;
        let ts = format!("..2026_12_01_23_00_{:02}.{}", self.n, 500 + self.n);
        std::fs::create_dir(self.dir.join(&ts)).unwrap();
        std::fs::write(self.dir.join(&ts).join("runnel.yaml"), text).unwrap();
        symlink(&ts, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        if let Some(old) = self.current.replace(self.dir.join(&ts)) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }

    /// sha256 of the content now behind the symlinks.
    pub fn sha256(&self) -> String {
        runnel_config::Snapshot::read(&self.file()).unwrap().sha256
    }
}

/// A running agent whose stderr goes to a file.
pub struct Live {
    pub child: Child,
    pub addr: String,
    pub stderr: PathBuf,
}

impl Live {
    /// Start `runnel agent --config FILE`; failpoints read from `failpoints` when given.
    pub fn start(config: &Path, stderr: &Path, failpoints: Option<&Path>) -> Live {
        let err = std::fs::File::create(stderr).unwrap();
        let mut cmd = Command::new(runnel_bin());
        cmd.args(["agent", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            // No periodic re-read within a test: an update must be seen by the directory watch
            // (or a SIGHUP) to be applied.
            .env("RUNNEL_CONFIG_BACKSTOP", "1h")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err));
        if let Some(dir) = failpoints {
            cmd.env("RUNNEL_FAILPOINTS", dir);
        }
        let mut child = cmd.spawn().expect("starting runnel agent");
        let lines = stdout_lines(&mut child);
        let Some(addr) = listening_address(&lines) else {
            let _ = child.kill();
            panic!(
                "runnel agent did not print its listening address within 30 s:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        };
        let live = Live {
            child,
            addr,
            stderr: stderr.to_path_buf(),
        };
        assert!(
            live.until(Duration::from_secs(30), |l| l.get("/readyz").0 == 200),
            "agent never became ready"
        );
        live
    }

    /// GET a path: (status, body); (0, error) when the request failed.
    pub fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&format!("http://{}{path}", self.addr))
            .timeout(Duration::from_secs(30))
            .call()
        {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// The value of one sample on `/metrics` (`name{labels}` exactly as printed).
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    /// The agent's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Poll `f` every 20 ms until it holds or `within` passes.
    pub fn until(&self, within: Duration, mut f: impl FnMut(&Live) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if f(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the process to end by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Send a signal.
    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
