//! Encoding records as ECS documents straight into the NDJSON output buffer: no
//! `serde_json::Value` per document, strings escaped by a byte loop, invalid UTF-8 replaced by
//! U+FFFD.
//!
//! A document looks like (nested objects, ECS field names):
//! `{"@timestamp":"2026-01-02T03:04:05.123456789Z","message":"…","stream":"stdout",
//! "log":{"offset":123,"file":{"path":"…"}},"container":{…},"kubernetes":{…},"host":{…},
//! "agent":{"type":"runnel","version":"…"},"event":{"dataset":"runnel.container_logs"}}`.
//! `log.offset` is the byte offset just *after* the line (the index's resume position).
//! Label keys have `.` replaced by `_` so `app` and `app.kubernetes.io/name` cannot collide
//! as object and value in the mapping.

use runnel_index::{FrameView, Position, SourceIdentity};
use xxhash_rust::xxh3::xxh3_128;

/// `event.dataset` of every log document.
pub const EVENT_DATASET: &str = "runnel.container_logs";

/// Whether any of the 8 bytes of `w` needs escaping in a JSON string: a control byte
/// (< 0x20), `"` or `\\`. Exact, by the classic "has a byte less than n" and "has a zero
/// byte" word tricks, so runs of plain text are checked 8 bytes at a time.
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let ctrl = w.wrapping_sub(LO * 0x20) & !w & HI;
    let q = w ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q & HI;
    let b = w ^ (LO * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LO) & !b & HI;
    (ctrl | quote | backslash) != 0
}

/// Append `s` as a JSON string (with quotes) to `out`.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    escape::<false>(out, s.as_bytes());
}

/// The escaping loop: runs of plain bytes are checked 8 at a time and copied in one piece.
/// With `ASCII`, the bytes are not known to be UTF-8: the loop gives up (false, `out` partly
/// written) at the first non-ASCII byte, so the caller can validate and start again.
#[inline(always)]
fn escape<const ASCII: bool>(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    const HI: u64 = 0x8080_8080_8080_8080;
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let w = u64::from_le_bytes(w);
            if !word_needs_escape(w) && (!ASCII || w & HI == 0) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc: &[u8] = match b {
            0x80.. if ASCII => return false,
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
                i += 1;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
    true
}

/// Append raw bytes as a JSON string, replacing invalid UTF-8 with U+FFFD.
pub fn push_json_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // The common message is ASCII: escaped in one pass, without a separate UTF-8 check.
    let at = out.len();
    if escape::<true>(out, b) {
        return;
    }
    out.truncate(at);
    match std::str::from_utf8(b) {
        Ok(s) => push_json_str(out, s),
        Err(_) => push_json_str(out, &String::from_utf8_lossy(b)),
    }
}

/// Append `v` as 32 lowercase hex digits (the `_id` form).
pub fn push_hex128(out: &mut Vec<u8>, v: u128) {
    out.extend_from_slice(&hex16((v >> 64) as u64));
    out.extend_from_slice(&hex16(v as u64));
}

/// `h` as 16 lowercase hex digits, by word arithmetic: the nibbles are spread one per byte,
/// then `'0'` is added to each and `'a' - '0' - 10` more to those of 10 and up.
#[inline]
fn hex16(h: u64) -> [u8; 16] {
    const fn rep(b: u8) -> u128 {
        u128::from_ne_bytes([b; 16])
    }
    let mut x = u128::from(h);
    x = (x | x << 32) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    x = (x | x << 16) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    x = (x | x << 8) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    x = (x | x << 4) & rep(0x0f);
    // Byte k now holds nibble k (from the least significant); 0x06 carries into bit 4
    // exactly for nibbles 10..=15.
    let letters = ((x + rep(0x06)) >> 4) & rep(0x01);
    (x + rep(b'0') + letters * u128::from(b'a' - b'0' - 10)).to_be_bytes()
}

/// Civil date (year, month, day) and (hour, minute, second) of Unix seconds, UTC.
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (sod / 3600) as u32,
        (sod % 3600 / 60) as u32,
        (sod % 60) as u32,
    )
}

thread_local! {
    /// The `YYYY-MM-DDTHH:MM:SS.` of the last second encoded on this thread: records come in
    /// time order, so most documents reuse it and only write their nine fraction digits.
    static LAST_SECOND: std::cell::Cell<(i64, [u8; 20])> = const { std::cell::Cell::new((i64::MIN, [0; 20])) };
}

