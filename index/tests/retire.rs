//! Retiring sources: a retired source stays readable while it holds records and is removed
//! (directory, position stub, memory) once it holds none; an append clears the mark; a crash
//! at any step leaves either the whole source or nothing; readers see a removed source as
//! unknown, never as an error of the whole store.

mod common;
use common::*;
use runnel_index::{Error, Limits, Query, Store};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// An hour ago: older than `max_age` in [`short_age`], well within the default.
fn hour_ago() -> i64 {
    now_ns() - 3_600_000_000_000
}

/// Limits under which records an hour old are past `max_age`.
fn short_age() -> Limits {
    Limits {
        max_age: Duration::from_secs(60),
        ..small_limits()
    }
}

fn source_dir(root: &Path, key: &str) -> PathBuf {
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    root.join("sources").join(hex)
}

fn removing_is_empty(root: &Path) -> bool {
    std::fs::read_dir(root.join("removing")).map_or(true, |mut d| d.next().is_none())
}

fn listed(s: &Store, key: &str) -> bool {
    s.sources().iter().any(|i| i.key == key)
}

/// `n` records at `t0`, `t0 + 1`, … into `key`, positioned at 1..=n in [`FILE`].
fn fill(s: &Store, key: &str, n: u64, t0: i64) {
    for i in 0..n {
        let m = msg(i);
        s.append(key, &rec(t0 + i as i64, &m, i + 1)).unwrap();
    }
}

fn assert_unknown<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::UnknownSource(_)) => {}
        other => panic!("{what}: expected UnknownSource, got {other:?}"),
    }
}

fn assert_removed(s: &Store, root: &Path, key: &str) {
    assert!(!listed(s, key), "{key} still listed");
    assert!(!source_dir(root, key).exists(), "{key}: directory left");
    assert!(removing_is_empty(root), "removing/ not emptied");
    assert_unknown(s.read_from(key, 0, 10, 1 << 20), "read_from");
    assert_unknown(s.query(key, &Query::default()), "query");
}

#[test]
fn retiring_an_empty_source_removes_it_at_once_and_it_stays_gone_after_reopen() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    s.upsert_source("empty", &Default::default()).unwrap();
    fill(&s, "other", 3, now_ns());
    s.sync().unwrap();
    s.retire_source("empty").unwrap();
    assert_removed(&s, d.path(), "empty");
    assert_eq!(s.stats().sources_removed, 1);
    assert_eq!(s.stats().retired_sources, 0);
    assert_unknown(s.retire_source("empty"), "retire again");
    drop(s);
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert_removed(&s, d.path(), "empty");
    assert_eq!(
        s.stats().sources_removed,
        0,
        "nothing left to remove at open"
    );
    assert_eq!(
        s.read_from("other", 0, 10, 1 << 20).unwrap().records.len(),
        3
    );
}

#[test]
fn retiring_a_source_that_retention_emptied_removes_it_with_its_positions() {
    let d = scratch();
    let s = Store::open(d.path(), short_age()).unwrap();
    fill(&s, "k", 20, hour_ago());
    s.seal("k").unwrap();
    s.enforce_retention().unwrap();
    let info = &s.sources()[0];
    assert_eq!((info.records, info.next_seq), (0, 20));
    // The position stub remembers how far the (still present) log file was read.
    assert_eq!(s.durable_position(&FILE), Some(20));
    s.retire_source("k").unwrap();
    assert_removed(&s, d.path(), "k");
    // The log file is gone, so is its position.
    assert_eq!(s.durable_position(&FILE), None);
    assert_eq!(s.stats().sources_removed, 1);
}

