//! What the real-Docker tests share: running the docker CLI, the explicit-skip rule, a tiny
//! `FROM scratch` busybox image, and cleanup of what a test created.
//!
//! These tests need `docker info` to succeed and `/bin/busybox` (Debian's `busybox-static`).
//! Without them they FAIL with a message saying so; `RUNNEL_SKIP_DOCKER=1` skips them explicitly.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Run a command to completion, panicking with the command line if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run {shown}: {e}"),
    }
}

/// `docker <args>`.
pub fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

/// `docker <args>`, asserting success; its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes the containers and image a test created, whatever happens.
pub struct Cleanup {
    /// Container names or ids.
    pub containers: Vec<String>,
    /// Image tag.
    pub image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

/// The engine's containers directory, or `None` when `RUNNEL_SKIP_DOCKER=1` asks to skip
/// (`what` names what then goes unverified). Panics with a clear message when there is no engine.
pub fn docker_root_or_fail(what: &str) -> Option<PathBuf> {
    if std::env::var("RUNNEL_SKIP_DOCKER").as_deref() == Ok("1") {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! RUNNEL_SKIP_DOCKER=1: a real-Docker test was SKIPPED.\n\
             !!! NOT verified by this run: {what}\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return None;
    }
    let out = Command::new("docker")
        .args(["info", "--format", "{{.DockerRootDir}}"])
        .stdin(Stdio::null())
        .output();
    let root = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => panic!(
            "`docker info` failed ({}): {}\nThis test needs a running Docker engine (CI machines \
             have one). Set RUNNEL_SKIP_DOCKER=1 to skip it explicitly.",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run `docker info`: {e}\nThis test needs the docker CLI and a running engine. \
             Set RUNNEL_SKIP_DOCKER=1 to skip it explicitly."
        ),
    };
    assert!(!root.is_empty(), "`docker info` printed no DockerRootDir");
    Some(PathBuf::from(root).join("containers"))
}

/// Build `tag`: `FROM scratch` with Debian's static busybox as the entrypoint.
pub fn build_busybox_image(tag: &str) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox is missing: install Debian's static busybox first, as the README test \
         command does: `apt-get install -y busybox-static`"
    );
    let ctx = tempfile::Builder::new()
        .prefix("runnel-docker-image-")
        .tempdir()
        .unwrap();
    std::fs::copy(busybox, ctx.path().join("busybox")).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n",
    )
    .unwrap();
    docker_ok(&["build", "-q", "-t", tag, &ctx.path().to_string_lossy()]);
}

/// A name unique to this test process and moment.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}
