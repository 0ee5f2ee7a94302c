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

    #[test]
    fn unusable_bodies_fail_the_batch() {
        assert!(parse_bulk_response(b"", 1).is_err());
        assert!(parse_bulk_response(b"<html>", 1).is_err());
        assert!(parse_bulk_response(br#"{"items":[{"create":{"status":201}}"#, 1).is_err());
        let e = parse_bulk_response(br#"{"items":[{"create":{"status":201}}]}"#, 2).unwrap_err();
        assert!(e.contains("1 items for 2"), "{e}");
    }
}
