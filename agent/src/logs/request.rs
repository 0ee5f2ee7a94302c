//! A log request with PodLogOptions-style parameters, parsed from an HTTP query string or built
//! from `runnel logs` flags, and written back as a query string for `--server`.

use crate::timefmt::parse_rfc3339;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a caller asked for (the kubelet's PodLogOptions plus `untilTime`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    /// Kubernetes namespace; `default` when not given, as kubectl does.
    pub namespace: Option<String>,
    /// Pod name, or a plain Docker container's name or id.
    pub pod: String,
    /// Container within the pod.
    pub container: Option<String>,
    /// Only records at or after this many seconds before now.
    pub since_seconds: Option<u64>,
    /// Only records at or after this instant (ns), as given.
    pub since_time: Option<(i64, String)>,
    /// Only records before this instant (ns) — Runnel's extension.
    pub until_time: Option<(i64, String)>,
    /// Only the last N records.
    pub tail_lines: Option<u64>,
    /// Stop after this many output bytes.
    pub limit_bytes: Option<u64>,
    /// Prefix each line with its time as written in the file.
    pub timestamps: bool,
    /// The previous instance of the container.
    pub previous: bool,
    /// Keep streaming new records.
    pub follow: bool,
}

/// A parameter that cannot be used; `parameter` names it as the HTTP API spells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {parameter}: {message}")]
pub struct RequestError {
    /// The parameter's name (`tailLines`, `sinceTime`, …).
    pub parameter: &'static str,
    /// What is wrong and what would work.
    pub message: String,
}

fn bad(parameter: &'static str, message: impl Into<String>) -> RequestError {
    RequestError {
        parameter,
        message: message.into(),
    }
}

fn parse_bool(parameter: &'static str, v: &str) -> Result<bool, RequestError> {
    match v {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(
            parameter,
            format!("{v:?} is not a boolean (use true or false)"),
        )),
    }
}

fn parse_u64(parameter: &'static str, v: &str, min: u64) -> Result<u64, RequestError> {
    match v.parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(bad(parameter, format!("must be at least {min}, got {v}"))),
        Err(_) => Err(bad(
            parameter,
            format!("{v:?} is not a non-negative integer"),
        )),
    }
}

fn parse_time(parameter: &'static str, v: &str) -> Result<(i64, String), RequestError> {
    parse_rfc3339(v)
        .map(|(ns, _)| (ns, v.to_string()))
        .map_err(|e| bad(parameter, e.to_string()))
}

/// Decode `%XX` and `+` in a query-string component.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            // Exactly two hex digits (RFC 3986 2.1); `from_str_radix` alone would also take a
            // sign, reading "%+1" as byte 1.
            b'%' if i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encode a query-string component.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

