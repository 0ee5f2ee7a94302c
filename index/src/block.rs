//! The raw (decompressed) content of a sealed block, and reading its records.
//!
//! Version 1 blocks hold whole frames, as in an active segment: per record 33–66 bytes of
//! fixed-width header, among them a CRC that no compressor can shrink. Version 2 blocks store the
//! same records as columns: each header field in a section of its own, as a delta from the
//! previous record or a run of equal values, and the messages after them. Zstd then sees a
//! repeating field next to its own kind, and the messages without headers in between.
//!
//! ```text
//! v2 raw block (integers little-endian; varint = LEB128, zz = zigzag varint):
//!   first_seq:u64 | count:u32 | section lengths: 8 x u32
//!   | times:       zz(time_ns - previous time_ns) per record (the first from 0), as w-byte
//!   |              little-endian numbers split into w byte planes: the low bytes of every
//!   |              record, then the next bytes, ... (w = section length / count, at most 8)
//!   | styles:      runs of     varint(run) zz(offset_secs) frac_digits:u8 zulu:u8
//!   | kinds:       runs of     varint(run) stream:u8 flags:u8 pos_kind:u8
//!   | files:       runs over file positions of  varint(run) varint(dev) varint(ino) fingerprint:u64
//!   | offsets:     per file position  zz(offset - previous file offset - message length)
//!   | stream ids:  runs over stream positions of  varint(run) varint(stream_id)
//!   | stream seqs: per stream position  zz(seq - previous stream seq - 1)
//!   | lengths:     per record  varint(message length)
//!   | messages (the rest, concatenated)
//!   | crc32c(everything before):u32
//! ```
//!
//! The columns and the messages are compressed as two zstd frames, one after the other (zstd
//! decompresses such a pair into the concatenation): headers mixed into the messages' frame
//! would share its statistics and cost about 5% more in all.
//!
//! Sequences are implicit (`first_seq + i`): a segment's sequences are contiguous. Integrity:
//! the block index holds the CRC of the compressed bytes (checked before decompressing) and the
//! raw block ends with the CRC of its content (checked after), so a damaged block is an error,
//! never data. A record whose active-segment frame failed its CRC when it was sealed keeps its
//! place as a *damaged* record (`stream` 0xff, no message) and reads as an error, as the frame
//! would have.

use crate::frame::{self, FrameView};
use crate::{FileId, Position, RecordFlags, Stream, TimeStyle};

/// Sections of a v2 block, in file order (messages follow them).
const SECTIONS: usize = 8;
/// Bytes before the first section.
const HEADER: usize = 8 + 4 + 4 * SECTIONS;
/// The `stream` byte of a record whose frame failed its CRC when sealed.
const DAMAGED: u8 = 0xff;
/// Most bytes a v2 block takes beyond the v1 frames of the same records: its header and CRC
/// (per record, the columns never take more than the frame's fixed header).
pub const V2_OVERHEAD: usize = HEADER + 4;

/// The decompressed content of a sealed block (or of an active-segment chunk).
pub enum Block {
    /// Whole frames: an active-segment chunk or a version 1 block.
    Frames(Vec<u8>),
    /// A version 2 block whose CRC matched.
    Columns(Vec<u8>),
}

impl Block {
    /// Raw bytes held (what the block costs in memory).
    pub fn raw_len(&self) -> usize {
        match self {
            Block::Frames(b) | Block::Columns(b) => b.len(),
        }
    }

    /// The records, which start at sequence `first_seq` (the block index's). After the first
    /// error (a bad frame, a sequence other than the next, a damaged record or leftover bytes)
    /// the iterator ends.
    pub fn records(&self, first_seq: u64) -> Records<'_> {
        let inner = match self {
            Block::Frames(buf) => Inner::Frames { buf, at: 0 },
            Block::Columns(buf) => match Columns::parse(buf, first_seq) {
                Ok(c) => Inner::Columns(Box::new(c)),
                Err(e) => Inner::Failed(Some(e)),
            },
        };
        Records {
            inner,
            next_seq: first_seq,
        }
    }
}

/// Why a record of a block could not be read: where (bytes into the raw block) and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordError {
    /// Offset within the raw block.
    pub at: usize,
    /// What is wrong.
    pub what: &'static str,
}

/// Iterator over a block's records (see [`Block::records`]).
pub struct Records<'a> {
    inner: Inner<'a>,
    next_seq: u64,
}

