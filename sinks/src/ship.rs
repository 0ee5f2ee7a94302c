//! Sending one batch until every document in it is done: acknowledged (2xx/409) or
//! dead-lettered (non-retryable 4xx item). Retryable items (429/5xx) are re-sent alone with
//! exponential backoff and jitter; whole-request failures (timeouts, connection errors, 429,
//! 5xx, empty or non-JSON or short bodies) re-send the same documents; 413 splits the batch;
//! 401/403 and other whole-request 4xx keep the data and retry at the slowest pace with a
//! clear error. The task only returns when the batch is finished — shutting down cancels it,
//! and the cursor, which never moved over these documents, makes them be sent again later.

use crate::batch::FrozenBatch;
use crate::concurrency::{Controller, Outcome};
use crate::dead_letter::DeadLetter;
use crate::metrics::Metrics;
use crate::response::{parse_bulk_response, ItemOutcome};
use crate::status::Status;
use crate::transport::{Answer, Transport};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything a sending task needs.
#[derive(Debug)]
pub struct ShipContext {
    /// The HTTP side.
    pub transport: Transport,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// ok/degraded and the last error.
    pub status: Arc<Status>,
    /// Rejected documents go here.
    pub dead_letter: Mutex<DeadLetter>,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// The adaptive limit on bulk requests in flight.
    pub concurrency: Controller,
    /// Wakes the pipeline (a raised limit frees a slot).
    pub wake: Arc<tokio::sync::Notify>,
}

impl ShipContext {
    /// Tell the concurrency controller how a request went; a raised limit wakes the pipeline
    /// so the new slot is used at once.
    fn report(&self, rtt: Duration, outcome: Outcome) {
        if let Some(limit) = self.concurrency.observe(rtt, outcome) {
            let before = self.metrics.concurrency_limit.swap(limit as u64, Relaxed);
            tracing::debug!(limit, before, "bulk concurrency limit changed");
            if limit as u64 > before {
                self.wake.notify_one();
            }
        }
    }

    /// The wait before retry number `attempt` (see [`backoff`]).
    pub fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.retry_initial, self.retry_max, attempt)
    }

    /// Write rejected documents (`(index in batch, status, reason JSON)`) to the dead-letter
    /// file with one fsync, on the blocking pool, and count them once they are durable. The
    /// batch is not finished (so the cursor does not pass it) until every one is written: a
    /// file that cannot be written (a full disk) is retried with backoff, the error logged and
    /// shown in the status, and no document is counted as dead-lettered before it is in the
    /// file. Shutting down meanwhile sends the batch again on the next start.
    async fn dead_letter(
        self: &Arc<Self>,
        batch: &Arc<FrozenBatch>,
        rejects: Vec<(usize, u16, String)>,
    ) {
        if rejects.is_empty() {
            return;
        }
        let rejects = Arc::new(rejects);
        let mut progress = DeadLetterProgress::default();
        let mut attempt = 0;
        loop {
            let (ctx, b, r) = (self.clone(), batch.clone(), rejects.clone());
            let done = tokio::task::spawn_blocking(move || {
                let result = ctx.dead_letter_now(&b, &r, &mut progress);
                (progress, result)
            })
            .await;
            let error = match done {
                Ok((_, Ok(()))) => return,
                Ok((p, Err(e))) => {
                    progress = p;
                    e.to_string()
                }
                // The blocking task panicked: what it wrote is unknown, so write all again
                // (a dead letter twice is better than none).
                Err(e) => {
                    progress = DeadLetterProgress::default();
                    format!("the writing task failed: {e}")
                }
            };
            self.metrics.dead_letter_errors.fetch_add(1, Relaxed);
            let wait = self.backoff(attempt);
            tracing::error!(error = %error, documents = rejects.len() - progress.synced,
                retry_in = ?wait,
                "cannot write the dead-letter file; the rejected documents are kept and the write retried");
            self.status.set_error(format!("dead-letter file: {error}"));
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Append the rejects not yet written, then fsync; `progress` says how far an earlier
    /// attempt got, so a retry writes no line twice.
    fn dead_letter_now(
        &self,
        batch: &FrozenBatch,
        rejects: &[(usize, u16, String)],
        progress: &mut DeadLetterProgress,
    ) -> Result<(), crate::SinkError> {
        let mut dl = self
            .dead_letter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut last = String::new();
        for (i, status, reason) in &rejects[progress.written..] {
            let (index, id) = action_target(batch.action(*i));
            dl.append(&index, id.as_deref(), *status, reason, batch.document(*i))?;
            progress.written += 1;
            last = format!("HTTP {status} for a document of {index}: {reason}");
        }
        dl.sync()?;
        let newly = progress.written - progress.synced;
        progress.synced = progress.written;
        self.metrics
            .docs_dead_lettered
            .fetch_add(newly as u64, Relaxed);
        // One line per response, not per document: a cluster that rejects everything must
        // not flood the log.
        tracing::warn!(documents = rejects.len(), file = %dl.path().display(), last = %last,
            "documents rejected by the cluster; written to the dead-letter file");
        if !last.is_empty() {
            self.status.set_dead_letter(last);
        }
        Ok(())
    }
}

/// How far the dead-letter write of one response's rejects got: lines appended, and lines
/// made durable (and counted).
#[derive(Debug, Default, Clone, Copy)]
struct DeadLetterProgress {
    written: usize,
    synced: usize,
}

/// Exponential backoff with "equal jitter": a delay in [d/2, d] where
/// d = initial·2^attempt, capped at `max` — so retries of many batches spread out instead of
/// hitting a recovering cluster together, and no wait exceeds `retry.max`. Computed in u128
/// nanoseconds, so no `retry.initial`/`retry.max` (however large) and no attempt count can
/// overflow: a `Duration` product would panic the sending task.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let base = (initial.as_nanos() << attempt.min(20)).min(max.as_nanos());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ JITTER.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed);
    let r = u128::from(xxhash_rust::xxh3::xxh3_64(&seed.to_le_bytes()) % 1_000);
    let half = base / 2;
    let ns = half + half / 1_000 * r + half % 1_000 * r / 1_000;
    let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (ns % 1_000_000_000) as u32)
}

