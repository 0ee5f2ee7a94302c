//! A sink that could not start — an unreadable secret file, a corrupt cursor, a setting the
//! sink refuses. Local collection must not stop for that: the index keeps every record (it is
//! the sink's disk buffer), and shipping resumes from the cursor once the cause is fixed and
//! the agent restarted. The agent holds a [`FailedSink`] in place of a
//! [`SinkHandle`](crate::SinkHandle) to report the failure in `/v1/status`, `/healthz` and
//! `/metrics`.

use crate::SinkError;
use std::time::SystemTime;

/// Why the sink is not running, for status and metrics.
#[derive(Debug, Clone)]
pub struct FailedSink {
    error: String,
    at: SystemTime,
}

impl FailedSink {
    /// Record the start error (its message names the file or setting to fix).
    pub fn new(error: &SinkError) -> FailedSink {
        FailedSink {
            error: error.to_string(),
            at: SystemTime::now(),
        }
    }

    /// The start error's message.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// `{"state":"failed","last_error":…,"failed_at":…}`: the same shape as
    /// [`SinkHandle::status`](crate::SinkHandle::status), with a state an operator cannot
    /// mistake for a passing outage.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "state": "failed",
            "last_error": self.error,
            "failed_at": crate::status::rfc3339(self.at),
            "documents_acked": 0,
        })
    }

    /// `runnel_sink_es_up 0`, so an alert can fire on a sink that never started.
    pub fn render_metrics(&self, out: &mut String) {
        crate::metrics::render_up(out, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_sink_reports_its_cause_in_status_and_metrics() {
        let e = SinkError::CorruptCursor {
            path: "/var/lib/runnel/sinks/elasticsearch/cursor.json".into(),
            message: "expected value at line 1".into(),
        };
        let f = FailedSink::new(&e);
        let s = f.status();
        assert_eq!(s["state"], "failed");
        assert!(
            s["last_error"]
                .as_str()
                .unwrap()
                .contains("cursor.json: corrupt sink cursor"),
            "{s}"
        );
        assert!(s["failed_at"].as_str().unwrap().ends_with('Z'));
        let mut m = String::new();
        f.render_metrics(&mut m);
        assert!(m.contains("\nrunnel_sink_es_up 0\n"), "{m}");
    }
}
