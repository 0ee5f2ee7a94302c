//! The tailer against hostile files on real disks with a real index: a json-file log that
//! begins with garbage, lines that never end (Docker 16 KiB fragments, CRI `P` fragments) in
//! one container and in a thousand at once under the node-wide `inputs.max_pending_bytes`,
//! logs that are filtered out and then removed, and a `max_line_bytes` no index record can hold.

mod support;

use runnel_agent::tail::{Ingest, Input};
use runnel_index::{Limits, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use support::{append, eventually};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("runnel-hostile-")
            .tempdir()
            .unwrap();
        for d in ["docker", "pods"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Env { dir }
    }
    fn config(&self) -> runnel_config::Config {
        let mut cfg = runnel_config::Config::default();
        cfg.inputs.docker.root = self.dir.path().join("docker");
        cfg.inputs.cri.root = self.dir.path().join("pods");
        cfg
    }
    fn store(&self) -> Arc<Store> {
        Arc::new(Store::open(&self.dir.path().join("index"), Limits::default()).unwrap())
    }
    fn docker_log(&self, id: &str) -> PathBuf {
        let d = self.dir.path().join("docker").join(id);
        std::fs::create_dir_all(&d).unwrap();
        let cfg = serde_json::json!({"ID": id, "Name": "/app", "Config": {"Labels": {}}});
        std::fs::write(d.join("config.v2.json"), cfg.to_string()).unwrap();
        d.join(format!("{id}-json.log"))
    }
    fn cri_log(&self, pod: &str) -> PathBuf {
        let d = self
            .dir
            .path()
            .join("pods")
            .join(format!("ns_{pod}_uid-{pod}"))
            .join("app");
        std::fs::create_dir_all(&d).unwrap();
        d.join("0.log")
    }
}

fn cid(n: u32) -> String {
    format!("{n:08x}").repeat(8)
}

fn json_line(log: &str, i: u64) -> String {
    format!(
        "{}\n",
        serde_json::json!({"log": log, "stream": "stdout", "time": format!("2024-05-01T12:00:{:02}.{:09}Z", i / 1_000_000 % 60, i % 1_000_000)})
    )
}

fn records(store: &Store, key: &str) -> Vec<runnel_index::StoredRecord> {
    if !store.sources().iter().any(|s| s.key == key) {
        return Vec::new();
    }
    store
        .read_from(key, 0, usize::MAX, usize::MAX)
        .unwrap()
        .records
}

/// What copytruncate leaves when the writer does not use O_APPEND: NULs up to the writer's old
/// offset, then the tail of a line cut in the middle.
fn garbage_head() -> String {
    let mut s = "\0".repeat(8192);
    s.push_str("ess\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T11:59:59.5Z\"}\n");
    s
}

#[test]
fn a_json_file_that_begins_with_nuls_and_a_cut_line_loses_only_that_line() {
    let env = Env::new();
    let good: String = (0..13_333)
        .map(|i| json_line(&format!("good line {i}\n"), i))
        .collect();
    let text = garbage_head() + &good;
    // Under the Docker root, and under the kubelet's pod directories (dockershim links
    // Docker's json-file logs there): the format does not hinge on the first line.
    let id = cid(1);
    append(&env.docker_log(&id), &text);
    append(&env.cri_log("dockershim"), &text);
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.run_until_eof().unwrap();
    for key in [
        format!("docker:{id}"),
        "cri:ns_dockershim_uid-dockershim/app/0".to_string(),
    ] {
        let recs = records(&store, &key);
        assert_eq!(recs.len(), 13_333, "{key}: every good line is stored");
        assert_eq!(recs[0].message, b"good line 0");
        assert_eq!(recs[13_332].message, b"good line 13332");
        assert!(recs.iter().all(|r| r.flags.0 == 0));
    }
}

#[test]
fn garbage_head_is_one_counted_bad_line_per_file() {
    let env = Env::new();
    let good: String = (0..100).map(|i| json_line(&format!("g{i}\n"), i)).collect();
    let id = cid(2);
    append(&env.docker_log(&id), &(garbage_head() + &good));
    append(&env.cri_log("shim"), &(garbage_head() + &good));
    let store = env.store();
    let ing = Ingest::start(&env.config(), store.clone()).unwrap();
    ing.wait_ready();
    let errors = |i: Input| ing.stats().input(i).parse_errors.load(Ordering::Relaxed);
    let lines = |i: Input| ing.stats().input(i).lines.load(Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(30), || lines(Input::Docker) == 100
            && lines(Input::Cri) == 100),
        "docker {} cri {}",
        lines(Input::Docker),
        lines(Input::Cri)
    );
    assert_eq!((errors(Input::Docker), errors(Input::Cri)), (1, 1));
    ing.shutdown();
}

