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
        segment_max_age: std::time::Duration::from_millis(150),
        ..small_limits()
    };
    let s = Store::open(dir.path(), limits).unwrap();
    s.append("k", &rec(1, b"a", 1)).unwrap();
    s.seal("k").unwrap();
    // The new (empty) active segment ages without records: nothing to seal.
    std::thread::sleep(std::time::Duration::from_millis(200));
    s.append("k", &rec(2, b"b", 2)).unwrap();
    s.seal_due().unwrap();
    assert_eq!(s.stats().sealed_segments, 1, "young first record: not due");
    std::thread::sleep(std::time::Duration::from_millis(200));
    s.seal_due().unwrap();
    assert_eq!(s.stats().sealed_segments, 2);
    assert_eq!(s.stats().active_segments, 1);
    assert_eq!(s.query("k", &Query::default()).unwrap().records.len(), 2);
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
