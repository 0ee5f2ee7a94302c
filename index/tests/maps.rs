//! Sealed segments are mapped only while read, and at most `max_open_maps` at once: a store
//! with hundreds of sealed segments holds few mappings (counted in `/proc/self/maps`, which
//! names the mapped files) while every read stays correct. Its own test binary, so no other
//! test's stores show up in the count.

mod common;

use common::{msg, rec};
use runnel_index::{Limits, Query, Store};
use std::path::Path;

/// Mappings of files under `dir` in this process.
fn mappings_under(dir: &Path) -> usize {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&dir))
        .count()
}

#[test]
fn many_sealed_segments_keep_at_most_max_open_maps_mapped_and_read_correctly() {
    let d = tempfile::tempdir().unwrap();
    let limits = Limits {
        block_raw_bytes: 256,
        max_open_maps: 8,
        ..Limits::default()
    };
    let (sources, segments, per) = (60u64, 4u64, 10u64);
    {
        let w = Store::open(d.path(), limits.clone()).unwrap();
        for s in 0..sources {
            let key = format!("k{s}");
            for g in 0..segments {
                for i in g * per..(g + 1) * per {
                    w.append(&key, &rec(i as i64, &msg(i), i + 1)).unwrap();
                }
                w.seal(&key).unwrap();
            }
        }
        assert!(mappings_under(d.path()) <= 8);
    }
    assert_eq!(
        mappings_under(d.path()),
        0,
        "a closed store unmaps everything"
    );
    let s = Store::open(d.path(), limits).unwrap();
    assert_eq!(s.stats().sealed_segments, sources * segments);
    assert_eq!(mappings_under(d.path()), 0, "open maps nothing");
    let mut peak = 0;
    for round in 0..2 {
        for src in 0..sources {
            let key = format!("k{src}");
            let got = s.read_from(&key, 0, 10_000, 1 << 20).unwrap().records;
            assert_eq!(got.len() as u64, segments * per, "{key}");
            assert!(got.iter().all(|r| r.message == msg(r.seq)), "{key}");
            let q = s
                .query(
                    &key,
                    &Query {
                        tail_lines: Some(3),
                        ..Query::default()
                    },
                )
                .unwrap();
            assert_eq!(q.records.len(), 3);
            let now = mappings_under(d.path());
            assert!(now <= 8, "round {round}, {key}: {now} mappings");
            assert_eq!(s.stats().open_maps as usize, now);
            peak = peak.max(now);
        }
    }
    assert_eq!(peak, 8, "the cap is used, not exceeded");
    drop(s);
    assert_eq!(mappings_under(d.path()), 0);
}
