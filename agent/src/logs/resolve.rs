//! Which stored source a request names: a pod's container (current or previous instance) by
//! Kubernetes identity, or a plain Docker container by name or id. Misses list close matches.

use super::LogRequest;
use runnel_index::SourceInfo;

/// Why a request names no single source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No pod or container by that name; close matches listed.
    #[error("pods \"{pod}\" not found in namespace \"{namespace}\"{}", hint(.close))]
    PodNotFound {
        /// Namespace searched.
        namespace: String,
        /// Pod asked for.
        pod: String,
        /// Similar names that do exist (`namespace/pod` or Docker names).
        close: Vec<String>,
    },
    /// The pod exists but has no such container.
    #[error("container \"{container}\" is not valid for pod \"{pod}\"; choose one of: [{}]", .choices.join(" "))]
    ContainerNotFound {
        /// Pod.
        pod: String,
        /// Container asked for.
        container: String,
        /// Containers that exist.
        choices: Vec<String>,
    },
    /// The pod has several containers and none was named.
    #[error("a container name must be specified for pod \"{pod}\", choose one of: [{}]", .choices.join(" "))]
    ContainerRequired {
        /// Pod.
        pod: String,
        /// Containers that exist.
        choices: Vec<String>,
    },
    /// `previous` was asked for but only one instance is stored.
    #[error("previous terminated container \"{container}\" in pod \"{pod}\" not found")]
    PreviousNotFound {
        /// Pod.
        pod: String,
        /// Container.
        container: String,
    },
    /// A name longer than any Kubernetes or Docker name can be.
    #[error("{what} name is {len} bytes long; names are at most 253 bytes")]
    NameTooLong {
        /// `pod`, `namespace` or `container`.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A Docker id prefix matches several containers.
    #[error("container id prefix \"{prefix}\" is ambiguous: [{}]", .choices.join(" "))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// What it matches.
        choices: Vec<String>,
    },
}

impl ResolveError {
    /// True for errors that mean "does not exist" (HTTP 404) rather than "say more" (400).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ResolveError::PodNotFound { .. } | ResolveError::ContainerNotFound { .. }
        )
    }
}

fn hint(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}", close.join(", "))
    }
}

/// Longest name looked up: Kubernetes names are DNS subdomains (at most 253 bytes), and a
/// longer one cannot exist, so it is refused before any search.
pub const MAX_NAME_BYTES: usize = 253;
/// Most distinct names compared for "did you mean" (the first ones, in source order).
const MAX_CANDIDATES: usize = 1024;
/// Most edits between a name and a suggestion.
const MAX_EDITS: usize = 8;
/// Suggestions shown.
const MAX_SUGGESTIONS: usize = 5;

/// Levenshtein distance if it is at most `max`, computed only in the band `|i - j| <= max`
/// and abandoned once a whole row exceeds `max`: O(len × max), not O(len²).
fn distance_within(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let inf = max + 1;
    let mut prev: Vec<usize> = (0..=b.len()).map(|j| j.min(inf)).collect();
    let mut cur = vec![inf; b.len() + 1];
    for i in 1..=a.len() {
        let lo = i.saturating_sub(max).max(1);
        let hi = (i + max).min(b.len());
        cur.iter_mut().for_each(|c| *c = inf);
        cur[0] = i.min(inf);
        let mut row_min = cur[0];
        for j in lo..=hi {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let v = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            cur[j] = v.min(inf);
            row_min = row_min.min(cur[j]);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    Some(prev[b.len()]).filter(|d| *d <= max)
}

fn close_matches(sources: &[SourceInfo], namespace: &str, pod: &str) -> Vec<String> {
    close_matches_counted(sources, namespace, pod).0
}

/// The suggestions, and how many names were compared to find them.
fn close_matches_counted(
    sources: &[SourceInfo],
    namespace: &str,
    pod: &str,
) -> (Vec<String>, usize) {
    let max = (pod.len() / 2).clamp(2, MAX_EDITS);
    let mut names: Vec<(usize, String)> = Vec::new();
    let mut compared = 0usize;
    for s in sources {
        if compared >= MAX_CANDIDATES {
            break;
        }
        let id = &s.identity;
        let (name, label) = match (&id.namespace, &id.pod, &id.container_name) {
            (Some(ns), Some(p), _) => (p.as_str(), format!("{ns}/{p}")),
            (_, _, Some(n)) => (n.as_str(), format!("{n} (docker)")),
            _ => continue,
        };
        if names.iter().any(|(_, l)| *l == label) {
            continue;
        }
        compared += 1;
        let mut d = if name.contains(pod) || pod.contains(name) {
            Some(1)
        } else {
            distance_within(pod, name, max)
        };
        if id.namespace.as_deref() != Some(namespace) && id.namespace.is_some() {
            d = d.map(|d| d + 1).filter(|d| *d <= max);
        }
        if let Some(d) = d {
            names.push((d, label));
        }
    }
    names.sort();
    let names = names
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, l)| l)
        .collect();
    (names, compared)
}

