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
    let ing = Ingest::start(&cfg, store.clone()).unwrap();
    ing.wait_ready();
    let original = nofile().rlim_cur;
    let (containers, lines) = (80u64, 20u64);
    // Room for a few more descriptors than are open now: far fewer than 80 logs and their
    // index segments need.
    set_nofile(open_fds() + 12);
    let mut paths = Vec::new();
    for c in 0..containers {
        let d = pods.join(format!("ns_fd-{c}_uid-{c}/app"));
        let made = std::fs::create_dir_all(&d);
        let body: String = (0..lines).map(|i| line(i, c)).collect();
        paths.push((d.join("0.log"), body));
        if made.is_err() {
            break;
        }
    }
    // The test's own writes need descriptors too: write one file at a time, retrying while
    // the agent holds them all.
    for (p, body) in &paths {
        assert!(
            eventually(Duration::from_secs(30), || std::fs::write(p, body).is_ok()),
            "the test could not write {}",
            p.display()
        );
    }
    let errors = || {
        ing.stats()
            .input(Input::Cri)
            .read_errors
            .load(Ordering::Relaxed)
    };
    let short = eventually(Duration::from_secs(30), || errors() >= 1);
    set_nofile(original);
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
