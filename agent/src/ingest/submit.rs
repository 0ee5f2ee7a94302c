//! How socket inputs (forward connections, HTTP ingest requests) hand records to the writer
//! from async code without blocking a runtime thread, with the same backpressure as files.
//!
//! A byte budget (a semaphore of `queue_max_bytes` permits) is taken for each batch before it
//! is queued and given back once the batch is durable: while the budget is spent, connections
//! wait before reading their next request, so TCP pushes back on the clients and nothing is
//! dropped. One bridge thread moves the batches into the writer's bounded channel (a blocking
//! send), so a full writer queue blocks the bridge, not a runtime worker.

use super::batch::Batch;
use super::stats::QueueStats;
use super::writer::{Appended, Msg};
use crossbeam_channel::Sender;
use runnel_index::SourceIdentity;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// Source keys announced before the set is cleared (each clear costs one upsert per source).
const ANNOUNCED_MAX: usize = 100_000;

/// Why a batch was not made durable.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue stayed full for the whole wait.
    #[error("the ingest queue stayed full for {0:?}; retry later")]
    QueueFull(Duration),
    /// The writer stopped (shutdown, or a fatal index error) before the batch was durable.
    #[error("the index writer stopped before the records were durable")]
    WriterStopped,
}

/// Submits batches from async code; cheap to clone (one per connection).
#[derive(Clone)]
pub struct Submitter {
    bridge: mpsc::UnboundedSender<Msg>,
    budget: Arc<Semaphore>,
    budget_bytes: u32,
    announced: Arc<Mutex<HashSet<Arc<str>>>>,
    stats: Arc<QueueStats>,
    /// Emptied batches the writer hands back (shared with the file tailer).
    pool: Option<crossbeam_channel::Receiver<Batch>>,
}

impl Submitter {
    /// Start the bridge thread into the writer's channel `tx` with a budget of `budget_bytes`.
    pub(crate) fn start(
        tx: Sender<Msg>,
        budget_bytes: usize,
        stats: Arc<QueueStats>,
    ) -> std::io::Result<Submitter> {
        let (bridge, mut rx) = mpsc::unbounded_channel::<Msg>();
        std::thread::Builder::new()
            .name("runnel-ingest-bridge".into())
            .spawn(move || {
                while let Some(m) = rx.blocking_recv() {
                    if tx.send(m).is_err() {
                        break;
                    }
                }
            })?;
        let budget_bytes = u32::try_from(budget_bytes.max(1 << 16)).unwrap_or(u32::MAX);
        Ok(Submitter {
            bridge,
            budget: Arc::new(Semaphore::new(budget_bytes as usize)),
            budget_bytes,
            announced: Arc::new(Mutex::new(HashSet::new())),
            stats,
            pool: None,
        })
    }

    /// Take emptied batches from `pool` (the writer's recycling channel) for [`Submitter::batch`].
    pub(crate) fn with_pool(mut self, pool: crossbeam_channel::Receiver<Batch>) -> Submitter {
        self.pool = Some(pool);
        self
    }

    /// An empty batch for about `bytes` of records: a recycled one when one is free and large
    /// enough (its pages are already mapped: a fresh large allocation per request costs page
    /// faults on every first touch), else a new one.
    pub fn batch(&self, bytes: usize) -> Batch {
        if let Some(b) = self.pool.as_ref().and_then(|p| p.try_recv().ok()) {
            if b.data.capacity() >= bytes {
                return b;
            }
        }
        Batch::with_budget(bytes.clamp(4096, 64 << 20))
    }

    /// Create or update the source before its first records in this process (idempotent).
    pub fn announce(&self, key: &Arc<str>, identity: &SourceIdentity) -> Result<(), SubmitError> {
        let mut set = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        if set.contains(key) {
            return Ok(());
        }
        if set.len() >= ANNOUNCED_MAX {
            set.clear();
        }
        self.bridge
            .send(Msg::Source(key.clone(), Box::new(identity.clone())))
            .map_err(|_| SubmitError::WriterStopped)?;
        set.insert(key.clone());
        Ok(())
    }

