//! CRI line parser (`agent/src/tail/parse.rs`, `parse_cri`) and the two RFC 3339 parsers.
//!
//! Asserts, for every input line:
//! - round trip: a parsed line written back the way the kubelet writes it (`demo::format`)
//!   parses to the same time, style, stream, partial flag and content;
//! - the content is a suffix of the line (borrowed, never invented);
//! - the file-side time parser (`tail::parse::parse_rfc3339`) and the query-side one
//!   (`timefmt::parse_rfc3339`) agree on every input, and a parsed time printed in its own
//!   style parses back to the same instant and style;
//! - the whole-second time cache (`TimeCache`), fresh or warmed by the line before it, gives
//!   what the plain parse gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_agent::demo::format::write_cri_line;
use runnel_agent::tail::parse::{parse_cri, parse_rfc3339, TimeCache};
use runnel_fuzz::time_text;

fuzz_target!(|line: &[u8]| {
    if let Ok((meta, content)) = parse_cri(line, &mut TimeCache::default()) {
        assert!(
            line.ends_with(content),
            "content is not the end of the line"
        );
        let mut again = Vec::new();
        write_cri_line(
            &mut again,
            &time_text(meta.time_ns, meta.style),
            meta.stream,
            meta.partial,
            content,
        );
        assert_eq!(again.pop(), Some(b'\n'));
        let (meta2, content2) = parse_cri(&again, &mut TimeCache::default()).unwrap_or_else(|e| {
            panic!(
                "re-encoded line does not parse ({e}): {:?}",
                String::from_utf8_lossy(&again)
            )
        });
        assert_eq!(meta2, meta, "round trip changed the metadata");
        assert_eq!(content2, content, "round trip changed the content");
    }

    // The time parsers, on the first field and on the whole input.
    let first = line.split(|&b| b == b' ').next().unwrap_or(line);
    let mut times = TimeCache::default();
    for t in [first, line] {
        let file_side = parse_rfc3339(t);
        assert_eq!(
            times.parse(t),
            file_side,
            "the time cache and the plain parse disagree"
        );
        if let Ok(text) = std::str::from_utf8(t) {
            let query_side = runnel_agent::timefmt::parse_rfc3339(text).ok();
            assert_eq!(file_side, query_side, "the two RFC 3339 parsers disagree");
        }
        if let Some((ns, style)) = file_side {
            let printed = time_text(ns, style);
            assert_eq!(
                parse_rfc3339(printed.as_bytes()),
                Some((ns, style)),
                "{printed} does not parse back"
            );
        }
    }
});
