//! What the pushed inputs (forward, HTTP ingest) share: a sidecar stream is one
//! (namespace, pod, container) source in the index, and its records are gathered into one
//! batch per request so they become durable together.

use crate::ingest::chunks::{chunk_hash, chunk_position, now_secs, MAX_RECORDS_PER_CHUNK};
use crate::ingest::{Batch, QueuedRecord};
use runnel_index::{Position, RecordFlags, SourceIdentity, Stream, TimeStyle};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Longest namespace, pod or container name accepted (Kubernetes names are at most 253).
pub const MAX_NAME_BYTES: usize = 253;

/// Which pushed input a source came from (a label of its identity and of counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushInput {
    /// The Fluent forward receiver.
    Forward,
    /// `POST /v1/ingest`.
    Http,
}

impl PushInput {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PushInput::Forward => "forward",
            PushInput::Http => "http",
        }
    }
}

/// One sidecar stream: its index key and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarSource {
    /// Index source key, `sidecar:<namespace>/<pod>/<container>`.
    pub key: Arc<str>,
    /// Namespace, pod and container as `runnel logs` and documents show them.
    pub identity: SourceIdentity,
}

/// Check one name part; the error says which and why.
pub fn check_name(what: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if v.len() > MAX_NAME_BYTES {
        return Err(format!("{what} is longer than {MAX_NAME_BYTES} bytes"));
    }
    if v.chars().any(|c| c.is_control() || c == '/') {
        return Err(format!("{what} {v:?} contains '/' or a control character"));
    }
    Ok(())
}

impl SidecarSource {
    /// The source of a (namespace, pod, container) stream pushed through `input`; an error
    /// names the part at fault and what is wrong.
    pub fn new(
        namespace: &str,
        pod: &str,
        container: &str,
        input: PushInput,
    ) -> Result<SidecarSource, (&'static str, String)> {
        for (what, v) in [
            ("namespace", namespace),
            ("pod", pod),
            ("container", container),
        ] {
            check_name(what, v).map_err(|m| (what, m))?;
        }
        let mut labels = BTreeMap::new();
        labels.insert("runnel.io/input".to_string(), input.as_str().to_string());
        Ok(SidecarSource {
            key: format!("sidecar:{namespace}/{pod}/{container}").into(),
            identity: SourceIdentity {
                namespace: Some(namespace.to_string()),
                pod: Some(pod.to_string()),
                container: Some(container.to_string()),
                labels,
                ..SourceIdentity::default()
            },
        })
    }
}

/// The time style of pushed records: UTC with nanoseconds (EventTime), or whole seconds.
pub fn utc_style(frac_digits: u8) -> TimeStyle {
    TimeStyle {
        offset_secs: 0,
        frac_digits,
        zulu: true,
    }
}

/// Fills one batch with the records of one request, each positioned in its chunk (when the
/// client named one) so a resend of the same chunk is stored once.
pub struct RequestBatch {
    batch: Batch,
    chunk: Option<(u64, u64)>,
    n: usize,
}

impl RequestBatch {
    /// A batch for a request carrying `chunk_id` (forward `chunk`, HTTP request id), or none.
    pub fn new(chunk_id: Option<&[u8]>, size_hint: usize) -> RequestBatch {
        RequestBatch::with_batch(
            chunk_id,
            Batch::with_budget(size_hint.clamp(4096, 64 << 20)),
        )
    }

    /// [`RequestBatch::new`] filling an empty `batch` (a recycled one).
    pub fn with_batch(chunk_id: Option<&[u8]>, batch: Batch) -> RequestBatch {
        RequestBatch {
            batch,
            chunk: chunk_id.map(|c| (chunk_hash(c), now_secs())),
            n: 0,
        }
    }

    /// Records added so far.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Add one record of `source`. Err when the request holds more records than a chunk may.
    pub fn push(
        &mut self,
        source: &SidecarSource,
        time_ns: i64,
        style: TimeStyle,
        stream: Stream,
        message: &[u8],
    ) -> Result<(), String> {
        if self.n >= MAX_RECORDS_PER_CHUNK {
            return Err(format!(
                "more than {MAX_RECORDS_PER_CHUNK} records in one request; send smaller chunks"
            ));
        }
        self.n += 1;
        let position = match self.chunk {
            Some((chunk, arrival)) => chunk_position(chunk, arrival, self.n),
            None => Position::None,
        };
        // Amortized growth: a request may hold far more than a batch's budget.
        self.batch.data.reserve(message.len());
        self.batch.records.reserve(1);
        self.batch.push(
            QueuedRecord {
                key: source.key.clone(),
                time_ns,
                style,
                stream,
                flags: RecordFlags::default(),
                start: 0,
                len: 0,
                position,
            },
            message,
        );
        Ok(())
    }

    /// The filled batch.
    pub fn into_batch(self) -> Batch {
        self.batch
    }
}
