//! Making inotify lose events, two ways: bursts of files created under the log roots faster
//! than the agent drains its queue, and — around some agent starts — a kernel queue shrunk
//! through `fs.inotify.max_queued_events`. The kernel reads that limit when an inotify instance
//! is created, so it is lowered only until the new agent is ready (its watcher exists), then put
//! back: other processes on the machine see the small value only for that moment. The original
//! value is restored on drop, also when the run fails.

use std::path::Path;

const MAX_QUEUED: &str = "/proc/sys/fs/inotify/max_queued_events";

/// The kernel's inotify queue limit, restored on drop.
#[derive(Debug)]
pub struct QueueLimit {
    original: Option<u64>,
}

impl QueueLimit {
    /// Remember the current limit (None when it cannot be read: shrinking is then skipped).
    pub fn remember() -> QueueLimit {
        let original = std::fs::read_to_string(MAX_QUEUED)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        QueueLimit { original }
    }

    /// Lower the limit to `n` for instances created from now on; false if it could not be set.
    pub fn shrink(&self, n: u64) -> bool {
        self.original.is_some() && std::fs::write(MAX_QUEUED, n.to_string()).is_ok()
    }

    /// Put the original limit back.
    pub fn restore(&self) {
        if let Some(v) = self.original {
            let _ = std::fs::write(MAX_QUEUED, v.to_string());
        }
    }
}

impl Drop for QueueLimit {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Create `files` empty files in a new directory `dir` (not a log layout), then delete them
/// all: thousands of create and delete events in a moment.
pub fn burst(dir: &Path, files: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..files {
        std::fs::File::create(dir.join(format!("f{i:05}")))?;
    }
    std::fs::remove_dir_all(dir)
}
