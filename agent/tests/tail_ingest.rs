//! The tailer against real files in temp dirs and a real index: discovery, identity, rotation by
//! rename (Docker `.1/.2`, kubelet timestamps), gzip (also of a file never read), copytruncate,
//! truncation, restart without loss or duplicate, symlink dedupe, include/exclude, late roots.

mod support;

use support::append;

use flate2::write::GzEncoder;
use runnel_agent::tail::Ingest;
use runnel_index::{Limits, Store};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("runnel-tail-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        std::fs::create_dir_all(dir.path().join("pods")).unwrap();
        Env { dir }
    }
    fn docker_root(&self) -> PathBuf {
        self.dir.path().join("docker")
    }
    fn cri_root(&self) -> PathBuf {
        self.dir.path().join("pods")
    }
    fn config(&self) -> runnel_config::Config {
        let mut cfg = runnel_config::Config::default();
        let i = &mut cfg.inputs;
        i.docker.enabled = true;
        i.docker.root = self.docker_root();
        i.cri.enabled = true;
        i.cri.root = self.cri_root();
        i.max_line_bytes = 1 << 20;
        i.read_buffer_bytes = 64 << 10;
        i.rescan_interval = Duration::from_secs(10);
        i.max_open_rotated_per_source = 4;
        i.queue_max_bytes = 16 << 20;
        i.fingerprint_bytes = 1024;
        cfg
    }
    fn store(&self) -> Arc<Store> {
        Arc::new(Store::open(&self.dir.path().join("index"), Limits::default()).unwrap())
    }
    fn cri_log(&self, ns: &str, pod: &str, container: &str, restart: u32) -> PathBuf {
        let d = self
            .cri_root()
            .join(format!("{ns}_{pod}_uid-{pod}"))
            .join(container);
        std::fs::create_dir_all(&d).unwrap();
        d.join(format!("{restart}.log"))
    }
    fn docker_log(&self, id: &str, name: &str, labels: &[(&str, &str)]) -> PathBuf {
        let d = self.docker_root().join(id);
        std::fs::create_dir_all(&d).unwrap();
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), (*v).into()))
            .collect();
        let cfg = serde_json::json!({"ID": id, "Name": format!("/{name}"), "Config": {"Image": "app:1", "Labels": labels}, "Image": "sha256:ab"});
        std::fs::write(d.join("config.v2.json"), cfg.to_string()).unwrap();
        d.join(format!("{id}-json.log"))
    }
}

fn cid(n: u32) -> String {
    format!("{n:08x}").repeat(8)
}

fn time(i: u64) -> String {
    format!(
        "2024-05-01T12:{:02}:{:02}.{:09}Z",
        i / 60 % 60,
        i % 60,
        i * 1000 + 1
    )
}

fn cri(i: u64, msg: &str) -> String {
    format!("{} stdout F {msg}\n", time(i))
}

fn docker(i: u64, msg: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({"log": format!("{msg}\n"), "stream": "stdout", "time": time(i)})
    )
}

/// The gzipped copy of `p` beside it (the plain file stays: a gzip in progress).
fn gzip_copy(p: &Path) -> PathBuf {
    let data = std::fs::read(p).unwrap();
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&data).unwrap();
    let gz = PathBuf::from(format!("{}.gz", p.display()));
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    gz
}

fn gzip(p: &Path) -> PathBuf {
    let gz = gzip_copy(p);
    std::fs::remove_file(p).unwrap();
    gz
}

fn messages(store: &Store, key: &str) -> Vec<String> {
    if !store.sources().iter().any(|s| s.key == key) {
        return Vec::new();
    }
    let b = store.read_from(key, 0, usize::MAX, usize::MAX).unwrap();
    b.records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.message).into_owned())
        .collect()
}

/// One oneshot pass of the tailer over what is on disk now.
fn read_to_eof(env: &Env, store: &Arc<Store>) {
    Ingest::start(&env.config(), store.clone())
        .unwrap()
        .run_until_eof()
        .unwrap();
}

fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn names(prefix: &str, r: std::ops::Range<u64>) -> Vec<String> {
    r.map(|i| format!("{prefix}{i}")).collect()
}

fn cri_key(ns: &str, pod: &str, c: &str, r: u32) -> String {
    format!("cri:{ns}_{pod}_uid-{pod}/{c}/{r}")
}

