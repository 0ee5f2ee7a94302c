//! Compact JSON for records that have no message key (stored whole so no field is lost).
//!
//! Mapping: str/bin → string (invalid UTF-8 replaced by U+FFFD); int/float → number; NaN
//! and ±inf → `null`; non-string map keys → the string of their JSON; EventTime (ext 0, 8
//! bytes) and msgpack timestamps (ext −1) → seconds as a number with 9 decimals; other ext →
//! `{"ext_type":N,"hex":"…"}`. Nesting is bounded by the msgpack reader's `MAX_DEPTH`.

use std::io::Write;

use super::msgpack::{MapRef, Value};

/// Appends `map` as a JSON object.
pub(super) fn write_map(map: MapRef<'_>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match k.as_bytes() {
            Some(s) => write_str(s, out),
            None => {
                let mut key = Vec::new();
                write_value(k, &mut key);
                write_str(&key, out);
            }
        }
        out.push(b':');
        write_value(v, out);
    }
    out.push(b'}');
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
            out.push(b'[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(e, out);
            }
            out.push(b']');
        }
        Value::Map(m) => write_map(m, out),
        Value::Ext(ty, d) => write_ext(ty, d, out),
    }
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

fn escape(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::super::msgpack::read;
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
            r#"{"z":null,"a":[true,-1,1.5],"7":"\ufffd","s":"q\"\n\u0001"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(parsed["a"][2], 1.5);
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
