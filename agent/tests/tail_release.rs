//! How long the tailer holds files: a rotated file is drained to its end before it is released,
//! even after it was deleted; handles of deleted files are closed once drained (no disk held);
//! the cap on open rotated files per source holds back newer rotations (counted once per file)
//! and counts those deleted before they could be read, as it counts a copytruncate copy
//! rotated away before the tailer looked and the file last read before a restart rotated away
//! while the agent was down. Driven step by step through
//! [`Source::poll`] and [`Source::scan_rotated`] so each state is reached deterministically, and
//! through a running [`Ingest`] for the whole picture.

mod support;

use support::append;

use crossbeam_channel::{unbounded, Receiver};
use runnel_agent::ingest::Msg;
use runnel_agent::tail::source::{Outbox, Scratch, Source, TailSettings};
use runnel_agent::tail::{Ingest, Input, Stats};
use runnel_index::{Limits, SourceIdentity, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn line(i: u64) -> String {
    format!(
        "2024-05-01T12:{:02}:{:02}.{:09}Z stdout F m{i}\n",
        i / 60 % 60,
        i % 60,
        i + 1
    )
}

fn lines(r: std::ops::Range<u64>) -> String {
    r.map(line).collect()
}

fn names(r: std::ops::Range<u64>) -> Vec<String> {
    r.map(|i| format!("m{i}")).collect()
}

/// Every message stored for `key`, in order.
fn stored_messages(store: &Store, key: &str) -> Vec<String> {
    store
        .read_from(key, 0, usize::MAX, usize::MAX)
        .unwrap()
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.message).into_owned())
        .collect()
}

/// Empty `path` in place (the same inode), as copytruncate and `truncate -s 0` leave it.
fn truncate_in_place(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// File descriptors of this process that point under `dir` (deleted or not).
fn fds_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.display().to_string())
        .filter(|t| t.starts_with(&dir))
        .collect()
}

/// One source driven by hand: the tailer's pieces without its thread.
struct Harness {
    dir: tempfile::TempDir,
    store: Store,
    src: Source,
    out: Outbox,
    rx: Receiver<Msg>,
    scratch: Scratch,
    settings: TailSettings,
    stats: Arc<Stats>,
}

impl Harness {
    fn new(max_open_rotated: usize) -> Harness {
        let dir = tempfile::Builder::new()
            .prefix("runnel-release-")
            .tempdir()
            .unwrap();
        let cdir = dir.path().join("pods/ns_pod_uid/app");
        std::fs::create_dir_all(&cdir).unwrap();
        let live = cdir.join("0.log");
        let store = Store::open(&dir.path().join("index"), Limits::default()).unwrap();
        let stats = Arc::new(Stats::default());
        let (tx, rx) = unbounded();
        Harness {
            src: Source::new(
                Arc::from("cri:ns_pod_uid/app/0"),
                Input::Cri,
                live.clone(),
                live,
                SourceIdentity::default(),
            ),
            store,
            out: Outbox {
                tx,
                batch: Default::default(),
                recycled: crossbeam_channel::never(),
                limit: 1 << 20,
                stats: stats.clone(),
            },
            rx,
            scratch: Scratch {
                buf: vec![0; 64 << 10],
                unescape: Vec::new(),
            },
            settings: TailSettings {
                max_line: 1 << 20,
                block: 64 << 10,
                fingerprint_bytes: 1024,
                max_open_rotated,
                batch_bytes: 1 << 20,
            },
            stats,
            dir,
        }
    }
    fn cdir(&self) -> PathBuf {
        self.dir.path().join("pods/ns_pod_uid/app")
    }
    fn live(&self) -> PathBuf {
        self.cdir().join("0.log")
    }
    fn rotated(&self, stamp: &str) -> PathBuf {
        self.cdir().join(format!("0.log.{stamp}"))
    }
    /// Poll until nothing more is read; returns the messages produced.
    fn poll(&mut self) -> Vec<String> {
        loop {
            let (n, released) = self.src.poll(
                &self.store,
                &self.settings,
                &mut self.out,
                &mut self.scratch,
                usize::MAX,
            );
            if n == 0 && !released {
                break;
            }
        }
        self.out.flush();
        let mut got = Vec::new();
        for msg in self.rx.try_iter() {
            if let Msg::Records(b) = msg {
                for r in &b.records {
                    got.push(String::from_utf8_lossy(&b.data[r.start..r.start + r.len]).into());
                }
            }
        }
        got
    }
    fn scan(&mut self) {
        self.src
            .scan_rotated(&self.store, &self.settings, &self.stats);
    }
    fn counter(&self, get: fn(&runnel_agent::tail::stats::PerInput) -> u64) -> u64 {
        get(self.stats.input(Input::Cri))
    }
}

