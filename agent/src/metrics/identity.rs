//! Who a container cgroup belongs to: the `namespace`, `pod`, `container` and `image` labels for
//! a container id, without the Kubernetes API. Sources, first non-empty value wins per label:
//!
//! 1. the index's log sources with the same container id (Docker `config.v2.json` labels, read
//!    once by the tailer);
//! 2. `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`, the kubelet's symlink names;
//! 3. `<docker root>/<id>/config.v2.json`;
//! 4. the runtime's OCI bundle `config.json` annotations (containerd's
//!    `io.kubernetes.cri.*`, CRI-O's `io.kubernetes.*` and `io.kubernetes.cri-o.ImageName`);
//! 5. the pod uid from the cgroup path against the CRI log directories `<ns>_<pod>_<uid>`.
//!
//! Files are read once per container id; the cheap in-memory maps are rebuilt every pass, so a
//! container whose logs appear after its cgroup gets its names on a later pass.

use crate::tail::identity::docker_identity;
use runnel_index::{SourceIdentity, Store};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// The identity labels of one container; empty strings where unknown (as cAdvisor prints them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Labels {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name (Docker's name for plain Docker containers).
    pub container: String,
    /// Image reference.
    pub image: String,
}

impl Labels {
    fn complete(&self) -> bool {
        !(self.namespace.is_empty()
            || self.pod.is_empty()
            || self.container.is_empty()
            || self.image.is_empty())
    }

    /// Fill every empty label from `other`.
    fn fill(&mut self, other: &Labels) {
        for (mine, theirs) in [
            (&mut self.namespace, &other.namespace),
            (&mut self.pod, &other.pod),
            (&mut self.container, &other.container),
            (&mut self.image, &other.image),
        ] {
            if mine.is_empty() && !theirs.is_empty() {
                mine.clone_from(theirs);
            }
        }
    }

    fn from_source(i: &SourceIdentity) -> Labels {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        Labels {
            namespace: s(&i.namespace),
            pod: s(&i.pod),
            container: i
                .container
                .clone()
                .or_else(|| i.container_name.clone())
                .unwrap_or_default(),
            image: s(&i.image),
        }
    }
}

/// Where identity can be read from; any of them may be absent.
#[derive(Debug, Default, Clone)]
pub struct IdentityPaths {
    /// Docker's containers directory (`<id>/config.v2.json`).
    pub docker_root: Option<PathBuf>,
    /// The kubelet's pod log directory (`<ns>_<pod>_<uid>/`).
    pub pod_log_root: Option<PathBuf>,
    /// The kubelet's container log symlinks (`/var/log/containers`).
    pub container_log_links: Option<PathBuf>,
    /// Runtime state directories holding `<id>/config.json` or `<id>/userdata/config.json`.
    pub runtime_state_dirs: Vec<PathBuf>,
}

impl IdentityPaths {
    /// The log roots, the kubelet's link directory beside the pod log root, and the runtime
    /// state directories.
    pub fn standard(
        docker_root: Option<PathBuf>,
        pod_log_root: Option<PathBuf>,
        runtime_state_dirs: Vec<PathBuf>,
    ) -> IdentityPaths {
        let container_log_links = pod_log_root
            .as_ref()
            .and_then(|p| p.parent())
            .map(|p| p.join("containers"));
        IdentityPaths {
            docker_root,
            pod_log_root,
            container_log_links,
            runtime_state_dirs,
        }
    }
}

/// Resolves container ids to [`Labels`], caching what files said.
pub struct Resolver {
    paths: IdentityPaths,
    store: Option<Arc<Store>>,
    from_files: HashMap<String, Labels>,
    by_id: HashMap<String, Labels>,
    by_pod_uid: HashMap<String, Labels>,
}

impl Resolver {
    /// A resolver over `paths`, joining with `store`'s log sources when given.
    pub fn new(paths: IdentityPaths, store: Option<Arc<Store>>) -> Resolver {
        Resolver {
            paths,
            store,
            from_files: HashMap::new(),
            by_id: HashMap::new(),
            by_pod_uid: HashMap::new(),
        }
    }

    /// Rebuild the in-memory maps (log sources, link names, pod directories) for a new pass.
    pub fn begin_pass(&mut self) {
        self.by_id.clear();
        self.by_pod_uid.clear();
        if let Some(store) = &self.store {
            for s in store.sources() {
                let labels = Labels::from_source(&s.identity);
                if let Some(id) = &s.identity.container_id {
                    self.by_id.entry(id.clone()).or_default().fill(&labels);
                }
                if let Some(uid) = &s.identity.pod_uid {
                    let pod_only = Labels {
                        namespace: labels.namespace.clone(),
                        pod: labels.pod.clone(),
                        ..Labels::default()
                    };
                    self.by_pod_uid
                        .entry(uid.clone())
                        .or_default()
                        .fill(&pod_only);
                }
            }
        }
        if let Some(dir) = &self.paths.container_log_links {
            for name in dir_names(dir) {
                if let Some((id, labels)) = parse_container_link(&name) {
                    self.by_id.entry(id).or_default().fill(&labels);
                }
            }
        }
        if let Some(dir) = &self.paths.pod_log_root {
            for name in dir_names(dir) {
                let mut parts = name.splitn(3, '_');
                if let (Some(ns), Some(pod), Some(uid)) = (parts.next(), parts.next(), parts.next())
                {
                    let labels = Labels {
                        namespace: ns.into(),
                        pod: pod.into(),
                        ..Labels::default()
                    };
                    self.by_pod_uid.entry(uid.into()).or_default().fill(&labels);
                }
            }
        }
    }

