//! Appending a run of records to one source: the source is looked up and locked once for the
//! whole run, not once per record, and the store's counters are updated once at the end.
//!
//! The index writer appends batches in which consecutive records almost always belong to the
//! same source; looking a source up by its string key per record (a hash of the key, a compare,
//! a lock, a counter lock) cost more than encoding the frame. [`Store::append_run`] gives the
//! caller an [`Appender`] bound to one locked source; [`Store::append`] is a run of one.

use crate::source::Source;
use crate::store::lock;
use crate::{Error, FileId, NewRecord, Position, Store};

/// Appends to one source under its lock (see [`Store::append_run`]).
pub struct Appender<'a> {
    store: &'a Store,
    src: &'a mut Source,
    appended: u64,
    seal_errors: u64,
    last_seal_error: Option<String>,
    /// The file position of the last record appended, not yet in `pending_positions`: a run of
    /// records from one file updates the map once, with the last offset (what the map would
    /// hold after one insert per record).
    position: Option<(FileId, u64)>,
}

impl Appender<'_> {
    /// Append one record; returns its sequence number. Not durable until [`Store::sync`]. The
    /// same contract as [`Store::append`]: an error means the record was not appended, and
    /// when the active segment reaches `segment_max_bytes` it is sealed here (a failed seal is
    /// counted, not returned: the record is appended either way).
    pub fn append(&mut self, record: &NewRecord<'_>) -> Result<u64, Error> {
        let store = self.store;
        let src = &mut *self.src;
        if src.retired {
            crate::retire::clear_mark(&src.dir)?;
            src.retired = false;
        }
        let ct = store.chunk_target();
        let act = src.ensure_active(ct)?;
        let seq = act.append(record)?;
        let full = act.len() >= store.limits.segment_max_bytes;
        src.next_seq = seq + 1;
        self.appended += 1;
        if let Position::File { file, offset } = record.position {
            match &mut self.position {
                Some((f, o)) if *f == file => *o = offset,
                other => {
                    if let Some((f, o)) = other.replace((file, offset)) {
                        src.pending_positions.insert(f, o);
                    }
                }
            }
        }
        if full {
            // A seal marks everything appended durable, positions included.
            self.put_position();
            let src = &mut *self.src;
            // The record is appended either way; a failed seal must not make the caller retry
            // (and duplicate) it, so it is counted and retried by `seal_due`.
            if let Err(e) = src.seal(
                store.limits.block_raw_bytes,
                store.limits.zstd_level,
                ct,
                None,
            ) {
                self.seal_errors += 1;
                self.last_seal_error = Some(e.to_string());
            }
        }
        Ok(seq)
    }

    /// Records appended through this appender so far.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    fn put_position(&mut self) {
        if let Some((f, o)) = self.position.take() {
            self.src.pending_positions.insert(f, o);
        }
    }

    /// Hand the deferred position to the source and the counts to the store.
    fn finish(mut self) {
        self.put_position();
        let mut c = lock(&self.store.counters);
        c.stats.records_appended += self.appended;
        c.stats.seal_errors += self.seal_errors;
        if let Some(e) = self.last_seal_error.take() {
            c.last_error = Some(e);
        }
    }
}

