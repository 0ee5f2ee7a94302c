//! Query semantics: since inclusive, until exclusive, tail before since, limit_bytes after both,
//! non-monotonic timestamps, tail across segments, and skipping of blocks outside the window.

mod common;
use common::*;
use runnel_index::{Query, Store};

fn times(s: &Store, q: Query) -> Vec<i64> {
    s.query("k", &q)
        .unwrap()
        .records
        .iter()
        .map(|r| r.time_ns)
        .collect()
}

/// Store with times 0,10,..,990 (100 records) over two sealed segments and the active one.
fn store_0_to_990(dir: &std::path::Path) -> Store {
    let s = Store::open(dir, small_limits()).unwrap();
    for i in 0..100u64 {
        s.append("k", &rec(i as i64 * 10, b"0123456789", i))
            .unwrap();
        if i == 39 || i == 69 {
            s.seal("k").unwrap();
        }
    }
    s.sync().unwrap();
    s
}

#[test]
fn since_is_inclusive_and_until_is_exclusive() {
    let d = tempfile::tempdir().unwrap();
    let s = store_0_to_990(d.path());
    let q = Query {
        since_ns: Some(100),
        until_ns: Some(150),
        ..Default::default()
    };
    assert_eq!(times(&s, q), vec![100, 110, 120, 130, 140]);
}

#[test]
fn tail_is_taken_before_since_like_the_kubelet() {
    let d = tempfile::tempdir().unwrap();
    let s = store_0_to_990(d.path());
    // Last 5 lines are 950..990; since 970 drops two of them (not "5 lines after since").
    let q = Query {
        tail_lines: Some(5),
        since_ns: Some(970),
        ..Default::default()
    };
    assert_eq!(times(&s, q), vec![970, 980, 990]);
    // until applies first: last 3 lines before 500.
    let q = Query {
        tail_lines: Some(3),
        until_ns: Some(500),
        ..Default::default()
    };
    assert_eq!(times(&s, q), vec![470, 480, 490]);
    // tail larger than since window: since wins.
    let q = Query {
        tail_lines: Some(3),
        since_ns: Some(2000),
        ..Default::default()
    };
    assert!(times(&s, q).is_empty());
    let q = Query {
        tail_lines: Some(0),
        ..Default::default()
    };
    assert!(times(&s, q).is_empty());
}

#[test]
fn tail_spans_segments() {
    let d = tempfile::tempdir().unwrap();
    let s = store_0_to_990(d.path());
    // Active holds 70..99; 45 lines reach back into the second sealed segment (40..69) and
    // the first (0..39).
    let q = Query {
        tail_lines: Some(65),
        ..Default::default()
    };
    let t = times(&s, q);
    assert_eq!(t.len(), 65);
    assert_eq!(t[0], 350);
    assert_eq!(*t.last().unwrap(), 990);
    assert!(t.windows(2).all(|w| w[0] < w[1]), "append order");
}

#[test]
fn limit_bytes_stops_after_the_record_reaching_it_and_applies_last() {
    let d = tempfile::tempdir().unwrap();
    let s = store_0_to_990(d.path());
    let q = Query {
        since_ns: Some(500),
        limit_bytes: Some(25),
        ..Default::default()
    };
    assert_eq!(times(&s, q), vec![500, 510, 520]);
    let q = Query {
        tail_lines: Some(4),
        limit_bytes: Some(20),
        ..Default::default()
    };
    assert_eq!(times(&s, q), vec![960, 970]);
}

#[test]
fn non_monotonic_times_use_per_block_ranges() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    // Block-sized groups whose times go backwards between groups.
    let groups: [i64; 4] = [5000, 1000, 3000, 2000];
    let mut n = 0;
    for base in groups {
        for j in 0..20 {
            s.append("k", &rec(base + j, b"abcdefghij", n)).unwrap();
            n += 1;
        }
    }
    s.seal("k").unwrap();
    let q = Query {
        since_ns: Some(2000),
        until_ns: Some(3010),
        ..Default::default()
    };
    let t = times(&s, q);
    let mut want: Vec<i64> = (3000..3010).collect();
    want.extend(2000..2020);
    assert_eq!(t, want, "append order, not time order");
    // Tail counts records in append order: the last 25 appended are 3015..3019 and 2000..2019.
    let q = Query {
        tail_lines: Some(25),
        ..Default::default()
    };
    let t = times(&s, q);
    assert_eq!(t.len(), 25);
    assert_eq!(t[0], 3015);
    assert_eq!(t[5], 2000);
}

