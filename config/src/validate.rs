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
    validate_http(c, &mut p);
    if c.index.block_bytes == 0 || c.index.segment_max_bytes < c.index.block_bytes {
        p.push("index.segment_max_bytes: must be at least index.block_bytes".into());
    }
    if !(1..=1 << 20).contains(&c.index.max_open_maps) {
        p.push(format!(
            "index.max_open_maps: {} is outside 1..=1048576 (vm.max_map_count is 65530 by default)",
            c.index.max_open_maps
        ));
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
    if let Some(api) = &c.inputs.docker.api {
        if !api
            .strip_prefix("unix://")
            .is_some_and(|p| p.starts_with('/'))
        {
            p.push(format!(
                "inputs.docker.api: {api:?} is not unix:///path/to/docker.sock (only a Unix socket is supported)"
            ));
        }
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
    validate_forward(&c.inputs.forward, &mut p);
    if c.metrics.interval.is_zero() {
        p.push("metrics.interval: must be greater than 0".into());
    }
    if c.health.stall_timeout < std::time::Duration::from_secs(1) {
        p.push("health.stall_timeout: must be at least 1s".into());
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
    let cc = &es.concurrency;
    if cc.max == 0 || cc.min == 0 || cc.min > cc.max {
        p.push("sinks.elasticsearch.concurrency: needs 1 <= min <= max".into());
    }
    if !(cc.decrease_ratio > 0.0 && cc.decrease_ratio < 1.0) {
        p.push("sinks.elasticsearch.concurrency.decrease_ratio: must be between 0 and 1".into());
    }
    if cc.latency_threshold.is_nan() || cc.latency_threshold <= 0.0 {
        p.push("sinks.elasticsearch.concurrency.latency_threshold: must be greater than 0".into());
    }
    if es.drain.no_progress_timeout.is_zero() {
        p.push("sinks.elasticsearch.drain.no_progress_timeout: must be greater than 0".into());
    }
    if es.batch.max_docs == 0 || es.batch.max_bytes == 0 {
        p.push("sinks.elasticsearch.batch: max_docs and max_bytes must be at least 1".into());
    }
    p.0
}

fn validate_http(c: &Config, p: &mut Problems) {
    let auth = &c.http.auth;
    if auth.anonymous == crate::Anonymous::None && auth.tokens_file.is_none() {
        p.push(
            "http.auth.anonymous: none without http.auth.tokens_file leaves no caller able to \
             use the API (set a tokens_file, or anonymous: loopback)"
                .into(),
        );
    }
    if auth
        .tokens_file
        .as_ref()
        .is_some_and(|f| f.as_os_str().is_empty())
    {
        p.push("http.auth.tokens_file: must not be empty (leave it out for no tokens)".into());
    }
    let tls = &c.http.tls;
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        p.push("http.tls: cert_file and key_file must be set together".into());
    }
    if tls.client_ca_file.is_some() && !tls.enabled() {
        p.push("http.tls.client_ca_file: needs cert_file and key_file (client certificates are checked only over TLS)".into());
    }
    let l = &c.http.limits;
    if l.max_connections == 0 {
        p.push("http.limits.max_connections: must be at least 1".into());
    }
    if l.max_follows == 0 {
        p.push("http.limits.max_follows: must be at least 1".into());
    }
    if l.max_follows > l.max_connections {
        p.push("http.limits.max_follows: must not exceed http.limits.max_connections (each follow holds a connection)".into());
    }
    if l.header_timeout.is_zero() {
        p.push("http.limits.header_timeout: must be greater than 0".into());
    }
    if l.max_uri_bytes < 256 {
        p.push("http.limits.max_uri_bytes: must be at least 256 bytes".into());
    }
    // Common clients send up to 8 KiB of headers; the head must also fit the URI.
    if l.max_header_bytes < 8 * 1024 || l.max_header_bytes < l.max_uri_bytes {
        p.push(
            "http.limits.max_header_bytes: must be at least 8KiB and at least max_uri_bytes".into(),
        );
    }
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

fn validate_forward(f: &crate::ForwardInput, p: &mut Problems) {
    if f.enabled && f.listen.parse::<std::net::SocketAddr>().is_err() && !f.listen.contains(':') {
        p.push(format!(
            "inputs.forward.listen: {:?} is not host:port (e.g. 0.0.0.0:24224)",
            f.listen
        ));
    }
    if u32::from_str_radix(f.unix_mode.trim_start_matches("0o"), 8).map_or(true, |m| m > 0o777) {
        p.push(format!(
            "inputs.forward.unix_mode: {:?} is not an octal mode such as \"0660\"",
            f.unix_mode
        ));
    }
    let pat = &f.tag_pattern;
    if !pat.contains("{pod}") {
        p.push(format!(
            "inputs.forward.tag_pattern: {pat:?} must contain {{pod}} (and may contain {{namespace}} and {{container}})"
        ));
    }
    if f.message_key.is_empty() {
        p.push("inputs.forward.message_key: must not be empty".into());
    }
    if f.max_connections == 0 {
        p.push("inputs.forward.max_connections: must be at least 1".into());
    }
    if f.max_frame_bytes < 1024 || f.max_frame_bytes > 1 << 30 {
        p.push("inputs.forward.max_frame_bytes: must be between 1KiB and 1GiB".into());
    }
    if f.max_decompressed_bytes < f.max_frame_bytes.min(1 << 20)
        || f.max_decompressed_bytes > 4 << 30
    {
        p.push("inputs.forward.max_decompressed_bytes: must be between 1MiB (or max_frame_bytes) and 4GiB".into());
    }
    if f.tls.cert_file.is_some() != f.tls.key_file.is_some() {
        p.push("inputs.forward.tls: cert_file and key_file go together".into());
    }
    if f.tls.client_ca_file.is_some() && f.tls.cert_file.is_none() {
        p.push("inputs.forward.tls.client_ca_file: needs cert_file and key_file".into());
    }
}

#[cfg(test)]
mod tests {
    use super::line_of;

    #[test]
    fn http_access_and_limits_are_checked() {
        let ok = crate::Config::from_yaml_str(
            "http:\n  auth: { anonymous: none, tokens_file: /etc/runnel/tokens/tokens.yaml }\n  \
             tls: { cert_file: /c.pem, key_file: /k.pem, client_ca_file: /ca.pem }\n  \
             limits: { max_follows: 10, header_timeout: 2s, max_uri_bytes: 4KiB }\n",
            "c",
        )
        .unwrap();
        assert_eq!(ok.http.auth.anonymous, crate::Anonymous::None);
        assert_eq!(ok.http.limits.max_uri_bytes, 4096);
        for (yaml, key) in [
            (
                "http: { auth: { anonymous: none } }",
                "c:1: http.auth.anonymous",
            ),
            (
                "http: { auth: { anonymous: nobody } }",
                "unknown variant `nobody`",
            ),
            (
                "http: { tls: { cert_file: /c.pem } }",
                "c:1: http.tls: cert_file and key_file",
            ),
            (
                "http: { tls: { client_ca_file: /ca.pem } }",
                "http.tls.client_ca_file",
            ),
            (
                "http: { limits: { max_follows: 0 } }",
                "http.limits.max_follows",
            ),
            (
                "http: { limits: { max_connections: 5 } }",
                "http.limits.max_follows",
            ),
            (
                "http: { limits: { header_timeout: 0s } }",
                "http.limits.header_timeout",
            ),
            (
                "http: { limits: { max_header_bytes: 1KiB } }",
                "http.limits.max_header_bytes",
            ),
            (
                "http: { limits: { max_uri_bytes: 10 } }",
                "http.limits.max_uri_bytes",
            ),
        ] {
            let e = crate::Config::from_yaml_str(&format!("{yaml}\n"), "c")
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
    }

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
