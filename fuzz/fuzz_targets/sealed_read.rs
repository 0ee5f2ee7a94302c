//! Sealed-segment reading (`index/src/sealed.rs`, `query.rs`, `verify.rs`, through `Store`):
//! real records are appended and sealed into small zstd blocks, the sealed file is damaged or
//! replaced by arbitrary bytes, and the store is opened and queried again.
//!
//! Asserts:
//! - the store opens; every record returned was written, byte for byte, under its sequence,
//!   in increasing sequence order — a damaged block is skipped, never half-read;
//! - a loss is never silent: when records are missing, a corruption was counted;
//! - damage never goes unnoticed: when the file's bytes changed, `verify_dir` reports a problem;
//! - a time window returns exactly the full read filtered to the window (block skipping by the
//!   index never drops a matching record), and `tailLines=N` returns the last N of the full read;
//! - a read-only open (`runnel logs --data-dir`, which reads a segment's block index only when a
//!   query reaches it) answers every read exactly as the writer's open does, and a loss there is
//!   counted too;
//! - from arbitrary bytes: no panic, increasing sequences, and when `verify_dir` finds nothing
//!   wrong the window and tail reads agree with the full read.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use runnel_fuzz::store::{self, Written};
use runnel_index::{verify_dir, Query, Store};

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let arbitrary_bytes = u.ratio(1, 4)?;
    let block = u.int_in_range(64..=1024usize)?;
    let n = u.int_in_range(1..=48usize)?;
    let written = store::records(&mut u, n)?;
    let dir = store::scratch();
    store::write(dir.path(), store::limits(block), &written, true);
    let files = store::segment_files(dir.path(), ".sealed");
    assert_eq!(files.len(), 1, "one sealed segment expected: {files:?}");
    let path = &files[0];
    let good = std::fs::read(path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));

    let bytes = if arbitrary_bytes {
        let mut b = Vec::new();
        if u.arbitrary::<bool>()? {
            // Either format's magic: both are read.
            let v2 = u.arbitrary::<bool>()?;
            b.extend_from_slice(if v2 { b"RNLSEG02" } else { b"RNLSEG01" });
        }
        // All but the last bytes, which choose the windows below.
        let n = u.len().saturating_sub(24);
        b.extend_from_slice(u.bytes(n)?);
        b
    } else {
        let mut b = good.clone();
        store::corrupt(&mut u, &mut b)?;
        b
    };
    std::fs::write(path, &bytes).unwrap_or_else(|e| panic!("write {path:?}: {e}"));

    let ro = Store::open_read_only(dir.path())
        .unwrap_or_else(|e| panic!("read-only open after damage: {e}"));
    let s = Store::open(dir.path(), store::limits(block))
        .unwrap_or_else(|e| panic!("open after damage: {e}"));
    let full = store::read_all(&s);
    assert_eq!(store::read_all(&ro), full, "read-only full read");
    if full.len() < n && !arbitrary_bytes {
        assert!(
            ro.stats().corrupt_blocks > 0,
            "{} records lost without a count in a read-only open",
            n - full.len()
        );
    }
    assert!(
        full.windows(2).all(|w| w[0].seq < w[1].seq),
        "sequences not increasing"
    );
    let report = verify_dir(dir.path()).unwrap_or_else(|e| panic!("verify_dir: {e}"));
    if !arbitrary_bytes {
        for r in &full {
            let w: Option<&Written> = written.get(r.seq as usize);
            assert!(
                w.is_some_and(|w| w.is(r)),
                "record {} was not written so",
                r.seq
            );
        }
        if full.len() < n {
            let st = s.stats();
            assert!(
                st.corrupt_blocks > 0 || s.last_corruption().is_some(),
                "{} records lost without a count",
                n - full.len()
            );
        }
        if bytes != good {
            assert!(!report.is_ok(), "verify_dir missed the damage");
        }
    }

    if arbitrary_bytes && !report.is_ok() {
        return Ok(());
    }
    // Windows chosen from the written times (so they cut through blocks), and tails.
    for _ in 0..3 {
        let pick = |u: &mut Unstructured<'_>| -> Result<Option<i64>> {
            Ok(if u.arbitrary::<bool>()? {
                let i = u.choose_index(written.len())?;
                Some(written[i].time_ns + i64::from(u.int_in_range(-1..=1i8)?))
            } else {
                None
            })
        };
        let (since, until) = (pick(&mut u)?, pick(&mut u)?);
        let q = Query {
            since_ns: since,
            until_ns: until,
            ..Query::default()
        };
        assert_eq!(
            store::query(&s, &q),
            store::window(&full, since, until),
            "window {since:?}..{until:?}"
        );
        assert_eq!(
            store::query(&ro, &q),
            store::window(&full, since, until),
            "read-only window {since:?}..{until:?}"
        );
        let tail = u.int_in_range(0..=n as u64 + 2)?;
        let q = Query {
            tail_lines: Some(tail),
            ..Query::default()
        };
        let want = &full[full.len().saturating_sub(tail as usize)..];
        assert_eq!(store::query(&s, &q), want, "tailLines={tail}");
        assert_eq!(store::query(&ro, &q), want, "read-only tailLines={tail}");
    }
    Ok(())
}
