//! The forward codec against requests built byte by byte from the Forward Protocol
//! Specification v1/v1.5, with an encoder of this file's own (not the codec's), plus
//! random-input properties.

use std::io::Write;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use runnel_agent::inputs::forward::codec::{
    decode, decode_streamed, encode_ack, frame_len, udp_heartbeat_reply, Compression, DecodeError,
    Entry, Framer, Limits, Mode, Request, Value,
};
use runnel_agent::inputs::forward::handshake::{hex_sha512, Handshake, ServerAuth, User};
use sha2::{Digest, Sha512};

/// A msgpack value for building requests. `width` picks the encoding (0 = smallest,
/// 1..=3 = the 8/16/32-bit forms where they exist) so every header form is exercised.
#[derive(Debug, Clone, PartialEq)]
enum M {
    Nil,
    Bool(bool),
    Int(i64),
    F64(f64),
    Str(Vec<u8>, u8),
    Bin(Vec<u8>, u8),
    Arr(Vec<M>, u8),
    Map(Vec<(M, M)>, u8),
    Ext(i8, Vec<u8>, u8),
}

fn s(text: &str) -> M {
    M::Str(text.as_bytes().to_vec(), 0)
}

fn arr(items: Vec<M>) -> M {
    M::Arr(items, 0)
}

fn map(pairs: Vec<(&str, M)>) -> M {
    M::Map(pairs.into_iter().map(|(k, v)| (s(k), v)).collect(), 0)
}

/// EventTime as fixext8 (`d7 00`).
fn event_time(sec: u32, ns: u32) -> M {
    let mut d = sec.to_be_bytes().to_vec();
    d.extend_from_slice(&ns.to_be_bytes());
    M::Ext(0, d, 0)
}

fn enc(v: &M) -> Vec<u8> {
    let mut out = Vec::new();
    put(v, &mut out);
    out
}

