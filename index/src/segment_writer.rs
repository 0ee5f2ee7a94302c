//! Writing a sealed segment as a stream: frames go in a few at a time, each block is compressed
//! and written as soon as it holds `block_target` raw bytes, and the block index, position
//! table and footer follow at the end. Memory stays at about one block whatever the segment's
//! size, and the bytes are the same as building the whole segment in memory would give.
//!
//! Format 2 (what the store writes) turns each block's records into columns (`block` module):
//! frames come in with their CRCs, which are checked here, because the block's own CRCs are
//! what protects the records from here on. Format 1 (frames as they are) is kept for tests and
//! for measuring one against the other.

use crate::block::{Block, ColumnWriter};
use crate::frame::{self, FrameError, FrameView};
use crate::sealed::{BlockMeta, Format, FOOTER_MAGIC, MAX_BLOCK_FRAMES};
use crate::{FileId, Position};
use std::collections::BTreeMap;
use std::io::Write;

thread_local! {
    /// One zstd context per sealing thread and level: creating a context per block costs about
    /// as much as compressing a small block.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Compress one block into `out` (cleared first) with this thread's reusable context.
fn compress_block(raw: &[u8], level: i32, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let c = zstd::bulk::Compressor::new(level).map_err(|e| e.to_string())?;
            *slot = Some((level, c));
        }
        match slot.as_mut() {
            Some((_, c)) => c
                .compress_to_buffer(raw, out)
                .map(drop)
                .map_err(|e| e.to_string()),
            None => Err("no zstd context".to_string()),
        }
    })
}

/// Why a segment could not be built: a frame that does not decode, or an I/O error of the
/// output.
#[derive(Debug)]
pub enum BuildError {
    /// The input is not a run of whole, valid frames.
    Frames(String),
    /// Writing the output failed.
    Io(std::io::Error),
}

/// Builds a sealed segment into `out` (a file, or a `Vec` for tests).
pub struct SegmentBuilder<W: Write> {
    out: W,
    written: u64,
    block_target: usize,
    level: i32,
    format: Format,
    /// V1: the block's frames; V2: the encoded block, between `emit_block`'s two steps.
    block: Vec<u8>,
    /// V2: the block's records.
    columns: ColumnWriter,
    /// Frame bytes of the records in the current block (what `block_target` counts).
    block_frames: usize,
    next_seq: Option<u64>,
    compressed: Vec<u8>,
    meta: BlockMeta,
    metas: Vec<BlockMeta>,
    positions: BTreeMap<FileId, u64>,
    first_seq: Option<u64>,
    count: u64,
}

fn empty_meta() -> BlockMeta {
    BlockMeta {
        min_time: i64::MAX,
        max_time: i64::MIN,
        first_seq: 0,
        count: 0,
        raw_len: 0,
        offset: 0,
        len: 0,
        crc: 0,
    }
}

impl<W: Write> SegmentBuilder<W> {
    /// Start a segment of the current format in `out` (the magic is written at once).
    pub fn new(out: W, block_target: usize, level: i32) -> Result<Self, BuildError> {
        Self::with_format(out, block_target, level, Format::CURRENT)
    }

    /// Start a segment of format `format` in `out`.
    pub fn with_format(
        mut out: W,
        block_target: usize,
        level: i32,
        format: Format,
    ) -> Result<Self, BuildError> {
        let magic = format.magic();
        out.write_all(magic).map_err(BuildError::Io)?;
        Ok(SegmentBuilder {
            out,
            written: magic.len() as u64,
            block_target: block_target.max(1),
            level,
            format,
            block: Vec::with_capacity(block_target.max(1) + 4096),
            columns: ColumnWriter::new(),
            block_frames: 0,
            next_seq: None,
            compressed: Vec::new(),
            meta: empty_meta(),
            metas: Vec::new(),
            positions: BTreeMap::new(),
            first_seq: None,
            count: 0,
        })
    }

    /// Add whole frames, in sequence order. A block is cut before a frame once its records'
    /// frames hold `block_target` bytes, or when the frame would take them past
    /// [`MAX_BLOCK_FRAMES`].
    pub fn push_frames(&mut self, mut frames: &[u8]) -> Result<(), BuildError> {
        let bad = |e: FrameError| BuildError::Frames(e.describe().to_string());
        while !frames.is_empty() {
            if self.format == Format::V1 {
                // Format 1 moves frames as they are; readers check each frame's CRC.
                let (f, n) = frame::decode_unverified(frames).map_err(bad)?;
                self.start_record(&f, n, true)?;
                self.block.extend_from_slice(&frames[..n]);
                frames = &frames[n..];
                continue;
            }
            let n = match frame::decode(frames) {
                Ok((f, n)) => {
                    self.start_record(&f, n, true)?;
                    self.columns.push(&f);
                    n
                }
                // The frame's bounds are sound but its content is not: it keeps its place
                // and reads as an error, as it would have in format 1.
                Err(FrameError::BadCrc) => {
                    let (f, n) = frame::decode_unverified(frames).map_err(bad)?;
                    // Its own sequence may be the damaged part; its place is the next one.
                    let f = FrameView {
                        seq: self.next_seq.unwrap_or(f.seq),
                        ..f
                    };
                    self.start_record(&f, n, false)?;
                    self.columns.push_damaged(f.seq, f.time_ns);
                    n
                }
                Err(e) => return Err(bad(e)),
            };
            frames = &frames[n..];
        }
        Ok(())
    }

