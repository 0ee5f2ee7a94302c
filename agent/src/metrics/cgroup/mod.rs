//! Containers' cgroups under `metrics.cgroup_root`: which hierarchy the node uses (v1 controllers
//! or the v2 unified tree; a hybrid node keeps its controllers on v1), where each container's
//! cgroup is, and which processes are in it.

pub mod naming;
pub mod stats;

use naming::{Leaf, Runtime};
use serde::Serialize;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Deepest directory level searched for containers (kubepods.slice/qos/pod/container is 4).
const MAX_DEPTH: usize = 12;

/// Where the controllers a container's figures come from are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1: one hierarchy per controller (a hybrid node is v1 for this purpose).
    V1 {
        /// `memory` — also the tree searched for containers and read for `cgroup.procs`.
        memory: Option<PathBuf>,
        /// `cpuacct` (or `cpu,cpuacct`).
        cpuacct: Option<PathBuf>,
        /// `pids`.
        pids: Option<PathBuf>,
        /// `blkio`.
        blkio: Option<PathBuf>,
    },
    /// cgroup v2: one tree with every controller.
    V2 {
        /// The unified mount.
        root: PathBuf,
    },
}

impl Layout {
    /// Find the layout under `root`; an error names what was looked for.
    pub fn detect(root: &Path) -> Result<Layout, String> {
        if root.join("cgroup.controllers").is_file() {
            return Ok(Layout::V2 {
                root: root.to_path_buf(),
            });
        }
        let dir = |names: &[&str], probe: &str| {
            names
                .iter()
                .map(|n| root.join(n))
                .find(|p| p.join(probe).exists())
        };
        let layout = Layout::V1 {
            memory: dir(&["memory"], "memory.usage_in_bytes"),
            cpuacct: dir(&["cpuacct", "cpu,cpuacct", "cpuacct,cpu"], "cpuacct.usage"),
            pids: dir(&["pids"], "cgroup.procs"),
            blkio: dir(&["blkio"], "cgroup.procs"),
        };
        if layout.tree().is_some() {
            return Ok(layout);
        }
        Err(format!(
            "{}: no cgroup hierarchy found (neither cgroup.controllers of v2 nor the memory, \
             cpuacct or pids controllers of v1); set metrics.cgroup_root to the host's \
             /sys/fs/cgroup",
            root.display()
        ))
    }

    /// The tree searched for container cgroups and read for their processes.
    pub fn tree(&self) -> Option<&Path> {
        match self {
            Layout::V2 { root } => Some(root),
            Layout::V1 {
                memory,
                cpuacct,
                pids,
                ..
            } => memory.as_deref().or(cpuacct.as_deref()).or(pids.as_deref()),
        }
    }

    /// `v1` or `v2`, for the collector's own metrics.
    pub fn version(&self) -> &'static str {
        match self {
            Layout::V1 { .. } => "v1",
            Layout::V2 { .. } => "v2",
        }
    }
}

/// One container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerCgroup {
    /// The container id (64 hex).
    pub id: String,
    /// The runtime its name points to.
    pub runtime: Runtime,
    /// The pod uid from an ancestor `pod…` directory, when under the kubelet.
    pub pod_uid: Option<String>,
    /// The path below the hierarchy root, starting with `/` (cAdvisor's `id` label).
    pub path: String,
}

/// Every container cgroup in `layout`, sorted by path. Directories that vanish during the walk
/// are skipped; other read errors are returned beside the result so the caller can count them.
pub fn discover(layout: &Layout) -> (Vec<ContainerCgroup>, Vec<String>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let Some(tree) = layout.tree() else {
        return (found, errors);
    };
    // (directory, path below the root, its own name, pod uid inherited from ancestors, depth)
    let mut stack = vec![(
        tree.to_path_buf(),
        String::new(),
        String::new(),
        None,
        0usize,
    )];
    while let Some((dir, rel, dir_name, pod, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let child_rel = format!("{rel}/{name}");
            match naming::parse_leaf(&name, &dir_name) {
                Leaf::Container { id, runtime } => found.push(ContainerCgroup {
                    id,
                    runtime,
                    pod_uid: pod.clone(),
                    path: child_rel,
                }),
                Leaf::Monitor => {}
                Leaf::Other if depth + 1 < MAX_DEPTH => {
                    let pod = naming::pod_uid(&name).or_else(|| pod.clone());
                    stack.push((entry.path(), child_rel, name, pod, depth + 1));
                }
                Leaf::Other => {}
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    (found, errors)
}

/// The processes of one container cgroup.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Procs {
    /// Pids as this agent's pid namespace sees them.
    pub pids: Vec<u32>,
    /// Processes listed as `0`: outside this agent's pid namespace (no `hostPID`).
    pub invisible: u64,
}

/// The processes in the container cgroup `rel` and its sub-cgroups (`cgroup.procs` of each).
pub fn procs(layout: &Layout, rel: &str, buf: &mut Vec<u8>) -> io::Result<Procs> {
    let mut out = Procs::default();
    let Some(tree) = layout.tree() else {
        return Ok(out);
    };
    let mut dirs = vec![join_rel(tree, rel)];
    let mut first = true;
    while let Some(dir) = dirs.pop() {
        match stats::read_file(&dir.join("cgroup.procs"), buf) {
            Ok(true) => parse_procs(buf, &mut out),
            Ok(false) if first => return Err(io::Error::from(io::ErrorKind::NotFound)),
            Ok(false) => {}
            Err(e) => return Err(e),
        }
        first = false;
        // A directory's link count is 2 plus its subdirectories (kernfs and disk filesystems
        // alike): list it only when it has sub-cgroups, which container cgroups rarely do.
        let has_children = std::fs::metadata(&dir).map_or(true, |m| m.nlink() > 2);
        if !has_children {
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
        }
    }
    Ok(out)
}

fn parse_procs(text: &[u8], out: &mut Procs) {
    for line in text.split(|b| *b == b'\n') {
        let Some(pid) = std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if pid == 0 {
            out.invisible += 1;
        } else {
            out.pids.push(pid);
        }
    }
}

/// `root` joined with a `/`-leading path below it.
pub fn join_rel(root: &Path, rel: &str) -> PathBuf {
    root.join(rel.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procs_lines_and_invisible_pids() {
        let mut p = Procs::default();
        parse_procs(b"12\n0\n345\n\ngarbage\n0\n", &mut p);
        assert_eq!(p.pids, vec![12, 345]);
        assert_eq!(p.invisible, 2);
    }

    #[test]
    fn processes_of_sub_cgroups_are_included() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("cgroup.controllers"), "memory\n").unwrap();
        let c = root.join("docker/abc");
        std::fs::create_dir_all(c.join("init.scope/inner")).unwrap();
        std::fs::write(c.join("cgroup.procs"), "10\n").unwrap();
        std::fs::write(c.join("init.scope/cgroup.procs"), "11\n").unwrap();
        std::fs::write(c.join("init.scope/inner/cgroup.procs"), "12\n0\n").unwrap();
        let layout = Layout::detect(root).unwrap();
        let mut buf = Vec::new();
        let mut p = procs(&layout, "/docker/abc", &mut buf).unwrap();
        p.pids.sort();
        assert_eq!((p.pids, p.invisible), (vec![10, 11, 12], 1));
        let p = procs(&layout, "/docker/abc/init.scope/inner", &mut buf).unwrap();
        assert_eq!(p.pids, vec![12]);
        let gone = procs(&layout, "/docker/gone", &mut buf).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_root_without_cgroups_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Layout::detect(dir.path()).unwrap_err();
        assert!(err.contains("no cgroup hierarchy found"), "{err}");
    }
}