fn len_header(out: &mut Vec<u8>, n: usize, width: u8, fix: Option<(u8, usize)>, wide: [u8; 3]) {
    match (fix, width) {
        (Some((base, max)), 0) if n <= max => out.push(base | n as u8),
        (_, 0 | 1) if n <= 0xff && wide[0] != 0 => out.extend_from_slice(&[wide[0], n as u8]),
        (_, 0..=2) if n <= 0xffff => {
            out.push(wide[1]);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(wide[2]);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
}

fn put(v: &M, out: &mut Vec<u8>) {
    match v {
        M::Nil => out.push(0xc0),
        M::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        M::Int(i) => {
            if (0..=127).contains(i) {
                out.push(*i as u8);
            } else if (-32..0).contains(i) {
                out.push(*i as i8 as u8);
            } else if i32::try_from(*i).is_ok() {
                out.push(0xd2);
                out.extend_from_slice(&(*i as i32).to_be_bytes());
            } else {
                out.push(0xd3);
                out.extend_from_slice(&i.to_be_bytes());
            }
        }
        M::F64(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        M::Str(b, w) => {
            len_header(out, b.len(), *w, Some((0xa0, 31)), [0xd9, 0xda, 0xdb]);
            out.extend_from_slice(b);
        }
        M::Bin(b, w) => {
            len_header(out, b.len(), (*w).max(1), None, [0xc4, 0xc5, 0xc6]);
            out.extend_from_slice(b);
        }
        M::Arr(items, w) => {
            len_header(out, items.len(), *w, Some((0x90, 15)), [0, 0xdc, 0xdd]);
            items.iter().for_each(|i| put(i, out));
        }
        M::Map(pairs, w) => {
            len_header(out, pairs.len(), *w, Some((0x80, 15)), [0, 0xde, 0xdf]);
            for (k, v) in pairs {
                put(k, out);
                put(v, out);
            }
        }
        M::Ext(ty, d, w) => {
            let fixed = [1, 2, 4, 8, 16].iter().position(|n| *n == d.len());
            match (fixed, w) {
                (Some(p), 0) => out.push(0xd4 + p as u8),
                _ => len_header(out, d.len(), (*w).max(1), None, [0xc7, 0xc8, 0xc9]),
            }
            out.push(*ty as u8);
            out.extend_from_slice(d);
        }
    }
}

fn limits() -> Limits {
    Limits::default()
}

/// What a decoded request says: mode, tag, chunk option, and (time, record JSON) per entry.
type Decoded = (Mode, Vec<u8>, Option<Vec<u8>>, Vec<(i64, String)>);

fn events(frame: &[u8]) -> Decoded {
    let mut scratch = Vec::new();
    match decode(frame, &limits(), &mut scratch) {
        Ok(Request::Events(ev)) => {
            let recs = ev.iter().map(|e| (e.time_ns, json(&e))).collect();
            (
                ev.mode(),
                ev.tag().to_vec(),
                ev.options().chunk.map(<[u8]>::to_vec),
                recs,
            )
        }
        other => panic!("expected events, got {other:?}"),
    }
}

fn json(e: &Entry<'_>) -> String {
    let mut out = Vec::new();
    e.record.write_compact_json(&mut out);
    String::from_utf8(out).expect("compact JSON is UTF-8")
}

fn decode_err(frame: &[u8], limits: &Limits) -> DecodeError {
    let mut scratch = Vec::new();
    match decode(frame, limits, &mut scratch) {
        Err(e) => e,
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

const T: i64 = 1_700_000_000_000_000_123;

#[test]
fn nil_is_a_tcp_heartbeat() {
    let mut scratch = Vec::new();
    assert_eq!(frame_len(&[0xc0, 0x93], 100), Ok(Some(1)));
    assert!(matches!(
        decode(&[0xc0], &limits(), &mut scratch),
        Ok(Request::Heartbeat)
    ));
}

#[test]
fn message_mode_with_event_time_in_both_ext_encodings() {
    // ["app", EventTime(1700000000, 123) as fixext8, {"log": "hi"}, {"chunk": "c1"}]
    let fixext8: Vec<u8> = [
        &[0x94, 0xa3][..],
        b"app",
        &[0xd7, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x7b],
        &[0x81, 0xa3],
        b"log",
        &[0xa2],
        b"hi",
        &[0x81, 0xa5],
        b"chunk",
        &[0xa2],
        b"c1",
    ]
    .concat();
    // Same with ext8 (`c7 08 00`), as some msgpack libraries write it.
    let ext8: Vec<u8> = [
        &[0x94, 0xa3][..],
        b"app",
        &[
            0xc7, 0x08, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x7b,
        ],
        &[0x81, 0xa3],
        b"log",
        &[0xa2],
        b"hi",
        &[0x81, 0xa5],
        b"chunk",
        &[0xa2],
        b"c1",
    ]
    .concat();
    for frame in [fixext8, ext8] {
        assert_eq!(frame_len(&frame, 1 << 20), Ok(Some(frame.len())));
        let (mode, tag, chunk, recs) = events(&frame);
        assert_eq!(mode, Mode::Message);
        assert_eq!(tag, b"app");
        assert_eq!(chunk.as_deref(), Some(&b"c1"[..]));
        assert_eq!(recs, vec![(T, r#"{"log":"hi"}"#.to_string())]);
    }
}

#[test]
fn integer_and_float_seconds_are_times_too() {
    let int = enc(&arr(vec![
        s("t"),
        M::Int(1_700_000_000),
        map(vec![("a", M::Int(1))]),
    ]));
    assert_eq!(events(&int).3[0].0, 1_700_000_000_000_000_000);
    let float = enc(&arr(vec![s("t"), M::F64(1.5), map(vec![])]));
    assert_eq!(events(&float).3[0].0, 1_500_000_000);
}

#[test]
fn forward_mode_carries_entries_and_options() {
    let frame = enc(&arr(vec![
        s("kube.shop.web-0.side"),
        arr(vec![
            arr(vec![
                event_time(1_700_000_000, 123),
                map(vec![("log", s("one"))]),
            ]),
            arr(vec![M::Int(1_700_000_001), map(vec![("log", s("two"))])]),
        ]),
        map(vec![
            ("chunk", s("Y2h1bmsx")),
            ("size", M::Int(2)),
            ("x", M::Nil),
        ]),
    ]));
    let mut scratch = Vec::new();
    let Ok(Request::Events(ev)) = decode(&frame, &limits(), &mut scratch) else {
        panic!("not events");
    };
    assert_eq!(ev.mode(), Mode::Forward);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev.options().size, Some(2));
    assert_eq!(ev.options().chunk, Some(&b"Y2h1bmsx"[..]));
    let logs: Vec<_> = ev.iter().map(|e| e.record.get_str(b"log")).collect();
    assert_eq!(logs, vec![Some(&b"one"[..]), Some(&b"two"[..])]);
    // A second pass gives the same entries.
    assert_eq!(ev.iter().count(), 2);
    assert_eq!(
        ev.iter().nth(1).map(|e| e.time_ns),
        Some(1_700_000_001_000_000_000)
    );
}

fn packed_entries(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            enc(&arr(vec![
                event_time(1_700_000_000 + i as u32, 5),
                map(vec![
                    ("log", s(&format!("line {i}"))),
                    ("stream", s("stderr")),
                ]),
            ]))
        })
        .collect()
}

#[test]
fn packed_forward_accepts_bin_and_str_carriers() {
    let payload = packed_entries(3);
    for carrier in [M::Bin(payload.clone(), 3), M::Str(payload.clone(), 2)] {
        let frame = enc(&arr(vec![s("t"), carrier, map(vec![("size", M::Int(3))])]));
        let (mode, _, _, recs) = events(&frame);
        assert_eq!(mode, Mode::PackedForward);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2].0, 1_700_000_002_000_000_005);
        assert_eq!(recs[2].1, r#"{"log":"line 2","stream":"stderr"}"#);
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("write to Vec");
    e.finish().expect("finish gzip")
}

#[test]
fn gzip_payload_of_several_members_is_one_stream_of_entries() {
    let all = packed_entries(5);
    let cut = enc(&arr(vec![
        event_time(1_700_000_000, 5),
        map(vec![("log", s("line 0")), ("stream", s("stderr"))]),
    ]))
    .len()
        * 2;
    // Two members, split at an entry boundary, as Fluent Bit appends chunk pieces.
    let payload = [gzip(&all[..cut]), gzip(&all[cut..])].concat();
    let frame = enc(&arr(vec![
        s("t"),
        M::Bin(payload, 0),
        map(vec![("compressed", s("gzip")), ("chunk", s("k"))]),
    ]));
    let (mode, _, chunk, recs) = events(&frame);
    assert_eq!(mode, Mode::CompressedPackedForward(Compression::Gzip));
    assert_eq!(chunk.as_deref(), Some(&b"k"[..]));
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[4].1, r#"{"log":"line 4","stream":"stderr"}"#);
}

#[test]
fn zstd_payload_decodes() {
    let all = packed_entries(4);
    let payload = zstd::encode_all(&all[..], 3).expect("zstd compress");
    let frame = enc(&arr(vec![
        s("t"),
        M::Bin(payload, 0),
        map(vec![("compressed", s("zstd"))]),
    ]));
    let (mode, _, _, recs) = events(&frame);
    assert_eq!(mode, Mode::CompressedPackedForward(Compression::Zstd));
    assert_eq!(recs.len(), 4);
}

#[test]
fn v1_5_entries_carry_metadata_beside_the_time() {
    let frame = enc(&arr(vec![
        s("t"),
        arr(vec![
            arr(vec![
                arr(vec![
                    event_time(1_700_000_000, 123),
                    map(vec![("otel", M::Bool(true))]),
                ]),
                map(vec![("message", s("m"))]),
            ]),
            arr(vec![arr(vec![M::Int(7), M::Nil]), map(vec![])]),
        ]),
    ]));
    let mut scratch = Vec::new();
    let Ok(Request::Events(ev)) = decode(&frame, &limits(), &mut scratch) else {
        panic!("not events");
    };
    let entries: Vec<_> = ev.iter().collect();
    assert_eq!(entries[0].time_ns, T);
    let meta = entries[0].metadata.expect("metadata map");
    assert_eq!(meta.get(b"otel"), Some(Value::Bool(true)));
    assert_eq!(entries[0].record.get_str(b"message"), Some(&b"m"[..]));
    assert!(entries[1].metadata.is_none());
    assert_eq!(entries[1].time_ns, 7_000_000_000);
}

#[test]
fn record_accessors_read_fluent_bit_kubernetes_maps() {
    let record = map(vec![
        ("log", M::Bin(b"raw".to_vec(), 1)),
        (
            "kubernetes",
            map(vec![
                ("namespace_name", s("shop")),
                ("pod_name", s("web-0")),
                ("container_name", s("side")),
                ("labels", map(vec![("app", s("web"))])),
            ]),
        ),
        ("n", M::Int(-5)),
        ("f", M::F64(f64::NAN)),
        ("t", event_time(1, 2)),
    ]);
    let frame = enc(&arr(vec![s("t"), M::Int(1), record]));
    let mut scratch = Vec::new();
    let Ok(Request::Events(ev)) = decode(&frame, &limits(), &mut scratch) else {
        panic!("not events");
    };
    let e = ev.iter().next().expect("one entry");
    assert_eq!(e.record.get_str(b"log"), Some(&b"raw"[..]));
    assert_eq!(e.record.get_str(b"n"), None);
    let k8s = e.record.get_map(b"kubernetes").expect("kubernetes map");
    assert_eq!(k8s.get_str(b"namespace_name"), Some(&b"shop"[..]));
    assert_eq!(k8s.get_str(b"pod_name"), Some(&b"web-0"[..]));
    assert_eq!(k8s.get_str(b"container_name"), Some(&b"side"[..]));
    assert_eq!(e.record.len(), 5);
    assert_eq!(e.record.iter().count(), 5);
    let j = json(&e);
    assert_eq!(
        j,
        r#"{"log":"raw","kubernetes":{"namespace_name":"shop","pod_name":"web-0","container_name":"side","labels":{"app":"web"}},"n":-5,"f":null,"t":1.000000002}"#
    );
    serde_json::from_str::<serde_json::Value>(&j).expect("valid JSON");
}

#[test]
fn a_split_frame_is_incomplete_until_its_last_byte() {
    let frame = enc(&arr(vec![
        s("t"),
        M::Bin(packed_entries(20), 3),
        map(vec![("chunk", s("Y2h1bmsx"))]),
    ]));
    let mut framer = Framer::new(1 << 20);
    for end in 0..frame.len() {
        assert_eq!(frame_len(&frame[..end], 1 << 20), Ok(None), "prefix {end}");
        assert_eq!(framer.next_len(&frame[..end]), Ok(None), "prefix {end}");
    }
    let mut two = frame.clone();
    two.extend_from_slice(&[0xc0]);
    assert_eq!(framer.next_len(&two), Ok(Some(frame.len())));
    framer.reset();
    assert_eq!(framer.next_len(&two[frame.len()..]), Ok(Some(1)));
}

#[test]
fn oversized_frames_are_refused_as_soon_as_known() {
    // bin32 declaring 1 GiB: refused from its 5-byte header.
    let head = [0x93, 0xa1, b't', 0xc6, 0x40, 0x00, 0x00, 0x00];
    let e = frame_len(&head, 16 << 20).expect_err("declared past the limit");
    assert_eq!(e.reason(), "frame_too_large");
    // An array declaring more elements than the limit has bytes.
    assert_eq!(
        frame_len(&[0xdd, 0x01, 0, 0, 0], 1000).map_err(|e| e.reason()),
        Err("frame_too_large")
    );
    // Incomplete and already past the limit (many small values).
    let mut many = vec![0xdc, 0xff, 0xff];
    many.extend_from_slice(&[0x01; 2000]);
    assert_eq!(
        frame_len(&many, 1000).map_err(|e| e.reason()),
        Err("frame_too_large")
    );
    // A complete frame over the limit given to decode.
    let frame = enc(&arr(vec![s("t"), M::Bin(packed_entries(50), 0)]));
    let small = Limits {
        max_frame_bytes: 100,
        ..limits()
    };
    assert_eq!(
        frame_len(&frame, 100).map_err(|e| e.reason()),
        Err("frame_too_large")
    );
    assert_eq!(decode_err(&frame, &small).reason(), "frame_too_large");
}

/// `members` concatenated copies of one compressed MiB of zeros.
fn bomb(compress: impl Fn(&[u8]) -> Vec<u8>, members: usize) -> Vec<u8> {
    compress(&vec![0u8; 1 << 20]).repeat(members)
}

#[test]
fn decompression_bombs_stop_at_the_limit_with_bounded_memory() {
    let limit = 8 << 20;
    let lim = Limits {
        max_decompressed_bytes: limit,
        ..limits()
    };
    let zstd1 = |d: &[u8]| zstd::encode_all(d, 3).expect("zstd compress");
    // 1 GiB of zeros each, as 1024 gzip members / 1024 zstd frames.
    for (name, payload) in [("gzip", bomb(gzip, 1024)), ("zstd", bomb(zstd1, 1024))] {
        let frame = enc(&arr(vec![
            s("t"),
            M::Bin(payload, 0),
            map(vec![("compressed", s(name))]),
        ]));
        let mut scratch = Vec::new();
        let started = Instant::now();
        let err = decode(&frame, &lim, &mut scratch).expect_err("a bomb is refused");
        assert_eq!(err.reason(), "decompressed_too_large", "{name}: {err}");
        assert!(
            scratch.capacity() <= limit + (64 << 10) + 1,
            "{name}: scratch grew to {}",
            scratch.capacity()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn corrupt_or_unknown_compression_is_refused() {
    let frame = enc(&arr(vec![
        s("t"),
        M::Bin(b"not gzip at all".to_vec(), 0),
        map(vec![("compressed", s("gzip"))]),
    ]));
    assert_eq!(decode_err(&frame, &limits()).reason(), "bad_compression");
    let frame = enc(&arr(vec![
        s("t"),
        M::Bin(packed_entries(1), 0),
        map(vec![("compressed", s("lz4"))]),
    ]));
    let e = decode_err(&frame, &limits());
    assert_eq!(e.reason(), "bad_compression");
    assert!(e.to_string().contains("lz4"), "{e}");
}

#[test]
fn wrong_shapes_are_refused_by_field() {
    let rec = || map(vec![("log", s("x"))]);
    let cases: Vec<(M, &str)> = vec![
        (M::Int(5), "request"),
        (arr(vec![s("t")]), "request"),
        (arr(vec![M::Int(1), M::Int(1), rec()]), "tag"),
        (
            arr(vec![s("t"), M::Int(1), s("not a map")]),
            "message record",
        ),
        (arr(vec![s("t"), M::Bin(vec![], 0), M::Int(3)]), "option"),
        (arr(vec![s("t"), M::Bool(true), rec()]), "message time"),
        (arr(vec![s("t"), arr(vec![M::Int(1)])]), "entry"),
        (
            arr(vec![s("t"), arr(vec![arr(vec![s("x"), rec()])])]),
            "entry time",
        ),
        (
            arr(vec![s("t"), arr(vec![arr(vec![M::Int(1), M::Nil])])]),
            "record",
        ),
        (arr(vec![s("t"), M::Int(1), rec(), M::Int(3)]), "option"),
        (
            arr(vec![s("t"), M::Int(1), rec(), map(vec![]), M::Nil]),
            "request",
        ),
        (
            arr(vec![
                s("t"),
                arr(vec![]),
                map(vec![("compressed", s("gzip"))]),
            ]),
            "option compressed",
        ),
        (
            arr(vec![
                s("t"),
                M::Int(1),
                rec(),
                map(vec![("chunk", M::Int(1))]),
            ]),
            "option chunk",
        ),
        (
            arr(vec![s("t"), event_time(1, 1_000_000_000), rec()]),
            "message time",
        ),
        (
            arr(vec![s("t"), M::Ext(0, vec![0; 4], 0), rec()]),
            "message time",
        ),
    ];
    for (m, field) in cases {
        match decode_err(&enc(&m), &limits()) {
            DecodeError::WrongType { field: f, .. } => assert_eq!(f, field, "{m:?}"),
            other => panic!("{m:?}: expected wrong_type on {field}, got {other}"),
        }
    }
    // A bad entry anywhere refuses the whole PackedForward request.
    let mut payload = packed_entries(3);
    payload.extend_from_slice(&enc(&arr(vec![M::Int(1), M::Int(2)])));
    let frame = enc(&arr(vec![s("t"), M::Bin(payload, 0)]));
    assert_eq!(decode_err(&frame, &limits()).reason(), "wrong_type");
}

#[test]
fn truncated_and_trailing_bytes_are_undecodable() {
    let frame = enc(&arr(vec![s("t"), M::Int(1), map(vec![("log", s("abc"))])]));
    for end in 0..frame.len() {
        assert_eq!(
            decode_err(&frame[..end], &limits()).reason(),
            "undecodable",
            "{end}"
        );
    }
    let mut extra = frame.clone();
    extra.push(0xc0);
    assert_eq!(decode_err(&extra, &limits()).reason(), "undecodable");
    // A PackedForward payload whose last entry is cut.
    let payload = packed_entries(2);
    let frame = enc(&arr(vec![
        s("t"),
        M::Bin(payload[..payload.len() - 1].to_vec(), 0),
    ]));
    assert_eq!(decode_err(&frame, &limits()).reason(), "undecodable");
    // 0xc1 is never used.
    assert_eq!(
        frame_len(&[0x92, 0xc1], 100).map_err(|e| e.reason()),
        Err("undecodable")
    );
}

#[test]
fn too_many_entries_is_refused_in_every_mode() {
    let few = Limits {
        max_entries: 2,
        ..limits()
    };
    let packed = enc(&arr(vec![s("t"), M::Bin(packed_entries(3), 0)]));
    assert_eq!(decode_err(&packed, &few).reason(), "too_many_entries");
    let entry = || arr(vec![M::Int(1), map(vec![])]);
    let forward = enc(&arr(vec![s("t"), arr(vec![entry(), entry(), entry()])]));
    assert_eq!(decode_err(&forward, &few).reason(), "too_many_entries");
    let exactly = enc(&arr(vec![s("t"), M::Bin(packed_entries(2), 0)]));
    assert_eq!(events_with(&exactly, &few), 2);
}

/// The entries (time, record JSON) or the refusal reason, by `decode` then `iter`, and by
/// `decode_streamed` then `checked_entries`.
fn both_ways(frame: &[u8], lim: &Limits) -> [Result<Vec<(i64, String)>, &'static str>; 2] {
    let mut scratch = Vec::new();
    let checked_first = match decode(frame, lim, &mut scratch) {
        Ok(Request::Events(ev)) => Ok(ev.iter().map(|e| (e.time_ns, json(&e))).collect()),
        Ok(Request::Heartbeat) => Ok(Vec::new()),
        Err(e) => Err(e.reason()),
    };
    let mut scratch = Vec::new();
    let streamed = match decode_streamed(frame, lim, &mut scratch) {
        Ok(Request::Events(ev)) => ev
            .checked_entries()
            .map(|e| e.map(|e| (e.time_ns, json(&e))).map_err(|e| e.reason()))
            .collect(),
        Ok(Request::Heartbeat) => Ok(Vec::new()),
        Err(e) => Err(e.reason()),
    };
    [checked_first, streamed]
}

#[test]
fn entries_checked_as_they_are_read_match_entries_checked_first() {
    let few = Limits {
        max_entries: 2,
        ..limits()
    };
    let mut bad_entry = packed_entries(3);
    bad_entry.extend_from_slice(&enc(&arr(vec![M::Int(1), M::Int(2)])));
    let cut = packed_entries(2);
    let cut = cut[..cut.len() - 1].to_vec();
    let mut not_array = packed_entries(1);
    not_array.extend_from_slice(&enc(&s("x")));
    let entry = || arr(vec![M::Int(1), map(vec![("log", s("a"))])]);
    let frames = [
        enc(&arr(vec![s("t"), M::Bin(packed_entries(3), 0)])),
        enc(&arr(vec![s("t"), M::Str(packed_entries(2), 2)])),
        enc(&arr(vec![s("t"), M::Bin(Vec::new(), 0)])),
        enc(&arr(vec![
            s("t"),
            M::Bin(gzip(&packed_entries(4)), 0),
            map(vec![("compressed", s("gzip"))]),
        ])),
        enc(&arr(vec![s("t"), M::Bin(bad_entry, 0)])),
        enc(&arr(vec![s("t"), M::Bin(cut, 0)])),
        enc(&arr(vec![s("t"), M::Bin(not_array, 0)])),
        enc(&arr(vec![s("t"), arr(vec![entry(), entry()])])),
        enc(&arr(vec![s("t"), M::Int(1), map(vec![("log", s("abc"))])])),
        enc(&arr(vec![s("t"), M::Int(1)])),
        enc(&M::Nil),
    ];
    for (i, frame) in frames.iter().enumerate() {
        for lim in [limits(), few] {
            let [first, streamed] = both_ways(frame, &lim);
            assert_eq!(
                first, streamed,
                "frame {i}, {} entries at most",
                lim.max_entries
            );
        }
    }
    // The limit is reached exactly: allowed, as by `decode`.
    let exactly = enc(&arr(vec![s("t"), M::Bin(packed_entries(2), 0)]));
    assert_eq!(both_ways(&exactly, &few)[1].as_ref().map(Vec::len), Ok(2));
    assert_eq!(
        both_ways(&enc(&arr(vec![s("t"), M::Bin(packed_entries(3), 0)])), &few)[1],
        Err("too_many_entries")
    );
}

fn events_with(frame: &[u8], lim: &Limits) -> usize {
    let mut scratch = Vec::new();
    match decode(frame, lim, &mut scratch) {
        Ok(Request::Events(ev)) => ev.len(),
        other => panic!("expected events, got {other:?}"),
    }
}

#[test]
fn ack_is_a_map_of_the_chunk_and_udp_heartbeats_get_one_zero_byte() {
    assert_eq!(
        encode_ack(b"Y2h1bmsx"),
        [&[0x81, 0xa3][..], b"ack", &[0xa8], b"Y2h1bmsx"].concat()
    );
    assert_eq!(udp_heartbeat_reply(&[0x00]), &[0x00]);
}

fn sha512_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn ping(salt: M, hostname: &str, digest: &str, user: &str, pass_digest: &str) -> Vec<u8> {
    enc(&arr(vec![
        s("PING"),
        s(hostname),
        salt,
        s(digest),
        s(user),
        s(pass_digest),
    ]))
}

/// Reads `["PONG", ok, reason, hostname, digest]` as the server wrote it.
fn next_str(p: &[u8], at: &mut usize) -> Vec<u8> {
    let (n, h) = match p[*at] {
        b @ 0xa0..=0xbf => (usize::from(b & 0x1f), 1),
        0xd9 => (usize::from(p[*at + 1]), 2),
        0xda => (usize::from(u16::from_be_bytes([p[*at + 1], p[*at + 2]])), 3),
        other => panic!("unexpected header {other:x}"),
    };
    let v = p[*at + h..*at + h + n].to_vec();
    *at += h + n;
    v
}

fn parse_pong(p: &[u8]) -> (bool, Vec<u8>, Vec<u8>, Vec<u8>) {
    assert_eq!(p[0], 0x95, "PONG is a 5-array: {p:x?}");
    let mut at = 1;
    assert_eq!(next_str(p, &mut at), b"PONG");
    let ok = match p[at] {
        0xc3 => true,
        0xc2 => false,
        other => panic!("not a bool: {other:x}"),
    };
    at += 1;
    let reason = next_str(p, &mut at);
    let host = next_str(p, &mut at);
    let digest = next_str(p, &mut at);
    assert_eq!(at, p.len(), "nothing after the PONG");
    (ok, reason, host, digest)
}

#[test]
fn handshake_follows_the_spec_digests_with_str_or_bin_salt() {
    let auth = ServerAuth {
        self_hostname: b"node-1".to_vec(),
        shared_key: b"secret".to_vec(),
        users: vec![],
    };
    let nonce = [7u8; 16];
    let hs = Handshake::with_nonce(&auth, nonce, [9u8; 16]);
    // HELO: ["HELO", {"nonce": bin16, "auth": "", "keepalive": true}]
    let helo: Vec<u8> = [
        &[0x92, 0xa4][..],
        b"HELO",
        &[0x83, 0xa5],
        b"nonce",
        &[0xc4, 16],
        &nonce,
        &[0xa4],
        b"auth",
        &[0xa0, 0xa9],
        b"keepalive",
        &[0xc3],
    ]
    .concat();
    assert_eq!(hs.helo(), helo);
    let salt = b"0123456789abcdef";
    let digest = sha512_hex(&[salt, b"client-a", &nonce, b"secret"]);
    for salt_value in [M::Str(salt.to_vec(), 0), M::Bin(salt.to_vec(), 0)] {
        let pong = hs
            .check_ping(&ping(salt_value, "client-a", &digest, "", ""))
            .expect("PING accepted");
        let (ok, reason, host, server_digest) = parse_pong(&pong);
        assert!(ok);
        assert_eq!(reason, b"");
        assert_eq!(host, b"node-1");
        let want = sha512_hex(&[salt, b"node-1", &nonce, b"secret"]);
        assert_eq!(String::from_utf8(server_digest).expect("hex"), want);
    }
    assert_eq!(
        hex_sha512(&[&b"a"[..], &b"bc"[..]]),
        sha512_hex(&[b"abc"]).into_bytes()
    );
}

#[test]
fn handshake_refuses_a_wrong_key_a_wrong_password_and_a_non_ping() {
    let auth = ServerAuth {
        self_hostname: b"node-1".to_vec(),
        shared_key: b"secret".to_vec(),
        users: vec![User {
            username: b"alice".to_vec(),
            password: b"pw".to_vec(),
        }],
    };
    let (nonce, user_salt) = ([1u8; 16], [2u8; 16]);
    let hs = Handshake::with_nonce(&auth, nonce, user_salt);
    // With users, HELO carries the auth salt as bin.
    let helo = hs.helo();
    let auth_at = helo
        .windows(5)
        .position(|w| w == [0xa4, b'a', b'u', b't', b'h'])
        .expect("auth key");
    assert_eq!(&helo[auth_at + 5..auth_at + 7], &[0xc4, 16]);
    assert_eq!(&helo[auth_at + 7..auth_at + 23], &user_salt);

    let salt = M::Str(b"s".to_vec(), 0);
    let key_ok = sha512_hex(&[b"s", b"c", &nonce, b"secret"]);
    let key_bad = sha512_hex(&[b"s", b"c", &nonce, b"wrong"]);
    let pass_ok = sha512_hex(&[&user_salt, b"alice", b"pw"]);
    let pass_bad = sha512_hex(&[&user_salt, b"alice", b"nope"]);

    assert!(hs
        .check_ping(&ping(salt.clone(), "c", &key_ok, "alice", &pass_ok))
        .is_ok());
    for (frame, why) in [
        (
            ping(salt.clone(), "c", &key_bad, "alice", &pass_ok),
            "shared_key mismatch",
        ),
        (
            ping(salt.clone(), "c", &key_ok, "alice", &pass_bad),
            "username/password mismatch",
        ),
        (
            ping(salt.clone(), "c", &key_ok, "bob", &pass_ok),
            "username/password mismatch",
        ),
    ] {
        let r = hs.check_ping(&frame).expect_err("refused");
        assert_eq!(r.reason, "auth_failed");
        let (ok, reason, host, digest) = parse_pong(&r.pong);
        assert!(!ok);
        assert_eq!(reason, why.as_bytes());
        assert!(host.is_empty() && digest.is_empty());
    }
    let r = hs.check_ping(&[0xc0]).expect_err("nil is not a PING");
    assert_eq!(r.reason, "handshake_invalid");
    let fresh = Handshake::new(&auth).expect("urandom");
    let other = Handshake::new(&auth).expect("urandom");
    assert_ne!(fresh.nonce(), other.nonce());
}

/// Random values of bounded depth for the round-trip property.
fn any_value() -> impl Strategy<Value = M> {
    let leaf = prop_oneof![
        Just(M::Nil),
        any::<bool>().prop_map(M::Bool),
        any::<i64>().prop_map(M::Int),
        any::<f64>().prop_map(M::F64),
        (proptest::collection::vec(any::<u8>(), 0..300), 0u8..4).prop_map(|(b, w)| M::Str(b, w)),
        (proptest::collection::vec(any::<u8>(), 0..40), 0u8..4).prop_map(|(b, w)| M::Bin(b, w)),
        (
            any::<i8>(),
            proptest::collection::vec(any::<u8>(), 0..20),
            0u8..4
        )
            .prop_map(|(t, d, w)| M::Ext(t, d, w)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            (proptest::collection::vec(inner.clone(), 0..6), 0u8..4)
                .prop_map(|(v, w)| M::Arr(v, w)),
            (
                proptest::collection::vec((inner.clone(), inner), 0..6),
                0u8..4
            )
                .prop_map(|(v, w)| M::Map(v, w)),
        ]
    })
}

fn any_record() -> impl Strategy<Value = M> {
    (
        proptest::collection::vec(("[a-z]{1,8}", any_value()), 0..6),
        0u8..4,
    )
        .prop_map(|(kv, w)| M::Map(kv.into_iter().map(|(k, v)| (s(&k), v)).collect(), w))
}

fn any_entry() -> impl Strategy<Value = (u32, u32, M)> {
    (any::<u32>(), 0u32..1_000_000_000, any_record())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let lim = Limits { max_frame_bytes: 256, max_decompressed_bytes: 4096, max_entries: 64 };
        let _ = frame_len(&bytes, 256);
        let mut scratch = Vec::new();
        if let Ok(Request::Events(ev)) = decode(&bytes, &lim, &mut scratch) {
            for e in ev.iter() {
                let mut out = Vec::new();
                e.record.write_compact_json(&mut out);
                prop_assert!(std::str::from_utf8(&out).is_ok());
            }
        }
        // A framer fed a prefix, then the whole, agrees with one call on the whole.
        let split = bytes.len() / 2;
        let mut framer = Framer::new(256);
        let whole = frame_len(&bytes, 256);
        match framer.next_len(&bytes[..split]) {
            Ok(None) => prop_assert_eq!(framer.next_len(&bytes), whole),
            Ok(Some(n)) => prop_assert_eq!(whole, Ok(Some(n))),
            Err(_) => prop_assert!(whole.is_err()),
        }
        let auth = ServerAuth { self_hostname: vec![], shared_key: vec![], users: vec![] };
        let _ = Handshake::with_nonce(&auth, [0; 16], [0; 16]).check_ping(&bytes);
    }

    #[test]
    fn random_valid_requests_frame_and_decode_consistently(
        entries in proptest::collection::vec(any_entry(), 0..8),
        mode in 0u8..4,
        chunk in proptest::option::of("[A-Za-z0-9]{1,24}"),
    ) {
        let entry = |(sec, ns, rec): &(u32, u32, M)| arr(vec![event_time(*sec, *ns), rec.clone()]);
        let mut opts = vec![];
        if let Some(c) = &chunk { opts.push(("chunk", s(c))); }
        let tag = s("kube.a.b.c");
        let req = match mode {
            0 => arr(vec![tag, arr(entries.iter().map(entry).collect()), map(opts)]),
            1 => arr(vec![tag, M::Bin(entries.iter().flat_map(|e| enc(&entry(e))).collect(), 2), map(opts)]),
            2 => arr(vec![tag, M::Str(entries.iter().flat_map(|e| enc(&entry(e))).collect(), 3), map(opts)]),
            _ => {
                opts.push(("compressed", s("gzip")));
                let raw: Vec<u8> = entries.iter().flat_map(|e| enc(&entry(e))).collect();
                arr(vec![tag, M::Bin(gzip(&raw), 3), map(opts)])
            }
        };
        let frame = enc(&req);
        let mut stream = frame.clone();
        stream.extend_from_slice(&frame);
        prop_assert_eq!(frame_len(&stream, 1 << 20), Ok(Some(frame.len())));
        // Arriving in pieces, the frame is found once its last byte is in.
        let mut framer = Framer::new(1 << 20);
        for cut in [frame.len() / 3, frame.len() / 2, frame.len() - 1] {
            prop_assert_eq!(framer.next_len(&stream[..cut]), Ok(None));
        }
        prop_assert_eq!(framer.next_len(&stream), Ok(Some(frame.len())));
        let mut scratch = Vec::new();
        let Ok(Request::Events(ev)) = decode(&frame, &limits(), &mut scratch) else {
            return Err(TestCaseError::fail("valid request refused"));
        };
        prop_assert_eq!(ev.len(), entries.len());
        prop_assert_eq!(ev.options().chunk, chunk.as_deref().map(str::as_bytes));
        for (got, (sec, ns, rec)) in ev.iter().zip(&entries) {
            prop_assert_eq!(got.time_ns, i64::from(*sec) * 1_000_000_000 + i64::from(*ns));
            let M::Map(pairs, _) = rec else { unreachable!() };
            prop_assert_eq!(got.record.len(), pairs.len());
            for ((k, v), (want_k, want_v)) in got.record.iter().zip(pairs) {
                prop_assert_eq!(same(&k, want_k), true);
                prop_assert_eq!(same(&v, want_v), true, "{:?} vs {:?}", v, want_v);
            }
        }
    }
}

/// Whether the codec's value is the one this file encoded.
fn same(got: &Value<'_>, want: &M) -> bool {
    match (got, want) {
        (Value::Nil, M::Nil) => true,
        (Value::Bool(a), M::Bool(b)) => a == b,
        (Value::Int(a), M::Int(b)) => a == b,
        (Value::F64(a), M::F64(b)) => a.to_bits() == b.to_bits(),
        (Value::Str(a), M::Str(b, _)) | (Value::Bin(a), M::Bin(b, _)) => a == &b.as_slice(),
        (Value::Ext(t, d), M::Ext(u, e, _)) => t == u && d == &e.as_slice(),
        (Value::Array(a), M::Arr(items, _)) => {
            a.len() == items.len() && a.iter().zip(items).all(|(x, y)| same(&x, y))
        }
        (Value::Map(m), M::Map(pairs, _)) => {
            m.len() == pairs.len()
                && m.iter()
                    .zip(pairs)
                    .all(|((k, v), (wk, wv))| same(&k, wk) && same(&v, wv))
        }
        _ => false,
    }
}
