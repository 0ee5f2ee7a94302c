//! Exactly once into the index, end to end with the real binary: lines are written while the
//! agent runs, files rotate by all three schemes (Docker rename `.1/.2`, kubelet rename to
//! `<restart>.log.<YYYYMMDD-HHMMSS>` with gzip of older files, copytruncate), the agent is
//! SIGKILLed and restarted several times mid-stream — and every line is in the index exactly
//! once, in order, with partial lines merged and over-long lines truncated and flagged.

mod support;

use flate2::write::GzEncoder;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const LINES: u64 = 3000;
const ROTATE_EVERY: u64 = 400;

fn gzip_file(path: &Path) {
    let data = std::fs::read(path).unwrap();
    let gz_path = PathBuf::from(format!("{}.gz", path.display()));
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &data).unwrap();
    // Write the compressed copy under a temporary name first, as logrotate and the kubelet do.
    let tmp = PathBuf::from(format!("{}.tmp", gz_path.display()));
    std::fs::write(&tmp, enc.finish().unwrap()).unwrap();
    std::fs::rename(&tmp, &gz_path).unwrap();
    std::fs::remove_file(path).unwrap();
}

/// Docker: `<id>-json.log` → `.1`, older ones shift to `.2`, `.3` …
fn docker_rotate(live: &Path, generation: u64) {
    for n in (1..generation + 1).rev() {
        let from = PathBuf::from(format!("{}.{n}", live.display()));
        if from.exists() {
            std::fs::rename(&from, format!("{}.{}", live.display(), n + 1)).unwrap();
        }
    }
    std::fs::rename(live, format!("{}.1", live.display())).unwrap();
}

/// kubelet: `0.log` → `0.log.<YYYYMMDD-HHMMSS>`; the previous rotated file is gzipped.
fn kubelet_rotate(live: &Path, generation: u64, previous: &mut Option<PathBuf>) {
    let rotated = PathBuf::from(format!(
        "{}.20240501-12{:02}{:02}",
        live.display(),
        generation / 60,
        generation % 60
    ));
    std::fs::rename(live, &rotated).unwrap();
    if let Some(prev) = previous.replace(rotated) {
        gzip_file(&prev);
    }
}

