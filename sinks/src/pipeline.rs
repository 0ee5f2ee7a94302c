//! The pipeline's coordinator: one async task that reads the index by cursor and encodes the
//! documents straight from the decompressed blocks into batches (its worker thread turned
//! blocking for the read, so it needs a multi-thread runtime), keeps the in-flight byte
//! budget, runs up to `concurrency` sending tasks, and moves and persists the per-source
//! cursors over the contiguous prefix of finished documents.

use crate::batch::{Batch, DocRef, FrozenBatch};
use crate::cursor::CursorStore;
use crate::encode::{document_id, encode_document, push_hex128};
use crate::index_name::IndexPattern;
use crate::ship::{ship, ShipContext};
use crate::sources::SourceTable;
use runnel_index::{FrameView, ReadEnd, Store};
use std::collections::BTreeMap;
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
    /// Encoded bytes held in memory at most.
    pub max_in_flight: u64,
    /// Field for parsed JSON messages.
    pub parse_json: Option<String>,
}

/// A pending drain: who to answer and the (slot, next_seq) targets.
type Drain = (std::sync::mpsc::Sender<()>, Vec<(usize, u64)>);

/// The coordinator's state.
pub struct Pipeline {
    store: Arc<Store>,
    settings: Settings,
    ctx: Arc<ShipContext>,
    cursors: Arc<CursorStore>,
    saved: BTreeMap<String, u64>,
    sources: SourceTable,
    builder: Batch,
    /// Buffers of finished batches, reused so a batch does not fault in fresh pages: at most
    /// [`Pipeline::spare_max`], and none once the sink has nothing left to send.
    spare: Vec<Batch>,
    in_flight: u64,
    tasks: JoinSet<Shipped>,
    drains: Vec<Drain>,
    last_save: Instant,
    last_refresh: Option<Instant>,
    rr: usize,
    /// Smallest encoded document (action + document lines) seen so far, to size reads.
    doc_bytes: usize,
    /// The next record did not fit the batch or the in-flight budget: reading again before
    /// a batch is sent or finished would only read it again.
    stalled: bool,
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
            sources: SourceTable::default(),
            builder: Batch::default(),
            spare: Vec::new(),
            in_flight: 0,
            tasks: JoinSet::new(),
            drains: Vec::new(),
            last_save: Instant::now(),
            last_refresh: None,
            rr: 0,
            doc_bytes: usize::MAX,
            stalled: false,
        }
    }

    async fn refresh_sources(&mut self) {
        self.last_refresh = Some(Instant::now());
        let store = self.store.clone();
        let Ok(infos) = tokio::task::spawn_blocking(move || store.sources()).await else {
            return;
        };
        self.sources
            .refresh(infos, &self.settings.node, &self.saved);
        self.compact();
    }

    /// Drop sources the index forgot once none of their documents is pending; drains stop
    /// waiting on them (there is nothing left to ship).
    fn compact(&mut self) {
        let freed = self.sources.compact();
        if freed.is_empty() {
            return;
        }
        for (_, targets) in &mut self.drains {
            targets.retain(|(i, _)| !freed.contains(i));
        }
    }

    /// Spare buffers kept: as many batches as the in-flight budget holds, so that in steady
    /// shipping every batch reuses the pages of one that finished.
    fn spare_max(&self) -> usize {
        let per_batch = self.settings.batch_bytes.max(1) as u64;
        usize::try_from(self.settings.max_in_flight / per_batch)
            .unwrap_or(usize::MAX)
            .clamp(1, 64)
    }

    fn budget_left(&self) -> u64 {
        self.settings.max_in_flight.saturating_sub(self.in_flight)
    }

    fn batch_full(&self) -> bool {
        self.builder.docs.len() >= self.settings.batch_docs
            || self.builder.bytes() >= self.settings.batch_bytes
    }

    /// Read and encode until the batch is full, the budget is spent or nothing is left.
    /// Returns true when every source was read to its end.
    async fn fill(&mut self) -> bool {
        let n = self.sources.slots();
        let mut exhausted = 0;
        let mut i = 0;
        while i < n && exhausted < n {
            let si = (self.rr + i) % n;
            i += 1;
            if self.batch_full() {
                return false;
            }
            let Some(s) = self.sources.get(si) else {
                exhausted += 1;
                continue;
            };
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
            // Records are encoded straight from their decompressed blocks, on this worker
            // thread turned blocking for the read (the sink runs on its own multi-thread
            // runtime): no record is copied out of its block, and the coordinator's state is
            // borrowed, not moved to the blocking pool and back.
            let mut pass = EncodePass::default();
            let read = tokio::task::block_in_place(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    store.read_each(&key, from, want_docs, want_bytes, &mut |f| {
                        if !pass.stopped {
                            pass.stopped = !self.encode(si, f);
                        }
                        pass.records += 1;
                    })
                }))
            });
            let end: ReadEnd = match read {
                Ok(Ok(end)) => end,
                Ok(Err(runnel_index::Error::UnknownSource(_))) => {
                    // Forgotten by the index since the last refresh; dropped at the next one.
                    if let Some(s) = self.sources.get_mut(si) {
                        s.gone = true;
                    }
                    exhausted += 1;
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(source = %key_of(&self.sources, si), error = %e, "reading the index failed; will retry");
                    self.ctx.status.set_error(format!("reading the index: {e}"));
                    // Counted as read to its end for this round: retried after the poll wait.
                    exhausted += 1;
                    continue;
                }
                Err(_) => {
                    // A document cut short by the panic is not in the batch: every document
                    // the batch lists was whole, counted in flight and made pending.
                    let end = self.builder.docs.last().map_or(0, |d| d.lines.end);
                    self.builder.buf.truncate(end);
                    tracing::error!(source = %key_of(&self.sources, si), "reading or encoding the index panicked; will retry");
                    self.ctx
                        .status
                        .set_error("reading or encoding the index panicked".into());
                    exhausted += 1;
                    continue;
                }
            };
            if pass.records == 0 {
                // Nothing readable yet (not durable, or all lost to retention): done for now.
                self.skip_to(si, end.next_seq);
                exhausted += 1;
                continue;
            }
            if pass.stopped {
                return false;
            }
            self.skip_to(si, end.next_seq);
            if self
                .sources
                .get(si)
                .is_some_and(|s| s.read_pos < s.next_seq)
            {
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
        let Some(s) = self.sources.get_mut(si) else {
            return;
        };
        if seq > s.read_pos {
            let lost = seq - s.read_pos;
            self.ctx.metrics.records_lost.fetch_add(lost, Relaxed);
            tracing::warn!(source = %s.key, lost, from_seq = s.read_pos,
                "records were deleted (retention) before they were shipped");
            s.read_pos = seq;
        }
    }

    /// Encode one read record into the builder within the budget; false when the budget or
    /// the batch ran out before it (it stays unread, and so does every record after it).
    fn encode(&mut self, si: usize, r: &FrameView<'_>) -> bool {
        let hourly = self.settings.index.has_time();
        self.skip_to(si, r.seq);
        if self.builder.docs.len() >= self.settings.batch_docs {
            return false;
        }
        let Some(src) = self.sources.get_mut(si) else {
            return false;
        };
        let start = self.builder.buf.len();
        let buf = &mut self.builder.buf;
        // The action line's index part depends on the source and the record's hour only.
        let bucket = if hourly {
            r.time_ns.div_euclid(3_600_000_000_000)
        } else {
            0
        };
        if src.action_prefix.as_ref().is_none_or(|(b, _)| *b != bucket) {
            let mut index = String::new();
            self.settings
                .index
                .render(&mut index, r.time_ns, &self.settings.node, &src.identity);
            let mut prefix = b"{\"create\":{\"_index\":\"".to_vec();
            prefix.extend_from_slice(index.as_bytes());
            prefix.push(b'"');
            src.action_prefix = Some((bucket, prefix));
        }
        if let Some((_, prefix)) = &src.action_prefix {
            buf.extend_from_slice(prefix);
        }
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
        let over_budget = self.in_flight + len > self.settings.max_in_flight && self.in_flight > 0;
        if over_batch || over_budget {
            buf.truncate(start);
            self.stalled = true;
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
        src.pending.insert(r.seq, r.time_ns);
        src.read_pos = r.seq + 1;
        true
    }

    fn flush(&mut self) {
        if self.builder.docs.is_empty() {
            return;
        }
        self.stalled = false;
        let mut next = self.spare.pop().unwrap_or_default();
        // One allocation per batch at most, not a doubling series of copies while it fills.
        next.buf.reserve(self.settings.batch_bytes + 64 * 1024);
        let batch = Arc::new(std::mem::replace(&mut self.builder, next).freeze());
        self.ctx.metrics.in_flight_batches.fetch_add(1, Relaxed);
        self.tasks.spawn(guarded_ship(self.ctx.clone(), batch));
    }

    /// A sending task ended: release its bytes and move the cursors over its documents —
    /// or, if it panicked, put its documents back to be read and sent again (the cursor
    /// never moved over them; a re-send is harmless with deterministic ids).
    fn finish(&mut self, shipped: Shipped) {
        let Shipped { batch, panicked } = shipped;
        self.stalled = false;
        let bytes = batch.buf.len() as u64;
        self.ctx.metrics.in_flight_batches.fetch_sub(1, Relaxed);
        self.in_flight = self.in_flight.saturating_sub(bytes);
        self.ctx.metrics.sub_in_flight(bytes);
        if panicked {
            self.ctx.metrics.ship_panics.fetch_add(1, Relaxed);
            tracing::error!(
                docs = batch.docs.len(),
                "a bulk sending task panicked; its documents will be read and sent again"
            );
            self.ctx
                .status
                .set_error("a bulk sending task panicked; its documents are sent again".into());
        }
        for d in &batch.docs {
            if let Some(s) = self.sources.get_mut(d.source) {
                s.pending.remove(d.seq);
                if panicked {
                    s.read_pos = s.read_pos.min(d.seq);
                } else {
                    s.acked_time_ns = Some(s.acked_time_ns.map_or(d.time_ns, |t| t.max(d.time_ns)));
                }
            }
        }
        // Keep the finished batch's buffers for a next batch (when the HTTP client has let go
        // of the body).
        if self.spare.len() < self.spare_max() {
            if let Some(b) = Arc::into_inner(batch).and_then(FrozenBatch::reclaim) {
                self.spare.push(b);
            }
        }
    }

    async fn save(&mut self) {
        let map = self.sources.cursor_map();
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

    fn update_lag(&self) {
        if let Ok(mut lag) = self.ctx.metrics.lag.lock() {
            *lag = self.sources.lag();
        }
    }

    async fn check_drains(&mut self) {
        if self.drains.is_empty() {
            return;
        }
        let done = |targets: &Vec<(usize, u64)>, srcs: &SourceTable| {
            targets
                .iter()
                .all(|&(i, t)| srcs.get(i).is_none_or(|s| s.cursor() >= t))
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

    fn join_all_ready(&mut self, first: Result<Shipped, tokio::task::JoinError>) {
        if let Ok(s) = first {
            self.finish(s);
        }
        while let Some(res) = self.tasks.try_join_next() {
            if let Ok(s) = res {
                self.finish(s);
            }
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
        while !crate::sink::loop_hook() {
            let open = gate.load(Acquire);
            // Source list: after an append notification, and at least once a second.
            if woken || self.last_refresh.is_none_or(|t| t.elapsed() >= poll) {
                self.refresh_sources().await;
            }
            woken = false;
            let drained = self.fill().await;
            let draining = !self.drains.is_empty();
            let limit = self.ctx.concurrency.limit();
            self.ctx
                .metrics
                .concurrency_limit
                .store(limit as u64, Relaxed);
            let slot = open && self.tasks.len() < limit;
            let full = self.batch_full() || self.budget_left() == 0 || !drained;
            let aged = self
                .builder
                .started
                .is_some_and(|t| t.elapsed() >= self.settings.batch_timeout);
            let ready = !self.builder.docs.is_empty() && (full || aged || (draining && drained));
            if drained && self.tasks.is_empty() && self.builder.docs.is_empty() {
                // Nothing to send: the spare buffers' pages go back to the allocator.
                self.spare.clear();
            }
            if ready && slot {
                self.flush();
            } else if ready && open {
                // The limit is what holds shipping back.
                self.ctx.concurrency.note_saturated();
            }
            if self.last_save.elapsed() >= poll {
                self.save().await;
                self.update_lag();
            }
            self.check_drains().await;
            // Loop again at once if there is more to do and room to do it: encode the next
            // batch while the requests are out, so it is ready when a slot frees (and a full
            // batch waiting for a slot tells the controller that the limit holds us back).
            let slot = open && self.tasks.len() < limit;
            let more = open
                && !drained
                && self.budget_left() > 0
                && !self.stalled
                && (slot || !self.batch_full());
            let wait = if more {
                Duration::ZERO
            } else if !open || (ready && !slot) {
                // Woken when the gate opens, a task ends or the limit grows.
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
                    self.join_all_ready(res);
                    if self.last_save.elapsed() >= poll {
                        self.save().await;
                        self.update_lag();
                    } else if !self.drains.is_empty() {
                        // A drain's answer waits for a save (in check_drains), so saving
                        // (two fsyncs) after every batch of a drain only slowed `--oneshot`;
                        // the lag table still follows it for the drain's progress report.
                        self.update_lag();
                    }
                    self.check_drains().await;
                }
                cmd = cmds.recv() => match cmd {
                    Some(Command::Drain(tx)) => {
                        self.refresh_sources().await;
                        let targets = self.sources.iter().map(|(i, s)| (i, s.next_seq)).collect();
                        self.drains.push((tx, targets));
                        // The handle reports how far a drain got from the lag table.
                        self.update_lag();
                        self.check_drains().await;
                    }
                    Some(Command::Shutdown(tx)) => {
                        self.tasks.abort_all();
                        while let Some(res) = self.tasks.join_next().await {
                            if let Ok(s) = res {
                                self.finish(s);
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

/// What one read handed to [`Pipeline::encode`].
#[derive(Default)]
struct EncodePass {
    /// Records the read visited.
    records: usize,
    /// A record did not fit: it and every one after it stay unread.
    stopped: bool,
}

fn key_of(t: &SourceTable, i: usize) -> &str {
    t.get(i).map_or("?", |s| s.key.as_str())
}

/// What a sending task hands back: its batch (every document done, unless it panicked).
pub struct Shipped {
    batch: Arc<FrozenBatch>,
    panicked: bool,
}

/// Run [`ship`] and catch a panic, so that the batch comes back either way: its in-flight
/// bytes are released and its documents sent again instead of the cursor waiting forever.
async fn guarded_ship(ctx: Arc<ShipContext>, batch: Arc<FrozenBatch>) -> Shipped {
    let panicked = CatchUnwind(Box::pin(ship(ctx, batch.clone())))
        .await
        .is_err();
    Shipped { batch, panicked }
}

/// A future that turns a panic while polling the inner one into `Err`.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ship::PANIC_NEXT_FOR_RETRY_MS;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use runnel_index::{
        FileId, Limits, NewRecord, Position, RecordFlags, SourceIdentity, Store, Stream, TimeStyle,
    };
    use std::sync::atomic::Ordering::{Relaxed, SeqCst};
    use std::sync::Arc;
    use std::time::Duration;

    type Ids = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;
    type Bodies = Arc<std::sync::Mutex<Vec<u8>>>;

    /// A bulk endpoint that acknowledges every document (201) and records the `_id`s it saw;
    /// returns its URL.
    fn ack_server(rt: &tokio::runtime::Runtime, ids: Ids) -> String {
        ack_server_recording(rt, ids, Bodies::default())
    }

    /// [`ack_server`] that also appends every request body to `bodies`.
    fn ack_server_recording(rt: &tokio::runtime::Runtime, ids: Ids, bodies: Bodies) -> String {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (ids, bodies) = (ids.clone(), bodies.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (ids, bodies) = (ids.clone(), bodies.clone());
                            async move {
                                let body = req.into_body().collect().await?.to_bytes();
                                bodies.lock().unwrap().extend_from_slice(&body);
                                let lines: Vec<&[u8]> = body
                                    .split(|&b| b == b'\n')
                                    .filter(|l| !l.is_empty())
                                    .collect();
                                let docs = lines.len() / 2;
                                for action in lines.iter().step_by(2) {
                                    let v: serde_json::Value =
                                        serde_json::from_slice(action).unwrap();
                                    let id = v["create"]["_id"].as_str().unwrap().to_string();
                                    ids.lock().unwrap().insert(id);
                                }
                                let items = vec![r#"{"create":{"status":201}}"#; docs].join(",");
                                let out = format!(r#"{{"errors":false,"items":[{items}]}}"#);
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                                    out,
                                ))))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        url
    }

    #[test]
    fn a_panicked_sending_task_releases_its_bytes_and_its_documents_are_sent_again() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ids = Ids::default();
        let url = ack_server(&rt, ids.clone());
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("index"), Limits::default()).unwrap());
        let key = "cri:ns_pod_uid/app/0";
        store
            .upsert_source(key, &SourceIdentity::default())
            .unwrap();
        let n = 500u64;
        for i in 0..n {
            let message = format!("line {i}");
            store
                .append(
                    key,
                    &NewRecord {
                        time_ns: 1_767_323_045_000_000_000 + i as i64,
                        time_style: TimeStyle::default(),
                        stream: Stream::Stdout,
                        flags: RecordFlags(0),
                        message: message.as_bytes(),
                        position: Position::File {
                            file: FileId {
                                dev: 1,
                                ino: 2,
                                fingerprint: 3,
                            },
                            offset: i * 10,
                        },
                    },
                )
                .unwrap();
        }
        store.sync().unwrap();
        let mut cfg = runnel_config::ElasticsearchConfig {
            enabled: true,
            endpoints: vec![url],
            ..Default::default()
        };
        cfg.template.install = false;
        cfg.batch.max_docs = 100;
        cfg.compression = runnel_config::Compression::None;
        cfg.retry.initial = Duration::from_millis(4321);
        PANIC_NEXT_FOR_RETRY_MS.store(4321, SeqCst);
        let sink =
            crate::ElasticsearchSink::start(&cfg, "node", store, &dir.path().join("sink")).unwrap();
        sink.drain(Duration::from_secs(30)).unwrap();
        let m = sink.metrics();
        assert_eq!(
            PANIC_NEXT_FOR_RETRY_MS.load(SeqCst),
            0,
            "the first batch's task panicked"
        );
        assert_eq!(m.ship_panics.load(Relaxed), 1);
        assert_eq!(
            ids.lock().unwrap().len() as u64,
            n,
            "the panicked batch was sent again"
        );
        // Documents after it that were in flight may go twice (a 409 on a real cluster).
        assert!(m.docs_acked.load(Relaxed) >= n);
        assert_eq!(
            m.in_flight_bytes.load(Relaxed),
            0,
            "its bytes were released"
        );
        assert_eq!(m.in_flight_batches.load(Relaxed), 0);
        let cursor = std::fs::read_to_string(dir.path().join("sink/cursor.json")).unwrap();
        assert!(cursor.contains(&format!("\"{key}\":{n}")), "{cursor}");
        sink.shutdown();
    }

    /// Records of two sources across an hour boundary: the index name changes within a source,
    /// the fields differ between sources.
    fn golden_records(store: &Store) -> Vec<(String, SourceIdentity)> {
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("app.kubernetes.io/name".to_string(), "web".to_string());
        let sources = vec![
            (
                "cri:shop_web-0_uid-1/web/0".to_string(),
                SourceIdentity {
                    container_id: Some("ab".repeat(32)),
                    namespace: Some("Shop".into()),
                    pod: Some("web-0".into()),
                    pod_uid: Some("uid-1".into()),
                    container: Some("web".into()),
                    restart: Some(2),
                    image: Some("registry.example/web:1".into()),
                    labels,
                    log_path: Some("/var/log/pods/shop_web-0_uid-1/web/0.log".into()),
                    ..Default::default()
                },
            ),
            (
                "docker:cd".to_string(),
                SourceIdentity {
                    container_id: Some("cd".repeat(32)),
                    container_name: Some("plain".into()),
                    ..Default::default()
                },
            ),
        ];
        let hour = 3_600_000_000_000i64;
        let t0 = 1_767_323_045_000_000_000 - 1_767_323_045_000_000_000 % hour + hour - 2;
        for (k, (key, id)) in sources.iter().enumerate() {
            store.upsert_source(key, id).unwrap();
            for i in 0..4u64 {
                let message: Vec<u8> = match i {
                    0 => b"plain line".to_vec(),
                    1 => b"{\"level\":\"warn\",\"n\":1}".to_vec(),
                    2 => b"tab\there \"quoted\" \\ back\x01\xff".to_vec(),
                    _ => "unicode \u{e9}\u{1F600}".as_bytes().to_vec(),
                };
                store
                    .append(
                        key,
                        &NewRecord {
                            time_ns: t0 + i as i64,
                            time_style: TimeStyle::default(),
                            stream: if i % 2 == 0 {
                                Stream::Stdout
                            } else {
                                Stream::Stderr
                            },
                            flags: RecordFlags(0),
                            message: &message,
                            position: if k == 0 {
                                Position::File {
                                    file: FileId {
                                        dev: 8,
                                        ino: 99,
                                        fingerprint: 42,
                                    },
                                    offset: (i + 1) * 100,
                                }
                            } else {
                                Position::Stream {
                                    stream_id: 5,
                                    seq: i,
                                }
                            },
                        },
                    )
                    .unwrap();
            }
        }
        store.sync().unwrap();
        sources
    }

    #[test]
    fn bulk_bodies_are_byte_identical_to_the_golden_file() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let bodies = Bodies::default();
        let url = ack_server_recording(&rt, Ids::default(), bodies.clone());
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("index"), Limits::default()).unwrap());
        let sources = golden_records(&store);
        let mut cfg = runnel_config::ElasticsearchConfig {
            enabled: true,
            endpoints: vec![url],
            index: "logs-%{kubernetes.namespace}-%Y.%m.%d.%H".into(),
            parse_json: Some("json".into()),
            ..Default::default()
        };
        cfg.template.install = false;
        cfg.compression = runnel_config::Compression::None;
        cfg.concurrency = runnel_config::Concurrency::fixed(1);
        let sink = crate::ElasticsearchSink::start(
            &cfg,
            "node-g",
            store.clone(),
            &dir.path().join("sink"),
        )
        .unwrap();
        sink.drain(Duration::from_secs(30)).unwrap();
        sink.shutdown();
        let got = bodies.lock().unwrap().clone();

        // The oracle: each document built the plain way, with the index name rendered per
        // document (what the sink did before it cached the action line per hour).
        let pattern = crate::index_name::IndexPattern::parse(&cfg.index).unwrap();
        let mut want = Vec::new();
        for (key, id) in &sources {
            let frag = crate::encode::SourceFragment::new("node-g", key, id);
            for r in store.read_from(key, 0, 100, 1 << 20).unwrap().records {
                let mut index = String::new();
                pattern.render(&mut index, r.time_ns, "node-g", id);
                want.extend_from_slice(
                    format!("{{\"create\":{{\"_index\":\"{index}\",\"_id\":\"").as_bytes(),
                );
                crate::encode::push_hex128(
                    &mut want,
                    crate::encode::document_id("node-g", &frag.container_key, key, &r.view()),
                );
                want.extend_from_slice(b"\"}}\n");
                crate::encode::encode_document(&mut want, &r.view(), &frag, Some("json"));
                want.push(b'\n');
            }
        }
        // Sources are read in turn, so compare as sets of lines per document pair.
        let pairs = |b: &[u8]| {
            let lines: Vec<&[u8]> = b.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
            let mut v: Vec<Vec<u8>> = lines.chunks(2).map(|c| c.join(&b'\n')).collect();
            v.sort();
            v
        };
        assert_eq!(
            pairs(&got),
            pairs(&want),
            "bytes differ from the plain encoding"
        );
        let golden =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/bulk_v1.ndjson");
        if std::env::var_os("RUNNEL_UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, pairs(&got).join(&b'\n')).unwrap();
        }
        let pinned = std::fs::read(&golden).unwrap();
        assert_eq!(
            pairs(&got).join(&b'\n'),
            pinned,
            "bulk body differs from {} (RUNNEL_UPDATE_GOLDEN=1 rewrites it after a deliberate change)",
            golden.display()
        );
        assert!(String::from_utf8_lossy(&got).contains("\"_index\":\"logs-shop-2026.01.02.04\""));
        assert!(String::from_utf8_lossy(&got).contains("\"_index\":\"logs-shop-2026.01.02.03\""));
    }
}
