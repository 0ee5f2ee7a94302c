//! What changed between two configs, key by key, and which of those changes need a restart.
//!
//! A reload hands each component its part of the difference; a change listed in
//! [`NOT_LIVE`] cannot be applied to a running agent, so the whole update is refused with a
//! message that says a restart is needed.

use crate::Config;
use serde_json::Value;

/// Keys (or key prefixes) that a running agent cannot change: they name what holds data or a
/// bound socket, which a reload never rebuilds.
pub const NOT_LIVE: &[(&str, &str)] = &[
    (
        "data_dir",
        "the index and the sinks' cursors stay open where they are",
    ),
    ("http.listen", "the listening socket is bound once"),
    (
        "http.auth",
        "the access policy is built once; the tokens file itself is re-read when it changes",
    ),
    (
        "http.tls",
        "the TLS files are named once; their contents are re-read when they change",
    ),
    ("http.limits", "the server's caps are set once"),
    (
        "inputs.queue_max_bytes",
        "the ingest queue holds records and is not rebuilt",
    ),
    (
        "inputs.fingerprint_bytes",
        "file identities recorded in the index depend on it",
    ),
    (
        "index.segment_max_bytes",
        "open segments were sized with it",
    ),
    ("index.segment_max_age", "open segments were sized with it"),
    ("index.block_bytes", "open segments were sized with it"),
    ("index.zstd_level", "open segments were sized with it"),
    ("index.max_open_maps", "the store's map cache is sized once"),
    ("log.format", "the log output is set up once"),
    (
        "inputs.forward.chunk_window",
        "the writer's windows of stored chunks are sized once",
    ),
    (
        "inputs.forward.chunk_window_age",
        "the writer's windows of stored chunks are sized once",
    ),
];

/// The dotted keys whose values differ between two configs, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diff {
    /// Leaf keys (`inputs.include.namespaces`, `sinks.elasticsearch.batch.max_docs`); a list
    /// counts as one leaf.
    pub changed: Vec<String>,
}

impl Diff {
    /// Compare two configs.
    pub fn between(old: &Config, new: &Config) -> Diff {
        let mut changed = Vec::new();
        match (serde_json::to_value(old), serde_json::to_value(new)) {
            (Ok(a), Ok(b)) => walk("", &a, &b, &mut changed),
            // Not reachable for the schema's types; treat as "everything changed".
            _ => changed.push(String::new()),
        }
        Diff { changed }
    }

    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }

    /// True when `prefix` itself or a key below it changed (`"inputs.include"`, `"metrics"`).
    pub fn touches(&self, prefix: &str) -> bool {
        self.changed.iter().any(|k| under(k, prefix))
    }

    /// One message per changed key that cannot change live, saying why a restart is needed.
    pub fn needs_restart(&self) -> Vec<String> {
        let mut out = Vec::new();
        for key in &self.changed {
            if let Some((p, why)) = NOT_LIVE.iter().find(|(p, _)| under(key, p)) {
                out.push(format!(
                    "{p} cannot change while the agent runs ({why}); restart the agent to apply it"
                ));
            }
        }
        out.dedup();
        out
    }
}

fn under(key: &str, prefix: &str) -> bool {
    key == prefix
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(&sub, va, vb, out),
                    _ => out.push(sub),
                }
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> Config {
        match Config::from_yaml_str(yaml, "t") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn names_each_changed_leaf() {
        let a = cfg("inputs: { include: { namespaces: [a] } }\n");
        let b = cfg("inputs: { include: { namespaces: [a, b] } }\nlog: { level: debug }\n");
        let d = Diff::between(&a, &b);
        assert_eq!(d.changed, vec!["inputs.include.namespaces", "log.level"]);
        assert!(d.touches("inputs.include"));
        assert!(d.touches("inputs"));
        assert!(!d.touches("inputs.inc"));
        assert!(!d.touches("metrics"));
        assert!(d.needs_restart().is_empty());
        assert!(Diff::between(&a, &a).is_empty());
    }

    #[test]
    fn data_dir_and_listen_need_a_restart() {
        let a = cfg("data_dir: /a\nhttp: { listen: \"127.0.0.1:1\" }\n");
        let b = cfg("data_dir: /b\nhttp: { listen: \"127.0.0.1:2\" }\n");
        let r = Diff::between(&a, &b).needs_restart();
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].starts_with("data_dir cannot change"), "{r:?}");
        assert!(r[1].starts_with("http.listen cannot change"), "{r:?}");
        assert!(r.iter().all(|m| m.contains("restart the agent")), "{r:?}");
    }

    #[test]
    fn the_docker_api_and_docker_enablement_change_live() {
        let a = cfg("inputs: { docker: { enabled: true } }\n");
        let b =
            cfg("inputs: { docker: { enabled: false, api: \"unix:///var/run/docker.sock\" } }\n");
        let d = Diff::between(&a, &b);
        assert_eq!(
            d.changed,
            vec!["inputs.docker.api", "inputs.docker.enabled"]
        );
        assert!(d.needs_restart().is_empty(), "{:?}", d.needs_restart());
    }

    /// The backticked keys of `doc` between `from` and `to`.
    fn documented(doc: &str, from: &str, to: &str) -> Vec<String> {
        let start = doc
            .find(from)
            .unwrap_or_else(|| panic!("{from:?} not found"));
        let rest = &doc[start..];
        let end = rest.find(to).unwrap_or_else(|| panic!("{to:?} not found"));
        let mut keys: Vec<String> = rest[..end]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|k| {
                k.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            })
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_documented_restart_lists_are_not_live() {
        let mut want: Vec<String> = NOT_LIVE.iter().map(|(k, _)| k.to_string()).collect();
        want.sort();
        let readme = include_str!("../../README.md");
        assert_eq!(
            documented(readme, "- restart needed", "An update that"),
            want,
            "README.md's restart list"
        );
        let daemonset = include_str!("../../daemonset/README.md");
        assert_eq!(
            documented(daemonset, "These need a\nrestart", "an update touching one"),
            want,
            "daemonset/README.md's restart list"
        );
    }
}
