//! The agent's data dir on a small tmpfs the test mounts (root only), and a ballast file that
//! fills it: appends, seals, cursor writes and dead letters then fail with `ENOSPC` until the
//! ballast goes. The mount is undone on drop, also when the run fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `bytes` mounted on a fresh temporary directory, for a test's small data disk:
/// unmounted, then its mount point removed, on drop (declare it before the agent that uses it,
/// so the agent stops first).
pub fn mount_on_temp_dir(prefix: &str, bytes: u64) -> Result<TempTmpfs, String> {
    let mount_point = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("a mount point: {e}"))?;
    let disk = Tmpfs::mount(mount_point.path(), bytes)?;
    Ok(TempTmpfs {
        disk,
        _mount_point: mount_point,
    })
}

/// What [`mount_on_temp_dir`] made; the fields drop in order: unmount, then the directory.
#[derive(Debug)]
pub struct TempTmpfs {
    /// The mount.
    pub disk: Tmpfs,
    _mount_point: tempfile::TempDir,
}

/// A mounted tmpfs, unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mount a tmpfs of `bytes` at `dir` (created if missing).
    pub fn mount(dir: &Path, bytes: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes}"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs at {} failed ({}): {} — the soak needs root to mount its small data disk",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Bytes free on the mount.
    pub fn free_bytes(&self) -> u64 {
        free_bytes(&self.dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file there (a process that outlived the run): detach it
            // now, the kernel frees it when the last user goes.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Free bytes of the file system holding `dir` (0 when it cannot be read).
pub fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `s` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return 0;
    }
    s.f_bavail as u64 * s.f_frsize as u64
}

/// A file that takes every free byte of a file system while it exists.
#[derive(Debug)]
pub struct Ballast {
    path: PathBuf,
    /// Bytes it took.
    pub bytes: u64,
}

impl Ballast {
    /// Write zeros to `path` until the file system is full (big writes, then small ones for the
    /// last pages).
    pub fn fill(path: &Path) -> Result<Ballast, String> {
        let mut b = Ballast {
            path: path.to_path_buf(),
            bytes: 0,
        };
        std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        b.top_up()?;
        Ok(b)
    }

    /// Take whatever became free since (the agent's retention or a removed file).
    pub fn top_up(&mut self) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        for chunk in [1 << 20, 64 << 10, 4 << 10, 512] {
            let buf = vec![0u8; chunk];
            loop {
                match f.write(&buf) {
                    Ok(0) => break,
                    Ok(n) => self.bytes += n as u64,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => return Err(format!("filling {}: {e}", self.path.display())),
                }
            }
        }
        Ok(())
    }

    /// Free `bytes` of it again (the disk is then almost full).
    pub fn give_back(&mut self, bytes: u64) -> Result<(), String> {
        self.bytes = self.bytes.saturating_sub(bytes);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .and_then(|f| f.set_len(self.bytes))
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Give the space back.
    pub fn remove(self) {
        drop(self);
    }
}

impl Drop for Ballast {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
