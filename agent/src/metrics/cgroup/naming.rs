//! What a cgroup directory's name says: a container (and which runtime named it), a pod, or
//! neither. Covers the systemd and cgroupfs drivers of Docker, containerd and CRI-O:
//!
//! ```text
//! systemd:  kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/
//!               cri-containerd-<id>.scope | docker-<id>.scope | crio-<id>.scope (crio-conmon-<id>.scope skipped)
//!           system.slice/docker-<id>.scope                    (plain Docker)
//! cgroupfs: kubepods/burstable/pod<uid>/<id> | crio-<id>     (crio-conmon-<id> skipped)
//!           docker/<id>                                       (plain Docker)
//! ```

use serde::Serialize;

/// Which runtime the cgroup name points to (`Unknown` for the bare-id cgroupfs layout, which
/// every runtime uses under the kubelet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// `docker-<id>.scope` or `docker/<id>`.
    Docker,
    /// `cri-containerd-<id>.scope`.
    Containerd,
    /// `crio-<id>.scope` or `crio-<id>`.
    Crio,
    /// `libpod-<id>.scope` (Podman).
    Podman,
    /// A bare id under a pod cgroup.
    Unknown,
}

/// What one directory name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// A container's own cgroup.
    Container {
        /// The 64-hex container id.
        id: String,
        /// The runtime that named it.
        runtime: Runtime,
    },
    /// A runtime's monitor process beside a container (CRI-O's `conmon`): not a container.
    Monitor,
    /// Anything else: descend into it.
    Other,
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Classify the directory `name` whose parent directory is called `parent`.
pub fn parse_leaf(name: &str, parent: &str) -> Leaf {
    let stem = name.strip_suffix(".scope").unwrap_or(name);
    if stem.starts_with("crio-conmon-") || stem.starts_with("libpod-conmon-") {
        return Leaf::Monitor;
    }
    let prefixed = [
        ("cri-containerd-", Runtime::Containerd),
        ("docker-", Runtime::Docker),
        ("crio-", Runtime::Crio),
        ("libpod-", Runtime::Podman),
    ];
    for (prefix, runtime) in prefixed {
        if let Some(id) = stem.strip_prefix(prefix) {
            if is_container_id(id) {
                return Leaf::Container {
                    id: id.to_string(),
                    runtime,
                };
            }
        }
    }
    if is_container_id(name) {
        let runtime = if parent == "docker" {
            Runtime::Docker
        } else {
            Runtime::Unknown
        };
        return Leaf::Container {
            id: name.to_string(),
            runtime,
        };
    }
    Leaf::Other
}

/// The pod uid a directory name carries: `pod<uid>` (cgroupfs) or
/// `kubepods[-<qos>]-pod<uid with _ for ->.slice` (systemd). Returned with dashes.
pub fn pod_uid(name: &str) -> Option<String> {
    let raw = match name.strip_suffix(".slice") {
        Some(slice) => slice.rsplit('-').next()?.strip_prefix("pod")?,
        None => name.strip_prefix("pod")?,
    };
    let ok = (32..=36).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
    ok.then(|| raw.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4c8e0d3a1f2b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f";

    #[test]
    fn every_runtime_and_driver_naming_is_recognised() {
        let cases = [
            (
                format!("cri-containerd-{ID}.scope"),
                "x",
                Runtime::Containerd,
            ),
            (
                format!("docker-{ID}.scope"),
                "system.slice",
                Runtime::Docker,
            ),
            (format!("crio-{ID}.scope"), "x", Runtime::Crio),
            (format!("crio-{ID}"), "pod1", Runtime::Crio),
            (
                format!("libpod-{ID}.scope"),
                "machine.slice",
                Runtime::Podman,
            ),
            (ID.to_string(), "docker", Runtime::Docker),
            (ID.to_string(), "pod0a", Runtime::Unknown),
        ];
        for (name, parent, runtime) in cases {
            assert_eq!(
                parse_leaf(&name, parent),
                Leaf::Container {
                    id: ID.into(),
                    runtime
                },
                "{name}"
            );
        }
    }

    #[test]
    fn monitors_and_other_names_are_not_containers() {
        assert_eq!(
            parse_leaf(&format!("crio-conmon-{ID}.scope"), "x"),
            Leaf::Monitor
        );
        assert_eq!(parse_leaf(&format!("crio-conmon-{ID}"), "x"), Leaf::Monitor);
        for name in [
            "kubepods.slice",
            "init.scope",
            "docker.service",
            "docker-1234.scope",
            &ID[..63],
            &ID.to_uppercase(),
        ] {
            assert_eq!(parse_leaf(name, "docker"), Leaf::Other, "{name}");
        }
    }

    #[test]
    fn pod_uids_from_both_drivers() {
        let uid = "0f2d6a1c-4b3e-4d5f-8a9b-0c1d2e3f4a5b";
        let underscored = uid.replace('-', "_");
        assert_eq!(pod_uid(&format!("pod{uid}")).as_deref(), Some(uid));
        for qos in ["kubepods-burstable-", "kubepods-besteffort-", "kubepods-"] {
            let name = format!("{qos}pod{underscored}.slice");
            assert_eq!(pod_uid(&name).as_deref(), Some(uid), "{name}");
        }
        // Static pods: a 32-hex config hash as uid.
        assert_eq!(
            pod_uid("pod6b8e0d3a1f2b5c6d7e8f90a1b2c3d4e5").as_deref(),
            Some("6b8e0d3a1f2b5c6d7e8f90a1b2c3d4e5")
        );
        for name in [
            "kubepods",
            "burstable",
            "kubepods-burstable.slice",
            "podx",
            "pods",
        ] {
            assert_eq!(pod_uid(name), None, "{name}");
        }
    }
}
