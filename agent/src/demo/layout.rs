//! A demo container's log files on disk: where they live, appending, and rotating them the way
//! Docker's json-file driver (`-json.log` → `.1` → `.2`) and the kubelet
//! (`0.log` → `0.log.<YYYYMMDD-HHMMSS>`, older ones gzipped) do.

use super::format::{docker_config_v2, PodRef};
use super::DemoError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which runtime writes the container's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Docker json-file under `<root>/docker/containers/<id>/<id>-json.log`.
    Docker,
    /// CRI under `<root>/pods/<ns>_<pod>_<uid>/<container>/0.log`.
    Cri,
}

/// Rotated files a Docker container keeps besides the live one (`max-file=3`).
const DOCKER_KEEP_ROTATED: u32 = 2;
/// Rotated files the kubelet keeps (`containerLogMaxFiles=5`).
const KUBELET_KEEP_ROTATED: usize = 4;

/// One container's log file set.
#[derive(Debug)]
pub struct LogFiles {
    /// Docker or CRI.
    pub runtime: Runtime,
    /// The live log file.
    pub live: PathBuf,
}

fn io_err(path: &Path, source: std::io::Error) -> DemoError {
    DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl LogFiles {
    /// Create the container's directory (and `config.v2.json` for Docker).
    pub fn create(
        root: &Path,
        runtime: Runtime,
        id: &str,
        pod: &PodRef,
        image: &str,
    ) -> Result<LogFiles, DemoError> {
        let (dir, live) = match runtime {
            Runtime::Docker => {
                let dir = root.join("docker").join("containers").join(id);
                let live = dir.join(format!("{id}-json.log"));
                (dir, live)
            }
            Runtime::Cri => {
                let dir = root
                    .join("pods")
                    .join(format!("{}_{}_{}", pod.namespace, pod.pod, pod.uid))
                    .join(&pod.container);
                let live = dir.join("0.log");
                (dir, live)
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        if runtime == Runtime::Docker {
            let cfg = dir.join("config.v2.json");
            let text = docker_config_v2(id, pod, image, &live.to_string_lossy());
            std::fs::write(&cfg, text).map_err(|e| io_err(&cfg, e))?;
        }
        Ok(LogFiles { runtime, live })
    }

    /// Append bytes to the live file with one `write` (as the runtimes do per entry batch).
    pub fn append(&self, bytes: &[u8]) -> Result<(), DemoError> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.live)
            .map_err(|e| io_err(&self.live, e))?;
        f.write_all(bytes).map_err(|e| io_err(&self.live, e))
    }

    /// Rotate the live file; `now_ns` names the kubelet's rotated file.
    pub fn rotate(&self, now_ns: i64) -> Result<(), DemoError> {
        if !self.live.exists() {
            return Ok(());
        }
        match self.runtime {
            Runtime::Docker => self.rotate_docker(),
            Runtime::Cri => self.rotate_kubelet(now_ns),
        }
    }

    fn numbered(&self, n: u32) -> PathBuf {
        PathBuf::from(format!("{}.{n}", self.live.display()))
    }

    fn rotate_docker(&self) -> Result<(), DemoError> {
        let oldest = self.numbered(DOCKER_KEEP_ROTATED);
        if oldest.exists() {
            std::fs::remove_file(&oldest).map_err(|e| io_err(&oldest, e))?;
        }
        for n in (1..DOCKER_KEEP_ROTATED).rev() {
            let from = self.numbered(n);
            if from.exists() {
                let to = self.numbered(n + 1);
                std::fs::rename(&from, &to).map_err(|e| io_err(&from, e))?;
            }
        }
        let to = self.numbered(1);
        std::fs::rename(&self.live, &to).map_err(|e| io_err(&self.live, e))
    }

    fn rotate_kubelet(&self, now_ns: i64) -> Result<(), DemoError> {
        let stamp = kubelet_stamp(now_ns);
        let rotated = PathBuf::from(format!("{}.{stamp}", self.live.display()));
        if rotated.exists() || PathBuf::from(format!("{}.gz", rotated.display())).exists() {
            // Same second as the last rotation: the kubelet would wait for the next check too.
            return Ok(());
        }
        // Gzip the previous uncompressed rotated files first (the kubelet keeps only the newest
        // rotated file plain), then rename the live file.
        for old in self.kubelet_rotated()? {
            if old.extension().is_some_and(|e| e != "gz") {
                gzip_in_place(&old)?;
            }
        }
        std::fs::rename(&self.live, &rotated).map_err(|e| io_err(&self.live, e))?;
        let all = self.kubelet_rotated()?;
        if all.len() > KUBELET_KEEP_ROTATED {
            for old in &all[..all.len() - KUBELET_KEEP_ROTATED] {
                std::fs::remove_file(old).map_err(|e| io_err(old, e))?;
            }
        }
        Ok(())
    }

    /// Rotated kubelet files, oldest first (the stamp sorts by time).
    fn kubelet_rotated(&self) -> Result<Vec<PathBuf>, DemoError> {
        let dir = self.live.parent().unwrap_or(Path::new("."));
        let prefix = format!(
            "{}.",
            self.live
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && !name.ends_with(".tmp") {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }
}

/// `YYYYMMDD-HHMMSS` in UTC, the kubelet's rotated-file suffix.
pub fn kubelet_stamp(now_ns: i64) -> String {
    // "YYYY-MM-DDTHH:MM:SS..." → digits only.
    let t = super::format::format_time(now_ns.div_euclid(1_000_000_000) * 1_000_000_000);
    let b = t.as_bytes();
    if b.len() < 19 {
        return "19700101-000000".to_string();
    }
    let pick = |r: std::ops::Range<usize>| String::from_utf8_lossy(&b[r]).into_owned();
    format!(
        "{}{}{}-{}{}{}",
        pick(0..4),
        pick(5..7),
        pick(8..10),
        pick(11..13),
        pick(14..16),
        pick(17..19)
    )
}

/// Compress `path` to `path.gz` via a `.tmp` file and remove the original, as the kubelet does.
fn gzip_in_place(path: &Path) -> Result<(), DemoError> {
    let data = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.tmp", gz.display()));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&data).map_err(|e| io_err(&tmp, e))?;
    let bytes = enc.finish().map_err(|e| io_err(&tmp, e))?;
    std::fs::write(&tmp, bytes).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, &gz).map_err(|e| io_err(&tmp, e))?;
    std::fs::remove_file(path).map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodRef {
        PodRef {
            namespace: "ns".into(),
            pod: "p".into(),
            uid: "u".into(),
            container: "c".into(),
        }
    }

    #[test]
    fn docker_rotation_shifts_and_keeps_max_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::create(dir.path(), Runtime::Docker, "abc", &pod(), "img").unwrap();
        assert!(dir
            .path()
            .join("docker/containers/abc/config.v2.json")
            .exists());
        for gen in 0..4 {
            files.append(format!("gen{gen}\n").as_bytes()).unwrap();
            files.rotate(0).unwrap();
        }
        let read =
            |s: &str| std::fs::read_to_string(format!("{}{s}", files.live.display())).unwrap();
        assert_eq!(read(".1"), "gen3\n");
        assert_eq!(read(".2"), "gen2\n");
        assert!(!PathBuf::from(format!("{}.3", files.live.display())).exists());
        assert!(!files.live.exists());
    }

    #[test]
    fn kubelet_rotation_renames_with_stamp_and_gzips_older() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::create(dir.path(), Runtime::Cri, "x", &pod(), "img").unwrap();
        assert_eq!(files.live, dir.path().join("pods/ns_p_u/c/0.log"));
        let base = 1_714_564_800_000_000_000i64;
        for gen in 0..7 {
            files.append(format!("gen{gen}\n").as_bytes()).unwrap();
            files.rotate(base + gen * 1_000_000_000).unwrap();
        }
        let rotated = files.kubelet_rotated().unwrap();
        let names: Vec<String> = rotated
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), KUBELET_KEEP_ROTATED);
        assert_eq!(names.last().unwrap(), "0.log.20240501-120006");
        assert!(
            names[..names.len() - 1].iter().all(|n| n.ends_with(".gz")),
            "{names:?}"
        );
        let gz = std::fs::File::open(&rotated[rotated.len() - 2]).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut text).unwrap();
        assert_eq!(text, "gen5\n");
    }
}
