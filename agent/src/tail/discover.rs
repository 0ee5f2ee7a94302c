//! Finding container logs under the Docker and CRI roots, naming their sources, and reading
//! their identity. Symlinked paths are resolved so one file is read once.

use super::identity;
use super::stats::{Input, Stats};
use runnel_index::SourceIdentity;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// A live log file found on disk.
#[derive(Debug, Clone)]
pub struct Found {
    /// Source key (contract: `cri:<podDir>/<container>/<restart>`, `docker:<id>`).
    pub key: String,
    /// Input.
    pub input: Input,
    /// The live path.
    pub live: PathBuf,
}

/// Directories under a log root that a scan could not list, with why (EACCES: the agent runs
/// without the right to read them). Their logs are not read; the tailer says so once per
/// directory and counts every failed listing. A directory gone between two steps of a scan
/// (a pod removed meanwhile) is not one of them.
#[derive(Debug, Default)]
pub struct Unlisted(pub Vec<(PathBuf, std::io::Error)>);

impl Unlisted {
    fn read_dir(&mut self, p: &Path) -> Option<std::fs::ReadDir> {
        match std::fs::read_dir(p) {
            Ok(rd) => Some(rd),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    self.0.push((p.to_path_buf(), e));
                }
                None
            }
        }
    }
}

fn dirs(p: &Path, unlisted: &mut Unlisted) -> Vec<PathBuf> {
    match unlisted.read_dir(p) {
        Some(rd) => rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect(),
        None => Vec::new(),
    }
}

fn name(p: &Path) -> Option<&str> {
    p.file_name().and_then(|n| n.to_str())
}

/// Live CRI logs in one container directory `<root>/<pod dir>/<container>`.
pub fn cri_in_container_dir(
    root: &Path,
    cdir: &Path,
    out: &mut Vec<Found>,
    unlisted: &mut Unlisted,
) {
    let (Some(container), Some(pod_dir)) = (name(cdir), cdir.parent().and_then(name)) else {
        return;
    };
    let Some(rd) = unlisted.read_dir(cdir) else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for e in rd.flatten() {
        let p = e.path();
        // The live `<restart>.log`, or a rotated `<restart>.log.<suffix>` whose live file is
        // momentarily missing (between the kubelet's rename and the runtime's reopen).
        let Some(n) = name(&p) else { continue };
        let Some(restart) = n.split_once(".log").map(|(r, _)| r) else {
            continue;
        };
        if restart.is_empty() || !restart.bytes().all(|b| b.is_ascii_digit()) || n.ends_with(".tmp")
        {
            continue;
        }
        if cdir.parent().and_then(|d| d.parent()) != Some(root) || !seen.insert(restart.to_string())
        {
            continue;
        }
        out.push(Found {
            key: format!("cri:{pod_dir}/{container}/{restart}"),
            input: Input::Cri,
            live: cdir.join(format!("{restart}.log")),
        });
    }
}

/// Every live CRI log under `root` (`<ns>_<pod>_<uid>/<container>/<restart>.log`).
pub fn scan_cri(root: &Path, out: &mut Vec<Found>, unlisted: &mut Unlisted) {
    for pod in dirs(root, unlisted) {
        for c in dirs(&pod, unlisted) {
            cri_in_container_dir(root, &c, out, unlisted);
        }
    }
}

/// The live Docker log in `<root>/<id>`, if present.
pub fn docker_in_dir(dir: &Path, out: &mut Vec<Found>, unlisted: &mut Unlisted) {
    let Some(id) = name(dir) else { return };
    let live_name = format!("{id}-json.log");
    let live = dir.join(&live_name);
    let mut rotated_only = || {
        unlisted
            .read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name().to_str().is_some_and(|n| {
                    n.starts_with(&format!("{live_name}.")) && !n.ends_with(".tmp")
                })
            })
    };
    if live.is_file() || rotated_only() {
        out.push(Found {
            key: format!("docker:{id}"),
            input: Input::Docker,
            live,
        });
    }
}

/// Every live Docker log under `root`.
pub fn scan_docker(root: &Path, out: &mut Vec<Found>, unlisted: &mut Unlisted) {
    for d in dirs(root, unlisted) {
        docker_in_dir(&d, out, unlisted);
    }
}

/// Largest `config.v2.json` read: Docker's are a few KiB (tens with many mounts and variables);
/// a bigger one is not held in memory, and the container gets the identity of its id alone.
pub const MAX_DOCKER_CONFIG_BYTES: u64 = 4 << 20;

/// The whole file, or an error when it is longer than `max` bytes (never read past `max`).
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let (f, _) = super::file::open_regular(path).map_err(|e| e.to_string())?;
    let mut b = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut b)
        .map_err(|e| e.to_string())?;
    if b.len() as u64 > max {
        return Err(format!("longer than {max} bytes; not read"));
    }
    Ok(b)
}

/// Identity of a found log (reads `config.v2.json` for Docker; fallbacks are counted).
pub fn identity_of(f: &Found, stats: &Stats) -> SourceIdentity {
    match f.input {
        Input::Cri => {
            let c = f.live.parent();
            let container = c.and_then(name).unwrap_or("");
            let pod_dir = c.and_then(Path::parent).and_then(name).unwrap_or("");
            let restart = name(&f.live)
                .and_then(|n| n.strip_suffix(".log"))
                .unwrap_or("");
            identity::cri_identity(pod_dir, container, restart, &f.live).unwrap_or_else(|| {
                SourceIdentity {
                    log_path: Some(f.live.display().to_string()),
                    ..SourceIdentity::default()
                }
            })
        }
        Input::Docker => {
            let id = f.key.strip_prefix("docker:").unwrap_or(&f.key);
            let cfg = f.live.with_file_name("config.v2.json");
            let parsed = read_capped(&cfg, MAX_DOCKER_CONFIG_BYTES).and_then(|b| {
                identity::docker_identity(id, &b, &f.live).map_err(|e| e.to_string())
            });
            match parsed {
                Ok(i) => i,
                Err(e) => {
                    stats
                        .input(Input::Docker)
                        .identity_fallbacks
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(path = %cfg.display(), error = %e, "no usable config.v2.json; identity from the container id only");
                    identity::docker_identity_from_id(id, &f.live)
                }
            }
        }
    }
}
