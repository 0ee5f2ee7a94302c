//! Sealed segments: immutable files of zstd-compressed blocks, a block index, a table of the last
//! file position per file identity, and a versioned footer. Written under a temporary name,
//! fsynced, renamed into place and the directory fsynced, so a reader sees either no file or a
//! whole one. Read through `memmap2`; every offset and length from the file is validated before
//! it is used, and a block is only decompressed after its CRC matched (format 2 blocks carry a
//! second CRC over their raw content, checked after decompressing).

use crate::active::sync_dir;
use crate::block::{self, Block};
use crate::frame;
use crate::maps::MapCache;
use crate::segment_writer::{trailer, BuildError, SegmentBuilder};
use crate::{Error, FileId};
use memmap2::{Mmap, UncheckedAdvice};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;

/// Magic at the very end of a sealed segment.
pub const FOOTER_MAGIC: &[u8; 8] = b"RNLFOOT1";

/// A sealed-segment format version: the magic at the start and the footer's version say which,
/// and they must agree. Both differ only in what a block holds (see the `block` module); the
/// block index, position table and footer are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Blocks of whole frames (written until format 2; still read).
    V1,
    /// Blocks of columns: headers delta- and run-length-encoded, then the messages.
    V2,
}

impl Format {
    /// What the store writes.
    pub const CURRENT: Format = Format::V2;

    /// Magic and version at the start of the segment.
    pub fn magic(self) -> &'static [u8; 8] {
        match self {
            Format::V1 => b"RNLSEG01",
            Format::V2 => b"RNLSEG02",
        }
    }

    /// The footer's version field.
    pub fn footer_version(self) -> u32 {
        match self {
            Format::V1 => 1,
            Format::V2 => 2,
        }
    }

    fn from_magic(magic: &[u8]) -> Option<Format> {
        [Format::V1, Format::V2]
            .into_iter()
            .find(|f| f.magic().as_slice() == magic)
    }
}
/// Bytes of one block-index entry.
pub const INDEX_ENTRY: usize = 48;
/// Bytes of one position-table entry.
pub const POSITION_ENTRY: usize = 32;
/// Bytes of the footer, magic included.
pub const FOOTER_LEN: usize = 72;
/// Largest raw block size: caps the decompression buffer when reading. The writer cuts blocks so
/// that no block exceeds it, and a single frame of the largest payload always fits.
pub const MAX_BLOCK_RAW: u32 =
    (frame::MAX_PAYLOAD + frame::FRAME_HEADER + crate::block::V2_OVERHEAD) as u32;
/// Frame bytes a block's records may add up to: a v2 block of them stays within
/// [`MAX_BLOCK_RAW`].
pub const MAX_BLOCK_FRAMES: usize = frame::MAX_PAYLOAD + frame::FRAME_HEADER;

/// One block-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    /// Smallest record time in the block.
    pub min_time: i64,
    /// Largest record time in the block.
    pub max_time: i64,
    /// Sequence of the first record.
    pub first_seq: u64,
    /// Records in the block.
    pub count: u32,
    /// Uncompressed bytes.
    pub raw_len: u32,
    /// File offset of the compressed bytes.
    pub offset: u64,
    /// Compressed bytes.
    pub len: u32,
    /// CRC32C of the compressed bytes.
    pub crc: u32,
}

/// An open sealed segment: its footer in memory, and its block index and positions once read
/// (at open for a writer, on first use for a read-only open); the file is mapped only while
/// blocks are read, through the store's [`MapCache`].
pub struct SealedSegment {
    /// The file.
    pub path: PathBuf,
    maps: Arc<MapCache>,
    /// This segment's id in `maps`.
    map_id: u64,
    /// File size when the footer was read.
    len: u64,
    /// What the blocks hold.
    pub format: Format,
    /// Where the block index and position table lie.
    loc: TableLoc,
    /// The block index and position table once read, or why they could not be.
    table: OnceLock<Result<Table, TableError>>,
    /// First sequence.
    pub first_seq: u64,
    /// One past the last sequence.
    pub end_seq: u64,
    /// Smallest record time.
    pub min_time: i64,
    /// Largest record time.
    pub max_time: i64,
}

/// Where a segment's block index and position table lie, from its footer.
#[derive(Debug, Clone, Copy)]
struct TableLoc {
    offset: u64,
    nblocks: u64,
    npos: u64,
    /// CRC32C of the index and position table.
    crc: u32,
    /// File offset of the footer (the table ends there).
    footer_at: u64,
}