#[test]
fn oneshot_reads_both_layouts_with_identity() {
    let env = Env::new();
    let id = cid(1);
    let d = env.docker_log(
        &id,
        "web",
        &[
            ("io.kubernetes.pod.name", "web-0"),
            ("io.kubernetes.pod.namespace", "shop"),
            ("io.kubernetes.container.name", "app"),
            ("io.kubernetes.pod.uid", "u1"),
            ("annotation.io.kubernetes.container.restartCount", "3"),
        ],
    );
    append(&d, &(docker(0, "d0") + &docker(1, "d1")));
    let c = env.cri_log("ns1", "pod-a", "side", 2);
    append(&c, &(cri(0, "c0") + "garbage\n" + &cri(1, "c1")));
    // No config.v2.json: identity from the id only, counted.
    let bare = cid(2);
    std::fs::create_dir_all(env.docker_root().join(&bare)).unwrap();
    append(
        &env.docker_root()
            .join(&bare)
            .join(format!("{bare}-json.log")),
        &docker(0, "bare"),
    );
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    let mut metrics = String::new();
    ing.render_metrics(&mut metrics);
    ing.run_until_eof().unwrap();
    assert_eq!(messages(&store, &format!("docker:{id}")), ["d0", "d1"]);
    assert_eq!(
        messages(&store, &cri_key("ns1", "pod-a", "side", 2)),
        ["c0", "c1"]
    );
    assert_eq!(messages(&store, &format!("docker:{bare}")), ["bare"]);
    let srcs = store.sources();
    let dk = srcs
        .iter()
        .find(|s| s.key == format!("docker:{id}"))
        .unwrap();
    assert_eq!(dk.identity.pod.as_deref(), Some("web-0"));
    assert_eq!(dk.identity.namespace.as_deref(), Some("shop"));
    assert_eq!(dk.identity.container.as_deref(), Some("app"));
    assert_eq!(dk.identity.container_name.as_deref(), Some("web"));
    assert_eq!(dk.identity.restart, Some(3));
    assert_eq!(dk.identity.image.as_deref(), Some("app:1"));
    let ck = srcs
        .iter()
        .find(|s| s.key == cri_key("ns1", "pod-a", "side", 2))
        .unwrap();
    assert_eq!(
        (
            ck.identity.namespace.as_deref(),
            ck.identity.pod.as_deref(),
            ck.identity.pod_uid.as_deref()
        ),
        (Some("ns1"), Some("pod-a"), Some("uid-pod-a"))
    );
    assert_eq!(
        (ck.identity.container.as_deref(), ck.identity.restart),
        (Some("side"), Some(2))
    );
    assert!(metrics.contains("# TYPE runnel_input_bytes_total counter"));
}

#[test]
fn metrics_count_parse_errors_and_identity_fallbacks() {
    let env = Env::new();
    let c = env.cri_log("ns", "p", "c", 0);
    append(
        &c,
        &(cri(0, "a") + "garbage\n" + "also bad\n" + &cri(1, "b")),
    );
    let bare = cid(9);
    std::fs::create_dir_all(env.docker_root().join(&bare)).unwrap();
    std::fs::write(
        env.docker_root().join(&bare).join("config.v2.json"),
        "{not json",
    )
    .unwrap();
    append(
        &env.docker_root()
            .join(&bare)
            .join(format!("{bare}-json.log")),
        &docker(0, "x"),
    );
    // And a container without any config.v2.json.
    let missing = cid(10);
    std::fs::create_dir_all(env.docker_root().join(&missing)).unwrap();
    append(
        &env.docker_root()
            .join(&missing)
            .join(format!("{missing}-json.log")),
        &docker(0, "y"),
    );
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    assert!(eventually(Duration::from_secs(30), || ing
        .stats()
        .input(runnel_agent::tail::Input::Cri)
        .parse_errors
        .load(Ordering::Relaxed)
        == 2));
    let mut m = String::new();
    ing.render_metrics(&mut m);
    assert!(
        m.contains("runnel_input_parse_errors_total{input=\"cri\"} 2"),
        "{m}"
    );
    assert!(
        eventually(Duration::from_secs(30), || ing
            .stats()
            .input(runnel_agent::tail::Input::Docker)
            .identity_fallbacks
            .load(Ordering::Relaxed)
            == 2),
        "a bad and a missing config.v2.json are both counted"
    );
    let mut m = String::new();
    ing.render_metrics(&mut m);
    assert!(
        m.contains("runnel_input_identity_fallbacks_total{input=\"docker\"} 2"),
        "{m}"
    );
    ing.shutdown();
    assert_eq!(messages(&store, &cri_key("ns", "p", "c", 0)), ["a", "b"]);
}

/// An `Ingest` over `env` that is ready, its periodic rescan an hour away: only inotify can
/// find what comes later within a test's deadline.
fn start_with_rescan_an_hour_away(env: &Env) -> (Arc<Store>, Ingest) {
    let store = env.store();
    let mut cfg = env.config();
    cfg.inputs.rescan_interval = Duration::from_secs(3600);
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    ing.wait_ready();
    (store, ing)
}

#[test]
fn new_container_file_is_picked_up_by_inotify_without_a_rescan() {
    let env = Env::new();
    // With the periodic rescan an hour away, only the inotify watch can find the new files
    // within the deadline; how long it took is printed, not asserted (timing is for benches).
    let (store, ing) = start_with_rescan_an_hour_away(&env);
    let t0 = Instant::now();
    let c = env.cri_log("ns", "late", "app", 0);
    append(&c, &cri(0, "hello"));
    let key = cri_key("ns", "late", "app", 0);
    assert!(eventually(Duration::from_secs(30), || messages(
        &store, &key
    ) == ["hello"]));
    eprintln!("new CRI container read after {:?}", t0.elapsed());
    let id = cid(3);
    let t1 = Instant::now();
    append(&env.docker_log(&id, "x", &[]), &docker(0, "hi"));
    assert!(eventually(Duration::from_secs(30), || messages(
        &store,
        &format!("docker:{id}")
    ) == ["hi"]));
    eprintln!("new Docker container read after {:?}", t1.elapsed());
    ing.shutdown();
}