/// copytruncate: copy the live file aside, then truncate it in place.
fn copy_truncate(live: &Path, generation: u64) {
    std::fs::copy(live, format!("{}.{generation}", live.display())).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(live)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn message(source: &str, i: u64) -> String {
    if i % 500 == 250 {
        // Over the 4 KiB line limit configured below: stored truncated and flagged.
        format!("{source} line {i} long {}", "L".repeat(6000))
    } else {
        format!("{source} line {i} {}", "x".repeat((i % 13) as usize * 7))
    }
}

struct Files {
    docker: PathBuf,
    kubelet: PathBuf,
    copy: PathBuf,
}

fn writer(files: &Files, stop: &AtomicBool) {
    let mut previous = None;
    for i in 0..LINES {
        let time = time_at(i);
        let d = message("docker", i);
        if i % 100 == 50 {
            // A json-file line split into fragments (no trailing \n but the last).
            let (a, b) = d.split_at(10);
            let text =
                docker_line(a, "stdout", &time) + &docker_line(&format!("{b}\n"), "stdout", &time);
            append(&files.docker, &text);
        } else {
            append(
                &files.docker,
                &docker_line(&format!("{d}\n"), "stdout", &time),
            );
        }
        let k = message("kubelet", i);
        if i % 100 == 60 {
            let (a, b) = k.split_at(12);
            append(
                &files.kubelet,
                &(cri_line(&time, "stdout", "P", a) + &cri_line(&time, "stdout", "F", b)),
            );
        } else {
            append(&files.kubelet, &cri_line(&time, "stderr", "F", &k));
        }
        append(
            &files.copy,
            &cri_line(&time, "stdout", "F", &message("copy", i)),
        );
        if i % ROTATE_EVERY == ROTATE_EVERY - 1 {
            let generation = i / ROTATE_EVERY + 1;
            docker_rotate(&files.docker, generation);
            kubelet_rotate(&files.kubelet, generation, &mut previous);
            copy_truncate(&files.copy, generation);
        }
        if i % 4 == 0 {
            // About 2.5 s of writing in all: long enough for several kills and restarts.
            std::thread::sleep(Duration::from_millis(3));
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

fn expected(source: &str) -> String {
    let mut out = String::new();
    for i in 0..LINES {
        let m = message(source, i);
        out.push_str(if m.len() > 4096 { &m[..4096] } else { &m });
        out.push('\n');
    }
    out
}

#[test]
fn sigkill_and_rotation_lose_and_duplicate_nothing() {
    let node = Node::new();
    // The lines are dated 2024: without a long max_age the index's retention pass (every 5 s)
    // deletes their sealed segments as soon as an agent lives that long (a loaded machine),
    // and the counts below drop. Retention is tested elsewhere; here it must keep everything.
    let config = node.config("index: { segment_max_bytes: 256KiB, max_age: 36500d }\n");
    // A small line limit so truncation is exercised; small segments so sealing happens mid-run.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  rescan_interval: 1s\n",
        "  rescan_interval: 1s\n  max_line_bytes: 4KiB\n",
    );
    std::fs::write(&config, text).unwrap();
    let files = Files {
        docker: node.docker_container(&container_id(1), "rotating-docker", &[]),
        kubelet: node.cri_log("ns1", "kubelet-rot", "app", 0),
        copy: node.cri_log("ns1", "copytrunc", "app", 0),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut agent = Some(Agent::start(&config));
    let writer_thread = {
        let (stop, done) = (stop.clone(), done.clone());
        std::thread::spawn(move || {
            writer(&files, &stop);
            done.store(true, Ordering::Release);
        })
    };
    // Kill -9 and restart the agent at uneven moments while lines are being written.
    let mut kills = 0;
    for pause_ms in [150u64, 410, 230, 520, 90] {
        std::thread::sleep(Duration::from_millis(pause_ms));
        if done.load(Ordering::Acquire) {
            break;
        }
        if let Some(a) = agent.take() {
            a.kill9();
            kills += 1;
        }
        agent = Some(Agent::start(&config));
    }
    let finished = eventually(Duration::from_secs(120), || done.load(Ordering::Acquire));
    stop.store(true, Ordering::Relaxed);
    writer_thread.join().unwrap();
    assert!(finished, "the writer did not finish");
    assert!(
        kills >= 2,
        "the agent was killed only {kills} times before the writer finished; slow the writer"
    );

    // Let the last agent catch up, then stop it cleanly; a oneshot pass must find nothing new.
    let a = agent.take().unwrap();
    let mut counts = String::new();
    let caught_up = eventually(Duration::from_secs(60), || {
        let (_, body) = a.get("/v1/sources");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        counts = v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{}={} ", s["key"], s["records"]))
            .collect();
        let total: u64 = v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["records"].as_u64().unwrap())
            .sum();
        total >= 3 * LINES
    });
    // The input counters, for the failure message.
    let (_, metrics) = a.get("/metrics");
    let metrics: String = metrics
        .lines()
        .filter(|l| l.starts_with("runnel_in") && !l.ends_with(" 0"))
        .map(|l| format!("{l}\n"))
        .collect();
    a.stop();
    assert!(
        caught_up,
        "the agent did not ingest all {} lines: {counts}\n{metrics}",
        3 * LINES
    );
    oneshot(&config);

    assert_eq!(
        logs_from_dir(&node, &["rotating-docker"]),
        expected("docker"),
        "docker (rename rotation)"
    );
    assert_eq!(
        logs_from_dir(&node, &["-n", "ns1", "kubelet-rot"]),
        expected("kubelet"),
        "kubelet rotation + gzip"
    );
    assert_eq!(
        logs_from_dir(&node, &["-n", "ns1", "copytrunc"]),
        expected("copy"),
        "copytruncate"
    );
    check_flags(&node);
}

/// The stored flags of every record of the source whose identity matches `pick`, in order.
fn flags_of(
    node: &Node,
    pick: impl Fn(&runnel_index::SourceIdentity) -> bool,
) -> Vec<(bool, bool)> {
    let store = runnel_index::Store::open_read_only(&node.index_dir()).unwrap();
    let src = store
        .sources()
        .into_iter()
        .find(|s| pick(&s.identity))
        .expect("source in the index");
    store
        .read_from(&src.key, 0, usize::MAX, usize::MAX)
        .unwrap()
        .records
        .iter()
        .map(|r| (r.flags.partial_merged(), r.flags.truncated()))
        .collect()
}

/// Which lines the writer split into fragments or made over-long, as (merged, truncated).
fn expected_flags(split_at: Option<u64>) -> Vec<(bool, bool)> {
    (0..LINES)
        .map(|i| (Some(i % 100) == split_at, i % 500 == 250))
        .collect()
}

fn check_flags(node: &Node) {
    assert_eq!(
        flags_of(node, |id| id.container_name.as_deref()
            == Some("rotating-docker")),
        expected_flags(Some(50)),
        "docker: json-file fragments merged, long lines flagged truncated"
    );
    assert_eq!(
        flags_of(node, |id| id.pod.as_deref() == Some("kubelet-rot")),
        expected_flags(Some(60)),
        "kubelet: CRI P fragments merged, long lines flagged truncated"
    );
    assert_eq!(
        flags_of(node, |id| id.pod.as_deref() == Some("copytrunc")),
        expected_flags(None),
        "copytruncate: long lines flagged truncated"
    );
}