#[test]
fn rotated_file_deleted_with_unread_lines_is_drained_then_its_handle_closed() {
    let mut h = Harness::new(4);
    let live = h.live();
    append(&live, &lines(0..10));
    assert_eq!(h.poll(), names(0..10));
    // More lines, then rotation and deletion before the tailer looks again: the unread lines
    // exist only behind the open handle.
    append(&live, &lines(10..20));
    let r1 = h.rotated("20240501-120000");
    std::fs::rename(&live, &r1).unwrap();
    std::fs::remove_file(&r1).unwrap();
    append(&live, &lines(20..25));
    let deleted: Vec<String> = fds_under(h.dir.path())
        .into_iter()
        .filter(|t| t.ends_with("(deleted)"))
        .collect();
    assert_eq!(deleted.len(), 1, "the tailer still holds the deleted file");
    assert_eq!(h.poll(), names(10..25), "drained before the new live file");
    assert_eq!(h.src.open_files(), 1);
    let deleted: Vec<String> = fds_under(h.dir.path())
        .into_iter()
        .filter(|t| t.ends_with("(deleted)"))
        .collect();
    assert!(deleted.is_empty(), "handles of deleted files: {deleted:?}");
    assert_eq!(h.counter(|p| p.rotations.load(Ordering::Relaxed)), 1);

    // The container goes away: its live file is drained and closed, and the source finishes.
    append(&live, &lines(25..27));
    std::fs::remove_dir_all(h.cdir()).unwrap();
    assert_eq!(h.poll(), names(25..27));
    assert!(h.src.finished);
    assert_eq!(h.src.open_files(), 0);
    assert!(fds_under(h.dir.path())
        .iter()
        .all(|t| !t.contains("/pods/")));
}

#[test]
fn cap_holds_back_newer_rotations_counts_each_once_and_counts_those_deleted_unread() {
    let mut h = Harness::new(1);
    // A rotated file with no live file beside it (between the kubelet's rename and the
    // runtime's reopen): it stays open, waiting for whatever comes next.
    let a = h.rotated("20240501-120000");
    append(&a, &lines(0..5));
    assert_eq!(h.poll(), names(0..5));
    assert_eq!(h.src.open_files(), 1);

    // Two newer rotations appear while the cap (1) is taken: both held back, counted once
    // each however many scans see them waiting.
    let b = h.rotated("20240501-120100");
    let c = h.rotated("20240501-120200");
    append(&b, &lines(5..10));
    append(&c, &lines(10..15));
    for _ in 0..5 {
        h.scan();
    }
    assert_eq!(h.counter(|p| p.forced_closes.load(Ordering::Relaxed)), 2);
    assert_eq!(h.src.open_files(), 1, "the cap holds");

    // One of them is deleted before it could be opened: counted as lost, not waited for.
    std::fs::remove_file(&b).unwrap();
    h.scan();
    assert_eq!(h.counter(|p| p.rotated_lost.load(Ordering::Relaxed)), 1);

    // The open file is released because a newer one waits; the waiting one is read next.
    assert_eq!(h.poll(), names(10..15));
    assert_eq!(h.counter(|p| p.forced_closes.load(Ordering::Relaxed)), 2);
    assert_eq!(h.counter(|p| p.rotated_lost.load(Ordering::Relaxed)), 1);
    assert_eq!(h.counter(|p| p.rotations.load(Ordering::Relaxed)), 1);
}

#[test]
fn many_rotated_files_are_read_in_order_through_a_small_cap() {
    let dir = tempfile::Builder::new()
        .prefix("runnel-cap-")
        .tempdir()
        .unwrap();
    let cdir = dir.path().join("pods/ns_capped_uid/app");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::create_dir_all(dir.path().join("docker")).unwrap();
    let mut n = 0;
    for k in 0..8u64 {
        let p = cdir.join(format!("0.log.20240501-12{k:02}00"));
        append(&p, &lines(n..n + 300));
        n += 300;
    }
    append(&cdir.join("0.log"), &lines(n..n + 10));
    n += 10;
    let mut cfg = runnel_config::Config::default();
    cfg.inputs.docker.root = dir.path().join("docker");
    cfg.inputs.cri.root = dir.path().join("pods");
    cfg.inputs.max_open_rotated_per_source = 2;
    let store = Arc::new(Store::open(&dir.path().join("index"), Limits::default()).unwrap());
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    let key = "cri:ns_capped_uid/app/0";
    let mut max_open = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        max_open = max_open.max(ing.stats().open_files.load(Ordering::Relaxed));
        if store
            .sources()
            .iter()
            .any(|s| s.key == key && s.records >= n)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let forced = ing
        .stats()
        .input(Input::Cri)
        .forced_closes
        .load(Ordering::Relaxed);
    ing.shutdown();
    let got = stored_messages(&store, key);
    assert_eq!(got, names(0..n), "every line once, in file order");
    assert_eq!(
        forced, 6,
        "8 rotated files, 2 opened at once: 6 held back, once each"
    );
    assert!(
        max_open <= 3,
        "open files peaked at {max_open} (cap 2 + live)"
    );
}