#[test]
fn a_log_root_deleted_and_made_again_is_watched_again() {
    let env = Env::new();
    // The periodic rescan is an hour away: only a watch on the new root finds its files.
    let (store, ing) = start_with_rescan_an_hour_away(&env);
    append(&env.cri_log("ns", "before", "app", 0), &cri(0, "a"));
    let before = cri_key("ns", "before", "app", 0);
    assert!(eventually(Duration::from_secs(30), || messages(
        &store, &before
    ) == ["a"]));
    // The root goes (a node's runtime reinstalled, a volume remounted) and comes back as a
    // new directory, which the old watch (gone with the old inode) does not see.
    std::fs::remove_dir_all(env.cri_root()).unwrap();
    std::fs::create_dir_all(env.cri_root()).unwrap();
    let after = env.cri_log("ns", "after", "app", 0);
    append(&after, &cri(0, "b"));
    let key = cri_key("ns", "after", "app", 0);
    assert!(
        eventually(Duration::from_secs(30), || messages(&store, &key) == ["b"]),
        "a log under the made-again root was not found: {:?}",
        messages(&store, &key)
    );
    append(&after, &cri(1, "c"));
    assert!(eventually(Duration::from_secs(30), || messages(
        &store, &key
    ) == ["b", "c"]));
    ing.shutdown();
}

#[test]
fn root_created_after_start_is_waited_for() {
    let env = Env::new();
    std::fs::remove_dir_all(env.cri_root()).unwrap();
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    std::thread::sleep(Duration::from_millis(300));
    let c = env.cri_log("ns", "p", "app", 0);
    append(&c, &cri(0, "first"));
    let key = cri_key("ns", "p", "app", 0);
    assert!(
        eventually(Duration::from_secs(30), || messages(&store, &key)
            == ["first"]),
        "{:?}",
        messages(&store, &key)
    );
    append(&c, &cri(1, "second"));
    assert!(eventually(Duration::from_secs(30), || messages(
        &store, &key
    ) == [
        "first", "second"
    ]));
    ing.shutdown();
}

#[test]
fn docker_rename_rotation_and_gzip_while_running_lose_and_duplicate_nothing() {
    let env = Env::new();
    let id = cid(4);
    let live = env.docker_log(&id, "rot", &[]);
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    let key = format!("docker:{id}");
    let mut n = 0;
    for gen in 0..5u64 {
        for _ in 0..50 {
            append(&live, &docker(n, &format!("m{n}")));
            n += 1;
        }
        // Rotations come after the tailer read the file (as with real size-based rotation,
        // which rotates a file that is being read); a file created and rotated away before the
        // tailer ever saw it may be read out of order. Waited for, not slept on.
        let read_so_far = names("m", 0..n);
        assert!(
            eventually(Duration::from_secs(30), || messages(&store, &key)
                == read_so_far),
            "generation {gen}: {:?}",
            messages(&store, &key)
        );
        // Shift .1 → .2 … and gzip what lands on .2.
        for k in (1..=gen + 1).rev() {
            for ext in ["", ".gz"] {
                let from = PathBuf::from(format!("{}.{k}{ext}", live.display()));
                if from.exists() {
                    std::fs::rename(&from, format!("{}.{}{ext}", live.display(), k + 1)).unwrap();
                }
            }
        }
        std::fs::rename(&live, format!("{}.1", live.display())).unwrap();
        let two = PathBuf::from(format!("{}.2", live.display()));
        if two.exists() {
            gzip(&two);
        }
        append(&live, "");
    }
    append(&live, &docker(n, "last"));
    let mut want = names("m", 0..n);
    want.push("last".into());
    assert!(
        eventually(Duration::from_secs(30), || messages(&store, &key).len()
            >= want.len()),
        "missing: {:?}",
        want.iter()
            .filter(|w| !messages(&store, &key).contains(w))
            .collect::<Vec<_>>()
    );
    ing.shutdown();
    assert_eq!(messages(&store, &key), want);
}

#[test]
fn kubelet_rotation_with_gzip_before_read_and_restart() {
    let env = Env::new();
    let live = env.cri_log("ns", "kr", "app", 0);
    let key = cri_key("ns", "kr", "app", 0);
    append(
        &live,
        &(0..30)
            .map(|i| cri(i, &format!("k{i}")))
            .collect::<String>(),
    );
    let store = env.store();
    read_to_eof(&env, &store);
    assert_eq!(messages(&store, &key), names("k", 0..30));
    // While no agent runs: more lines, rotation, gzip of the rotated file (partly unread), a
    // second rotation that is never read before it is gzipped, and a new live file.
    append(
        &live,
        &(30..40)
            .map(|i| cri(i, &format!("k{i}")))
            .collect::<String>(),
    );
    let r1 = PathBuf::from(format!("{}.20240501-120000", live.display()));
    std::fs::rename(&live, &r1).unwrap();
    gzip(&r1);
    append(
        &live,
        &(40..50)
            .map(|i| cri(i, &format!("k{i}")))
            .collect::<String>(),
    );
    let r2 = PathBuf::from(format!("{}.20240501-120100", live.display()));
    std::fs::rename(&live, &r2).unwrap();
    gzip(&r2);
    append(
        &live,
        &(50..55)
            .map(|i| cri(i, &format!("k{i}")))
            .collect::<String>(),
    );
    drop(store);
    let store = env.store();
    read_to_eof(&env, &store);
    assert_eq!(messages(&store, &key), names("k", 0..55));
    // A third pass finds nothing new.
    read_to_eof(&env, &store);
    assert_eq!(messages(&store, &key), names("k", 0..55));
}