impl LogRequest {
    /// Parse an HTTP query string; unknown parameters are errors (a typo must not widen a query).
    pub fn from_query(query: &str) -> Result<LogRequest, RequestError> {
        let mut r = LogRequest::default();
        let mut pod = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "namespace" => r.namespace = Some(v).filter(|s| !s.is_empty()),
                "pod" => pod = Some(v),
                "container" => r.container = Some(v).filter(|s| !s.is_empty()),
                "sinceSeconds" => r.since_seconds = Some(parse_u64("sinceSeconds", &v, 1)?),
                "sinceTime" => r.since_time = Some(parse_time("sinceTime", &v)?),
                "untilTime" => r.until_time = Some(parse_time("untilTime", &v)?),
                "tailLines" => r.tail_lines = Some(parse_u64("tailLines", &v, 0)?),
                "limitBytes" => r.limit_bytes = Some(parse_u64("limitBytes", &v, 1)?),
                "timestamps" => r.timestamps = parse_bool("timestamps", &v)?,
                "previous" => r.previous = parse_bool("previous", &v)?,
                "follow" => r.follow = parse_bool("follow", &v)?,
                _ => {
                    return Err(RequestError {
                        parameter: "query",
                        message: format!(
                            "unknown parameter {k:?}; known: namespace, pod, container, sinceSeconds, \
                             sinceTime, untilTime, tailLines, limitBytes, timestamps, previous, follow"
                        ),
                    })
                }
            }
        }
        r.pod = pod.filter(|p| !p.is_empty()).ok_or_else(|| {
            bad(
                "pod",
                "is required (the pod name, or a Docker container name or id)",
            )
        })?;
        r.validate()?;
        Ok(r)
    }

    /// Checks shared by both front ends.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.since_seconds.is_some() && self.since_time.is_some() {
            return Err(bad(
                "sinceTime",
                "at most one of sinceTime or sinceSeconds may be specified",
            ));
        }
        if let (Some(since), Some(until)) = (self.since_ns(), &self.until_time) {
            if until.0 < since {
                return Err(bad("untilTime", "must not be before the since time"));
            }
        }
        Ok(())
    }

    /// The inclusive lower time bound in ns, resolving `sinceSeconds` against the clock.
    pub fn since_ns(&self) -> Option<i64> {
        if let Some((ns, _)) = &self.since_time {
            return Some(*ns);
        }
        self.since_seconds.map(|s| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            // A count past i64::MAX must not wrap negative (a since time in the future).
            let s = i64::try_from(s).unwrap_or(i64::MAX);
            now.saturating_sub(s.saturating_mul(1_000_000_000))
        })
    }

    /// The query string that asks a server for the same thing.
    pub fn to_query(&self) -> String {
        let mut q = vec![format!("pod={}", percent_encode(&self.pod))];
        let mut add = |k: &str, v: String| q.push(format!("{k}={}", percent_encode(&v)));
        if let Some(ns) = &self.namespace {
            add("namespace", ns.clone());
        }
        if let Some(c) = &self.container {
            add("container", c.clone());
        }
        if let Some(s) = self.since_seconds {
            add("sinceSeconds", s.to_string());
        }
        if let Some((_, t)) = &self.since_time {
            add("sinceTime", t.clone());
        }
        if let Some((_, t)) = &self.until_time {
            add("untilTime", t.clone());
        }
        if let Some(n) = self.tail_lines {
            add("tailLines", n.to_string());
        }
        if let Some(n) = self.limit_bytes {
            add("limitBytes", n.to_string());
        }
        for (k, on) in [
            ("timestamps", self.timestamps),
            ("previous", self.previous),
            ("follow", self.follow),
        ] {
            if on {
                add(k, "true".into());
            }
        }
        q.join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trips() {
        let q = "pod=web-1&namespace=shop&container=nginx&sinceTime=2024-05-01T12%3A00%3A00Z\
                 &tailLines=10&limitBytes=100&timestamps=true&follow=true";
        let r = LogRequest::from_query(q).unwrap();
        assert_eq!(r.pod, "web-1");
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        assert_eq!(r.tail_lines, Some(10));
        assert!(r.timestamps && r.follow && !r.previous);
        assert_eq!(LogRequest::from_query(&r.to_query()).unwrap(), r);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (q, param) in [
            ("pod=a&tailLines=-1", "tailLines"),
            ("pod=a&limitBytes=0", "limitBytes"),
            ("pod=a&sinceSeconds=0", "sinceSeconds"),
            ("pod=a&sinceTime=yesterday", "sinceTime"),
            ("pod=a&follow=maybe", "follow"),
            (
                "pod=a&sinceSeconds=5&sinceTime=2024-05-01T12:00:00Z",
                "sinceTime",
            ),
            ("namespace=x", "pod"),
            ("pod=a&tail=3", "query"),
        ] {
            let err = LogRequest::from_query(q).unwrap_err();
            assert_eq!(err.parameter, param, "{q}: {err}");
        }
    }

    #[test]
    fn percent_decoding_handles_edges() {
        assert_eq!(percent_decode("a%2Bb+c"), "a+b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        // Found by fuzz/logs_query: a sign is not a hex digit.
        assert_eq!(percent_decode("%+1%-1%+f"), "% 1%-1% f");
    }

    #[test]
    fn huge_since_seconds_reaches_back_not_forward() {
        let r = LogRequest::from_query("pod=a&sinceSeconds=18446744073709551615").unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!(r.since_ns().unwrap() <= now, "since {:?}", r.since_ns());
    }
}
