//! `GET /v1/top?by=fds|threads|sockets|growth&limit=N`: the containers with the most descriptors,
//! threads or sockets, or the fastest growth of any of the three (a leak) — what a platform team
//! looks at first. Containers without the figure asked for are left out.

use super::snapshot::{ContainerSample, Snapshot};
use serde_json::{json, Value};

/// The `by` values `/v1/top` accepts.
pub const BY: [&str; 4] = ["fds", "threads", "sockets", "growth"];

fn key(c: &ContainerSample, by: &str) -> Option<f64> {
    match by {
        "fds" => c.fds.map(|v| v as f64),
        "threads" => c.threads.map(|v| v as f64),
        "sockets" => c.sockets.map(|v| v as f64),
        _ => c.growth.max(),
    }
}

fn entry(c: &ContainerSample) -> Value {
    let l = &c.labels;
    json!({
        "namespace": l.namespace,
        "pod": l.pod,
        "container": l.container,
        "image": l.image,
        "container_id": c.cgroup.id,
        "pod_uid": c.cgroup.pod_uid,
        "runtime": c.cgroup.runtime,
        "cgroup": c.cgroup.path,
        "processes": c.processes,
        "threads": c.threads,
        "threads_max": c.threads_max,
        "fds": c.fds,
        "sockets": c.sockets,
        "sockets_stale": c.sockets.is_some() && !c.sockets_fresh,
        "growth_per_hour": {
            "fds": c.growth.fds,
            "threads": c.growth.threads,
            "sockets": c.growth.sockets,
        },
    })
}

/// The top `limit` containers of `snap` by `by`; an error message names the accepted values.
pub fn top(snap: &Snapshot, by: &str, limit: usize) -> Result<Value, String> {
    if !BY.contains(&by) {
        return Err(format!("by must be one of {}, got {by:?}", BY.join(", ")));
    }
    let mut ranked: Vec<(f64, &ContainerSample)> = snap
        .containers
        .iter()
        .filter_map(|c| key(c, by).map(|k| (k, c)))
        .collect();
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.1.cgroup.path.cmp(&b.1.cgroup.path))
    });
    let containers: Vec<Value> = ranked.iter().take(limit).map(|(_, c)| entry(c)).collect();
    Ok(json!({
        "by": by,
        "limit": limit,
        "growth_window_seconds": snap.growth_window.as_secs(),
        "snapshot_unix_seconds": snap.pass.ended_unix,
        "containers": containers,
    }))
}
