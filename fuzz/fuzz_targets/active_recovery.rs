//! Active-segment recovery (`index/src/active.rs`, through `Store::open`): real records are
//! appended and synced, the active segment file is damaged (bit flips, cuts, inserted or
//! appended garbage) or replaced by arbitrary bytes, and the store is opened again.
//!
//! Asserts:
//! - the store opens; what it returns is a prefix of what was written (sequences 0..k), every
//!   record byte for byte the one written with that sequence — so recovery never returns a
//!   record whose CRC fails or a record that was not written;
//! - a loss is never silent: when records are missing and nothing was cut, the bytes dropped
//!   are counted (`recovered_truncated_bytes`);
//! - the durable file positions (what the tailer resumes from) are exactly the last positions
//!   among the records that survived, never a position of a lost record;
//! - after recovery the store takes the next record with sequence k, and a second reopen
//!   returns the k survivors plus that record;
//! - from arbitrary bytes: the store opens and returns contiguous sequences from 0.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use runnel_fuzz::store::{self, Written, KEY};
use runnel_index::{Position, Store};

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let arbitrary_bytes = u.ratio(1, 4)?;
    let n = u.int_in_range(1..=24usize)?;
    let written = store::records(&mut u, n)?;
    let dir = store::scratch();
    store::write(dir.path(), store::limits(4096), &written, false);
    let files = store::segment_files(dir.path(), ".active");
    assert_eq!(files.len(), 1, "one active segment expected: {files:?}");
    let path = &files[0];
    let good = std::fs::read(path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));

    let (bytes, no_cut) = if arbitrary_bytes {
        let mut b = Vec::new();
        if u.arbitrary::<bool>()? {
            b.extend_from_slice(b"RNLACT01");
        }
        b.extend_from_slice(u.take_rest());
        (b, false)
    } else {
        let mut b = good.clone();
        let no_cut = store::corrupt(&mut u, &mut b)?;
        (b, no_cut)
    };
    std::fs::write(path, &bytes).unwrap_or_else(|e| panic!("write {path:?}: {e}"));

    let s = Store::open(dir.path(), store::limits(4096))
        .unwrap_or_else(|e| panic!("open after damage: {e}"));
    let got = store::read_all(&s);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.seq, i as u64, "recovered sequences are not 0..k");
    }
    let k = got.len();
    if !arbitrary_bytes {
        assert!(k <= n, "more records than were written");
        for r in &got {
            assert!(
                written[r.seq as usize].is(r),
                "record {} differs from the one written",
                r.seq
            );
        }
        if k < n && no_cut {
            assert!(
                s.stats().recovered_truncated_bytes > 0,
                "{} records lost without a count",
                n - k
            );
        }
        // Durable positions: the last position per file among the survivors, nothing later.
        for f in 0..3u8 {
            let file = store::file_id(f);
            let want = got.iter().rev().find_map(|r| match r.position {
                Position::File { file: g, offset } if g == file => Some(offset),
                _ => None,
            });
            assert_eq!(
                s.durable_position(&file),
                want,
                "durable position of {file:?}"
            );
        }
    }

    // The store goes on from k, and a second reopen keeps all of it.
    let next = Written {
        message: b"after recovery".to_vec(),
        ..written[0].clone()
    };
    let seq = s
        .append(KEY, &next.as_new())
        .unwrap_or_else(|e| panic!("append after recovery: {e}"));
    assert_eq!(seq, k as u64, "sequence after recovery");
    s.sync()
        .unwrap_or_else(|e| panic!("sync after recovery: {e}"));
    drop(s);
    let s =
        Store::open(dir.path(), store::limits(4096)).unwrap_or_else(|e| panic!("second open: {e}"));
    let again = store::read_all(&s);
    assert_eq!(again.len(), k + 1, "second reopen lost records");
    assert_eq!(&again[..k], &got[..], "second reopen changed the survivors");
    assert!(next.is(&again[k]), "the record appended after recovery");
    Ok(())
}