#[test]
fn docker_fragments_that_never_end_are_stored_truncated_while_the_line_goes_on() {
    let env = Env::new();
    let id = cid(3);
    let live = env.docker_log(&id);
    append(&live, &json_line("before\n", 0));
    let mut cfg = env.config();
    cfg.inputs.max_line_bytes = 64 << 10;
    let store = env.store();
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    ing.wait_ready();
    let key = format!("docker:{id}");
    // A progress bar: `\r` and no `\n`, so Docker writes 16 KiB fragments for ever.
    let frag = "\r[#####     ] 50%".repeat(1000)[..16 * 1024].to_string();
    let mut written = 0u64;
    for i in 0..40 {
        append(&live, &json_line(&frag, i + 1));
        written += frag.len() as u64;
    }
    assert!(
        eventually(Duration::from_secs(30), || records(&store, &key).len() == 2),
        "the line is stored before it ends: {} records",
        records(&store, &key).len()
    );
    let recs = records(&store, &key);
    assert_eq!(recs[1].message.len(), 64 << 10);
    assert!(recs[1].flags.truncated() && recs[1].flags.partial_merged());
    let skipped = || {
        ing.stats()
            .input(Input::Docker)
            .skipped_bytes
            .load(Ordering::Relaxed)
    };
    assert!(
        eventually(Duration::from_secs(30), || skipped()
            == written - (64 << 10)),
        "skipped {} of {}",
        skipped(),
        written - (64 << 10)
    );
    // Its end (a fragment with the `\n`) ends the skip; the next line is whole.
    append(&live, &json_line("done\n", 50));
    append(&live, &json_line("after\n", 51));
    assert!(eventually(Duration::from_secs(30), || records(
        &store, &key
    )
    .last()
    .is_some_and(|r| r.message == b"after")));
    assert_eq!(records(&store, &key).len(), 3);
    let mut m = String::new();
    ing.render_metrics(&mut m);
    let want = format!(
        "runnel_input_skipped_bytes_total{{input=\"docker\"}} {}",
        written - (64 << 10) + 4
    );
    assert!(m.contains(&want), "{want} not in\n{m}");
    assert!(m.contains("runnel_input_truncated_lines_total{input=\"docker\"} 1"));
    ing.shutdown();
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn pending_bytes(ing: &Ingest) -> i64 {
    ing.stats().pending_bytes.load(Ordering::Relaxed)
}

#[test]
fn a_thousand_containers_with_lines_that_never_end_stay_within_max_pending_bytes() {
    const CONTAINERS: usize = 1000;
    const FRAGMENTS: usize = 8;
    let env = Env::new();
    let mut cfg = env.config();
    cfg.inputs.max_line_bytes = 64 << 10;
    cfg.inputs.max_pending_bytes = 1 << 20;
    // Every container holds a 32 KiB line that has not ended: 32 MiB if nothing bounded it.
    let frag = format!("2024-05-01T12:00:00Z stdout P {}\n", "=".repeat(4096));
    let body = frag.repeat(FRAGMENTS);
    let logs: Vec<PathBuf> = (0..CONTAINERS)
        .map(|i| env.cri_log(&format!("bar-{i}")))
        .collect();
    for l in &logs {
        append(l, &body);
    }
    let store = env.store();
    let rss_before = vm_rss_kib();
    let t0 = std::time::Instant::now();
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    ing.wait_ready();
    let total = (body.len() * CONTAINERS) as u64;
    let read = || ing.stats().input(Input::Cri).bytes.load(Ordering::Relaxed);
    // The gauge is sampled while everything is read; the bound is max_pending_bytes plus what
    // one source may hold between two checks (a raw line and two pending lines at the limit).
    let slack = 3 * (64 << 10) + 64 * 1024;
    let mut max_pending = 0;
    assert!(
        eventually(Duration::from_secs(600), || {
            max_pending = max_pending.max(pending_bytes(&ing));
            read() == total
        }),
        "read {} of {total} bytes",
        read()
    );
    let rss_read = vm_rss_kib();
    let evictions = || {
        ing.stats()
            .input(Input::Cri)
            .pending_evictions
            .load(Ordering::Relaxed)
    };
    let stored = |i: usize| records(&store, &format!("cri:ns_bar-{i}_uid-bar-{i}/app/0"));
    let have = || {
        store
            .sources()
            .iter()
            .filter(|s| s.key.starts_with("cri:ns_bar-") && s.records > 0)
            .count()
    };
    // The bound is enforced after a read is counted, so the last eviction may follow the byte
    // count: wait until every eviction so far has its record, reading both each time.
    assert!(
        eventually(Duration::from_secs(600), || have() as u64 == evictions()),
        "{} containers have a record, {} evictions",
        have(),
        evictions()
    );
    let evicted = evictions();
    eprintln!(
        "{CONTAINERS} containers, {} MiB of unended lines: pending gauge max {max_pending} B, \
         {evicted} evicted; VmRSS {rss_before} KiB before, {rss_read} KiB after reading \
         ({:?})",
        total >> 20,
        t0.elapsed()
    );
    assert!(
        max_pending <= (1 << 20) + slack as i64,
        "pending bytes reached {max_pending} with max_pending_bytes = 1 MiB"
    );
    assert!(max_pending > 0, "the gauge was never sampled non-empty");
    assert!(
        // The lines left held fit in the same bound as the gauge (the limit plus the slack).
        evicted as usize >= CONTAINERS - ((1 << 20) + slack) / (FRAGMENTS * 4096),
        "only {evicted} evictions"
    );
    eprintln!("evicted lines stored ({:?})", t0.elapsed());
    for i in (0..CONTAINERS).filter(|i| !stored(*i).is_empty()) {
        let r = &stored(i)[0];
        assert!(r.flags.truncated(), "an evicted line says it is cut");
        assert_eq!(r.message.len() % 4096, 0);
    }
    // The lines end: the evicted ones' ends are skipped, the held ones are stored whole.
    for l in &logs {
        append(l, "2024-05-01T12:00:01Z stdout F end\n");
    }
    assert!(
        eventually(Duration::from_secs(600), || have() == CONTAINERS
            && pending_bytes(&ing) == 0),
        "{} of {CONTAINERS} have a record; pending {}",
        have(),
        pending_bytes(&ing)
    );
    // `records` in the source list counts appends; a read sees them once they are synced.
    assert!(
        eventually(Duration::from_secs(600), || (0..CONTAINERS)
            .all(|i| !stored(i).is_empty())),
        "appended records never became readable"
    );
    for i in 0..CONTAINERS {
        let recs = stored(i);
        assert_eq!(recs.len(), 1, "container {i}: one record per line");
        if !recs[0].flags.truncated() {
            assert_eq!(recs[0].message.len(), FRAGMENTS * 4096 + 3);
        }
    }
    eprintln!(
        "VmRSS after the lines ended: {} KiB ({:?})",
        vm_rss_kib(),
        t0.elapsed()
    );
    ing.shutdown();
}

#[test]
fn oneshot_stores_a_progress_bar_that_never_ends_its_line() {
    let env = Env::new();
    let live = env.cri_log("bar");
    let frag = format!("2024-05-01T12:00:00Z stdout P {}\n", "\r42%".repeat(100));
    append(&live, &frag.repeat(3));
    let store = env.store();
    Ingest::start(&env.config(), store.clone())
        .unwrap()
        .run_until_eof()
        .unwrap();
    let recs = records(&store, "cri:ns_bar_uid-bar/app/0");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].message, "\r42%".repeat(300).as_bytes());
    assert!(recs[0].flags.truncated(), "its end was never seen");
}