    /// The labels of container `id` (in pod `pod_uid` when known).
    pub fn labels(&mut self, id: &str, pod_uid: Option<&str>) -> Labels {
        let mut labels = self.by_id.get(id).cloned().unwrap_or_default();
        if !labels.complete() {
            if !self.from_files.contains_key(id) {
                let read = self.read_files(id);
                self.from_files.insert(id.to_string(), read);
            }
            if let Some(l) = self.from_files.get(id) {
                labels.fill(l);
            }
        }
        if let Some(l) = pod_uid.and_then(|u| self.by_pod_uid.get(u)) {
            labels.fill(l);
        }
        labels
    }

    /// Forget file-derived labels of containers that are gone.
    pub fn retain(&mut self, live: &HashSet<&str>) {
        self.from_files.retain(|id, _| live.contains(id.as_str()));
    }

    fn read_files(&self, id: &str) -> Labels {
        let mut labels = Labels::default();
        if let Some(root) = &self.paths.docker_root {
            let dir = root.join(id);
            if let Ok(bytes) = std::fs::read(dir.join("config.v2.json")) {
                let live = dir.join(format!("{id}-json.log"));
                if let Ok(ident) = docker_identity(id, &bytes, &live) {
                    labels.fill(&Labels::from_source(&ident));
                }
            }
        }
        for dir in &self.paths.runtime_state_dirs {
            for path in [
                dir.join(id).join("config.json"),
                dir.join(id).join("userdata").join("config.json"),
            ] {
                if let Ok(bytes) = std::fs::read(&path) {
                    if let Some(l) = oci_annotation_labels(&bytes) {
                        labels.fill(&l);
                    }
                }
            }
        }
        labels
    }
}

fn dir_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `<pod>_<namespace>_<container>-<64 hex id>.log` → (id, labels). Pod, namespace and container
/// names cannot contain `_`, so the split is unambiguous.
pub fn parse_container_link(name: &str) -> Option<(String, Labels)> {
    let stem = name.strip_suffix(".log")?;
    let mut parts = stem.splitn(3, '_');
    let (pod, ns, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let (container, id) = rest.rsplit_once('-')?;
    let valid_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid_id || pod.is_empty() || ns.is_empty() || container.is_empty() {
        return None;
    }
    let labels = Labels {
        namespace: ns.into(),
        pod: pod.into(),
        container: container.into(),
        image: String::new(),
    };
    Some((id.into(), labels))
}

#[derive(Deserialize)]
struct OciSpec {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Labels from an OCI bundle's annotations (containerd's CRI plugin or CRI-O).
pub fn oci_annotation_labels(config_json: &[u8]) -> Option<Labels> {
    let spec: OciSpec = serde_json::from_slice(config_json).ok()?;
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| spec.annotations.get(*k).filter(|v| !v.is_empty()))
            .cloned()
            .unwrap_or_default()
    };
    let labels = Labels {
        namespace: get(&[
            "io.kubernetes.cri.sandbox-namespace",
            "io.kubernetes.pod.namespace",
        ]),
        pod: get(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
        container: get(&[
            "io.kubernetes.cri.container-name",
            "io.kubernetes.container.name",
        ]),
        image: get(&[
            "io.kubernetes.cri.image-name",
            "io.kubernetes.cri-o.ImageName",
        ]),
    };
    (labels != Labels::default()).then_some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn kubelet_link_names_split_into_labels() {
        let (id, l) = parse_container_link(&format!("web-0_shop_nginx-{ID}.log")).unwrap();
        assert_eq!(id, ID);
        assert_eq!((l.pod.as_str(), l.namespace.as_str()), ("web-0", "shop"));
        assert_eq!(l.container, "nginx");
        let (_, l) = parse_container_link(&format!("a_b_side-car-{ID}.log")).unwrap();
        assert_eq!(l.container, "side-car");
        for bad in [
            "x.log",
            "a_b_c.log",
            &format!("a_b_c-{}.log", &ID[1..]),
            "a_b_c-.log",
        ] {
            assert_eq!(parse_container_link(bad), None, "{bad}");
        }
    }

    #[test]
    fn containerd_and_crio_annotations() {
        let containerd = br#"{"ociVersion":"1.1.0","annotations":{
            "io.kubernetes.cri.container-type":"container",
            "io.kubernetes.cri.container-name":"api",
            "io.kubernetes.cri.sandbox-name":"api-7d9f",
            "io.kubernetes.cri.sandbox-namespace":"prod",
            "io.kubernetes.cri.image-name":"registry.local/api:2.3"}}"#;
        let l = oci_annotation_labels(containerd).unwrap();
        assert_eq!(
            l,
            Labels {
                namespace: "prod".into(),
                pod: "api-7d9f".into(),
                container: "api".into(),
                image: "registry.local/api:2.3".into()
            }
        );
        let crio = br#"{"annotations":{"io.kubernetes.pod.namespace":"kube-system",
            "io.kubernetes.pod.name":"dns-1","io.kubernetes.container.name":"coredns",
            "io.kubernetes.cri-o.ImageName":"registry.k8s.io/coredns:v1.11"}}"#;
        assert_eq!(oci_annotation_labels(crio).unwrap().container, "coredns");
        assert_eq!(oci_annotation_labels(b"{}"), None);
        assert_eq!(oci_annotation_labels(b"not json"), None);
    }
}