/// Append the time as RFC 3339 UTC with nine fraction digits: `2026-01-02T03:04:05.000000001Z`.
pub fn push_rfc3339_nanos(out: &mut Vec<u8>, time_ns: i64) {
    use std::io::Write;
    let secs = time_ns.div_euclid(1_000_000_000);
    let nanos = time_ns.rem_euclid(1_000_000_000);
    let fill = |tmp: &mut [u8], v: u64| {
        let mut v = v;
        for d in tmp.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    let (cached, prefix) = LAST_SECOND.get();
    let prefix = if cached == secs {
        prefix
    } else {
        let (y, mo, d, h, mi, s) = civil(secs);
        if !(0..=9999).contains(&y) {
            let _ = write!(
                out,
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{nanos:09}Z"
            );
            return;
        }
        let mut p = *b"0000-00-00T00:00:00.";
        fill(&mut p[0..4], y as u64);
        fill(&mut p[5..7], mo.into());
        fill(&mut p[8..10], d.into());
        fill(&mut p[11..13], h.into());
        fill(&mut p[14..16], mi.into());
        fill(&mut p[17..19], s.into());
        LAST_SECOND.set((secs, p));
        p
    };
    let mut frac = *b"000000000Z";
    fill(&mut frac[..9], nanos as u64);
    out.extend_from_slice(&prefix);
    out.extend_from_slice(&frac);
}

/// The deterministic `_id` of a record: xxh3-128 over the node name, the container id (or the
/// source key) and the record's position — file identity + offset, stream id + sequence, or
/// the index sequence when the record has no position. The same line re-sent after a crash or a
/// retry gets the same `_id`, and `op_type: create` turns the second copy into a 409.
pub fn document_id(node: &str, container: &str, source_key: &str, r: &FrameView<'_>) -> u128 {
    // The hash input is built in a stack buffer and hashed in one call: the same bytes as
    // feeding a streaming hasher piece by piece (xxh3 gives the same digest either way), at
    // a fraction of the cost of setting up the streaming state per document.
    let tail = match r.position {
        Position::File { .. } => 1 + 32,
        Position::Stream { .. } => 1 + source_key.len() + 1 + 16,
        Position::None => 1 + source_key.len() + 1 + 8,
    };
    let len = node.len() + 1 + container.len() + 1 + tail;
    let mut stack = [0u8; 384];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = 0;
    let mut put = |b: &[u8]| {
        buf[at..at + b.len()].copy_from_slice(b);
        at += b.len();
    };
    put(node.as_bytes());
    put(&[0]);
    put(container.as_bytes());
    put(&[0]);
    match r.position {
        Position::File { file, offset } => {
            put(b"F");
            put(&file.dev.to_le_bytes());
            put(&file.ino.to_le_bytes());
            put(&file.fingerprint.to_le_bytes());
            put(&offset.to_le_bytes());
        }
        Position::Stream { stream_id, seq } => {
            put(b"S");
            put(source_key.as_bytes());
            put(&[0]);
            put(&stream_id.to_le_bytes());
            put(&seq.to_le_bytes());
        }
        Position::None => {
            put(b"N");
            put(source_key.as_bytes());
            put(&[0]);
            put(&r.seq.to_le_bytes());
        }
    }
    xxh3_128(buf)
}

/// Append `v` in decimal (what `v.to_string()` gives, without the allocation).
pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The per-source part of every document of that source, encoded once.
#[derive(Debug, Clone)]
pub struct SourceFragment {
    /// `,"log":{"file":{"path":…}}`-less tail: `,"container":{…},"kubernetes":{…},…}` (closes the document).
    pub tail: Vec<u8>,
    /// `log.file.path` as an encoded JSON string, if known.
    pub log_path: Option<Vec<u8>>,
    /// What the `_id` hash uses as container identity.
    pub container_key: String,
}

impl SourceFragment {
    /// Encode the identity part of the documents for one source.
    pub fn new(node: &str, source_key: &str, id: &SourceIdentity) -> SourceFragment {
        let mut t = Vec::with_capacity(512);
        if id.container_id.is_some() || id.container_name.is_some() || id.image.is_some() {
            t.extend_from_slice(b",\"container\":{");
            let mut first = true;
            if let Some(v) = &id.container_id {
                field(&mut t, &mut first, "id", v);
            }
            if let Some(v) = &id.container_name {
                field(&mut t, &mut first, "name", v);
            }
            if let Some(v) = &id.image {
                sep(&mut t, &mut first);
                t.extend_from_slice(b"\"image\":{\"name\":");
                push_json_str(&mut t, v);
                t.push(b'}');
            }
            t.push(b'}');
        }
        t.extend_from_slice(b",\"kubernetes\":{");
        let mut first = true;
        if let Some(v) = &id.namespace {
            field(&mut t, &mut first, "namespace", v);
        }
        if id.pod.is_some() || id.pod_uid.is_some() {
            sep(&mut t, &mut first);
            t.extend_from_slice(b"\"pod\":{");
            let mut f2 = true;
            if let Some(v) = &id.pod {
                field(&mut t, &mut f2, "name", v);
            }
            if let Some(v) = &id.pod_uid {
                field(&mut t, &mut f2, "uid", v);
            }
            t.push(b'}');
        }
        if let Some(v) = &id.container {
            sep(&mut t, &mut first);
            t.extend_from_slice(b"\"container\":{\"name\":");
            push_json_str(&mut t, v);
            t.push(b'}');
        }
        sep(&mut t, &mut first);
        t.extend_from_slice(b"\"node\":{\"name\":");
        push_json_str(&mut t, node);
        t.push(b'}');
        if !id.labels.is_empty() {
            t.extend_from_slice(b",\"labels\":{");
            let mut f2 = true;
            for (k, v) in &id.labels {
                field(&mut t, &mut f2, &k.replace('.', "_"), v);
            }
            t.push(b'}');
        }
        t.push(b'}');
        t.extend_from_slice(b",\"host\":{\"name\":");
        push_json_str(&mut t, node);
        t.extend_from_slice(b"},\"agent\":{\"type\":\"runnel\",\"version\":");
        push_json_str(&mut t, env!("CARGO_PKG_VERSION"));
        t.extend_from_slice(b"},\"event\":{\"dataset\":");
        push_json_str(&mut t, EVENT_DATASET);
        t.extend_from_slice(b"}}");
        let log_path = id.log_path.as_ref().map(|p| {
            let mut v = Vec::new();
            push_json_str(&mut v, p);
            v
        });
        SourceFragment {
            tail: t,
            log_path,
            container_key: id
                .container_id
                .clone()
                .unwrap_or_else(|| source_key.to_string()),
        }
    }
}

fn sep(t: &mut Vec<u8>, first: &mut bool) {
    if !*first {
        t.push(b',');
    }
    *first = false;
}

fn field(t: &mut Vec<u8>, first: &mut bool, k: &str, v: &str) {
    sep(t, first);
    push_json_str(t, k);
    t.push(b':');
    push_json_str(t, v);
}

/// True when `msg` is one JSON object (what `parse_json` embeds).
fn is_json_object(msg: &[u8]) -> bool {
    let trimmed = msg.trim_ascii();
    trimmed.first() == Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_ok()
}

/// Append one document (no trailing newline) for `r` to `out`.
pub fn encode_document(
    out: &mut Vec<u8>,
    r: &FrameView<'_>,
    src: &SourceFragment,
    parse_json: Option<&str>,
) {
    out.extend_from_slice(b"{\"@timestamp\":\"");
    push_rfc3339_nanos(out, r.time_ns);
    out.extend_from_slice(b"\",\"message\":");
    push_json_bytes(out, r.message);
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(r.stream.as_str().as_bytes());
    out.push(b'"');
    if let Some(field) = parse_json {
        if is_json_object(r.message) {
            out.push(b',');
            push_json_str(out, field);
            out.push(b':');
            out.extend_from_slice(r.message.trim_ascii());
        }
    }
    let offset = match r.position {
        Position::File { offset, .. } => Some(offset),
        _ => None,
    };
    if offset.is_some() || src.log_path.is_some() {
        out.extend_from_slice(b",\"log\":{");
        let mut first = true;
        if let Some(o) = offset {
            first = false;
            out.extend_from_slice(b"\"offset\":");
            push_u64(out, o);
        }
        if let Some(p) = &src.log_path {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(b"\"file\":{\"path\":");
            out.extend_from_slice(p);
            out.push(b'}');
        }
        out.push(b'}');
    }
    out.extend_from_slice(&src.tail);
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_index::{FileId, RecordFlags, StoredRecord, Stream, TimeStyle};

    fn rec(msg: &[u8]) -> StoredRecord {
        StoredRecord {
            seq: 3,
            time_ns: 1_767_323_045_000_000_001,
            time_style: TimeStyle::default(),
            stream: Stream::Stderr,
            flags: RecordFlags(0),
            message: msg.to_vec(),
            position: Position::File {
                file: FileId {
                    dev: 1,
                    ino: 2,
                    fingerprint: 3,
                },
                offset: 99,
            },
        }
    }

    #[test]
    fn ids_are_32_hex_digits() {
        let mut v = Vec::new();
        let mut y = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834u128;
        let mut cases = vec![
            0u128,
            0xabc,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ];
        for _ in 0..10_000 {
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            cases.push(y);
        }
        for x in cases {
            v.clear();
            push_hex128(&mut v, x);
            assert_eq!(v, format!("{x:032x}").as_bytes());
        }
    }

    #[test]
    fn timestamps_are_rfc3339_with_nanoseconds() {
        let mut v = Vec::new();
        push_rfc3339_nanos(&mut v, 1_767_323_045_000_000_001);
        assert_eq!(v, b"2026-01-02T03:04:05.000000001Z");
        v.clear();
        push_rfc3339_nanos(&mut v, -1);
        assert_eq!(v, b"1969-12-31T23:59:59.999999999Z");
        v.clear();
        push_rfc3339_nanos(&mut v, 951_782_400_000_000_000);
        assert_eq!(v, b"2000-02-29T00:00:00.000000000Z");
        // The cached second is reused only for the same second.
        for (ns, want) in [
            (951_782_400_999_999_999, "2000-02-29T00:00:00.999999999Z"),
            (951_782_401_000_000_000, "2000-02-29T00:00:01.000000000Z"),
            (951_782_400_000_000_007, "2000-02-29T00:00:00.000000007Z"),
            (i64::MIN, "1677-09-21T00:12:43.145224192Z"),
            (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
        ] {
            v.clear();
            push_rfc3339_nanos(&mut v, ns);
            assert_eq!(String::from_utf8_lossy(&v), want);
        }
    }

    /// The plain per-byte escaper the word-at-a-time one must match byte for byte.
    fn reference_escape(s: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for &b in s.as_bytes() {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                _ => out.push(b),
            }
        }
        out.push(b'"');
        out
    }

    #[test]
    fn word_at_a_time_escaping_matches_the_byte_loop_at_every_position() {
        let specials = [
            '"',
            '\\',
            '\n',
            '\r',
            '\t',
            '\u{1}',
            '\u{1f}',
            ' ',
            '!',
            '#',
            '[',
            ']',
            '\u{7f}',
            '\u{e9}',
            '\u{1F600}',
        ];
        for len in 0..20 {
            for pos in 0..len.max(1) {
                for &c in &specials {
                    let mut s: String = "abcdefghijklmnopqrstuvwxyz".chars().take(len).collect();
                    if len > 0 {
                        s.replace_range(
                            s.char_indices()
                                .nth(pos)
                                .map(|(i, ch)| i..i + ch.len_utf8())
                                .unwrap(),
                            &c.to_string(),
                        );
                    }
                    let mut got = Vec::new();
                    push_json_str(&mut got, &s);
                    assert_eq!(got, reference_escape(&s), "{s:?}");
                    let back: String = serde_json::from_slice(&got).unwrap();
                    assert_eq!(back, s);
                }
            }
        }
        let all: String = (0u8..128).map(char::from).collect::<String>().repeat(3);
        let mut got = Vec::new();
        push_json_str(&mut got, &all);
        assert_eq!(got, reference_escape(&all));
    }

    #[test]
    fn unvalidated_bytes_escape_exactly_as_the_validated_path() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        for len in 0..40 {
            for pos in 0..len.max(1) {
                for &c in &bytes {
                    let mut m = b"abcdefghijklmnopqrstuvwxyz0123456789ABCD"[..len].to_vec();
                    if len > 0 {
                        m[pos] = c;
                    }
                    let mut got = Vec::new();
                    push_json_bytes(&mut got, &m);
                    let mut want = Vec::new();
                    push_json_str(&mut want, &String::from_utf8_lossy(&m));
                    assert_eq!(got, want, "{m:?}");
                }
            }
        }
    }

    #[test]
    fn documents_are_valid_json_with_escapes_and_replaced_invalid_utf8() {
        let mut id = SourceIdentity {
            container_id: Some("c1".into()),
            namespace: Some("ns".into()),
            pod: Some("p\"od".into()),
            log_path: Some("/var/log/x.log".into()),
            ..Default::default()
        };
        id.labels
            .insert("app.kubernetes.io/name".into(), "web".into());
        let src = SourceFragment::new("node-1", "k", &id);
        let mut out = Vec::new();
        encode_document(
            &mut out,
            &rec(b"a\"b\\c\n\x01\xff{\"k\":1}").view(),
            &src,
            Some("json"),
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "a\"b\\c\n\u{1}\u{fffd}{\"k\":1}");
        assert!(v.get("json").is_none(), "not an object: not parsed");
        assert_eq!(v["kubernetes"]["pod"]["name"], "p\"od");
        assert_eq!(v["kubernetes"]["labels"]["app_kubernetes_io/name"], "web");
        assert_eq!(v["log"]["offset"], 99);
        assert_eq!(v["log"]["file"]["path"], "/var/log/x.log");
        assert_eq!(v["agent"]["type"], "runnel");
        assert_eq!(v["stream"], "stderr");
        out.clear();
        encode_document(&mut out, &rec(b" {\"k\":[1,2]} ").view(), &src, Some("app"));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["app"]["k"][1], 2);
        assert!(v.get("k").is_none(), "never merged into the root");
    }

    /// The `_id` as it was first computed, with a streaming hasher fed piece by piece: the
    /// one-shot hash over a stack buffer must give the same ids.
    fn streaming_id(node: &str, container: &str, source_key: &str, r: &StoredRecord) -> u128 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(node.as_bytes());
        h.update(&[0]);
        h.update(container.as_bytes());
        h.update(&[0]);
        match r.position {
            Position::File { file, offset } => {
                h.update(b"F");
                h.update(&file.dev.to_le_bytes());
                h.update(&file.ino.to_le_bytes());
                h.update(&file.fingerprint.to_le_bytes());
                h.update(&offset.to_le_bytes());
            }
            Position::Stream { stream_id, seq } => {
                h.update(b"S");
                h.update(source_key.as_bytes());
                h.update(&[0]);
                h.update(&stream_id.to_le_bytes());
                h.update(&seq.to_le_bytes());
            }
            Position::None => {
                h.update(b"N");
                h.update(source_key.as_bytes());
                h.update(&[0]);
                h.update(&r.seq.to_le_bytes());
            }
        }
        h.digest128()
    }

    #[test]
    fn one_shot_ids_equal_the_streaming_hash_for_every_position_and_length() {
        let long = "k".repeat(500);
        for pos in [
            Position::None,
            Position::Stream {
                stream_id: 7,
                seq: 9,
            },
            rec(b"").position,
        ] {
            for (node, container, key) in [
                ("n", "c", "k"),
                ("node-1", &*"ab".repeat(32), "cri:ns_pod_uid/app/0"),
                ("", "", ""),
                ("node", &*long, &*long),
            ] {
                let mut r = rec(b"x");
                r.position = pos;
                assert_eq!(
                    document_id(node, container, key, &r.view()),
                    streaming_id(node, container, key, &r),
                    "{pos:?} {}",
                    key.len()
                );
            }
        }
    }

    #[test]
    fn decimal_offsets_match_to_string() {
        for v in [0u64, 9, 10, 99, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }

    #[test]
    fn ids_depend_on_position_not_on_content() {
        let a = document_id("n", "c", "k", &rec(b"x").view());
        let b = document_id("n", "c", "k", &rec(b"y").view());
        assert_eq!(a, b);
        let mut r = rec(b"x");
        r.position = Position::File {
            file: FileId {
                dev: 1,
                ino: 2,
                fingerprint: 3,
            },
            offset: 100,
        };
        assert_ne!(a, document_id("n", "c", "k", &r.view()));
        assert_ne!(a, document_id("m", "c", "k", &rec(b"x").view()));
    }
}
