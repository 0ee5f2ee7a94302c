//! The Fluent forward decoder (`agent/src/inputs/forward/codec.rs`, `msgpack.rs`, `inflate.rs`).
//!
//! The first byte chooses how the rest (a byte stream as a client sends it) is cut into reads.
//! Asserts, for any bytes:
//! - framing a stream read by read (the server's `Framer`) finds the same frames, and ends in
//!   the same state (done, incomplete tail, or the same error), as framing it in one piece;
//!   no frame is longer than the frame limit;
//! - a frame that decodes agrees with an independent MessagePack reader (`rmpv`): the same
//!   one value over the whole frame, the tag, the number of entries of each carrier mode, each
//!   entry's record field by field and its EventTime or integer time (gzip and zstd payloads are
//!   inflated independently with `flate2` and `zstd` for that comparison);
//! - iterating the entries twice gives the same entries; every record's compact JSON parses as
//!   a JSON object with one key per field;
//! - a declared length (array, map, str, bin, ext, compressed size) past the bytes or the limits
//!   is an error, never an allocation of that size: `fuzz/run.sh` runs this target with
//!   `-malloc_limit_mb=256`.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use runnel_agent::inputs::forward::codec::{
    decode, frame_len, Compression, Entry, Framer, Limits, Mode, Record, Request, Value,
};

const LIMITS: Limits = Limits {
    max_frame_bytes: 1 << 16,
    max_decompressed_bytes: 1 << 20,
    max_entries: 10_000,
};

#[derive(Debug, PartialEq)]
enum End {
    Done,
    Incomplete(usize),
    Error(&'static str),
}

fn frames_whole(stream: &[u8]) -> (Vec<&[u8]>, End) {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        if rest.is_empty() {
            return (frames, End::Done);
        }
        match frame_len(rest, LIMITS.max_frame_bytes) {
            Ok(Some(n)) => {
                assert!(n > 0 && n <= rest.len(), "frame of {n} in {}", rest.len());
                frames.push(&rest[..n]);
                rest = &rest[n..];
            }
            Ok(None) => return (frames, End::Incomplete(rest.len())),
            Err(e) => return (frames, End::Error(e.reason())),
        }
    }
}

/// As a connection does it: a buffer that grows by one read, frames taken off its front.
fn frames_by_reads(stream: &[u8], read_len: usize) -> (Vec<Vec<u8>>, End) {
    let mut framer = Framer::new(LIMITS.max_frame_bytes);
    let mut frames = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    for read in stream.chunks(read_len) {
        buf.extend_from_slice(read);
        loop {
            match framer.next_len(&buf) {
                Ok(Some(n)) => {
                    frames.push(buf.drain(..n).collect());
                    framer.reset();
                    if buf.is_empty() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return (frames, End::Error(e.reason())),
            }
        }
    }
    let end = if buf.is_empty() {
        End::Done
    } else {
        End::Incomplete(buf.len())
    };
    (frames, end)
}

fn key_bytes(v: &rmpv::Value) -> Option<&[u8]> {
    match v {
        rmpv::Value::String(s) => Some(s.as_bytes()),
        rmpv::Value::Binary(b) => Some(b),
        _ => None,
    }
}

/// Our lazy value and rmpv's tree describe the same MessagePack value.
fn same_value(ours: Value<'_>, theirs: &rmpv::Value) -> bool {
    use rmpv::Value as R;
    match (ours, theirs) {
        (Value::Nil, R::Nil) => true,
        (Value::Bool(a), R::Boolean(b)) => a == *b,
        (Value::Int(a), R::Integer(b)) => b.as_i64() == Some(a),
        (Value::UInt(a), R::Integer(b)) => a > i64::MAX as u64 && b.as_u64() == Some(a),
        (Value::F32(a), R::F32(b)) => a.to_bits() == b.to_bits(),
        (Value::F64(a), R::F64(b)) => a.to_bits() == b.to_bits(),
        (Value::Str(a), R::String(b)) => a == b.as_bytes(),
        (Value::Bin(a), R::Binary(b)) => a == b.as_slice(),
        (Value::Ext(t, d), R::Ext(u, e)) => t == *u && d == e.as_slice(),
        (Value::Array(a), R::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        (Value::Map(a), R::Map(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((k, v), (l, w))| same_value(k, l) && same_value(v, w))
        }
        _ => false,
    }
}

fn same_record(r: &Record<'_>, theirs: &rmpv::Value) -> bool {
    let rmpv::Value::Map(pairs) = theirs else {
        return false;
    };
    r.len() == pairs.len()
        && r.iter()
            .zip(pairs)
            .all(|((k, v), (l, w))| same_value(k, l) && same_value(v, w))
}

/// The time the spec gives an EventTime or integer-seconds entry; `None` for the other forms
/// (floats, msgpack timestamps), which are only checked not to panic.
fn spec_time_ns(t: &rmpv::Value) -> Option<i64> {
    match t {
        rmpv::Value::Ext(0, d) if d.len() == 8 => {
            let s = i64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
            let ns = i64::from(u32::from_be_bytes([d[4], d[5], d[6], d[7]]));
            (ns < 1_000_000_000).then(|| s * 1_000_000_000 + ns)
        }
        rmpv::Value::Integer(i) => i.as_i64().and_then(|s| s.checked_mul(1_000_000_000)),
        _ => None,
    }
}

/// One `[time, record]` or `[[time, metadata], record]` entry as rmpv reads it.
fn check_entry(ours: &Entry<'_>, theirs: &rmpv::Value) {
    let rmpv::Value::Array(pair) = theirs else {
        panic!("entry accepted but not an array: {theirs:?}");
    };
    assert_eq!(pair.len(), 2, "entry arity");
    let time = match &pair[0] {
        rmpv::Value::Array(tm) => {
            assert_eq!(tm.len(), 2, "[time, metadata] arity");
            match (&ours.metadata, &tm[1]) {
                (None, rmpv::Value::Nil) => {}
                (Some(m), w) => assert!(same_record(m, w), "metadata differs: {w:?}"),
                (None, w) => panic!("metadata {w:?} lost"),
            }
            &tm[0]
        }
        t => {
            assert!(ours.metadata.is_none());
            t
        }
    };
    if let Some(ns) = spec_time_ns(time) {
        assert_eq!(ours.time_ns, ns, "time of {time:?}");
    }
    assert!(same_record(&ours.record, &pair[1]), "record differs: {:?}", pair[1]);
    let mut json = Vec::new();
    ours.record.write_compact_json(&mut json);
    let parsed: serde_json::Value = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("compact JSON {:?}: {e}", String::from_utf8_lossy(&json)));
    assert!(parsed.is_object(), "compact JSON is not an object");
}

/// Concatenated msgpack values, as rmpv reads them one after the other.
fn read_all(mut bytes: &[u8]) -> Vec<rmpv::Value> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let v = rmpv::decode::read_value_with_max_depth(&mut bytes, 1024)
            .unwrap_or_else(|e| panic!("accepted packed entries that rmpv cannot read: {e}"));
        out.push(v);
    }
    out
}

