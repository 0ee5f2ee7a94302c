//! Which sidecar stream a forward record belongs to.
//!
//! In order: a tag matching `tag_pattern` (`kube.{namespace}.{pod}.{container}` by default)
//! names namespace, pod and container; otherwise Fluent Bit's kubernetes-filter map in the
//! record (`kubernetes.namespace_name`, `pod_name`, `container_name`); otherwise namespace
//! `default_namespace`, pod = the tag, container `forward`.
//!
//! `{namespace}` and `{container}` match a DNS label (letters, digits, `-`), as Kubernetes
//! names them; `{pod}` matches any text (pod names may hold dots), so
//! `kube.shop.web.v2-0.side` is pod `web.v2-0`.

use super::codec::Record;

/// A placeholder of the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Namespace,
    Pod,
    Container,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    Field(Field),
}

/// A parsed `tag_pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPattern {
    parts: Vec<Part>,
}

/// The names a tag or record gave; `None` where it gave none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names<'a> {
    /// Namespace.
    pub namespace: Option<&'a [u8]>,
    /// Pod.
    pub pod: Option<&'a [u8]>,
    /// Container.
    pub container: Option<&'a [u8]>,
}

impl TagPattern {
    /// Parse a pattern; `{pod}` is required, each placeholder at most once, and two
    /// placeholders need literal text between them.
    pub fn parse(pattern: &str) -> Result<TagPattern, String> {
        let mut parts = Vec::new();
        let mut rest = pattern;
        let mut seen = Vec::new();
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("unclosed '{{' in {pattern:?}"))?;
                    let f = match &rest[1..end] {
                        "namespace" => Field::Namespace,
                        "pod" => Field::Pod,
                        "container" => Field::Container,
                        other => {
                            return Err(format!(
                                "unknown placeholder {{{other}}} in {pattern:?}; use {{namespace}}, {{pod}}, {{container}}"
                            ))
                        }
                    };
                    if seen.contains(&f) {
                        return Err(format!(
                            "{{{}}} appears twice in {pattern:?}",
                            &rest[1..end]
                        ));
                    }
                    if matches!(parts.last(), Some(Part::Field(_))) {
                        return Err(format!(
                            "two placeholders need text between them in {pattern:?}"
                        ));
                    }
                    seen.push(f);
                    parts.push(Part::Field(f));
                    rest = &rest[end + 1..];
                }
                Some(i) => {
                    parts.push(Part::Literal(rest.as_bytes()[..i].to_vec()));
                    rest = &rest[i..];
                }
                None => {
                    parts.push(Part::Literal(rest.as_bytes().to_vec()));
                    rest = "";
                }
            }
        }
        if !seen.contains(&Field::Pod) {
            return Err(format!("{pattern:?} must contain {{pod}}"));
        }
        Ok(TagPattern { parts })
    }

    /// The names in `tag`, or `None` when it does not match.
    pub fn matches<'a>(&self, tag: &'a [u8]) -> Option<Names<'a>> {
        let mut names = Names::default();
        match_from(&self.parts, tag, &mut names).then_some(names)
    }
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn match_from<'a>(parts: &[Part], tag: &'a [u8], names: &mut Names<'a>) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return tag.is_empty();
    };
    match first {
        Part::Literal(l) => tag.starts_with(l) && match_from(rest, &tag[l.len()..], names),
        Part::Field(f) => {
            // Try every end, shortest first; a DNS-label field stops at its first other byte.
            for end in 1..=tag.len() {
                let value = &tag[..end];
                if *f != Field::Pod && !is_label_byte(value[end - 1]) {
                    return false;
                }
                if match_from(rest, &tag[end..], names) {
                    let slot = match f {
                        Field::Namespace => &mut names.namespace,
                        Field::Pod => &mut names.pod,
                        Field::Container => &mut names.container,
                    };
                    *slot = Some(value);
                    return true;
                }
            }
            false
        }
    }
}

/// The names Fluent Bit's kubernetes filter put in a record, when it has all three.
pub fn kubernetes_names<'a>(record: &Record<'a>) -> Option<Names<'a>> {
    let k = record.get_map(b"kubernetes")?;
    Some(Names {
        namespace: Some(k.get_str(b"namespace_name")?),
        pod: Some(k.get_str(b"pod_name")?),
        container: Some(k.get_str(b"container_name")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, tag: &str) -> Option<(String, String, String)> {
        let pat = TagPattern::parse(p).unwrap();
        let n = pat.matches(tag.as_bytes())?;
        let s = |v: Option<&[u8]>| {
            v.map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        Some((s(n.namespace), s(n.pod), s(n.container)))
    }

    #[test]
    fn default_pattern_splits_namespace_pod_and_container() {
        let p = "kube.{namespace}.{pod}.{container}";
        assert_eq!(
            m(p, "kube.shop.web-0.side"),
            Some(("shop".into(), "web-0".into(), "side".into()))
        );
        assert_eq!(
            m(p, "kube.shop.web.v2-0.side"),
            Some(("shop".into(), "web.v2-0".into(), "side".into()))
        );
        assert_eq!(m(p, "app.log"), None);
        assert_eq!(m(p, "kube.shop.side"), None, "a pod is needed");
        assert_eq!(
            m(p, "kube.shop.web-0.si_de"),
            None,
            "a container is a DNS label"
        );
    }

    #[test]
    fn other_patterns_and_bad_patterns() {
        assert_eq!(
            m("{pod}", "anything.at.all"),
            Some((String::new(), "anything.at.all".into(), String::new()))
        );
        assert_eq!(
            m("k8s_{namespace}_{pod}", "k8s_ns_p_1"),
            Some(("ns".into(), "p_1".into(), String::new()))
        );
        assert!(TagPattern::parse("kube.{namespace}").is_err());
        assert!(TagPattern::parse("{pod}{container}").is_err());
        assert!(TagPattern::parse("{pod}.{pod}").is_err());
        assert!(TagPattern::parse("{pod}.{nope}").is_err());
        assert!(TagPattern::parse("{pod").is_err());
    }
}
