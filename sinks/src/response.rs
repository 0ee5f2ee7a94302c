//! Reading a bulk response: every item's outcome, or why the whole response is unusable.

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// What to do with one document after the server answered.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// 2xx, or 409 on `create` (the document already exists: an earlier attempt landed).
    Done,
    /// 429, 5xx, or 401/403 (a cluster block): send this document again later.
    Retry(String),
    /// Any other 4xx: the document itself is bad; goes to the dead-letter file.
    Reject {
        /// HTTP status of the item.
        status: u16,
        /// The server's error object (or a description) as JSON text.
        reason: String,
    },
}

/// The response, read in one pass: top-level keys other than `items` are skipped without
/// being built, and an item allocates nothing unless it carries an error.
#[derive(Deserialize)]
struct Bulk {
    items: Vec<OneItem>,
}

/// `{"<action>": {…}}`: the action name is not needed (every action is `create`).
struct OneItem(Option<Item>);

impl<'de> Deserialize<'de> for OneItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneItem;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a bulk item {\"<action>\": {\"status\": …}}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OneItem, A::Error> {
                let mut item = None;
                while m.next_key::<IgnoredAny>()?.is_some() {
                    if item.is_none() {
                        item = Some(m.next_value::<Item>()?);
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(OneItem(item))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    /// Kept as JSON only for failed items (the dead-letter reason).
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Parse a 2xx bulk response body. Fails when the body is empty, not JSON, has no `items`, or
/// has a different number of items than documents sent.
pub fn parse_bulk_response(body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, String> {
    if body.trim_ascii().is_empty() {
        return Err("bulk response body is empty".into());
    }
    if let Some(n) = all_done(body) {
        if n != sent {
            return Err(format!(
                "bulk response has {n} items for {sent} documents sent"
            ));
        }
        return Ok(vec![ItemOutcome::Done; n]);
    }
    parse_full(body, sent)
}

/// The full parse (serde, typed and borrowed): every item's outcome with its error.
fn parse_full(body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, String> {
    let bulk: Bulk = serde_json::from_slice(body).map_err(|e| {
        let head = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        format!("bulk response is not a valid bulk JSON body ({e}): {head:?}")
    })?;
    if bulk.items.len() != sent {
        return Err(format!(
            "bulk response has {} items for {sent} documents sent",
            bulk.items.len()
        ));
    }
    let mut out = Vec::with_capacity(sent);
    for one in bulk.items {
        let Some(item) = one.0 else {
            return Err("bulk response item without an action key".into());
        };
        let reason = || {
            item.error
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| format!("\"status {}\"", item.status))
        };
        out.push(match item.status {
            200..=299 | 409 => ItemOutcome::Done,
            // 401/403 on an item is the cluster refusing writes (cluster_block_exception when
            // its disk is full, missing privileges), not a bad document: keep it and retry.
            401 | 403 | 429 | 500..=599 => ItemOutcome::Retry(reason()),
            s => ItemOutcome::Reject {
                status: s,
                reason: reason(),
            },
        });
    }
    Ok(out)
}

/// The common case, without serde: the number of items when `body` is a bulk response whose
/// every item is done (2xx or 409). `None` — and the caller's full parse decides — for
/// anything else: an item that failed, or a body outside the strict subset of JSON this
/// scanner reads (non-ASCII or escaped keys, nesting deeper than 64, a repeated `items` or
/// `status`, a non-integer status, invalid JSON). So the answer is always the full parse's.
fn all_done(body: &[u8]) -> Option<usize> {
    let mut s = Scan { b: body, i: 0 };
    s.expect(b'{')?;
    let mut items = None;
    if !s.eat(b'}') {
        loop {
            let key = s.key()?;
            s.expect(b':')?;
            if key == b"items" {
                if items.is_some() {
                    return None;
                }
                items = Some(s.items()?);
            } else {
                s.value(0)?;
            }
            if !s.comma_or(b'}')? {
                break;
            }
        }
    }
    s.ws();
    (s.i == body.len()).then_some(items?)
}

/// A cursor over a JSON body for [`all_done`]: every method returns `None` on anything it
/// does not accept.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// Skip whitespace and take `c` if it comes next.
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        self.eat(c).then_some(())
    }

    /// After a member or element: `,` (more follow: true) or `close` (false).
    fn comma_or(&mut self, close: u8) -> Option<bool> {
        if self.eat(b',') {
            Some(true)
        } else {
            self.expect(close).map(|()| false)
        }
    }

    /// A string of printable ASCII with valid escapes; returns its raw content.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' => {
                    self.i += 1;
                    match *self.b.get(self.i)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 4;
                        }
                        _ => return None,
                    }
                }
                0x20..=0x7e => {}
                _ => return None,
            }
            self.i += 1;
        }
        let raw = &self.b[start..self.i];
        self.i += 1;
        Some(raw)
    }

    /// An object key without escapes (so comparing raw bytes is comparing the key).
    fn key(&mut self) -> Option<&'a [u8]> {
        let k = self.string()?;
        (!k.contains(&b'\\')).then_some(k)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// Skip one value of any kind.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > 64 {
            return None;
        }
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                self.i += 1;
                if self.eat(b'}') {
                    return Some(());
                }
                loop {
                    self.key()?;
                    self.expect(b':')?;
                    self.value(depth + 1)?;
                    if !self.comma_or(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.eat(b']') {
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    if !self.comma_or(b']')? {
                        return Some(());
                    }
                }
            }
            b't' | b'f' | b'n' => {
                let rest = &self.b[self.i..];
                let lit: &[u8] = [&b"true"[..], b"false", b"null"]
                    .into_iter()
                    .find(|l| rest.starts_with(l))?;
                self.i += lit.len();
                Some(())
            }
            _ => self.number(),
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let first = *self.b.get(self.i)?;
        let n = self.digits();
        if n == 0 || (first == b'0' && n > 1) {
            return None;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// The `items` array: how many, when every one is done.
    fn items(&mut self) -> Option<usize> {
        self.expect(b'[')?;
        if self.eat(b']') {
            return Some(0);
        }
        let mut n = 0;
        loop {
            self.item()?;
            n += 1;
            if !self.comma_or(b']')? {
                return Some(n);
            }
        }
    }

    /// `{"<action>": {"status": 2xx|409, …}, …}`.
    fn item(&mut self) -> Option<()> {
        self.expect(b'{')?;
        self.string()?;
        self.expect(b':')?;
        self.expect(b'{')?;
        let mut status = None;
        if !self.eat(b'}') {
            loop {
                let key = self.key()?;
                self.expect(b':')?;
                if key == b"status" {
                    if status.is_some() {
                        return None;
                    }
                    self.ws();
                    let start = self.i;
                    let n = self.digits();
                    let digits = &self.b[start..self.i];
                    if n == 0 || n > 5 || (digits[0] == b'0' && n > 1) {
                        return None;
                    }
                    if let Some(b'.' | b'e' | b'E') = self.b.get(self.i) {
                        return None;
                    }
                    let v = digits
                        .iter()
                        .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
                    status = Some(v);
                } else {
                    self.value(2)?;
                }
                if !self.comma_or(b'}')? {
                    break;
                }
            }
        }
        if !matches!(status?, 200..=299 | 409) {
            return None;
        }
        // Further actions in the same item are ignored, as by the full parse.
        while self.comma_or(b'}')? {
            self.string()?;
            self.expect(b':')?;
            self.value(1)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_classified() {
        let body = br#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":409}},
          {"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
          {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}},
          {"create":{"status":503}},
          {"create":{"status":403,"error":{"type":"cluster_block_exception"}}}]}"#;
        let r = parse_bulk_response(body, 6).unwrap();
        assert!(
            matches!(r[5], ItemOutcome::Retry(_)),
            "a read-only cluster keeps the data"
        );
        assert_eq!(r[0], ItemOutcome::Done);
        assert_eq!(r[1], ItemOutcome::Done);
        assert!(matches!(r[2], ItemOutcome::Retry(_)));
        assert!(
            matches!(&r[3], ItemOutcome::Reject { status: 400, reason } if reason.contains("mapper_parsing_exception"))
        );
        assert!(matches!(r[4], ItemOutcome::Retry(_)));
    }

    /// Bodies the serde-free scanner reads must get exactly the full parse's answer; those it
    /// does not read fall through to the full parse.
    #[test]
    fn the_fast_path_agrees_with_the_full_parse() {
        let real = br#"{"took":30,"errors":false,"items":[{"create":{"_index":"logs-x","_id":"ab\u00e9","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
            {"create":{"_index":"logs-x","_id":"cd","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[cd]: version conflict"}}}]}"#;
        let cases: Vec<(&[u8], usize)> = vec![
            (real, 2),
            (real, 3),
            (br#"{"items":[]}"#, 0),
            (
                br#" { "items" : [ { "create" : { "status" : 200 } } ] } "#,
                1,
            ),
            (br#"{"items":[{"create":{"status":201}}]} x"#, 1),
            (br#"{"items":[{"create":{"status":201}}],"items":[]}"#, 1),
            (br#"{"items":[{"create":{"status":201,"status":201}}]}"#, 1),
            (br#"{"items":[{"create":{"status":201.0}}]}"#, 1),
            (br#"{"items":[{"create":{"status":-0}}]}"#, 1),
            (br#"{"items":[{"create":{"status":70000}}]}"#, 1),
            (br#"{"items":[{"create":{"status":0201}}]}"#, 1),
            (br#"{"items":[{"create":{}}]}"#, 1),
            (br#"{"items":[{}]}"#, 1),
            (br#"{"items":[{"create":{"status":201}},]}"#, 1),
            (
                br#"{"items":[{"create":{"status":201},"index":{"status":400}}]}"#,
                1,
            ),
            (br#"{"items":[{"create":{"st\u0061tus":400}}]}"#, 1),
            (
                br#"{"items":[{"create":{"status":201,"x":[1,-2.5e3,true,null,{"a":"\n"}]}}]}"#,
                1,
            ),
            (br#"{"items":[{"create":{"status":201,"x":01}}]}"#, 1),
            (br#"{"items":[{"create":{"status":201,"x":"a\qb"}}]}"#, 1),
            (br#"{"errors":true}"#, 0),
            (br#"{}"#, 0),
        ];
        for (body, sent) in cases {
            let got = parse_bulk_response(body, sent);
            let want = if body.trim_ascii().is_empty() {
                Err("bulk response body is empty".into())
            } else {
                parse_full(body, sent)
            };
            assert_eq!(got, want, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(
            all_done(real),
            Some(2),
            "a real cluster's answer is read fast"
        );
    }

    #[test]
    fn unusable_bodies_fail_the_batch() {
        assert!(parse_bulk_response(b"", 1).is_err());
        assert!(parse_bulk_response(b"<html>", 1).is_err());
        assert!(parse_bulk_response(br#"{"items":[{"create":{"status":201}}"#, 1).is_err());
        let e = parse_bulk_response(br#"{"items":[{"create":{"status":201}}]}"#, 2).unwrap_err();
        assert!(e.contains("1 items for 2"), "{e}");
    }
}
