//! The one index writer thread: appends queued batches from every input, syncs once per group
//! of batches (group commit) — only then are the inputs' positions durable and their waiting
//! senders told — and seals and applies retention every few seconds.

use super::batch::Batch;
use super::chunks::{ChunkWindows, Verdict};
use super::stats::QueueStats;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use runnel_index::{NewRecord, SourceIdentity, Store};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the writer seals due segments and enforces retention.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);
/// Messages taken per group commit at most.
const GROUP_MAX: usize = 64;

/// What a waiting sender learns once its batch is durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Records appended and synced.
    pub stored: u64,
    /// Records already stored by an earlier send of the same chunk (not appended again).
    pub duplicates: u64,
    /// Records the index refused for good (see [`is_permanent`]): counted and skipped.
    pub refused: u64,
}

/// An append error that no retry can fix: the record is counted and skipped, so one bad
/// record cannot wedge the writer (and with it sealing, retention and every input).
pub fn is_permanent(e: &runnel_index::Error) -> bool {
    matches!(
        e,
        runnel_index::Error::TooLarge { .. } | runnel_index::Error::UnknownSource(_)
    )
}

/// Told once the batch is durable; dropped unanswered if the writer stops first.
pub type Notify = tokio::sync::oneshot::Sender<Appended>;

/// What inputs send to the writer.
pub enum Msg {
    /// Create or update a source before its first record.
    Source(Arc<str>, Box<SourceIdentity>),
    /// Records to append; the sender resumes from the index (file tailers).
    Records(Batch),
    /// Records to append whose sender waits until they are durable (forward acks, HTTP 2xx).
    Durable(Batch, Notify),
    /// Sync, then answer.
    Flush(Sender<()>),
    /// The source's input is finished and everything read from it was sent before this
    /// message: the index keeps its records until retention, then forgets the source.
    Retire(Arc<str>),
    /// Append what is queued already, sync, and end the thread.
    Stop,
}

/// Stop on an index error that retrying cannot help (a failed fsync: a retry could report lost
/// records durable), the way a crash would: on restart the index recovers from its files and
/// every input resumes from what is really durable (unacknowledged chunks are resent).
fn exit_on_fatal(what: &str, e: &runnel_index::Error) -> ! {
    tracing::error!(error = %e, "index {what} failed and cannot be retried; exiting");
    std::process::exit(70);
}