/// Pick the source a request names. Kubernetes identity first (namespace defaults to
/// `default`, as in kubectl); then plain Docker containers by name or unique id prefix.
pub fn resolve(sources: &[SourceInfo], req: &LogRequest) -> Result<SourceInfo, ResolveError> {
    let namespace = req.namespace.as_deref().unwrap_or("default");
    let pod = req.pod.strip_prefix("pod/").unwrap_or(&req.pod);
    for (what, name) in [
        ("pod", Some(pod)),
        ("namespace", Some(namespace)),
        ("container", req.container.as_deref()),
    ] {
        if let Some(n) = name.filter(|n| n.len() > MAX_NAME_BYTES) {
            return Err(ResolveError::NameTooLong { what, len: n.len() });
        }
    }
    let mut in_pod: Vec<&SourceInfo> = sources
        .iter()
        .filter(|s| {
            s.identity.pod.as_deref() == Some(pod)
                && s.identity.namespace.as_deref() == Some(namespace)
        })
        .collect();
    if in_pod.is_empty() && req.namespace.is_none() {
        in_pod = docker_matches(sources, pod)?;
    }
    if in_pod.is_empty() {
        return Err(ResolveError::PodNotFound {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            close: close_matches(sources, namespace, pod),
        });
    }
    let container_of = |s: &SourceInfo| {
        s.identity
            .container
            .clone()
            .or_else(|| s.identity.container_name.clone())
            .unwrap_or_else(|| s.key.clone())
    };
    let mut choices: Vec<String> = in_pod.iter().map(|s| container_of(s)).collect();
    choices.sort();
    choices.dedup();
    let container = match &req.container {
        Some(c) if choices.contains(c) => c.clone(),
        Some(c) => {
            return Err(ResolveError::ContainerNotFound {
                pod: pod.to_string(),
                container: c.clone(),
                choices,
            })
        }
        None if choices.len() == 1 => choices[0].clone(),
        None => {
            return Err(ResolveError::ContainerRequired {
                pod: pod.to_string(),
                choices,
            })
        }
    };
    let mut instances: Vec<&SourceInfo> = in_pod
        .into_iter()
        .filter(|s| container_of(s) == container)
        .collect();
    // Instances in start order: restart count, then first record time.
    instances.sort_by_key(|s| (s.identity.restart, s.min_time_ns.unwrap_or(i64::MAX)));
    let pick = if req.previous {
        instances.len().checked_sub(2)
    } else {
        instances.len().checked_sub(1)
    };
    match pick.and_then(|i| instances.get(i)) {
        Some(s) => Ok((*s).clone()),
        None => Err(ResolveError::PreviousNotFound {
            pod: pod.to_string(),
            container,
        }),
    }
}