/// Why a segment's table could not be read: the file could not be (gone, unreadable), or
/// its bytes are damaged at an offset.
#[derive(Debug)]
enum TableError {
    Io(std::io::ErrorKind, String),
    Corrupt(u64, String),
}

/// A segment's block index and position table.
#[derive(Debug)]
struct Table {
    blocks: Vec<BlockMeta>,
    positions: Vec<(FileId, u64)>,
}

/// File name of a sealed segment holding sequences `first..end`.
pub fn file_name(first: u64, end: u64) -> String {
    format!("seg-{first:020}-{end:020}.sealed")
}

/// Parse `seg-<first>-<end>.sealed`.
pub fn parse_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("seg-")?.strip_suffix(".sealed")?;
    let (a, b) = rest.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Build the bytes of a sealed segment from frame bytes (as in an active segment, without its
/// header). Blocks are cut at frame boundaries once they hold `block_target` raw bytes.
#[cfg(test)]
pub fn build(frames: &[u8], block_target: usize, level: i32) -> Result<Vec<u8>, String> {
    build_as(Format::CURRENT, frames, block_target, level)
}

/// [`build`] in format `format`.
#[cfg(test)]
pub fn build_as(
    format: Format,
    frames: &[u8],
    block_target: usize,
    level: i32,
) -> Result<Vec<u8>, String> {
    let describe = |e: BuildError| match e {
        BuildError::Frames(what) => what,
        BuildError::Io(e) => e.to_string(),
    };
    let out = Vec::with_capacity(frames.len() / 4 + 4096);
    let mut b = SegmentBuilder::with_format(out, block_target, level, format).map_err(describe)?;
    b.push_frames(frames).map_err(describe)?;
    b.finish().map_err(describe)
}

/// Bytes of a position stub: a sealed segment with no blocks, named `seg-<seq>-<seq>.sealed`,
/// whose position table keeps the file positions of records that retention deleted, so the
/// tailer does not read them again (see the `retention` module).
pub fn build_stub(seq: u64, positions: &[(FileId, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + positions.len() * POSITION_ENTRY + FOOTER_LEN);
    out.extend_from_slice(Format::CURRENT.magic());
    let tail = trailer(
        Format::CURRENT,
        8,
        &[],
        positions,
        seq,
        0,
        (i64::MAX, i64::MIN),
    );
    out.extend_from_slice(&tail);
    out
}

/// Write `bytes` as `dir/name`: temp file, fsync, rename, directory fsync.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir)?;
    Ok(path)
}

/// Write the position stub for sequence `seq` into `dir`; returns its path.
pub fn write_stub(dir: &Path, seq: u64, positions: &[(FileId, u64)]) -> Result<PathBuf, Error> {
    write_file(dir, &file_name(seq, seq), &build_stub(seq, positions))
}

/// A sealed segment being written, block by block, under a temporary name; [`commit`] makes it
/// durable and visible, dropping it uncommitted removes the temporary file.
///
/// [`commit`]: PendingSegment::commit
pub struct PendingSegment {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    builder: Option<SegmentBuilder<BufWriter<File>>>,
}

impl PendingSegment {
    /// Start writing the segment that will hold sequences `first..end` in `dir`.
    pub fn create(
        dir: &Path,
        first: u64,
        end: u64,
        block_target: usize,
        level: i32,
    ) -> Result<PendingSegment, Error> {
        let name = file_name(first, end);
        let path = dir.join(&name);
        let tmp = dir.join(format!("{name}.tmp"));
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let builder = SegmentBuilder::new(
            BufWriter::with_capacity(256 << 10, file),
            block_target,
            level,
        )
        .map_err(|e| build_error(&tmp, e))?;
        Ok(PendingSegment {
            dir: dir.to_path_buf(),
            path,
            tmp,
            builder: Some(builder),
        })
    }

    /// Add whole frames in sequence order.
    pub fn push_frames(&mut self, frames: &[u8]) -> Result<(), Error> {
        match self.builder.as_mut() {
            Some(b) => b.push_frames(frames).map_err(|e| build_error(&self.tmp, e)),
            None => Ok(()),
        }
    }

    /// Add the records of a block read from another segment (starting at `first_seq`).
    pub fn push_block(&mut self, block: &Block, first_seq: u64) -> Result<(), Error> {
        match self.builder.as_mut() {
            Some(b) => b
                .push_block(block, first_seq)
                .map_err(|e| build_error(&self.tmp, e)),
            None => Ok(()),
        }
    }

    /// Finish the segment: trailer, fsync, rename into place, directory fsync.
    pub fn commit(mut self) -> Result<PathBuf, Error> {
        let Some(builder) = self.builder.take() else {
            return Ok(self.path.clone());
        };
        let out = builder.finish().map_err(|e| build_error(&self.tmp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| io(&self.tmp)(e.into_error()))?;
        file.sync_all().map_err(io(&self.tmp))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(io(&self.path))?;
        self.tmp.clear();
        sync_dir(&self.dir)?;
        Ok(self.path.clone())
    }
}

impl Drop for PendingSegment {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn build_error(path: &Path, e: BuildError) -> Error {
    match e {
        BuildError::Frames(what) => Error::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            what: format!("cannot seal: {what}"),
        },
        BuildError::Io(source) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Unmap the pages of `len` bytes at `offset` from this process (they stay in the page
/// cache). The kernel maps whole large folios on a fault, so without this every segment
/// touched once — at open for its footer, or by one query — would count in the agent's RSS
/// for as long as it is open, for every segment on the node.
fn release_pages(map: &Mmap, offset: usize, len: usize) {
    // SAFETY: the mapping is a read-only shared mapping of a file that is never modified;
    // MADV_DONTNEED only drops page table entries, and the next access reads the same bytes
    // back from the page cache or the file.
    let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len) };
}

fn corrupt(path: &Path, offset: u64, what: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        offset,
        what: what.into(),
    }
}

impl SealedSegment {
    /// At least as many bytes as the segment's records take as frames, which is what the seal
    /// and merge limits count (the active segment holds frames). Exact for format 1; a format 2
    /// block's columns stand in for the frame headers, so each of its records is counted with
    /// the longest header a frame can have.
    pub fn frame_bytes_bound(&self) -> Result<u64, Error> {
        let per_record = match self.format {
            Format::V1 => 0,
            Format::V2 => crate::frame::MAX_OVERHEAD as u64,
        };
        Ok(self
            .blocks()?
            .iter()
            .map(|b| u64::from(b.raw_len) + u64::from(b.count) * per_record)
            .sum())
    }

    /// Read and validate a sealed segment's footer, index and position table, with a map cache
    /// of its own (for one-off readers such as `verify`).
    pub fn open(path: &Path) -> Result<SealedSegment, Error> {
        SealedSegment::open_in(path, &MapCache::new(1))
    }

    /// Read and validate a sealed segment's footer, index and position table (with `pread`,
    /// not a map: opening thousands of segments costs no mappings); blocks are later read
    /// through `maps`.
    pub fn open_in(path: &Path, maps: &Arc<MapCache>) -> Result<SealedSegment, Error> {
        let (seg, file) = SealedSegment::open_footer(path, maps)?;
        // Read through the descriptor the footer came from: a writer opens every segment.
        let _ = seg.table.set(seg.read_table(&file));
        seg.table()?;
        Ok(seg)
    }

    /// Read and validate only the footer (two small reads): the segment's sequence and time
    /// ranges are known, and its block index and position table are read and checked when
    /// first needed. A read-only query opens a source this way, so it reads the tables of the
    /// segments it touches, not of the whole history; damage found later is reported by the
    /// call that needs the table.
    pub fn open_lazily_in(path: &Path, maps: &Arc<MapCache>) -> Result<SealedSegment, Error> {
        SealedSegment::open_footer(path, maps).map(|(seg, _)| seg)
    }

    /// The segment with its footer read and checked, its table not read yet, and the open file.
    fn open_footer(path: &Path, maps: &Arc<MapCache>) -> Result<(SealedSegment, File), Error> {
        let file = File::open(path).map_err(io(path))?;
        let file_len = file.metadata().map_err(io(path))?.len();
        let min_len = 8 + FOOTER_LEN;
        if file_len < min_len as u64 {
            return Err(corrupt(path, 0, "file shorter than header and footer"));
        }
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0).map_err(io(path))?;
        let Some(format) = Format::from_magic(&magic) else {
            return Err(corrupt(path, 0, "bad segment magic/version"));
        };
        let fs = (file_len - FOOTER_LEN as u64) as usize;
        let mut footer = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer, fs as u64)
            .map_err(io(path))?;
        let footer = &footer[..];
        if &footer[64..72] != FOOTER_MAGIC {
            return Err(corrupt(path, fs as u64 + 64, "bad footer magic"));
        }
        if crc32c::crc32c(&footer[..60]) != le32(footer, 60) {
            return Err(corrupt(path, fs as u64, "footer CRC mismatch"));
        }
        let version = le32(footer, 52);
        if version != format.footer_version() {
            return Err(corrupt(
                path,
                fs as u64 + 52,
                format!("footer version {version} in a segment of format {format:?}"),
            ));
        }
        let loc = TableLoc {
            offset: le64(footer, 0),
            nblocks: le32(footer, 8) as u64,
            npos: le32(footer, 12) as u64,
            crc: le32(footer, 48),
            footer_at: fs as u64,
        };
        let first_seq = le64(footer, 16);
        let expect_end = loc
            .offset
            .checked_add(loc.nblocks * INDEX_ENTRY as u64)
            .and_then(|v| v.checked_add(loc.npos * POSITION_ENTRY as u64));
        if loc.offset < 8 || expect_end != Some(fs as u64) {
            return Err(corrupt(
                path,
                fs as u64,
                "index offset/size disagree with file size",
            ));
        }
        let Some(end_seq) = first_seq.checked_add(le64(footer, 24)) else {
            return Err(corrupt(
                path,
                fs as u64,
                "record count overflows the sequence",
            ));
        };
        let (min_time, max_time) = (le64(footer, 32) as i64, le64(footer, 40) as i64);
        let seg = SealedSegment {
            path: path.to_path_buf(),
            maps: maps.clone(),
            map_id: maps.new_id(),
            len: file_len,
            format,
            loc,
            table: OnceLock::new(),
            first_seq,
            end_seq,
            min_time,
            max_time,
        };
        Ok((seg, file))
    }

    /// The block index and position table, read and checked on first use.
    fn table(&self) -> Result<&Table, Error> {
        let read = || match File::open(&self.path) {
            Ok(file) => self.read_table(&file),
            Err(e) => Err(TableError::Io(e.kind(), e.to_string())),
        };
        match self.table.get_or_init(read) {
            Ok(t) => Ok(t),
            Err(TableError::Corrupt(offset, what)) => {
                Err(corrupt(&self.path, *offset, what.clone()))
            }
            Err(TableError::Io(kind, what)) => Err(Error::Io {
                path: self.path.clone(),
                source: std::io::Error::new(*kind, what.clone()),
            }),
        }
    }

    /// Block index entries, in sequence order.
    pub fn blocks(&self) -> Result<&[BlockMeta], Error> {
        Ok(&self.table()?.blocks)
    }

    /// Last position per file identity among the segment's records.
    pub fn positions(&self) -> Result<&[(FileId, u64)], Error> {
        Ok(&self.table()?.positions)
    }

    fn read_table(&self, file: &File) -> Result<Table, TableError> {
        let loc = self.loc;
        let mut table = vec![0u8; (loc.footer_at - loc.offset) as usize];
        file.read_exact_at(&mut table, loc.offset)
            .map_err(|e| TableError::Io(e.kind(), e.to_string()))?;
        let table = &table[..];
        let bad = |at: u64, what: String| TableError::Corrupt(at, what);
        if crc32c::crc32c(table) != loc.crc {
            return Err(bad(loc.offset, "block index CRC mismatch".into()));
        }
        let mut blocks = Vec::with_capacity(loc.nblocks as usize);
        let mut seq = self.first_seq;
        for i in 0..loc.nblocks as usize {
            let e = &table[i * INDEX_ENTRY..(i + 1) * INDEX_ENTRY];
            let m = BlockMeta {
                min_time: le64(e, 0) as i64,
                max_time: le64(e, 8) as i64,
                first_seq: le64(e, 16),
                count: le32(e, 24),
                raw_len: le32(e, 28),
                offset: le64(e, 32),
                len: le32(e, 40),
                crc: le32(e, 44),
            };
            let at = loc.offset + (i * INDEX_ENTRY) as u64;
            let end = m.offset.checked_add(m.len as u64);
            if m.offset < 8 || end.is_none_or(|e| e > loc.offset) {
                return Err(bad(at, format!("block {i} lies outside the data area")));
            }
            if m.first_seq != seq || m.count == 0 || m.raw_len > MAX_BLOCK_RAW {
                return Err(bad(at, format!("block {i} index entry is inconsistent")));
            }
            seq = match seq.checked_add(m.count as u64) {
                Some(s) => s,
                None => return Err(bad(at, format!("block {i} sequence overflows"))),
            };
            blocks.push(m);
        }
        if seq != self.end_seq {
            return Err(bad(
                loc.footer_at,
                "record count disagrees with block index".into(),
            ));
        }
        let pbase = loc.nblocks as usize * INDEX_ENTRY;
        let positions = (0..loc.npos as usize)
            .map(|i| {
                let e = &table[pbase + i * POSITION_ENTRY..];
                let file = FileId {
                    dev: le64(e, 0),
                    ino: le64(e, 8),
                    fingerprint: le64(e, 16),
                };
                (file, le64(e, 24))
            })
            .collect();
        Ok(Table { blocks, positions })
    }

    /// Size of the file.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Records held.
    pub fn records(&self) -> u64 {
        self.end_seq - self.first_seq
    }

    /// True for a position stub (no records; only a position table).
    pub fn is_stub(&self) -> bool {
        self.records() == 0
    }

    /// Decompress block `i` after checking its CRC (and, in format 2, the CRC of its raw
    /// content); `Err` describes the corruption.
    pub fn block(&self, i: usize) -> Result<Block, Error> {
        let Some(&m) = self.blocks()?.get(i) else {
            return Err(corrupt(&self.path, 0, format!("no block {i}")));
        };
        let map = self.maps.get(self.map_id, &self.path, self.len)?;
        let comp = &map[m.offset as usize..(m.offset + m.len as u64) as usize];
        if crc32c::crc32c(comp) != m.crc {
            return Err(corrupt(
                &self.path,
                m.offset,
                format!("block {i} CRC mismatch"),
            ));
        }
        let raw = decompress_block(comp, m.raw_len as usize).map_err(|e| {
            corrupt(
                &self.path,
                m.offset,
                format!("block {i} does not decompress: {e}"),
            )
        })?;
        if raw.len() != m.raw_len as usize {
            return Err(corrupt(
                &self.path,
                m.offset,
                format!("block {i} raw length mismatch"),
            ));
        }
        release_pages(&map, m.offset as usize, m.len as usize);
        match self.format {
            Format::V1 => Ok(Block::Frames(raw)),
            Format::V2 => match block::check_crc(&raw) {
                Ok(()) => Ok(Block::Columns(raw)),
                Err(what) => Err(corrupt(&self.path, m.offset, format!("block {i}: {what}"))),
            },
        }
    }

    /// The id of this segment's map in the store's cache: unique for the store's life, never
    /// reused.
    pub fn map_id(&self) -> u64 {
        self.map_id
    }

    /// Compressed bytes of block `i`.
    pub fn block_len(&self, i: usize) -> u64 {
        let meta = self.blocks().ok().and_then(|b| b.get(i).copied());
        meta.map_or(0, |m| m.len as u64)
    }
}