fn retry<T>(
    stats: &QueueStats,
    what: &str,
    mut f: impl FnMut() -> Result<T, runnel_index::Error>,
) -> T {
    let mut wait = Duration::from_millis(50);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if e.is_fatal() => exit_on_fatal(what, &e),
            Err(e) => {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "index {what} failed; retrying (data waits on disk or in the client)");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The writer's state: the store, its inputs' queue and the chunk windows.
pub(crate) struct WriterLoop {
    pub(crate) store: Arc<Store>,
    pub(crate) rx: Receiver<Msg>,
    pub(crate) recycle: Sender<Batch>,
    pub(crate) stats: Arc<QueueStats>,
    pub(crate) chunks: ChunkWindows,
    /// Scratch: which records of a run are appended (not duplicates).
    pub(crate) verdicts: Vec<bool>,
}

impl WriterLoop {
    /// Run until [`Msg::Stop`] or until every sender is gone, draining what is queued.
    pub(crate) fn run(mut self) {
        let mut last_maint = Instant::now();
        let mut stop = false;
        while !stop {
            if crate::failpoint::at("writer") == crate::failpoint::Action::Exit {
                return;
            }
            let first = match self.rx.recv_timeout(Duration::from_secs(1)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => {
                    // Nothing waits: the writer is idle, not stuck.
                    self.stats.writer_beat.beat();
                    None
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut acks = Vec::new();
            let mut notify = Vec::new();
            let mut dirty = false;
            let mut next = first;
            let mut n = 0;
            // Group commit: take what is queued already (bounded), then sync once.
            while let Some(m) = next {
                match m {
                    Msg::Source(key, ident) => retry(&self.stats, "upsert_source", || {
                        self.store.upsert_source(&key, &ident)
                    }),
                    Msg::Records(batch) => {
                        self.append_batch(&batch);
                        dirty = true;
                        self.recycle(batch);
                    }
                    Msg::Durable(batch, tell) => {
                        let done = self.append_batch(&batch);
                        dirty = true;
                        self.recycle(batch);
                        notify.push((tell, done));
                    }
                    Msg::Flush(ack) => acks.push(ack),
                    Msg::Retire(key) => self.retire(&key),
                    Msg::Stop => stop = true,
                }
                n += 1;
                next = if stop {
                    // Drain: everything sent before Stop is appended and synced.
                    self.rx.try_recv().ok()
                } else if n < GROUP_MAX {
                    self.rx.try_recv().ok()
                } else {
                    None
                };
            }
            if dirty || !acks.is_empty() {
                retry(&self.stats, "sync", || self.store.sync());
                self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                self.stats.writer_beat.beat();
            }
            for a in acks {
                let _ = a.send(());
            }
            for (tell, done) in notify {
                // The sender may have gone (client disconnected); the records are stored.
                let _ = tell.send(done);
            }
            if last_maint.elapsed() >= MAINTENANCE_EVERY {
                last_maint = Instant::now();
                if let Err(e) = self.store.seal_due() {
                    tracing::warn!(error = %e, "sealing due segments failed");
                }
                if let Err(e) = self.store.enforce_retention() {
                    tracing::warn!(error = %e, "enforcing retention failed");
                }
            }
        }
        retry(&self.stats, "sync", || self.store.sync());
    }

    fn recycle(&self, mut batch: Batch) {
        batch.clear();
        // Full pool (or no input takes from it): let this one go.
        let _ = self.recycle.try_send(batch);
    }

    /// Retire a finished source. Not retried: a source left unretired is retired at the next
    /// start (the tailer retires sources whose files are gone).
    fn retire(&mut self, key: &str) {
        self.chunks.forget(key);
        match self.store.retire_source(key) {
            // Nothing was ever stored for it (an empty file), or it is gone already.
            Ok(()) | Err(runnel_index::Error::UnknownSource(_)) => {}
            Err(e) if e.is_fatal() => exit_on_fatal("retire", &e),
            Err(e) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = key, error = %e, "retiring a finished source failed");
            }
        }
    }

    /// Append a batch: each run of consecutive records of one source is checked against its
    /// chunk window and appended under one lookup of the source ([`Store::append_run`]).
    fn append_batch(&mut self, batch: &Batch) -> Appended {
        let held = batch.held_bytes() as i64;
        let records = &batch.records;
        self.stats
            .queued_records
            .fetch_sub(records.len() as i64, Ordering::Relaxed);
        let mut done = Appended::default();
        let mut at = 0;
        while at < records.len() {
            let key = &records[at].key;
            let end = records[at..]
                .iter()
                .position(|r| !Arc::ptr_eq(&r.key, key) && r.key != *key)
                .map_or(records.len(), |n| at + n);
            self.append_run(batch, at..end, &mut done);
            at = end;
        }
        self.stats.queued_bytes.fetch_sub(held, Ordering::Relaxed);
        done
    }

    /// Append `batch.records[run]` (all of one source), skipping records of chunks already
    /// stored. A failed append that a retry may fix is retried from the record that failed,
    /// outside the source's lock.
    fn append_run(&mut self, batch: &Batch, run: std::ops::Range<usize>, done: &mut Appended) {
        let records = &batch.records[run];
        let key = &records[0].key;
        // Reused: one verdict per record of the run.
        let mut append = std::mem::take(&mut self.verdicts);
        append.clear();
        {
            let mut window = self.chunks.run(&self.store, key);
            append.extend(
                records
                    .iter()
                    .map(|r| window.check(&r.position) == Verdict::Append),
            );
        }
        let duplicates = append.iter().filter(|a| !**a).count() as u64;
        if duplicates > 0 {
            done.duplicates += duplicates;
            self.stats
                .duplicates_skipped
                .fetch_add(duplicates, Ordering::Relaxed);
        }
        let mut next = 0;
        let mut wait = Duration::from_millis(50);
        while next < records.len() {
            let stats = &self.stats;
            let res = self.store.append_run(key, |app| {
                while next < records.len() {
                    let r = &records[next];
                    if !append[next] {
                        next += 1;
                        continue;
                    }
                    let rec = NewRecord {
                        time_ns: r.time_ns,
                        time_style: r.style,
                        stream: r.stream,
                        flags: r.flags,
                        message: &batch.data[r.start..r.start + r.len],
                        position: r.position,
                    };
                    match app.append(&rec) {
                        Ok(_) => done.stored += 1,
                        Err(e) if is_permanent(&e) => refuse(stats, done, &r.key, &e),
                        Err(e) => return Err(e),
                    }
                    next += 1;
                }
                Ok(())
            });
            match res.and_then(|r| r) {
                Ok(()) => {}
                Err(e) if is_permanent(&e) => {
                    // The source itself was refused: so is every record left in the run.
                    for (r, a) in records[next..].iter().zip(&append[next..]) {
                        if *a {
                            refuse(stats, done, &r.key, &e);
                        }
                    }
                    next = records.len();
                }
                Err(e) if e.is_fatal() => exit_on_fatal("append", &e),
                Err(e) => {
                    stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "index append failed; retrying (data waits on disk or in the client)");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.verdicts = append;
    }
}

/// Count and (rate-limited) report a record the index refused for good.
fn refuse(stats: &QueueStats, done: &mut Appended, key: &str, e: &runnel_index::Error) {
    done.refused += 1;
    let n = stats.refused_records.fetch_add(1, Ordering::Relaxed);
    if n.is_power_of_two() || n == 0 {
        tracing::error!(source = %key, error = %e, refused_so_far = n + 1,
            "the index refused a record for good; it is skipped and counted in runnel_ingest_refused_records_total");
    }
}
