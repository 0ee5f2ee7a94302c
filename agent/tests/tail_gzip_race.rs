//! A restart while a rotated file is being gzipped: the file is on disk under one name or the
//! other at every instant (the compressed copy is written beside it, renamed into place, then
//! the plain file is removed, as logrotate and the kubelet do), but a tailer that lists the
//! directory, then opens what it listed, can see the plain name and find it gone, and never see
//! the `.gz` at all. It then met the `.gz` later as a file it had never read and stored its
//! lines a second time (the e2e SIGKILL test caught 400 duplicates that way under load).
//!
//! Here a thread moves an already-read rotated file between its plain and gzipped names, in a
//! burst that races each start of the tailer on the same index: no start may store anything,
//! and the index ends with every line exactly once.

use flate2::write::GzEncoder;
use runnel_agent::tail::Ingest;
use runnel_index::{Limits, Store};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "cri:ns_pod_uid/app/0";
/// Rotated files beside the one that moves, so listing and opening take a while.
const OTHER_ROTATED: u64 = 24;
const LINES_PER_FILE: u64 = 40;
const RESTARTS: usize = 150;
/// Moves (plain to gz and back) racing each start.
const MOVES_PER_START: u32 = 30;

fn line(i: u64) -> String {
    format!(
        "2024-05-01T12:{:02}:{:02}.{:09}Z stdout F m{i}-{}\n",
        i / 60 % 60,
        i % 60,
        i + 1,
        "x".repeat((i % 11) as usize * 9)
    )
}

fn config(root: &Path) -> runnel_config::Config {
    let mut cfg = runnel_config::Config::default();
    let i = &mut cfg.inputs;
    i.docker.enabled = false;
    i.docker.root = root.join("docker");
    i.cri.enabled = true;
    i.cri.root = root.join("pods");
    i.rescan_interval = Duration::from_secs(10);
    i.max_open_rotated_per_source = 64;
    cfg
}

fn stored(store: &Store) -> Vec<String> {
    store
        .read_from(KEY, 0, usize::MAX, usize::MAX)
        .unwrap()
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.message).into_owned())
        .collect()
}

/// Move `plain` to `gz` and back `times` times, each step as a rotation tool makes it: the new
/// name is written under a temporary name and renamed into place before the old name is
/// removed.
fn move_back_and_forth(plain: &Path, gz: &Path, packed: &[u8], content: &[u8], times: u32) {
    let tmp_gz = PathBuf::from(format!("{}.tmp", gz.display()));
    let tmp_plain = plain.with_file_name(".restore.tmp");
    for _ in 0..times {
        std::fs::write(&tmp_gz, packed).unwrap();
        std::fs::rename(&tmp_gz, gz).unwrap();
        std::fs::remove_file(plain).unwrap();
        // Back to plain (not what a node does, but the same window: both names, then one).
        std::fs::write(&tmp_plain, content).unwrap();
        std::fs::rename(&tmp_plain, plain).unwrap();
        std::fs::remove_file(gz).unwrap();
    }
}

#[test]
fn restarts_while_a_read_rotation_is_gzipped_store_nothing_twice() {
    let dir = tempfile::Builder::new()
        .prefix("runnel-gzrace-")
        .tempdir()
        .unwrap();
    let cdir = dir.path().join("pods/ns_pod_uid/app");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::create_dir_all(dir.path().join("docker")).unwrap();
    let live = cdir.join("0.log");
    let mut next = 0;
    let mut write_file = |path: &Path| {
        let text: String = (next..next + LINES_PER_FILE).map(line).collect();
        std::fs::write(path, text).unwrap();
        next += LINES_PER_FILE;
    };
    // Oldest first: kubelet names sort by their timestamp. The moving file is the newest
    // rotation, the one a rotation tool compresses next.
    for n in 0..OTHER_ROTATED {
        write_file(&cdir.join(format!("0.log.20240501-12{n:04}.gz.src")));
    }
    let moving = cdir.join(format!("0.log.20240501-12{OTHER_ROTATED:04}"));
    write_file(&moving);
    write_file(&live);
    // The older rotations are gzipped already.
    for n in 0..OTHER_ROTATED {
        let src = cdir.join(format!("0.log.20240501-12{n:04}.gz.src"));
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&std::fs::read(&src).unwrap()).unwrap();
        std::fs::write(src.with_extension(""), enc.finish().unwrap()).unwrap();
        std::fs::remove_file(&src).unwrap();
    }
    let total = next;
    let want: Vec<String> = (0..total)
        .map(|i| {
            line(i)
                .split_once(" F ")
                .unwrap()
                .1
                .trim_end_matches('\n')
                .to_string()
        })
        .collect();

    let store = Arc::new(Store::open(&dir.path().join("index"), Limits::default()).unwrap());
    let cfg = config(dir.path());
    Ingest::start(&cfg, store.clone())
        .unwrap()
        .run_until_eof()
        .unwrap();
    assert_eq!(
        stored(&store),
        want,
        "the first read stores every line once"
    );

    // Each start races a burst of moves (the oneshot read ends once the files stop changing).
    let content = std::fs::read(&moving).unwrap();
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&content).unwrap();
    let packed = Arc::new(enc.finish().unwrap());
    let content = Arc::new(content);
    let gz = PathBuf::from(format!("{}.gz", moving.display()));
    for restart in 0..RESTARTS {
        let mover = {
            let (moving, gz, packed, content) =
                (moving.clone(), gz.clone(), packed.clone(), content.clone());
            std::thread::spawn(move || {
                move_back_and_forth(&moving, &gz, &packed, &content, MOVES_PER_START)
            })
        };
        Ingest::start(&cfg, store.clone())
            .unwrap()
            .run_until_eof()
            .unwrap();
        mover.join().unwrap();
        let n = stored(&store).len() as u64;
        assert_eq!(
            n,
            total,
            "start {restart} of {RESTARTS} stored {} lines again",
            n.saturating_sub(total)
        );
    }
    // Once more with the files still: whatever a start missed while they moved is found now.
    Ingest::start(&cfg, store.clone())
        .unwrap()
        .run_until_eof()
        .unwrap();
    assert_eq!(stored(&store), want);
}