#[test]
fn a_rotated_file_caught_mid_gzip_is_read_once() {
    let env = Env::new();
    let live = env.cri_log("ns", "gz", "app", 0);
    let key = cri_key("ns", "gz", "app", 0);
    let lines = |r: std::ops::Range<u64>| r.map(|i| cri(i, &format!("g{i}"))).collect::<String>();
    append(&live, &lines(0..30));
    let store = env.store();
    read_to_eof(&env, &store);
    // While no agent runs: more lines, a rotation, and the agent comes back while the rotated
    // file is being gzipped — its `.gz` written in full, the plain file not yet removed.
    append(&live, &lines(30..40));
    let rotated = PathBuf::from(format!("{}.20240501-120000", live.display()));
    std::fs::rename(&live, &rotated).unwrap();
    gzip_copy(&rotated);
    append(&live, &lines(40..45));
    drop(store);
    let store = env.store();
    read_to_eof(&env, &store);
    assert_eq!(
        messages(&store, &key),
        names("g", 0..45),
        "both copies of the rotated file were read"
    );
    // The gzip finishes (the plain file goes); nothing is read again.
    std::fs::remove_file(&rotated).unwrap();
    read_to_eof(&env, &store);
    assert_eq!(messages(&store, &key), names("g", 0..45));
}

#[test]
fn a_read_racing_copytruncate_is_dropped_not_stored() {
    use runnel_agent::tail::file::{look, ReadOutcome, TailFile};
    use runnel_agent::tail::parse::{Format, FormatRule};
    let env = Env::new();
    let live = env.cri_log("ns", "race", "app", 0);
    append(
        &live,
        &(0..10)
            .map(|i| cri(i, &format!("old{i}")))
            .collect::<String>(),
    );
    let looked = look(&live, 1024).unwrap().expect("a first line");
    let id = runnel_index::FileId {
        dev: 1,
        ino: 1,
        fingerprint: looked.print.hash,
    };
    let rule = FormatRule::Fixed(Format::Cri);
    let mut f = TailFile::open(&live, looked, id, 0, rule, 1 << 20, 1024).unwrap();
    let (mut buf, mut scratch, mut got) = (vec![0u8; 64 << 10], Vec::new(), Vec::new());
    let mut collect = |ev: runnel_agent::tail::lines::Event<'_>| {
        if let runnel_agent::tail::lines::Event::Record(r) = ev {
            got.push(String::from_utf8_lossy(r.message).into_owned());
        }
    };
    assert!(matches!(
        f.read_block(&mut buf, &mut scratch, &mut collect),
        Ok(ReadOutcome::Data(_))
    ));
    let offset = f.offset;
    // copytruncate after the tailer's last check, and the writer already wrote past the old
    // offset: a read at that offset would return the middle of the new content.
    std::fs::copy(&live, format!("{}.1", live.display())).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(
        &live,
        &(0..40)
            .map(|i| cri(i, &format!("new{i}")))
            .collect::<String>(),
    );
    assert!(std::fs::metadata(&live).unwrap().len() > offset);
    assert_eq!(
        f.read_block(&mut buf, &mut scratch, &mut collect).unwrap(),
        ReadOutcome::Replaced
    );
    assert_eq!(f.offset, offset, "nothing consumed");
    assert_eq!(
        got,
        names("old", 0..10),
        "no line of the new content was emitted"
    );
}

#[test]
fn oneshot_stores_a_pending_partial_and_restarts_resume_exactly() {
    let env = Env::new();
    let live = env.cri_log("ns", "rs", "app", 0);
    let key = cri_key("ns", "rs", "app", 0);
    append(&live, &(cri(0, "a") + &format!("{} stdout P par", time(1))));
    append(&live, "t1\n");
    let store = env.store();
    read_to_eof(&env, &store);
    assert_eq!(
        messages(&store, &key),
        ["a", "part1"],
        "a backfill stores the fragment still waiting for its end"
    );
    drop(store);
    append(
        &live,
        &(format!("{} stdout F -end\n", time(2)) + &cri(3, "b") + "half a line"),
    );
    let store = env.store();
    read_to_eof(&env, &store);
    // The rest of the line, written later, is a record of its own: no loss, no duplicate.
    assert_eq!(messages(&store, &key), ["a", "part1", "-end", "b"]);
    drop(store);
    append(&live, " finished\n");
    let store = env.store();
    read_to_eof(&env, &store);
    // "half a line finished" is not CRI: counted and skipped, nothing duplicated.
    assert_eq!(messages(&store, &key), ["a", "part1", "-end", "b"]);
    let recs = store.read_from(&key, 0, 10, usize::MAX).unwrap().records;
    assert!(
        recs[1].flags.truncated(),
        "the stored part says it is not the whole line"
    );
}

