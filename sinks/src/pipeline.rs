//! The pipeline's coordinator: one async task that reads the index by cursor (on the blocking
//! pool), encodes documents into batches, keeps the in-flight byte budget, runs up to
//! `concurrency` sending tasks, and moves and persists the per-source cursors over the
//! contiguous prefix of finished documents.

use crate::batch::{Batch, DocRef};
use crate::cursor::CursorStore;
use crate::encode::{document_id, encode_document, push_hex128, SourceFragment};
use crate::index_name::IndexPattern;
use crate::metrics::SourceLag;
use crate::ship::{ship, ShipContext};
use runnel_index::{ReadBatch, SourceInfo, Store};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

/// Requests from the handle.
#[derive(Debug)]
pub enum Command {
    /// Ship everything stored now, answer when acknowledged.
    Drain(std::sync::mpsc::Sender<()>),
    /// Save cursors and stop.
    Shutdown(std::sync::mpsc::Sender<()>),
}

/// Settings the coordinator uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Node name (documents, `_id`).
    pub node: String,
    /// Index name pattern.
    pub index: IndexPattern,
    /// Send deterministic `_id`s.
    pub deterministic_ids: bool,
    /// Batch limits.
    pub batch_bytes: usize,
    /// Documents per batch.
    pub batch_docs: usize,
    /// Longest wait before a partial batch is sent.
    pub batch_timeout: Duration,
    /// Parallel bulk requests.
    pub concurrency: usize,
    /// Encoded bytes held in memory at most.
    pub max_in_flight: u64,
    /// Field for parsed JSON messages.
    pub parse_json: Option<String>,
}

/// A pending drain: who to answer and the (source, next_seq) targets.
type Drain = (std::sync::mpsc::Sender<()>, Vec<(usize, u64)>);

struct Source {
    key: String,
    frag: Arc<SourceFragment>,
    identity: runnel_index::SourceIdentity,
    next_seq: u64,
    max_time_ns: Option<i64>,
    read_pos: u64,
    /// Sequences read and not yet done, with their record times.
    pending: BTreeMap<u64, i64>,
    /// Oldest record still stored: (first_seq, min_time_ns).
    first: (u64, Option<i64>),
    acked_time_ns: Option<i64>,
    /// The index no longer has this source (a removed container forgotten after retention):
    /// dropped, cursor and all, once nothing refers to its position in `sources`.
    gone: bool,
}

impl Source {
    fn cursor(&self) -> u64 {
        self.pending
            .first_key_value()
            .map_or(self.read_pos, |(&seq, _)| seq)
    }
}

/// The coordinator's state.
pub struct Pipeline {
    store: Arc<Store>,
    settings: Settings,
    ctx: Arc<ShipContext>,
    cursors: Arc<CursorStore>,
    saved: BTreeMap<String, u64>,
    sources: Vec<Source>,
    by_key: HashMap<String, usize>,
    builder: Batch,
    in_flight: u64,
    tasks: JoinSet<(Vec<DocRef>, usize)>,
    drains: Vec<Drain>,
    last_save: Instant,
    last_refresh: Option<Instant>,
    rr: usize,
    /// Smallest encoded document (action + document lines) seen so far, to size reads.
    doc_bytes: usize,
}

impl Pipeline {
    /// A coordinator starting from the saved cursors.
    pub fn new(
        store: Arc<Store>,
        settings: Settings,
        ctx: Arc<ShipContext>,
        cursors: Arc<CursorStore>,
        saved: BTreeMap<String, u64>,
    ) -> Pipeline {
        Pipeline {
            store,
            settings,
            ctx,
            cursors,
            saved,
            sources: Vec::new(),
            by_key: HashMap::new(),
            builder: Batch::default(),
            in_flight: 0,
            tasks: JoinSet::new(),
            drains: Vec::new(),
            last_save: Instant::now(),
            last_refresh: None,
            rr: 0,
            doc_bytes: usize::MAX,
        }
    }

    async fn refresh_sources(&mut self) {
        self.last_refresh = Some(Instant::now());
        let store = self.store.clone();
        let Ok(infos) = tokio::task::spawn_blocking(move || store.sources()).await else {
            return;
        };
        let present: HashSet<String> = infos.iter().map(|i| i.key.clone()).collect();
        for info in infos {
            self.upsert(info);
        }
        for s in &mut self.sources {
            s.gone = !present.contains(&s.key);
        }
        self.compact();
    }