fn inflate_independently(payload: &[u8], c: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    let limit = LIMITS.max_decompressed_bytes as u64 + 1;
    let r = match c {
        Compression::Gzip => flate2::read::MultiGzDecoder::new(payload)
            .take(limit)
            .read_to_end(&mut out),
        Compression::Zstd => match zstd::stream::read::Decoder::new(payload) {
            Ok(d) => d.take(limit).read_to_end(&mut out),
            Err(e) => Err(e),
        },
    };
    r.unwrap_or_else(|e| panic!("accepted a {c:?} payload that does not inflate: {e}"));
    out
}

fn check_frame(frame: &[u8]) {
    let mut scratch = Vec::new();
    let decoded = decode(frame, &LIMITS, &mut scratch);
    let events = match decoded {
        Ok(Request::Heartbeat) => {
            assert_eq!(frame, [0xc0], "only nil is a heartbeat");
            return;
        }
        Ok(Request::Events(ev)) => ev,
        Err(e) => {
            assert!(!e.reason().is_empty());
            let _ = e.to_string();
            return;
        }
    };
    let mut rest = frame;
    let top = rmpv::decode::read_value_with_max_depth(&mut rest, 1024)
        .unwrap_or_else(|e| panic!("accepted a frame rmpv cannot read: {e}"));
    assert!(rest.is_empty(), "accepted a frame with {} trailing bytes", rest.len());
    let rmpv::Value::Array(items) = &top else {
        panic!("accepted events that are not an array: {top:?}");
    };
    assert!((2..=4).contains(&items.len()), "request arity {}", items.len());
    assert_eq!(Some(events.tag()), key_bytes(&items[0]), "tag");

    let first: Vec<Entry<'_>> = events.iter().collect();
    let again: Vec<Entry<'_>> = events.iter().collect();
    assert_eq!(first.len(), events.len(), "entry count");
    assert_eq!(first.len(), again.len());
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.time_ns, b.time_ns);
        assert_eq!(a.record, b.record);
    }

    let theirs: Vec<rmpv::Value> = match events.mode() {
        Mode::Message => {
            let pair = rmpv::Value::Array(vec![items[1].clone(), items[2].clone()]);
            vec![pair]
        }
        Mode::Forward => match &items[1] {
            rmpv::Value::Array(list) => list.clone(),
            other => panic!("Forward mode over {other:?}"),
        },
        Mode::PackedForward => read_all(key_bytes(&items[1]).expect("packed bytes")),
        Mode::CompressedPackedForward(c) => {
            let payload = key_bytes(&items[1]).expect("packed bytes");
            let inflated = inflate_independently(payload, c);
            assert!(inflated.len() <= LIMITS.max_decompressed_bytes);
            read_all(&inflated)
        }
    };
    assert_eq!(first.len(), theirs.len(), "entries by rmpv");
    for (ours, theirs) in first.iter().zip(&theirs) {
        check_entry(ours, theirs);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let read_len = usize::from(ctl % 64) + 1;
    let (whole, whole_end) = frames_whole(stream);
    let (by_reads, reads_end) = frames_by_reads(stream, read_len);
    assert_eq!(whole_end, reads_end, "reads of {read_len} end differently");
    assert_eq!(whole.len(), by_reads.len(), "reads of {read_len} frame differently");
    for (a, b) in whole.iter().zip(&by_reads) {
        assert_eq!(*a, b.as_slice());
        assert!(a.len() <= LIMITS.max_frame_bytes);
    }
    for f in whole {
        check_frame(f);
    }
});