    /// Add the records of `block` (which start at `first_seq`), read from another segment. A
    /// record that does not read is an error: a segment is never rewritten around damage.
    pub fn push_block(&mut self, block: &Block, first_seq: u64) -> Result<(), BuildError> {
        for f in block.records(first_seq) {
            let f = f.map_err(|e| {
                BuildError::Frames(format!("raw block offset {}: {}", e.at, e.what))
            })?;
            let n = frame::encoded_len(&f.position, f.message.len());
            self.start_record(&f, n, true)?;
            match self.format {
                Format::V1 => {
                    frame::encode(&mut self.block, f.seq, &f.as_new());
                }
                Format::V2 => self.columns.push(&f),
            }
        }
        Ok(())
    }

    /// Account for record `f` (whose frame takes `n` bytes) before it is added to the block:
    /// cut the block first when it is full, and check the sequence follows the previous one.
    /// The position of a `damaged` record (`sound == false`) is not trusted.
    fn start_record(&mut self, f: &FrameView<'_>, n: usize, sound: bool) -> Result<(), BuildError> {
        if self.next_seq.is_some_and(|s| s != f.seq) {
            return Err(BuildError::Frames(format!(
                "sequence {} where {} was next",
                f.seq,
                self.next_seq.unwrap_or(0)
            )));
        }
        self.next_seq = f.seq.checked_add(1);
        let full =
            self.block_frames >= self.block_target || self.block_frames + n > MAX_BLOCK_FRAMES;
        if self.meta.count > 0 && full {
            self.emit_block()?;
        }
        let m = &mut self.meta;
        if m.count == 0 {
            m.first_seq = f.seq;
        }
        m.count += 1;
        m.min_time = m.min_time.min(f.time_ns);
        m.max_time = m.max_time.max(f.time_ns);
        self.first_seq.get_or_insert(f.seq);
        self.count += 1;
        self.block_frames += n;
        if let (true, Position::File { file, offset }) = (sound, f.position) {
            self.positions.insert(file, offset);
        }
        Ok(())
    }

    fn emit_block(&mut self) -> Result<(), BuildError> {
        // Format 2: the columns and the messages as two zstd frames (see the `block` module).
        let (head, rest): (&[u8], &[u8]) = match self.format {
            Format::V1 => (&self.block, &[]),
            Format::V2 => {
                let rest = self.columns.finish(&mut self.block);
                (&self.block, rest)
            }
        };
        let raw_len = head.len() + rest.len();
        compress_block(head, self.level, &mut self.compressed).map_err(BuildError::Frames)?;
        let mut meta = std::mem::replace(&mut self.meta, empty_meta());
        meta.crc = crc32c::crc32c(&self.compressed);
        meta.len = self.compressed.len() as u32;
        self.out
            .write_all(&self.compressed)
            .map_err(BuildError::Io)?;
        if !rest.is_empty() {
            compress_block(rest, self.level, &mut self.compressed).map_err(BuildError::Frames)?;
            meta.crc = crc32c::crc32c_append(meta.crc, &self.compressed);
            meta.len += self.compressed.len() as u32;
            self.out
                .write_all(&self.compressed)
                .map_err(BuildError::Io)?;
        }
        meta.raw_len = raw_len as u32;
        meta.offset = self.written;
        self.written += meta.len as u64;
        self.metas.push(meta);
        self.columns.reset();
        self.block.clear();
        self.block_frames = 0;
        Ok(())
    }

    /// Write the last block, the block index, the position table and the footer; returns the
    /// output.
    pub fn finish(mut self) -> Result<W, BuildError> {
        if self.meta.count > 0 {
            self.emit_block()?;
        }
        let (seg_min, seg_max) = self.metas.iter().fold((i64::MAX, i64::MIN), |(lo, hi), m| {
            (lo.min(m.min_time), hi.max(m.max_time))
        });
        let positions: Vec<(FileId, u64)> =
            std::mem::take(&mut self.positions).into_iter().collect();
        let tail = trailer(
            self.format,
            self.written,
            &self.metas,
            &positions,
            self.first_seq.unwrap_or(0),
            self.count,
            (seg_min, seg_max),
        );
        self.out.write_all(&tail).map_err(BuildError::Io)?;
        Ok(self.out)
    }
}

/// The block index, the position table and the footer of a segment whose blocks end at
/// `index_offset`.
pub fn trailer(
    format: Format,
    index_offset: u64,
    metas: &[BlockMeta],
    positions: &[(FileId, u64)],
    first_seq: u64,
    count: u64,
    (seg_min, seg_max): (i64, i64),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(metas.len() * 48 + positions.len() * 32 + 72);
    for m in metas {
        out.extend_from_slice(&m.min_time.to_le_bytes());
        out.extend_from_slice(&m.max_time.to_le_bytes());
        out.extend_from_slice(&m.first_seq.to_le_bytes());
        out.extend_from_slice(&m.count.to_le_bytes());
        out.extend_from_slice(&m.raw_len.to_le_bytes());
        out.extend_from_slice(&m.offset.to_le_bytes());
        out.extend_from_slice(&m.len.to_le_bytes());
        out.extend_from_slice(&m.crc.to_le_bytes());
    }
    for (file, offset) in positions {
        for v in [file.dev, file.ino, file.fingerprint, *offset] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let index_crc = crc32c::crc32c(&out);
    let footer_start = out.len();
    out.extend_from_slice(&index_offset.to_le_bytes());
    out.extend_from_slice(&(metas.len() as u32).to_le_bytes());
    out.extend_from_slice(&(positions.len() as u32).to_le_bytes());
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&seg_min.to_le_bytes());
    out.extend_from_slice(&seg_max.to_le_bytes());
    out.extend_from_slice(&index_crc.to_le_bytes());
    out.extend_from_slice(&format.footer_version().to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let fcrc = crc32c::crc32c(&out[footer_start..]);
    out.extend_from_slice(&fcrc.to_le_bytes());
    out.extend_from_slice(FOOTER_MAGIC);
    out
}
