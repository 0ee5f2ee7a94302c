//! The agent image, run by the real Docker engine exactly as the DaemonSet runs its container:
//! the ConfigMap's `runnel.yaml` (taken from `daemonset/configmap.yaml`, laid out as the
//! kubelet's AtomicWriter lays out a ConfigMap volume), a read-only root, every capability
//! dropped but DAC_READ_SEARCH and SYS_PTRACE, no new privileges, the host's PID namespace, the
//! same host paths read-only, a data dir, the memory limit and the `/tmp` size. Real busybox
//! containers log through Docker's `json-file` driver; their lines must come back over HTTP
//! (`/v1/logs`) and their `container_*` samples on `/metrics`. Then the agent container is
//! stopped (SIGTERM, as the kubelet does) and replaced, and killed (SIGKILL) and replaced,
//! while a container keeps writing: every line must be there exactly once, in order.
//!
//! The image: `RUNNEL_IMAGE=<tag>` names one already built by `daemonset/image.sh` (as
//! scripts/test.sh does); without it the test runs `daemonset/image.sh` itself (a release
//! build, minutes on 2 cores) and removes the image afterwards. Needs `docker info` to succeed
//! and `/bin/busybox`; see `docker_support` for the explicit skip (`RUNNEL_SKIP_DOCKER=1`).

mod docker_support;

use docker_support::{
    build_busybox_image, docker, docker_ok, docker_root_or_fail, run, unique, Cleanup,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Lines the burst container prints before it sleeps (and stays up for the metrics).
const BURST_LINES: u32 = 2000;
/// The busybox containers' user: not the agent's, so reading their /proc needs the two
/// capabilities.
const WORKLOAD_USER: &str = "1000:1000";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent/ has a parent")
        .to_path_buf()
}

/// The `runnel.yaml` block of `daemonset/configmap.yaml`: the lines indented under
/// `  runnel.yaml: |`, less their four spaces.
fn configmap_runnel_yaml() -> String {
    let path = repo_root().join("daemonset/configmap.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    assert!(
        lines.any(|l| l == "  runnel.yaml: |"),
        "{}: no `  runnel.yaml: |` block",
        path.display()
    );
    let mut out = String::new();
    for line in lines {
        if let Some(body) = line.strip_prefix("    ") {
            out.push_str(body);
        } else if !line.trim().is_empty() {
            break;
        }
        out.push('\n');
    }
    assert!(out.contains("data_dir:"), "the runnel.yaml block is empty");
    out
}

/// A ConfigMap volume as the kubelet writes it: `..<timestamp>/runnel.yaml`, the `..data`
/// symlink to it, and `runnel.yaml -> ..data/runnel.yaml`.
fn configmap_volume(dir: &Path, runnel_yaml: &str) {
    let ts = "..2026_01_01_00_00_00.000000001";
    std::fs::create_dir_all(dir.join(ts)).unwrap();
    std::fs::write(dir.join(ts).join("runnel.yaml"), runnel_yaml).unwrap();
    std::os::unix::fs::symlink(ts, dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/runnel.yaml", dir.join("runnel.yaml")).unwrap();
    // The mount point of the tokens Secret nested inside this read-only volume: the kubelet
    // creates it in the volume before mounting (the runtime cannot, the volume is read-only).
    std::fs::create_dir(dir.join("tokens")).unwrap();
}

/// The image to run, and whether this test built it (and so removes it).
fn agent_image() -> (String, bool) {
    if let Ok(tag) = std::env::var("RUNNEL_IMAGE") {
        let out = docker(&["image", "inspect", "-f", "{{.Id}}", &tag]);
        assert!(
            out.status.success(),
            "RUNNEL_IMAGE={tag} is not an image of this engine: build it with daemonset/image.sh {tag}"
        );
        return (tag, false);
    }
    let tag = format!("{}:e2e", unique("runnel-image"));
    eprintln!(
        "image_e2e: RUNNEL_IMAGE unset: building {tag} with daemonset/image.sh (a release build)"
    );
    let out = run(Command::new(repo_root().join("daemonset/image.sh")).arg(&tag));
    assert!(
        out.status.success(),
        "daemonset/image.sh {tag} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (tag, true)
}

/// Removes an image this test built.
struct ImageGuard(Option<String>);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        if let Some(tag) = &self.0 {
            let _ = docker(&["rmi", "-f", tag]);
        }
    }
}

