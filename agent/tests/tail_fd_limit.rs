//! Running out of file descriptors (EMFILE) while containers start: opening their logs (and
//! their index segments) fails for a while. That is a transient shortage, not a bad file: once
//! descriptors are free again every container is read to its end, each line stored once and in
//! order, and the failed opens are counted. Its own test binary, because the descriptor limit
//! is the process's: no other test may run beside it.

mod support;

use runnel_agent::tail::{Ingest, Input};
use runnel_index::{Limits, Store};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use support::eventually;

fn nofile() -> libc::rlimit {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r
}

/// The soft descriptor limit lowered, raised back to what it was on drop.
struct NofileLimit {
    original: u64,
}

impl NofileLimit {
    fn lower_to(soft: u64) -> NofileLimit {
        let original = nofile().rlim_cur;
        set_nofile(soft);
        NofileLimit { original }
    }
}

impl Drop for NofileLimit {
    fn drop(&mut self) {
        set_nofile(self.original);
    }
}

fn set_nofile(soft: u64) {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: nofile().rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

fn line(i: u64, c: u64) -> String {
    format!(
        "2024-05-01T12:{:02}:{:02}.{:09}Z stdout F c{c} line {i}\n",
        i / 60 % 60,
        i % 60,
        i + 1
    )
}

#[test]
fn logs_opened_while_descriptors_run_out_are_read_in_full_once_they_are_back() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    std::fs::create_dir_all(&pods).unwrap();
    let mut cfg = runnel_config::Config::default();
    cfg.inputs.docker.enabled = false;
    cfg.inputs.cri.enabled = true;
    cfg.inputs.cri.root = pods.clone();
    cfg.inputs.rescan_interval = Duration::from_secs(1);
    let store = Arc::new(Store::open(&dir.path().join("index"), Limits::default()).unwrap());
    let (containers, lines) = (80u64, 20u64);
    // Every log is on disk before the agent starts: the test needs no descriptor of its own
    // while the agent is short of them.
    for c in 0..containers {
        let d = pods.join(format!("ns_fd-{c}_uid-{c}/app"));
        std::fs::create_dir_all(&d).unwrap();
        let body: String = (0..lines).map(|i| line(i, c)).collect();
        std::fs::write(d.join("0.log"), body).unwrap();
    }
    // Declared before the limit, so dropped after it: a failing test gives the descriptors
    // back before it stops the agent (which cannot stop while its writes fail).
    let ing;
    // Room for a few more descriptors than are open now: enough to start, far fewer than 80
    // logs and their index segments need.
    let limit = NofileLimit::lower_to(open_fds() + 12);
    ing = Ingest::start(&cfg, store.clone()).unwrap();
    let errors = || {
        ing.stats()
            .input(Input::Cri)
            .read_errors
            .load(Ordering::Relaxed)
    };
    let short = eventually(Duration::from_secs(60), || errors() >= 1);
    drop(limit);
    assert!(
        short,
        "no log open failed: the descriptor limit was not reached"
    );
    let key = |c: u64| format!("cri:ns_fd-{c}_uid-{c}/app/0");
    let all = eventually(Duration::from_secs(120), || {
        let found = store.sources();
        (0..containers).all(|c| found.iter().any(|s| s.key == key(c) && s.next_seq >= lines))
    });
    let missing: Vec<u64> = {
        let found = store.sources();
        (0..containers)
            .filter(|c| {
                !found
                    .iter()
                    .any(|s| s.key == key(*c) && s.next_seq >= lines)
            })
            .collect()
    };
    let failed_opens = errors();
    ing.shutdown();
    assert!(
        all,
        "{} containers were not read in full after the shortage: {missing:?} ({} failed opens)",
        missing.len(),
        failed_opens
    );
    for c in 0..containers {
        let got: Vec<String> = store
            .read_from(&key(c), 0, usize::MAX, usize::MAX)
            .unwrap()
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.message).into_owned())
            .collect();
        let want: Vec<String> = (0..lines).map(|i| format!("c{c} line {i}")).collect();
        assert_eq!(got, want, "container {c}");
    }
}
