//! json-file and CRI line parsing, partial merge and the line limit, on byte strings as the
//! runtimes write them.

use runnel_agent::tail::lines::{Event, LineAssembler};
use runnel_agent::tail::parse::{
    parse_cri, parse_json, parse_rfc3339, Format, FormatRule, TimeCache,
};
use runnel_index::{Stream, TimeStyle};

#[test]
fn json_escapes_are_unescaped_in_log_only() {
    let mut out = Vec::new();
    let line = br#"{"log":"a\"b\\c\/d\te\u00e9\ud83d\ude00 \u0041\n","stream":"stderr","time":"2024-05-01T12:00:00.5Z"}"#;
    let m = parse_json(line, &mut out, &mut TimeCache::default()).unwrap();
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
    parse_json(&line, &mut out, &mut TimeCache::default()).unwrap();
    let mut want = "x\u{FFFD}y".as_bytes().to_vec();
    want.extend_from_slice(&[0xff, 0xfe]);
    assert_eq!(out, want);
}

#[test]
fn json_fragment_without_newline_is_partial_and_extra_keys_are_skipped() {
    let mut out = Vec::new();
    let line = br#"{"log":"part","attrs":{"a":"}","b":[1,{"c":2}]},"stream":"stdout","time":"2024-05-01T12:00:00.000000001Z"}"#;
    let m = parse_json(line, &mut out, &mut TimeCache::default()).unwrap();
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
            parse_json(bad, &mut out, &mut TimeCache::default()).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn cri_lines_parse_with_zone_offsets_compared_as_instants() {
    let (a, content) = parse_cri(
        b"2024-05-01T14:00:00.25+02:00 stdout F hello world",
        &mut TimeCache::default(),
    )
    .unwrap();
    let (b, _) = parse_cri(
        b"2024-05-01T12:00:00.25Z stderr P x",
        &mut TimeCache::default(),
    )
    .unwrap();
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
    let (m, c) = parse_cri(b"2024-05-01T12:00:00Z stdout F", &mut TimeCache::default()).unwrap();
    assert_eq!((c, m.partial), (&b""[..], false));
    let (w, _) = parse_cri(
        b"2024-05-01T07:30:00-04:30 stdout F x",
        &mut TimeCache::default(),
    )
    .unwrap();
    assert_eq!(w.time_ns, parse_rfc3339(b"2024-05-01T12:00:00Z").unwrap().0);
    for bad in [
        &b"garbage"[..],
        b"2024-05-01T12:00:00Z stdin F x",
        b"2024-05-01T12:00:00Z stdout X x",
        b"2024-05-01 stdout F x",
    ] {
        assert!(
            parse_cri(bad, &mut TimeCache::default()).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
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

/// What an assembler handed back: records, offsets of bad lines, bytes skipped.
#[derive(Default)]
struct Out {
    recs: Vec<Rec>,
    bad: Vec<u64>,
    skipped: u64,
}

impl Out {
    fn take(&mut self, ev: Event<'_>) {
        match ev {
            Event::Record(r) => self.recs.push(Rec {
                msg: r.message.to_vec(),
                stream: r.stream,
                flags: r.flags.0,
                offset: r.offset,
                time_ns: r.time_ns,
            }),
            Event::Bad { offset, .. } => self.bad.push(offset),
            Event::Skipped(n) => self.skipped += n,
        }
    }
}

fn feed_out(asm: &mut LineAssembler, data: &[u8], chunk: usize, base: u64, o: &mut Out) {
    let mut scratch = Vec::new();
    let mut pos = base;
    for c in data.chunks(chunk) {
        asm.feed(c, pos, &mut scratch, &mut |ev| o.take(ev));
        pos += c.len() as u64;
    }
}

fn feed_all(asm: &mut LineAssembler, data: &[u8], chunk: usize) -> (Vec<Rec>, Vec<u64>) {
    let mut o = Out::default();
    feed_out(asm, data, chunk, 0, &mut o);
    (o.recs, o.bad)
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
        let mut asm = LineAssembler::new(FormatRule::Fixed(Format::JsonFile), 1 << 20);
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
    let mut asm = LineAssembler::new(FormatRule::Fixed(Format::Cri), 1 << 20);
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
    let mut asm = LineAssembler::new(FormatRule::Fixed(Format::Cri), 1000);
    let (recs, bad) = feed_all(&mut asm, text.as_bytes(), 65536);
    assert!(bad.is_empty());
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].msg, &long.as_bytes()[..1000]);
    assert_eq!(recs[0].flags, 2);
    // Emitted as soon as its head holds the limit (1000 + 1 KiB for time, stream and tag),
    // not at its end: a restart resumes there and skips the rest of the line.
    assert_eq!(recs[0].offset, 1000 + 1024);
    assert_eq!((recs[1].msg.as_slice(), recs[1].flags), (&b"short"[..], 0));

    // json-file: a raw line bigger than the raw limit keeps head and tail (stream, time).
    let text = json(&format!("{long}\n"), "stderr", "2024-05-01T12:00:00Z")
        + &json("ok\n", "stdout", "2024-05-01T12:00:01Z");
    let mut asm = LineAssembler::new(FormatRule::Fixed(Format::JsonFile), 1000);
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
    let mut asm = LineAssembler::new(FormatRule::Fixed(Format::JsonFile), 1000);
    let (recs, _) = feed_all(&mut asm, text.as_bytes(), 100);
    assert_eq!((recs[0].msg.len(), recs[0].flags), (1000, 3));
}

#[test]
fn bad_lines_are_reported_with_their_offset_and_skipped() {
    let good = "2024-05-01T12:00:00Z stdout F a\n";
    let text = format!("{good}garbage line\n{good}");
    let mut asm = LineAssembler::new(FormatRule::Fixed(Format::Cri), 1000);
    let (recs, bad) = feed_all(&mut asm, text.as_bytes(), 3);
    assert_eq!(recs.len(), 2);
    assert_eq!(bad, vec![good.len() as u64]);
}

/// The 16 KiB fragments Docker writes for a line that never ends (a progress bar with `\r`).
fn docker_fragment(log: &str, stream: &str, time: &str) -> String {
    json(log, stream, time)
}

#[test]
fn a_json_file_that_begins_with_garbage_keeps_every_good_line() {
    // What copytruncate leaves when the writer does not use O_APPEND: NULs up to the writer's
    // old offset, then the tail of a cut line.
    let mut text = "\0".repeat(4096);
    text.push_str("m\",\"stream\":\"stdout\",\"time\":\"2024-05-01T12:00:00Z\"}\n");
    let good: String = (0..13_333)
        .map(|i| json(&format!("good {i}\n"), "stdout", "2024-05-01T12:00:01Z"))
        .collect();
    text.push_str(&good);
    // The format the first byte chose before (anything but `{` meant CRI) loses every line.
    let mut asm = LineAssembler::new(FormatRule::Fixed(Format::Cri), 1 << 20);
    let (recs, bad) = feed_all(&mut asm, text.as_bytes(), 65536);
    assert_eq!((recs.len(), bad.len()), (0, 13_334));
    for rule in [
        FormatRule::Fixed(Format::JsonFile),
        FormatRule::FirstParseable,
    ] {
        let mut asm = LineAssembler::new(rule, 1 << 20);
        let (recs, bad) = feed_all(&mut asm, text.as_bytes(), 65536);
        assert_eq!(recs.len(), 13_333, "{rule:?}");
        assert_eq!(
            bad,
            vec![0],
            "{rule:?}: the garbage head is one counted bad line"
        );
        assert_eq!(recs[13_332].msg, b"good 13332");
        assert_eq!(asm.format(), Some(Format::JsonFile));
    }
    // A CRI file under the pod directories with the same kind of head is read as CRI.
    let mut text = "\0".repeat(100);
    text.push_str(
        "cut line\n2024-05-01T12:00:00Z stdout F a\n{\"x\":1}\n2024-05-01T12:00:01Z stderr F b\n",
    );
    let mut asm = LineAssembler::new(FormatRule::FirstParseable, 1 << 20);
    let (recs, bad) = feed_all(&mut asm, text.as_bytes(), 7);
    assert_eq!(
        recs.iter().map(|r| r.msg.clone()).collect::<Vec<_>>(),
        [b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(
        bad.len(),
        2,
        "the head and the JSON line among CRI lines are counted"
    );
    assert_eq!(asm.format(), Some(Format::Cri));
}

#[test]
fn docker_fragments_that_never_end_are_emitted_at_the_limit_and_the_rest_skipped() {
    let frag = "x".repeat(16 * 1024);
    let t = "2024-05-01T12:00:00Z";
    let mut asm = LineAssembler::new(FormatRule::Fixed(Format::JsonFile), 40_000);
    let mut o = Out::default();
    let mut pos = 0;
    // Three fragments: 48 KiB reach the 40 000-byte limit at the third.
    for _ in 0..3 {
        let f = docker_fragment(&frag, "stdout", t);
        feed_out(&mut asm, f.as_bytes(), 4096, pos, &mut o);
        pos += f.len() as u64;
    }
    assert_eq!(o.recs.len(), 1, "emitted as soon as it reached the limit");
    assert_eq!((o.recs[0].msg.len(), o.recs[0].flags), (40_000, 3));
    assert_eq!(o.recs[0].offset, pos);
    assert_eq!(o.skipped, 3 * 16 * 1024 - 40_000);
    assert_eq!(
        asm.held_bytes(),
        0,
        "nothing is held while the rest is skipped"
    );
    // A thousand more fragments: skipped and counted, nothing held, nothing emitted.
    for _ in 0..1000 {
        let f = docker_fragment(&frag, "stdout", t);
        feed_out(&mut asm, f.as_bytes(), 65536, pos, &mut o);
        pos += f.len() as u64;
    }
    assert_eq!(o.recs.len(), 1);
    assert_eq!(asm.held_bytes(), 0);
    // The final fragment ends the skipped line; the next line is whole again.
    let end = docker_fragment("end\n", "stdout", t) + &json("next\n", "stdout", t);
    feed_out(&mut asm, end.as_bytes(), 65536, pos, &mut o);
    assert_eq!(o.recs.len(), 2);
    assert_eq!(
        (o.recs[1].msg.as_slice(), o.recs[1].flags),
        (&b"next"[..], 0)
    );
    assert_eq!(o.skipped, 1003 * 16 * 1024 - 40_000 + 3);
}

#[test]
fn cri_partials_and_a_line_without_newline_are_emitted_at_the_limit() {
    let mut asm = LineAssembler::new(FormatRule::FirstParseable, 2000);
    let mut o = Out::default();
    let p = format!("2024-05-01T12:00:00Z stderr P {}\n", "p".repeat(900));
    let mut text = String::new();
    for _ in 0..500 {
        text.push_str(&p);
    }
    text.push_str("2024-05-01T12:00:01Z stderr F tail\n2024-05-01T12:00:02Z stderr F after\n");
    feed_out(&mut asm, text.as_bytes(), 333, 0, &mut o);
    assert_eq!(o.recs.len(), 2);
    assert_eq!((o.recs[0].msg.len(), o.recs[0].flags), (2000, 3));
    assert_eq!(
        o.recs[0].offset,
        3 * p.len() as u64,
        "emitted at the third fragment"
    );
    assert_eq!(o.recs[1].msg, b"after");
    assert_eq!(o.skipped, 500 * 900 - 2000 + 4);

    // A physical line that never ends: emitted once its head holds the limit.
    let mut asm = LineAssembler::new(FormatRule::FirstParseable, 2000);
    let mut o = Out::default();
    let mut text = "2024-05-01T12:00:00Z stdout F ".to_string();
    text.push_str(&"\r50%".repeat(100_000));
    feed_out(&mut asm, text.as_bytes(), 4096, 0, &mut o);
    assert_eq!(o.recs.len(), 1);
    assert_eq!((o.recs[0].msg.len(), o.recs[0].flags), (2000, 2));
    assert!(
        asm.held_bytes() == 0 && asm.busy(),
        "skipping to the line's end holds nothing"
    );
    assert_eq!(o.skipped, text.len() as u64 - 30 - 2000);
}

#[test]
fn eviction_emits_the_oldest_held_line_and_flush_at_eof_stores_the_rest() {
    let t = "2024-05-01T12:00:00Z";
    let mut asm = LineAssembler::new(FormatRule::Fixed(Format::JsonFile), 1 << 20);
    let mut o = Out::default();
    let text = json("old ", "stdout", t) + &json("new ", "stderr", t);
    feed_out(&mut asm, text.as_bytes(), 100, 0, &mut o);
    let older = asm.oldest().unwrap();
    assert!(asm.held_bytes() >= 8);
    let mut scratch = Vec::new();
    assert!(asm.evict(&mut scratch, &mut |ev| o.take(ev)));
    assert_eq!(
        (o.recs[0].msg.as_slice(), o.recs[0].flags),
        (&b"old "[..], 2)
    );
    assert!(asm.oldest().unwrap() > older, "the stderr line is younger");
    // The rest of the evicted line is skipped up to its final fragment.
    let more = json("more\n", "stdout", t);
    feed_out(&mut asm, more.as_bytes(), 100, text.len() as u64, &mut o);
    assert_eq!(o.recs.len(), 1);
    assert_eq!(o.skipped, 4);
    // --oneshot at EOF: the stderr fragment is stored as it is, flagged truncated.
    asm.flush_at_eof(&mut |ev| o.take(ev));
    assert_eq!(
        (o.recs[1].msg.as_slice(), o.recs[1].flags),
        (&b"new "[..], 2)
    );
    assert_eq!(asm.held_bytes(), 0);

    // An unterminated last line is a write in progress: left for the next run to read whole.
    let mut asm = LineAssembler::new(FormatRule::FirstParseable, 1 << 20);
    let mut o = Out::default();
    feed_out(
        &mut asm,
        b"2024-05-01T12:00:00Z stdout F no newline",
        5,
        0,
        &mut o,
    );
    asm.flush_at_eof(&mut |ev| o.take(ev));
    assert!(o.recs.is_empty() && o.bad.is_empty());
}

#[test]
fn a_fresh_time_cache_accepts_only_what_the_plain_parse_accepts() {
    for t in [
        &b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0Z"[..],
        b"1970-01-01T00:00:00Z",
        b"1970-01-01T00:00:00.5+01:00",
        b"1970-01-01T00:00:00",
    ] {
        assert_eq!(TimeCache::default().parse(t), parse_rfc3339(t), "{t:?}");
    }
}

mod fast_paths {
    //! The Docker-layout fast path of `parse_json` and the whole-second cache of `TimeCache`
    //! against the general parsers, on lines near Docker's layout and times near RFC 3339.
    use super::*;
    use proptest::prelude::*;
    use runnel_agent::tail::parse::parse_json_any;

    /// A time as runtimes write it, or one broken in a way a fast path could miss.
    fn time_text() -> impl Strategy<Value = String> {
        let valid = (
            1969i32..2101,
            1u32..13,
            1u32..32,
            0u32..24,
            0u32..60,
            0u32..61,
            proptest::option::of("[0-9]{1,10}"),
            prop_oneof![
                Just("Z".to_string()),
                Just("z".to_string()),
                (0u32..24, 0u32..60, any::<bool>()).prop_map(|(h, m, neg)| format!(
                    "{}{h:02}:{m:02}",
                    if neg { '-' } else { '+' }
                )),
            ],
        )
            .prop_map(|(y, mo, d, h, mi, s, frac, off)| {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}")
            });
        prop_oneof![
            8 => valid.clone(),
            1 => (valid, 0usize..40, any::<u8>()).prop_map(|(t, at, b)| {
                // One byte replaced, or the text cut.
                let mut v = t.into_bytes();
                if at < v.len() {
                    v[at] = b;
                } else {
                    v.truncate(at % (v.len() + 1));
                }
                String::from_utf8_lossy(&v).into_owned()
            }),
        ]
    }

    fn escaped(log: &str) -> String {
        let s = serde_json::to_string(log).unwrap();
        s[1..s.len() - 1].to_string()
    }

    /// A json-file line: Docker's layout, or a variation the general parser reads differently.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        (
            "[ -~\\n\\t\"\\\\é]{0,40}",
            prop_oneof![Just("stdout"), Just("stderr"), Just("stdin"), Just("")],
            time_text(),
            0u8..8,
            any::<bool>(),
        )
            .prop_map(|(log, stream, time, variant, newline)| {
                let log = escaped(&format!("{log}{}", if newline { "\n" } else { "" }));
                let docker = format!(r#"{{"log":"{log}","stream":"{stream}","time":"{time}"}}"#);
                if variant == 5 {
                    let mut v = docker.into_bytes();
                    v.truncate(v.len() / 2);
                    return v;
                }
                match variant {
                    0 => format!(r#"{{ "log":"{log}","stream":"{stream}","time":"{time}"}}"#),
                    1 => format!(r#"{{"log":"{log}","stream":"{stream}","time":"{time}","attrs":{{"a":"b"}}}}"#),
                    2 => format!(r#"{{"stream":"{stream}","log":"{log}","time":"{time}"}}"#),
                    3 => format!(r#"{{"log":"{log}","stream":"{stream}","time":"{time}"}} "#),
                    4 => format!(r#"{{"log":"{log}","stream":"{stream}","time":"{time}","log":"x"}}"#),
                    _ => docker,
                }
                .into_bytes()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn the_cached_parse_equals_the_plain_one(
            times in proptest::collection::vec(time_text(), 1..20),
            // Times of one minute, as a file's lines are: the cache must tell their seconds apart.
            minute in (2000u32..2100, 0u32..24, 0u32..60),
            near in proptest::collection::vec((0u32..61, 0u32..1000, 0usize..3), 1..20),
        ) {
            let (y, h, mi) = minute;
            let suffixes = ["Z", "+01:00", "-00:30"];
            let near = near.iter().map(|(sec, ms, off)| {
                format!("{y}-06-30T{h:02}:{mi:02}:{sec:02}.{ms:03}{}", suffixes[*off])
            });
            let mut cache = TimeCache::default();
            for t in times.iter().cloned().chain(near) {
                prop_assert_eq!(cache.parse(t.as_bytes()), parse_rfc3339(t.as_bytes()), "{}", &t);
            }
        }

        #[test]
        fn the_file_side_time_parse_equals_the_query_side_one(t in time_text()) {
            // `timefmt` is written apart (for query parameters): an independent oracle.
            let query_side = runnel_agent::timefmt::parse_rfc3339(&t).ok();
            prop_assert_eq!(parse_rfc3339(t.as_bytes()), query_side, "{}", &t);
        }

        #[test]
        fn the_fast_path_equals_the_general_parser(lines in proptest::collection::vec(line(), 1..8)) {
            // One warm cache across the lines, as a file's assembler keeps it.
            let (mut fast, mut general) = (TimeCache::default(), TimeCache::default());
            for l in &lines {
                let (mut a, mut b) = (b"kept".to_vec(), b"kept".to_vec());
                let got = parse_json(l, &mut a, &mut fast);
                let want = parse_json_any(l, &mut b, &mut general);
                prop_assert_eq!(got, want, "{}", String::from_utf8_lossy(l));
                if want.is_ok() {
                    prop_assert_eq!(&a, &b, "{}", String::from_utf8_lossy(l));
                }
                prop_assert!(a.starts_with(b"kept"));
            }
        }
    }
}