#[test]
fn copytruncate_and_plain_truncation_are_detected() {
    let env = Env::new();
    let live = env.cri_log("ns", "ct", "app", 0);
    let key = cri_key("ns", "ct", "app", 0);
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    append(
        &live,
        &(0..20)
            .map(|i| cri(i, &format!("c{i}")))
            .collect::<String>(),
    );
    assert!(eventually(Duration::from_secs(30), || messages(
        &store, &key
    )
    .len()
        == 20));
    // copytruncate: lines written just before the copy are read from the copy.
    append(
        &live,
        &(20..25)
            .map(|i| cri(i, &format!("c{i}")))
            .collect::<String>(),
    );
    std::fs::copy(&live, format!("{}.1", live.display())).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(
        &live,
        &(25..40)
            .map(|i| cri(i, &format!("c{i}")))
            .collect::<String>(),
    );
    assert!(
        eventually(Duration::from_secs(30), || messages(&store, &key).len()
            >= 40),
        "{:?}",
        messages(&store, &key)
    );
    assert_eq!(
        messages(&store, &key),
        names("c", 0..40),
        "every line once, the copy's before the truncated file's"
    );
    // Plain truncation to a shorter content.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, &cri(99, "after"));
    assert!(eventually(Duration::from_secs(30), || messages(
        &store, &key
    )
    .last()
    .map(String::as_str)
        == Some("after")));
    assert!(
        ing.stats()
            .input(runnel_agent::tail::Input::Cri)
            .file_truncations
            .load(Ordering::Relaxed)
            >= 2
    );
    ing.shutdown();
    assert_eq!(messages(&store, &key).len(), 41);
}

#[test]
fn a_line_split_by_copytruncate_is_merged_from_the_copy() {
    let env = Env::new();
    let live = env.cri_log("ns", "split", "app", 0);
    let key = cri_key("ns", "split", "app", 0);
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    append(&live, &cri(0, "before"));
    append(&live, &format!("{} stdout P first half \n", time(1)));
    append(&live, &format!("{} stdout P second third \n", time(1)));
    let read = |n: u64| {
        eventually(Duration::from_secs(30), || {
            ing.stats()
                .input(runnel_agent::tail::Input::Cri)
                .bytes
                .load(Ordering::Relaxed)
                >= n
        })
    };
    assert!(read(std::fs::metadata(&live).unwrap().len()));
    // The runtime's last write lands just before the copy: only the copy has the line's end.
    let copy = PathBuf::from(format!("{}.1", live.display()));
    std::fs::copy(&live, &copy).unwrap();
    append(&copy, &format!("{} stdout F end\n", time(1)));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, &cri(2, "after"));
    assert!(
        eventually(Duration::from_secs(30), || messages(&store, &key).len()
            >= 3),
        "{:?}",
        messages(&store, &key)
    );
    ing.shutdown();
    assert_eq!(
        messages(&store, &key),
        ["before", "first half second third end", "after"]
    );
}

#[test]
fn symlinked_paths_are_read_once() {
    let env = Env::new();
    let id = cid(5);
    let d = env.docker_log(&id, "linked", &[("io.kubernetes.pod.name", "lp")]);
    append(&d, &docker(0, "once"));
    // A CRI path that is a symlink into the Docker root (dockershim layout).
    let c = env.cri_log("ns", "lp", "app", 0);
    std::os::unix::fs::symlink(&d, &c).unwrap();
    // Two links to one CRI file.
    let real = env.cri_log("ns", "r", "app", 0);
    append(&real, &cri(0, "real"));
    std::os::unix::fs::symlink(&real, env.cri_log("ns", "r", "app", 1)).unwrap();
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    let dup = ing
        .stats()
        .input(runnel_agent::tail::Input::Cri)
        .duplicates
        .load(Ordering::Relaxed);
    ing.run_until_eof().unwrap();
    let total: Vec<String> = store
        .sources()
        .iter()
        .flat_map(|s| messages(&store, &s.key))
        .collect();
    let mut total = total;
    total.sort();
    assert_eq!(total, ["once", "real"]);
    assert_eq!(dup, 2);
}

#[test]
fn include_and_exclude_filter_by_namespace_pod_and_container() {
    let env = Env::new();
    for (ns, pod, c) in [
        ("prod", "web-1", "app"),
        ("prod", "web-1", "istio-proxy"),
        ("kube-system", "dns", "app"),
        ("dev", "x", "app"),
    ] {
        append(
            &env.cri_log(ns, pod, c, 0),
            &cri(0, &format!("{ns}/{pod}/{c}")),
        );
    }
    let mut cfg = env.config();
    cfg.inputs.include.namespaces = vec!["prod".into(), "kube-*".into()];
    cfg.inputs.exclude.containers = vec!["istio-*".into()];
    cfg.inputs.exclude.pods = vec!["dns".into()];
    let store = env.store();
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    ing.wait_ready();
    let skipped = ing
        .stats()
        .input(runnel_agent::tail::Input::Cri)
        .skipped_by_filter
        .load(Ordering::Relaxed);
    ing.run_until_eof().unwrap();
    let keys: Vec<String> = store
        .sources()
        .into_iter()
        .filter(|s| s.records > 0)
        .map(|s| s.key)
        .collect();
    assert_eq!(keys, [cri_key("prod", "web-1", "app", 0)]);
    assert_eq!(skipped, 3);
}

