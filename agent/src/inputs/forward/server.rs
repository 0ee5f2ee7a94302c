//! The forward receiver: TCP (plus the UDP heartbeat on the same port) and optionally a Unix
//! socket; each connection reads one request at a time, hands its records to the ingest writer
//! and — when the client sent a `chunk` — answers `{"ack": chunk}` only once they are durable.
//!
//! One request at a time per connection is the backpressure: the next request is not read
//! until the current one is queued (or durable, with acks), so a full queue leaves bytes in
//! the socket and TCP slows the client. A connection's memory is its frame buffer (at most
//! `max_frame_bytes`) and one decompression buffer (at most `max_decompressed_bytes`), both
//! given back after a large request.

use super::codec::{self, DecodeError, Entry, Events, Framer, Limits, Request};
use super::handshake::{Handshake, ServerAuth, User};
use super::stats::ForwardStats;
use super::tag::{kubernetes_names, Names, TagPattern};
use crate::http::tls::Tls;
use crate::ingest::Submitter;
use crate::inputs::sidecar::{utc_style, PushInput, RequestBatch, SidecarSource};
use runnel_index::Stream;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::{watch, Semaphore};

/// Buffers above this are given back after the request that grew them.
const KEEP_BUFFER: usize = 1 << 20;
/// First read buffer of a connection.
const READ_CHUNK: usize = 64 << 10;
/// Tags longer than this are not matched against the pattern (matching is not linear).
const MAX_PATTERN_TAG: usize = 1024;

/// Everything the receiver needs, from `inputs.forward`.
#[derive(Clone)]
pub struct ForwardSettings {
    /// TCP (and UDP heartbeat) address.
    pub listen: String,
    /// Unix socket path and its mode.
    pub unix: Option<(PathBuf, u32)>,
    /// Frame, decompression and entry limits.
    pub limits: Limits,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// Connections at once.
    pub max_connections: usize,
    /// The shared-key handshake, when configured.
    pub auth: Option<Arc<ServerAuth>>,
    /// TLS on the TCP listener, when configured (plain TCP is then refused).
    pub tls: Option<Arc<Tls>>,
    /// How a tag names the source.
    pub pattern: TagPattern,
    /// Namespace when nothing names one.
    pub default_namespace: String,
    /// Key of the message in a record (then `message`).
    pub message_key: Vec<u8>,
}

impl ForwardSettings {
    /// Settings from the config; reads the shared key and users files.
    pub fn from_config(cfg: &runnel_config::Config) -> Result<ForwardSettings, String> {
        let f = &cfg.inputs.forward;
        let pattern = TagPattern::parse(&f.tag_pattern)
            .map_err(|e| format!("inputs.forward.tag_pattern: {e}"))?;
        let unix = match &f.unix_path {
            Some(p) => {
                let mode =
                    u32::from_str_radix(f.unix_mode.trim_start_matches("0o"), 8).map_err(|_| {
                        format!("inputs.forward.unix_mode: {:?} is not octal", f.unix_mode)
                    })?;
                Some((p.clone(), mode))
            }
            None => None,
        };
        let auth = match &f.shared_key_file {
            Some(path) => {
                let key = std::fs::read(path).map_err(|e| {
                    format!("inputs.forward.shared_key_file {}: {e}", path.display())
                })?;
                let key = key.trim_ascii().to_vec();
                if key.is_empty() {
                    return Err(format!(
                        "inputs.forward.shared_key_file {}: the file is empty",
                        path.display()
                    ));
                }
                let users = match &f.users_file {
                    Some(u) => read_users(u)?,
                    None => Vec::new(),
                };
                let host = if !f.self_hostname.is_empty() {
                    f.self_hostname.clone()
                } else if !cfg.node_name.is_empty() {
                    cfg.node_name.clone()
                } else {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .map(|h| h.trim().to_string())
                        .unwrap_or_else(|_| "runnel".into())
                };
                Some(Arc::new(ServerAuth {
                    self_hostname: host.into_bytes(),
                    shared_key: key,
                    users,
                }))
            }
            None => None,
        };
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let tls = Tls::load_section(&f.tls, "inputs.forward.tls", Vec::new())?.map(Arc::new);
        Ok(ForwardSettings {
            listen: f.listen.clone(),
            unix,
            limits: Limits {
                max_frame_bytes: size(f.max_frame_bytes),
                max_decompressed_bytes: size(f.max_decompressed_bytes),
                max_entries: crate::ingest::chunks::MAX_RECORDS_PER_CHUNK,
            },
            idle_timeout: f.idle_timeout.max(Duration::from_secs(1)),
            max_connections: f.max_connections.max(1),
            auth,
            tls,
            pattern,
            default_namespace: f.default_namespace.clone(),
            message_key: f.message_key.as_bytes().to_vec(),
        })
    }
}

