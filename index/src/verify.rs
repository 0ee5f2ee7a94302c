//! Offline checking of a store directory: every footer, index and block CRC, every frame CRC
//! (active segments and format 1 blocks) or raw block CRC and column structure (format 2),
//! index entries (sequences, counts, time ranges) against block contents, the footer's time range
//! and the position table against the records, and torn active tails, reported with path and
//! offset; and each active segment's `.idx` hint file against the frames it describes.
//! Read-only: nothing is modified, so it can run beside a live writer (a source the writer
//! removes meanwhile is skipped; `removing/` is not checked).

use crate::active::ActiveSegment;
use crate::sealed::{self, SealedSegment};
use crate::{retire, source, Error, FileId, Position, Store};
use std::collections::BTreeMap;
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
    // What the footer and the position table must say, recomputed from the records.
    let (mut seg_min, mut seg_max) = (i64::MAX, i64::MIN);
    let mut positions: BTreeMap<FileId, u64> = BTreeMap::new();
    let mut all_blocks_read = true;
    let metas = match seg.blocks() {
        Ok(m) => m,
        Err(e) => {
            r.problems.push(from_error(e, path));
            return;
        }
    };
    for (i, m) in metas.iter().enumerate() {
        r.blocks += 1;
        let raw = match seg.block(i) {
            Ok(raw) => raw,
            Err(e) => {
                r.problems.push(from_error(e, path));
                all_blocks_read = false;
                continue;
            }
        };
        let mut n = 0u64;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for rec in raw.records(m.first_seq) {
            match rec {
                Ok(f) => {
                    if f.time_ns < m.min_time || f.time_ns > m.max_time {
                        r.problems.push(problem(
                            path,
                            m.offset,
                            format!("block {i}: record {n} disagrees with the block index"),
                        ));
                        all_blocks_read = false;
                        break;
                    }
                    lo = lo.min(f.time_ns);
                    hi = hi.max(f.time_ns);
                    if let Position::File { file, offset } = f.position {
                        positions.insert(file, offset);
                    }
                    n += 1;
                }
                Err(e) => {
                    r.problems.push(problem(
                        path,
                        m.offset,
                        format!("block {i}: raw offset {}: {}", e.at, e.what),
                    ));
                    all_blocks_read = false;
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
            all_blocks_read = false;
        } else if n > 0 && (lo, hi) != (m.min_time, m.max_time) {
            r.problems.push(problem(
                path,
                m.offset,
                format!(
                    "block {i}: index time range {}..{} but records span {lo}..{hi}",
                    m.min_time, m.max_time
                ),
            ));
        }
        seg_min = seg_min.min(lo);
        seg_max = seg_max.max(hi);
        r.records += n;
    }
    // A stub has no records: its position table is all there is to check (done at open).
    if seg.is_stub() || !all_blocks_read {
        return;
    }
    let footer_at = seg.file_len().saturating_sub(sealed::FOOTER_LEN as u64);
    if (seg_min, seg_max) != (seg.min_time, seg.max_time) {
        r.problems.push(problem(
            path,
            footer_at,
            format!(
                "footer time range {}..{} but records span {seg_min}..{seg_max}",
                seg.min_time, seg.max_time
            ),
        ));
    }
    let held = match seg.positions() {
        Ok(p) => p,
        Err(e) => {
            r.problems.push(from_error(e, path));
            return;
        }
    };
    let table: BTreeMap<FileId, u64> = held.iter().copied().collect();
    if table != positions || table.len() != held.len() {
        r.problems.push(problem(
            path,
            footer_at,
            format!(
                "position table ({} files) disagrees with the last position per file in the records ({} files)",
                held.len(),
                positions.len()
            ),
        ));
    }
}

/// An active segment's index file (a hint, see `active_index`): what readers trust of it must
/// be the whole file, and each trusted entry must describe exactly the frames at its place.
/// A store written before index files existed has none: nothing to check.
fn verify_active_index(seg: &ActiveSegment, r: &mut VerifyReport) {
    let path = seg.index_path();
    let Ok(meta) = std::fs::metadata(&path) else {
        return;
    };
    let header = crate::active_index::HEADER_LEN as u64;
    let entry_len = crate::active_index::ENTRY_LEN as u64;
    let data_start = crate::active::ACTIVE_MAGIC.len() as u64;
    let chunks = crate::active_index::read(&path, seg.first_seq, data_start, seg.len());
    let disagree = |at: usize, why: &str| {
        problem(
            &path,
            header + at as u64 * entry_len,
            format!("index hint disagrees with the segment after {at} entries: {why} (readers scan past it; the writer's next open rewrites it)"),
        )
    };
    let mut buf = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        buf.clear();
        if seg.read_into(c.offset, c.len, &mut buf).is_err() {
            r.problems.push(disagree(i, "its chunk cannot be read"));
            return;
        }
        let (mut at, mut seq, mut lo, mut hi) = (0usize, c.first_seq, i64::MAX, i64::MIN);
        while at < buf.len() {
            let Ok((f, n)) = crate::frame::decode(&buf[at..]) else {
                break;
            };
            if f.seq != seq {
                break;
            }
            (lo, hi) = (lo.min(f.time_ns), hi.max(f.time_ns));
            seq += 1;
            at += n;
        }
        if at != buf.len() || seq - c.first_seq != c.count || (lo, hi) != (c.min_time, c.max_time) {
            r.problems.push(disagree(
                i,
                &format!(
                    "entry {i} says {} frames from sequence {} at offset {}, the segment has {} there",
                    c.count,
                    c.first_seq,
                    c.offset,
                    seq - c.first_seq
                ),
            ));
            return;
        }
    }
    if meta.len() != header + chunks.len() as u64 * entry_len {
        r.problems.push(disagree(
            chunks.len(),
            "the entries after these are damaged, torn or of other frames",
        ));
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
            // A retired source the writer removed meanwhile: nothing to check.
            Err(_) if !d.is_dir() => continue,
            Err(e) => r.problems.push(problem(&json, 0, format!("missing: {e}"))),
        }
        let mark = d.join(retire::MARK);
        if let Ok(b) = std::fs::read(&mark) {
            if let Err(e) = serde_json::from_slice::<retire::RetiredFile>(&b) {
                r.problems.push(problem(
                    &mark,
                    0,
                    format!("unreadable (the source still counts as retired): {e}"),
                ));
            }
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
                        verify_active_index(&seg, &mut r);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{frame, NewRecord, RecordFlags, Stream, TimeStyle};

    /// A sealed segment of 6 records from two files, with the position table's last entry
    /// changed by `patch` and every CRC made to match again: only a cross-check finds it.
    fn segment_with_patched_table(patch: impl Fn(&mut [u8])) -> (tempfile::TempDir, PathBuf) {
        let mut frames = Vec::new();
        for i in 0..6u64 {
            let rec = NewRecord {
                time_ns: 100 + i as i64,
                time_style: TimeStyle::default(),
                stream: Stream::Stdout,
                flags: RecordFlags(0),
                message: b"record",
                position: Position::File {
                    file: FileId {
                        dev: 1,
                        ino: i % 2,
                        fingerprint: 5,
                    },
                    offset: 10 * i,
                },
            };
            frame::encode(&mut frames, i, &rec);
        }
        let mut b = sealed::build(&frames, 100, 1).unwrap();
        let f = b.len() - sealed::FOOTER_LEN;
        let index_offset = u64::from_le_bytes(b[f..f + 8].try_into().unwrap()) as usize;
        patch(&mut b[f - sealed::POSITION_ENTRY..f]);
        let crc = crc32c::crc32c(&b[index_offset..f]);
        b[f + 48..f + 52].copy_from_slice(&crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[f..f + 60]);
        b[f + 60..f + 64].copy_from_slice(&crc.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(sealed::file_name(0, 6));
        std::fs::write(&path, &b).unwrap();
        (dir, path)
    }

    #[test]
    fn a_record_damaged_before_its_seal_is_reported_with_its_block() {
        let mut frames = Vec::new();
        for i in 0..4u64 {
            let rec = NewRecord {
                time_ns: 100 + i as i64,
                time_style: TimeStyle::default(),
                stream: Stream::Stdout,
                flags: RecordFlags(0),
                message: b"record",
                position: Position::None,
            };
            frame::encode(&mut frames, i, &rec);
        }
        // The last byte of the third frame's message.
        let third_end = (0..3).fold(0, |at, _| at + frame::decode(&frames[at..]).unwrap().1);
        frames[third_end - 1] ^= 1;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(sealed::file_name(0, 4));
        std::fs::write(&path, sealed::build(&frames, 1 << 20, 1).unwrap()).unwrap();
        let mut r = VerifyReport::default();
        verify_sealed(&path, &mut r);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert!(r.problems[0].what.contains("block 0"), "{:?}", r.problems);
        assert!(r.problems[0].what.contains("CRC"), "{:?}", r.problems);
        assert!(r.problems[1].what.contains("holds 2"), "{:?}", r.problems);
    }

    #[test]
    fn sound_segment_passes_and_a_wrong_position_table_is_found() {
        let (_d, path) = segment_with_patched_table(|_| {});
        let mut r = VerifyReport::default();
        verify_sealed(&path, &mut r);
        assert!(r.is_ok(), "{:?}", r.problems);
        assert_eq!(r.records, 6);
        // Last offset of file 1 says 99 where the records say 50.
        let (_d, path) =
            segment_with_patched_table(|e| e[24..32].copy_from_slice(&99u64.to_le_bytes()));
        let mut r = VerifyReport::default();
        verify_sealed(&path, &mut r);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(
            r.problems[0].what.contains("position table"),
            "{:?}",
            r.problems
        );
        assert_eq!(r.problems[0].path, path);
    }
}
