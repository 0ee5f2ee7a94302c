//! Physical lines → records: cuts a file's bytes into lines (carrying an incomplete line across
//! reads), parses each with the file's format, merges partial fragments per stream, and caps
//! messages at the line limit (flagged truncated, the rest skipped).

use super::parse::{self, Format, LineMeta, ParseError};
use runnel_index::{RecordFlags, Stream, TimeStyle};

/// Bytes kept from the end of an over-long json-file line (where `stream` and `time` are).
const OVERSIZE_TAIL: usize = 512;

/// A record ready for the index.
#[derive(Debug)]
pub struct Emitted<'a> {
    /// Time of the (first fragment of the) line.
    pub time_ns: i64,
    /// How the time was written.
    pub style: TimeStyle,
    /// stdout or stderr.
    pub stream: Stream,
    /// Merge / truncation flags.
    pub flags: RecordFlags,
    /// The message.
    pub message: &'a [u8],
    /// The resume offset: after the final fragment (see [`LineAssembler`] for the clamp).
    pub offset: u64,
}

/// What the assembler hands back while it is fed.
pub enum Event<'a> {
    /// A complete record.
    Record(Emitted<'a>),
    /// A line that could not be parsed (counted and skipped).
    Bad {
        /// Offset of the line's first byte.
        offset: u64,
        /// Why.
        error: ParseError,
    },
}

struct Pending {
    msg: Vec<u8>,
    time_ns: i64,
    style: TimeStyle,
    truncated: bool,
    fragments: u32,
    start: u64,
    last_end: u64,
}

/// Per-file line state. Holds no buffer while the file is idle at a line boundary.
pub struct LineAssembler {
    format: Format,
    max_line: usize,
    carry: Vec<u8>,
    carry_start: u64,
    oversize: bool,
    tail: Vec<u8>,
    pending: [Option<Pending>; 2],
}