#[test]
fn retired_source_with_records_stays_queryable_until_retention_deletes_its_last_segment() {
    let d = scratch();
    let s = Store::open(d.path(), short_age()).unwrap();
    // Two old segments and one recent one.
    fill(&s, "k", 10, hour_ago());
    s.seal("k").unwrap();
    fill(&s, "k", 10, hour_ago() + 1000);
    s.seal("k").unwrap();
    let recent = now_ns();
    let m = msg(99);
    s.append("k", &rec(recent, &m, 21)).unwrap();
    s.seal("k").unwrap();
    s.retire_source("k").unwrap();
    let info = s.sources().into_iter().find(|i| i.key == "k").unwrap();
    assert!(info.retired);
    assert_eq!(info.records, 21);
    assert_eq!(s.stats().retired_sources, 1);
    assert!(source_dir(d.path(), "k").join("retired.json").is_file());
    let got = s.query("k", &Query::default()).unwrap();
    assert_eq!(got.records.len(), 21);
    // The mark survives a restart.
    drop(s);
    let s = Store::open(d.path(), short_age()).unwrap();
    assert!(s.sources()[0].retired);
    // Age retention takes the two old segments; the recent record keeps the source.
    s.enforce_retention().unwrap();
    let info = &s.sources()[0];
    assert_eq!((info.records, info.first_seq, info.retired), (1, 20, true));
    let b = s.read_from("k", 0, 10, 1 << 20).unwrap();
    assert_eq!((b.gap, b.records.len()), (20, 1));
    assert_eq!(s.stats().sources_removed, 0);
    drop(s);
    // Later the last record ages out: the source goes with it, counted.
    let limits = Limits {
        max_disk_bytes: 1,
        ..short_age()
    };
    let s = Store::open(d.path(), limits).unwrap();
    s.enforce_retention().unwrap();
    let st = s.stats();
    assert_eq!(st.retention.iter().map(|r| r.2).sum::<u64>(), 1, "{st:?}");
    assert_eq!((st.sources_removed, st.retired_sources), (1, 0));
    assert_removed(&s, d.path(), "k");
    drop(s);
    let s = Store::open(d.path(), short_age()).unwrap();
    assert!(s.sources().is_empty());
}

#[test]
fn retired_source_whose_records_are_all_active_is_removed_only_after_they_are_deleted() {
    let d = scratch();
    let limits = Limits {
        max_disk_bytes: 1,
        ..short_age()
    };
    let s = Store::open(d.path(), small_limits()).unwrap();
    fill(&s, "k", 5, now_ns());
    s.retire_source("k").unwrap();
    // Nothing sealed, nothing old: retention has nothing to delete and the source stays.
    s.enforce_retention().unwrap();
    assert_eq!(s.sources()[0].records, 5);
    drop(s);
    // Over the disk budget: the active segment is sealed and deleted, then the source goes.
    let s = Store::open(d.path(), limits).unwrap();
    s.enforce_retention().unwrap();
    assert_removed(&s, d.path(), "k");
    assert_eq!(s.stats().sources_removed, 1);
}

#[test]
fn retire_makes_the_records_appended_before_it_durable() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    fill(&s, "k", 7, now_ns());
    s.retire_source("k").unwrap();
    // Dropped without a sync of its own: a crash right after retire_source returned.
    drop(s);
    let s = Store::open(d.path(), small_limits()).unwrap();
    let info = &s.sources()[0];
    assert_eq!((info.records, info.retired), (7, true));
    assert_eq!(s.durable_position(&FILE), Some(7));
}

#[test]
fn append_to_a_retired_source_clears_the_mark() {
    let d = scratch();
    let s = Store::open(d.path(), short_age()).unwrap();
    fill(&s, "k", 3, hour_ago());
    s.seal("k").unwrap();
    s.retire_source("k").unwrap();
    // The container came back.
    let m = msg(3);
    assert_eq!(s.append("k", &rec(hour_ago(), &m, 4)).unwrap(), 3);
    assert!(!s.sources()[0].retired);
    assert!(!source_dir(d.path(), "k").join("retired.json").exists());
    s.seal("k").unwrap();
    drop(s);
    let s = Store::open(d.path(), short_age()).unwrap();
    assert!(!s.sources()[0].retired, "the cleared mark stays cleared");
    // Retention empties it; not retired, so it stays (its sequence and position with it).
    s.enforce_retention().unwrap();
    let info = &s.sources()[0];
    assert_eq!((info.records, info.next_seq), (0, 4));
    assert_eq!(s.durable_position(&FILE), Some(4));
    assert_eq!(s.stats().sources_removed, 0);
}