/// Mixed into the jitter seed so two retries in the same nanosecond still differ.
static JITTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn action_target(action: &[u8]) -> (String, Option<String>) {
    let v: serde_json::Value = serde_json::from_slice(action).unwrap_or_default();
    let inner = v.as_object().and_then(|o| o.values().next());
    let get = |k: &str| {
        inner
            .and_then(|i| i.get(k))
            .and_then(|x| x.as_str())
            .map(String::from)
    };
    (get("_index").unwrap_or_default(), get("_id"))
}

/// Set by a unit test: the next `ship` of the sink whose `retry.initial` is this many ms
/// panics (to show that a panicked task gives its batch back). Keyed so that sinks of other
/// tests running in parallel never take it.
#[cfg(test)]
pub(crate) static PANIC_NEXT_FOR_RETRY_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Send `batch` until every document is done (acknowledged or dead-lettered). One request at
/// a time: the batch holds one concurrency slot for its whole life, retries included.
pub async fn ship(ctx: Arc<ShipContext>, batch: Arc<FrozenBatch>) {
    #[cfg(test)]
    {
        let key = ctx.retry_initial.as_millis() as u64;
        if key != 0
            && PANIC_NEXT_FOR_RETRY_MS
                .compare_exchange(key, 0, Relaxed, Relaxed)
                .is_ok()
        {
            panic!("injected panic (unit test)");
        }
    }
    let mut queue: VecDeque<Vec<usize>> = VecDeque::new();
    queue.push_back((0..batch.docs.len()).collect());
    let mut attempt = 0u32;
    let mut failovers = 0usize;
    let mut first = true;
    while let Some(chunk) = queue.pop_front() {
        if chunk.is_empty() {
            continue;
        }
        let m = &ctx.metrics;
        m.docs_sent.fetch_add(chunk.len() as u64, Relaxed);
        if !first {
            m.docs_retried.fetch_add(chunk.len() as u64, Relaxed);
        }
        first = false;
        let (b2, c2, gz) = (batch.clone(), chunk.clone(), ctx.transport.gzip());
        let body = tokio::task::spawn_blocking(move || {
            // The whole batch is compressed straight from its buffer, without a copy.
            let raw = b2.body(&c2);
            if gz {
                crate::gzip::gzip(&raw).map(|z| (raw.len(), z))
            } else {
                Ok((raw.len(), raw))
            }
        })
        .await;
        let (raw_len, body) = match body {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                ctx.status
                    .set_error(format!("compressing a bulk body: {e}"));
                queue.push_front(chunk);
                tokio::time::sleep(ctx.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            Err(e) => {
                ctx.status
                    .set_error(format!("compressing a bulk body: {e}"));
                queue.push_front(chunk);
                tokio::time::sleep(ctx.retry_max).await;
                continue;
            }
        };
        m.bytes_raw.fetch_add(raw_len as u64, Relaxed);
        m.bytes_compressed.fetch_add(body.len() as u64, Relaxed);
        let t0 = Instant::now();
        m.requests_in_flight_add();
        let answer = ctx.transport.bulk(body, gz).await;
        m.requests_in_flight.fetch_sub(1, Relaxed);
        let rtt = t0.elapsed();
        m.observe_latency(rtt.as_secs_f64());
        let outcome = match &answer {
            Answer::Status(200..=299, _) => Outcome::Ok,
            Answer::Status(408 | 429 | 502 | 503 | 504, _) => Outcome::BackPressure,
            Answer::Failed { timeout: true, .. } => Outcome::BackPressure,
            _ => Outcome::Other,
        };
        if !matches!(answer, Answer::Status(200..=299, _)) {
            ctx.report(rtt, outcome);
        }
        if matches!(answer, Answer::Status(..)) {
            failovers = 0;
        }
        let fail = |msg: String| {
            m.requests_failed.fetch_add(1, Relaxed);
            tracing::warn!(error = %msg, docs = chunk.len(), "bulk request failed; will retry");
            ctx.status.set_error(msg);
        };
        match answer {
            Answer::Status(s, body) if (200..300).contains(&s) => {
                match parse_bulk_response(&body, chunk.len()) {
                    Ok(outcomes) => {
                        m.requests_ok.fetch_add(1, Relaxed);
                        let mut retry = Vec::new();
                        let mut rejects = Vec::new();
                        let mut last_retry_reason = String::new();
                        for (&i, o) in chunk.iter().zip(outcomes) {
                            match o {
                                ItemOutcome::Done => {
                                    m.docs_acked.fetch_add(1, Relaxed);
                                }
                                ItemOutcome::Retry(r) => {
                                    retry.push(i);
                                    last_retry_reason = r;
                                }
                                ItemOutcome::Reject { status, reason } => {
                                    rejects.push((i, status, reason))
                                }
                            }
                        }
                        ctx.report(
                            rtt,
                            if retry.is_empty() {
                                outcome
                            } else {
                                Outcome::BackPressure
                            },
                        );
                        ctx.dead_letter(&batch, rejects).await;
                        if retry.is_empty() {
                            attempt = 0;
                            ctx.status.set_ok();
                        } else {
                            ctx.status.set_error(format!(
                                "{} bulk items need a retry: {last_retry_reason}",
                                retry.len()
                            ));
                            queue.push_front(retry);
                            tokio::time::sleep(ctx.backoff(attempt)).await;
                            attempt += 1;
                        }
                    }
                    Err(e) => {
                        fail(format!("HTTP {s}: {e}"));
                        queue.push_front(chunk);
                        tokio::time::sleep(ctx.backoff(attempt)).await;
                        attempt += 1;
                    }
                }
            }
            Answer::Status(413, _) => {
                m.requests_failed.fetch_add(1, Relaxed);
                if chunk.len() == 1 {
                    let reason = r#""request entity too large even as a single document (raise http.max_content_length)""#;
                    ctx.dead_letter(&batch, vec![(chunk[0], 413, reason.to_string())])
                        .await;
                } else {
                    let (a, b) = chunk.split_at(chunk.len() / 2);
                    tracing::info!(docs = chunk.len(), "HTTP 413: splitting the bulk request");
                    queue.push_front(b.to_vec());
                    queue.push_front(a.to_vec());
                }
            }
            Answer::Status(s @ (401 | 403), _) => {
                fail(format!(
                    "HTTP {s}: the cluster refused our credentials; check sinks.elasticsearch.auth (data is kept and retried every {:?})",
                    ctx.retry_max
                ));
                queue.push_front(chunk);
                tokio::time::sleep(ctx.retry_max).await;
            }
            Answer::Status(s, body) if s == 429 || s == 408 || s >= 500 => {
                let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                fail(format!("HTTP {s}: {head}"));
                queue.push_front(chunk);
                tokio::time::sleep(ctx.backoff(attempt)).await;
                attempt += 1;
            }
            Answer::Status(s, body) => {
                let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                fail(format!(
                    "HTTP {s} for the whole bulk request (check the endpoint URL and path prefix): {head}"
                ));
                queue.push_front(chunk);
                tokio::time::sleep(ctx.retry_max).await;
            }
            Answer::Failed { message, .. } => {
                fail(message);
                queue.push_front(chunk);
                // Fail over at once while another endpoint is up (at most one pass over
                // them); back off when none is.
                if failovers + 1 < ctx.transport.endpoints().len() && ctx.transport.any_up() {
                    failovers += 1;
                    continue;
                }
                failovers = 0;
                tokio::time::sleep(ctx.backoff(attempt)).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let (ms, initial, max) = (
            Duration::from_millis,
            Duration::from_millis(100),
            Duration::from_secs(2),
        );
        for attempt in 0..40 {
            let d = initial.saturating_mul(1u32 << attempt.min(20)).min(max);
            let seen: Vec<Duration> = (0..200).map(|_| backoff(initial, max, attempt)).collect();
            assert!(
                seen.iter().all(|&w| w >= d / 2 && w <= d),
                "attempt {attempt}: {seen:?}"
            );
            let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
            assert!(
                distinct.len() > 50,
                "attempt {attempt}: jitter spreads the waits"
            );
        }
        assert!(backoff(initial, max, 0) <= ms(100));
        assert!(
            backoff(initial, max, 30) >= ms(1000),
            "capped at max, never at zero"
        );
    }

    #[test]
    fn backoff_never_overflows_whatever_the_retry_settings() {
        for (initial, max) in [
            (Duration::MAX, Duration::MAX),
            (Duration::from_secs(u64::MAX / 2), Duration::MAX),
            (Duration::from_millis(500), Duration::from_secs(u64::MAX)),
            (Duration::from_secs(1 << 40), Duration::from_secs(1 << 41)),
        ] {
            for attempt in [0, 1, 19, 20, 21, u32::MAX] {
                let w = backoff(initial, max, attempt);
                assert!(
                    w <= max && w >= initial.min(max) / 2,
                    "{initial:?} {max:?} {attempt}: {w:?}"
                );
            }
        }
    }
}
