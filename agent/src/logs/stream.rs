//! A request's output as a sequence of chunks, with memory bounded by the chunk size whatever
//! the window: the first page comes from an index range query (which skips blocks outside the
//! window); if that page was cut, the rest is read by sequence cursor and filtered by time; once
//! caught up, `follow` keeps reading new records from the same cursor.

use super::{query_for, resolve, LogRequest, Renderer, RequestError, ResolveError};
use runnel_index::{Query, SourceInfo, Store};

/// Largest first page, in message bytes; also the read granularity afterwards.
const PAGE_BYTES: u64 = 4 << 20;
/// A chunk handed to the writer once it reaches this size.
pub const CHUNK_BYTES: usize = 64 << 10;

/// Why a log request failed.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// A bad parameter.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The request names no single source.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The index failed.
    #[error("reading the index: {0}")]
    Index(#[from] runnel_index::Error),
}

/// Where a stream stands after [`LogStream::next_chunk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More is available now: call again.
    More,
    /// Everything stored so far was written; with `follow`, wait for new records.
    CaughtUp,
    /// `limitBytes` is used up: the response ends.
    Done,
}

/// What a source key says about belonging to pod `pod` in `namespace`: CRI keys
/// (`cri:<ns>_<pod>_<uid>/<container>/<restart>`) and sidecar keys
/// (`sidecar:<ns>/<pod>/<container>`) carry both (Kubernetes names hold no `_` or `/`); any
/// other key (a Docker id) says nothing (`None`).
fn key_names_pod(key: &str, namespace: &str, pod: &str) -> Option<bool> {
    if let Some(rest) = key.strip_prefix("cri:") {
        let pod_dir = rest.split('/').next()?;
        let mut parts = pod_dir.splitn(3, '_');
        let (ns, p, uid) = (parts.next()?, parts.next()?, parts.next()?);
        if ns.is_empty() || p.is_empty() || uid.is_empty() {
            return None;
        }
        return Some(ns == namespace && p == pod);
    }
    if let Some(rest) = key.strip_prefix("sidecar:") {
        let mut parts = rest.splitn(3, '/');
        let (ns, p, _) = (parts.next()?, parts.next()?, parts.next()?);
        return Some(ns == namespace && p == pod);
    }
    None
}

/// [`resolve`] over a store, reading only the sources that can be the answer: a key naming
/// another pod is skipped unread, a key that says nothing (a Docker id) costs one identity read
/// (`source.json` in a read-only store), and only the pod's own sources are loaded. When the pod
/// is not found that way (a plain Docker container named by name or id, or a miss that lists
/// close matches) every visible source is looked at, exactly as `resolve` over
/// `store.sources()` does; the answer is the same either way.
fn pick_source(
    store: &Store,
    req: &LogRequest,
    visible: impl Fn(&SourceInfo) -> bool,
) -> Result<SourceInfo, LogsError> {
    if let Err(e @ ResolveError::NameTooLong { .. }) = resolve(&[], req) {
        return Err(e.into());
    }
    let namespace = req.namespace.as_deref().unwrap_or("default");
    let pod = req.pod.strip_prefix("pod/").unwrap_or(&req.pod);
    let names_pod = |id: &runnel_index::SourceIdentity| {
        id.namespace.as_deref() == Some(namespace) && id.pod.as_deref() == Some(pod)
    };
    let mut candidates = Vec::new();
    for key in store.keys() {
        let maybe = match key_names_pod(&key, namespace, pod) {
            Some(m) => m,
            None => store.identity(&key).is_some_and(|id| names_pod(&id)),
        };
        if !maybe {
            continue;
        }
        if let Some(info) = store.source_info(&key)? {
            if visible(&info) {
                candidates.push(info);
            }
        }
    }
    if candidates.iter().any(|s| names_pod(&s.identity)) {
        return Ok(resolve(&candidates, req)?);
    }
    let mut sources = store.sources();
    sources.retain(|s| visible(s));
    Ok(resolve(&sources, req)?)
}

/// One request's output in progress.
pub struct LogStream {
    key: String,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    renderer: Renderer,
    first_page: Option<Query>,
    cursor: u64,
}

impl LogStream {
    /// Validate and resolve the request against the store's sources.
    pub fn open(store: &Store, req: &LogRequest) -> Result<LogStream, LogsError> {
        LogStream::open_within(store, req, |_| true)
    }

    /// Like [`LogStream::open`], seeing only the sources `visible` admits: a caller scoped to
    /// some namespaces resolves (and gets "did you mean" hints) among those alone.
    pub fn open_within(
        store: &Store,
        req: &LogRequest,
        visible: impl Fn(&SourceInfo) -> bool,
    ) -> Result<LogStream, LogsError> {
        req.validate()?;
        let source = pick_source(store, req, visible)?;
        let mut first_page = query_for(req);
        first_page.limit_bytes = Some(first_page.limit_bytes.unwrap_or(u64::MAX).min(PAGE_BYTES));
        Ok(LogStream {
            key: source.key,
            since_ns: first_page.since_ns,
            until_ns: first_page.until_ns,
            renderer: Renderer::new(req),
            first_page: Some(first_page),
            cursor: source.next_seq,
        })
    }