    /// Drop sources the index forgot, when no batch, request or drain refers to them by
    /// position. Their cursors leave the cursor file at the next save.
    fn compact(&mut self) {
        let quiet = self.in_flight == 0
            && self.builder.docs.is_empty()
            && self.tasks.is_empty()
            && self.drains.is_empty();
        if !quiet || !self.sources.iter().any(|s| s.gone) {
            return;
        }
        self.sources.retain(|s| !s.gone);
        self.by_key = self
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key.clone(), i))
            .collect();
        self.rr = 0;
    }

    fn upsert(&mut self, info: SourceInfo) {
        if let Some(&i) = self.by_key.get(&info.key) {
            let s = &mut self.sources[i];
            if info.next_seq < s.read_pos {
                // Removed and created again under the same key: a new sequence from 0.
                tracing::info!(source = %info.key, "source was recreated; shipping it from its start");
                s.read_pos = info.first_seq;
                s.acked_time_ns = None;
            }
            if s.identity != info.identity {
                s.frag = Arc::new(SourceFragment::new(
                    &self.settings.node,
                    &info.key,
                    &info.identity,
                ));
                s.identity = info.identity;
            }
            s.next_seq = info.next_seq;
            s.max_time_ns = info.max_time_ns;
            s.first = (info.first_seq, info.min_time_ns);
            return;
        }
        let start = match self.saved.get(&info.key) {
            Some(&c) => c,
            // A source the sink has never seen starts at the oldest record still stored.
            None => info.first_seq,
        };
        let frag = Arc::new(SourceFragment::new(
            &self.settings.node,
            &info.key,
            &info.identity,
        ));
        self.by_key.insert(info.key.clone(), self.sources.len());
        self.sources.push(Source {
            key: info.key,
            frag,
            identity: info.identity,
            next_seq: info.next_seq,
            max_time_ns: info.max_time_ns,
            read_pos: start,
            pending: BTreeMap::new(),
            first: (info.first_seq, info.min_time_ns),
            acked_time_ns: None,
            gone: false,
        });
    }

    fn budget_left(&self) -> u64 {
        self.settings.max_in_flight.saturating_sub(self.in_flight)
    }

    /// Read and encode until the batch is full, the budget is spent or nothing is left.
    /// Returns true when every source was read to its end.
    async fn fill(&mut self) -> bool {
        let n = self.sources.len();
        let mut exhausted = 0;
        let mut i = 0;
        while i < n && exhausted < n {
            let si = (self.rr + i) % n;
            i += 1;
            if self.builder.docs.len() >= self.settings.batch_docs
                || self.builder.bytes() >= self.settings.batch_bytes
            {
                return false;
            }
            let s = &self.sources[si];
            if s.gone || s.read_pos >= s.next_seq {
                exhausted += 1;
                continue;
            }
            let budget = self.budget_left();
            if budget == 0 && self.in_flight > 0 {
                return false;
            }
            let room = self
                .settings
                .batch_bytes
                .saturating_sub(self.builder.bytes())
                .min(budget as usize)
                .max(1);
            // Read about as many records as will fit once encoded (a document is several
            // times its message), so few are read only to be dropped and read again.
            let want_bytes = room;
            let want_docs = (self.settings.batch_docs - self.builder.docs.len())
                .min(room / self.doc_bytes.max(1) + 1);
            let (store, key, from) = (self.store.clone(), s.key.clone(), s.read_pos);
            let read = tokio::task::spawn_blocking(move || {
                store.read_from(&key, from, want_docs, want_bytes)
            })
            .await;
            let rb: ReadBatch = match read {
                Ok(Ok(rb)) => rb,
                Ok(Err(runnel_index::Error::UnknownSource(_))) => {
                    // Forgotten by the index since the last refresh; dropped at the next one.
                    self.sources[si].gone = true;
                    exhausted += 1;
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(source = %self.sources[si].key, error = %e, "reading the index failed; will retry");
                    self.ctx.status.set_error(format!("reading the index: {e}"));
                    // Counted as read to its end for this round: retried after the poll wait.
                    exhausted += 1;
                    continue;
                }
                Err(_) => {
                    exhausted += 1;
                    continue;
                }
            };
            if rb.records.is_empty() {
                // Nothing readable yet (not durable, or all lost to retention): done for now.
                self.skip_to(si, rb.next_seq);
                exhausted += 1;
                continue;
            }
            let full_read = self.encode(si, &rb);
            if !full_read {
                return false;
            }
            let s = &self.sources[si];
            if s.read_pos < s.next_seq {
                // More to read from this source: come back to it first.
                i -= 1;
            }
        }
        self.rr = self.rr.wrapping_add(1);
        exhausted >= n
    }

    /// Move a source's read position to `seq`; sequences jumped over were deleted by
    /// retention (or lost to corruption) before they were shipped: counted and logged once,
    /// from the sequence numbers themselves, so a re-read never counts them twice.
    fn skip_to(&mut self, si: usize, seq: u64) {
        let s = &mut self.sources[si];
        if seq > s.read_pos {
            let lost = seq - s.read_pos;
            self.ctx.metrics.records_lost.fetch_add(lost, Relaxed);
            tracing::warn!(source = %s.key, lost, from_seq = s.read_pos,
                "records were deleted (retention) before they were shipped");
            s.read_pos = seq;
        }
    }

    /// Encode the read records into the builder within the budget; false when the budget or
    /// the batch ran out before the last record.
    fn encode(&mut self, si: usize, rb: &ReadBatch) -> bool {
        let mut index = String::new();
        for r in &rb.records {
            self.skip_to(si, r.seq);
            if self.builder.docs.len() >= self.settings.batch_docs {
                return false;
            }
            let src = &self.sources[si];
            let start = self.builder.buf.len();
            let buf = &mut self.builder.buf;
            buf.extend_from_slice(b"{\"create\":{\"_index\":\"");
            index.clear();
            self.settings
                .index
                .render(&mut index, r.time_ns, &self.settings.node, &src.identity);
            buf.extend_from_slice(index.as_bytes());
            buf.push(b'"');
            if self.settings.deterministic_ids {
                let id = document_id(&self.settings.node, &src.frag.container_key, &src.key, r);
                buf.extend_from_slice(b",\"_id\":\"");
                push_hex128(buf, id);
                buf.push(b'"');
            }
            buf.extend_from_slice(b"}}\n");
            let doc_start = buf.len();
            encode_document(buf, r, &src.frag, self.settings.parse_json.as_deref());
            buf.push(b'\n');
            let len = (buf.len() - start) as u64;
            // `batch.max_bytes` caps the encoded body (a single bigger document goes alone);
            // the in-flight budget caps everything read and not yet acknowledged. A record
            // that does not fit stays unread and is read again for the next batch.
            let over_batch = buf.len() > self.settings.batch_bytes && !self.builder.docs.is_empty();
            let over_budget =
                self.in_flight + len > self.settings.max_in_flight && self.in_flight > 0;
            if over_batch || over_budget {
                buf.truncate(start);
                return false;
            }
            self.in_flight += len;
            self.doc_bytes = self.doc_bytes.min(len as usize);
            self.ctx.metrics.add_in_flight(len);
            self.builder.docs.push(DocRef {
                source: si,
                seq: r.seq,
                time_ns: r.time_ns,
                lines: start..self.builder.buf.len(),
                doc_start,
            });
            if self.builder.started.is_none() {
                self.builder.started = Some(Instant::now());
            }
            let s = &mut self.sources[si];
            s.pending.insert(r.seq, r.time_ns);
            s.read_pos = r.seq + 1;
        }
        self.skip_to(si, rb.next_seq);
        true
    }

    fn flush(&mut self) {
        if self.builder.docs.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.builder);
        self.ctx.metrics.in_flight_batches.fetch_add(1, Relaxed);
        self.tasks.spawn(ship(self.ctx.clone(), batch));
    }

    fn finish(&mut self, docs: Vec<DocRef>, bytes: usize) {
        self.ctx.metrics.in_flight_batches.fetch_sub(1, Relaxed);
        self.in_flight = self.in_flight.saturating_sub(bytes as u64);
        self.ctx.metrics.sub_in_flight(bytes as u64);
        for d in docs {
            if let Some(s) = self.sources.get_mut(d.source) {
                s.pending.remove(&d.seq);
                s.acked_time_ns = Some(s.acked_time_ns.map_or(d.time_ns, |t| t.max(d.time_ns)));
            }
        }
    }

    fn cursor_map(&self) -> BTreeMap<String, u64> {
        self.sources
            .iter()
            .map(|s| (s.key.clone(), s.cursor()))
            .collect()
    }

    async fn save(&mut self) {
        let map = self.cursor_map();
        if map == self.saved {
            return;
        }
        let cs = self.cursors.clone();
        let m2 = map.clone();
        match tokio::task::spawn_blocking(move || cs.save(&m2)).await {
            Ok(Ok(())) => self.saved = map,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot save the sink cursor");
                self.ctx.status.set_error(format!("saving the cursor: {e}"));
            }
            Err(_) => {}
        }
        self.last_save = Instant::now();
    }

    /// Lag per source: records not yet acknowledged, and in seconds the newest stored
    /// record's time minus the time of the oldest record not yet acknowledged (the first
    /// one in flight, else the oldest stored one when the cursor is at it, else — records
    /// not read yet — the newest acknowledged one).
    fn update_lag(&self) {
        if let Ok(mut lag) = self.ctx.metrics.lag.lock() {
            lag.clear();
            for s in &self.sources {
                let cursor = s.cursor();
                let records = s.next_seq.saturating_sub(cursor);
                let oldest = s
                    .pending
                    .first_key_value()
                    .map(|(_, &t)| t)
                    .or(if cursor <= s.first.0 { s.first.1 } else { None })
                    .or(s.acked_time_ns);
                let seconds = match (records, s.max_time_ns, oldest) {
                    (1.., Some(max), Some(t)) => (max.saturating_sub(t)).max(0) as f64 / 1e9,
                    _ => 0.0,
                };
                lag.insert(s.key.clone(), SourceLag { records, seconds });
            }
        }
    }

    async fn check_drains(&mut self) {
        if self.drains.is_empty() {
            return;
        }
        let done = |targets: &Vec<(usize, u64)>, srcs: &Vec<Source>| {
            targets.iter().all(|&(i, t)| srcs[i].cursor() >= t)
        };
        if self.drains.iter().any(|(_, t)| done(t, &self.sources)) {
            self.save().await;
            let srcs = &self.sources;
            self.drains.retain(|(tx, t)| {
                if done(t, srcs) {
                    let _ = tx.send(());
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Run until shut down.
    /// Batches are sent only once `gate` is open (the index template is installed); until
    /// then documents are read and encoded up to the limits, and drains wait.
    pub async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Command>,
        wake: Arc<Notify>,
        gate: Arc<AtomicBool>,
    ) {
        let poll = Duration::from_secs(1);
        let mut woken = true;
        loop {
            let open = gate.load(Acquire);
            // Source list: after an append notification, and at least once a second.
            if woken || self.last_refresh.is_none_or(|t| t.elapsed() >= poll) {
                self.refresh_sources().await;
            }
            woken = false;
            let drained = self.fill().await;
            let draining = !self.drains.is_empty();
            let slot = open && self.tasks.len() < self.settings.concurrency;
            let full = self.builder.docs.len() >= self.settings.batch_docs
                || self.builder.bytes() >= self.settings.batch_bytes
                || self.budget_left() == 0
                || !drained;
            let aged = self
                .builder
                .started
                .is_some_and(|t| t.elapsed() >= self.settings.batch_timeout);
            if slot && (full || aged || (draining && drained)) {
                self.flush();
            }
            if self.last_save.elapsed() >= poll {
                self.save().await;
                self.update_lag();
            }
            self.check_drains().await;
            // Loop again at once if there is more to do and room to do it.
            let more = open
                && !drained
                && self.tasks.len() < self.settings.concurrency
                && self.budget_left() > 0;
            let wait = if more {
                Duration::ZERO
            } else if !open {
                // Woken when the gate opens.
                poll
            } else {
                match self.builder.started {
                    Some(t) if !draining => self.settings.batch_timeout.saturating_sub(t.elapsed()),
                    Some(_) => Duration::ZERO,
                    None => poll,
                }
                .min(poll)
            };
            tokio::select! {
                Some(res) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok((docs, bytes)) = res {
                        self.finish(docs, bytes);
                    }
                    while let Some(res) = self.tasks.try_join_next() {
                        if let Ok((docs, bytes)) = res {
                            self.finish(docs, bytes);
                        }
                    }
                    if self.last_save.elapsed() >= poll || !self.drains.is_empty() {
                        self.save().await;
                        self.update_lag();
                    }
                    self.check_drains().await;
                }
                cmd = cmds.recv() => match cmd {
                    Some(Command::Drain(tx)) => {
                        self.refresh_sources().await;
                        let targets = self.sources.iter().enumerate().map(|(i, s)| (i, s.next_seq)).collect();
                        self.drains.push((tx, targets));
                        self.check_drains().await;
                    }
                    Some(Command::Shutdown(tx)) => {
                        self.tasks.abort_all();
                        while let Some(res) = self.tasks.join_next().await {
                            if let Ok((docs, bytes)) = res {
                                self.finish(docs, bytes);
                            }
                        }
                        self.save().await;
                        self.update_lag();
                        let _ = tx.send(());
                        return;
                    }
                    None => {
                        self.tasks.abort_all();
                        self.save().await;
                        return;
                    }
                },
                _ = wake.notified(), if wait > Duration::ZERO => woken = true,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
