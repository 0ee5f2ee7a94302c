//! Retention: disk budget and max age, oldest data first across sources but only from the front
//! of each source, every deletion counted, cursors that fell behind get an explicit gap,
//! sequences and file positions survive deletion and restart.

mod common;
use common::*;
use runnel_index::{FileId, Limits, NewRecord, Position, Store};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn fill(s: &Store, key: &str, segs: u64, per: u64, t0: i64, step: i64) {
    let mut t = t0;
    for _ in 0..segs {
        for _ in 0..per {
            let m = msg(t as u64 % 1000);
            s.append(key, &rec(t, &m, 1)).unwrap();
            t += step;
        }
        s.seal(key).unwrap();
    }
}

#[test]
fn disk_budget_deletes_globally_oldest_segments_and_reports_gap() {
    let d = tempfile::tempdir().unwrap();
    let base = now_ns();
    let mut s = Store::open(d.path(), small_limits()).unwrap();
    // Source a: older data; source b: newer data. Interleaved in time per segment.
    fill(&s, "a", 4, 50, base, 2);
    fill(&s, "b", 4, 50, base + 1, 2);
    let total = s.stats().disk_bytes;
    let seg_bytes = s.sources()[0].disk_bytes / 4;
    drop(s);
    // Budget for about half the data.
    let limits = Limits {
        max_disk_bytes: total / 2 + seg_bytes / 2,
        ..small_limits()
    };
    s = Store::open(d.path(), limits).unwrap();
    s.enforce_retention().unwrap();
    let st = s.stats();
    assert!(st.disk_bytes <= total / 2 + seg_bytes / 2, "{st:?}");
    let disk = st.retention.iter().find(|r| r.0 == "disk").unwrap();
    assert_eq!(disk.1, 4, "four segments deleted: {:?}", st.retention);
    assert_eq!(disk.2, 200);
    assert!(disk.3 > 0);
    // Fair: each source lost its two oldest segments (times interleave).
    for info in s.sources() {
        assert_eq!(info.first_seq, 100, "{}", info.key);
        assert_eq!(info.next_seq, 200);
        assert_eq!(info.records, 100);
    }
    let b = s.read_from("a", 0, 10, 1 << 20).unwrap();
    assert_eq!(b.gap, 100, "explicit gap, not a silent jump");
    assert_eq!(b.records[0].seq, 100);
    assert_eq!(b.next_seq, 110);
}

#[test]
fn max_age_deletes_old_segments_only() {
    let d = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_age: Duration::from_secs(3600),
        ..small_limits()
    };
    let s = Store::open(d.path(), limits).unwrap();
    let old = now_ns() - 2 * 3600 * 1_000_000_000;
    fill(&s, "k", 2, 20, old, 1);
    fill(&s, "k", 1, 20, now_ns(), 1);
    s.enforce_retention().unwrap();
    let st = s.stats();
    let age = st.retention.iter().find(|r| r.0 == "age").unwrap();
    assert_eq!((age.1, age.2), (2, 40));
    assert!(st.retention.iter().all(|r| r.0 != "disk"));
    let info = &s.sources()[0];
    assert_eq!((info.first_seq, info.next_seq, info.records), (40, 60, 20));
}

#[test]
fn single_source_over_budget_gets_its_active_segment_sealed_and_deleted() {
    let d = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_disk_bytes: 100,
        ..small_limits()
    };
    let s = Store::open(d.path(), limits).unwrap();
    for i in 0..100u64 {
        let m = msg(i);
        s.append("k", &rec(now_ns(), &m, i)).unwrap();
    }
    s.sync().unwrap();
    s.enforce_retention().unwrap();
    let st = s.stats();
    assert_eq!(st.sealed_segments, 0, "{st:?}");
    assert_eq!(st.retention[0].2, 100);
    // What is left: the empty active segment and the position stub (one position).
    assert!(st.disk_bytes <= 8 + 8 + 32 + 72, "{st:?}");
    // The records are gone but how far their file was read is not: the tailer must not read
    // those lines again.
    assert_eq!(s.durable_position(&FILE), Some(99));
    drop(s);
    // The sequence and the position survive deletion of everything and a restart.
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert_eq!(s.durable_position(&FILE), Some(99));
    assert_eq!(s.append("k", &rec(1, b"x", 1)).unwrap(), 100);
    s.sync().unwrap();
    let b = s.read_from("k", 0, 10, 1000).unwrap();
    assert_eq!(b.gap, 100);
    assert_eq!(b.records.len(), 1);
}

