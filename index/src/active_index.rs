//! The active segment's sparse index: `seg-<first seq>.idx` beside `seg-<first seq>.active`,
//! one entry per finished chunk of frames (about `block_raw_bytes` each), so that a reader
//! opening the segment reads the index and the frames after the last entry instead of the whole
//! file, and then reads only the chunks a query needs.
//!
//! ```text
//! header (24 bytes): "RNLAIX01" | first_seq:u64 | crc32c(header[0..16]):u32 | reserved:u32
//! entry  (56 bytes): offset:u64 len:u64 first_seq:u64 count:u64 min_time:i64 max_time:i64
//!                    | reserved:u32 | crc32c(entry[0..52]):u32
//! ```
//!
//! The index is a hint, never the truth: an entry is appended only after the frames it covers
//! were fdatasynced, and the file itself is not synced, so after a crash it may be short, torn
//! or hold garbage. A reader takes the longest prefix of entries whose CRCs match, that follow
//! each other without a gap from the segment's first frame (offsets and sequences), that end
//! inside the segment file, and whose last chunk starts with a frame carrying the expected
//! sequence; anything else is ignored and the segment is scanned from the end of what was
//! accepted (a store without index files is simply scanned whole). A writer's open still scans
//! every frame (recovery stays exact) and rewrites the index when it disagrees with the scan.

use crate::active::Chunk;
use crate::frame;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Magic and version at the start of an index file.
pub const INDEX_MAGIC: &[u8; 8] = b"RNLAIX01";
/// Bytes of the header.
pub const HEADER_LEN: usize = 24;
/// Bytes of one entry.
pub const ENTRY_LEN: usize = 56;
/// Most entries read from an index file: a 32 MiB segment in 128 KiB chunks has 256; this
/// bounds the memory a hostile file can make a reader use.
const MAX_ENTRIES: u64 = 1 << 20;

/// File name of the index of the active segment whose first sequence is `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.idx")
}

/// Parse `seg-<first>.idx`.
pub fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".idx")?
        .parse()
        .ok()
}

