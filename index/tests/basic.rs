//! Append, sync, read back, reopen: the basic contract of the store.

mod common;
use common::*;
use runnel_index::{Error, Query, SourceIdentity, Store};

#[test]
fn appended_records_come_back_in_order_before_and_after_reopen_and_seal() {
    let dir = tempfile::tempdir().unwrap();
    let id = SourceIdentity {
        pod: Some("web".into()),
        ..Default::default()
    };
    {
        let s = Store::open(dir.path(), small_limits()).unwrap();
        s.upsert_source("k", &id).unwrap();
        for i in 0..100u64 {
            let m = msg(i);
            assert_eq!(s.append("k", &rec(i as i64 * 10, &m, i * 100)).unwrap(), i);
        }
        // Readable before sync through query; read_from only serves durable records.
        assert_eq!(s.query("k", &Query::default()).unwrap().records.len(), 100);
        assert_eq!(s.read_from("k", 0, 1000, 1 << 20).unwrap().records.len(), 0);
        s.sync().unwrap();
        assert_eq!(s.durable_position(&FILE), Some(99 * 100));
        s.seal("k").unwrap();
        for i in 100..150u64 {
            let m = msg(i);
            s.append("k", &rec(i as i64 * 10, &m, i * 100)).unwrap();
        }
        s.sync().unwrap();
        let b = s.read_from("k", 0, 1000, 1 << 20).unwrap();
        assert_eq!(b.records.len(), 150);
        assert_eq!(b.next_seq, 150);
    }
    let s = Store::open(dir.path(), small_limits()).unwrap();
    let all = s.read_from("k", 0, 1000, 1 << 20).unwrap();
    assert_eq!(all.records.len(), 150);
    assert_eq!(all.gap, 0);
    for (i, r) in all.records.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.message, msg(i as u64));
        assert_eq!(r.time_ns, i as i64 * 10);
        assert_eq!(r.time_style.offset_secs, 3600);
    }
    assert_eq!(s.durable_position(&FILE), Some(149 * 100));
    let info = s.sources();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].identity, id);
    assert_eq!(info[0].next_seq, 150);
    assert_eq!(info[0].records, 150);
    assert_eq!(info[0].min_time_ns, Some(0));
    assert_eq!(info[0].max_time_ns, Some(1490));
    assert_eq!(info[0].segments, 2);
    assert!(info[0].disk_bytes > 0);
    assert_eq!(s.stats().active_segments, 1);
    assert!(s.verify().is_ok(), "{:?}", s.verify().problems);
    // Sequences continue after reopen.
    assert_eq!(s.append("k", &rec(5, b"after", 1)).unwrap(), 150);
}

#[test]
fn read_from_pages_by_count_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), small_limits()).unwrap();
    for i in 0..50u64 {
        s.append("k", &rec(i as i64, b"0123456789", i)).unwrap();
    }
    s.sync().unwrap();
    let b = s.read_from("k", 10, 7, 1 << 20).unwrap();
    assert_eq!(b.records.first().unwrap().seq, 10);
    assert_eq!(b.records.len(), 7);
    assert_eq!(b.next_seq, 17);
    let b = s.read_from("k", 17, 100, 25).unwrap();
    assert_eq!(
        b.records.len(),
        3,
        "stops after the record reaching 25 bytes"
    );
    assert_eq!(b.next_seq, 20);
    let b = s.read_from("k", 50, 100, 100).unwrap();
    assert!(b.records.is_empty());
    assert_eq!(b.next_seq, 50);
}

#[test]
fn second_writer_is_refused_with_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _a = Store::open(dir.path(), small_limits()).unwrap();
    match Store::open(dir.path(), small_limits()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected Locked, got {:?}", other.err()),
    }
}

#[test]
fn unknown_source_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), small_limits()).unwrap();
    assert!(matches!(
        s.query("nope", &Query::default()),
        Err(Error::UnknownSource(_))
    ));
}

#[test]
fn size_limit_seals_during_append_and_records_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let limits = runnel_index::Limits {
        segment_max_bytes: 4096,
        block_raw_bytes: 512,
        ..Default::default()
    };
    let s = Store::open(dir.path(), limits).unwrap();
    for i in 0..500u64 {
        let m = msg(i);
        s.append("k", &rec(i as i64, &m, i)).unwrap();
    }
    s.sync().unwrap();
    let st = s.stats();
    assert!(st.sealed_segments >= 5, "{st:?}");
    let b = s.read_from("k", 0, 10_000, 1 << 30).unwrap();
    assert_eq!(b.records.len(), 500);
    assert!(b.records.iter().enumerate().all(|(i, r)| r.seq == i as u64));
}

#[test]
fn read_only_store_sees_writer_data_after_refresh_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let w = Store::open(dir.path(), small_limits()).unwrap();
    w.append("k", &rec(1, b"one", 1)).unwrap();
    w.sync().unwrap();
    let r = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(r.query("k", &Query::default()).unwrap().records.len(), 1);
    w.append("k", &rec(2, b"two", 2)).unwrap();
    w.sync().unwrap();
    w.seal("k").unwrap();
    w.append("k", &rec(3, b"three", 3)).unwrap();
    w.sync().unwrap();
    r.refresh().unwrap();
    let got = r.query("k", &Query::default()).unwrap().records;
    assert_eq!(got.len(), 3);
    assert!(matches!(
        r.append("k", &rec(4, b"x", 4)),
        Err(Error::ReadOnly)
    ));
}

