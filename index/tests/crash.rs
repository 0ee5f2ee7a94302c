//! Crash recovery: cut files at every byte offset (as a kill -9 during a write would) and flip
//! bytes, then reopen. Nothing panics, every wholly present frame before the cut comes back,
//! sequences stay contiguous, and corruption in sealed segments is counted and skipped.

mod common;
use common::*;
use runnel_index::{Query, Store};
use std::path::{Path, PathBuf};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn active_segment_cut_at_every_offset_recovers_every_whole_frame() {
    let src = scratch();
    let n = 12u64;
    {
        let s = Store::open(src.path(), small_limits()).unwrap();
        for i in 0..n {
            let m = msg(i);
            s.append("k", &rec(i as i64, &m, i + 1)).unwrap();
        }
        s.sync().unwrap();
    }
    let active = files_with(src.path(), ".active");
    assert_eq!(active.len(), 1);
    let full = std::fs::read(&active[0]).unwrap();
    let rel = active[0].strip_prefix(src.path()).unwrap().to_path_buf();
    let work = scratch();
    for cut in 0..=full.len() as u64 {
        let d = work.path().join(format!("c{cut}"));
        copy_dir(src.path(), &d);
        std::fs::write(d.join(&rel), &full[..cut as usize]).unwrap();
        // Expected: frames wholly before the cut.
        let mut end = 8u64;
        let mut whole = 0u64;
        while whole < n && end + frame_len(whole) <= cut {
            end += frame_len(whole);
            whole += 1;
        }
        let s = Store::open(&d, small_limits()).unwrap();
        let b = s.read_from("k", 0, 1000, 1 << 20).unwrap();
        assert_eq!(b.records.len() as u64, whole, "cut at {cut}");
        for (i, r) in b.records.iter().enumerate() {
            assert_eq!(r.seq, i as u64);
            assert_eq!(r.message, msg(i as u64));
        }
        let expect_pos = if whole == 0 { None } else { Some(whole) };
        assert_eq!(s.durable_position(&FILE), expect_pos, "cut at {cut}");
        // The store keeps working: the next append continues the sequence.
        assert_eq!(s.append("k", &rec(99, b"next", 99)).unwrap(), whole);
        s.sync().unwrap();
        drop(s);
        let s = Store::open(&d, small_limits()).unwrap();
        assert_eq!(s.sources()[0].next_seq, whole + 1, "cut at {cut}");
        assert!(s.verify().is_ok(), "cut {cut}: {:?}", s.verify().problems);
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn leftover_temp_file_of_any_length_is_removed_and_nothing_is_lost() {
    let src = scratch();
    {
        let s = Store::open(src.path(), small_limits()).unwrap();
        for i in 0..30u64 {
            let m = msg(i);
            s.append("k", &rec(i as i64, &m, i + 1)).unwrap();
        }
        s.seal("k").unwrap();
        for i in 30..40u64 {
            let m = msg(i);
            s.append("k", &rec(i as i64, &m, i + 1)).unwrap();
        }
        s.sync().unwrap();
    }
    let sealed = files_with(src.path(), ".sealed");
    assert_eq!(sealed.len(), 1);
    let bytes = std::fs::read(&sealed[0]).unwrap();
    let work = scratch();
    // A crash during a seal leaves `<name>.tmp` of any length next to the still-present
    // active segment: simulate by writing a temp copy of the sealed file cut anywhere.
    for cut in (0..=bytes.len()).step_by(7) {
        let d = work.path().join(format!("t{cut}"));
        copy_dir(src.path(), &d);
        let tmp = d.join(sealed[0].strip_prefix(src.path()).unwrap());
        let tmp = PathBuf::from(format!("{}.tmp", tmp.display()));
        std::fs::write(&tmp, &bytes[..cut]).unwrap();
        let s = Store::open(&d, small_limits()).unwrap();
        assert!(!tmp.exists(), "temp file removed at open");
        let b = s.read_from("k", 0, 1000, 1 << 20).unwrap();
        assert_eq!(b.records.len(), 40);
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn sealed_segment_cut_at_every_offset_is_reported_and_the_rest_stays_readable() {
    let src = scratch();
    {
        let s = Store::open(src.path(), small_limits()).unwrap();
        for i in 0..20u64 {
            let m = msg(i);
            s.append("k", &rec(i as i64, &m, i + 1)).unwrap();
        }
        s.seal("k").unwrap();
        for i in 20..30u64 {
            let m = msg(i);
            s.append("k", &rec(i as i64, &m, i + 1)).unwrap();
        }
        s.sync().unwrap();
    }
    let sealed = files_with(src.path(), ".sealed");
    let bytes = std::fs::read(&sealed[0]).unwrap();
    let rel = sealed[0].strip_prefix(src.path()).unwrap().to_path_buf();
    let work = scratch();
    for cut in 0..bytes.len() {
        let d = work.path().join(format!("s{cut}"));
        copy_dir(src.path(), &d);
        std::fs::write(d.join(&rel), &bytes[..cut]).unwrap();
        let s = Store::open_read_only(&d).unwrap();
        assert!(s.stats().corrupt_blocks >= 1, "cut {cut}");
        assert!(
            s.last_corruption().unwrap().contains(".sealed"),
            "cut {cut}"
        );
        let b = s.read_from("k", 0, 1000, 1 << 20).unwrap();
        assert_eq!(
            b.gap, 20,
            "cut {cut}: the damaged segment is an explicit gap"
        );
        assert_eq!(b.records.len(), 10);
        assert_eq!(b.records[0].seq, 20);
        assert_eq!(
            s.sources()[0].next_seq,
            30,
            "sequence range kept from the file name"
        );
        assert!(!s.verify().is_ok());
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn flipped_byte_anywhere_in_a_sealed_segment_never_panics_and_spares_other_blocks() {
    let src = scratch();
    let n = 60u64;
    {
        let s = Store::open(src.path(), small_limits()).unwrap();
        for i in 0..n {
            let m = msg(i);
            s.append("k", &rec(i as i64, &m, i + 1)).unwrap();
        }
        s.seal("k").unwrap();
    }
    let sealed = files_with(src.path(), ".sealed");
    let bytes = std::fs::read(&sealed[0]).unwrap();
    let d = scratch();
    copy_dir(src.path(), d.path());
    let target = d.path().join(sealed[0].strip_prefix(src.path()).unwrap());
    let mut block_hits = 0;
    // Every byte of header, index, positions and footer; every 4th byte of the block area
    // (keeps the test fast in debug builds).
    let f = bytes.len() - 72;
    let index_offset = u64::from_le_bytes(bytes[f..f + 8].try_into().unwrap()) as usize;
    for i in 0..bytes.len() {
        if i >= 8 && i < index_offset && i % 4 != 0 {
            continue;
        }
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        std::fs::write(&target, &b).unwrap();
        let s = Store::open_read_only(d.path()).unwrap();
        let q = s.query("k", &Query::default()).unwrap();
        let got = q.records.len() as u64;
        assert!(got < n || s.stats().corrupt_blocks == 0, "flip {i}");
        let st = s.stats();
        assert!(st.corrupt_blocks >= 1, "flip at {i} went unnoticed");
        // Records that came back are intact and in order.
        for w in q.records.windows(2) {
            assert!(w[0].seq < w[1].seq);
        }
        for r in &q.records {
            assert_eq!(r.message, msg(r.seq));
        }
        // A tail is the end of what a full read returns, however the damage falls (a block
        // whose index claims more records than it holds must not cut the tail short).
        for t in [1u64, 7, 25, n] {
            let tail = s
                .query(
                    "k",
                    &Query {
                        tail_lines: Some(t),
                        ..Query::default()
                    },
                )
                .unwrap();
            let want: Vec<u64> = q.records.iter().map(|r| r.seq).collect();
            let want = &want[want.len().saturating_sub(t as usize)..];
            let have: Vec<u64> = tail.records.iter().map(|r| r.seq).collect();
            assert_eq!(have, want, "flip {i}, tail {t}");
        }
        if got > 0 && got < n {
            block_hits += 1;
            let rb = s.read_from("k", 0, 1000, 1 << 20).unwrap();
            assert_eq!(rb.records.len() as u64 + rb.gap, n, "flip {i}");
        }
        assert!(!s.verify().is_ok(), "verify misses flip at {i}");
    }
    assert!(
        block_hits > 100,
        "flips inside blocks leave the other blocks readable"
    );
}

#[test]
fn read_only_open_tolerates_a_torn_tail_without_modifying_the_file() {
    let d = scratch();
    {
        let s = Store::open(d.path(), small_limits()).unwrap();
        for i in 0..5u64 {
            let m = msg(i);
            s.append("k", &rec(i as i64, &m, i + 1)).unwrap();
        }
        s.sync().unwrap();
    }
    let active = files_with(d.path(), ".active");
    let mut bytes = std::fs::read(&active[0]).unwrap();
    bytes.extend_from_slice(&[0x30, 0, 0, 0, 1, 2]); // half a frame header and more
    std::fs::write(&active[0], &bytes).unwrap();
    let r = Store::open_read_only(d.path()).unwrap();
    assert_eq!(r.read_from("k", 0, 100, 1 << 20).unwrap().records.len(), 5);
    r.refresh().unwrap();
    assert_eq!(
        std::fs::read(&active[0]).unwrap(),
        bytes,
        "reader changed nothing"
    );
    let w = Store::open(d.path(), small_limits()).unwrap();
    assert_eq!(w.stats().recovered_truncated_bytes, 6);
    assert_eq!(w.append("k", &rec(9, b"x", 9)).unwrap(), 5);
}

#[test]
fn verify_names_path_offset_and_problem_of_a_bad_block() {
    let d = scratch();
    {
        let s = Store::open(d.path(), small_limits()).unwrap();
        for i in 0..30u64 {
            let m = msg(i);
            s.append("k", &rec(i as i64, &m, i + 1)).unwrap();
        }
        s.seal("k").unwrap();
    }
    let sealed = files_with(d.path(), ".sealed");
    let mut bytes = std::fs::read(&sealed[0]).unwrap();
    bytes[10] ^= 0xff; // inside block 0, which starts right after the 8-byte magic
    std::fs::write(&sealed[0], &bytes).unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    let report = s.verify();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(p.path, sealed[0]);
    assert_eq!(p.offset, 8);
    assert!(p.what.contains("block 0 CRC mismatch"), "{}", p.what);
    // Reads skip the block, count it and describe it.
    let q = s.query("k", &Query::default()).unwrap();
    assert!(!q.records.is_empty() && q.records.len() < 30);
    assert_eq!(q.records.last().unwrap().seq, 29);
    assert_eq!(s.stats().corrupt_blocks, 1);
    let last = s.last_corruption().unwrap();
    assert!(last.contains("offset 8") && last.contains("CRC"), "{last}");
}
