//! Compact JSON for records that have no message key (stored whole so no field is lost).
//!
//! Mapping: str/bin → string (invalid UTF-8 replaced by U+FFFD); int/float → number; NaN
//! and ±inf → `null`; non-string map keys → the string of their JSON (a non-string key inside
//! such a key → the string of its type, e.g. `"<map>"`: each level of key would escape the one
//! inside it again, and a few hundred bytes nested that way would ask for gigabytes); EventTime (ext 0, 8
//! bytes) and msgpack timestamps (ext −1) → seconds as a number with 9 decimals; other ext →
//! `{"ext_type":N,"hex":"…"}`. Nesting is bounded by the msgpack reader's `MAX_DEPTH`.

use std::io::Write;

use super::msgpack::{container_head, read, skip, MapRef, Value};

/// Appends `map` as a JSON object.
pub(super) fn write_map(map: MapRef<'_>, out: &mut Vec<u8>) {
    write_items(map.body(), map.len() as u64, true, false, out);
}

/// Appends one value as JSON.
pub(super) fn write_value(v: Value<'_>, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        // Writing to a Vec cannot fail.
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::F32(f) => write_float(f64::from(f), out),
        Value::F64(f) => write_float(f, out),
        Value::Str(s) | Value::Bin(s) => write_str(s, out),
        Value::Array(a) => {
            write_items(a.body(), a.len() as u64, false, false, out);
        }
        Value::Map(m) => write_map(m, out),
        Value::Ext(ty, d) => write_ext(ty, d, out),
    }
}

fn rest(buf: &[u8], at: usize) -> &[u8] {
    buf.get(at..).unwrap_or_default()
}

/// Streams `count` values (pairs when `is_map`) encoded at the start of `body` as one JSON
/// array or object, in a single pass over the bytes however deep they nest (walking them
/// through lazy views would rescan each level). `in_key`: these items are part of a map key.
/// Returns the bytes consumed.
fn write_items(body: &[u8], count: u64, is_map: bool, in_key: bool, out: &mut Vec<u8>) -> usize {
    out.push(if is_map { b'{' } else { b'[' });
    let mut at = 0;
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        if is_map {
            at += write_key(rest(body, at), in_key, out);
            out.push(b':');
        }
        at += write_stream(rest(body, at), in_key, out);
    }
    out.push(if is_map { b'}' } else { b']' });
    at
}

/// Writes the value at the start of `buf`; returns its encoded length.
fn write_stream(buf: &[u8], in_key: bool, out: &mut Vec<u8>) -> usize {
    if let Some((hdr, count, is_map)) = container_head(buf) {
        return hdr + write_items(rest(buf, hdr), count, is_map, in_key, out);
    }
    match read(buf) {
        Ok((v, used)) => {
            write_value(v, out);
            used
        }
        // Unreachable: the bytes were checked when the record was decoded.
        Err(_) => buf.len(),
    }
}

/// A key: str/bin as a string; anything else as the string of its JSON.
fn write_key(buf: &[u8], in_key: bool, out: &mut Vec<u8>) -> usize {
    if container_head(buf).is_none() {
        if let Ok((Value::Str(s) | Value::Bin(s), used)) = read(buf) {
            write_str(s, out);
            return used;
        }
    }
    if in_key {
        let name = match read(buf) {
            Ok((v, _)) => v.type_name(),
            Err(_) => "value",
        };
        write_str(format!("<{name}>").as_bytes(), out);
        // Unreachable fallback: the bytes were checked when the record was decoded.
        return skip(buf).unwrap_or(buf.len());
    }
    let mut key = Vec::new();
    let used = write_stream(buf, true, &mut key);
    write_str(&key, out);
    used
}