/// Plain Docker containers named `name`, or whose id starts with it.
fn docker_matches<'a>(
    sources: &'a [SourceInfo],
    name: &str,
) -> Result<Vec<&'a SourceInfo>, ResolveError> {
    let by_name: Vec<&SourceInfo> = sources
        .iter()
        .filter(|s| s.identity.container_name.as_deref() == Some(name))
        .collect();
    if !by_name.is_empty() {
        return Ok(by_name);
    }
    let by_id: Vec<&SourceInfo> = sources
        .iter()
        .filter(|s| {
            s.identity
                .container_id
                .as_deref()
                .is_some_and(|id| !name.is_empty() && id.starts_with(name))
        })
        .collect();
    let mut ids: Vec<String> = by_id
        .iter()
        .filter_map(|s| s.identity.container_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    if ids.len() > 1 {
        return Err(ResolveError::Ambiguous {
            prefix: name.to_string(),
            choices: ids,
        });
    }
    Ok(by_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_index::SourceIdentity;

    fn src(key: &str, ns: Option<&str>, pod: Option<&str>, c: &str, restart: u32) -> SourceInfo {
        SourceInfo {
            key: key.into(),
            identity: SourceIdentity {
                container_id: Some(format!("{key:0<64}").replace(':', "0")),
                container_name: Some(format!("k8s_{c}")),
                namespace: ns.map(Into::into),
                pod: pod.map(Into::into),
                container: pod.map(|_| c.to_string()),
                restart: Some(restart),
                ..Default::default()
            },
            min_time_ns: Some(restart as i64),
            max_time_ns: Some(restart as i64),
            first_seq: 0,
            next_seq: 1,
            records: 1,
            disk_bytes: 1,
            segments: 1,
            retired: false,
        }
    }

    fn req(ns: Option<&str>, pod: &str, c: Option<&str>, previous: bool) -> LogRequest {
        LogRequest {
            namespace: ns.map(Into::into),
            pod: pod.into(),
            container: c.map(Into::into),
            previous,
            ..Default::default()
        }
    }

    fn fixture() -> Vec<SourceInfo> {
        vec![
            src("a0", Some("shop"), Some("web-7d9"), "nginx", 0),
            src("a1", Some("shop"), Some("web-7d9"), "nginx", 1),
            src("b0", Some("shop"), Some("web-7d9"), "sidecar", 0),
            src("c0", Some("default"), Some("solo"), "app", 0),
        ]
    }

    #[test]
    fn current_and_previous_instances() {
        let s = fixture();
        let r = resolve(&s, &req(Some("shop"), "web-7d9", Some("nginx"), false)).unwrap();
        assert_eq!(r.key, "a1");
        let r = resolve(&s, &req(Some("shop"), "pod/web-7d9", Some("nginx"), true)).unwrap();
        assert_eq!(r.key, "a0");
        let e = resolve(&s, &req(Some("shop"), "web-7d9", Some("sidecar"), true)).unwrap_err();
        assert!(matches!(e, ResolveError::PreviousNotFound { .. }), "{e}");
    }

    #[test]
    fn namespace_defaults_and_single_container_is_implied() {
        let s = fixture();
        assert_eq!(
            resolve(&s, &req(None, "solo", None, false)).unwrap().key,
            "c0"
        );
        let e = resolve(&s, &req(Some("shop"), "web-7d9", None, false)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a container name must be specified for pod \"web-7d9\", choose one of: [nginx sidecar]"
        );
    }

    #[test]
    fn misses_list_close_matches() {
        let s = fixture();
        let e = resolve(&s, &req(Some("shop"), "web-7d8", None, false)).unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().contains("did you mean: shop/web-7d9"), "{e}");
        let e = resolve(&s, &req(Some("shop"), "web-7d9", Some("ngnix"), false)).unwrap_err();
        assert!(
            e.to_string().contains("choose one of: [nginx sidecar]"),
            "{e}"
        );
    }

    #[test]
    fn banded_distance_agrees_with_the_full_one() {
        fn full(a: &str, b: &str) -> usize {
            let b: Vec<char> = b.chars().collect();
            let mut prev: Vec<usize> = (0..=b.len()).collect();
            for (i, ca) in a.chars().enumerate() {
                let mut cur = vec![i + 1; b.len() + 1];
                for (j, cb) in b.iter().enumerate() {
                    let cost = usize::from(ca != *cb);
                    cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
                }
                prev = cur;
            }
            prev[b.len()]
        }
        let words = [
            "",
            "a",
            "web",
            "web-7d9",
            "web-7d8",
            "wbe-7d9",
            "api-server",
            "web-7d9-x",
            "7d9",
        ];
        for a in words {
            for b in words {
                for max in 0..5 {
                    let d = full(a, b);
                    assert_eq!(
                        distance_within(a, b, max),
                        (d <= max).then_some(d),
                        "{a:?} {b:?} {max}"
                    );
                }
            }
        }
    }

    #[test]
    fn long_names_are_refused_and_hint_search_is_bounded() {
        let mut s = fixture();
        let long = "x".repeat(254);
        let e = resolve(&s, &req(Some("shop"), &long, None, false)).unwrap_err();
        assert!(
            matches!(
                e,
                ResolveError::NameTooLong {
                    what: "pod",
                    len: 254
                }
            ),
            "{e}"
        );
        assert!(!e.is_not_found());
        let e = resolve(&s, &req(Some(&long), "web", None, false)).unwrap_err();
        assert!(
            matches!(
                e,
                ResolveError::NameTooLong {
                    what: "namespace",
                    ..
                }
            ),
            "{e}"
        );
        // Many long candidate names: the answer stays a short list, and no more than
        // MAX_CANDIDATES names are compared, each in O(len × MAX_EDITS).
        for i in 0..5000 {
            let pod = format!("{}{i}", "p".repeat(240));
            s.push(src(&format!("z{i}"), Some("shop"), Some(&pod), "c", 0));
        }
        let (close, compared) = close_matches_counted(&s, "shop", &"q".repeat(253));
        assert!(close.is_empty(), "{close:?}");
        assert_eq!(compared, MAX_CANDIDATES);
        let (close, _) = close_matches_counted(&s, "shop", &format!("{}7", "p".repeat(240)));
        assert!(
            !close.is_empty() && close.len() <= MAX_SUGGESTIONS,
            "{close:?}"
        );
    }

    #[test]
    fn docker_containers_by_name_or_id_prefix() {
        let mut s = fixture();
        s.push(SourceInfo {
            identity: SourceIdentity {
                container_id: Some("deadbeef".repeat(8)),
                container_name: Some("redis".into()),
                ..Default::default()
            },
            ..src("docker:x", None, None, "x", 0)
        });
        assert_eq!(
            resolve(&s, &req(None, "redis", None, false)).unwrap().key,
            "docker:x"
        );
        assert_eq!(
            resolve(&s, &req(None, "deadbe", None, false)).unwrap().key,
            "docker:x"
        );
    }
}
