//! The active segment's index file (`seg-<N>.idx`): a reader takes chunks from it only when it
//! agrees with the segment, a writer's open rewrites it from the scan, a store without it reads
//! the same, and its bytes are pinned by a golden file.

mod common;

use common::{msg, rec, small_limits, FILE};
use runnel_index::{Query, Store, StoredRecord};
use std::path::{Path, PathBuf};

fn files_ending(root: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for s in std::fs::read_dir(root.join("sources")).unwrap() {
        for f in std::fs::read_dir(s.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A store whose one source has `n` records in its active segment (many 256-byte chunks).
fn store_with(dir: &Path, n: u64) {
    let w = Store::open(dir, small_limits()).unwrap();
    for i in 0..n {
        w.append("k", &rec(i as i64 * 10, &msg(i), i + 1)).unwrap();
        if i % 17 == 0 {
            w.sync().unwrap();
        }
    }
    w.sync().unwrap();
}

fn all(s: &Store) -> Vec<StoredRecord> {
    s.read_from("k", 0, 100_000, 1 << 30).unwrap().records
}

fn expected(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(msg).collect()
}

fn messages(r: &[StoredRecord]) -> Vec<Vec<u8>> {
    r.iter().map(|r| r.message.clone()).collect()
}

/// Everything a reader can ask, compared with what the records are; and `verify` passes.
fn check_reader(dir: &Path, n: u64) {
    check_reads(dir, n);
    let r = Store::open_read_only(dir).unwrap();
    let v = r.verify();
    assert!(v.is_ok(), "{:?}", v.problems);
}

/// Everything a reader can ask, compared with what the records are.
fn check_reads(dir: &Path, n: u64) {
    let r = Store::open_read_only(dir).unwrap();
    assert_eq!(messages(&all(&r)), expected(n));
    let q = r
        .query(
            "k",
            &Query {
                since_ns: Some(100),
                until_ns: Some(300),
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(messages(&q.records), (10..30).map(msg).collect::<Vec<_>>());
    let t = r
        .query(
            "k",
            &Query {
                tail_lines: Some(5),
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(
        messages(&t.records),
        (n - 5..n).map(msg).collect::<Vec<_>>()
    );
    assert_eq!(r.durable_position(&FILE), Some(n));
}

#[test]
fn writer_indexes_finished_chunks_and_readers_use_them() {
    let d = tempfile::tempdir().unwrap();
    store_with(d.path(), 300);
    let idx = files_ending(d.path(), ".idx");
    assert_eq!(idx.len(), 1, "one index beside the active segment");
    let len = std::fs::metadata(&idx[0]).unwrap().len();
    assert!(len > 24 + 10 * 56, "many chunks indexed: {len} bytes");
    check_reader(d.path(), 300);
}

#[test]
fn damaged_or_stale_index_is_ignored_by_readers_and_rewritten_by_the_writer() {
    let d = tempfile::tempdir().unwrap();
    store_with(d.path(), 300);
    let idx = files_ending(d.path(), ".idx").remove(0);
    let good = std::fs::read(&idx).unwrap();
    let other = tempfile::tempdir().unwrap();
    // An index of other frames with the same first sequence (longer messages: the chunk
    // boundaries fall elsewhere), with valid CRCs.
    {
        let w = Store::open(other.path(), small_limits()).unwrap();
        for i in 0..300u64 {
            let m = format!("{}{}", String::from_utf8(msg(i)).unwrap(), "y".repeat(13));
            w.append("k", &rec(i as i64 * 10, m.as_bytes(), i + 1))
                .unwrap();
        }
        w.sync().unwrap();
    }
    let foreign = std::fs::read(files_ending(other.path(), ".idx").remove(0)).unwrap();
    let mut flipped = good.clone();
    flipped[24 + 56 * 3 + 9] ^= 0x40;
    let mut zeroed = good.clone();
    zeroed[24 + 56 * 2..].iter_mut().for_each(|b| *b = 0);
    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("flipped bit", flipped),
        ("torn entry", good[..good.len() - 20].to_vec()),
        ("zeroed tail (crash before writeback)", zeroed),
        ("header only", good[..24].to_vec()),
        ("garbage", vec![0xa5; 1000]),
        ("other frames", foreign),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in damages {
        std::fs::write(&idx, &bytes).unwrap();
        check_reads(d.path(), 300);
        // verify names the index file, and nothing else; a header alone is a short hint
        // (the index lags the frames), not a disagreement.
        let v = runnel_index::verify_dir(d.path()).unwrap();
        assert!(
            v.problems.iter().all(|p| p.path == idx),
            "{what}: {:?}",
            v.problems
        );
        assert_eq!(
            v.problems.is_empty(),
            what == "header only",
            "{what}: {:?}",
            v.problems
        );
        // The writer's open scans every frame and puts the index right.
        drop(Store::open(d.path(), small_limits()).unwrap());
        assert_eq!(std::fs::read(&idx).unwrap(), good, "{what}: rewritten");
        check_reader(d.path(), 300);
    }
    // An index that claims more than the segment holds (the segment was cut after it was
    // written): only what lies inside the file counts.
    let active = files_ending(d.path(), ".active").remove(0);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let r = Store::open_read_only(d.path()).unwrap();
    let before = all(&r).len();
    drop(r);
    f.set_len(len / 2).unwrap();
    drop(f);
    let r = Store::open_read_only(d.path()).unwrap();
    let got = all(&r);
    assert!(got.len() < before && !got.is_empty());
    assert!(got.iter().all(|x| x.message == msg(x.seq)));
    drop(r);
    let w = Store::open(d.path(), small_limits()).unwrap();
    let kept = all(&w).len();
    assert_eq!(kept, got.len(), "reader and recovering writer agree");
    drop(w);
    let after = std::fs::read(&idx).unwrap();
    assert!(after.len() < good.len() && good.starts_with(&after[..after.len().min(24)]));
}

#[test]
fn store_without_index_files_reads_the_same_and_gets_them_at_the_next_writer_open() {
    let d = tempfile::tempdir().unwrap();
    store_with(d.path(), 300);
    let idx = files_ending(d.path(), ".idx").remove(0);
    let good = std::fs::read(&idx).unwrap();
    std::fs::remove_file(&idx).unwrap();
    check_reader(d.path(), 300);
    drop(Store::open(d.path(), small_limits()).unwrap());
    assert_eq!(std::fs::read(&idx).unwrap(), good);
}

#[test]
fn seal_removes_the_index_and_readers_follow_appends_after_it() {
    let d = tempfile::tempdir().unwrap();
    let w = Store::open(d.path(), small_limits()).unwrap();
    for i in 0..100u64 {
        w.append("k", &rec(i as i64 * 10, &msg(i), i + 1)).unwrap();
    }
    w.sync().unwrap();
    let r = Store::open_read_only(d.path()).unwrap();
    assert_eq!(all(&r).len(), 100);
    for i in 100..200u64 {
        w.append("k", &rec(i as i64 * 10, &msg(i), i + 1)).unwrap();
    }
    w.sync().unwrap();
    r.refresh_source("k").unwrap();
    assert_eq!(messages(&all(&r)), expected(200));
    w.seal("k").unwrap();
    assert!(files_ending(d.path(), ".idx").is_empty());
    r.refresh_source("k").unwrap();
    assert_eq!(messages(&all(&r)), expected(200));
}

#[test]
fn active_index_format_matches_the_golden_file() {
    let d = tempfile::tempdir().unwrap();
    let w = Store::open(d.path(), small_limits()).unwrap();
    for i in 0..12u64 {
        w.append(
            "k",
            &rec(1_700_000_000_000_000_000 + i as i64, &msg(i), i + 1),
        )
        .unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let mut got = String::new();
    for p in files_ending(d.path(), ".idx") {
        let bytes = std::fs::read(&p).unwrap();
        got.push_str(&format!(
            "== {} ({} bytes)\n",
            p.file_name().unwrap().to_string_lossy(),
            bytes.len()
        ));
        for chunk in bytes.chunks(28) {
            let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            got.push_str(&hex);
            got.push('\n');
        }
    }
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/active_index_v1.txt");
    if std::env::var_os("RUNNEL_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        got == want,
        "active index format changed: bump its version (RNLAIX01) and keep reading the old \
         one; regenerate with RUNNEL_UPDATE_GOLDEN=1.\n--- got ---\n{got}"
    );
    // And a store holding it reads back.
    check_reader_small(d.path());
}

fn check_reader_small(dir: &Path) {
    let r = Store::open_read_only(dir).unwrap();
    assert_eq!(messages(&all(&r)), expected(12));
}

/// `verify_dir` reports an index file that disagrees with its segment (a flipped byte, a cut
/// entry, entries of other frames), with the offset of the first entry it cannot trust, and
/// passes a sound one or none at all; the writer's next open rewrites it and verify passes again.
#[test]
fn verify_reports_an_index_file_that_disagrees_with_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 400);
    let idx = files_ending(dir.path(), ".idx");
    assert_eq!(idx.len(), 1, "{idx:?}");
    let idx = &idx[0];
    let sound = std::fs::read(idx).unwrap();
    let entries = (sound.len() - 24) / 56;
    assert!(
        entries >= 4,
        "the test wants several entries, has {entries}"
    );
    let verify = || runnel_index::verify_dir(dir.path()).unwrap();
    let r = verify();
    assert!(r.is_ok(), "a sound index: {:?}", r.problems);

    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damaged: [(&str, Damage, u64); 3] = [
        // The third entry's `count` changes; its CRC no longer matches.
        (
            "a flipped byte",
            Box::new(|b: &mut Vec<u8>| b[24 + 2 * 56 + 24] ^= 1),
            2,
        ),
        (
            "an entry cut short",
            Box::new(|b: &mut Vec<u8>| b.truncate(24 + 56 + 30)),
            1,
        ),
        // Entries 1 and 2 swapped: each CRC is sound, the chain of offsets is not.
        (
            "entries out of order",
            Box::new(|b: &mut Vec<u8>| {
                let (one, two) = (24 + 56, 24 + 2 * 56);
                let e1: Vec<u8> = b[one..one + 56].to_vec();
                b.copy_within(two..two + 56, one);
                b[two..two + 56].copy_from_slice(&e1);
            }),
            1,
        ),
    ];
    for (what, damage, trusted) in damaged {
        let mut b = sound.clone();
        damage(&mut b);
        std::fs::write(idx, &b).unwrap();
        let r = verify();
        assert_eq!(r.problems.len(), 1, "{what}: {:?}", r.problems);
        let p = &r.problems[0];
        assert_eq!(&p.path, idx, "{what}");
        assert_eq!(p.offset, 24 + trusted * 56, "{what}: {p:?}");
        assert!(p.what.contains("index hint disagrees"), "{what}: {p:?}");
        // The records are all there either way: the index is a hint.
        let s = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(all(&s).len(), 400, "{what}");
    }
    // A writer's open rewrites the damaged file; verify passes again.
    drop(Store::open(dir.path(), small_limits()).unwrap());
    let r = verify();
    assert!(r.is_ok(), "after the writer's open: {:?}", r.problems);
    assert_eq!(std::fs::read(idx).unwrap(), sound);
    // No index file at all (a store written before they existed) is not a problem.
    std::fs::remove_file(idx).unwrap();
    assert!(verify().is_ok());
}