#[test]
fn removed_containers_release_their_source_and_every_handle() {
    let dir = tempfile::Builder::new()
        .prefix("runnel-churn-")
        .tempdir()
        .unwrap();
    let pods = dir.path().join("pods");
    std::fs::create_dir_all(dir.path().join("docker")).unwrap();
    let mut cfg = runnel_config::Config::default();
    cfg.inputs.docker.root = dir.path().join("docker");
    cfg.inputs.cri.root = pods.clone();
    let store = Arc::new(Store::open(&dir.path().join("index"), Limits::default()).unwrap());
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    ing.wait_ready();
    // Containers come and go: each writes, rotates once, and is removed. Many of them, quickly:
    // a rotation landing between the tailer's look at a file and its open must not make it
    // read one file under another's identity (that lost the rotated file's lines), and inodes
    // of removed files are reused by new ones with the same first line.
    for round in 0..10u64 {
        for c in 0..20u64 {
            let cdir = pods.join(format!("ns_pod{round}-{c}_uid/app"));
            std::fs::create_dir_all(&cdir).unwrap();
            let live = cdir.join("0.log");
            append(&live, &lines(0..20));
            std::fs::rename(&live, cdir.join("0.log.20240501-120000")).unwrap();
            append(&live, &lines(20..30));
        }
        let want = (round + 1) * 20 * 30;
        assert!(
            wait(|| store.sources().iter().map(|s| s.records).sum::<u64>() == want),
            "round {round}: not every line ingested: {:?}",
            store
                .sources()
                .iter()
                .map(|s| (s.key.clone(), s.records))
                .collect::<Vec<_>>()
        );
        for c in 0..20u64 {
            std::fs::remove_dir_all(pods.join(format!("ns_pod{round}-{c}_uid"))).unwrap();
        }
        assert!(
            wait(|| ing.stats().sources.load(Ordering::Relaxed) == 0),
            "round {round}: {} sources still followed after their logs were removed",
            ing.stats().sources.load(Ordering::Relaxed)
        );
        assert!(
            wait(|| fds_under(&pods).is_empty()),
            "handles still open: {:?}",
            fds_under(&pods)
        );
        assert_eq!(ing.stats().open_files.load(Ordering::Relaxed), 0);
        // The index keeps the removed containers' lines, marked retired.
        assert!(
            wait(|| store
                .sources()
                .iter()
                .filter(|s| s.key.contains(&format!("pod{round}-")))
                .all(|s| s.retired)),
            "round {round}: removed containers' sources not retired"
        );
    }
    ing.shutdown();
    // Once retention has deleted their lines (2024 times are past the 7-day max age), the
    // retired sources are forgotten altogether: no directory, no memory.
    for s in store.sources() {
        store.seal(&s.key).unwrap();
    }
    store.enforce_retention().unwrap();
    assert!(store.sources().is_empty(), "{:?}", store.sources());
    assert_eq!(store.stats().sources_removed, 200);
    let left = std::fs::read_dir(dir.path().join("index/sources"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "source directories left behind");
}

#[test]
fn sources_whose_files_vanished_while_the_agent_was_down_are_retired_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let kept = pods.join("ns_kept_uid/app");
    std::fs::create_dir_all(&kept).unwrap();
    append(&kept.join("0.log"), &lines(0..5));
    let mut cfg = runnel_config::Config::default();
    cfg.inputs.docker.root = dir.path().join("docker");
    cfg.inputs.cri.root = pods.clone();
    let index = dir.path().join("index");
    {
        // Before: a container whose pod directory is gone by the time the agent starts.
        let store = Store::open(&index, Limits::default()).unwrap();
        let rec = runnel_index::NewRecord {
            time_ns: 1,
            time_style: Default::default(),
            stream: runnel_index::Stream::Stdout,
            flags: Default::default(),
            message: b"old line",
            position: runnel_index::Position::None,
        };
        store.append("cri:ns_gone_uid/app/0", &rec).unwrap();
        store.sync().unwrap();
    }
    let store = Arc::new(Store::open(&index, Limits::default()).unwrap());
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    ing.wait_ready();
    let retired = |key: &str| store.sources().iter().any(|s| s.key == key && s.retired);
    assert!(wait(|| retired("cri:ns_gone_uid/app/0")));
    assert!(wait(|| store
        .sources()
        .iter()
        .any(|s| s.key == "cri:ns_kept_uid/app/0" && s.records == 5)));
    assert!(
        !retired("cri:ns_kept_uid/app/0"),
        "a container still on disk is not retired"
    );
    let gone = store
        .sources()
        .into_iter()
        .find(|s| s.key == "cri:ns_gone_uid/app/0");
    assert_eq!(
        gone.map(|s| s.records),
        Some(1),
        "its lines stay until retention"
    );
    ing.shutdown();
}

