//! json-file and CRI line parsing, partial merge and the line limit, on byte strings as the
//! runtimes write them.

use runnel_agent::tail::lines::{Event, LineAssembler};
use runnel_agent::tail::parse::{parse_cri, parse_json, parse_rfc3339, Format};
use runnel_index::{Stream, TimeStyle};

#[test]
fn json_escapes_are_unescaped_in_log_only() {
    let mut out = Vec::new();
    let line = br#"{"log":"a\"b\\c\/d\te\u00e9\ud83d\ude00 \u0041\n","stream":"stderr","time":"2024-05-01T12:00:00.5Z"}"#;
    let m = parse_json(line, &mut out).unwrap();
    assert_eq!(out, "a\"b\\c/d\te\u{e9}\u{1F600} A".as_bytes());
    assert_eq!(m.stream, Stream::Stderr);
    assert!(!m.partial);
    assert_eq!(m.time_ns, 1_714_564_800_500_000_000);
    assert_eq!(
        m.style,
        TimeStyle {
            offset_secs: 0,
            frac_digits: 1,
            zulu: true
        }
    );
}

#[test]
fn json_lone_surrogate_becomes_replacement_and_raw_invalid_utf8_is_kept() {
    let mut out = Vec::new();
    let mut line = br#"{"log":"x\ud800y"#.to_vec();
    line.extend_from_slice(&[0xff, 0xfe]);
    line.extend_from_slice(br#"\n","stream":"stdout","time":"2024-05-01T12:00:00Z"}"#);
    parse_json(&line, &mut out).unwrap();
    let mut want = "x\u{FFFD}y".as_bytes().to_vec();
    want.extend_from_slice(&[0xff, 0xfe]);
    assert_eq!(out, want);
}

#[test]
fn json_fragment_without_newline_is_partial_and_extra_keys_are_skipped() {
    let mut out = Vec::new();
    let line = br#"{"log":"part","attrs":{"a":"}","b":[1,{"c":2}]},"stream":"stdout","time":"2024-05-01T12:00:00.000000001Z"}"#;
    let m = parse_json(line, &mut out).unwrap();
    assert!(m.partial);
    assert_eq!(out, b"part");
    assert_eq!(m.style.frac_digits, 9);
}

#[test]
fn json_bad_lines_are_errors() {
    let mut out = Vec::new();
    for bad in [
        &b"not json"[..],
        br#"{"log":"x\n","stream":"stdout"}"#,
        br#"{"log":"x\n","stream":"other","time":"2024-05-01T12:00:00Z"}"#,
        br#"{"stream":"stdout","time":"2024-05-01T12:00:00Z"}"#,
        br#"{"log":"x\q","stream":"stdout","time":"2024-05-01T12:00:00Z"}"#,
        br#"{"log":"x","stream":"stdout","time":"2024-13-01T12:00:00Z"}"#,
        br#"{"log":"unterminated"#,
    ] {
        out.clear();
        assert!(
            parse_json(bad, &mut out).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn cri_lines_parse_with_zone_offsets_compared_as_instants() {
    let (a, content) = parse_cri(b"2024-05-01T14:00:00.25+02:00 stdout F hello world").unwrap();
    let (b, _) = parse_cri(b"2024-05-01T12:00:00.25Z stderr P x").unwrap();
    assert_eq!(content, b"hello world");
    assert_eq!(a.time_ns, b.time_ns, "same instant written in two zones");
    assert_eq!(
        a.style,
        TimeStyle {
            offset_secs: 7200,
            frac_digits: 2,
            zulu: false
        }
    );
    assert!(!a.partial && b.partial);
    assert_eq!(b.stream, Stream::Stderr);
    let (m, c) = parse_cri(b"2024-05-01T12:00:00Z stdout F").unwrap();
    assert_eq!((c, m.partial), (&b""[..], false));
    let (w, _) = parse_cri(b"2024-05-01T07:30:00-04:30 stdout F x").unwrap();
    assert_eq!(w.time_ns, parse_rfc3339(b"2024-05-01T12:00:00Z").unwrap().0);
    for bad in [
        &b"garbage"[..],
        b"2024-05-01T12:00:00Z stdin F x",
        b"2024-05-01T12:00:00Z stdout X x",
        b"2024-05-01 stdout F x",
    ] {
        assert!(parse_cri(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn rfc3339_before_epoch_and_leap_day() {
    assert_eq!(
        parse_rfc3339(b"1969-12-31T23:59:59Z").unwrap().0,
        -1_000_000_000
    );
    assert_eq!(
        parse_rfc3339(b"2024-02-29T00:00:00Z").unwrap().0,
        1_709_164_800_000_000_000
    );
    assert!(parse_rfc3339(b"2024-02-29T00:00:00").is_none());
}

#[derive(Debug, PartialEq)]
struct Rec {
    msg: Vec<u8>,
    stream: Stream,
    flags: u8,
    offset: u64,
    time_ns: i64,
}

fn feed_all(asm: &mut LineAssembler, data: &[u8], chunk: usize) -> (Vec<Rec>, Vec<u64>) {
    let mut recs = Vec::new();
    let mut bad = Vec::new();
    let mut scratch = Vec::new();
    let mut pos = 0u64;
    for c in data.chunks(chunk) {
        asm.feed(c, pos, &mut scratch, &mut |ev| match ev {
            Event::Record(r) => recs.push(Rec {
                msg: r.message.to_vec(),
                stream: r.stream,
                flags: r.flags.0,
                offset: r.offset,
                time_ns: r.time_ns,
            }),
            Event::Bad { offset, .. } => bad.push(offset),
        });
        pos += c.len() as u64;
    }
    (recs, bad)
}

fn json(log: &str, stream: &str, time: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({"log": log, "stream": stream, "time": time})
    )
}

#[test]
fn json_fragments_merge_per_stream_with_first_time_and_final_offset() {
    let text = json("hel", "stdout", "2024-05-01T12:00:00Z")
        + &json("x\n", "stderr", "2024-05-01T12:00:01Z")
        + &json("lo ", "stdout", "2024-05-01T12:00:00Z")
        + &json("world\n", "stdout", "2024-05-01T12:00:00Z");
    for chunk in [1, 7, 4096] {
        let mut asm = LineAssembler::new(Format::JsonFile, 1 << 20);
        let (recs, bad) = feed_all(&mut asm, text.as_bytes(), chunk);
        assert!(bad.is_empty());
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].msg, b"x");
        // A record completed while a fragment of the other stream is pending resumes before it.
        let first_len = json("hel", "stdout", "2024-05-01T12:00:00Z").len() as u64;
        assert_eq!(
            recs[0].offset, 0,
            "resume point must not skip the pending stdout fragment"
        );
        assert_eq!(recs[1].msg, b"hello world");
        assert_eq!(recs[1].flags, 1);
        assert_eq!(recs[1].offset, text.len() as u64);
        assert!(first_len > 0);
        assert!(!asm.busy());
    }
}

#[test]
fn cri_partials_merge_using_the_first_fragment_time() {
    let text = "2024-05-01T12:00:00Z stdout P ab\n2024-05-01T12:00:05Z stdout P cd\n2024-05-01T12:00:09Z stdout F ef\n2024-05-01T12:00:10Z stdout F next\n";
    let mut asm = LineAssembler::new(Format::Cri, 1 << 20);
    let (recs, _) = feed_all(&mut asm, text.as_bytes(), 5);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].msg, b"abcdef");
    assert_eq!(recs[0].flags, 1);
    assert_eq!(
        recs[0].time_ns,
        parse_rfc3339(b"2024-05-01T12:00:00Z").unwrap().0
    );
    assert_eq!(recs[1].msg, b"next");
    assert_eq!(recs[1].offset, text.len() as u64);
}

#[test]
fn long_line_is_truncated_and_flagged_then_next_line_is_fine() {
    let long = "L".repeat(300_000);
    let text =
        format!("2024-05-01T12:00:00Z stdout F {long}\n2024-05-01T12:00:01Z stdout F short\n");
    let mut asm = LineAssembler::new(Format::Cri, 1000);
    let (recs, bad) = feed_all(&mut asm, text.as_bytes(), 65536);
    assert!(bad.is_empty());
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].msg, &long.as_bytes()[..1000]);
    assert_eq!(recs[0].flags, 2);
    assert_eq!(recs[0].offset as usize, text.find("\n2024").unwrap() + 1);
    assert_eq!((recs[1].msg.as_slice(), recs[1].flags), (&b"short"[..], 0));

    // json-file: a raw line bigger than the raw limit keeps head and tail (stream, time).
    let text = json(&format!("{long}\n"), "stderr", "2024-05-01T12:00:00Z")
        + &json("ok\n", "stdout", "2024-05-01T12:00:01Z");
    let mut asm = LineAssembler::new(Format::JsonFile, 1000);
    let (recs, bad) = feed_all(&mut asm, text.as_bytes(), 65536);
    assert!(bad.is_empty());
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (recs[0].msg.len(), recs[0].flags, recs[0].stream),
        (1000, 2, Stream::Stderr)
    );
    assert_eq!(recs[1].msg, b"ok");
    // Merged fragments that exceed the limit are cut too.
    let text = json(&"a".repeat(700), "stdout", "2024-05-01T12:00:00Z")
        + &json(
            &format!("{}\n", "b".repeat(700)),
            "stdout",
            "2024-05-01T12:00:00Z",
        );
    let mut asm = LineAssembler::new(Format::JsonFile, 1000);
    let (recs, _) = feed_all(&mut asm, text.as_bytes(), 100);
    assert_eq!((recs[0].msg.len(), recs[0].flags), (1000, 3));
}

#[test]
fn bad_lines_are_reported_with_their_offset_and_skipped() {
    let good = "2024-05-01T12:00:00Z stdout F a\n";
    let text = format!("{good}garbage line\n{good}");
    let mut asm = LineAssembler::new(Format::Cri, 1000);
    let (recs, bad) = feed_all(&mut asm, text.as_bytes(), 3);
    assert_eq!(recs.len(), 2);
    assert_eq!(bad, vec![good.len() as u64]);
}