#[test]
fn queue_to_the_index_stays_bounded_on_a_big_file() {
    let env = Env::new();
    let live = env.cri_log("ns", "big", "app", 0);
    let mut text = String::new();
    let mut n = 0u64;
    while text.len() < 8 << 20 {
        text.push_str(&cri(
            n,
            &format!("line {n} {}", "z".repeat((n % 200) as usize)),
        ));
        n += 1;
    }
    append(&live, &text);
    let mut cfg = env.config();
    cfg.inputs.queue_max_bytes = 1 << 20;
    let store = env.store();
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    // Sample the queue gauge while the tailer runs ahead of the writer.
    let mut max_q = 0i64;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        max_q = max_q.max(ing.stats().queue.queued_bytes.load(Ordering::Relaxed));
        if store.sources().iter().map(|s| s.records).sum::<u64>() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    ing.run_until_eof().unwrap();
    assert_eq!(store.sources().iter().map(|s| s.records).sum::<u64>(), n);
    // The gauge counts the memory of the batches handed to the writer and not yet appended.
    assert!(
        max_q <= 1 << 20,
        "queued batches held {max_q} bytes with queue_max_bytes = 1 MiB"
    );
    assert!(max_q > 0, "the queue was never sampled non-empty");
}

/// A gzipped rotation cut short (the node died while the kubelet compressed it) or with a
/// damaged tail: the lines before the damage are stored in order, the file is released with
/// the damage counted, and the newer files are read as usual — never a retry loop, never a
/// garbled line.
#[test]
fn a_gzipped_rotation_cut_short_keeps_the_lines_before_the_damage_and_is_counted() {
    let env = Env::new();
    let live = env.cri_log("ns", "cut", "c", 0);
    let old: Vec<String> = (0..4000)
        .map(|i| format!("old line {i} {}", "x".repeat(i as usize % 90)))
        .collect();
    let plain: String = old
        .iter()
        .enumerate()
        .map(|(i, m)| cri(i as u64, m))
        .collect();
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(plain.as_bytes()).unwrap();
    let whole = e.finish().unwrap();
    let cut = PathBuf::from(format!("{}.20240501-120000.gz", live.display()));
    std::fs::write(&cut, &whole[..whole.len() * 6 / 10]).unwrap();
    // A second rotation whose trailer (CRC-32 and length) is damaged: every line decompresses,
    // and the error comes at the end.
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let middle: String = (0..100)
        .map(|i| cri(5000 + i, &format!("mid {i}")))
        .collect();
    e.write_all(middle.as_bytes()).unwrap();
    let mut damaged = e.finish().unwrap();
    let n = damaged.len();
    for b in &mut damaged[n - 8..] {
        *b ^= 0x5a;
    }
    let flipped = PathBuf::from(format!("{}.20240501-120100.gz", live.display()));
    std::fs::write(&flipped, &damaged).unwrap();
    let new: Vec<String> = (0..50).map(|i| format!("new line {i}")).collect();
    append(
        &live,
        &new.iter()
            .enumerate()
            .map(|(i, m)| cri(6000 + i as u64, m))
            .collect::<String>(),
    );

    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    let key = cri_key("ns", "cut", "c", 0);
    let cri_stats = ing.stats().input(runnel_agent::tail::Input::Cri);
    assert!(
        eventually(Duration::from_secs(60), || {
            cri_stats.corrupt_gz.load(Ordering::Relaxed) == 2
                && messages(&store, &key).last() == new.last()
        }),
        "the damaged rotations were not both given up on, or the live file not read"
    );
    assert_eq!(cri_stats.read_errors.load(Ordering::Relaxed), 2);
    let mut m = String::new();
    ing.render_metrics(&mut m);
    assert!(
        m.contains("runnel_input_corrupt_gzip_total{input=\"cri\"} 2"),
        "{m}"
    );
    ing.shutdown();

    let got = messages(&store, &key);
    // The cut file: a prefix of its lines, each whole (the line the cut fell into is either
    // left out or stored flagged truncated, never glued to the next file's first line).
    let from_cut = got.iter().take_while(|m| m.starts_with("old line")).count();
    assert!(
        from_cut > 1000,
        "only {from_cut} lines came out of the readable 60% of the file"
    );
    for (i, m) in got[..from_cut].iter().enumerate() {
        assert!(
            old[i] == *m || (i == from_cut - 1 && old[i].starts_with(m.as_str())),
            "line {i}: {m:?} is not {:?}",
            old[i]
        );
    }
    assert!(
        from_cut < old.len(),
        "the lines past the cut cannot be there"
    );
    // The damaged trailer: its lines were all decompressed before the check failed.
    let rest = &got[from_cut..];
    let mids = rest.iter().take_while(|m| m.starts_with("mid ")).count();
    let want: Vec<String> = (0..100).map(|i| format!("mid {i}")).collect();
    assert_eq!(rest[..mids], want[..]);
    assert_eq!(
        rest[mids..],
        new[..],
        "the live file is read in full after the damaged rotations"
    );
}

