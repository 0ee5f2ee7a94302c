//! One container cgroup's CPU, memory, IO and pids figures, from the v1 controller files or the
//! v2 unified files, with the arithmetic cAdvisor uses (working set = usage − inactive file, never
//! below zero; `pids.max` of `max` reported as 0).
//!
//! | figure | v1 | v2 |
//! |---|---|---|
//! | CPU ns | `cpuacct.usage` | `cpu.stat` `usage_usec` × 1000 |
//! | memory usage | `memory.usage_in_bytes` | `memory.current` |
//! | inactive file | `memory.stat` `total_inactive_file` | `memory.stat` `inactive_file` |
//! | RSS | `memory.stat` `total_rss` | `memory.stat` `anon` |
//! | IO bytes | `blkio.*io_service_bytes_recursive` `Read`/`Write` | `io.stat` `rbytes`/`wbytes` |
//! | threads | `pids.current` | `pids.current` |
//! | threads max | `pids.max` | `pids.max` |

use super::{join_rel, Layout};
use std::io::{self, Read};
use std::path::Path;

/// The v1 blkio files tried in order (CFQ, BFQ, then the throttle layer every kernel has); the
/// first one with per-device lines wins, as runc reads them.
const BLKIO_FILES: [&str; 3] = [
    "blkio.io_service_bytes_recursive",
    "blkio.bfq.io_service_bytes_recursive",
    "blkio.throttle.io_service_bytes_recursive",
];

/// A container cgroup's figures; `None` where the controller or file is absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CgroupStats {
    /// CPU time used, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Memory working set (usage minus inactive file), bytes.
    pub memory_working_set: Option<u64>,
    /// Anonymous memory (RSS), bytes.
    pub memory_rss: Option<u64>,
    /// Bytes read from block devices.
    pub io_read_bytes: Option<u64>,
    /// Bytes written to block devices.
    pub io_write_bytes: Option<u64>,
    /// Tasks (threads) in the cgroup.
    pub pids_current: Option<u64>,
    /// The pids limit; 0 when unlimited.
    pub pids_max: Option<u64>,
}

