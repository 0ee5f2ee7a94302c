//! Docker json-file line parser (`agent/src/tail/parse.rs`, `parse_json`).
//!
//! Asserts, for every input line:
//! - the decoded `log` is appended after what the caller's buffer already held;
//! - round trip: a parsed line written back the way Docker writes it (`demo::format`) parses to
//!   the same time, style, stream, partial flag and (for UTF-8 messages) the same message;
//! - agreement with serde_json: a line serde_json reads as an object with string `log`,
//!   `stream` and `time` (keys and stream/time without escapes, so no key can hide behind an
//!   escape) is accepted by the parser with the same message;
//! - the whole-second time cache accepts only what `parse_rfc3339` accepts, with its result;
//! - the Docker-layout fast path agrees with the general parser (`parse_json_any`), and a time
//!   cache warmed by another line gives what a fresh one gives;
//! - the over-long-line parser (`parse_json_oversize`) never panics on any head/tail split and
//!   never decodes more message bytes than the head holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_agent::demo::format::write_json_file_line;
use runnel_agent::tail::parse::{
    parse_json, parse_json_any, parse_json_oversize, parse_rfc3339, TimeCache,
};
use runnel_fuzz::time_text;
use std::collections::HashMap;

#[derive(serde::Deserialize)]
struct Line<'a> {
    log: String,
    stream: &'a str,
    time: &'a str,
}

const PREFIX: &[u8] = b"held-before";

fuzz_target!(|line: &[u8]| {
    let mut out = PREFIX.to_vec();
    let parsed = parse_json(line, &mut out, &mut TimeCache::default());
    let mut general = PREFIX.to_vec();
    assert_eq!(
        parse_json_any(line, &mut general, &mut TimeCache::default()),
        parsed,
        "the fast path and the general parser disagree"
    );
    if parsed.is_ok() {
        assert_eq!(
            general, out,
            "the fast path and the general parser decode differently"
        );
    }
    // The time cache takes only what the plain parse takes, fresh or warmed by this input.
    let mut times = TimeCache::default();
    assert_eq!(times.parse(line), parse_rfc3339(line));
    assert_eq!(times.parse(line), parse_rfc3339(line));
    // A cache warmed by the line's own time changes nothing.
    let mut warm = TimeCache::default();
    let _ = parse_json(line, &mut Vec::new(), &mut warm);
    assert_eq!(parse_json(line, &mut Vec::new(), &mut warm), parsed);
    assert!(
        out.starts_with(PREFIX),
        "bytes before the message were changed"
    );
    let msg = out[PREFIX.len()..].to_vec();

    if let Ok(meta) = parsed {
        let mut log = msg.clone();
        if !meta.partial {
            log.push(b'\n');
        }
        let mut again = Vec::new();
        write_json_file_line(
            &mut again,
            &log,
            meta.stream,
            &time_text(meta.time_ns, meta.style),
        );
        assert_eq!(again.pop(), Some(b'\n'));
        let mut msg2 = Vec::new();
        let meta2 = parse_json(&again, &mut msg2, &mut TimeCache::default()).unwrap_or_else(|e| {
            panic!(
                "re-encoded line does not parse ({e}): {:?}",
                String::from_utf8_lossy(&again)
            )
        });
        assert_eq!(meta2, meta, "round trip changed the metadata");
        if std::str::from_utf8(&msg).is_ok() {
            assert_eq!(msg2, msg, "round trip changed the message");
        }
    }

    if let Ok(l) = serde_json::from_slice::<Line<'_>>(line) {
        let keys_plain =
            serde_json::from_slice::<HashMap<&str, serde::de::IgnoredAny>>(line).is_ok();
        let known = matches!(l.stream, "stdout" | "stderr")
            && runnel_agent::timefmt::parse_rfc3339(l.time).is_ok();
        if keys_plain && known {
            let meta = parsed
                .unwrap_or_else(|e| panic!("serde_json reads this line but parse_json says {e}"));
            let mut want = l.log.into_bytes();
            let partial = want.last() != Some(&b'\n');
            if !partial {
                want.pop();
            }
            assert_eq!(msg, want, "message differs from serde_json's");
            assert_eq!(meta.partial, partial);
            assert_eq!(meta.stream.as_str(), l.stream);
            let (ns, style) = runnel_agent::timefmt::parse_rfc3339(l.time).unwrap_or_default();
            assert_eq!((meta.time_ns, meta.style), (ns, style));
        }
    }

    // Any split into head and tail: no panic, and the kept message is capped by the head.
    let cut = line.first().map_or(0, |&b| usize::from(b)).min(line.len());
    let mut o = Vec::new();
    let _ = parse_json_oversize(&line[..cut], &line[cut..], &mut o);
    assert!(
        o.len() <= cut,
        "message longer than the head it was decoded from"
    );
});
