//! The one index writer thread: appends queued batches, syncs once per group of batches (group
//! commit) — only then are the tailers' positions durable — and seals and applies retention
//! every few seconds.

use super::stats::Stats;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use runnel_index::{
    FileId, NewRecord, Position, RecordFlags, SourceIdentity, Store, Stream, TimeStyle,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the writer seals due segments and enforces retention.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);

/// One queued record; its message is a range of the batch's data.
pub struct QueuedRecord {
    /// Source key.
    pub key: Arc<str>,
    /// Time in ns.
    pub time_ns: i64,
    /// Time style.
    pub style: TimeStyle,
    /// Stream.
    pub stream: Stream,
    /// Flags.
    pub flags: RecordFlags,
    /// Message range in [`Batch::data`].
    pub start: usize,
    /// Message length.
    pub len: usize,
    /// File and offset after the record.
    pub file: FileId,
    /// Resume offset.
    pub offset: u64,
}

/// Records queued together; messages live in one buffer.
///
/// A batch is allocated once at its budget (messages and record descriptors) and is sent when
/// the next record does not fit, so `queue_max_bytes` bounds the memory of the queue itself,
/// not a fraction of it. Only a single record larger than the whole budget makes it grow.
#[derive(Default)]
pub struct Batch {
    /// The records in file order.
    pub records: Vec<QueuedRecord>,
    /// All messages back to back.
    pub data: Vec<u8>,
    /// The memory this batch is meant to hold.
    budget: usize,
}

impl Batch {
    /// An empty batch with room for about `budget` bytes: three quarters for messages, one
    /// quarter for the records describing them.
    pub fn with_budget(budget: usize) -> Batch {
        let (data, records) = Batch::split(budget);
        Batch {
            records: Vec::with_capacity(records),
            data: Vec::with_capacity(data),
            budget,
        }
    }

    /// True when a record with a message of `len` bytes fits without growing the batch.
    pub fn fits(&self, len: usize) -> bool {
        self.data.len() + len <= self.data.capacity()
            && self.records.len() < self.records.capacity()
    }

    /// Append a record whose message is `message` (its `start` and `len` are set here). Grows
    /// only by what is needed when it does not fit (see [`Batch::fits`]).
    pub fn push(&mut self, mut rec: QueuedRecord, message: &[u8]) {
        self.data.reserve_exact(message.len());
        self.records.reserve_exact(1);
        rec.start = self.data.len();
        rec.len = message.len();
        self.data.extend_from_slice(message);
        self.records.push(rec);
    }

    /// Empty the batch for reuse; a batch that grew well past its budget (a run of long lines)
    /// is shrunk back so a reused batch does not keep an outlier's memory.
    pub fn clear(&mut self) {
        self.records.clear();
        self.data.clear();
        let (data_cap, rec_cap) = Batch::split(self.budget);
        if self.data.capacity() > data_cap {
            self.data.shrink_to(data_cap);
        }
        if self.records.capacity() > rec_cap {
            self.records.shrink_to(rec_cap);
        }
    }

    /// Starting capacities for a budget: (message bytes, records).
    fn split(budget: usize) -> (usize, usize) {
        (
            budget - budget / 4,
            (budget / 4 / std::mem::size_of::<QueuedRecord>()).max(1),
        )
    }

    /// Bytes in use: messages plus record descriptors.
    pub fn used_bytes(&self) -> usize {
        self.data.len() + self.records.len() * std::mem::size_of::<QueuedRecord>()
    }

    /// Bytes allocated: what the batch costs in memory while it is queued.
    pub fn held_bytes(&self) -> usize {
        self.data.capacity() + self.records.capacity() * std::mem::size_of::<QueuedRecord>()
    }
}

/// What the tailer sends to the writer.
pub enum Msg {
    /// Create or update a source before its first record.
    Source(Arc<str>, Box<SourceIdentity>),
    /// Records to append.
    Records(Batch),
    /// Sync, then answer.
    Flush(Sender<()>),
    /// The container's log files are gone and everything read from them was sent before this
    /// message: the index keeps its records until retention, then forgets the source.
    Retire(Arc<str>),
}