    /// Queue `batch` and wait until it is durable. With `wait`, give up (storing nothing) when
    /// the budget is not free within that time.
    pub async fn submit_durable(
        &self,
        batch: Batch,
        wait: Option<Duration>,
    ) -> Result<Appended, SubmitError> {
        let permit = self.reserve(&batch, wait).await?;
        let (tell, told) = tokio::sync::oneshot::channel();
        self.send(Msg::Durable(batch, tell))?;
        let done = told.await.map_err(|_| SubmitError::WriterStopped)?;
        drop(permit);
        Ok(done)
    }

    /// Queue `batch` without waiting for it to be durable (a forward client that asked for no
    /// ack); still waits for budget, so a fast client is slowed, not buffered.
    pub async fn submit(&self, batch: Batch) -> Result<(), SubmitError> {
        let permit = self.reserve(&batch, None).await?;
        let (tell, told) = tokio::sync::oneshot::channel();
        self.send(Msg::Durable(batch, tell))?;
        // The budget comes back when the writer is done with the batch.
        tokio::spawn(async move {
            let _ = told.await;
            drop(permit);
        });
        Ok(())
    }

    async fn reserve(
        &self,
        batch: &Batch,
        wait: Option<Duration>,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, SubmitError> {
        let n = u32::try_from(batch.held_bytes())
            .unwrap_or(u32::MAX)
            .min(self.budget_bytes);
        let acquire = self.budget.clone().acquire_many_owned(n);
        let permit = match wait {
            Some(w) => tokio::time::timeout(w, acquire)
                .await
                .map_err(|_| SubmitError::QueueFull(w))?,
            None => acquire.await,
        };
        permit.map_err(|_| SubmitError::WriterStopped)
    }

    fn send(&self, m: Msg) -> Result<(), SubmitError> {
        if let Msg::Durable(b, _) = &m {
            self.stats.enqueued(b.records.len(), b.held_bytes());
        }
        self.bridge.send(m).map_err(|_| SubmitError::WriterStopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::QueuedRecord;
    use runnel_index::{Position, RecordFlags, Stream, TimeStyle};

    fn batch(bytes: usize) -> Batch {
        let mut b = Batch::with_budget(bytes);
        b.push(
            QueuedRecord {
                key: "sidecar:ns/p/c".into(),
                time_ns: 1,
                style: TimeStyle::default(),
                stream: Stream::Stdout,
                flags: RecordFlags::default(),
                start: 0,
                len: 0,
                position: Position::None,
            },
            &vec![b'x'; bytes / 2],
        );
        b
    }

    #[test]
    fn a_spent_budget_holds_socket_inputs_back_until_the_writer_is_done() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let sub = Submitter::start(tx, 64 << 10, Arc::new(QueueStats::default())).unwrap();
        rt.block_on(async {
            let first = tokio::spawn({
                let sub = sub.clone();
                async move { sub.submit_durable(batch(60 << 10), None).await }
            });
            // Let the first take its budget before the second asks.
            while sub.budget.available_permits() > 8 << 10 {
                tokio::task::yield_now().await;
            }
            // The writer has not answered: the budget is spent, a second request waits and,
            // with a wait limit, is refused without being queued.
            let second = sub
                .submit_durable(batch(60 << 10), Some(Duration::from_millis(200)))
                .await;
            assert!(
                matches!(second, Err(SubmitError::QueueFull(_))),
                "{second:?}"
            );
            // The writer takes the first batch and makes it durable: the budget comes back.
            let msg = tokio::task::spawn_blocking(move || {
                let m = rx.recv().unwrap();
                (m, rx)
            })
            .await
            .unwrap();
            let (Msg::Durable(b, tell), rx) = msg else {
                panic!("expected the first batch");
            };
            assert_eq!(b.records.len(), 1);
            tell.send(Appended {
                stored: 1,
                ..Appended::default()
            })
            .unwrap();
            assert_eq!(first.await.unwrap().unwrap().stored, 1);
            let third = tokio::spawn({
                let sub = sub.clone();
                async move {
                    sub.submit_durable(batch(60 << 10), Some(Duration::from_secs(60)))
                        .await
                }
            });
            let (m, _rx) = tokio::task::spawn_blocking(move || (rx.recv().unwrap(), rx))
                .await
                .unwrap();
            let Msg::Durable(_, tell) = m else {
                panic!("expected the third batch");
            };
            tell.send(Appended {
                stored: 1,
                ..Appended::default()
            })
            .unwrap();
            assert_eq!(third.await.unwrap().unwrap().stored, 1);
        });
    }
}