/// `users_file`: a YAML map of username to password.
fn read_users(path: &std::path::Path) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("inputs.forward.users_file {}: {e}", path.display()))?;
    let map: std::collections::BTreeMap<String, String> =
        serde_yaml::from_str(&text).map_err(|e| {
            format!(
                "inputs.forward.users_file {}: not a map of username: password ({e})",
                path.display()
            )
        })?;
    Ok(map
        .into_iter()
        .map(|(u, p)| User {
            username: u.into_bytes(),
            password: p.into_bytes(),
        })
        .collect())
}

/// The running receiver.
pub struct ForwardServer {
    /// Where TCP (and UDP) listen.
    pub local_addr: SocketAddr,
    /// Counters.
    pub stats: Arc<ForwardStats>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ForwardServer {
    /// Bind and start accepting (call inside the runtime).
    pub async fn start(
        settings: ForwardSettings,
        submitter: Submitter,
        stats: Arc<ForwardStats>,
    ) -> Result<ForwardServer, String> {
        let tcp = TcpListener::bind(&settings.listen)
            .await
            .map_err(|e| format!("inputs.forward.listen {}: {e}", settings.listen))?;
        let local_addr = tcp
            .local_addr()
            .map_err(|e| format!("inputs.forward.listen {}: {e}", settings.listen))?;
        let udp = UdpSocket::bind(local_addr)
            .await
            .map_err(|e| format!("inputs.forward.listen {local_addr} (UDP heartbeat): {e}"))?;
        let unix = match &settings.unix {
            Some((path, mode)) => Some(bind_unix(path, *mode)?),
            None => None,
        };
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            settings,
            submitter,
            stats: stats.clone(),
            slots: Arc::new(Semaphore::new(0)),
        });
        shared.slots.add_permits(shared.settings.max_connections);
        let mut tasks = vec![
            tokio::spawn(accept_tcp(tcp, shared.clone(), stopped.clone())),
            tokio::spawn(answer_udp(udp, stats.clone(), stopped.clone())),
        ];
        if let Some(u) = unix {
            tasks.push(tokio::spawn(accept_unix(
                u,
                shared.clone(),
                stopped.clone(),
            )));
        }
        Ok(ForwardServer {
            local_addr,
            stats,
            stop,
            tasks,
        })
    }

    /// True when a listener task ended on its own (it should not).
    pub fn is_finished(&self) -> bool {
        self.tasks.iter().any(|t| t.is_finished())
    }

    /// Stop accepting; open connections end after their current request.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn bind_unix(path: &std::path::Path, mode: u32) -> Result<UnixListener, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    // A socket left by a previous run is replaced; any other file is not touched.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        } else {
            return Err(format!(
                "inputs.forward.unix_path {}: exists and is not a socket",
                path.display()
            ));
        }
    }
    let l = UnixListener::bind(path)
        .map_err(|e| format!("inputs.forward.unix_path {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("inputs.forward.unix_mode on {}: {e}", path.display()))?;
    Ok(l)
}

struct Shared {
    settings: ForwardSettings,
    submitter: Submitter,
    stats: Arc<ForwardStats>,
    slots: Arc<Semaphore>,
}

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
/// Certificate files are re-read at most this often (cert-manager renews them in place).
const TLS_RECHECK: Duration = Duration::from_secs(10);

async fn accept_tcp(l: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut checked = std::time::Instant::now();
    loop {
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = stop.changed() => return,
        };
        let (s, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "forward: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        let peer = peer.to_string();
        let Some(slot) = take_slot(&shared, &peer) else {
            continue;
        };
        match &shared.settings.tls {
            None => spawn_connection(s, peer, slot, &shared, stop.clone()),
            Some(tls) => {
                if checked.elapsed() >= TLS_RECHECK {
                    checked = std::time::Instant::now();
                    tls.reload();
                }
                let acceptor = tls.acceptor();
                let (shared, stop) = (shared.clone(), stop.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(s)).await {
                        Ok(Ok(t)) => spawn_connection(t, peer, slot, &shared, stop),
                        Ok(Err(e)) => shared.stats.reject(
                            "tls_failed",
                            &peer,
                            &format_args!("TLS handshake failed: {e}"),
                        ),
                        Err(_) => {
                            shared
                                .stats
                                .reject("tls_failed", &peer, &"TLS handshake timed out")
                        }
                    }
                });
            }
        }
    }
}