    /// The source key being read.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The next sequence number this stream will read.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Render the next records into `out` (up to about [`CHUNK_BYTES`]).
    pub fn next_chunk(&mut self, store: &Store, out: &mut Vec<u8>) -> Result<Progress, LogsError> {
        if self.renderer.exhausted() {
            return Ok(Progress::Done);
        }
        if let Some(q) = self.first_page.take() {
            let result = store.query(&self.key, &q)?;
            let page_bytes: u64 = result.records.iter().map(|r| r.message.len() as u64).sum();
            for rec in &result.records {
                if !self.renderer.push(rec, out) {
                    return Ok(Progress::Done);
                }
            }
            match result.records.last() {
                // Cut at the page size: continue right after the last record of the page.
                Some(last) if page_bytes >= PAGE_BYTES => self.cursor = last.seq + 1,
                // Complete: continue after whatever was stored when the request resolved.
                Some(last) => self.cursor = self.cursor.max(last.seq + 1),
                None => {}
            }
            return Ok(Progress::More);
        }
        let batch = store.read_from(&self.key, self.cursor, 4096, CHUNK_BYTES)?;
        if batch.records.is_empty() {
            self.cursor = self.cursor.max(batch.next_seq);
            return Ok(Progress::CaughtUp);
        }
        self.cursor = batch.next_seq;
        for rec in &batch.records {
            let after_since = self.since_ns.is_none_or(|s| rec.time_ns >= s);
            let before_until = self.until_ns.is_none_or(|u| rec.time_ns < u);
            if after_since && before_until && !self.renderer.push(rec, out) {
                return Ok(Progress::Done);
            }
        }
        Ok(Progress::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_index::{Limits, NewRecord, Position, RecordFlags, SourceIdentity, Stream};

    fn id(ns: Option<&str>, pod: Option<&str>, c: &str, restart: u32) -> SourceIdentity {
        SourceIdentity {
            namespace: ns.map(Into::into),
            pod: pod.map(Into::into),
            container: pod.map(|_| c.to_string()),
            container_name: Some(format!("k8s_{c}")),
            container_id: Some(format!("{c:0<12}deadbeef")),
            restart: Some(restart),
            ..Default::default()
        }
    }

    /// Resolving by key reads fewer sources but answers exactly as resolving over all of them.
    #[test]
    fn picking_by_key_answers_as_resolving_over_every_source() {
        let d = tempfile::tempdir().unwrap();
        {
            let w = Store::open(d.path(), Limits::default()).unwrap();
            let sources = [
                (
                    "cri:shop_web-1_u1/nginx/0",
                    id(Some("shop"), Some("web-1"), "nginx", 0),
                ),
                (
                    "cri:shop_web-1_u1/nginx/1",
                    id(Some("shop"), Some("web-1"), "nginx", 1),
                ),
                (
                    "cri:shop_web-1_u1/side/0",
                    id(Some("shop"), Some("web-1"), "side", 0),
                ),
                (
                    "cri:default_solo_u2/app/0",
                    id(Some("default"), Some("solo"), "app", 0),
                ),
                (
                    "sidecar:shop/api/app",
                    id(Some("shop"), Some("api"), "app", 0),
                ),
                // Docker keys say nothing: found through their identity.
                ("docker:aaaa", id(Some("shop"), Some("dock"), "db", 0)),
                ("docker:bbbb", id(None, None, "redis", 0)),
            ];
            for (i, (key, identity)) in sources.iter().enumerate() {
                w.upsert_source(key, identity).unwrap();
                let rec = NewRecord {
                    time_ns: 1_000 + i as i64,
                    time_style: Default::default(),
                    stream: Stream::Stdout,
                    flags: RecordFlags::default(),
                    message: key.as_bytes(),
                    position: Position::None,
                };
                w.append(key, &rec).unwrap();
            }
            w.sync().unwrap();
        }
        let req = |ns: Option<&str>, pod: &str, c: Option<&str>, previous: bool| LogRequest {
            namespace: ns.map(Into::into),
            pod: pod.into(),
            container: c.map(Into::into),
            previous,
            ..Default::default()
        };
        let cases = [
            req(Some("shop"), "web-1", Some("nginx"), false),
            req(Some("shop"), "web-1", Some("nginx"), true),
            req(Some("shop"), "web-1", None, false),
            req(Some("shop"), "web-1", Some("nope"), false),
            req(None, "solo", None, false),
            req(Some("shop"), "api", None, false),
            req(Some("shop"), "dock", None, false),
            req(None, "k8s_redis", None, false),
            req(None, "redis0000000", None, false),
            req(Some("shop"), "web-2", None, false),
            req(None, &"x".repeat(300), None, false),
        ];
        for r in cases {
            let store = Store::open_read_only(d.path()).unwrap();
            let picked = pick_source(&store, &r, |_| true).map(|s| s.key);
            let all = Store::open_read_only(d.path()).unwrap().sources();
            let want = resolve(&all, &r).map(|s| s.key);
            match (picked, want) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{r:?}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{r:?}"),
                (a, b) => panic!("{r:?}: picked {a:?}, resolve says {b:?}"),
            }
        }
    }
}