enum Inner<'a> {
    Frames { buf: &'a [u8], at: usize },
    Columns(Box<Columns<'a>>),
    Failed(Option<RecordError>),
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<FrameView<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        let got = match &mut self.inner {
            Inner::Frames { buf, at } => {
                if *at >= buf.len() {
                    return None;
                }
                match frame::decode(&buf[*at..]) {
                    Ok((f, _)) if f.seq != self.next_seq => Err(RecordError {
                        at: *at,
                        what: "frame sequence is not the next one",
                    }),
                    Ok((f, n)) => {
                        *at += n;
                        Ok(f)
                    }
                    Err(e) => Err(RecordError {
                        at: *at,
                        what: e.describe(),
                    }),
                }
            }
            Inner::Columns(c) => c.next(self.next_seq)?,
            Inner::Failed(e) => return e.take().map(Err),
        };
        match got {
            Ok(f) => {
                self.next_seq += 1;
                Some(Ok(f))
            }
            Err(e) => {
                self.inner = Inner::Failed(None);
                Some(Err(e))
            }
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// A run-length column being written: the value and how many records repeat it.
struct Run<T: PartialEq + Copy> {
    current: Option<(T, u64)>,
}

impl<T: PartialEq + Copy> Run<T> {
    fn new() -> Self {
        Run { current: None }
    }

    /// Count `v`; when it ends a run, that run is written to `out` by `put`.
    fn push(&mut self, v: T, out: &mut Vec<u8>, put: impl Fn(&mut Vec<u8>, T)) {
        match &mut self.current {
            Some((cur, n)) if *cur == v => *n += 1,
            _ => {
                self.flush(out, put);
                self.current = Some((v, 1));
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<u8>, put: impl Fn(&mut Vec<u8>, T)) {
        if let Some((v, n)) = self.current.take() {
            put_varint(out, n);
            put(out, v);
        }
    }
}

fn put_style(out: &mut Vec<u8>, s: (i32, u8, bool)) {
    put_varint(out, zigzag(s.0 as i64));
    out.push(s.1);
    out.push(u8::from(s.2));
}

fn put_kind(out: &mut Vec<u8>, k: (u8, u8, u8)) {
    out.extend_from_slice(&[k.0, k.1, k.2]);
}

fn put_file(out: &mut Vec<u8>, f: FileId) {
    put_varint(out, f.dev);
    put_varint(out, f.ino);
    out.extend_from_slice(&f.fingerprint.to_le_bytes());
}

/// Builds one v2 block from records in sequence order; reused from block to block.
pub struct ColumnWriter {
    first_seq: u64,
    count: u32,
    sections: [Vec<u8>; SECTIONS],
    messages: Vec<u8>,
    styles: Run<(i32, u8, bool)>,
    kinds: Run<(u8, u8, u8)>,
    files: Run<FileId>,
    stream_ids: Run<u64>,
    prev_time: i64,
    /// Zigzagged time deltas of the block, written as byte planes at the end.
    time_deltas: Vec<u64>,
    prev_offset: u64,
    prev_stream_seq: u64,
}

/// Index of the times section (the others are named where they are destructured).
const TIMES: usize = 0;

impl ColumnWriter {
    /// An empty writer.
    pub fn new() -> Self {
        ColumnWriter {
            first_seq: 0,
            count: 0,
            sections: Default::default(),
            messages: Vec::new(),
            styles: Run::new(),
            kinds: Run::new(),
            files: Run::new(),
            stream_ids: Run::new(),
            prev_time: 0,
            time_deltas: Vec::new(),
            prev_offset: 0,
            prev_stream_seq: 0,
        }
    }

    fn start(&mut self, seq: u64) {
        if self.count == 0 {
            self.first_seq = seq;
        }
        self.count += 1;
    }

    fn put_time(&mut self, time_ns: i64) {
        let d = time_ns.wrapping_sub(self.prev_time);
        self.time_deltas.push(zigzag(d));
        self.prev_time = time_ns;
    }

    /// Add record `f` (its sequence must follow the previous one; the caller checks).
    pub fn push(&mut self, f: &FrameView<'_>) {
        self.start(f.seq);
        self.put_time(f.time_ns);
        let s = &f.time_style;
        let [_, styles, kinds, files, offsets, stream_ids, stream_seqs, lengths] =
            &mut self.sections;
        self.styles
            .push((s.offset_secs, s.frac_digits, s.zulu), styles, put_style);
        let stream = match f.stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        let pos_kind = match f.position {
            Position::None => 0,
            Position::File { .. } => 1,
            Position::Stream { .. } => 2,
        };
        self.kinds
            .push((stream, f.flags.0, pos_kind), kinds, put_kind);
        let len = f.message.len() as u64;
        match f.position {
            Position::None => {}
            Position::File { file, offset } => {
                self.files.push(file, files, put_file);
                let d = offset.wrapping_sub(self.prev_offset).wrapping_sub(len);
                put_varint(offsets, zigzag(d as i64));
                self.prev_offset = offset;
            }
            Position::Stream { stream_id, seq } => {
                self.stream_ids.push(stream_id, stream_ids, put_varint);
                let d = seq.wrapping_sub(self.prev_stream_seq).wrapping_sub(1);
                put_varint(stream_seqs, zigzag(d as i64));
                self.prev_stream_seq = seq;
            }
        }
        put_varint(lengths, len);
        self.messages.extend_from_slice(f.message);
    }

    /// Add a record whose frame failed its CRC: it keeps its sequence and time (the block
    /// index's time range counts it, as a v1 block's would) and reads back as an error.
    pub fn push_damaged(&mut self, seq: u64, time_ns: i64) {
        self.start(seq);
        self.put_time(time_ns);
        let [_, styles, kinds, .., lengths] = &mut self.sections;
        self.styles.push((0, 0, false), styles, put_style);
        self.kinds.push((DAMAGED, 0, 0), kinds, put_kind);
        put_varint(lengths, 0);
    }

    /// The whole raw block in `out` (cleared first), and start over.
    #[cfg(test)]
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        let rest = self.finish(out).to_vec();
        out.extend_from_slice(&rest);
        self.reset();
    }

    /// End the block: its first part (header and columns) goes to `out` (cleared first); the
    /// rest (messages and CRC) is returned, valid until [`reset`](Self::reset) starts the next
    /// block. The two parts are compressed apart and need not be copied together.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> &[u8] {
        let [_, styles, kinds, files, _, stream_ids, ..] = &mut self.sections;
        self.styles.flush(styles, put_style);
        self.kinds.flush(kinds, put_kind);
        self.files.flush(files, put_file);
        self.stream_ids.flush(stream_ids, put_varint);
        // Byte planes: a time stamp's random low bytes stay apart from its (nearly constant)
        // high bytes, which zstd then stores in almost nothing.
        let max = self.time_deltas.iter().fold(0, |m, &d| m | d);
        let width = (64 - max.leading_zeros() as usize).div_ceil(8);
        let times = &mut self.sections[TIMES];
        for k in 0..width {
            times.extend(self.time_deltas.iter().map(|d| (d >> (8 * k)) as u8));
        }
        self.time_deltas.clear();
        out.clear();
        let sections: usize = self.sections.iter().map(Vec::len).sum();
        out.reserve(HEADER + sections);
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        for s in &self.sections {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
        for s in &self.sections {
            out.extend_from_slice(s);
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(out), &self.messages);
        self.messages.extend_from_slice(&crc.to_le_bytes());
        &self.messages
    }

    /// Start the next block.
    pub fn reset(&mut self) {
        for s in &mut self.sections {
            s.clear();
        }
        self.messages.clear();
        self.count = 0;
        self.prev_time = 0;
        self.prev_offset = 0;
        self.prev_stream_seq = 0;
    }
}

impl Default for ColumnWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// Check the CRC at the end of a v2 raw block; `Err` says what is wrong.
pub fn check_crc(raw: &[u8]) -> Result<(), &'static str> {
    if raw.len() < V2_OVERHEAD {
        return Err("block shorter than its header");
    }
    let (body, crc) = raw.split_at(raw.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("raw block CRC mismatch");
    }
    Ok(())
}

/// A cursor over one section.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
    /// Offset of the section within the raw block, for error messages.
    base: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &'static str) -> RecordError {
        RecordError {
            at: self.base + self.at,
            what,
        }
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, RecordError> {
        let b = *self.buf.get(self.at).ok_or_else(|| self.err(what))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte(what)?;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err(what))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, RecordError> {
        let b = self
            .buf
            .get(self.at..self.at + 8)
            .ok_or_else(|| self.err(what))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        self.at += 8;
        Ok(u64::from_le_bytes(a))
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordError> {
        let end = self.at.checked_add(n).ok_or_else(|| self.err(what))?;
        let b = self.buf.get(self.at..end).ok_or_else(|| self.err(what))?;
        self.at = end;
        Ok(b)
    }

    fn done(&self) -> bool {
        self.at == self.buf.len()
    }
}

/// A run-length column being read.
struct RunReader<T: Copy> {
    left: u64,
    value: T,
}

impl<T: Copy> RunReader<T> {
    fn next(
        &mut self,
        c: &mut Cursor<'_>,
        what: &'static str,
        read: impl Fn(&mut Cursor<'_>) -> Result<T, RecordError>,
    ) -> Result<T, RecordError> {
        if self.left == 0 {
            self.left = c.varint(what)?;
            if self.left == 0 {
                return Err(c.err("empty run in a block column"));
            }
            self.value = read(c)?;
        }
        self.left -= 1;
        Ok(self.value)
    }
}

/// Reading state of a v2 block.
struct Columns<'a> {
    left: u32,
    done: bool,
    sections: [Cursor<'a>; SECTIONS],
    messages: Cursor<'a>,
    styles: RunReader<TimeStyle>,
    kinds: RunReader<(u8, u8, u8)>,
    files: RunReader<FileId>,
    stream_ids: RunReader<u64>,
    prev_time: i64,
    /// Bytes per time delta, and the index of the next record.
    time_width: usize,
    index: usize,
    prev_offset: u64,
    prev_stream_seq: u64,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

const SHORT: &str = "block column ends early";

impl<'a> Columns<'a> {
    /// Split a CRC-checked raw block into its sections.
    fn parse(raw: &'a [u8], first_seq: u64) -> Result<Self, RecordError> {
        let bad = |at: usize, what: &'static str| RecordError { at, what };
        if raw.len() < V2_OVERHEAD {
            return Err(bad(0, "block shorter than its header"));
        }
        let body = &raw[..raw.len() - 4];
        let mut a = [0u8; 8];
        a.copy_from_slice(&body[..8]);
        if u64::from_le_bytes(a) != first_seq {
            return Err(bad(
                0,
                "block first sequence disagrees with the block index",
            ));
        }
        let left = le32(body, 8);
        let empty = Cursor {
            buf: &[],
            at: 0,
            base: 0,
        };
        let mut sections = [empty; SECTIONS];
        let mut at = HEADER;
        for (i, s) in sections.iter_mut().enumerate() {
            let len = le32(body, 12 + 4 * i) as usize;
            let end = at
                .checked_add(len)
                .filter(|&e| e <= body.len())
                .ok_or(bad(12 + 4 * i, "block section length exceeds the block"))?;
            *s = Cursor {
                buf: &body[at..end],
                at: 0,
                base: at,
            };
            at = end;
        }
        let messages = Cursor {
            buf: &body[at..],
            at: 0,
            base: at,
        };
        let style0 = TimeStyle::default();
        let times = sections[TIMES].buf.len();
        let time_width = if left == 0 { 0 } else { times / left as usize };
        if time_width > 8 || time_width * left as usize != times {
            return Err(bad(
                12,
                "times section length is not a whole number of planes",
            ));
        }
        sections[TIMES].at = times;
        Ok(Columns {
            left,
            done: false,
            sections,
            messages,
            styles: RunReader {
                left: 0,
                value: style0,
            },
            kinds: RunReader {
                left: 0,
                value: (0, 0, 0),
            },
            files: RunReader {
                left: 0,
                value: FileId {
                    dev: 0,
                    ino: 0,
                    fingerprint: 0,
                },
            },
            stream_ids: RunReader { left: 0, value: 0 },
            prev_time: 0,
            time_width,
            index: 0,
            prev_offset: 0,
            prev_stream_seq: 0,
        })
    }

    /// The next record (sequence `seq`), `None` after the last, or an error.
    fn next(&mut self, seq: u64) -> Option<Result<FrameView<'a>, RecordError>> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            let whole = self.sections.iter().all(Cursor::done) && self.messages.done();
            let runs = [
                self.styles.left,
                self.kinds.left,
                self.files.left,
                self.stream_ids.left,
            ];
            return (!whole || runs.iter().any(|&n| n > 0))
                .then(|| Err(self.messages.err("block holds bytes past its last record")));
        }
        self.left -= 1;
        Some(self.record(seq))
    }

    fn record(&mut self, seq: u64) -> Result<FrameView<'a>, RecordError> {
        let [times, styles, kinds, files, offsets, stream_ids, stream_seqs, lengths] =
            &mut self.sections;
        let planes = times.buf.len() / self.time_width.max(1);
        let mut zz = 0u64;
        for k in 0..self.time_width {
            let b = times.buf.get(k * planes + self.index).copied().unwrap_or(0);
            zz |= (b as u64) << (8 * k);
        }
        self.index += 1;
        let d = unzigzag(zz);
        let time_ns = self.prev_time.wrapping_add(d);
        self.prev_time = time_ns;
        let time_style = self.styles.next(styles, SHORT, |c| {
            let offset = unzigzag(c.varint(SHORT)?);
            let offset_secs =
                i32::try_from(offset).map_err(|_| c.err("time zone offset out of range"))?;
            Ok(TimeStyle {
                offset_secs,
                frac_digits: c.byte(SHORT)?,
                zulu: c.byte(SHORT)? != 0,
            })
        })?;
        let kinds_at = kinds.base + kinds.at;
        let (stream, flags, pos_kind) = self.kinds.next(kinds, SHORT, |c| {
            Ok((c.byte(SHORT)?, c.byte(SHORT)?, c.byte(SHORT)?))
        })?;
        let err = |what| RecordError { at: kinds_at, what };
        let stream = match stream {
            0 => Stream::Stdout,
            1 => Stream::Stderr,
            DAMAGED => return Err(err("record failed its frame CRC when it was sealed")),
            _ => return Err(err("unknown stream value")),
        };
        let len = lengths.varint(SHORT)?;
        let position = match pos_kind {
            0 => Position::None,
            1 => {
                let file = self.files.next(files, SHORT, |c| {
                    Ok(FileId {
                        dev: c.varint(SHORT)?,
                        ino: c.varint(SHORT)?,
                        fingerprint: c.u64(SHORT)?,
                    })
                })?;
                let d = unzigzag(offsets.varint(SHORT)?) as u64;
                let offset = self.prev_offset.wrapping_add(len).wrapping_add(d);
                self.prev_offset = offset;
                Position::File { file, offset }
            }
            2 => {
                let stream_id = self
                    .stream_ids
                    .next(stream_ids, SHORT, |c| c.varint(SHORT))?;
                let d = unzigzag(stream_seqs.varint(SHORT)?) as u64;
                let s = self.prev_stream_seq.wrapping_add(1).wrapping_add(d);
                self.prev_stream_seq = s;
                Position::Stream { stream_id, seq: s }
            }
            _ => return Err(err("unknown position kind")),
        };
        let len = usize::try_from(len).map_err(|_| err("message length out of range"))?;
        let message = self
            .messages
            .take(len, "message lengths exceed the block")?;
        Ok(FrameView {
            seq,
            time_ns,
            time_style,
            stream,
            flags: RecordFlags(flags),
            position,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(seq: u64, time_ns: i64, msg: &[u8], position: Position) -> FrameView<'_> {
        FrameView {
            seq,
            time_ns,
            time_style: TimeStyle {
                offset_secs: if seq.is_multiple_of(5) { -3600 } else { 7200 },
                frac_digits: 9,
                zulu: seq.is_multiple_of(7),
            },
            stream: if seq.is_multiple_of(3) {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            flags: RecordFlags((seq % 4) as u8),
            position,
            message: msg,
        }
    }

    fn sample() -> Vec<(u64, i64, Vec<u8>, Position)> {
        let mut out = Vec::new();
        let mut offset = 1u64 << 40;
        for i in 0..60u64 {
            let msg = format!("line {i} {}", "x".repeat((i * 7 % 23) as usize)).into_bytes();
            offset += msg.len() as u64 + 40 + i % 3;
            let position = match i % 6 {
                0 => Position::None,
                1..=3 => Position::File {
                    file: FileId {
                        dev: 2049,
                        ino: 10 + i / 20,
                        fingerprint: u64::MAX - i / 20,
                    },
                    offset: if i == 13 { 0 } else { offset },
                },
                _ => Position::Stream {
                    stream_id: i / 30,
                    seq: if i == 40 { 3 } else { i * 2 },
                },
            };
            let t = if i == 9 {
                i64::MIN
            } else {
                1_700_000_000_000_000_000 + (i as i64) * 1000 - (i as i64 % 4) * 3000
            };
            out.push((100 + i, t, msg, position));
        }
        out
    }

    fn encode(recs: &[(u64, i64, Vec<u8>, Position)]) -> Vec<u8> {
        let mut w = ColumnWriter::new();
        for (seq, t, msg, p) in recs {
            w.push(&view(*seq, *t, msg, *p));
        }
        let mut out = Vec::new();
        w.finish_into(&mut out);
        out
    }

    #[test]
    fn columns_round_trip_every_field() {
        let recs = sample();
        let raw = encode(&recs);
        check_crc(&raw).unwrap();
        let block = Block::Columns(raw);
        let got: Vec<_> = block.records(100).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), recs.len());
        for (g, (seq, t, msg, p)) in got.iter().zip(&recs) {
            let want = view(*seq, *t, msg, *p);
            assert_eq!(g.to_stored(), want.to_stored());
        }
    }

    #[test]
    fn columns_of_records_that_change_every_field_take_no_more_than_their_frames() {
        let mut w = ColumnWriter::new();
        let mut frames = 0;
        let msg = [7u8; 3];
        for i in 0..200u64 {
            let odd = i % 2 == 1;
            let position = match i % 3 {
                0 => Position::File {
                    file: FileId {
                        dev: u64::MAX - i,
                        ino: u64::MAX - i,
                        fingerprint: i,
                    },
                    offset: if odd { u64::MAX } else { 0 },
                },
                1 => Position::Stream {
                    stream_id: u64::MAX - i,
                    seq: if odd { 0 } else { u64::MAX },
                },
                _ => Position::None,
            };
            let f = FrameView {
                seq: i,
                time_ns: if odd { i64::MIN } else { i64::MAX },
                time_style: TimeStyle {
                    offset_secs: if odd { i32::MIN } else { i32::MAX },
                    frac_digits: i as u8,
                    zulu: odd,
                },
                stream: if odd { Stream::Stderr } else { Stream::Stdout },
                flags: RecordFlags(i as u8),
                position,
                message: &msg,
            };
            frames += frame::encoded_len(&f.position, msg.len());
            w.push(&f);
        }
        let mut raw = Vec::new();
        w.finish_into(&mut raw);
        assert!(
            raw.len() <= frames + V2_OVERHEAD,
            "{} > {frames}",
            raw.len()
        );
        assert_eq!(Block::Columns(raw).records(0).count(), 200);
    }

    #[test]
    fn writer_is_reusable_and_a_wrong_first_sequence_is_an_error() {
        let recs = sample();
        let mut w = ColumnWriter::new();
        let mut a = Vec::new();
        for (seq, t, msg, p) in &recs {
            w.push(&view(*seq, *t, msg, *p));
        }
        w.finish_into(&mut a);
        let mut b = Vec::new();
        for (seq, t, msg, p) in &recs {
            w.push(&view(*seq, *t, msg, *p));
        }
        w.finish_into(&mut b);
        assert_eq!(a, b);
        let block = Block::Columns(a);
        let mut it = block.records(99);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn damaged_record_reads_as_an_error_after_the_good_ones() {
        let mut w = ColumnWriter::new();
        w.push(&view(0, 5, b"good", Position::None));
        w.push_damaged(1, 6);
        w.push(&view(2, 7, b"after", Position::None));
        let mut raw = Vec::new();
        w.finish_into(&mut raw);
        let block = Block::Columns(raw);
        let got: Vec<_> = block.records(0).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].unwrap().message, b"good");
        assert!(got[1].unwrap_err().what.contains("CRC"));
    }

    #[test]
    fn every_flip_and_cut_is_caught_by_the_crc_and_never_panics_the_decoder() {
        let raw = encode(&sample());
        for i in 0..raw.len() {
            let mut b = raw.clone();
            b[i] ^= 0x10;
            assert!(check_crc(&b).is_err(), "flip at {i}");
            // Without the CRC (as if it matched by chance) decoding must still not panic.
            let n = Block::Columns(b).records(100).count();
            assert!(n <= raw.len());
        }
        for cut in 0..raw.len() {
            assert!(check_crc(&raw[..cut]).is_err());
            let _ = Block::Columns(raw[..cut].to_vec()).records(100).count();
        }
    }

    #[test]
    fn frame_blocks_check_crc_and_sequence() {
        let mut buf = Vec::new();
        for seq in [4u64, 5, 7] {
            let rec = crate::NewRecord {
                time_ns: 1,
                time_style: TimeStyle::default(),
                stream: Stream::Stdout,
                flags: RecordFlags(0),
                message: b"m",
                position: Position::None,
            };
            frame::encode(&mut buf, seq, &rec);
        }
        let block = Block::Frames(buf);
        let got: Vec<_> = block.records(4).collect();
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[1].is_ok());
        assert!(got[2].unwrap_err().what.contains("sequence"));
    }
}