#[test]
fn blocks_outside_the_window_are_not_decompressed() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    for i in 0..2000u64 {
        s.append("k", &rec(i as i64 * 1000, b"some log message text", i))
            .unwrap();
    }
    s.seal("k").unwrap();
    let total_blocks: u64 = {
        let r = s.query("k", &Query::default()).unwrap();
        assert_eq!(r.records.len(), 2000);
        r.blocks_decompressed
    };
    assert!(total_blocks > 20, "{total_blocks}");
    let r = s
        .query(
            "k",
            &Query {
                since_ns: Some(1_000_000),
                until_ns: Some(1_010_000),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.records.len(), 10);
    assert!(r.blocks_decompressed <= 5, "{}", r.blocks_decompressed);
    assert!(r.bytes_read > 0 && r.bytes_decompressed > 0);
    // tail 3 reads only the newest block or two.
    let r = s
        .query(
            "k",
            &Query {
                tail_lines: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.records.len(), 3);
    assert!(r.blocks_decompressed <= 2, "{}", r.blocks_decompressed);
    // tail 1500 with since after most of it: old blocks count without decompression.
    let r = s
        .query(
            "k",
            &Query {
                tail_lines: Some(1500),
                since_ns: Some(1_990_000),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.records.len(), 10);
    // 10 records of ~80 bytes in 256-byte blocks: at most 5 blocks out of hundreds.
    assert!(r.blocks_decompressed <= 5, "{}", r.blocks_decompressed);
}

#[test]
fn active_segment_is_queryable_before_and_after_sync() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    // More than the in-memory flush threshold so part is in the file and part buffered.
    let big = vec![b'y'; 1000];
    for i in 0..100u64 {
        s.append("k", &rec(i as i64, &big, i)).unwrap();
    }
    assert_eq!(s.query("k", &Query::default()).unwrap().records.len(), 100);
    s.sync().unwrap();
    let r = s
        .query(
            "k",
            &Query {
                since_ns: Some(50),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.records.len(), 50);
    assert!(r.records.iter().all(|x| x.message == big));
}

#[test]
fn limit_bytes_stops_decompressing_once_reached() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    for i in 0..3000u64 {
        s.append("k", &rec(i as i64, b"some log message text", i))
            .unwrap();
        if i % 1000 == 999 {
            s.seal("k").unwrap();
        }
    }
    s.sync().unwrap();
    // 21-byte messages: 100 bytes are reached by the 5th record of the window.
    let r = s
        .query(
            "k",
            &Query {
                since_ns: Some(10),
                limit_bytes: Some(100),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        r.records.iter().map(|x| x.time_ns).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    assert!(r.blocks_decompressed <= 2, "{}", r.blocks_decompressed);
    // A huge tail with a limit: the backward pass counts, the forward pass stops at the limit,
    // and no block is decompressed twice.
    let from_500 = s
        .query(
            "k",
            &Query {
                since_ns: Some(500),
                ..Default::default()
            },
        )
        .unwrap()
        .blocks_decompressed;
    let r = s
        .query(
            "k",
            &Query {
                tail_lines: Some(2500),
                limit_bytes: Some(100),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.records.first().map(|x| x.seq), Some(500));
    assert_eq!(r.records.len(), 5);
    assert_eq!(r.blocks_decompressed, from_500);
    // tail 3: the newest block is decompressed once and serves both passes.
    let r = s
        .query(
            "k",
            &Query {
                tail_lines: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.records.len(), 3);
    assert_eq!(r.records[2].seq, 2999);
    assert!(r.blocks_decompressed <= 2, "{}", r.blocks_decompressed);
}