/// The header for a segment starting at `first_seq`.
pub fn header(first_seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(INDEX_MAGIC);
    h[8..16].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The bytes of one entry.
pub fn entry(c: &Chunk) -> [u8; ENTRY_LEN] {
    let mut e = [0u8; ENTRY_LEN];
    for (i, v) in [
        c.offset,
        c.len,
        c.first_seq,
        c.count,
        c.min_time as u64,
        c.max_time as u64,
    ]
    .into_iter()
    .enumerate()
    {
        e[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    let crc = crc32c::crc32c(&e[..52]);
    e[52..56].copy_from_slice(&crc.to_le_bytes());
    e
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The chunks an index file vouches for, checked against the segment: the longest prefix of
/// good, contiguous entries that starts at `data_start` with sequence `first_seq` and ends by
/// `segment_len`. Empty when the file is missing, for another segment, or damaged at its start.
pub fn read(path: &Path, first_seq: u64, data_start: u64, segment_len: u64) -> Vec<Chunk> {
    let Ok(bytes) = read_bounded(path) else {
        return Vec::new();
    };
    if bytes.len() < HEADER_LEN || bytes[..HEADER_LEN] != header(first_seq) {
        return Vec::new();
    }
    let mut out: Vec<Chunk> = Vec::new();
    let (mut offset, mut seq) = (data_start, first_seq);
    for e in bytes[HEADER_LEN..].chunks_exact(ENTRY_LEN) {
        if crc32c::crc32c(&e[..52]) != le32(e, 52) {
            break;
        }
        let c = Chunk {
            offset: le64(e, 0),
            len: le64(e, 8),
            first_seq: le64(e, 16),
            count: le64(e, 24),
            min_time: le64(e, 32) as i64,
            max_time: le64(e, 40) as i64,
        };
        let end = c.offset.checked_add(c.len);
        let next = c.first_seq.checked_add(c.count);
        if c.offset != offset
            || c.first_seq != seq
            || c.count == 0
            || c.len < c.count.saturating_mul(frame::FRAME_HEADER as u64)
            || c.min_time > c.max_time
            || end.is_none_or(|e| e > segment_len)
            || next.is_none()
        {
            break;
        }
        offset = c.offset + c.len;
        seq = c.first_seq + c.count;
        out.push(c);
    }
    out
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    let len = len.min(HEADER_LEN as u64 + MAX_ENTRIES * ENTRY_LEN as u64) as usize;
    let mut buf = vec![0u8; len];
    let n = read_full_at(&f, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn read_full_at(f: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match f.read_at(&mut buf[at..], at as u64) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

/// The writer's side: appends entries for chunks whose frames are durable. Failures only stop
/// indexing (readers then scan): the index is never needed for correctness.
#[derive(Debug)]
pub struct IndexWriter {
    path: PathBuf,
    first_seq: u64,
    file: Option<File>,
    /// Entries known to be in the file.
    written: usize,
    failed: bool,
}

impl IndexWriter {
    /// The index of the segment in `dir` that starts at `first_seq`; nothing is written yet.
    pub fn new(dir: &Path, first_seq: u64) -> IndexWriter {
        IndexWriter {
            path: dir.join(file_name(first_seq)),
            first_seq,
            file: None,
            written: 0,
            failed: false,
        }
    }

    /// The index file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adopt an existing file whose first `good` entries match the scanned chunks (a writer's
    /// open); a file that disagrees is rewritten from the start by the next [`Self::write`].
    pub fn adopt(&mut self, good: usize) {
        self.written = good;
    }

    /// Write entries for `chunks[..durable]`: finished chunks whose frames are all durable.
    pub fn write(&mut self, chunks: &[Chunk], durable: usize) {
        let durable = durable.min(chunks.len());
        if self.failed || durable <= self.written {
            return;
        }
        if let Err(e) = self.write_entries(&chunks[self.written..durable]) {
            // A hint that cannot be kept is removed, so no reader relies on a stale one.
            let _ = e;
            self.failed = true;
            self.file = None;
            let _ = std::fs::remove_file(&self.path);
            return;
        }
        self.written = durable;
    }

    fn write_entries(&mut self, new: &[Chunk]) -> std::io::Result<()> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&self.path)?;
            // Whatever is past the entries this writer vouches for goes (a rewrite after a
            // disagreeing open, or a torn entry after a crash).
            f.set_len((HEADER_LEN + self.written * ENTRY_LEN) as u64)?;
            f.write_all_at(&header(self.first_seq), 0)?;
            self.file = Some(f);
        }
        let Some(f) = self.file.as_ref() else {
            return Ok(());
        };
        let mut buf = Vec::with_capacity(new.len() * ENTRY_LEN);
        for c in new {
            buf.extend_from_slice(&entry(c));
        }
        f.write_all_at(&buf, (HEADER_LEN + self.written * ENTRY_LEN) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks() -> Vec<Chunk> {
        (0..3)
            .map(|i| Chunk {
                offset: 8 + i * 100,
                len: 100,
                first_seq: 5 + i * 2,
                count: 2,
                min_time: 10 * i as i64,
                max_time: 10 * i as i64 + 5,
            })
            .collect()
    }

    #[test]
    fn entries_round_trip_and_damage_ends_the_trusted_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = IndexWriter::new(dir.path(), 5);
        w.write(&chunks(), 2);
        w.write(&chunks(), 3);
        let path = dir.path().join(file_name(5));
        assert_eq!(read(&path, 5, 8, 308), chunks());
        // The segment is shorter than the index claims: only what lies inside it counts.
        assert_eq!(read(&path, 5, 8, 250), chunks()[..2].to_vec());
        // Another segment's index (first sequence in the header) is not used.
        assert!(read(&path, 6, 8, 308).is_empty());
        // A flipped bit in an entry ends the prefix there.
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        bad[HEADER_LEN + ENTRY_LEN + 3] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(read(&path, 5, 8, 308), chunks()[..1].to_vec());
        // A torn last entry is ignored.
        std::fs::write(&path, &good[..good.len() - 7]).unwrap();
        assert_eq!(read(&path, 5, 8, 308), chunks()[..2].to_vec());
        // A damaged header disowns the whole file.
        let mut bad = good.clone();
        bad[9] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(read(&path, 5, 8, 308).is_empty());
    }
}
