//! A batch: the encoded NDJSON lines (action + document) of up to `batch.max_docs` documents
//! in one buffer, with each document's source, sequence and byte range, so that a retry or a
//! split can rebuild a request body from any subset without re-reading the index.

use std::ops::Range;

/// One document of a batch.
#[derive(Debug, Clone)]
pub struct DocRef {
    /// Index of the source in the pipeline's source table.
    pub source: usize,
    /// The record's sequence in its source.
    pub seq: u64,
    /// The record's time (ns), for lag in seconds.
    pub time_ns: i64,
    /// Bytes of the action line and the document line (both with their `\n`).
    pub lines: Range<usize>,
    /// Where the document line starts within `lines`.
    pub doc_start: usize,
}

/// Encoded documents waiting to be sent, or being sent.
#[derive(Debug, Default)]
pub struct Batch {
    /// Concatenated NDJSON lines.
    pub buf: Vec<u8>,
    /// The documents, in order.
    pub docs: Vec<DocRef>,
    /// When the first document was added.
    pub started: Option<std::time::Instant>,
}

impl Batch {
    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Drop the last document (it did not fit the in-flight budget); returns its size.
    pub fn pop(&mut self) -> Option<DocRef> {
        let d = self.docs.pop()?;
        self.buf.truncate(d.lines.start);
        if self.docs.is_empty() {
            self.started = None;
        }
        Some(d)
    }

    /// Freeze for sending: the buffer becomes shared `Bytes`, so the whole batch goes out (and
    /// is retried) without a copy.
    pub fn freeze(self) -> FrozenBatch {
        FrozenBatch {
            buf: bytes::Bytes::from(self.buf),
            docs: self.docs,
        }
    }
}

/// A batch being sent: immutable, shared by its attempts.
#[derive(Debug)]
pub struct FrozenBatch {
    /// Concatenated NDJSON lines.
    pub buf: bytes::Bytes,
    /// The documents, in order.
    pub docs: Vec<DocRef>,
}

impl FrozenBatch {
    /// The request body for the documents at `idx` (indices into `docs`); the whole batch is
    /// the buffer itself.
    pub fn body(&self, idx: &[usize]) -> bytes::Bytes {
        if idx.len() == self.docs.len() {
            return self.buf.clone();
        }
        let n = idx.iter().map(|&i| self.docs[i].lines.len()).sum();
        let mut out = Vec::with_capacity(n);
        for &i in idx {
            out.extend_from_slice(&self.buf[self.docs[i].lines.clone()]);
        }
        bytes::Bytes::from(out)
    }

    /// The buffers back, emptied, for the next batch — when nothing else holds the body.
    pub fn reclaim(self) -> Option<Batch> {
        let mut buf: Vec<u8> = self.buf.try_into_mut().ok()?.into();
        buf.clear();
        let mut docs = self.docs;
        docs.clear();
        Some(Batch {
            buf,
            docs,
            started: None,
        })
    }

    /// The action line of a document (without its newline).
    pub fn action(&self, i: usize) -> &[u8] {
        let d = &self.docs[i];
        &self.buf[d.lines.start..d.doc_start.saturating_sub(1)]
    }

    /// The document line (without its newline).
    pub fn document(&self, i: usize) -> &[u8] {
        let d = &self.docs[i];
        &self.buf[d.doc_start..d.lines.end.saturating_sub(1)]
    }
}
