//! The HTTP query-parameter parser of `GET /v1/logs` (`agent/src/logs/request.rs`).
//!
//! Asserts, for any query string:
//! - parsing never panics; an error names a parameter of the API (or `query`);
//! - round trip: a parsed request written back with `to_query` parses to the same request;
//! - a parsed request passes its own validation, and `sinceSeconds` never resolves to a time
//!   in the future;
//! - percent-decoding agrees with RFC 3986 (`%` and exactly two hex digits is one byte, anything
//!   else is literal) and undoes `percent_encode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_agent::logs::request::{percent_decode, percent_encode};
use runnel_agent::logs::LogRequest;

const PARAMETERS: &[&str] = &[
    "query",
    "namespace",
    "pod",
    "container",
    "sinceSeconds",
    "sinceTime",
    "untilTime",
    "tailLines",
    "limitBytes",
    "timestamps",
    "previous",
    "follow",
];

/// Reference decoder, written from RFC 3986 section 2.1 plus `+` as space (HTML forms).
fn reference_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(
        percent_decode(q),
        reference_decode(q),
        "percent_decode({q:?})"
    );
    assert_eq!(percent_decode(&percent_encode(q)), q, "encode then decode");
    match LogRequest::from_query(q) {
        Ok(r) => {
            assert_eq!(r.validate(), Ok(()));
            let again = LogRequest::from_query(&r.to_query())
                .unwrap_or_else(|e| panic!("to_query {:?} does not parse: {e}", r.to_query()));
            assert_eq!(again, r, "round trip through {:?}", r.to_query());
            if r.since_seconds.is_some() {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as i64)
                    .unwrap_or(i64::MAX);
                let since = r.since_ns().unwrap_or(i64::MIN);
                assert!(
                    since <= now,
                    "sinceSeconds resolves to the future: {since} > {now}"
                );
            }
        }
        Err(e) => assert!(
            PARAMETERS.contains(&e.parameter),
            "error names an unknown parameter: {e}"
        ),
    }
});
