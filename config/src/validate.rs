//! Checks that serde cannot express: addresses, URLs, ranges between keys. Each problem names
//! its key (dotted path); [`line_of`] finds the line that key is on so the error can say it.

use crate::Config;

/// One problem: the dotted key (`index.zstd_level`, `sinks.elasticsearch.endpoints[0]`) and
/// what is wrong with its value.
pub struct Problem {
    /// Dotted key path.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, text: String) {
        let (key, message) = match text.split_once(": ") {
            Some((k, m)) => (k.to_string(), m.to_string()),
            None => (String::new(), text),
        };
        self.0.push(Problem { key, message });
    }
}

/// Every semantic problem, each naming its key.
pub fn validate(c: &Config) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    if c.http.listen.parse::<std::net::SocketAddr>().is_err() && !c.http.listen.contains(':') {
        p.push(format!(
            "http.listen: {:?} is not host:port (e.g. 0.0.0.0:2020)",
            c.http.listen
        ));
    }
    if c.index.block_bytes == 0 || c.index.segment_max_bytes < c.index.block_bytes {
        p.push("index.segment_max_bytes: must be at least index.block_bytes".into());
    }
    if !(1..=19).contains(&c.index.zstd_level) {
        p.push(format!(
            "index.zstd_level: {} is outside 1..=19",
            c.index.zstd_level
        ));
    }
    if c.inputs.docker.enabled && c.inputs.docker.root.as_os_str().is_empty() {
        p.push("inputs.docker.root: must not be empty when docker is enabled".into());
    }
    if c.inputs.cri.enabled && c.inputs.cri.root.as_os_str().is_empty() {
        p.push("inputs.cri.root: must not be empty when cri is enabled".into());
    }
    if c.inputs.max_line_bytes < 1024 {
        p.push("inputs.max_line_bytes: must be at least 1KiB".into());
    }
    if c.inputs.max_line_bytes > crate::MAX_LINE_BYTES_LIMIT {
        p.push(format!(
            "inputs.max_line_bytes: {} is more than an index record can hold (at most {}, \
             64MiB less 4KiB)",
            crate::format_size(c.inputs.max_line_bytes),
            crate::format_size(crate::MAX_LINE_BYTES_LIMIT)
        ));
    }
    if c.inputs.max_pending_bytes < c.inputs.max_line_bytes {
        p.push(format!(
            "inputs.max_pending_bytes: {} is less than inputs.max_line_bytes ({}): a line is \
             held whole until it reaches max_line_bytes",
            crate::format_size(c.inputs.max_pending_bytes),
            crate::format_size(c.inputs.max_line_bytes)
        ));
    }
    if c.inputs.read_buffer_bytes < 4096 {
        p.push("inputs.read_buffer_bytes: must be at least 4KiB".into());
    }
    if c.inputs.max_open_rotated_per_source == 0 {
        p.push("inputs.max_open_rotated_per_source: must be at least 1".into());
    }
    if c.metrics.interval.is_zero() {
        p.push("metrics.interval: must be greater than 0".into());
    }
    let es = &c.sinks.elasticsearch;
    for (i, e) in es.endpoints.iter().enumerate() {
        if !(e.starts_with("http://") || e.starts_with("https://")) || e.len() < 10 {
            p.push(format!(
                "sinks.elasticsearch.endpoints[{i}]: {e:?} is not an http(s) URL"
            ));
        }
    }
    if es.enabled && es.endpoints.is_empty() {
        p.push("sinks.elasticsearch.endpoints: at least one endpoint is needed".into());
    }
    if es.index.trim().is_empty() {
        p.push("sinks.elasticsearch.index: must not be empty".into());
    }
    if es.concurrency == 0 {
        p.push("sinks.elasticsearch.concurrency: must be at least 1".into());
    }
    if es.batch.max_docs == 0 || es.batch.max_bytes == 0 {
        p.push("sinks.elasticsearch.batch: max_docs and max_bytes must be at least 1".into());
    }
    p.0
}

/// The 1-based line of `text` where the dotted `key` is set, for block (`a:\n  b: 1`) and flow
/// (`a: { b: 1 }`) mappings; `[i]` suffixes are ignored. None when the key is not written
/// (a default) or the layout is beyond this simple reader.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let path: Vec<&str> = key
        .split('.')
        .map(|k| k.split('[').next().unwrap_or(k))
        .collect();
    let mut stack: Vec<(usize, &str)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let body = raw.trim_start();
        if body.is_empty() || body.starts_with('#') || body.starts_with('-') {
            continue;
        }
        let indent = raw.len() - body.len();
        let Some((k, rest)) = body.split_once(':') else {
            continue;
        };
        let k = k.trim().trim_matches(|c| c == '"' || c == '\'');
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, k));
        let here: Vec<&str> = stack.iter().map(|(_, k)| *k).collect();
        if here.len() > path.len() || here[..] != path[..here.len()] {
            continue;
        }
        if here.len() == path.len() {
            return Some(n + 1);
        }
        // The rest of the path inside a flow mapping on this line.
        let mut at = 0;
        let found = path[here.len()..].iter().all(|want| {
            let needle = format!("{want}:");
            let hit = rest[at..].match_indices(&needle).find(|(i, _)| {
                let before = rest[..at + i].chars().last();
                before.is_none_or(|c| c == '{' || c == ',' || c.is_whitespace())
            });
            match hit {
                Some((i, _)) => {
                    at += i + needle.len();
                    true
                }
                None => false,
            }
        });
        if found && rest.contains('{') {
            return Some(n + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::line_of;

    #[test]
    fn keys_are_found_in_block_and_flow_mappings() {
        let text = "# comment\nindex:\n  zstd_level: 40\n\nhttp: { listen: nowhere }\nsinks:\n  elasticsearch:\n    endpoints: [\"ftp://x\"]\n    batch: { max_docs: 0 }\n";
        assert_eq!(line_of(text, "index.zstd_level"), Some(3));
        assert_eq!(line_of(text, "http.listen"), Some(5));
        assert_eq!(line_of(text, "sinks.elasticsearch.endpoints[0]"), Some(8));
        assert_eq!(line_of(text, "sinks.elasticsearch.batch"), Some(9));
        assert_eq!(line_of(text, "sinks.elasticsearch.batch.max_docs"), Some(9));
        assert_eq!(line_of(text, "index.max_age"), None);
        assert_eq!(line_of(text, "metrics.interval"), None);
    }
}
