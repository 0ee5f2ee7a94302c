//! Minimal reproductions of agent bugs the chaos soak found, each driving the real binary
//! deterministically. A reproduction of a bug still open is `#[ignore]`d with a reason that
//! names it (run those with `-- --ignored`); the `ignore` goes with the fix.

use runnel_chaos::agent::Supervisor;
use runnel_chaos::containers::{Profile, Runtime, Spec};
use runnel_chaos::metrics::family_sum;
use runnel_chaos::rotation::{After, Rotator, Scheme};
use runnel_chaos::stop::wait_for;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Setup {
    dir: tempfile::TempDir,
    sup: Supervisor,
}

fn start() -> Setup {
    let runnel = runnel_chaos::binary::runnel_binary().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::Builder::new()
        .prefix("runnel-found-")
        .tempdir()
        .unwrap();
    let p = dir.path();
    for d in ["docker", "pods", "data"] {
        std::fs::create_dir_all(p.join(d)).unwrap();
    }
    let config = p.join("runnel.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {data}\ninputs:\n  docker: {{ enabled: true, root: {docker} }}\n  \
             cri: {{ enabled: true, root: {pods} }}\n  rescan_interval: 1s\n\
             index: {{ max_age: 36500d }}\nhttp: {{ listen: \"127.0.0.1:0\" }}\n\
             metrics: {{ enabled: false }}\nlog: {{ format: text }}\n",
            data = p.join("data").display(),
            docker = p.join("docker").display(),
            pods = p.join("pods").display(),
        ),
    )
    .unwrap();
    let sup = Supervisor::new(&runnel, &config, &p.join("agent.log"));
    sup.start().unwrap_or_else(|e| panic!("{e}"));
    Setup { dir, sup }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Wait until the agent has read `bytes` bytes of input in all.
fn wait_read(s: &Setup, bytes: u64) {
    let read = wait_for(Duration::from_secs(30), || {
        s.sup
            .get("/metrics")
            .is_ok_and(|(_, page)| family_sum(&page, "runnel_input_bytes_total") as u64 >= bytes)
    });
    assert!(read, "the agent did not read {bytes} bytes within 30 s");
}

/// Wait until the index holds `n` records in all.
fn wait_records(s: &Setup, n: u64) -> bool {
    wait_for(Duration::from_secs(30), || {
        s.sup.get("/v1/sources").is_ok_and(|(_, body)| {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let total: u64 = v["sources"]
                .as_array()
                .map(|a| a.iter().map(|s| s["next_seq"].as_u64().unwrap_or(0)).sum())
                .unwrap_or(0);
            total >= n
        })
    })
}

