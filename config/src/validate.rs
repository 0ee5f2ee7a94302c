//! Checks that serde cannot express: addresses, URLs, ranges between keys.

use crate::Config;

/// Every semantic problem, each naming its key.
pub fn validate(c: &Config) -> Vec<String> {
    let mut p = Vec::new();
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
    p
}