/// The DaemonSet's container spec as `docker run` flags, but for the volumes.
const POD_SPEC_FLAGS: &[&str] = &[
    // securityContext: runAsUser 0, readOnlyRootFilesystem, capabilities, no escalation
    // (seccomp RuntimeDefault is Docker's default profile)
    "--user=0:0",
    "--read-only",
    "--cap-drop=ALL",
    "--cap-add=DAC_READ_SEARCH",
    "--cap-add=SYS_PTRACE",
    "--security-opt=no-new-privileges",
    // hostPID, resources.limits.memory, the /tmp emptyDir (sizeLimit 64Mi)
    "--pid=host",
    "--memory=128m",
    "--tmpfs=/tmp:size=64m",
    // env NODE_NAME from spec.nodeName; the http port, published on loopback only
    "--env=NODE_NAME=image-e2e-node",
    "--publish=127.0.0.1::2020",
];

/// The agent container's `docker run` arguments: the DaemonSet's pod spec, flag for flag.
struct AgentSpec {
    name: String,
    image: String,
    config_dir: PathBuf,
    tokens_dir: PathBuf,
    data_dir: PathBuf,
    containers_dir: PathBuf,
}

impl AgentSpec {
    fn run_args(&self) -> Vec<String> {
        let bind = |src: &Path, dst: &str, ro: bool| {
            let mut m = format!("type=bind,source={},target={dst}", src.display());
            if ro {
                m.push_str(",readonly");
            }
            ["--mount".to_string(), m]
        };
        // hostPath type DirectoryOrCreate: `-v` creates a missing host directory, as the kubelet.
        let or_create = |path: &str| ["-v".to_string(), format!("{path}:{path}:ro")];
        let mut a: Vec<String> = ["run", "--detach", &format!("--name={}", self.name)]
            .into_iter()
            .chain(POD_SPEC_FLAGS.iter().copied())
            .map(str::to_string)
            .collect();
        a.extend(bind(&self.config_dir, "/etc/runnel", true));
        // The optional tokens Secret, absent: the kubelet mounts an empty volume.
        a.extend(bind(&self.tokens_dir, "/etc/runnel/tokens", true));
        a.extend(bind(Path::new("/var/log"), "/var/log", true));
        a.extend(bind(
            &self.containers_dir,
            "/var/lib/docker/containers",
            true,
        ));
        a.extend(bind(&self.data_dir, "/var/lib/runnel", false));
        a.extend(bind(
            Path::new("/sys/fs/cgroup"),
            "/host/sys/fs/cgroup",
            true,
        ));
        a.extend(bind(Path::new("/proc"), "/host/proc", true));
        a.extend(or_create("/run/containerd/io.containerd.runtime.v2.task"));
        a.extend(or_create("/run/containers/storage/overlay-containers"));
        a.push(self.image.clone());
        a.extend(["agent", "--config", "/etc/runnel/runnel.yaml"].map(String::from));
        a
    }

    /// `docker run` the agent and wait until it is ready; its `http://127.0.0.1:PORT`.
    fn start(&self) -> String {
        let args = self.run_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
        let port = docker_ok(&["port", &self.name, "2020/tcp"]);
        let addr = port.lines().next().unwrap_or_default().to_string();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "docker port printed {port:?}"
        );
        let base = format!("http://{addr}");
        let ready = wait_for(Duration::from_secs(60), || {
            matches!(get(&base, "/readyz"), Some((200, _)))
        });
        assert!(ready, "the agent never became ready:\n{}", self.logs());
        base
    }

    fn logs(&self) -> String {
        let out = docker(&["logs", "--tail", "50", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Stop as the kubelet does (SIGTERM, then the grace period) and remove the container.
    fn stop_gracefully(&self) {
        docker_ok(&["stop", "-t", "30", &self.name]);
        let code = docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &self.name]);
        assert_eq!(
            code,
            "0",
            "the agent exited {code} on SIGTERM:\n{}",
            self.logs()
        );
        docker_ok(&["rm", &self.name]);
    }

    /// SIGKILL: no chance to sync or flush anything.
    fn kill(&self) {
        docker_ok(&["rm", "-f", &self.name]);
    }
}

/// GET with a timeout; `None` when the connection itself fails.
/// The token the test's tokens Secret admits (read, metrics) and its SHA-256.
const E2E_TOKEN: &str = "e2e-token-0123456789";
const E2E_TOKEN_SHA256: &str = "819f81e65648836f09a1479c79c17766e5a540f114d514dc024af263933d9eba";