#[test]
fn a_key_appended_after_its_source_was_removed_starts_a_new_source() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    s.upsert_source("k", &Default::default()).unwrap();
    s.retire_source("k").unwrap();
    assert!(!listed(&s, "k"));
    let m = msg(0);
    assert_eq!(s.append("k", &rec(now_ns(), &m, 1)).unwrap(), 0);
    s.sync().unwrap();
    let info = &s.sources()[0];
    assert_eq!((info.records, info.retired), (1, false));
    drop(s);
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert_eq!(s.read_from("k", 0, 10, 1 << 20).unwrap().records.len(), 1);
}

#[test]
fn unknown_keys_and_read_only_stores_are_refused_and_retiring_twice_is_harmless() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert_unknown(s.retire_source("nope"), "unknown key");
    fill(&s, "k", 2, now_ns());
    s.retire_source("k").unwrap();
    s.retire_source("k").unwrap();
    assert!(s.sources()[0].retired);
    let ro = Store::open_read_only(d.path()).unwrap();
    assert!(matches!(ro.retire_source("k"), Err(Error::ReadOnly)));
    assert!(ro.sources()[0].retired);
}

#[test]
fn changed_since_does_not_report_removed_sources() {
    let d = scratch();
    let s = Store::open(d.path(), short_age()).unwrap();
    fill(&s, "a", 3, hour_ago());
    fill(&s, "b", 3, now_ns());
    s.seal("a").unwrap();
    s.sync().unwrap();
    let keys = |g| -> Vec<String> { s.changed_since(g).into_iter().map(|c| c.0).collect() };
    assert_eq!(keys(0), ["a", "b"]);
    s.retire_source("a").unwrap();
    s.enforce_retention().unwrap();
    assert_eq!(keys(0), ["b"]);
    assert_eq!(s.stats().sources_removed, 1);
}

// Crashes, simulated by leaving the files as a crash at each step would and reopening.

/// The retired mark of `key`, written as a crash after marking and before removal leaves it.
fn write_mark(dir: &std::path::Path, key: &str) {
    std::fs::write(
        source_dir(dir, key).join("retired.json"),
        br#"{"version":"1"}"#,
    )
    .unwrap();
}

#[test]
fn crash_after_the_mark_before_the_removal_is_finished_at_open() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    s.upsert_source("k", &Default::default()).unwrap();
    fill(&s, "other", 2, now_ns());
    s.sync().unwrap();
    drop(s);
    write_mark(d.path(), "k");
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert_removed(&s, d.path(), "k");
    assert_eq!(s.stats().sources_removed, 1);
    assert!(listed(&s, "other"));
}

#[test]
fn crash_while_writing_the_mark_leaves_the_source_as_it_was() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    s.upsert_source("k", &Default::default()).unwrap();
    drop(s);
    let dir = source_dir(d.path(), "k");
    std::fs::write(dir.join("retired.json.tmp"), b"{\"vers").unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert!(listed(&s, "k"));
    assert!(!s.sources()[0].retired);
    assert!(!dir.join("retired.json.tmp").exists());
}

#[test]
fn crash_between_retention_and_removal_is_finished_at_open() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    fill(&s, "k", 5, now_ns());
    s.seal("k").unwrap();
    s.retire_source("k").unwrap();
    drop(s);
    // Retention deleted the last segment (after writing the position stub), then the crash.
    let dir = source_dir(d.path(), "k");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".sealed") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert_removed(&s, d.path(), "k");
    assert_eq!(s.stats().sources_removed, 1);
}