#[test]
fn filtered_logs_are_forgotten_once_removed() {
    let env = Env::new();
    let mut cfg = env.config();
    cfg.inputs.exclude.namespaces = vec!["ns".into()];
    cfg.inputs.rescan_interval = Duration::from_millis(200);
    let dirs: Vec<PathBuf> = (0..50)
        .map(|i| {
            let l = env.cri_log(&format!("skip-{i}"));
            append(&l, "2024-05-01T12:00:00Z stdout F x\n");
            l.parent().and_then(Path::parent).unwrap().to_path_buf()
        })
        .collect();
    let store = env.store();
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    ing.wait_ready();
    let ignored = || ing.stats().ignored_sources.load(Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(30), || ignored() == 50),
        "{}",
        ignored()
    );
    for d in &dirs {
        std::fs::remove_dir_all(d).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(30), || ignored() == 0),
        "the ignored set still holds {} removed logs",
        ignored()
    );
    assert_eq!(
        ing.stats()
            .input(Input::Cri)
            .skipped_by_filter
            .load(Ordering::Relaxed),
        50
    );
    ing.shutdown();
}

#[test]
fn max_line_bytes_above_what_an_index_record_holds_is_refused() {
    assert!(runnel_config::MAX_LINE_BYTES_LIMIT as usize <= runnel_index::MAX_MESSAGE);
    let err = runnel_config::Config::from_yaml_str(
        "inputs:\n  max_line_bytes: 64MiB\n  max_pending_bytes: 128MiB\n",
        "test.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("inputs.max_line_bytes") && err.contains("more than an index record"),
        "{err}"
    );
    assert!(
        err.contains("test.yaml:2:"),
        "the error names the line: {err}"
    );
    let ok = runnel_config::Config::from_yaml_str(
        "inputs:\n  max_line_bytes: 32MiB\n  max_pending_bytes: 64MiB\n",
        "test.yaml",
    );
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
    let err = runnel_config::Config::from_yaml_str(
        "inputs:\n  max_line_bytes: 4MiB\n  max_pending_bytes: 1MiB\n",
        "test.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("inputs.max_pending_bytes"), "{err}");
    // The agent refuses it too when handed a config value that skipped validation.
    let env = Env::new();
    let mut cfg = env.config();
    cfg.inputs.max_line_bytes = runnel_index::MAX_MESSAGE as u64 + 1;
    let err = Ingest::start(&cfg, env.store())
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("max_line_bytes") && e.contains("index record")),
        "{err:?}"
    );
}