/// Stop on an index error that retrying cannot help (a failed fsync: a retry could report lost
/// records durable), the way a crash would: on restart the index recovers from its files and
/// every tailer resumes from what is really durable.
fn exit_on_fatal(what: &str, e: &runnel_index::Error) -> ! {
    tracing::error!(error = %e, "index {what} failed and cannot be retried; exiting");
    std::process::exit(70);
}

fn retry<T>(stats: &Stats, what: &str, mut f: impl FnMut() -> Result<T, runnel_index::Error>) -> T {
    let mut wait = Duration::from_millis(50);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if e.is_fatal() => exit_on_fatal(what, &e),
            Err(e) => {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "index {what} failed; retrying (data waits on disk)");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Run the writer until the channel is closed and drained.
pub fn run(store: Arc<Store>, rx: Receiver<Msg>, recycle: Sender<Batch>, stats: Arc<Stats>) {
    let mut last_maint = Instant::now();
    loop {
        if crate::failpoint::at("writer") == crate::failpoint::Action::Exit {
            return;
        }
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => {
                // Nothing waits: the writer is idle, not stuck.
                stats.writer_beat.beat();
                None
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut acks = Vec::new();
        let mut dirty = false;
        if let Some(m) = first {
            let mut next = Some(m);
            let mut n = 0;
            // Group commit: take what is queued already (bounded), then sync once.
            while let Some(m) = next {
                match m {
                    Msg::Source(key, ident) => retry(&stats, "upsert_source", || {
                        store.upsert_source(&key, &ident)
                    }),
                    Msg::Records(mut batch) => {
                        append_batch(&store, &batch, &stats);
                        dirty = true;
                        batch.clear();
                        // Full pool (or the tailer is gone): let this one go.
                        let _ = recycle.try_send(batch);
                    }
                    Msg::Flush(ack) => acks.push(ack),
                    Msg::Retire(key) => retire(&store, &key, &stats),
                }
                n += 1;
                next = if n < 64 { rx.try_recv().ok() } else { None };
            }
        }
        if dirty || !acks.is_empty() {
            retry(&stats, "sync", || store.sync());
            stats.syncs.fetch_add(1, Ordering::Relaxed);
            stats.writer_beat.beat();
        }
        for a in acks {
            let _ = a.send(());
        }
        if last_maint.elapsed() >= MAINTENANCE_EVERY {
            last_maint = Instant::now();
            if let Err(e) = store.seal_due() {
                tracing::warn!(error = %e, "sealing due segments failed");
            }
            if let Err(e) = store.enforce_retention() {
                tracing::warn!(error = %e, "enforcing retention failed");
            }
        }
    }
    retry(&stats, "sync", || store.sync());
}

/// Retire a finished source. Not retried: a source left unretired is retired at the next
/// start (the tailer retires sources whose files are gone).
fn retire(store: &Store, key: &str, stats: &Stats) {
    match store.retire_source(key) {
        // Nothing was ever stored for it (an empty file), or it is gone already.
        Ok(()) | Err(runnel_index::Error::UnknownSource(_)) => {}
        Err(e) if e.is_fatal() => exit_on_fatal("retire", &e),
        Err(e) => {
            stats.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(source = key, error = %e, "retiring a finished source failed");
        }
    }
}

fn append_batch(store: &Store, batch: &Batch, stats: &Stats) {
    let held = batch.held_bytes() as i64;
    for r in &batch.records {
        let rec = NewRecord {
            time_ns: r.time_ns,
            time_style: r.style,
            stream: r.stream,
            flags: r.flags,
            message: &batch.data[r.start..r.start + r.len],
            position: Position::File {
                file: r.file,
                offset: r.offset,
            },
        };
        retry(stats, "append", || store.append(&r.key, &rec));
        stats.queued_records.fetch_sub(1, Ordering::Relaxed);
    }
    stats.queued_bytes.fetch_sub(held, Ordering::Relaxed);
}
