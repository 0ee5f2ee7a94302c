//! Who wrote a log: the CRI path (`<ns>_<pod>_<uid>/<container>/<restart>.log`) or Docker's
//! `config.v2.json` beside `<id>-json.log` (parsed once per container, not per line).

use runnel_index::SourceIdentity;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Identity from a CRI log path relative to the CRI root. None when the path is not in the
/// kubelet layout.
pub fn cri_identity(
    pod_dir: &str,
    container: &str,
    restart: &str,
    live: &Path,
) -> Option<SourceIdentity> {
    let mut parts = pod_dir.splitn(3, '_');
    let ns = parts.next()?;
    let pod = parts.next()?;
    let uid = parts.next()?;
    if ns.is_empty() || pod.is_empty() || uid.is_empty() || container.is_empty() {
        return None;
    }
    let restart: u32 = restart.parse().ok()?;
    Some(SourceIdentity {
        namespace: Some(ns.to_string()),
        pod: Some(pod.to_string()),
        pod_uid: Some(uid.to_string()),
        container: Some(container.to_string()),
        restart: Some(restart),
        log_path: Some(live.display().to_string()),
        ..SourceIdentity::default()
    })
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Image", default)]
    image: Option<String>,
    #[serde(rename = "Config", default)]
    config: Option<DockerInner>,
}

#[derive(Deserialize)]
struct DockerInner {
    #[serde(rename = "Image", default)]
    image: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Identity of a Docker container from its `config.v2.json` text; Err when it cannot be parsed
/// (the caller falls back to [`docker_identity_from_id`] and counts it).
pub fn docker_identity(
    id: &str,
    config_json: &[u8],
    live: &Path,
) -> Result<SourceIdentity, serde_json::Error> {
    let c: DockerConfig = serde_json::from_slice(config_json)?;
    let cid = c.id.filter(|s| !s.is_empty());
    let inner = c.config;
    let image = inner.as_ref().and_then(|i| i.image.clone()).or(c.image);
    let labels = inner.and_then(|i| i.labels).unwrap_or_default();
    let mut ident = docker_identity_of(id, c.name, image, labels, live);
    if let Some(cid) = cid {
        ident.container_id = Some(cid);
    }
    Ok(ident)
}

/// Identity of a Docker container from its name (`/name`), image and labels — the fields
/// `config.v2.json` and the Engine API's inspect both carry; the Kubernetes names come from the
/// kubelet's `io.kubernetes.*` labels when present.
pub fn docker_identity_of(
    id: &str,
    name: Option<String>,
    image: Option<String>,
    labels: BTreeMap<String, String>,
    live: &Path,
) -> SourceIdentity {
    let mut ident = docker_identity_from_id(id, live);
    ident.container_name = name
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !n.is_empty());
    ident.image = image.filter(|i| !i.is_empty());
    let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
    ident.pod = get("io.kubernetes.pod.name");
    ident.namespace = get("io.kubernetes.pod.namespace");
    ident.container = get("io.kubernetes.container.name");
    ident.pod_uid = get("io.kubernetes.pod.uid");
    ident.restart = get("annotation.io.kubernetes.container.restartCount")
        .or_else(|| get("io.kubernetes.container.restartCount"))
        .and_then(|v| v.parse().ok());
    ident.labels = labels;
    ident
}

/// Identity from the container id alone (no or unreadable `config.v2.json`).
pub fn docker_identity_from_id(id: &str, live: &Path) -> SourceIdentity {
    SourceIdentity {
        container_id: Some(id.to_string()),
        log_path: Some(live.display().to_string()),
        ..SourceIdentity::default()
    }
}
