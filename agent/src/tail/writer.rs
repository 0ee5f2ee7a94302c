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
#[derive(Default)]
pub struct Batch {
    /// The records in file order.
    pub records: Vec<QueuedRecord>,
    /// All messages back to back.
    pub data: Vec<u8>,
}

/// What the tailer sends to the writer.
pub enum Msg {
    /// Create or update a source before its first record.
    Source(Arc<str>, Box<SourceIdentity>),
    /// Records to append.
    Records(Batch),
    /// Sync, then answer.
    Flush(Sender<()>),
}

fn retry<T>(stats: &Stats, what: &str, mut f: impl FnMut() -> Result<T, runnel_index::Error>) -> T {
    let mut wait = Duration::from_millis(50);
    loop {
        match f() {
            Ok(v) => return v,
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
pub fn run(store: Arc<Store>, rx: Receiver<Msg>, stats: Arc<Stats>) {
    let mut last_maint = Instant::now();
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
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
                    Msg::Records(batch) => {
                        append_batch(&store, &batch, &stats);
                        dirty = true;
                    }
                    Msg::Flush(ack) => acks.push(ack),
                }
                n += 1;
                next = if n < 64 { rx.try_recv().ok() } else { None };
            }
        }
        if dirty || !acks.is_empty() {
            retry(&stats, "sync", || store.sync());
            stats.syncs.fetch_add(1, Ordering::Relaxed);
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

fn append_batch(store: &Store, batch: &Batch, stats: &Stats) {
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
        stats
            .queued_bytes
            .fetch_sub(r.len as i64, Ordering::Relaxed);
    }
}