fn sealed_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("sources")).unwrap() {
        for f in std::fs::read_dir(e.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.to_string_lossy().ends_with(".sealed") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn file(n: u64) -> FileId {
    FileId {
        dev: 9,
        ino: n,
        fingerprint: n * 7,
    }
}

#[test]
fn a_later_segment_with_older_times_is_not_deleted_before_the_front() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    let base = now_ns();
    // The node clock jumped back between the two segments.
    fill(&s, "k", 1, 20, base, 1);
    fill(&s, "k", 1, 20, base - 3_600_000_000_000, 1);
    let front_bytes = sealed_files(d.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .next()
        .unwrap();
    let total = s.stats().disk_bytes;
    drop(s);
    let limits = Limits {
        max_disk_bytes: total - front_bytes / 2,
        ..small_limits()
    };
    let s = Store::open(d.path(), limits).unwrap();
    s.enforce_retention().unwrap();
    let info = &s.sources()[0];
    assert_eq!((info.first_seq, info.records), (20, 20), "the front went");
    let b = s.read_from("k", 0, 100, 1 << 20).unwrap();
    assert_eq!((b.gap, b.records.len()), (20, 20));
}

#[test]
fn positions_of_deleted_records_move_into_one_bounded_stub() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    let t = now_ns();
    // 100 segments, each read from its own (rotated) file.
    for n in 0..100u64 {
        for j in 0..3u64 {
            let rec = NewRecord {
                position: Position::File {
                    file: file(n),
                    offset: 10 * (j + 1),
                },
                ..rec(t, b"rotated file line", 0)
            };
            s.append("k", &rec).unwrap();
        }
        s.seal("k").unwrap();
    }
    for j in 0..2u64 {
        let rec = NewRecord {
            position: Position::File {
                file: file(100),
                offset: 5 * (j + 1),
            },
            ..rec(t, b"live file line", 0)
        };
        s.append("k", &rec).unwrap();
    }
    s.sync().unwrap();
    drop(s);
    let limits = Limits {
        max_disk_bytes: 1,
        ..small_limits()
    };
    let s = Store::open(d.path(), limits).unwrap();
    s.enforce_retention().unwrap();
    let st = s.stats();
    assert_eq!(st.sealed_segments, 0, "{st:?}");
    assert_eq!(st.retention.iter().map(|r| r.2).sum::<u64>(), 302);
    let stubs = sealed_files(d.path());
    assert_eq!(stubs.len(), 1, "one stub: {stubs:?}");
    assert!(stubs[0].ends_with("seg-00000000000000000302-00000000000000000302.sealed"));
    let check = |s: &Store| {
        // The files most recently deleted are remembered, the oldest beyond the bound are not.
        assert_eq!(s.durable_position(&file(100)), Some(10));
        assert_eq!(s.durable_position(&file(99)), Some(30));
        // 64 files kept: 100 (the live file, deleted last) and 99 down to 37.
        assert_eq!(s.durable_position(&file(37)), Some(30));
        assert_eq!(s.durable_position(&file(36)), None);
        assert_eq!(s.durable_position(&file(0)), None);
        let info = &s.sources()[0];
        assert_eq!((info.first_seq, info.next_seq, info.records), (302, 302, 0));
        assert_eq!(
            info.segments, 0,
            "the stub and the empty active segment do not count"
        );
    };
    check(&s);
    assert!(s.verify().is_ok(), "{:?}", s.verify().problems);
    drop(s);
    let s = Store::open(d.path(), small_limits()).unwrap();
    check(&s);
    assert_eq!(s.append("k", &rec(t, b"more", 1)).unwrap(), 302);
    s.sync().unwrap();
    s.seal("k").unwrap();
    let b = s.read_from("k", 0, 10, 1 << 20).unwrap();
    assert_eq!((b.gap, b.records.len(), b.next_seq), (302, 1, 303));
}

#[test]
fn crash_between_stub_and_deletion_keeps_the_newest_stub_and_loses_nothing() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    let t = now_ns();
    for n in 0..4u64 {
        for j in 0..5u64 {
            let rec = NewRecord {
                position: Position::File {
                    file: file(n),
                    offset: j + 1,
                },
                ..rec(t + n as i64, b"line", 0)
            };
            s.append("k", &rec).unwrap();
        }
        s.seal("k").unwrap();
    }
    let seg_bytes = s.stats().disk_bytes / 4;
    drop(s);
    let before: Vec<(PathBuf, Vec<u8>)> = sealed_files(d.path())
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    // Two rounds of retention leave a stub at 10 and the segments 10..15, 15..20.
    let limits = Limits {
        max_disk_bytes: 2 * seg_bytes + seg_bytes / 2,
        ..small_limits()
    };
    let s = Store::open(d.path(), limits.clone()).unwrap();
    s.enforce_retention().unwrap();
    assert_eq!(s.sources()[0].first_seq, 10);
    drop(s);
    // Put back segment 5..10 and the stub at 5 that the first deletion wrote, as if the second
    // deletion had crashed after writing its stub.
    let dir = before[0].0.parent().unwrap().to_path_buf();
    std::fs::write(&before[1].0, &before[1].1).unwrap();
    let stub5 = sealed_files(d.path())
        .into_iter()
        .find(|p| p.ends_with("seg-00000000000000000010-00000000000000000010.sealed"))
        .unwrap();
    let stub5_bytes = runnel_index_stub_bytes(&stub5, 5);
    std::fs::write(
        dir.join("seg-00000000000000000005-00000000000000000005.sealed"),
        stub5_bytes,
    )
    .unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert!(
        !dir.join("seg-00000000000000000005-00000000000000000005.sealed")
            .exists(),
        "older stub removed at open"
    );
    let info = &s.sources()[0];
    assert_eq!((info.first_seq, info.records), (5, 15));
    for n in 0..4 {
        assert_eq!(s.durable_position(&file(n)), Some(5), "file {n}");
    }
    assert!(s.verify().is_ok(), "{:?}", s.verify().problems);
    drop(s);
    let s = Store::open(d.path(), limits).unwrap();
    s.enforce_retention().unwrap();
    let info = &s.sources()[0];
    assert_eq!((info.first_seq, info.records), (10, 10));
    for n in 0..4 {
        assert_eq!(s.durable_position(&file(n)), Some(5), "file {n}");
    }
    assert_eq!(sealed_files(d.path()).len(), 3, "one stub and two segments");
}

