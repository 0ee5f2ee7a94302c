//! A read-only open reads a sealed segment's block index and position table only when a call
//! needs them: a query reads the tables of the segments its window or tail reaches, so damage
//! in a table it does not reach costs it nothing, and damage it reaches is reported, not
//! returned as data.

mod common;
use common::*;
use runnel_index::{FileId, NewRecord, Position, Query, Store};
use std::path::Path;

/// A file identity whose only position lives in the second sealed segment's table.
const OTHER: FileId = FileId {
    dev: 1,
    ino: 43,
    fingerprint: 0xbeef,
};

/// Three sealed segments (times 0..1000, 1000..2000, 2000..3000, 10 ns apart) and an active one
/// (3000..3500); [`OTHER`] is written once, in the second segment.
fn store_with_three_sealed_segments(dir: &Path) {
    let s = Store::open(dir, small_limits()).unwrap();
    for i in 0..350u64 {
        let m = msg(i);
        let mut r = rec(i as i64 * 10, &m, i * 100);
        if i == 150 {
            r = NewRecord {
                position: Position::File {
                    file: OTHER,
                    offset: 777,
                },
                ..r
            };
        }
        s.append("k", &r).unwrap();
        if i % 100 == 99 && i < 300 {
            s.seal("k").unwrap();
        }
    }
    s.sync().unwrap();
}

fn sealed_files(dir: &Path) -> Vec<std::path::PathBuf> {
    files_with(dir, ".sealed")
}

/// Flip a byte of the block index of the segment at `path` (its table CRC then fails).
fn damage_block_index(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    // The footer is the last 72 bytes of a sealed segment (the on-disk format, `index/src/lib.rs`).
    let footer = b.len() - 72;
    let index_offset = u64::from_le_bytes(b[footer..footer + 8].try_into().unwrap()) as usize;
    b[index_offset + 1] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

fn messages(s: &Store, q: Query) -> Vec<Vec<u8>> {
    let res = s.query("k", &q).unwrap();
    res.records.into_iter().map(|r| r.message).collect()
}

#[test]
fn a_read_only_query_reads_only_the_tables_it_reaches_and_reports_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    store_with_three_sealed_segments(dir.path());
    let segs = sealed_files(dir.path());
    assert_eq!(segs.len(), 3, "{segs:?}");
    damage_block_index(&segs[0]);

    let ro = Store::open_read_only(dir.path()).unwrap();
    let want = |r: std::ops::Range<u64>| r.map(msg).collect::<Vec<_>>();
    let tail = Query {
        tail_lines: Some(100),
        ..Query::default()
    };
    assert_eq!(messages(&ro, tail), want(250..350));
    let window = Query {
        since_ns: Some(1500),
        until_ns: Some(2500),
        ..Query::default()
    };
    assert_eq!(messages(&ro, window), want(150..250));
    assert_eq!(
        ro.stats().corrupt_blocks,
        0,
        "the damaged table was read: {:?}",
        ro.last_corruption()
    );

    // The whole history reaches the damaged segment: its records are missing, and it says so.
    assert_eq!(messages(&ro, Query::default()), want(100..350));
    assert_eq!(ro.stats().corrupt_blocks, 1);
    let said = ro.last_corruption().unwrap_or_default();
    assert!(
        said.contains("block index CRC mismatch") && said.contains(".sealed"),
        "{said}"
    );
    // Each read that meets the damage counts it, as a read of a damaged block does.
    assert_eq!(messages(&ro, Query::default()), want(100..350));
    assert_eq!(ro.stats().corrupt_blocks, 2);

    // A writer's open checks every table at once, as before.
    drop(ro);
    let w = Store::open(dir.path(), small_limits()).unwrap();
    assert!(w.stats().corrupt_blocks >= 1);
}

#[test]
fn a_read_only_store_still_knows_file_positions_held_only_in_sealed_tables() {
    let dir = tempfile::tempdir().unwrap();
    store_with_three_sealed_segments(dir.path());
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.durable_position(&OTHER), Some(777));
    assert_eq!(ro.durable_position(&FILE), Some(349 * 100));
}