impl Store {
    /// Run `f` with an [`Appender`] for the source `key` (created if needed, with an empty
    /// identity, as [`Store::append`] does): a batch of records for one source pays for one
    /// lookup, one lock and one counter update. The source stays locked while `f` runs, so
    /// queries of that source wait for it: keep runs to a batch. Records `f` appended before an
    /// error stay appended ([`Appender::appended`] says how many).
    pub fn append_run<R>(
        &self,
        key: &str,
        f: impl FnOnce(&mut Appender<'_>) -> R,
    ) -> Result<R, Error> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        self.with_live_source(key, None, |src| {
            let mut a = Appender {
                store: self,
                src,
                appended: 0,
                seal_errors: 0,
                last_seal_error: None,
                position: None,
            };
            let r = f(&mut a);
            a.finish();
            Ok(r)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{FileId, Limits, NewRecord, Position, RecordFlags, Store, Stream, TimeStyle};

    fn file(ino: u64) -> FileId {
        FileId {
            dev: 1,
            ino,
            fingerprint: 7,
        }
    }

    fn rec(i: u64, position: Position, message: &[u8]) -> NewRecord<'_> {
        NewRecord {
            time_ns: i as i64,
            time_style: TimeStyle::default(),
            stream: Stream::Stdout,
            flags: RecordFlags::default(),
            message,
            position,
        }
    }

    /// Records from two files, interleaved, with segments small enough to seal mid-run.
    fn records() -> Vec<(u64, Position, Vec<u8>)> {
        (0..500u64)
            .map(|i| {
                let f = if (i / 7) % 3 == 0 { 2 } else { 1 };
                let pos = Position::File {
                    file: file(f),
                    offset: 100 * i,
                };
                (i, pos, format!("line {i} {}", "x".repeat(40)).into_bytes())
            })
            .collect()
    }

    fn limits() -> Limits {
        Limits {
            segment_max_bytes: 4096,
            block_raw_bytes: 1024,
            ..Limits::default()
        }
    }

    #[test]
    fn a_run_stores_what_appending_record_by_record_stores() {
        let one = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir().unwrap();
        let by_one = Store::open(one.path(), limits()).unwrap();
        let by_run = Store::open(run.path(), limits()).unwrap();
        let recs = records();
        let mut seqs_one = Vec::new();
        for (i, p, m) in &recs {
            seqs_one.push(by_one.append("k", &rec(*i, *p, m)).unwrap());
        }
        let seqs_run: Vec<u64> = by_run
            .append_run("k", |a| {
                let s: Vec<u64> = recs
                    .iter()
                    .map(|(i, p, m)| a.append(&rec(*i, *p, m)).unwrap())
                    .collect();
                assert_eq!(a.appended(), recs.len() as u64);
                s
            })
            .unwrap();
        assert_eq!(seqs_one, seqs_run);
        for s in [&by_one, &by_run] {
            s.sync().unwrap();
        }
        assert!(by_run.stats().sealed_segments > 1, "the run sealed mid-way");
        assert_eq!(by_one.stats().records_appended, 500);
        assert_eq!(by_run.stats().records_appended, 500);
        let all = |s: &Store| s.read_from("k", 0, 10_000, 1 << 30).unwrap().records;
        assert_eq!(all(&by_one), all(&by_run));
        for f in [file(1), file(2)] {
            assert_eq!(by_one.durable_position(&f), by_run.durable_position(&f));
            assert!(by_run.durable_position(&f).is_some());
        }
        // A reopen recovers the same positions from the data.
        drop(by_run);
        let again = Store::open(run.path(), limits()).unwrap();
        for f in [file(1), file(2)] {
            assert_eq!(by_one.durable_position(&f), again.durable_position(&f));
        }
    }

    #[test]
    fn a_refused_record_leaves_the_run_going_and_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Limits::default()).unwrap();
        let huge = vec![b'x'; crate::MAX_MESSAGE + 1];
        let got = store
            .append_run("k", |a| {
                let first = a.append(&rec(1, Position::None, b"one"));
                let refused = a.append(&rec(2, Position::None, &huge));
                let third = a.append(&rec(3, Position::None, b"three"));
                (
                    first.unwrap(),
                    refused.is_err(),
                    third.unwrap(),
                    a.appended(),
                )
            })
            .unwrap();
        assert_eq!(got, (0, true, 1, 2));
        store.sync().unwrap();
        let msgs: Vec<Vec<u8>> = store
            .read_from("k", 0, 10, 1 << 20)
            .unwrap()
            .records
            .into_iter()
            .map(|r| r.message)
            .collect();
        assert_eq!(msgs, vec![b"one".to_vec(), b"three".to_vec()]);
        assert_eq!(store.stats().records_appended, 2);
    }

    #[test]
    fn a_read_only_store_refuses_a_run() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), Limits::default()).unwrap());
        let ro = Store::open_read_only(dir.path()).unwrap();
        assert!(matches!(
            ro.append_run("k", |_| ()),
            Err(crate::Error::ReadOnly)
        ));
    }
}