impl Drop for SealedSegment {
    fn drop(&mut self) {
        self.maps.forget(self.map_id);
    }
}

thread_local! {
    /// One zstd decompression context per reading thread: `zstd::bulk::decompress` creates
    /// (and zeroes) a fresh context per block, which costs about as much as decompressing a
    /// small block.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompress one block of `raw_len` bytes with this thread's reusable context.
fn decompress_block(comp: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress(comp, raw_len),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewRecord, Position, RecordFlags, Stream, TimeStyle};

    fn write(
        dir: &Path,
        first: u64,
        end: u64,
        frames: &[u8],
        block_target: usize,
        level: i32,
    ) -> Result<PathBuf, Error> {
        let mut p = PendingSegment::create(dir, first, end, block_target, level)?;
        p.push_frames(frames)?;
        p.commit()
    }

    #[test]
    fn streaming_in_pieces_writes_the_same_bytes_as_building_at_once() {
        let all = frames(500);
        let whole = build(&all, 700, 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut p = PendingSegment::create(dir.path(), 0, 500, 700, 1).unwrap();
        let mut at = 0;
        while at < all.len() {
            // Whole frames, a few at a time, as a seal reads them chunk by chunk.
            let mut end = at;
            for _ in 0..7 {
                if end < all.len() {
                    end += crate::frame::decode(&all[end..]).unwrap().1;
                }
            }
            p.push_frames(&all[at..end]).unwrap();
            at = end;
        }
        let path = p.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        assert!(!dir
            .path()
            .join(format!("{}.tmp", file_name(0, 500)))
            .exists());
        // An abandoned segment leaves nothing behind.
        let mut p = PendingSegment::create(dir.path(), 500, 501, 700, 1).unwrap();
        p.push_frames(&all[..100]).unwrap_or(());
        drop(p);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    fn frames(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        for i in 0..n {
            let msg = format!("message number {i}");
            let file = FileId {
                dev: 1,
                ino: i % 2,
                fingerprint: 3,
            };
            let rec = NewRecord {
                time_ns: 1000 - i as i64,
                time_style: TimeStyle::default(),
                stream: Stream::Stdout,
                flags: RecordFlags(0),
                message: msg.as_bytes(),
                position: Position::File { file, offset: i },
            };
            frame::encode(&mut buf, 10 + i, &rec);
        }
        buf
    }

    #[test]
    fn built_segment_opens_with_its_index_positions_and_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let raw = frames(40);
        let path = write(dir.path(), 10, 50, &raw, 300, 1).unwrap();
        assert_eq!(
            path.file_name().unwrap().to_str().map(parse_name),
            Some(Some((10, 50)))
        );
        let seg = SealedSegment::open(&path).unwrap();
        assert_eq!((seg.first_seq, seg.end_seq), (10, 50));
        assert_eq!((seg.min_time, seg.max_time), (961, 1000));
        assert!(seg.blocks().unwrap().len() > 3);
        assert_eq!(seg.positions().unwrap().len(), 2);
        assert_eq!(seg.positions().unwrap()[0].1, 38, "last offset of ino 0");
        assert_eq!(seg.positions().unwrap()[1].1, 39);
        assert_eq!(seg.format, Format::CURRENT);
        let mut all = Vec::new();
        for i in 0..seg.blocks().unwrap().len() {
            let b = reframed(&seg, i);
            assert!(b.len() >= 300 || i == seg.blocks().unwrap().len() - 1);
            all.extend_from_slice(&b);
        }
        assert_eq!(all, raw, "blocks hold the original records");
        assert!(!dir
            .path()
            .join(format!("{}.tmp", file_name(10, 50)))
            .exists());
    }

    /// The records of block `i` of `seg` as frames.
    fn reframed(seg: &SealedSegment, i: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for r in seg
            .block(i)
            .unwrap()
            .records(seg.blocks().unwrap()[i].first_seq)
        {
            let r = r.unwrap();
            frame::encode(&mut out, r.seq, &r.as_new());
        }
        out
    }

    fn open_bytes(dir: &Path, bytes: &[u8]) -> Result<SealedSegment, Error> {
        let path = dir.join("x.sealed");
        std::fs::write(&path, bytes).unwrap();
        SealedSegment::open(&path)
    }

    #[test]
    fn format_1_segments_still_read_and_hold_the_same_blocks_as_format_2() {
        let dir = tempfile::tempdir().unwrap();
        let raw = frames(40);
        let v1 = open_bytes(dir.path(), &build_as(Format::V1, &raw, 300, 1).unwrap()).unwrap();
        assert_eq!(v1.format, Format::V1);
        let dir2 = tempfile::tempdir().unwrap();
        let v2 = open_bytes(dir2.path(), &build_as(Format::V2, &raw, 300, 1).unwrap()).unwrap();
        assert_eq!(v2.format, Format::V2);
        let idx = |s: &SealedSegment| {
            s.blocks()
                .unwrap()
                .iter()
                .map(|b| (b.first_seq, b.count, b.min_time, b.max_time))
                .collect::<Vec<_>>()
        };
        assert_eq!(idx(&v1), idx(&v2), "blocks are cut at the same records");
        assert_eq!(v1.positions().unwrap(), v2.positions().unwrap());
        for i in 0..v1.blocks().unwrap().len() {
            assert_eq!(reframed(&v1, i), reframed(&v2, i));
        }
    }

    #[test]
    fn rewriting_a_format_1_segment_into_format_2_keeps_every_record() {
        let raw = frames(40);
        let dir = tempfile::tempdir().unwrap();
        let v1 = open_bytes(dir.path(), &build_as(Format::V1, &raw, 300, 1).unwrap()).unwrap();
        let mut b = SegmentBuilder::new(Vec::new(), 300, 1).unwrap();
        for i in 0..v1.blocks().unwrap().len() {
            b.push_block(&v1.block(i).unwrap(), v1.blocks().unwrap()[i].first_seq)
                .unwrap();
        }
        let out = b.finish().unwrap();
        assert_eq!(out, build(&raw, 300, 1).unwrap());
    }

    #[test]
    fn every_flipped_bit_of_a_format_2_segment_is_an_error_never_other_data() {
        let dir = tempfile::tempdir().unwrap();
        let raw = frames(12);
        let good = build(&raw, 200, 1).unwrap();
        let want: Vec<_> = {
            let seg = open_bytes(dir.path(), &good).unwrap();
            (0..seg.blocks().unwrap().len())
                .map(|i| reframed(&seg, i))
                .collect()
        };
        for at in 0..good.len() {
            let mut b = good.clone();
            b[at] ^= 0x04;
            let Ok(seg) = open_bytes(dir.path(), &b) else {
                continue;
            };
            for (i, w) in want.iter().enumerate() {
                if let Ok(block) = seg.block(i) {
                    let mut got = Vec::new();
                    for r in block.records(seg.blocks().unwrap()[i].first_seq) {
                        let r = r.expect("a block whose CRCs matched reads whole");
                        frame::encode(&mut got, r.seq, &r.as_new());
                    }
                    assert_eq!(&got, w, "flip at {at} changed block {i}'s records");
                }
            }
        }
    }

    #[test]
    fn a_frame_whose_crc_fails_at_seal_keeps_its_place_and_reads_as_an_error() {
        // The damage is in the stream byte, or in the sequence itself.
        for damaged_at in [8 + 22, 8] {
            let mut raw = frames(6);
            let third = (0..2).fold(0, |at, _| at + frame::decode(&raw[at..]).unwrap().1);
            raw[third + damaged_at] ^= 1;
            let dir = tempfile::tempdir().unwrap();
            let seg = open_bytes(dir.path(), &build(&raw, 1 << 20, 1).unwrap()).unwrap();
            assert_eq!((seg.first_seq, seg.end_seq), (10, 16));
            let block = seg.block(0).unwrap();
            let got: Vec<_> = block.records(10).collect();
            assert_eq!(got.len(), 3);
            assert!(got[0].is_ok() && got[1].is_ok());
            assert!(got[2].unwrap_err().what.contains("CRC"), "{:?}", got[2]);
            // Its position is not trusted: the table has the last sound one per file.
            assert_eq!(seg.positions().unwrap().len(), 2);
            assert_eq!(
                (seg.positions().unwrap()[0].1, seg.positions().unwrap()[1].1),
                (4, 5)
            );
        }
    }

    #[test]
    fn sequence_range_past_u64_max_is_a_corrupt_error_not_an_overflow() {
        let mut buf = Vec::new();
        for seq in [u64::MAX - 1, u64::MAX] {
            let rec = NewRecord {
                time_ns: 1,
                time_style: TimeStyle::default(),
                stream: Stream::Stdout,
                flags: RecordFlags(0),
                message: b"m",
                position: Position::None,
            };
            frame::encode(&mut buf, seq, &rec);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sealed");
        std::fs::write(&path, build(&buf, 1 << 10, 1).unwrap()).unwrap();
        match SealedSegment::open(&path) {
            Err(Error::Corrupt { what, .. }) => assert!(what.contains("overflows"), "{what}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a segment whose sequences pass u64::MAX"),
        }
    }

    #[test]
    fn damaged_footer_or_index_is_a_corrupt_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 10, 50, &frames(40), 300, 1).unwrap();
        let good = std::fs::read(&path).unwrap();
        let n = good.len();
        for at in [0, n - 1, n - 20, n - FOOTER_LEN, n - FOOTER_LEN - 5] {
            let mut b = good.clone();
            b[at] ^= 1;
            std::fs::write(&path, &b).unwrap();
            assert!(
                matches!(SealedSegment::open(&path), Err(Error::Corrupt { .. })),
                "flip at {at}"
            );
        }
    }
}
