//! Bounded batches of records on their way to the index writer: one allocation per batch
//! (messages back to back plus record descriptors) so the queue's memory is its budget.

use runnel_index::{Position, RecordFlags, Stream, TimeStyle};
use std::sync::Arc;

/// One queued record; its message is a range of the batch's data.
#[derive(Debug, Clone)]
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
    /// Where the record came from: a file offset (where a tailer resumes) or a sidecar
    /// chunk position (what makes a resent chunk stored once).
    pub position: Position,
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
