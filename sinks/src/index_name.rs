//! Index names from a pattern. Supported: `%Y` `%m` `%d` `%H` (from the record time in UTC),
//! `%%`, and `%{field}` where field is one of `kubernetes.namespace`, `kubernetes.pod.name`,
//! `kubernetes.container.name`, `container.name`, `container.id`, `host.name` /
//! `kubernetes.node.name`. A field the source does not know renders as `unknown`. Every
//! rendered value is lowercased and characters Elasticsearch forbids in index names
//! (`\ / * ? " < > | , # :` and space) become `_`.

use crate::encode::civil;
use crate::SinkError;
use runnel_index::SourceIdentity;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Year,
    Month,
    Day,
    Hour,
    Field(Field),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Namespace,
    Pod,
    Container,
    ContainerName,
    ContainerId,
    Node,
}

/// A parsed index-name pattern.
#[derive(Debug, Clone)]
pub struct IndexPattern {
    parts: Vec<Part>,
}

impl IndexPattern {
    /// Parse a pattern; unknown `%x` or `%{field}` are errors naming them.
    pub fn parse(p: &str) -> Result<IndexPattern, SinkError> {
        let err = |m: String| SinkError::Config {
            key: "index",
            message: m,
        };
        if p.is_empty() {
            return Err(err("the index name pattern is empty".into()));
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut it = p.chars().peekable();
        while let Some(c) = it.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let part = match it.next() {
                Some('%') => {
                    lit.push('%');
                    continue;
                }
                Some('Y') => Part::Year,
                Some('m') => Part::Month,
                Some('d') => Part::Day,
                Some('H') => Part::Hour,
                Some('{') => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in it.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(err(format!("%{{{name} in {p:?} has no closing brace")));
                    }
                    Part::Field(match name.as_str() {
                        "kubernetes.namespace" => Field::Namespace,
                        "kubernetes.pod.name" => Field::Pod,
                        "kubernetes.container.name" => Field::Container,
                        "container.name" => Field::ContainerName,
                        "container.id" => Field::ContainerId,
                        "host.name" | "kubernetes.node.name" => Field::Node,
                        other => return Err(err(format!(
                            "unknown field %{{{other}}} in {p:?}; use kubernetes.namespace, kubernetes.pod.name, kubernetes.container.name, container.name, container.id or host.name"
                        ))),
                    })
                }
                other => {
                    return Err(err(format!(
                        "unsupported %{} in {p:?}; use %Y %m %d %H %% or %{{field}}",
                        other.map(String::from).unwrap_or_default()
                    )))
                }
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(part);
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        // Elasticsearch refuses such names for every document (each would be dead-lettered),
        // and a quote would break the bulk body: refuse them here, with the reason.
        for part in &parts {
            if let Part::Lit(l) = part {
                if let Some(c) = l
                    .chars()
                    .find(|&c| c.is_uppercase() || c.is_control() || "\\/*?\"<>|,#: ".contains(c))
                {
                    return Err(err(format!(
                        "{c:?} is not allowed in an index name ({p:?}): use lowercase letters, digits, '-', '_' and '.'"
                    )));
                }
            }
        }
        if let Some(Part::Lit(l)) = parts.first() {
            if l.starts_with(['_', '-', '+']) || l == "." || l == ".." {
                return Err(err(format!(
                    "an index name must not start with '_', '-' or '+' ({p:?})"
                )));
            }
        }
        Ok(IndexPattern { parts })
    }

    /// Whether the name depends on the record time (`%Y %m %d %H`).
    pub fn has_time(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Year | Part::Month | Part::Day | Part::Hour))
    }

    /// The index name for a record of `id` at `time_ns`, appended to `out` (raw, not JSON-escaped;
    /// the result contains no character that needs escaping).
    pub fn render(&self, out: &mut String, time_ns: i64, node: &str, id: &SourceIdentity) {
        use std::fmt::Write;
        let (y, mo, d, h, _, _) = civil(time_ns.div_euclid(1_000_000_000));
        for part in &self.parts {
            let value: &str = match part {
                Part::Lit(s) => s,
                Part::Year => {
                    let _ = write!(out, "{y:04}");
                    continue;
                }
                Part::Month => {
                    let _ = write!(out, "{mo:02}");
                    continue;
                }
                Part::Day => {
                    let _ = write!(out, "{d:02}");
                    continue;
                }
                Part::Hour => {
                    let _ = write!(out, "{h:02}");
                    continue;
                }
                Part::Field(f) => match f {
                    Field::Namespace => id.namespace.as_deref(),
                    Field::Pod => id.pod.as_deref(),
                    Field::Container => id.container.as_deref(),
                    Field::ContainerName => id.container_name.as_deref(),
                    Field::ContainerId => id.container_id.as_deref(),
                    Field::Node => Some(node),
                }
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown"),
            };
            for c in value.chars() {
                out.push(match c {
                    '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':' | ' ' => '_',
                    c if c.is_control() => '_',
                    c => c.to_ascii_lowercase(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_time_and_fields() {
        let p = IndexPattern::parse("logs-%{kubernetes.namespace}-%Y.%m.%d.%H-100%%").unwrap();
        let id = SourceIdentity {
            namespace: Some("Shop Front".into()),
            ..Default::default()
        };
        let mut s = String::new();
        p.render(&mut s, 1_767_323_045_000_000_001, "n", &id);
        assert_eq!(s, "logs-shop_front-2026.01.02.03-100%");
        s.clear();
        IndexPattern::parse("x-%{kubernetes.pod.name}")
            .unwrap()
            .render(&mut s, 0, "n", &id);
        assert_eq!(s, "x-unknown");
    }

    #[test]
    fn unknown_directives_are_clear_errors() {
        let e = IndexPattern::parse("a-%{nope}").unwrap_err().to_string();
        assert!(e.contains("unknown field %{nope}"), "{e}");
        let e = IndexPattern::parse("a-%Q").unwrap_err().to_string();
        assert!(e.contains("unsupported %Q"), "{e}");
        let e = IndexPattern::parse("a-%{kubernetes.namespace")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no closing brace"), "{e}");
    }

    #[test]
    fn names_elasticsearch_refuses_are_config_errors() {
        for bad in [
            "Logs-%Y", "logs\"x", "a b", "a/b", "a:b", "_logs", "-x", "+x",
        ] {
            let e = IndexPattern::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("sinks.elasticsearch.index: "), "{bad}: {e}");
        }
        assert!(IndexPattern::parse("logs-runnel-%Y.%m.%d")
            .unwrap()
            .has_time());
        assert!(!IndexPattern::parse("logs-runnel-default")
            .unwrap()
            .has_time());
        assert!(!IndexPattern::parse("logs-%{kubernetes.namespace}")
            .unwrap()
            .has_time());
    }
}