/// The bytes of a stub file at `seq` with the positions of the stub at `path` (re-footered).
fn runnel_index_stub_bytes(path: &Path, seq: u64) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    let f = b.len() - 72;
    let mut out = b.clone();
    out[f + 16..f + 24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c(&out[f..f + 60]);
    out[f + 60..f + 64].copy_from_slice(&crc.to_le_bytes());
    out
}

/// CRC32C (Castagnoli), bitwise: the test does not depend on the crate's helpers.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn retention_limits_change_while_the_store_is_open() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    let old = now_ns() - 2 * 3600 * 1_000_000_000;
    fill(&s, "k", 2, 20, old, 1);
    fill(&s, "k", 1, 20, now_ns(), 1);
    s.enforce_retention().unwrap();
    assert_eq!(
        s.sources()[0].records,
        60,
        "the opening limits keep everything"
    );
    // A reload lowers max_age below the old segments' age: the next pass deletes them, on the
    // same open store.
    s.set_retention(small_limits().max_disk_bytes, Duration::from_secs(3600));
    assert_eq!(s.retention().1, Duration::from_secs(3600));
    s.enforce_retention().unwrap();
    assert_eq!(s.sources()[0].records, 20);
    // And a disk budget of one byte leaves only what cannot go (the active segment is empty:
    // everything was sealed, so the last sealed segment goes too).
    s.set_retention(1, Duration::from_secs(3600));
    s.enforce_retention().unwrap();
    assert!(s.stats().disk_bytes < 4096, "{:?}", s.stats());
}