#[test]
fn crash_in_the_middle_of_deleting_a_removed_directory_is_cleaned_at_open() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    fill(&s, "k", 5, now_ns());
    s.seal("k").unwrap();
    fill(&s, "other", 2, now_ns());
    s.sync().unwrap();
    drop(s);
    // The rename into removing/ happened, then part of the deletion.
    let moved = d.path().join("removing").join("123-1-0");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(source_dir(d.path(), "k"), &moved).unwrap();
    std::fs::remove_file(moved.join("source.json")).unwrap();
    std::fs::write(d.path().join("removing").join("stray-file"), b"x").unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert_removed(&s, d.path(), "k");
    assert_eq!(
        s.read_from("other", 0, 10, 1 << 20).unwrap().records.len(),
        2
    );
    // A read-only store never looks in removing/ either.
    assert!(!listed(&Store::open_read_only(d.path()).unwrap(), "k"));
}

#[test]
fn marked_directory_stripped_of_its_files_never_comes_back_with_a_short_sequence() {
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    fill(&s, "k", 5, now_ns());
    s.seal("k").unwrap();
    s.retire_source("k").unwrap();
    drop(s);
    // Whatever is missing from a marked directory, it either keeps its records at their
    // sequences or goes; it is never a live source restarting at 0.
    let dir = source_dir(d.path(), "k");
    std::fs::remove_file(dir.join("source.json")).unwrap();
    let s = Store::open(d.path(), small_limits()).unwrap();
    let info = &s.sources()[0];
    assert_eq!((info.first_seq, info.next_seq, info.retired), (0, 5, true));
    drop(s);
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if !p.ends_with("retired.json") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let s = Store::open(d.path(), small_limits()).unwrap();
    assert_removed(&s, d.path(), "k");
}

// Readers beside a writer.

#[test]
fn read_only_store_survives_a_source_the_writer_removed() {
    let d = scratch();
    let w = Store::open(d.path(), short_age()).unwrap();
    fill(&w, "gone", 4, hour_ago());
    w.seal("gone").unwrap();
    fill(&w, "stays", 4, now_ns());
    w.sync().unwrap();
    let ro = Store::open_read_only(d.path()).unwrap();
    assert_eq!(ro.sources().len(), 2);
    assert_eq!(
        ro.read_from("gone", 0, 10, 1 << 20).unwrap().records.len(),
        4
    );
    let gen = ro.generation();
    w.retire_source("gone").unwrap();
    w.enforce_retention().unwrap();
    assert_removed(&w, d.path(), "gone");
    // Following one source: its directory is gone, so is the source.
    ro.refresh_source("gone").unwrap();
    assert!(!listed(&ro, "gone"));
    assert_unknown(ro.read_from("gone", 0, 10, 1 << 20), "read-only read_from");
    assert!(ro.changed_since(gen).iter().all(|c| c.0 != "gone"));
    assert_eq!(
        ro.wait_for("gone", 0, Duration::from_millis(20)).unwrap(),
        0
    );
    // A full refresh, and a fresh read-only open, agree.
    ro.refresh().unwrap();
    assert_eq!(ro.sources().len(), 1);
    assert_eq!(
        ro.read_from("stays", 0, 10, 1 << 20).unwrap().records.len(),
        4
    );
    assert_eq!(Store::open_read_only(d.path()).unwrap().sources().len(), 1);
    assert!(ro.verify().is_ok(), "{:?}", ro.verify().problems);
}

#[test]
fn read_only_store_survives_a_directory_that_vanishes_between_refreshes() {
    let d = scratch();
    let w = Store::open(d.path(), small_limits()).unwrap();
    fill(&w, "a", 3, now_ns());
    fill(&w, "b", 3, now_ns());
    w.sync().unwrap();
    let ro = Store::open_read_only(d.path()).unwrap();
    assert_eq!(ro.sources().len(), 2);
    // Another process deleted it outright (no rename): still no error, no panic.
    std::fs::remove_dir_all(source_dir(d.path(), "a")).unwrap();
    ro.refresh_source("a").unwrap();
    assert_unknown(ro.read_from("a", 0, 10, 1 << 20), "read_from after vanish");
    ro.refresh().unwrap();
    let keys: Vec<String> = ro.sources().into_iter().map(|i| i.key).collect();
    assert_eq!(keys, ["b"]);
}