#[test]
fn seal_due_seals_by_age_counted_from_the_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let limits = runnel_index::Limits {
        // Long enough that a loaded machine never spends it between two adjacent calls.
        segment_max_age: std::time::Duration::from_secs(2),
        ..small_limits()
    };
    let s = Store::open(dir.path(), limits).unwrap();
    s.append("k", &rec(1, b"a", 1)).unwrap();
    s.seal("k").unwrap();
    // The new (empty) active segment ages without records (time has to pass here: a sleep
    // that is a precondition, not a wait for a result).
    std::thread::sleep(std::time::Duration::from_millis(2200));
    s.append("k", &rec(2, b"b", 2)).unwrap();
    s.seal_due().unwrap();
    assert_eq!(s.stats().sealed_segments, 1, "young first record: not due");
    assert_eq!(s.stats().active_segments, 1, "young first record: not due");
    // Due once the first record is older than the age: waited for with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while s.stats().active_segments != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        s.seal_due().unwrap();
    }
    // Sealed, and merged with the small segment before it.
    assert_eq!(s.stats().sealed_segments, 1);
    // The empty active segment that follows is on disk but not open.
    assert_eq!(s.stats().active_segments, 0);
    let info = &s.sources()[0];
    assert_eq!((info.records, info.segments), (2, 1));
    assert_eq!(s.query("k", &Query::default()).unwrap().records.len(), 2);
}

fn sealed_names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("sources")).unwrap() {
        for f in std::fs::read_dir(e.unwrap().path()).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".sealed") {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn age_due_seals_of_a_quiet_source_merge_into_few_segments() {
    let dir = tempfile::tempdir().unwrap();
    let limits = runnel_index::Limits {
        segment_max_age: std::time::Duration::ZERO,
        segment_max_bytes: 8 << 10,
        ..small_limits()
    };
    let s = Store::open(dir.path(), limits.clone()).unwrap();
    // 40 age-due seals of 3 records (~70 bytes each): merged until the previous segment holds
    // a quarter of segment_max_bytes (2 KiB raw), then a new one starts.
    let mut n = 0u64;
    for _ in 0..40 {
        for _ in 0..3 {
            let m = msg(n);
            s.append("k", &rec(n as i64, &m, n + 1)).unwrap();
            n += 1;
        }
        s.sync().unwrap();
        s.seal_due().unwrap();
    }
    let segs = s.stats().sealed_segments;
    assert!(
        (3..=6).contains(&segs),
        "{segs} sealed segments for 40 seals"
    );
    let check = |s: &Store| {
        let b = s.read_from("k", 0, 1000, 1 << 20).unwrap();
        assert_eq!(b.records.len() as u64, n);
        for (i, r) in b.records.iter().enumerate() {
            assert_eq!((r.seq, &r.message), (i as u64, &msg(i as u64)));
        }
        assert_eq!(s.durable_position(&FILE), Some(n));
        let q = s.query(
            "k",
            &Query {
                since_ns: Some(50),
                until_ns: Some(53),
                ..Query::default()
            },
        );
        assert_eq!(q.unwrap().records.len(), 3);
        assert!(s.verify().is_ok(), "{:?}", s.verify().problems);
    };
    check(&s);
    // The limits count frame bytes (what the active segment holds), whatever the sealed format
    // stores: a segment is merged into only while it holds under a quarter of
    // segment_max_bytes, so none ends up past that plus one seal's frames.
    let one_seal = (0..n)
        .step_by(3)
        .map(|i| (i..i + 3).map(frame_len).sum::<u64>())
        .max()
        .unwrap();
    for path in files_with(dir.path(), ".sealed") {
        let name = path.file_name().unwrap().to_str().unwrap();
        let (first, end) = name
            .strip_prefix("seg-")
            .and_then(|r| r.strip_suffix(".sealed"))
            .and_then(|r| r.split_once('-'))
            .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
            .unwrap();
        let frames: u64 = (first..end).map(frame_len).sum();
        assert!(
            frames < (8 << 10) / 4 + one_seal,
            "{name}: {frames} frame bytes, merged past the {} B limit",
            (8 << 10) / 4
        );
    }
    drop(s);
    let s = Store::open(dir.path(), limits).unwrap();
    check(&s);
    assert_eq!(s.stats().sealed_segments, segs);
}

#[test]
fn merging_stops_at_the_time_span_limit() {
    let dir = tempfile::tempdir().unwrap();
    // max_age 16 s: a merged segment spans at most 1 s.
    let limits = runnel_index::Limits {
        segment_max_age: std::time::Duration::ZERO,
        max_age: std::time::Duration::from_secs(16),
        ..small_limits()
    };
    let s = Store::open(dir.path(), limits).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    for i in 0..6u64 {
        // Two seals 0.4 s apart, then a jump of 2 s.
        let t = now + (i / 2) as i64 * 2_000_000_000 + (i % 2) as i64 * 400_000_000;
        s.append("k", &rec(t, b"x", i + 1)).unwrap();
        s.seal_due().unwrap();
    }
    assert_eq!(
        sealed_names(dir.path()).len(),
        3,
        "{:?}",
        sealed_names(dir.path())
    );
}

#[test]
fn crash_during_a_merging_seal_keeps_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let limits = runnel_index::Limits {
        segment_max_age: std::time::Duration::ZERO,
        ..small_limits()
    };
    let s = Store::open(dir.path(), limits.clone()).unwrap();
    for i in 0..10u64 {
        let m = msg(i);
        s.append("k", &rec(i as i64, &m, i + 1)).unwrap();
    }
    s.seal("k").unwrap();
    let src_dir = std::fs::read_dir(dir.path().join("sources"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let first = sealed_names(dir.path());
    let first_bytes = std::fs::read(src_dir.join(&first[0])).unwrap();
    for i in 10..15u64 {
        let m = msg(i);
        s.append("k", &rec(i as i64, &m, i + 1)).unwrap();
    }
    s.sync().unwrap();
    let active = src_dir.join("seg-00000000000000000010.active");
    let active_bytes = std::fs::read(&active).unwrap();
    s.seal_due().unwrap();
    assert_eq!(
        sealed_names(dir.path()),
        vec!["seg-00000000000000000000-00000000000000000015.sealed".to_string()]
    );
    drop(s);
    // As if the seal had crashed after writing the merged segment: the small segment and the
    // old active segment are still there.
    std::fs::write(src_dir.join(&first[0]), &first_bytes).unwrap();
    std::fs::write(&active, &active_bytes).unwrap();
    let r = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(r.read_from("k", 0, 100, 1 << 20).unwrap().records.len(), 15);
    assert_eq!(r.query("k", &Query::default()).unwrap().records.len(), 15);
    drop(r);
    let s = Store::open(dir.path(), limits).unwrap();
    assert_eq!(
        sealed_names(dir.path()).len(),
        1,
        "the inner copy is removed"
    );
    assert!(!active.exists());
    let b = s.read_from("k", 0, 100, 1 << 20).unwrap();
    assert_eq!(b.records.len(), 15);
    assert!(b.records.iter().enumerate().all(|(i, r)| r.seq == i as u64));
    assert_eq!(s.append("k", &rec(99, b"next", 99)).unwrap(), 15);
}

#[test]
fn oversized_message_is_refused_and_nothing_is_appended() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path(), runnel_index::Limits::default()).unwrap();
    let big = vec![b'x'; runnel_index::MAX_MESSAGE + 1];
    let err = s.append("k", &rec(1, &big, 1)).unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { len, .. } if len == big.len()),
        "{err}"
    );
    assert_eq!(s.append("k", &rec(2, b"fits", 2)).unwrap(), 0);
    s.sync().unwrap();
    let b = s.read_from("k", 0, 10, 1 << 20).unwrap();
    assert_eq!(b.records.len(), 1);
    assert_eq!(s.durable_position(&FILE), Some(2));
}