async fn accept_unix(l: UnixListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((s, _)) => {
                if let Some(slot) = take_slot(&shared, "unix") {
                    spawn_connection(s, "unix".into(), slot, &shared, stop.clone())
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "forward: accept on the unix socket failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Fluentd's heartbeat: any datagram on the port is answered with one 0x00 byte.
async fn answer_udp(s: UdpSocket, stats: Arc<ForwardStats>, mut stop: watch::Receiver<bool>) {
    let mut buf = [0u8; 512];
    loop {
        let got = tokio::select! {
            g = s.recv_from(&mut buf) => g,
            _ = stop.changed() => return,
        };
        if let Ok((n, peer)) = got {
            stats.heartbeats_udp.fetch_add(1, Ordering::Relaxed);
            let _ = s.send_to(codec::udp_heartbeat_reply(&buf[..n]), peer).await;
        }
    }
}

/// A connection slot, or a counted refusal when `max_connections` are open.
fn take_slot(shared: &Arc<Shared>, peer: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
    match shared.slots.clone().try_acquire_owned() {
        Ok(s) => Some(s),
        Err(_) => {
            shared.stats.reject(
                "too_many_connections",
                peer,
                &format_args!(
                    "more than inputs.forward.max_connections ({}) connections",
                    shared.settings.max_connections
                ),
            );
            None
        }
    }
}

fn spawn_connection<S>(
    s: S,
    peer: String,
    slot: tokio::sync::OwnedSemaphorePermit,
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = shared.clone();
    tokio::spawn(async move {
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        shared
            .stats
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        let mut conn = Connection {
            s,
            peer,
            shared: shared.clone(),
            buf: Vec::with_capacity(READ_CHUNK),
            scratch: Vec::new(),
        };
        conn.run(stop).await;
        shared.stats.connections.fetch_sub(1, Ordering::Relaxed);
        drop(slot);
    });
}

/// Why a connection ends.
enum End {
    /// The client closed, went idle, or we are shutting down.
    Quiet,
    /// Refused: counted and logged.
    Refused(&'static str, String),
}

struct Connection<S> {
    s: S,
    peer: String,
    shared: Arc<Shared>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    async fn run(&mut self, mut stop: watch::Receiver<bool>) {
        let end = tokio::select! {
            e = self.serve() => e,
            _ = stop.changed() => End::Quiet,
        };
        if let End::Refused(reason, detail) = end {
            self.shared.stats.reject(reason, &self.peer, &detail);
        }
        let _ = self.s.shutdown().await;
    }

    async fn serve(&mut self) -> End {
        let mut framer = Framer::new(self.shared.settings.limits.max_frame_bytes);
        if let Some(auth) = self.shared.settings.auth.clone() {
            if let Err(e) = self.handshake(&auth, &mut framer).await {
                return e;
            }
        }
        loop {
            let n = match self.next_frame(&mut framer).await {
                Ok(Some(n)) => n,
                Ok(None) => return End::Quiet,
                Err(e) => return e,
            };
            let res = self.handle(n).await;
            self.buf.drain(..n);
            framer.reset();
            if self.buf.capacity() > KEEP_BUFFER && self.buf.len() < KEEP_BUFFER / 2 {
                self.buf.shrink_to(KEEP_BUFFER / 2);
            }
            if self.scratch.capacity() > KEEP_BUFFER {
                self.scratch = Vec::new();
            }
            if let Err(e) = res {
                return e;
            }
        }
    }

    /// Read until a whole frame is buffered; `Ok(None)` at a clean end of stream.
    async fn next_frame(&mut self, framer: &mut Framer) -> Result<Option<usize>, End> {
        loop {
            match framer.next_len(&self.buf) {
                Ok(Some(n)) => return Ok(Some(n)),
                Ok(None) => {}
                Err(e) => return Err(End::Refused(e.reason(), e.to_string())),
            }
            if self.buf.len() == self.buf.capacity() {
                self.buf.reserve(READ_CHUNK.max(self.buf.len() / 2));
            }
            let idle = self.shared.settings.idle_timeout;
            let read = tokio::time::timeout(idle, self.s.read_buf(&mut self.buf)).await;
            match read {
                Err(_) => {
                    self.shared
                        .stats
                        .idle_closed
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(End::Quiet);
                }
                Ok(Ok(0)) if self.buf.is_empty() => return Ok(None),
                Ok(Ok(0)) => {
                    return Err(End::Refused(
                        "incomplete_request",
                        format!(
                            "the connection ended inside a request ({} bytes unfinished)",
                            self.buf.len()
                        ),
                    ))
                }
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(End::Quiet),
            }
        }
    }

    async fn handshake(&mut self, auth: &ServerAuth, framer: &mut Framer) -> Result<(), End> {
        let hs = Handshake::new(auth).map_err(|e| {
            End::Refused(
                "io_error",
                format!("no randomness for the handshake nonce: {e}"),
            )
        })?;
        self.write(&hs.helo()).await?;
        let Some(n) = self.next_frame(framer).await? else {
            return Err(End::Quiet);
        };
        let checked = hs.check_ping(&self.buf[..n]);
        self.buf.drain(..n);
        framer.reset();
        match checked {
            Ok(pong) => {
                self.write(&pong).await?;
                self.shared
                    .stats
                    .handshakes_ok
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(refusal) => {
                let _ = self.write(&refusal.pong).await;
                Err(End::Refused(refusal.reason, refusal.message.to_string()))
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), End> {
        match tokio::time::timeout(self.shared.settings.idle_timeout, self.s.write_all(bytes)).await
        {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Quiet),
        }
    }

    /// Decode, store and (with a chunk) acknowledge the frame `buf[..n]`.
    async fn handle(&mut self, n: usize) -> Result<(), End> {
        let sh = self.shared.clone();
        let (batch, sources, chunk) = {
            // Entries are checked as `build` reads them: the payload is walked once.
            let req =
                codec::decode_streamed(&self.buf[..n], &sh.settings.limits, &mut self.scratch)
                    .map_err(|e: DecodeError| End::Refused(e.reason(), e.to_string()))?;
            let ev = match req {
                Request::Heartbeat => {
                    sh.stats.heartbeats_tcp.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Request::Events(ev) => ev,
            };
            let empty = sh.submitter.batch(n.max(ev.len() * 160));
            let (batch, sources) =
                build(&sh.settings, &ev, empty).map_err(|(why, m)| End::Refused(why, m))?;
            (batch, sources, ev.options().chunk.map(<[u8]>::to_vec))
        };
        let records = batch.len() as u64;
        for s in &sources {
            sh.submitter
                .announce(&s.key, &s.identity)
                .map_err(|e| End::Refused("store_failed", e.to_string()))?;
        }
        let batch = batch.into_batch();
        match &chunk {
            Some(chunk) => {
                sh.submitter
                    .submit_durable(batch, None)
                    .await
                    .map_err(|e| {
                        End::Refused(
                            "store_failed",
                            format!("{e}; no ack sent, the client resends"),
                        )
                    })?;
                self.count(n, records);
                self.write(&codec::encode_ack(chunk)).await?;
                sh.stats.acks.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                sh.submitter
                    .submit(batch)
                    .await
                    .map_err(|e| End::Refused("store_failed", e.to_string()))?;
                self.count(n, records);
            }
        }
        Ok(())
    }

    fn count(&self, bytes: usize, records: u64) {
        let st = &self.shared.stats;
        st.requests.fetch_add(1, Ordering::Relaxed);
        st.records.fetch_add(records, Ordering::Relaxed);
        st.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// (namespace, pod, container) as sent.
type NameKey = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The records of one request as one batch, and the sources they go to. Err: the reason (a
/// metric label) and the message; the request is refused whole (a bad entry, a bad source).
fn build(
    set: &ForwardSettings,
    ev: &Events<'_>,
    empty: crate::ingest::Batch,
) -> Result<(RequestBatch, Vec<SidecarSource>), (&'static str, String)> {
    let tag = ev.tag();
    let by_tag = if tag.len() <= MAX_PATTERN_TAG {
        set.pattern.matches(tag)
    } else {
        None
    };
    let mut batch = RequestBatch::with_batch(ev.options().chunk, empty);
    // Sources of this request, by their names as sent; most requests have one, so the last
    // one used is checked first without a lookup or an allocation.
    let mut index: HashMap<NameKey, usize> = HashMap::new();
    let mut order: Vec<SidecarSource> = Vec::new();
    let mut last: Option<(Names<'_>, usize)> = None;
    let mut json = Vec::new();
    let arrival = crate::timefmt::now_ns();
    for e in ev.checked_entries() {
        let e = e.map_err(|e: DecodeError| (e.reason(), e.to_string()))?;
        let names = match &by_tag {
            Some(n) => n.clone(),
            None => kubernetes_names(&e.record).unwrap_or(Names {
                namespace: None,
                pod: Some(tag),
                container: None,
            }),
        };
        let ns = names.namespace.unwrap_or(set.default_namespace.as_bytes());
        let pod = names.pod.unwrap_or(tag);
        let container = names.container.unwrap_or(b"forward");
        let at = match &last {
            Some((n, i))
                if n.namespace == Some(ns)
                    && n.pod == Some(pod)
                    && n.container == Some(container) =>
            {
                *i
            }
            _ => {
                let k = (ns.to_vec(), pod.to_vec(), container.to_vec());
                let i = match index.get(&k) {
                    Some(&i) => i,
                    None => {
                        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                        let s = SidecarSource::new(
                            &text(ns),
                            &text(pod),
                            &text(container),
                            PushInput::Forward,
                        )
                        .map_err(|(_, m)| {
                            let tag = String::from_utf8_lossy(&tag[..tag.len().min(80)]);
                            (
                                "bad_source",
                                format!("tag {tag:?} names no usable source: {m}"),
                            )
                        })?;
                        order.push(s);
                        index.insert(k, order.len() - 1);
                        order.len() - 1
                    }
                };
                last = Some((
                    Names {
                        namespace: Some(ns),
                        pod: Some(pod),
                        container: Some(container),
                    },
                    i,
                ));
                i
            }
        };
        let (message, stream) = message_of(set, &e, &mut json);
        let time_ns = if e.time_ns == 0 { arrival } else { e.time_ns };
        batch
            .push(&order[at], time_ns, utc_style(9), stream, message)
            .map_err(|m| ("bad_source", m))?;
    }
    Ok((batch, order))
}

/// The message bytes (the message key, then `message`, else the record as compact JSON) and
/// the stream (`stream` key, default stdout).
fn message_of<'a>(
    set: &ForwardSettings,
    e: &Entry<'a>,
    json: &'a mut Vec<u8>,
) -> (&'a [u8], Stream) {
    // One walk over the record for the three keys; each is its first pair, as `get` finds it.
    let (mut stream, mut by_key, mut by_message) = (None, None, None);
    for (k, v) in e.record.iter() {
        let Some(k) = k.as_bytes() else { continue };
        if stream.is_none() && k == b"stream" {
            stream = Some(v);
        }
        if by_key.is_none() && k == set.message_key.as_slice() {
            by_key = Some(v);
        }
        if by_message.is_none() && k == b"message" {
            by_message = Some(v);
        }
        if stream.is_some() && by_key.is_some() {
            break;
        }
    }
    let stream = match stream.and_then(|v| v.as_bytes()) {
        Some(b"stderr") => Stream::Stderr,
        _ => Stream::Stdout,
    };
    let msg = by_key
        .and_then(|v| v.as_bytes())
        .or_else(|| by_message.and_then(|v| v.as_bytes()));
    match msg {
        Some(m) => (m.strip_suffix(b"\n").unwrap_or(m), stream),
        None => {
            json.clear();
            e.record.write_compact_json(json);
            (json.as_slice(), stream)
        }
    }
}