fn wait(mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// logrotate's copytruncate as the chaos soak does it: shift `.N` to `.N+1` (the oldest
/// beyond `keep` deleted), copy the live file to `.1`, truncate the live file in place.
fn copytruncate(cdir: &Path, keep: usize) {
    let live = cdir.join("0.log");
    let numbered = |n: usize| cdir.join(format!("0.log.{n}"));
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        if numbered(n).exists() {
            std::fs::rename(numbered(n), numbered(n + 1)).unwrap();
        }
    }
    std::fs::copy(&live, numbered(1)).unwrap();
    truncate_in_place(&live);
}

fn lost(h: &Harness) -> u64 {
    h.counter(|p| p.rotated_lost.load(Ordering::Relaxed))
}

#[test]
fn a_copytruncate_copy_rotated_away_before_the_tailer_looked_is_counted_lost() {
    let mut h = Harness::new(8);
    append(&h.live(), &lines(0..40));
    assert_eq!(h.poll(), names(0..40));
    // The tailer stalls (a full index disk) while 20 more lines land and five copytruncate
    // rotations, four copies kept, delete the copy that held them.
    append(&h.live(), &lines(40..60));
    for k in 0..5 {
        copytruncate(&h.cdir(), 4);
        let first = 60 + k * 40;
        append(&h.live(), &lines(first..first + 40));
    }
    assert_eq!(
        h.poll(),
        names(60..260),
        "the four copies left, oldest first, then the live file"
    );
    assert_eq!(lost(&h), 1, "the copy that held lines 40..60 was lost");
    assert_eq!(h.counter(|p| p.file_truncations.load(Ordering::Relaxed)), 1);
    // Counted once, whatever later scans see.
    h.scan();
    append(&h.live(), &lines(260..270));
    assert_eq!(h.poll(), names(260..270));
    assert_eq!(lost(&h), 1);
}

#[test]
fn a_copytruncate_copy_found_or_a_plain_truncation_counts_nothing_lost() {
    // The copy is still there: the lines the live file lost are read from it.
    let mut h = Harness::new(8);
    append(&h.live(), &lines(0..40));
    assert_eq!(h.poll(), names(0..40));
    append(&h.live(), &lines(40..60));
    copytruncate(&h.cdir(), 4);
    append(&h.live(), &lines(60..100));
    assert_eq!(h.poll(), names(40..100));
    assert_eq!(lost(&h), 0);

    // A plain truncation of a file read to its end (no copy is ever made).
    let mut h = Harness::new(8);
    append(&h.live(), &lines(0..40));
    assert_eq!(h.poll(), names(0..40));
    truncate_in_place(&h.live());
    append(&h.live(), &lines(40..80));
    assert_eq!(h.poll(), names(40..80));
    assert_eq!(lost(&h), 0);
}

#[test]
fn the_file_last_read_rotated_away_while_the_agent_was_down_is_counted_lost() {
    let dir = tempfile::Builder::new()
        .prefix("runnel-down-")
        .tempdir()
        .unwrap();
    let cdir = dir.path().join("pods/ns_down_uid/app");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::create_dir_all(dir.path().join("docker")).unwrap();
    let mut cfg = runnel_config::Config::default();
    cfg.inputs.docker.root = dir.path().join("docker");
    cfg.inputs.cri.root = dir.path().join("pods");
    let key = "cri:ns_down_uid/app/0";
    let store = Arc::new(Store::open(&dir.path().join("index"), Limits::default()).unwrap());
    append(&cdir.join("0.log"), &lines(0..40));
    Ingest::start(&cfg, store.clone())
        .unwrap()
        .run_until_eof()
        .unwrap();
    // Down: 20 more lines land, then five copytruncate rotations (four copies kept).
    append(&cdir.join("0.log"), &lines(40..60));
    for k in 0..5 {
        copytruncate(&cdir, 4);
        let first = 60 + k * 40;
        append(&cdir.join("0.log"), &lines(first..first + 40));
    }
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    let stored = || {
        store
            .read_from(key, 0, usize::MAX, usize::MAX)
            .map(|r| r.records.len())
            .unwrap_or(0)
    };
    assert!(
        support::eventually(Duration::from_secs(30), || stored() == 240),
        "the 40 lines read before and the 200 still on disk: {}",
        stored()
    );
    let lost = ing
        .stats()
        .input(Input::Cri)
        .rotated_lost
        .load(Ordering::Relaxed);
    ing.shutdown();
    let got = stored_messages(&store, key);
    assert_eq!(got, [names(0..40), names(60..260)].concat());
    assert_eq!(lost, 1, "the file that held lines 40..60 is gone unread");
}
