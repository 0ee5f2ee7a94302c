//! `read_each` hands out the records `read_from` returns, and reads that stop partway through
//! a block continue exactly where they stopped (the partly read block is kept for them).

mod common;
use common::*;
use runnel_index::{SourceIdentity, Store, StoredRecord};

#[test]
fn read_each_and_read_from_agree_batch_by_batch_across_sealed_and_active_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), small_limits()).unwrap();
    let keys = ["a", "b", "c"];
    for k in keys {
        s.upsert_source(k, &SourceIdentity::default()).unwrap();
    }
    // Three segments per source (two sealed, one active), blocks of a few records each.
    for part in 0..3u64 {
        for i in part * 200..(part + 1) * 200 {
            for k in keys {
                let m = msg(i);
                s.append(k, &rec(i as i64 * 10, &m, i * 100)).unwrap();
            }
        }
        s.sync().unwrap();
        if part < 2 {
            for k in keys {
                s.seal(k).unwrap();
            }
        }
    }
    // Round-robin over the sources in batches of uneven sizes, as the sink does, so that each
    // read stops inside a block and the next read of that source starts there after the other
    // sources were read.
    let mut from_copy = [0u64; 3];
    let mut from_view = [0u64; 3];
    let mut got: Vec<Vec<StoredRecord>> = vec![Vec::new(); 3];
    let mut turn = 0usize;
    while from_copy.iter().any(|&f| f < 600) {
        let i = turn % 3;
        let want = [7, 3, 13, 1, 40][turn % 5];
        turn += 1;
        let batch = s.read_from(keys[i], from_copy[i], want, 1 << 20).unwrap();
        let mut seen = Vec::new();
        let end = s
            .read_each(keys[i], from_view[i], want, 1 << 20, &mut |f| {
                seen.push(f.to_stored())
            })
            .unwrap();
        assert_eq!(
            seen, batch.records,
            "source {} from {}",
            keys[i], from_copy[i]
        );
        assert_eq!(end.records, batch.records.len());
        assert_eq!((end.gap, end.next_seq), (batch.gap, batch.next_seq));
        from_copy[i] = batch.next_seq;
        from_view[i] = end.next_seq;
        got[i].extend(batch.records);
    }
    for (i, recs) in got.iter().enumerate() {
        assert_eq!(recs.len(), 600, "source {}", keys[i]);
        for (n, r) in recs.iter().enumerate() {
            assert_eq!(r.seq, n as u64);
            assert_eq!(r.message, msg(n as u64));
            assert_eq!(r.time_ns, n as i64 * 10);
        }
    }
}

#[test]
fn a_byte_limit_stops_partway_and_the_next_read_starts_at_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), small_limits()).unwrap();
    s.upsert_source("k", &SourceIdentity::default()).unwrap();
    for i in 0..300u64 {
        let m = msg(i);
        s.append("k", &rec(i as i64, &m, i * 100)).unwrap();
    }
    s.sync().unwrap();
    s.seal("k").unwrap();
    let mut from = 0;
    let mut next = 0u64;
    while from < 300 {
        // About two messages per read: every read ends inside a 256-byte block.
        let b = s.read_from("k", from, 1000, 20).unwrap();
        assert!(!b.records.is_empty() && b.records.len() <= 2, "{from}");
        for r in &b.records {
            assert_eq!((r.seq, &r.message), (next, &msg(next)));
            next += 1;
        }
        assert_eq!(b.gap, 0);
        from = b.next_seq;
    }
    assert_eq!(next, 300);
}