fn idx(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl LineAssembler {
    /// A fresh assembler for a file of `format`; messages are capped at `max_line` bytes.
    pub fn new(format: Format, max_line: usize) -> LineAssembler {
        LineAssembler {
            format,
            max_line: max_line.max(1),
            carry: Vec::new(),
            carry_start: 0,
            oversize: false,
            tail: Vec::new(),
            pending: [None, None],
        }
    }

    /// Raw line length past which only the head and tail of a line are kept.
    fn raw_limit(&self) -> usize {
        self.max_line + 64 * 1024
    }

    /// True when a partial line or fragment is held (the file is not at a record boundary).
    pub fn busy(&self) -> bool {
        !self.carry.is_empty() || self.oversize || self.pending.iter().any(Option::is_some)
    }

    /// Messages held for merging, in bytes (for memory accounting).
    pub fn held_bytes(&self) -> usize {
        self.carry.capacity()
            + self
                .pending
                .iter()
                .flatten()
                .map(|p| p.msg.capacity())
                .sum::<usize>()
    }

    fn push_carry(&mut self, piece: &[u8], at: u64) {
        if self.carry.is_empty() && !self.oversize {
            self.carry_start = at;
        }
        let room = self.raw_limit().saturating_sub(self.carry.len());
        if piece.len() <= room && !self.oversize {
            self.carry.extend_from_slice(piece);
            return;
        }
        self.carry
            .extend_from_slice(&piece[..room.min(piece.len())]);
        self.oversize = true;
        // Keep the last OVERSIZE_TAIL bytes seen.
        if piece.len() >= OVERSIZE_TAIL {
            self.tail.clear();
            self.tail
                .extend_from_slice(&piece[piece.len() - OVERSIZE_TAIL..]);
        } else {
            self.tail.extend_from_slice(piece);
            let excess = self.tail.len().saturating_sub(OVERSIZE_TAIL);
            self.tail.drain(..excess);
        }
    }

    /// Feed bytes read at file offset `base`; calls `out` for each record or bad line.
    /// `scratch` is a buffer the caller reuses across files (json-file unescaping).
    pub fn feed(
        &mut self,
        data: &[u8],
        base: u64,
        scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(Event<'_>),
    ) {
        let mut rest = data;
        let mut pos = base;
        while !rest.is_empty() {
            let Some(i) = memchr::memchr(b'\n', rest) else {
                self.push_carry(rest, pos);
                break;
            };
            let end = pos + i as u64 + 1;
            if self.carry.is_empty() && !self.oversize {
                self.line(&rest[..i], pos, end, false, scratch, out);
            } else {
                self.push_carry(&rest[..i], pos);
                let carry = std::mem::take(&mut self.carry);
                let start = self.carry_start;
                let oversize = std::mem::replace(&mut self.oversize, false);
                self.line(&carry, start, end, oversize, scratch, out);
                // An idle file keeps no buffer: the carry is freed once its line is done.
                drop(carry);
                self.tail.clear();
            }
            rest = &rest[i + 1..];
            pos = end;
        }
    }

    fn line(
        &mut self,
        line: &[u8],
        start: u64,
        end: u64,
        oversize: bool,
        scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(Event<'_>),
    ) {
        scratch.clear();
        let parsed: Result<(LineMeta, bool), ParseError> = match (self.format, oversize) {
            (Format::JsonFile, false) => parse::parse_json(line, scratch).map(|m| (m, false)),
            (Format::JsonFile, true) => {
                let tail = std::mem::take(&mut self.tail);
                let r = parse::parse_json_oversize(line, &tail, scratch).map(|m| (m, true));
                self.tail = tail;
                r
            }
            (Format::Cri, o) => parse::parse_cri(line).map(|(m, content)| {
                scratch.extend_from_slice(content);
                (m, o)
            }),
        };
        match parsed {
            Ok((meta, forced)) => {
                let msg = std::mem::take(scratch);
                self.merge(meta, &msg, forced, start, end, out);
                *scratch = msg;
            }
            Err(error) => out(Event::Bad {
                offset: start,
                error,
            }),
        }
    }

    /// Where a record ending at `end` lets a restart resume: never past the start of a fragment
    /// still pending on the other stream (a restart then re-reads it rather than losing it).
    fn resume_offset(&self, stream: Stream, end: u64) -> u64 {
        match &self.pending[1 - idx(stream)] {
            Some(p) => p.start.min(end),
            None => end,
        }
    }

    fn merge(
        &mut self,
        meta: LineMeta,
        msg: &[u8],
        forced_trunc: bool,
        start: u64,
        end: u64,
        out: &mut dyn FnMut(Event<'_>),
    ) {
        let s = idx(meta.stream);
        let max = self.max_line;
        if let Some(p) = self.pending[s].as_mut() {
            let room = max.saturating_sub(p.msg.len());
            if msg.len() > room {
                p.truncated = true;
            }
            p.msg.extend_from_slice(&msg[..room.min(msg.len())]);
            p.truncated |= forced_trunc;
            p.fragments += 1;
            p.last_end = end;
            if meta.partial {
                return;
            }
            if let Some(p) = self.pending[s].take() {
                let offset = self.resume_offset(meta.stream, end);
                out(Event::Record(Emitted {
                    time_ns: p.time_ns,
                    style: p.style,
                    stream: meta.stream,
                    flags: flags(p.fragments > 1, p.truncated),
                    message: &p.msg,
                    offset,
                }));
            }
            return;
        }
        let truncated = forced_trunc || msg.len() > max;
        let msg = &msg[..max.min(msg.len())];
        if meta.partial {
            self.pending[s] = Some(Pending {
                msg: msg.to_vec(),
                time_ns: meta.time_ns,
                style: meta.style,
                truncated,
                fragments: 1,
                start,
                last_end: end,
            });
            return;
        }
        let offset = self.resume_offset(meta.stream, end);
        out(Event::Record(Emitted {
            time_ns: meta.time_ns,
            style: meta.style,
            stream: meta.stream,
            flags: flags(false, truncated),
            message: msg,
            offset,
        }));
    }

    /// The file ends for good (rotated and drained, or deleted): emit fragments still waiting for
    /// their final part as they are, so nothing is lost. An incomplete last line stays unread.
    pub fn finish(&mut self, out: &mut dyn FnMut(Event<'_>)) {
        let mut ps: Vec<(Stream, Pending)> = Vec::new();
        for (i, s) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if let Some(p) = self.pending[i].take() {
                ps.push((s, p));
            }
        }
        ps.sort_by_key(|(_, p)| p.last_end);
        for (stream, p) in ps {
            out(Event::Record(Emitted {
                time_ns: p.time_ns,
                style: p.style,
                stream,
                flags: flags(p.fragments > 1, p.truncated),
                message: &p.msg,
                offset: p.last_end,
            }));
        }
    }

    /// Forget everything (after a truncation the old content is gone).
    pub fn reset(&mut self) {
        self.carry = Vec::new();
        self.oversize = false;
        self.tail = Vec::new();
        self.pending = [None, None];
    }
}

fn flags(merged: bool, truncated: bool) -> RecordFlags {
    let mut f = 0;
    if merged {
        f |= RecordFlags::PARTIAL_MERGED;
    }
    if truncated {
        f |= RecordFlags::TRUNCATED;
    }
    RecordFlags(f)
}
