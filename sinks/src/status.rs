//! ok/degraded and the last error, for `/v1/status`. The agent stays ready while the cluster is
//! down: the index buffers on disk, so an outage degrades shipping, not the node.

use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug, Default)]
struct Inner {
    degraded: bool,
    last_error: Option<String>,
    last_error_at: Option<SystemTime>,
    last_ok_at: Option<SystemTime>,
    last_dead_letter: Option<String>,
}

/// Shared shipping health.
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<Inner>,
}

/// `t` as RFC 3339 UTC with nanoseconds.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let ns = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let mut v = Vec::new();
    crate::encode::push_rfc3339_nanos(&mut v, ns);
    String::from_utf8_lossy(&v).into_owned()
}

impl Status {
    /// A request failed or items need a retry.
    pub fn set_error(&self, e: String) {
        if let Ok(mut i) = self.inner.lock() {
            i.degraded = true;
            i.last_error = Some(e);
            i.last_error_at = Some(SystemTime::now());
        }
    }

    /// A request fully succeeded.
    pub fn set_ok(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.degraded = false;
            i.last_ok_at = Some(SystemTime::now());
        }
    }

    /// A document was rejected for good (it went to the dead-letter file). Not an error of
    /// the sink, but shown: a cluster that rejects everything (a mapping conflict, an index
    /// name it refuses) must be visible without reading the file.
    pub fn set_dead_letter(&self, reason: String) {
        if let Ok(mut i) = self.inner.lock() {
            i.last_dead_letter = Some(reason);
        }
    }

    /// The last error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.inner.lock().ok().and_then(|i| i.last_error.clone())
    }

    /// `{"state":"ok"|"degraded","last_error":…,"last_error_at":…,"last_ok_at":…,
    /// "last_dead_letter_reason":…}`.
    pub fn to_json(&self) -> serde_json::Value {
        let Ok(i) = self.inner.lock() else {
            return serde_json::json!({"state": "degraded", "last_error": "status lock poisoned"});
        };
        serde_json::json!({
            "state": if i.degraded { "degraded" } else { "ok" },
            "last_error": i.last_error,
            "last_error_at": i.last_error_at.map(rfc3339),
            "last_ok_at": i.last_ok_at.map(rfc3339),
            "last_dead_letter_reason": i.last_dead_letter,
        })
    }
}
