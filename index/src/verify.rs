//! Offline checking of a store directory: every footer, index and block CRC, every frame CRC,
//! index entries against block contents, and torn active tails, reported with path and offset.
//! Read-only: nothing is modified, so it can run beside a live writer.

use crate::active::ActiveSegment;
use crate::sealed::{self, SealedSegment};
use crate::{frame, source, Error, Store};
use std::path::{Path, PathBuf};

/// One problem found by [`verify_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// Byte offset in the file (or within the raw block, as the text says).
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

/// What [`verify_dir`] found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Sealed segments checked.
    pub sealed_segments: u64,
    /// Active segments checked.
    pub active_segments: u64,
    /// Blocks checked.
    pub blocks: u64,
    /// Records seen.
    pub records: u64,
    /// Problems, empty when the store is sound.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(path: &Path, offset: u64, what: impl Into<String>) -> Problem {
    Problem {
        path: path.to_path_buf(),
        offset,
        what: what.into(),
    }
}

fn from_error(e: Error, path: &Path) -> Problem {
    match e {
        Error::Corrupt { path, offset, what } => Problem { path, offset, what },
        other => problem(path, 0, other.to_string()),
    }
}

fn verify_sealed(path: &Path, r: &mut VerifyReport) {
    let seg = match SealedSegment::open(path) {
        Ok(s) => s,
        Err(e) => return r.problems.push(from_error(e, path)),
    };
    r.sealed_segments += 1;
    if let Some((a, b)) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(sealed::parse_name)
    {
        if (a, b) != (seg.first_seq, seg.end_seq) {
            r.problems.push(problem(
                path,
                0,
                "file name sequence range disagrees with footer",
            ));
        }
    }
    for (i, m) in seg.blocks.iter().enumerate() {
        r.blocks += 1;
        let raw = match seg.block(i) {
            Ok(raw) => raw,
            Err(e) => {
                r.problems.push(from_error(e, path));
                continue;
            }
        };
        let mut at = 0;
        let mut n = 0u64;
        while at < raw.len() {
            match frame::decode(&raw[at..]) {
                Ok((f, len)) => {
                    if f.seq != m.first_seq + n || f.time_ns < m.min_time || f.time_ns > m.max_time
                    {
                        r.problems.push(problem(
                            path,
                            m.offset,
                            format!("block {i}: record {n} disagrees with the block index"),
                        ));
                        break;
                    }
                    n += 1;
                    at += len;
                }
                Err(e) => {
                    r.problems.push(problem(
                        path,
                        m.offset,
                        format!("block {i}: raw offset {at}: {}", e.describe()),
                    ));
                    break;
                }
            }
        }
        if n != m.count as u64 {
            r.problems.push(problem(
                path,
                m.offset,
                format!("block {i}: index says {} records, block holds {n}", m.count),
            ));
        }
        r.records += n;
    }
}

/// Check every file of the store at `dir` without modifying anything.
pub fn verify_dir(dir: &Path) -> Result<VerifyReport, Error> {
    let mut r = VerifyReport::default();
    let sdir = source::sources_dir(dir);
    let entries = std::fs::read_dir(&sdir).map_err(|source| Error::Io {
        path: sdir.clone(),
        source,
    })?;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    for d in dirs.iter().filter(|d| d.is_dir()) {
        let json = d.join("source.json");
        match std::fs::read(&json) {
            Ok(b) => {
                if let Err(e) = serde_json::from_slice::<source::SourceFile>(&b) {
                    r.problems
                        .push(problem(&json, 0, format!("unreadable: {e}")));
                }
            }
            Err(e) => r.problems.push(problem(&json, 0, format!("missing: {e}"))),
        }
        let Ok(files) = std::fs::read_dir(d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = files.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            if sealed::parse_name(&name).is_some() {
                verify_sealed(&f, &mut r);
            } else if let Some(first) = name
                .strip_prefix("seg-")
                .and_then(|x| x.strip_suffix(".active"))
                .and_then(|x| x.parse::<u64>().ok())
            {
                match ActiveSegment::recover(&f, first, false, u64::MAX, |_| r.records += 1) {
                    Ok((seg, lost)) => {
                        r.active_segments += 1;
                        if lost > 0 {
                            r.problems.push(problem(
                                &f,
                                seg.len(),
                                format!(
                                    "{lost} bytes after the last good frame (torn or corrupt tail)"
                                ),
                            ));
                        }
                    }
                    Err(e) => r.problems.push(from_error(e, &f)),
                }
            } else if name.ends_with(".tmp") {
                r.problems.push(problem(&f, 0, "leftover temporary file"));
            }
        }
    }
    Ok(r)
}

impl Store {
    /// Check every CRC and every index entry of this store (see [`verify_dir`]).
    pub fn verify(&self) -> VerifyReport {
        match verify_dir(self.dir()) {
            Ok(r) => r,
            Err(e) => VerifyReport {
                problems: vec![from_error(e, self.dir())],
                ..VerifyReport::default()
            },
        }
    }
}
