//! Per-process counts read from `<proc_root>/<pid>`: threads (`Threads:` in `status`), open
//! descriptors (`st_size` of `fd/` on procfs, else a listing — never a `readlink` to count) and
//! sockets (one `readlinkat` per descriptor, the expensive part the collector budgets).

use super::sys::{self, FdDir, FdLinks};
use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The kind of access a read needed; a denial degrades one kind of figure, not the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Listing another user's `/proc/<pid>/fd` (CAP_DAC_READ_SEARCH).
    FdList,
    /// `readlink` of another user's descriptors (CAP_SYS_PTRACE).
    FdLink,
    /// `/proc/<pid>/status` and `/proc/<pid>/net/*`.
    ProcFile,
    /// `/proc/<pid>/ns/net` (CAP_SYS_PTRACE).
    Netns,
}

impl Access {
    /// Label value in `runnel_metrics_access_denied_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::FdList => "fd_list",
            Access::FdLink => "fd_readlink",
            Access::ProcFile => "proc_file",
            Access::Netns => "netns",
        }
    }

    /// What the operator can do about a denial, for the one log line it gets.
    pub fn remedy(self) -> &'static str {
        match self {
            Access::FdList => {
                "file descriptors of other users' processes are not counted: \
                 grant CAP_DAC_READ_SEARCH"
            }
            Access::FdLink => {
                "sockets of other users' processes are not counted: grant CAP_SYS_PTRACE"
            }
            Access::ProcFile => "thread counts or TCP tables are not readable under proc_root",
            Access::Netns => {
                "network namespaces cannot be told apart (TCP states skipped): \
                 grant CAP_SYS_PTRACE"
            }
        }
    }

    /// Every kind, in rendering order.
    pub const ALL: [Access; 4] = [
        Access::FdList,
        Access::FdLink,
        Access::ProcFile,
        Access::Netns,
    ];
}

/// Why a per-process read produced no figure.
#[derive(Debug)]
pub enum ProcError {
    /// The process exited (or is not in this pid namespace).
    Gone,
    /// The agent lacks the right named.
    Denied(Access),
    /// Anything else: an unexpected I/O error or unparsable content.
    Other(String),
}

fn classify(err: io::Error, access: Access, path: &Path) -> ProcError {
    match err.kind() {
        io::ErrorKind::NotFound => ProcError::Gone,
        io::ErrorKind::PermissionDenied => ProcError::Denied(access),
        _ if err.raw_os_error() == Some(libc::ESRCH) => ProcError::Gone,
        _ => ProcError::Other(format!("{}: {err}", path.display())),
    }
}

/// Reads per-process files under one proc root, reusing its buffers across processes.
pub struct ProcReader {
    root: PathBuf,
    procfs: bool,
    path: PathBuf,
    name: String,
    buf: Vec<u8>,
}

impl ProcReader {
    /// A reader of `root` (the host's `/proc`, or a fixture tree).
    pub fn new(root: &Path) -> ProcReader {
        ProcReader {
            root: root.to_path_buf(),
            procfs: sys::is_procfs(root),
            path: PathBuf::new(),
            name: String::new(),
            buf: Vec::with_capacity(4096),
        }
    }

    /// The proc root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn set_path(&mut self, pid: u32, rest: &str) {
        self.name.clear();
        let _ = write!(self.name, "{pid}/{rest}");
        self.path.clear();
        self.path.push(&self.root);
        self.path.push(&self.name);
    }

    fn read_into_buf(&mut self, access: Access) -> Result<(), ProcError> {
        self.buf.clear();
        std::fs::File::open(&self.path)
            .and_then(|mut f| f.read_to_end(&mut self.buf))
            .map(|_| ())
            .map_err(|e| classify(e, access, &self.path))
    }

    /// Threads of `pid` (`Threads:` in `status`).
    pub fn threads(&mut self, pid: u32) -> Result<u64, ProcError> {
        self.set_path(pid, "status");
        self.read_into_buf(Access::ProcFile)?;
        parse_status_threads(&self.buf)
            .ok_or_else(|| ProcError::Other(format!("{}: no Threads: line", self.path.display())))
    }

    /// Open descriptors of `pid`: `st_size` of `fd/` where procfs reports it, else a listing.
    pub fn fds(&mut self, pid: u32) -> Result<u64, ProcError> {
        self.set_path(pid, "fd");
        if self.procfs {
            let meta = std::fs::metadata(&self.path)
                .map_err(|e| classify(e, Access::FdList, &self.path))?;
            if meta.len() > 0 {
                return Ok(meta.len());
            }
            // Before Linux 6.2 the size is 0: count the entries instead.
        }
        let entries =
            std::fs::read_dir(&self.path).map_err(|e| classify(e, Access::FdList, &self.path))?;
        let mut n = 0;
        for e in entries {
            match e {
                Ok(_) => n += 1,
                Err(e) => return Err(classify(e, Access::FdList, &self.path)),
            }
        }
        Ok(n)
    }

    /// Descriptors of `pid` and how many of them are sockets (one `readlinkat` each).
    pub fn sockets(&mut self, pid: u32) -> Result<FdLinks, ProcError> {
        self.set_path(pid, "fd");
        let mut dir =
            FdDir::open(&self.path).map_err(|e| classify(e, Access::FdList, &self.path))?;
        dir.count_links(b"socket:[")
            .map_err(|e| classify(e, Access::FdLink, &self.path))
    }

    /// The network namespace of `pid` (`net:[4026531840]`), to read each TCP table once.
    pub fn netns(&mut self, pid: u32) -> Result<String, ProcError> {
        self.set_path(pid, "ns/net");
        std::fs::read_link(&self.path)
            .map(|t| t.to_string_lossy().into_owned())
            .map_err(|e| classify(e, Access::Netns, &self.path))
    }

    /// The bytes of `/proc/<pid>/net/<table>` (e.g. `tcp`, `tcp6`), valid until the next call.
    pub fn net_table(&mut self, pid: u32, table: &str) -> Result<&[u8], ProcError> {
        self.set_path(pid, "net/");
        self.path.as_mut_os_string().push(table);
        self.read_into_buf(Access::ProcFile)?;
        Ok(&self.buf)
    }
}

/// `Threads:` from the text of `/proc/<pid>/status`.
pub fn parse_status_threads(status: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(status, b"\nThreads:")?;
    let rest = &status[at + b"\nThreads:".len()..];
    let rest = &rest[rest
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_line_is_found_and_bad_status_is_none() {
        let status = b"Name:\tjava\nState:\tS (sleeping)\nThreads:\t217\nSigQ:\t0/63336\n";
        assert_eq!(parse_status_threads(status), Some(217));
        assert_eq!(parse_status_threads(b"Name:\tx\nThreads:\t\n"), None);
        assert_eq!(parse_status_threads(b"Name:\tx\n"), None);
        assert_eq!(parse_status_threads(b""), None);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        let mut r = ProcReader::new(Path::new("/proc"));
        assert!(r.threads(pid).unwrap() >= 1);
        let fds = r.fds(pid).unwrap();
        assert!(fds >= 3, "stdio at least: {fds}");
        assert!(r.netns(pid).unwrap().starts_with("net:["));
        assert!(r.net_table(pid, "tcp").unwrap().starts_with(b"  sl"));
        assert!(matches!(r.threads(u32::MAX), Err(ProcError::Gone)));
        assert!(matches!(r.fds(u32::MAX), Err(ProcError::Gone)));
    }
}
