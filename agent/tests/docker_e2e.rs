//! Against a real Docker engine: a container writes numbered lines through the `json-file`
//! driver with a small `max-size`, so Docker itself rotates the file (`<id>-json.log.1`, `.2` …)
//! and splits a 40 KiB line into 16 KiB fragments; then `runnel agent --oneshot` ingests the
//! engine's containers directory and `runnel logs <container name>` must print every line
//! exactly once, in order, merged, under the container's name and id.
//!
//! Needs `docker info` to succeed and `/bin/busybox` (Debian's `busybox-static`:
//! `apt-get install -y busybox-static`). Without them the test FAILS; set
//! `RUNNEL_SKIP_DOCKER=1` to skip it explicitly.

mod docker_support;

use docker_support::{
    build_busybox_image, docker, docker_ok, docker_root_or_fail, unique, Cleanup,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Numbered lines the container prints.
const LINES: u32 = 3000;
/// The line after which the container prints one 40 KiB line.
const LONG_AFTER: u32 = 1234;
const LONG_BYTES: usize = 40_000;
/// Small enough that ~400 KB of json-file entries rotate several times, with `max-file` large
/// enough that Docker deletes nothing before the agent reads it.
const MAX_SIZE: &str = "64k";
const MAX_FILE: u32 = 20;

fn runnel_bin() -> &'static str {
    env!("CARGO_BIN_EXE_runnel")
}

/// The lines the container prints, in order.
fn expected_lines() -> Vec<String> {
    let mut out = Vec::new();
    for i in 1..=LINES {
        out.push(format!(
            "runnel-e2e line {i} of {LINES} {}",
            "p".repeat((i % 50) as usize)
        ));
        if i == LONG_AFTER {
            out.push(format!("long-line {}", "x".repeat(LONG_BYTES)));
        }
    }
    out
}

/// The busybox shell script printing [`expected_lines`].
fn script() -> String {
    format!(
        "i=1; while [ $i -le {LINES} ]; do \
           pad=$(head -c $((i % 50)) /dev/zero | tr '\\000' p); \
           echo \"runnel-e2e line $i of {LINES} $pad\"; \
           if [ $i -eq {LONG_AFTER} ]; then printf 'long-line '; head -c {LONG_BYTES} /dev/zero | tr '\\000' x; echo; fi; \
           i=$((i+1)); done"
    )
}

fn wait_for_docker_logs(name: &str, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = docker(&["logs", name]);
        let got = String::from_utf8_lossy(&out.stdout).lines().count();
        if got >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "docker logs shows {got} of {want} lines after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Run a child to completion within `limit`, killing it on timeout.
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    use std::io::Read;
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    // Drain both pipes while waiting: a child writing more than a pipe buffer would block.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{shown} did not finish within {limit:?}\nstderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn runnel_logs(data_dir: &Path, target: &str) -> Vec<String> {
    let out = run_with_timeout(
        Command::new(runnel_bin())
            .arg("logs")
            .arg("--data-dir")
            .arg(data_dir)
            .arg(target),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "runnel logs {target} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_same_lines(got: &[String], want: &[String], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "{what}: line {} differs:\n got: {:.200}\nwant: {:.200}",
            i + 1,
            g,
            w
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: line count (every line exactly once)"
    );
}

#[test]
fn docker_rotated_and_split_json_file_logs_reach_the_index_exactly_once_in_order() {
    let Some(containers_dir) =
        docker_root_or_fail("Docker json-file rotation and splitting through the agent")
    else {
        return;
    };
    let name = unique("runnel-e2e");
    let guard = Cleanup {
        containers: vec![name.clone()],
        image: format!("{name}:busybox"),
    };
    build_busybox_image(&guard.image);

    let max_size = format!("max-size={MAX_SIZE}");
    let max_file = format!("max-file={MAX_FILE}");
    let script = script();
    let id = docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--log-driver",
        "json-file",
        "--log-opt",
        &max_size,
        "--log-opt",
        &max_file,
        &guard.image,
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(
        id.len(),
        64,
        "docker run printed {id:?}, not a container id"
    );
    let status = docker_ok(&["wait", &name]);
    assert_eq!(status, "0", "the container's script failed");
    let want = expected_lines();
    wait_for_docker_logs(&name, want.len());

    // Docker itself rotated the file, and deleted nothing (max-file is not reached).
    let dir = containers_dir.join(&id);
    let live = dir.join(format!("{id}-json.log"));
    let rotated = |n: u32| PathBuf::from(format!("{}.{n}", live.display()));
    assert!(
        live.is_file(),
        "{} is missing: is the DockerRootDir right?",
        live.display()
    );
    assert!(
        rotated(1).is_file(),
        "Docker did not rotate: {} is missing",
        rotated(1).display()
    );
    assert!(
        rotated(2).is_file(),
        "expected several rotations: {} is missing",
        rotated(2).display()
    );
    assert!(
        !rotated(MAX_FILE - 1).exists(),
        "max-file reached: Docker may have deleted lines before ingestion; lower LINES or raise MAX_FILE"
    );

    // Ingest the whole engine directory, as the DaemonSet does.
    let tmp = tempfile::Builder::new()
        .prefix("runnel-docker-e2e-")
        .tempdir()
        .unwrap();
    let data_dir = tmp.path().join("data");
    let config = tmp.path().join("runnel.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\nnode_name: docker-e2e\ninputs:\n  docker: {{ enabled: true, root: {} }}\n  \
             cri: {{ enabled: false, root: {} }}\nhttp: {{ listen: \"127.0.0.1:0\" }}\nmetrics: {{ enabled: false }}\n",
            data_dir.display(),
            containers_dir.display(),
            tmp.path().join("no-cri").display(),
        ),
    )
    .unwrap();
    let out = run_with_timeout(
        Command::new(runnel_bin())
            .args(["agent", "--oneshot", "--config"])
            .arg(&config),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "runnel agent --oneshot failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // By name (Docker's `/name` without the slash) and by id prefix: the same, complete output.
    let by_name = runnel_logs(&data_dir, &name);
    assert_same_lines(&by_name, &want, "runnel logs <name>");
    let by_id = runnel_logs(&data_dir, &id[..12]);
    assert_same_lines(&by_id, &want, "runnel logs <id prefix>");
    drop(guard);
}
