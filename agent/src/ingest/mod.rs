//! The one ingest path: every input — file tailers, forward connections, HTTP ingest — hands
//! its records to one writer thread through one bounded queue, and learns when they are
//! durable.
//!
//! A record's trip: an input fills a [`Batch`] (one allocation: messages back to back plus
//! descriptors) → the bounded crossbeam channel (file tailers send directly and block when it
//! is full; socket inputs go through a [`Submitter`], which holds a byte budget and a bridge
//! thread so async code never blocks) → the [`writer`] appends with `Store::append`, skipping
//! records of chunks already stored ([`chunks`]), and syncs once per group of batches → waiting
//! senders are told ([`Appended`]): a forward connection sends its ack, an HTTP request its 2xx.
//! A file tailer waits for nothing: it resumes from the index's durable position after a
//! restart.

pub mod batch;
pub mod chunks;
pub mod stats;
pub mod submit;
pub mod writer;

pub use batch::{Batch, QueuedRecord};
pub use chunks::WindowLimits;
pub use stats::QueueStats;
pub use submit::{SubmitError, Submitter};
pub use writer::{Appended, Msg};

use crossbeam_channel::{bounded, Receiver, Sender};
use runnel_index::Store;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How the queue and the writer are sized.
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    /// Batches the channel holds (file inputs block beyond it).
    pub queue_batches: usize,
    /// Bytes of a batch (what a file tailer fills before it sends).
    pub batch_bytes: usize,
    /// Byte budget of socket inputs' batches in flight.
    pub socket_budget_bytes: usize,
    /// Chunk windows of pushed sources.
    pub chunk_window: WindowLimits,
}

impl WriterSettings {
    /// Sizes from the `inputs:` section: `queue_max_bytes` split into batches.
    pub fn from_config(cfg: &runnel_config::Config) -> WriterSettings {
        let queue = usize::try_from(cfg.inputs.queue_max_bytes)
            .unwrap_or(usize::MAX)
            .max(1 << 20);
        let batch_bytes = (queue / 16).clamp(64 * 1024, 1 << 20);
        let f = &cfg.inputs.forward;
        WriterSettings {
            queue_batches: (queue / batch_bytes).saturating_sub(2).max(2),
            batch_bytes,
            socket_budget_bytes: queue,
            chunk_window: WindowLimits {
                max_chunks: f.chunk_window,
                max_age: f.chunk_window_age,
            },
        }
    }
}

/// A cloneable way into the writer for blocking inputs (the file tailer).
#[derive(Clone)]
pub struct WriterHandle {
    /// Channel to the writer (blocks when full).
    pub tx: Sender<Msg>,
    /// Emptied batches coming back from the writer, to be filled again.
    pub pool: Receiver<Batch>,
    /// Queue counters.
    pub stats: Arc<QueueStats>,
    /// Bytes of a batch.
    pub batch_bytes: usize,
}

/// The running writer thread.
pub struct Writer {
    handle: WriterHandle,
    submitter: Submitter,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Start the writer thread appending into `store`.
    pub fn start(store: Arc<Store>, settings: WriterSettings) -> std::io::Result<Writer> {
        let stats = Arc::new(QueueStats::default());
        let (tx, rx) = bounded(settings.queue_batches);
        // Emptied batches go back to the inputs and are refilled: the queue's buffers are
        // allocated once, so the allocator never fragments under a steady stream.
        let (recycle, pool) = bounded(settings.queue_batches + 2);
        let body = writer::WriterLoop {
            store,
            rx,
            recycle,
            stats: stats.clone(),
            chunks: chunks::ChunkWindows::new(settings.chunk_window),
            verdicts: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("runnel-ingest-writer".into())
            .spawn(move || body.run())?;
        let submitter = Submitter::start(tx.clone(), settings.socket_budget_bytes, stats.clone())?
            .with_pool(pool.clone());
        Ok(Writer {
            handle: WriterHandle {
                tx,
                pool,
                stats,
                batch_bytes: settings.batch_bytes,
            },
            submitter,
            thread: Some(thread),
        })
    }

    /// The way in for blocking inputs.
    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// The way in for async inputs.
    pub fn submitter(&self) -> Submitter {
        self.submitter.clone()
    }

    /// The queue counters.
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.handle.stats
    }

    /// True once the thread has ended (it should only on [`Writer::shutdown`]).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Sync everything queued so far and wait for it.
    pub fn flush(&self) {
        let (tx, rx) = bounded(1);
        if self.handle.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(3600));
        }
    }

    /// Append what is queued, sync, and stop the thread. Stop the inputs first.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.handle.tx.send(Msg::Stop);
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}