fn get(base: &str, path: &str) -> Option<(u16, String)> {
    match ureq::get(&format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {E2E_TOKEN}"))
        .timeout(Duration::from_secs(30))
        .call()
    {
        Ok(r) => Some((r.status(), r.into_string().ok()?)),
        Err(ureq::Error::Status(code, r)) => Some((code, r.into_string().unwrap_or_default())),
        Err(_) => None,
    }
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A container's lines as the agent serves them.
fn served_lines(base: &str, name: &str) -> Vec<String> {
    match get(base, &format!("/v1/logs?pod={name}")) {
        Some((200, body)) => body.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// A container's lines as Docker itself recorded them.
fn docker_lines(name: &str) -> Vec<String> {
    let out = docker(&["logs", name]);
    assert!(out.status.success(), "docker logs {name} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The value of `family{...container="name"...}` on /metrics.
fn sample(metrics: &str, family: &str, container: &str) -> Option<f64> {
    let label = format!("container=\"{container}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn assert_exactly(got: &[String], want: &[String], what: &str) {
    let first_diff = got.iter().zip(want).position(|(g, w)| g != w);
    assert!(
        first_diff.is_none() && got.len() == want.len(),
        "{what}: {} lines served, {} written; first difference at line {:?}: got {:?}, want {:?}",
        got.len(),
        want.len(),
        first_diff.map(|i| i + 1),
        first_diff.map(|i| &got[i]),
        first_diff.map(|i| &want[i]),
    );
}

#[test]
fn the_image_runs_as_the_daemonset_runs_it_and_a_restart_loses_and_duplicates_nothing() {
    let Some(containers_dir) = docker_root_or_fail("the agent image run as the DaemonSet runs it")
    else {
        return;
    };
    let (image, built) = agent_image();
    let _image_guard = ImageGuard(built.then(|| image.clone()));
    let id = unique("runnel-img");
    let (agent_name, burst, steady) = (
        format!("{id}-agent"),
        format!("{id}-burst"),
        format!("{id}-steady"),
    );
    let guard = Cleanup {
        containers: vec![agent_name.clone(), burst.clone(), steady.clone()],
        image: format!("{id}:busybox"),
    };
    build_busybox_image(&guard.image);

    let tmp = tempfile::Builder::new()
        .prefix("runnel-image-e2e-")
        .tempdir()
        .unwrap();
    let spec = AgentSpec {
        name: agent_name,
        image,
        config_dir: tmp.path().join("config"),
        tokens_dir: tmp.path().join("tokens"),
        data_dir: tmp.path().join("data"),
        containers_dir,
    };
    for d in [&spec.config_dir, &spec.tokens_dir, &spec.data_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The ConfigMap points `http.auth.tokens_file` into the tokens Secret's mount, as deployed;
    // the test mounts a Secret there and reads with its token.
    let runnel_yaml = configmap_runnel_yaml();
    assert!(
        runnel_yaml.contains("tokens_file: /etc/runnel/tokens/tokens.yaml"),
        "the ConfigMap no longer reads the tokens Secret:\n{runnel_yaml}"
    );
    std::fs::write(
        spec.tokens_dir.join("tokens.yaml"),
        format!(
            "tokens:\n  - {{ name: e2e, token_sha256: \"{}\", namespaces: [\"*\"], rights: [read, metrics] }}\n",
            E2E_TOKEN_SHA256
        ),
    )
    .unwrap();
    configmap_volume(&spec.config_dir, &runnel_yaml);
    let ctl = tmp.path().join("ctl");
    std::fs::create_dir_all(&ctl).unwrap();

    let base = spec.start();

    // A burst of lines, then `nc` listening and `sleep`, for the metrics collector to count.
    // It runs as a non-root user, as most workloads do: the agent (UID 0) then needs
    // DAC_READ_SEARCH to list its /proc/<pid>/fd (owned by that user, mode 0500) and
    // SYS_PTRACE to read the links there (the kernel's ptrace check) and so count the socket.
    let script = format!(
        "i=1; while [ $i -le {BURST_LINES} ]; do echo \"burst line $i\"; i=$((i+1)); done; \
         nc -l -p 7070 & exec sleep 600"
    );
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &burst,
        "--user",
        WORKLOAD_USER,
        &guard.image,
        "sh",
        "-c",
        &script,
    ]);
    let want_burst: Vec<String> = (1..=BURST_LINES)
        .map(|i| format!("burst line {i}"))
        .collect();
    let served = wait_for(Duration::from_secs(60), || {
        served_lines(&base, &burst).len() >= want_burst.len()
    });
    assert!(
        served,
        "the burst container's lines never all reached /v1/logs:\n{}",
        spec.logs()
    );
    assert_exactly(
        &served_lines(&base, &burst),
        &want_burst,
        "burst over /v1/logs",
    );

    // Its container_* samples, counted from the host's /proc through the read-only mounts:
    // `nc` and `sleep`, a thread each, nc's socket; and no read denied for lack of a right.
    let mut metrics = String::new();
    let counted = wait_for(Duration::from_secs(60), || {
        metrics = get(&base, "/metrics").map(|(_, b)| b).unwrap_or_default();
        sample(&metrics, "container_processes", &burst) == Some(2.0)
            && sample(&metrics, "container_sockets", &burst) == Some(1.0)
    });
    assert!(
        counted,
        "no container_processes 2 and container_sockets 1 for {burst} on /metrics:\n{}\nagent:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains(&burst) || l.starts_with("runnel_metrics_access_denied"))
            .collect::<Vec<_>>()
            .join("\n"),
        spec.logs()
    );
    assert_eq!(sample(&metrics, "container_threads", &burst), Some(2.0));
    let fds = sample(&metrics, "container_file_descriptors", &burst);
    assert!(
        fds.is_some_and(|n| n >= 3.0 + 4.0),
        "sleep's 3 descriptors and nc's 3 and its socket: {fds:?}"
    );
    let denied: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("runnel_metrics_access_denied_total{") && !l.ends_with(" 0"))
        .collect();
    assert!(
        denied.is_empty(),
        "reads denied with the DaemonSet's capabilities: {denied:?}"
    );
    assert!(
        sample(&metrics, "container_memory_working_set_bytes", &burst).is_some_and(|b| b > 0.0),
        "no memory figure for {burst}"
    );

    // A container that writes until told to stop, across two agent replacements.
    let script = "i=1; while [ ! -e /ctl/stop ]; do echo \"steady line $i\"; \
                  if [ $((i % 50)) -eq 0 ]; then sleep 0.05; fi; i=$((i+1)); done; \
                  echo \"steady done after $((i-1))\"";
    let ctl_mount = format!("{}:/ctl:ro", ctl.display());
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &steady,
        "--user",
        WORKLOAD_USER,
        "-v",
        &ctl_mount,
        &guard.image,
        "sh",
        "-c",
        script,
    ]);
    let some = |base: &str, n: usize| {
        let base = base.to_string();
        let steady = steady.clone();
        wait_for(Duration::from_secs(60), move || {
            served_lines(&base, &steady).len() >= n
        })
    };
    assert!(
        some(&base, 500),
        "the steady container's lines never reached /v1/logs"
    );
    spec.stop_gracefully();
    let base = spec.start();
    let seen = served_lines(&base, &steady).len();
    assert!(
        some(&base, seen + 500),
        "no new steady lines after the graceful restart"
    );
    spec.kill();
    let base = spec.start();
    let seen = served_lines(&base, &steady).len();
    assert!(
        some(&base, seen + 500),
        "no new steady lines after the SIGKILL restart"
    );
    std::fs::write(ctl.join("stop"), "").unwrap();
    assert_eq!(
        docker_ok(&["wait", &steady]),
        "0",
        "the steady script failed"
    );

    let want_steady = docker_lines(&steady);
    let last = want_steady.last().cloned().unwrap_or_default();
    let n: usize = last
        .strip_prefix("steady done after ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the steady container's last line is {last:?}"));
    assert_eq!(
        want_steady.len(),
        n + 1,
        "docker logs holds every steady line"
    );
    let done = wait_for(Duration::from_secs(60), || {
        served_lines(&base, &steady).last() == Some(&last)
    });
    assert!(
        done,
        "the steady container's last line never reached /v1/logs:\n{}",
        spec.logs()
    );
    assert_exactly(
        &served_lines(&base, &steady),
        &want_steady,
        "steady across two restarts",
    );
    assert_exactly(
        &served_lines(&base, &burst),
        &want_burst,
        "burst after two restarts",
    );
    eprintln!("image_e2e: {n} steady lines and {BURST_LINES} burst lines served exactly once");
    spec.kill();
    drop(guard);
}