#[test]
fn read_only_store_hides_a_drained_retired_source_the_writer_has_not_removed_yet() {
    let d = scratch();
    let w = Store::open(d.path(), small_limits()).unwrap();
    w.upsert_source("k", &Default::default()).unwrap();
    fill(&w, "other", 1, now_ns());
    w.sync().unwrap();
    drop(w);
    // As a crash between the mark and the removal leaves it.
    write_mark(d.path(), "k");
    let ro = Store::open_read_only(d.path()).unwrap();
    assert!(!listed(&ro, "k"));
    assert!(listed(&ro, "other"));
    assert!(
        source_dir(d.path(), "k").exists(),
        "a reader removes nothing"
    );
}

#[test]
fn appends_racing_with_retire_are_never_lost_and_readers_racing_with_removals_never_fail() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let d = scratch();
    let s = Store::open(d.path(), small_limits()).unwrap();
    let done = AtomicBool::new(false);
    let shorts_done = AtomicBool::new(false);
    let current = std::sync::Mutex::new(String::new());
    /// Sets its flag however the thread holding it ends: a failed assertion must fail the test,
    /// not leave the other threads waiting for the flag.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Relaxed);
        }
    }
    let rounds = std::thread::scope(|sc| {
        // Retires the current round's source over and over: removed while it is empty, marked
        // once it holds its record.
        sc.spawn(|| {
            while !done.load(Relaxed) {
                let key = current.lock().unwrap().clone();
                match s.retire_source(&key) {
                    Ok(()) | Err(Error::UnknownSource(_)) => {}
                    Err(e) => panic!("retire {key}: {e}"),
                }
            }
        });
        // Creates and removes short-lived sources under a read-only store's feet.
        sc.spawn(|| {
            let _stop = Stop(&shorts_done);
            for i in 0..200 {
                if done.load(Relaxed) {
                    break;
                }
                let key = format!("short-{i}");
                s.upsert_source(&key, &Default::default()).unwrap();
                s.retire_source(&key).unwrap();
            }
        });
        sc.spawn(|| {
            let ro = Store::open_read_only(d.path()).unwrap();
            while !done.load(Relaxed) {
                ro.refresh().unwrap();
                for info in ro.sources() {
                    ro.refresh_source(&info.key).unwrap();
                    match ro.read_from(&info.key, 0, 10, 1 << 20) {
                        Ok(_) | Err(Error::UnknownSource(_)) => {}
                        Err(e) => panic!("read-only read_from: {e}"),
                    }
                }
            }
        });
        let _stop = Stop(&done);
        // Each round: an empty source (the retirer may remove it at any moment), then one
        // append, which lands in it or in a new source with the same key, at sequence 0.
        let mut n = 0u64;
        while n < 1000 || !shorts_done.load(Relaxed) {
            let key = format!("round-{n}");
            *current.lock().unwrap() = key.clone();
            s.upsert_source(&key, &Default::default()).unwrap();
            let m = msg(n);
            assert_eq!(s.append(&key, &rec(now_ns(), &m, n + 1)).unwrap(), 0);
            if n.is_multiple_of(7) {
                s.sync().unwrap();
            }
            n += 1;
        }
        s.sync().unwrap();
        n
    });
    // Only an empty source is ever removed: every appended record is there.
    for n in 0..rounds {
        let b = s.read_from(&format!("round-{n}"), 0, 10, 1 << 20).unwrap();
        assert_eq!(b.records.len(), 1, "round {n}");
        assert_eq!(b.records[0].message, msg(n));
    }
    assert!(s.sources().iter().all(|i| !i.key.starts_with("short-")));
    assert!(s.stats().sources_removed >= 200);
}
