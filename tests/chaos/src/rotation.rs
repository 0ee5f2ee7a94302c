//! The three rotation schemes a node's log files go through, done to real files the way the
//! tools do them, and the bookkeeping of which lines each rotated file holds (so a line missing
//! from the index can be traced to a file the "runtime" deleted).
//!
//! - Docker json-file (`max-file`): delete the oldest, shift `.1` → `.2` …, rename the live
//!   file to `.1`, open a new live file.
//! - kubelet: gzip every uncompressed rotated file (to `.gz.tmp`, then rename to `.gz`), delete
//!   the oldest beyond the limit, rename the live file to `<name>.<YYYYMMDD-HHMMSS>`, and the
//!   runtime reopens the live path.
//! - logrotate copytruncate: shift `.1` → `.2` …, copy the live file to `.1`, truncate the
//!   live file in place while the writer keeps its descriptor.

use flate2::write::GzEncoder;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How a container's files rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Docker's rename to `.1`, `.2` …
    DockerRename,
    /// The kubelet's rename to a timestamped name, older files gzipped.
    KubeletGzip,
    /// logrotate's copy then truncate in place.
    CopyTruncate,
}

impl Scheme {
    /// Short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Scheme::DockerRename => "docker-rename",
            Scheme::KubeletGzip => "kubelet-gzip",
            Scheme::CopyTruncate => "copytruncate",
        }
    }
}

/// What the writer does after a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Open the live path again (the old file was renamed away).
    Reopen,
    /// Truncate the live file it still has open (copytruncate).
    Truncate,
}

#[derive(Debug)]
struct Rotated {
    path: PathBuf,
    first: u64,
    last: u64,
    gz: bool,
}

/// The rotated files of one container, newest first.
#[derive(Debug)]
pub struct Rotator {
    scheme: Scheme,
    live: PathBuf,
    keep: usize,
    rotated: VecDeque<Rotated>,
    live_first: u64,
    last: Option<u64>,
    last_suffix_secs: i64,
}

fn numbered(live: &Path, n: usize) -> PathBuf {
    PathBuf::from(format!("{}.{n}", live.display()))
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Gzip `path` to `path.gz` through `path.gz.tmp`, then delete `path`; returns the new path.
fn gzip(path: &Path) -> std::io::Result<PathBuf> {
    let data = std::fs::read(path)?;
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
    let mut enc = GzEncoder::new(std::fs::File::create(&tmp)?, flate2::Compression::fast());
    enc.write_all(&data)?;
    enc.finish()?;
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(path)?;
    Ok(gz)
}

impl Rotator {
    /// No rotated files yet; `keep` rotated files are kept.
    pub fn new(scheme: Scheme, live: &Path, keep: usize) -> Rotator {
        Rotator {
            scheme,
            live: live.to_path_buf(),
            keep: keep.max(1),
            rotated: VecDeque::new(),
            live_first: 0,
            last: None,
            last_suffix_secs: 0,
        }
    }

    /// Line `seq` went to the live file.
    pub fn wrote(&mut self, seq: u64) {
        self.last = Some(seq);
    }

    /// Delete the oldest rotated files until fewer than `keep` remain, noting their lines.
    fn trim(&mut self, deleted: &mut Vec<(u64, u64)>) -> std::io::Result<()> {
        while self.rotated.len() >= self.keep {
            if let Some(old) = self.rotated.pop_back() {
                remove(&old.path)?;
                deleted.push((old.first, old.last));
            }
        }
        Ok(())
    }

    /// Shift `.i` → `.i+1`, oldest first.
    fn shift(&mut self) -> std::io::Result<()> {
        for i in (0..self.rotated.len()).rev() {
            let to = numbered(&self.live, i + 2);
            std::fs::rename(&self.rotated[i].path, &to)?;
            self.rotated[i].path = to;
        }
        Ok(())
    }

    /// Rotate now; lines of deleted files are added to `deleted`.
    pub fn rotate(&mut self, deleted: &mut Vec<(u64, u64)>) -> std::io::Result<After> {
        let Some(last) = self.last.filter(|&l| l >= self.live_first) else {
            return Ok(After::Reopen);
        };
        let (path, after) = match self.scheme {
            Scheme::DockerRename => {
                self.trim(deleted)?;
                self.shift()?;
                let to = numbered(&self.live, 1);
                std::fs::rename(&self.live, &to)?;
                (to, After::Reopen)
            }
            Scheme::KubeletGzip => {
                for r in self.rotated.iter_mut().filter(|r| !r.gz) {
                    r.path = gzip(&r.path)?;
                    r.gz = true;
                }
                self.trim(deleted)?;
                let now = crate::timefmt::now_ns() / 1_000_000_000;
                self.last_suffix_secs = now.max(self.last_suffix_secs + 1);
                let to = PathBuf::from(format!(
                    "{}.{}",
                    self.live.display(),
                    crate::timefmt::kubelet_suffix(self.last_suffix_secs)
                ));
                std::fs::rename(&self.live, &to)?;
                (to, After::Reopen)
            }
            Scheme::CopyTruncate => {
                self.trim(deleted)?;
                self.shift()?;
                let to = numbered(&self.live, 1);
                std::fs::copy(&self.live, &to)?;
                (to, After::Truncate)
            }
        };
        self.rotated.push_front(Rotated {
            path,
            first: self.live_first,
            last,
            gz: false,
        });
        self.live_first = last + 1;
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn each_scheme_leaves_the_files_its_tool_leaves_and_notes_deleted_lines() {
        for scheme in [
            Scheme::DockerRename,
            Scheme::KubeletGzip,
            Scheme::CopyTruncate,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let live = dir.path().join("0.log");
            let mut r = Rotator::new(scheme, &live, 2);
            let mut deleted = Vec::new();
            for round in 0..4u64 {
                std::fs::write(&live, format!("round {round}\n")).unwrap();
                r.wrote(round * 10);
                r.wrote(round * 10 + 9);
                let after = r.rotate(&mut deleted).unwrap();
                if after == After::Truncate {
                    std::fs::write(&live, "").unwrap();
                }
            }
            let got = names(dir.path());
            match scheme {
                Scheme::DockerRename => assert_eq!(got, ["0.log.1", "0.log.2"]),
                Scheme::CopyTruncate => assert_eq!(got, ["0.log", "0.log.1", "0.log.2"]),
                Scheme::KubeletGzip => {
                    assert_eq!(got.len(), 2, "{got:?}");
                    assert!(
                        got[0].ends_with(".gz") && !got[1].ends_with(".gz"),
                        "{got:?}"
                    );
                }
            }
            assert_eq!(deleted, [(0, 9), (10, 19)], "{scheme:?}");
        }
    }
}
