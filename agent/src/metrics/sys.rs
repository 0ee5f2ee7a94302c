//! The few system calls the collector needs that `std` does not offer: `readlinkat` over an open
//! `/proc/<pid>/fd` directory (no path walk per fd), the filesystem type of the proc root, and the
//! calling thread's CPU time (the socket budget is CPU time, not wall time).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// `PROC_SUPER_MAGIC` from `linux/magic.h`.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: path contains a NUL byte", path.display()),
        )
    })
}

/// Whether `path` is on a proc filesystem. Only there does `st_size` of `/proc/<pid>/fd` count
/// open descriptors (Linux 6.2 and later); a fixture tree on disk must be listed instead.
pub fn is_procfs(path: &Path) -> bool {
    let Ok(c) = c_path(path) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `st` a writable statfs.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == PROC_SUPER_MAGIC
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a writable timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// What a walk over one process's fd directory found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FdLinks {
    /// Entries (open descriptors) seen.
    pub entries: u64,
    /// Entries whose link target starts with the prefix asked for.
    pub matching: u64,
}

/// An open directory stream over `/proc/<pid>/fd`.
pub struct FdDir {
    dir: std::ptr::NonNull<libc::DIR>,
}

impl FdDir {
    /// Open `path` as a directory stream. Fails with `PermissionDenied` when the caller may not
    /// list another user's descriptors (needs CAP_DAC_READ_SEARCH).
    pub fn open(path: &Path) -> io::Result<FdDir> {
        let c = c_path(path)?;
        // SAFETY: `c` is a valid NUL-terminated path.
        let dir = unsafe { libc::opendir(c.as_ptr()) };
        match std::ptr::NonNull::new(dir) {
            Some(dir) => Ok(FdDir { dir }),
            None => Err(io::Error::last_os_error()),
        }
    }

    /// Read every entry's link target with `readlinkat` and count those starting with `prefix`.
    /// A descriptor closed between listing and reading is skipped; any other `readlinkat` error
    /// (`PermissionDenied` without CAP_SYS_PTRACE) ends the walk with that error.
    pub fn count_links(&mut self, prefix: &[u8]) -> io::Result<FdLinks> {
        let mut found = FdLinks::default();
        let mut target = [0u8; 64];
        // SAFETY: `self.dir` is an open stream owned by `self`.
        let dfd = unsafe { libc::dirfd(self.dir.as_ptr()) };
        loop {
            // readdir signals errors only through errno, so clear it first.
            // SAFETY: errno is thread-local.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: as above; the returned entry is valid until the next readdir call.
            let ent = unsafe { libc::readdir(self.dir.as_ptr()) };
            if ent.is_null() {
                let err = io::Error::last_os_error();
                return match err.raw_os_error() {
                    Some(0) | None => Ok(found),
                    Some(_) => Err(err),
                };
            }
            // SAFETY: `ent` is non-null and `d_name` is NUL-terminated.
            let name = unsafe { (*ent).d_name.as_ptr() };
            // SAFETY: `name` points into the entry returned above.
            let first = unsafe { *name } as u8;
            if first == b'.' {
                continue;
            }
            found.entries += 1;
            // SAFETY: `dfd` is the stream's descriptor, `name` a NUL-terminated entry name and
            // `target` a writable buffer of the length passed.
            let n = unsafe {
                libc::readlinkat(
                    dfd,
                    name,
                    target.as_mut_ptr() as *mut libc::c_char,
                    target.len(),
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::NotFound {
                    found.entries -= 1;
                    continue;
                }
                return Err(err);
            }
            if target[..n as usize].starts_with(prefix) {
                found.matching += 1;
            }
        }
    }
}

impl Drop for FdDir {
    fn drop(&mut self) {
        // SAFETY: the stream was opened by `opendir` and is closed exactly once.
        unsafe { libc::closedir(self.dir.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_socket_links_of_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let u = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let after = FdDir::open(Path::new("/proc/self/fd"))
            .and_then(|mut d| d.count_links(b"socket:["))
            .unwrap();
        // Other tests run in parallel threads of this process, so only a lower bound holds.
        assert!(after.matching >= 2, "{after:?}");
        assert!(
            after.entries >= after.matching + 3,
            "stdio is open too: {after:?}"
        );
        drop((l, u));
    }

    #[test]
    fn proc_is_procfs_and_tmp_is_not() {
        assert!(is_procfs(Path::new("/proc")));
        assert!(!is_procfs(&std::env::temp_dir()));
    }

    #[test]
    fn thread_cpu_time_advances_with_work() {
        let t0 = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_time() > t0);
    }
}
