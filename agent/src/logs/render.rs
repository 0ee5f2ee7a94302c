//! Printing records the way `kubectl logs` does: one line per record, `--timestamps` prefixing
//! the time as written in the file, and `limitBytes` cutting the output at exactly that many
//! bytes (the kubelet's LimitWriter cuts mid-line and ends the stream).

use super::LogRequest;
use crate::timefmt::format_rfc3339;
use runnel_index::{Query, StoredRecord};

/// The index query for a request: since, until, tail and a message-byte bound that can only
/// over-fetch (output bytes ≥ message bytes), never under-fetch.
pub fn query_for(req: &LogRequest) -> Query {
    Query {
        since_ns: req.since_ns(),
        until_ns: req.until_time.as_ref().map(|(ns, _)| *ns),
        tail_lines: req.tail_lines,
        limit_bytes: req.limit_bytes,
    }
}

/// Formats records into output bytes and enforces `limitBytes` across a whole response,
/// including the followed part.
#[derive(Debug, Clone)]
pub struct Renderer {
    timestamps: bool,
    remaining: Option<u64>,
}

impl Renderer {
    /// A renderer for a request's `timestamps` and `limitBytes`.
    pub fn new(req: &LogRequest) -> Renderer {
        Renderer {
            timestamps: req.timestamps,
            remaining: req.limit_bytes,
        }
    }

    /// True once `limitBytes` is used up: the response must end.
    pub fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Append one record's line to `out`; returns false once the byte limit is reached.
    pub fn push(&mut self, rec: &StoredRecord, out: &mut Vec<u8>) -> bool {
        if self.exhausted() {
            return false;
        }
        let start = out.len();
        if self.timestamps {
            format_rfc3339(rec.time_ns, rec.time_style, out);
            out.push(b' ');
        }
        out.extend_from_slice(&rec.message);
        out.push(b'\n');
        if let Some(rem) = self.remaining.as_mut() {
            let written = (out.len() - start) as u64;
            if written >= *rem {
                out.truncate(start + *rem as usize);
                *rem = 0;
                return false;
            }
            *rem -= written;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_index::{Position, RecordFlags, Stream, TimeStyle};

    fn rec(seq: u64, msg: &str) -> StoredRecord {
        StoredRecord {
            seq,
            time_ns: 1_714_564_800_000_000_000 + seq as i64,
            time_style: TimeStyle {
                offset_secs: 0,
                frac_digits: 9,
                zulu: true,
            },
            stream: Stream::Stdout,
            flags: RecordFlags::default(),
            message: msg.as_bytes().to_vec(),
            position: Position::None,
        }
    }

    #[test]
    fn timestamps_prefix_the_time_as_written() {
        let req = LogRequest {
            timestamps: true,
            ..Default::default()
        };
        let mut r = Renderer::new(&req);
        let mut out = Vec::new();
        assert!(r.push(&rec(1, "hello"), &mut out));
        assert_eq!(out, b"2024-05-01T12:00:00.000000001Z hello\n");
    }

    #[test]
    fn limit_bytes_cuts_mid_line_and_ends() {
        let req = LogRequest {
            limit_bytes: Some(8),
            ..Default::default()
        };
        let mut r = Renderer::new(&req);
        let mut out = Vec::new();
        assert!(r.push(&rec(0, "abc"), &mut out));
        assert!(!r.push(&rec(1, "defgh"), &mut out));
        assert!(!r.push(&rec(2, "x"), &mut out));
        assert_eq!(out, b"abc\ndefg");
        assert!(r.exhausted());
    }
}