fn logs(s: &Setup, args: &[&str]) -> Vec<String> {
    let runnel = runnel_chaos::binary::runnel_binary().unwrap();
    let out = std::process::Command::new(runnel)
        .arg("logs")
        .arg("--data-dir")
        .arg(s.dir.path().join("data/index"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.to_string())
        .collect()
}

/// copytruncate as logrotate does it, with the runtime's last write landing just before the
/// copy: the copy gets `tail`, which the agent never sees in the live file.
fn copytruncate_with_unread_tail(live: &Path, tail: &str) {
    let copy = PathBuf::from(format!("{}.1", live.display()));
    std::fs::copy(live, &copy).unwrap();
    append(&copy, tail);
    std::fs::OpenOptions::new()
        .write(true)
        .open(live)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn long_line() -> String {
    (0..40_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect()
}

/// A long line's first two fragments are read from the live file; copytruncate leaves the
/// third only in the copy. The line must be stored whole, once.
fn fragments_split_by_copytruncate(docker: bool) {
    let s = start();
    let (live, pod) = live_log(&s, docker);
    let t = "2024-05-01T12:00:00.000000001Z";
    let lines = |msg: &str| {
        if docker {
            runnel_chaos::lines::docker_lines(msg, "stdout", t)
        } else {
            runnel_chaos::lines::cri_lines(msg, "stdout", || t.to_string())
        }
    };
    let line = long_line();
    let frags = lines(&format!("first-line {line}"));
    assert_eq!(frags.len(), 3);
    let head = lines("before").concat();
    append(&live, &head);
    append(&live, &frags[0]);
    append(&live, &frags[1]);
    wait_read(&s, (head.len() + frags[0].len() + frags[1].len()) as u64);
    copytruncate_with_unread_tail(&live, &frags[2]);
    append(&live, &lines("after").concat());
    let stored = wait_records(&s, 3);
    s.sup.stop().unwrap();
    let got = logs(&s, &["-n", "ns", pod]);
    let want = vec![
        "before".to_string(),
        format!("first-line {line}"),
        "after".to_string(),
    ];
    let short: Vec<String> = got.iter().map(|l| l.chars().take(40).collect()).collect();
    assert!(stored && got == want, "stored (first 40 chars): {short:?}");
}

#[test]
fn docker_fragments_split_by_copytruncate_are_merged_from_the_copy() {
    fragments_split_by_copytruncate(true);
}

#[test]
fn cri_partial_lines_split_by_copytruncate_are_merged_from_the_copy() {
    fragments_split_by_copytruncate(false);
}

/// Lines `from..to`, one each, in the runtime's format.
fn block(docker: bool, from: u64, to: u64) -> String {
    (from..to)
        .map(|i| {
            let t = format!("2024-05-01T12:00:00.{i:09}Z");
            let msg = format!("line {i:05}");
            if docker {
                runnel_chaos::lines::docker_lines(&msg, "stdout", &t).concat()
            } else {
                format!("{t} stdout F {msg}\n")
            }
        })
        .collect()
}

fn seqs(got: &[String]) -> Vec<u64> {
    got.iter()
        .filter_map(|l| l.strip_prefix("line ").and_then(|n| n.parse().ok()))
        .collect()
}

/// A live log of the runtime: Docker (`ns/dpod`) or CRI (`ns/pod`).
fn live_log(s: &Setup, docker: bool) -> (PathBuf, &'static str) {
    if docker {
        let id = "cd".repeat(32);
        let live = s
            .dir
            .path()
            .join("docker")
            .join(&id)
            .join(format!("{id}-json.log"));
        runnel_chaos::containers::prepare(&Spec {
            name: "d".into(),
            runtime: Runtime::Docker,
            scheme: Scheme::CopyTruncate,
            namespace: "ns".into(),
            pod: "dpod".into(),
            container: "app".into(),
            live: live.clone(),
            max_bytes: 0,
            keep: 1,
            profile: Profile::Steady(1.0),
        })
        .unwrap();
        (live, "dpod")
    } else {
        let dir = s.dir.path().join("pods/ns_pod_uid/app");
        std::fs::create_dir_all(&dir).unwrap();
        (dir.join("0.log"), "pod")
    }
}

/// copytruncate while lines the agent has not read yet are still in the file, then the
/// runtime writes on into the truncated live file; with `restart`, the agent is down while this
/// happens. Every line must be stored once, in the order written.
fn copytruncate_then_burst(docker: bool, restart: bool) {
    let s = start();
    let (live, pod) = live_log(&s, docker);
    append(&live, &block(docker, 0, 20));
    assert!(wait_records(&s, 20), "the first 20 lines were not stored");
    if restart {
        s.sup.kill();
    }
    copytruncate_with_unread_tail(&live, &block(docker, 20, 24));
    append(&live, &block(docker, 24, 400));
    if restart {
        s.sup.start().unwrap_or_else(|e| panic!("{e}"));
    }
    let stored = wait_records(&s, 400);
    s.sup.stop().unwrap();
    let got = seqs(&logs(&s, &["-n", "ns", pod]));
    let jumps: Vec<(u64, u64)> = got
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        stored && got == (0..400).collect::<Vec<u64>>(),
        "{} lines stored; jumps in the order: {jumps:?}",
        got.len()
    );
}

#[test]
fn copytruncate_with_unread_lines_then_a_burst_keeps_the_order() {
    copytruncate_then_burst(false, false);
    copytruncate_then_burst(true, false);
}

#[test]
fn copytruncate_while_the_agent_is_down_then_a_burst_keeps_the_order() {
    copytruncate_then_burst(false, true);
    copytruncate_then_burst(true, true);
}

/// A writer that rotates by copytruncate in the middle of bursts (lines at full speed), the
/// agent reading along: no kills, no other fault. Every line once, in order.
fn copytruncate_during_bursts(docker: bool, pause_ms: u64) {
    let s = start();
    let (live, pod) = live_log(&s, docker);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&live)
        .unwrap();
    let (rotations, per_file) = (30u64, 150u64);
    // logrotate's numbering: the newest copy is `.1`, older ones shift up; none deleted.
    let mut rot = Rotator::new(Scheme::CopyTruncate, &live, rotations as usize + 1);
    let mut deleted = Vec::new();
    for r in 0..rotations {
        for i in r * per_file..(r + 1) * per_file {
            f.write_all(block(docker, i, i + 1).as_bytes()).unwrap();
            rot.wrote(i);
        }
        assert_eq!(rot.rotate(&mut deleted).unwrap(), After::Truncate);
        f.set_len(0).unwrap();
        // The runtime writes on between rotations (a pause is not a wait for the agent).
        std::thread::sleep(Duration::from_millis(pause_ms));
    }
    let n = rotations * per_file;
    let stored = wait_records(&s, n);
    s.sup.stop().unwrap();
    let got = seqs(&logs(&s, &["-n", "ns", pod]));
    let jumps: Vec<(u64, u64)> = got
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .map(|w| (w[0], w[1]))
        .collect();
    let ok = stored && got == (0..n).collect::<Vec<u64>>();
    let log = if ok { String::new() } else { keep_log(&s) };
    assert!(
        ok,
        "{} of {n} lines stored; jumps in the order: {jumps:?}; agent log kept in {log}",
        got.len()
    );
}

/// Copy the agent's log out of the test's directory (which is removed) for a failure message.
fn keep_log(s: &Setup) -> String {
    let kept = std::env::temp_dir().join(format!(
        "runnel-found-agent-{}-{}.log",
        std::process::id(),
        s.dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
    ));
    match std::fs::copy(s.dir.path().join("agent.log"), &kept) {
        Ok(_) => kept.display().to_string(),
        Err(e) => format!("(not kept: {e})"),
    }
}

/// Time between two rotations.
const PAUSE_MS: u64 = 200;

#[test]
fn docker_copytruncate_during_bursts_keeps_every_line_in_order() {
    copytruncate_during_bursts(true, PAUSE_MS);
}

#[test]
fn cri_copytruncate_during_bursts_keeps_every_line_in_order() {
    copytruncate_during_bursts(false, PAUSE_MS);
}

/// Dead letters written while the disk is nearly full: the append that does not fit fails
/// half-way and is taken back; the sink holds the batch, counts the failed write and retries,
/// so once space is back that dead letter and the next are whole lines of their own, and
/// nothing was counted as dead-lettered before it was in the file (the hour soak lost 5 dead
/// letters this way when a failed write was counted and dropped).
#[test]
fn a_dead_letter_cut_short_by_a_full_disk_does_not_corrupt_the_next_one() {
    use runnel_chaos::disk::Ballast;
    let runnel = runnel_chaos::binary::runnel_binary().unwrap_or_else(|e| panic!("{e}"));
    // Declared first, dropped last: the agent stops, then the tmpfs goes, then its mount point.
    let mounted = runnel_chaos::disk::mount_on_temp_dir("runnel-found-disk-", 16 << 20)
        .unwrap_or_else(|e| panic!("{e}"));
    let disk = &mounted.disk;
    let dir = tempfile::Builder::new()
        .prefix("runnel-found-")
        .tempdir()
        .unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("pods/ns_pod_uid/app")).unwrap();
    let osmem = runnel_chaos::server::Osmem::start().unwrap_or_else(|e| panic!("{e}"));
    let proxy = runnel_chaos::proxy::Proxy::start(&osmem.url, "");
    proxy.state.lock().unwrap().down = true;
    let config = p.join("runnel.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {data}\ninputs:\n  docker: {{ enabled: false }}\n  \
             cri: {{ enabled: true, root: {pods} }}\n  rescan_interval: 1s\n\
             index: {{ max_age: 36500d }}\nhttp: {{ listen: \"127.0.0.1:0\" }}\n\
             metrics: {{ enabled: false }}\nlog: {{ format: text }}\n\
             sinks:\n  elasticsearch:\n    enabled: true\n    endpoints: [\"{url}\"]\n    \
             index: \"found\"\n    batch: {{ max_docs: 1, timeout: 50ms }}\n    \
             retry: {{ initial: 50ms, max: 500ms }}\n",
            data = disk.path().join("data").display(),
            pods = p.join("pods").display(),
            url = proxy.url,
        ),
    )
    .unwrap();
    let sup = Supervisor::new(&runnel, &config, &p.join("agent.log"));
    sup.start().unwrap_or_else(|e| panic!("{e}"));
    let live = p.join("pods/ns_pod_uid/app/0.log");
    let t = "2024-05-01T12:00:00.000000001Z";
    // Bigger than the page left free below, so its append is cut short.
    let big = format!("POISON-A {}", "x".repeat(12_000));
    append(&live, &format!("{t} stdout F {big}\n"));
    let s = Setup { dir, sup };
    assert!(wait_records(&s, 1), "the first poison line was not stored");
    let mut ballast = Ballast::fill(&disk.path().join("ballast")).unwrap();
    ballast.give_back(8192).unwrap();
    let dead = |n: u64| {
        wait_for(Duration::from_secs(30), || {
            s.sup.get("/metrics").is_ok_and(|(_, page)| {
                family_sum(&page, "runnel_sink_es_documents_dead_lettered_total") as u64 >= n
            })
        })
    };
    proxy.state.lock().unwrap().down = false;
    let mut early = None;
    assert!(
        wait_for(Duration::from_secs(30), || {
            s.sup.get("/metrics").is_ok_and(|(_, page)| {
                early = Some(family_sum(
                    &page,
                    "runnel_sink_es_documents_dead_lettered_total",
                ));
                family_sum(&page, "runnel_sink_es_dead_letter_write_errors_total") >= 2.0
            })
        }),
        "the dead-letter write on a full disk never failed and was never retried"
    );
    assert_eq!(
        early,
        Some(0.0),
        "a dead letter was counted before it was in the file"
    );
    ballast.remove();
    assert!(
        dead(1),
        "the first poison document was not dead-lettered once space returned"
    );
    append(&live, &format!("{t} stdout F POISON-B small\n"));
    assert!(dead(2), "the second poison document was not dead-lettered");
    s.sup.stop().unwrap();
    let file = disk
        .path()
        .join("data/sinks/elasticsearch/dead_letter.ndjson");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let unreadable: Vec<String> = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .map(|l| l.chars().take(120).collect())
        .collect();
    assert!(
        unreadable.is_empty() && text.contains("POISON-A x") && text.contains("POISON-B small"),
        "dead-letter lines that are not JSON: {unreadable:?}"
    );
}
