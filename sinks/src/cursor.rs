//! The durable per-source cursor: the next sequence number the sink has not yet had
//! acknowledged, per index source. Written as a small versioned JSON file via
//! temp file + fsync + rename (+ directory fsync), and only ever moved over acknowledged
//! (or dead-lettered) records, so a crash can only cause re-sends, which deterministic `_id`s
//! make harmless.

use crate::SinkError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the cursor file inside the sink's state directory.
pub const CURSOR_FILE: &str = "cursor.json";

/// On-disk format, tagged by version so a later format can be read next to this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum CursorFile {
    /// Version 1: source key → next sequence to ship.
    #[serde(rename = "1")]
    V1 {
        /// Source key → next unacknowledged sequence.
        cursors: BTreeMap<String, u64>,
    },
}

/// Loads and saves the cursor map.
#[derive(Debug)]
pub struct CursorStore {
    path: PathBuf,
    dir: PathBuf,
}

impl CursorStore {
    /// A store for `state_dir/cursor.json`; creates the directory.
    pub fn new(state_dir: &Path) -> Result<CursorStore, SinkError> {
        std::fs::create_dir_all(state_dir).map_err(|source| SinkError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        Ok(CursorStore {
            path: state_dir.join(CURSOR_FILE),
            dir: state_dir.to_path_buf(),
        })
    }

    /// The cursor file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the cursors; a missing file means "start from the beginning of every source".
    pub fn load(&self) -> Result<BTreeMap<String, u64>, SinkError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => {
                return Err(SinkError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        match serde_json::from_slice::<CursorFile>(&bytes) {
            Ok(CursorFile::V1 { cursors }) => Ok(cursors),
            Err(e) => Err(SinkError::CorruptCursor {
                path: self.path.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// Atomically replace the cursor file.
    pub fn save(&self, cursors: &BTreeMap<String, u64>) -> Result<(), SinkError> {
        let io = |source| SinkError::Io {
            path: self.path.clone(),
            source,
        };
        let body = serde_json::to_vec(&CursorFile::V1 {
            cursors: cursors.clone(),
        })
        .map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = self.dir.join(format!("{CURSOR_FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&body).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_v1_format_is_stable() {
        let mut m = BTreeMap::new();
        m.insert("docker:abc".to_string(), 42u64);
        let text = serde_json::to_string(&CursorFile::V1 { cursors: m }).unwrap();
        assert_eq!(text, r#"{"version":"1","cursors":{"docker:abc":42}}"#);
    }

    #[test]
    fn save_then_load_round_trips_and_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cs = CursorStore::new(dir.path()).unwrap();
        assert!(cs.load().unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert("cri:a_b_c/d/0".to_string(), 7u64);
        cs.save(&m).unwrap();
        assert_eq!(cs.load().unwrap(), m);
        std::fs::write(cs.path(), b"{\"version\":\"1\",\"curs").unwrap();
        let err = cs.load().unwrap_err().to_string();
        assert!(err.contains("corrupt sink cursor file"), "{err}");
        assert!(err.contains("cursor.json"), "{err}");
    }
}