fn write_float(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        // Rust's shortest round-trip form: "1.5", "100", "0.000001" — all valid JSON.
        let _ = write!(out, "{f}");
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_ext(ty: i8, d: &[u8], out: &mut Vec<u8>) {
    let be32 = |at: usize| {
        d.get(at..at + 4).map_or(0, |b| {
            u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        })
    };
    let time = match (ty, d.len()) {
        (0, 8) => Some((be32(0) as i64, be32(4))),
        (-1, 4) => Some((be32(0) as i64, 0)),
        (-1, 8) => {
            let x = (be32(0) << 32) | be32(4);
            Some(((x & 0x3_ffff_ffff) as i64, x >> 34))
        }
        (-1, 12) => d
            .get(4..12)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(|b| (i64::from_be_bytes(b), be32(0))),
        _ => None,
    };
    match time {
        Some((s, ns)) if ns < 1_000_000_000 => {
            let _ = write!(out, "{s}.{ns:09}");
        }
        _ => {
            let _ = write!(out, "{{\"ext_type\":{ty},\"hex\":\"");
            for b in d {
                let _ = write!(out, "{b:02x}");
            }
            out.extend_from_slice(b"\"}");
        }
    }
}

/// Appends `s` as a JSON string.
pub(super) fn write_str(s: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(s) {
        Ok(text) => escape(text, out),
        Err(_) => escape(&String::from_utf8_lossy(s), out),
    }
}

/// Bytes a JSON string cannot hold as they are: control characters, `"` and `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

fn escape(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(bytes: &[u8]) -> String {
        let (v, _) = read(bytes).unwrap();
        let mut out = Vec::new();
        write_value(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn map_keeps_key_order_and_maps_each_type() {
        // {"z": nil, "a": [true, -1, 1.5], 7: bin "\xff", "s": "q\"\n\u{1}"}
        let mut b = vec![0x84, 0xa1, b'z', 0xc0, 0xa1, b'a', 0x93, 0xc3, 0xff];
        b.extend_from_slice(&[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0x07, 0xc4, 1, 0xff]);
        b.extend_from_slice(&[0xa1, b's', 0xa4, b'q', b'"', b'\n', 0x01]);
        let got = json_of(&b);
        assert_eq!(
            got,
            "{\"z\":null,\"a\":[true,-1,1.5],\"7\":\"\u{fffd}\",\"s\":\"q\\\"\\n\\u0001\"}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(parsed["a"][2], 1.5);
        assert_eq!(parsed["s"], "q\"\n\u{1}");
    }

    #[test]
    fn keys_nested_in_keys_stay_small() {
        // {{{{… {"k": 1}: 1 …}: 1}: 1}: 1}, 30 maps deep, each the key of the next: every
        // level of key used to escape the one inside it again (found by the forward_decode
        // fuzz target: 226 bytes asked for 256 MiB).
        let mut b = vec![0x81; 30];
        b.extend_from_slice(&[0xa1, b'k', 0x01]);
        b.extend(std::iter::repeat_n(0x01, 30));
        let got = json_of(&b);
        assert_eq!(got, r#"{"{\"<map>\":1}":1}"#);
        let parsed: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(parsed[r#"{"<map>":1}"#], 1);
    }

    #[test]
    fn nested_containers_and_container_keys_stream_in_order() {
        // {[1, 2]: {"a": [[[]], {}]}, "b": 3}
        let b = [
            0x82, 0x92, 0x01, 0x02, 0x81, 0xa1, b'a', 0x92, 0x91, 0x90, 0x80, 0xa1, b'b', 0x03,
        ];
        assert_eq!(json_of(&b), r#"{"[1,2]":{"a":[[[]],{}]},"b":3}"#);
        // {"d": [[[... 60 deep ... [7] ...]]], "e": nil}
        let mut deep = vec![0x82, 0xa1, b'd'];
        deep.extend_from_slice(&[0x91; 60]);
        deep.extend_from_slice(&[0x07, 0xa1, b'e', 0xc0]);
        let want = format!(r#"{{"d":{}7{},"e":null}}"#, "[".repeat(60), "]".repeat(60));
        assert_eq!(json_of(&deep), want);
    }

    #[test]
    fn non_finite_floats_are_null_and_exts_are_documented_forms() {
        assert_eq!(json_of(&[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]), "null");
        assert_eq!(json_of(&[0xca, 0x7f, 0x80, 0, 0]), "null");
        let t = [0xd7, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x07];
        assert_eq!(json_of(&t), "1700000000.000000007");
        assert_eq!(
            json_of(&[0xd5, 0x05, 0xab, 0x01]),
            r#"{"ext_type":5,"hex":"ab01"}"#
        );
    }
}