/// `config.v2.json` files that cannot give an identity — valid JSON of the wrong shape, a
/// field of the wrong type, one far larger than Docker writes — each count one identity
/// fallback; the container's lines are stored under its id, and the big file is not read
/// whole (it would have parsed: its name is not used).
#[test]
fn config_v2_json_of_the_wrong_shape_or_too_big_falls_back_to_the_container_id() {
    let env = Env::new();
    let configs: [(u32, Vec<u8>); 3] = [
        (21, b"[1, 2, 3]".to_vec()),
        (22, br#"{"ID": 5, "Name": ["/x"]}"#.to_vec()),
        (23, {
            let huge = "v".repeat(runnel_agent::tail::discover::MAX_DOCKER_CONFIG_BYTES as usize);
            format!(r#"{{"Name": "/big", "Config": {{"Labels": {{"k": "{huge}"}}}}}}"#).into_bytes()
        }),
    ];
    for (n, cfg) in &configs {
        let id = cid(*n);
        let d = env.docker_root().join(&id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.v2.json"), cfg).unwrap();
        append(
            &d.join(format!("{id}-json.log")),
            &docker(0, &format!("from {n}")),
        );
    }
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    assert!(eventually(Duration::from_secs(60), || {
        store.sources().iter().filter(|s| s.next_seq == 1).count() == configs.len()
    }));
    let fallbacks = ing
        .stats()
        .input(runnel_agent::tail::Input::Docker)
        .identity_fallbacks
        .load(Ordering::Relaxed);
    ing.shutdown();
    assert_eq!(fallbacks, 3);
    let sources = store.sources();
    for (n, _) in &configs {
        let key = format!("docker:{}", cid(*n));
        let s = sources
            .iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("no source {key}"));
        assert_eq!(s.identity.container_id, Some(cid(*n)));
        assert_eq!(s.identity.container_name, None, "{key}");
        assert_eq!(messages(&store, &key), [format!("from {n}")]);
    }
}

/// Restores `fs.inotify.max_queued_events` when dropped (also when the test fails).
struct QueuedEventsLimit {
    old: String,
}

const MAX_QUEUED_EVENTS: &str = "/proc/sys/fs/inotify/max_queued_events";

impl QueuedEventsLimit {
    fn set(v: u32) -> QueuedEventsLimit {
        let old = std::fs::read_to_string(MAX_QUEUED_EVENTS)
            .unwrap_or_else(|e| panic!("reading {MAX_QUEUED_EVENTS}: {e}"));
        std::fs::write(MAX_QUEUED_EVENTS, v.to_string())
            .unwrap_or_else(|e| panic!("this test lowers {MAX_QUEUED_EVENTS} and needs root: {e}"));
        QueuedEventsLimit { old }
    }
}

impl Drop for QueuedEventsLimit {
    fn drop(&mut self) {
        let _ = std::fs::write(MAX_QUEUED_EVENTS, self.old.trim());
    }
}

/// The kernel's inotify queue overflows (here: an instance created with room for 4 events,
/// then 500 new containers at once, several events each): the overflow is counted and a full rescan finds every
/// container at once — the periodic rescan is an hour away — with each line stored once.
#[test]
fn an_inotify_queue_overflow_is_counted_and_a_rescan_finds_every_new_file() {
    let env = Env::new();
    let store = env.store();
    let mut cfg = env.config();
    cfg.inputs.rescan_interval = Duration::from_secs(3600);
    let ing = {
        // The kernel reads the limit when the instance is created: lowered only that long.
        let _small = QueuedEventsLimit::set(4);
        let ing = Ingest::start(&cfg, store.clone()).unwrap();
        ing.wait_ready();
        ing
    };
    let n = 500;
    for i in 0..n {
        append(
            &env.cri_log("ns", &format!("burst-{i}"), "app", 0),
            &cri(i, &format!("b{i}")),
        );
    }
    let all_stored = || {
        let found = store.sources();
        let stored = found
            .iter()
            .filter(|s| s.key.contains("_burst-") && s.next_seq >= 1)
            .count();
        stored == n as usize
    };
    assert!(
        eventually(Duration::from_secs(120), all_stored),
        "not every container of the burst was found"
    );
    let lost = ing.stats().events_lost.load(Ordering::Relaxed);
    ing.shutdown();
    assert!(
        lost >= 1,
        "500 new containers did not overflow a 4-event queue"
    );
    for i in 0..n {
        assert_eq!(
            messages(&store, &cri_key("ns", &format!("burst-{i}"), "app", 0)),
            [format!("b{i}")]
        );
    }
}

/// Symlink loops under the log roots: a pod directory linked to the root itself, a container
/// directory linked to its pod, a log file linked to itself. Discovery stays at its fixed
/// depth and never follows a directory link, so nothing loops; the good container beside them
/// is read, and the agent stops cleanly.
#[test]
fn symlink_loops_under_the_log_roots_are_not_followed_and_the_rest_is_read() {
    use std::os::unix::fs::symlink;
    let env = Env::new();
    let good = env.cri_log("ns", "good", "app", 0);
    append(&good, &(cri(0, "g0") + &cri(1, "g1")));
    symlink(env.cri_root(), env.cri_root().join("ns_loop_uid-loop")).unwrap();
    let pod = good.parent().unwrap().parent().unwrap().to_path_buf();
    symlink(&pod, pod.join("again")).unwrap();
    let selfloop = env.cri_log("ns", "self", "app", 0);
    symlink(&selfloop, &selfloop).unwrap();
    let docker_dir = env.docker_root().join(cid(40));
    std::fs::create_dir_all(&docker_dir).unwrap();
    let dlog = docker_dir.join(format!("{}-json.log", cid(40)));
    symlink(&dlog, &dlog).unwrap();
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    let key = cri_key("ns", "good", "app", 0);
    assert!(eventually(Duration::from_secs(30), || messages(
        &store, &key
    ) == ["g0", "g1"]));
    ing.shutdown();
    let keys: Vec<String> = store
        .sources()
        .into_iter()
        .filter(|s| s.next_seq > 0)
        .map(|s| s.key)
        .collect();
    assert_eq!(keys, [key], "only the good container holds records");
}

/// Times the node's clock cannot vouch for: a line dated in 2099 is stored with the time it
/// carries (the kubelet serves it the same way); a year past what nanoseconds since 1970 can
/// hold in 64 bits (2262) is an unparsable line, counted and skipped; lines around them are
/// stored in file order.
#[test]
fn lines_dated_far_in_the_future_are_stored_as_dated_and_unrepresentable_ones_counted() {
    let env = Env::new();
    let c = env.cri_log("ns", "future", "app", 0);
    append(
        &c,
        &(cri(0, "before")
            + "2099-12-31T23:59:59.000000001Z stdout F from 2099\n"
            + "2300-01-01T00:00:00Z stdout F from 2300\n"
            + &cri(1, "after")),
    );
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    let key = cri_key("ns", "future", "app", 0);
    assert!(eventually(Duration::from_secs(30), || messages(
        &store, &key
    )
    .len()
        == 3));
    let errors = ing
        .stats()
        .input(runnel_agent::tail::Input::Cri)
        .parse_errors
        .load(Ordering::Relaxed);
    ing.shutdown();
    assert_eq!(messages(&store, &key), ["before", "from 2099", "after"]);
    assert_eq!(errors, 1, "the line from 2300 is counted as unparsable");
    let recs = store.read_from(&key, 0, 10, usize::MAX).unwrap().records;
    assert_eq!(recs[1].time_ns, 4_102_444_799_000_000_001);
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path owned for the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// A FIFO under a log's name (a live log, a rotated one, a `config.v2.json`) once blocked the
/// tailer's open until a writer came, and with it every log of the node. Refused and counted
/// now; the logs beside are read.
#[test]
fn fifos_under_log_names_are_refused_and_counted_never_waited_on() {
    use runnel_agent::tail::Input;
    let env = Env::new();
    let a = env.cri_log("ns", "a", "c", 0);
    append(&a, &(cri(0, "a0") + &cri(1, "a1")));
    mkfifo(&a.with_file_name("0.log.20240501-120000"));
    mkfifo(&env.cri_log("ns", "b", "c", 0));
    let id = cid(11);
    let d = env.docker_root().join(&id);
    std::fs::create_dir_all(&d).unwrap();
    mkfifo(&d.join("config.v2.json"));
    append(&d.join(format!("{id}-json.log")), &docker(0, "d0"));
    let store = env.store();
    let cfg = env.config();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let store = store.clone();
        std::thread::spawn(move || {
            let ing = Ingest::start(&cfg, store).unwrap();
            ing.wait_ready();
            let read_errors = || {
                ing.stats()
                    .input(Input::Cri)
                    .read_errors
                    .load(Ordering::Relaxed)
            };
            let fallbacks = || {
                ing.stats()
                    .input(Input::Docker)
                    .identity_fallbacks
                    .load(Ordering::Relaxed)
            };
            let counted = eventually(Duration::from_secs(30), || {
                read_errors() >= 2 && fallbacks() >= 1
            });
            let counts = (read_errors(), fallbacks());
            ing.shutdown();
            let _ = tx.send((counted, counts));
        });
    }
    let (counted, (read_errors, fallbacks)) = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| {
            panic!("the tailer did not come back within 120 s: it waits on a FIFO")
        });
    assert!(
        counted,
        "the live and the rotated FIFO are read errors ({read_errors}), the FIFO config.v2.json an identity fallback ({fallbacks})"
    );
    assert_eq!(messages(&store, &cri_key("ns", "a", "c", 0)), ["a0", "a1"]);
    assert_eq!(messages(&store, &format!("docker:{id}")), ["d0"]);
    assert!(messages(&store, &cri_key("ns", "b", "c", 0)).is_empty());
}