/// Read `path` into `buf`. `Ok(false)` when it does not exist (controller absent, or the cgroup
/// went away); other errors are returned for the caller to count.
pub fn read_file(path: &Path, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    match std::fs::File::open(path).and_then(|mut f| f.read_to_end(buf)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Reads stat files, keeping the first error of a pass for the log and counting the rest.
pub struct StatReader {
    buf: Vec<u8>,
    /// Errors other than a missing file, with their paths.
    pub errors: Vec<String>,
}

impl Default for StatReader {
    fn default() -> Self {
        StatReader {
            buf: Vec::with_capacity(4096),
            errors: Vec::new(),
        }
    }
}

impl StatReader {
    /// The figures of the container cgroup at `rel` (path below the hierarchy root).
    pub fn read(&mut self, layout: &Layout, rel: &str) -> CgroupStats {
        match layout {
            Layout::V1 {
                memory,
                cpuacct,
                pids,
                blkio,
            } => {
                let mut s = CgroupStats::default();
                if let Some(dir) = cpuacct {
                    s.cpu_usage_ns = self.number(&join_rel(dir, rel).join("cpuacct.usage"));
                }
                if let Some(dir) = memory {
                    let dir = join_rel(dir, rel);
                    let usage = self.number(&dir.join("memory.usage_in_bytes"));
                    let (inactive, rss) = self.memory_stat(
                        &dir.join("memory.stat"),
                        ["total_inactive_file", "inactive_file"],
                        ["total_rss", "rss"],
                    );
                    s.memory_working_set = working_set(usage, inactive);
                    s.memory_rss = rss;
                }
                if let Some(dir) = pids {
                    let dir = join_rel(dir, rel);
                    s.pids_current = self.number(&dir.join("pids.current"));
                    s.pids_max = self.pids_max(&dir.join("pids.max"));
                }
                if let Some(dir) = blkio {
                    let (r, w) = self.blkio(&join_rel(dir, rel)).unzip();
                    (s.io_read_bytes, s.io_write_bytes) = (r, w);
                }
                s
            }
            Layout::V2 { root } => {
                let dir = join_rel(root, rel);
                let mut s = CgroupStats {
                    cpu_usage_ns: self
                        .keyed(&dir.join("cpu.stat"), "usage_usec")
                        .map(|us| us.saturating_mul(1000)),
                    ..CgroupStats::default()
                };
                let usage = self.number(&dir.join("memory.current"));
                let (inactive, rss) =
                    self.memory_stat(&dir.join("memory.stat"), ["inactive_file"; 2], ["anon"; 2]);
                s.memory_working_set = working_set(usage, inactive);
                s.memory_rss = rss;
                s.pids_current = self.number(&dir.join("pids.current"));
                s.pids_max = self.pids_max(&dir.join("pids.max"));
                if self.load(&dir.join("io.stat")) {
                    let (r, w) = parse_io_stat(&self.buf);
                    s.io_read_bytes = Some(r);
                    s.io_write_bytes = Some(w);
                }
                s
            }
        }
    }

    fn load(&mut self, path: &Path) -> bool {
        match read_file(path, &mut self.buf) {
            Ok(found) => found,
            Err(e) => {
                self.errors.push(e.to_string());
                false
            }
        }
    }

    fn bad(&mut self, path: &Path, what: &str) {
        self.errors.push(format!("{}: {what}", path.display()));
    }

    fn number(&mut self, path: &Path) -> Option<u64> {
        if !self.load(path) {
            return None;
        }
        let v = parse_number(&self.buf);
        if v.is_none() {
            self.bad(path, "not a number");
        }
        v
    }

    fn pids_max(&mut self, path: &Path) -> Option<u64> {
        if !self.load(path) {
            return None;
        }
        if self.buf.trim_ascii() == b"max" {
            return Some(0);
        }
        let v = parse_number(&self.buf);
        if v.is_none() {
            self.bad(path, "neither a number nor max");
        }
        v
    }

    fn keyed(&mut self, path: &Path, key: &str) -> Option<u64> {
        if !self.load(path) {
            return None;
        }
        let v = keyed_value(&self.buf, key);
        if v.is_none() {
            self.bad(path, &format!("no {key} line"));
        }
        v
    }

    /// (inactive file, rss) from a memory.stat, each from the first key of its list present.
    fn memory_stat(
        &mut self,
        path: &Path,
        inactive: [&str; 2],
        rss: [&str; 2],
    ) -> (Option<u64>, Option<u64>) {
        if !self.load(path) {
            return (None, None);
        }
        let first = |keys: [&str; 2], buf: &[u8]| keys.iter().find_map(|k| keyed_value(buf, k));
        (first(inactive, &self.buf), first(rss, &self.buf))
    }

    /// Read and written bytes from the first blkio file with device lines; zero when the files
    /// exist but no device saw IO (they then hold only `Total 0`).
    fn blkio(&mut self, dir: &Path) -> Option<(u64, u64)> {
        let mut seen = false;
        for name in BLKIO_FILES {
            if self.load(&dir.join(name)) {
                seen = true;
                if let Some(rw) = parse_blkio(&self.buf) {
                    return Some(rw);
                }
            }
        }
        seen.then_some((0, 0))
    }
}

fn working_set(usage: Option<u64>, inactive_file: Option<u64>) -> Option<u64> {
    usage.map(|u| u.saturating_sub(inactive_file.unwrap_or(0)))
}

fn parse_number(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// The value of `key value` lines (memory.stat, cpu.stat).
pub fn keyed_value(text: &[u8], key: &str) -> Option<u64> {
    text.split(|b| *b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key.as_bytes())?;
        let rest = rest.strip_prefix(b" ")?;
        parse_number(rest)
    })
}

/// Sum of `Read` and `Write` over devices in a v1 blkio `io_service_bytes` file; `None` when it
/// has no device lines (a scheduler that is not in use leaves only `Total 0`).
pub fn parse_blkio(text: &[u8]) -> Option<(u64, u64)> {
    let (mut read, mut write, mut lines) = (0u64, 0u64, 0usize);
    for line in text.split(|b| *b == b'\n') {
        let mut f = line.split(|b| *b == b' ').filter(|f| !f.is_empty());
        let (Some(_dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Some(v) = parse_number(v) else { continue };
        lines += 1;
        match op {
            b"Read" => read = read.saturating_add(v),
            b"Write" => write = write.saturating_add(v),
            _ => {}
        }
    }
    (lines > 0).then_some((read, write))
}

/// Sum of `rbytes=` and `wbytes=` over devices in a v2 `io.stat`.
pub fn parse_io_stat(text: &[u8]) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for field in text.split(|b| *b == b' ' || *b == b'\n') {
        if let Some(v) = field.strip_prefix(b"rbytes=").and_then(parse_number) {
            read = read.saturating_add(v);
        } else if let Some(v) = field.strip_prefix(b"wbytes=").and_then(parse_number) {
            write = write.saturating_add(v);
        }
    }
    (read, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_lines_need_the_whole_key() {
        let stat = b"total_inactive_file 100\ninactive_file 7\nanon 9\n";
        assert_eq!(keyed_value(stat, "inactive_file"), Some(7));
        assert_eq!(keyed_value(stat, "total_inactive_file"), Some(100));
        assert_eq!(keyed_value(stat, "anon"), Some(9));
        assert_eq!(keyed_value(stat, "file"), None);
        assert_eq!(keyed_value(b"anon x\n", "anon"), None);
    }

    #[test]
    fn blkio_sums_devices_and_skips_totals() {
        let text =
            b"8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:16 Read 1\n8:16 Write 2\nTotal 12291\n";
        assert_eq!(parse_blkio(text), Some((4097, 8194)));
        assert_eq!(parse_blkio(b"Total 0\n"), None);
        assert_eq!(parse_blkio(b""), None);
    }

    #[test]
    fn io_stat_sums_devices() {
        let text = b"8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n\
                     259:0 rbytes=5 wbytes=6 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(text), (105, 206));
        assert_eq!(parse_io_stat(b""), (0, 0));
    }

    #[test]
    fn working_set_never_goes_below_zero() {
        assert_eq!(working_set(Some(10), Some(4)), Some(6));
        assert_eq!(working_set(Some(3), Some(4)), Some(0));
        assert_eq!(working_set(Some(3), None), Some(3));
        assert_eq!(working_set(None, Some(4)), None);
    }
}