#[test]
fn sealed_quiet_sources_hold_no_file_descriptor() {
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    let before = fds();
    for i in 0..300u64 {
        let key = format!("quiet-{i}");
        s.append(&key, &rec(1, b"hello", 1)).unwrap();
        s.seal(&key).unwrap();
    }
    s.sync().unwrap();
    // Other tests of this binary run beside this one: leave them room, but far below 300.
    assert!(
        fds() < before + 100,
        "{} descriptors for 300 sealed sources",
        fds() - before
    );
    assert_eq!(s.stats().active_segments, 0);
    drop(s);
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert!(fds() < before + 100);
    assert_eq!(s.append("quiet-7", &rec(2, b"again", 2)).unwrap(), 1);
    assert_eq!(s.stats().active_segments, 1);
}

#[test]
fn a_key_too_long_for_a_hex_file_name_is_stored_and_reopened() {
    use runnel_index::{Limits, NewRecord, Position, RecordFlags, Stream, TimeStyle};
    let dir = tempfile::tempdir().unwrap();
    let key = format!("cri:shop_{}_uid/app/0", "a-very-long-pod-name-".repeat(12));
    assert!(key.len() * 2 > 255);
    {
        let store = Store::open(dir.path(), Limits::default()).unwrap();
        store
            .upsert_source(&key, &runnel_index::SourceIdentity::default())
            .unwrap();
        store
            .append(
                &key,
                &NewRecord {
                    time_ns: 1,
                    time_style: TimeStyle::default(),
                    stream: Stream::Stdout,
                    flags: RecordFlags::default(),
                    message: b"long key",
                    position: Position::None,
                },
            )
            .unwrap();
        store.sync().unwrap();
    }
    let store = Store::open(dir.path(), Limits::default()).unwrap();
    let got = store.query(&key, &Query::default()).unwrap();
    assert_eq!(got.records.len(), 1);
    assert_eq!(got.records[0].message, b"long key");
    assert!(store.sources().iter().any(|s| s.key == key));
}
