//! Retention: disk budget and max age, oldest data first across sources, every deletion counted,
//! cursors that fell behind get an explicit gap, sequences survive deletion and restart.

mod common;
use common::*;
use runnel_index::{Limits, Store};
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
    assert!(st.disk_bytes <= 100, "{st:?}");
    assert_eq!(st.retention[0].2, 100);
    // Positions only the deleted data knew are forgotten, exactly as a reopen would recover.
    assert_eq!(s.durable_position(&FILE), None);
    drop(s);
    // The sequence survives deletion of everything and a restart.
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert_eq!(s.append("k", &rec(1, b"x", 1)).unwrap(), 100);
    s.sync().unwrap();
    let b = s.read_from("k", 0, 10, 1000).unwrap();
    assert_eq!(b.gap, 100);
    assert_eq!(b.records.len(), 1);
}
