//! Physical lines → records: cuts a file's bytes into lines (carrying an incomplete line across
//! reads), parses each with the file's format (chosen by [`FormatRule`], per line until one
//! parses), merges partial fragments per stream, and caps messages at the line limit.
//!
//! A line never waits for an end that may not come: once its message reaches the limit it is
//! emitted, flagged truncated, and the rest of it (further fragments, or the rest of an
//! over-long physical line) is skipped and counted ([`Event::Skipped`]) until its end. What is
//! held meanwhile ([`LineAssembler::held_bytes`]) is bounded per file by about twice the limit,
//! and for the node by the tailer, which asks the assembler holding the oldest line
//! ([`LineAssembler::oldest`]) to emit it early ([`LineAssembler::evict`]).

use super::parse::{self, Format, FormatRule, LineMeta, ParseError};
use runnel_index::{RecordFlags, Stream, TimeStyle};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes kept from the end of an over-long json-file line (where `stream` and `time` are).
const OVERSIZE_TAIL: usize = 512;
/// Raw bytes beyond the message limit a json-file line may take (escapes, `stream`, `time`)
/// before only its head and tail are kept.
const JSON_RAW_SLACK: usize = 64 * 1024;
/// Raw bytes beyond the message limit a CRI line may take (time, stream and tag) before the
/// line is emitted truncated from its head.
const CRI_RAW_SLACK: usize = 1024;

/// Order in which held lines began, across all files (the oldest is evicted first).
static NEXT_BORN: AtomicU64 = AtomicU64::new(1);

fn born() -> u64 {
    NEXT_BORN.fetch_add(1, Ordering::Relaxed)
}

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
    /// Bytes of a line already emitted truncated that were not stored (counted).
    Skipped(u64),
}

struct Pending {
    msg: Vec<u8>,
    time_ns: i64,
    style: TimeStyle,
    truncated: bool,
    fragments: u32,
    start: u64,
    last_end: u64,
    born: u64,
}

/// Per-file line state. Holds no buffer while the file is idle at a line boundary.
pub struct LineAssembler {
    rule: FormatRule,
    format: Option<Format>,
    max_line: usize,
    carry: Vec<u8>,
    carry_start: u64,
    carry_born: u64,
    /// A json-file line over the raw limit: `carry` holds its head, `tail` its last bytes.
    oversize: bool,
    tail: Vec<u8>,
    /// The rest of the current physical line was emitted or given up: skip it to its `\n`.
    skip_raw: bool,
    pending: [Option<Pending>; 2],
    /// The stream's line was emitted truncated: its fragments are skipped to the final one.
    skipping: [bool; 2],
    /// Time of the last line parsed (for a json-file line cut before its `time`).
    last_time: Option<(i64, TimeStyle)>,
    times: parse::TimeCache,
}

fn idx(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl LineAssembler {
    /// A fresh assembler for a file whose format follows `rule`; messages are capped at
    /// `max_line` bytes.
    pub fn new(rule: FormatRule, max_line: usize) -> LineAssembler {
        LineAssembler {
            rule,
            format: match rule {
                FormatRule::Fixed(f) => Some(f),
                FormatRule::FirstParseable => None,
            },
            max_line: max_line.max(1),
            carry: Vec::new(),
            carry_start: 0,
            carry_born: 0,
            oversize: false,
            tail: Vec::new(),
            skip_raw: false,
            pending: [None, None],
            skipping: [false, false],
            last_time: None,
            times: parse::TimeCache::default(),
        }
    }

    /// Start inside a physical line (a restart resuming where a truncated line was emitted):
    /// its rest is skipped and counted, not parsed as a line of its own.
    pub fn start_mid_line(&mut self) {
        self.skip_raw = true;
    }

    /// The format in use, once decided.
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    fn raw_limit(&self, f: Format) -> usize {
        self.max_line
            + match f {
                Format::JsonFile => JSON_RAW_SLACK,
                Format::Cri => CRI_RAW_SLACK,
            }
    }

    /// The format to read a raw head in: the decided one, else a guess from its first byte.
    fn format_of(&self, head: &[u8]) -> Format {
        self.format.unwrap_or_else(|| {
            match head.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\r')) {
                Some(b'{') => Format::JsonFile,
                _ => Format::Cri,
            }
        })
    }

    /// True when a partial line or fragment is held (the file is not at a record boundary).
    pub fn busy(&self) -> bool {
        !self.carry.is_empty()
            || self.oversize
            || self.skip_raw
            || self.pending.iter().any(Option::is_some)
            || self.skipping.iter().any(|s| *s)
    }

    /// Memory held for lines not yet emitted, in bytes (for the node-wide bound).
    pub fn held_bytes(&self) -> usize {
        self.carry.capacity()
            + self.tail.capacity()
            + self
                .pending
                .iter()
                .flatten()
                .map(|p| p.msg.capacity())
                .sum::<usize>()
    }

    /// When the oldest line held here began (a global order), if one is held.
    pub fn oldest(&self) -> Option<u64> {
        let carry = (!self.carry.is_empty() || self.oversize).then_some(self.carry_born);
        self.pending
            .iter()
            .flatten()
            .map(|p| p.born)
            .chain(carry)
            .min()
    }

    /// Emit the oldest line held now, flagged truncated (the node holds too much for lines
    /// not yet ended); the rest of it is skipped when it comes. Returns false when none is held.
    pub fn evict(&mut self, scratch: &mut Vec<u8>, out: &mut dyn FnMut(Event<'_>)) -> bool {
        let carry = (!self.carry.is_empty() || self.oversize).then_some(self.carry_born);
        let pend = (0..2)
            .filter_map(|i| self.pending[i].as_ref().map(|p| (p.born, i)))
            .min();
        match (pend, carry) {
            (Some((b, i)), c) if c.is_none_or(|c| b <= c) => {
                self.emit_pending(i, true, out);
                true
            }
            (_, Some(_)) => {
                self.cut_carry(scratch, out);
                true
            }
            _ => false,
        }
    }

    /// Emit pending line `i` now, flagged truncated when `cut`; its rest is skipped.
    fn emit_pending(&mut self, i: usize, cut: bool, out: &mut dyn FnMut(Event<'_>)) {
        let Some(p) = self.pending[i].take() else {
            return;
        };
        let stream = if i == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        };
        self.skipping[i] = cut;
        let offset = self.resume_offset(stream, p.last_end);
        out(Event::Record(Emitted {
            time_ns: p.time_ns,
            style: p.style,
            stream,
            flags: flags(p.fragments > 1, p.truncated || cut),
            message: &p.msg,
            offset,
        }));
    }

    /// Emit what the carried (unterminated) physical line holds, truncated, and skip its rest.
    fn cut_carry(&mut self, scratch: &mut Vec<u8>, out: &mut dyn FnMut(Event<'_>)) {
        let carry = std::mem::take(&mut self.carry);
        let tail = std::mem::take(&mut self.tail);
        let start = self.carry_start;
        let end = start + carry.len() as u64;
        self.oversize = false;
        self.skip_raw = true;
        scratch.clear();
        let parsed = match self.format_of(&carry) {
            Format::Cri => parse::parse_cri(&carry, &mut self.times).map(|(m, content)| {
                scratch.extend_from_slice(content);
                m
            }),
            Format::JsonFile if parse::json_log_prefix(&carry, scratch) => {
                // `stream` and `time` come after `log`: from the tail when it was seen, else
                // the time of the file's last line (the line's own time is not read yet).
                let st = parse::json_stream_time(&tail)
                    .or_else(|| self.last_time.map(|(t, style)| (Stream::Stdout, t, style)));
                match st {
                    Some((stream, time_ns, style)) => Ok(LineMeta {
                        time_ns,
                        style,
                        stream,
                        partial: false,
                    }),
                    None => Err(ParseError::BadTime),
                }
            }
            Format::JsonFile => Err(ParseError::MissingLog),
        };
        match parsed {
            Ok(meta) => {
                if self.format.is_none() {
                    self.format = Some(self.format_of(&carry));
                }
                let msg = std::mem::take(scratch);
                self.merge(meta, &msg, true, start, end, out);
                *scratch = msg;
            }
            Err(error) => out(Event::Bad {
                offset: start,
                error,
            }),
        }
    }

    fn push_carry(
        &mut self,
        piece: &[u8],
        at: u64,
        scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(Event<'_>),
    ) {
        if self.skip_raw {
            out(Event::Skipped(piece.len() as u64));
            return;
        }
        if self.carry.is_empty() && !self.oversize {
            self.carry_start = at;
            self.carry_born = born();
        }
        let head = if self.carry.is_empty() {
            piece
        } else {
            &self.carry
        };
        let format = self.format_of(head);
        let room = self.raw_limit(format).saturating_sub(self.carry.len());
        if piece.len() <= room && !self.oversize {
            self.carry.extend_from_slice(piece);
            return;
        }
        self.carry
            .extend_from_slice(&piece[..room.min(piece.len())]);
        let rest = piece.len().saturating_sub(room);
        if format == Format::Cri {
            // The head holds time, stream, tag and more than the limit: emit it now.
            self.cut_carry(scratch, out);
            if rest > 0 {
                out(Event::Skipped(rest as u64));
            }
            return;
        }
        // json-file: `stream` and `time` are at the end; keep the last bytes seen.
        self.oversize = true;
        if rest > 0 {
            out(Event::Skipped(rest as u64));
        }
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

    /// Feed bytes read at file offset `base`; calls `out` for each record, bad line or skip.
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
                self.push_carry(rest, pos, scratch, out);
                break;
            };
            let end = pos + i as u64 + 1;
            if self.skip_raw {
                // The end of a line emitted (or given up) before it ended.
                out(Event::Skipped(i as u64 + 1));
                self.skip_raw = false;
            } else if self.carry.is_empty() && !self.oversize {
                self.line(&rest[..i], pos, end, false, scratch, out);
            } else {
                self.push_carry(&rest[..i], pos, scratch, out);
                if self.skip_raw {
                    // push_carry emitted the line's head; the `\n` ends the skip.
                    out(Event::Skipped(1));
                    self.skip_raw = false;
                } else {
                    let carry = std::mem::take(&mut self.carry);
                    let start = self.carry_start;
                    let oversize = std::mem::replace(&mut self.oversize, false);
                    self.line(&carry, start, end, oversize, scratch, out);
                    // An idle file keeps no buffer: the carry is freed once its line is done.
                    drop(carry);
                    self.tail = Vec::new();
                }
            }
            rest = &rest[i + 1..];
            pos = end;
        }
    }

    /// Parse one line in the decided format, or (not decided yet) in the first that fits.
    fn parse(
        &mut self,
        line: &[u8],
        oversize: bool,
        scratch: &mut Vec<u8>,
    ) -> Result<(LineMeta, bool), ParseError> {
        let try_format = |f: Format, this: &mut Self, scratch: &mut Vec<u8>| {
            scratch.clear();
            match (f, oversize) {
                (Format::JsonFile, false) => {
                    parse::parse_json(line, scratch, &mut this.times).map(|m| (m, false))
                }
                (Format::JsonFile, true) => {
                    parse::parse_json_oversize(line, &this.tail, scratch).map(|m| (m, true))
                }
                (Format::Cri, o) => parse::parse_cri(line, &mut this.times).map(|(m, content)| {
                    scratch.extend_from_slice(content);
                    (m, o)
                }),
            }
        };
        if let Some(f) = self.format {
            return try_format(f, self, scratch);
        }
        let cri = try_format(Format::Cri, self, scratch);
        if cri.is_ok() {
            self.format = Some(Format::Cri);
            return cri;
        }
        let json = try_format(Format::JsonFile, self, scratch);
        if json.is_ok() {
            self.format = Some(Format::JsonFile);
            return json;
        }
        // Report the error of the format the line looks like.
        match self.format_of(line) {
            Format::Cri => cri,
            Format::JsonFile => json,
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
        match self.parse(line, oversize, scratch) {
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
        self.last_time = Some((meta.time_ns, meta.style));
        if self.skipping[s] {
            // The rest of a line already emitted truncated; its final fragment ends it.
            out(Event::Skipped(msg.len() as u64));
            self.skipping[s] = meta.partial;
            return;
        }
        if let Some(p) = self.pending[s].as_mut() {
            let room = max.saturating_sub(p.msg.len());
            let keep = room.min(msg.len());
            p.msg.extend_from_slice(&msg[..keep]);
            p.truncated |= forced_trunc || msg.len() > room;
            p.fragments += 1;
            p.last_end = end;
            let over = (msg.len() - keep) as u64;
            if over > 0 {
                out(Event::Skipped(over));
            }
            // Emitted at its final fragment, or as soon as it reaches the limit.
            let full = p.truncated || p.msg.len() >= max;
            if !meta.partial || full {
                self.emit_pending(s, meta.partial && full, out);
            }
            return;
        }
        let truncated = forced_trunc || msg.len() > max;
        let keep = max.min(msg.len());
        if keep < msg.len() {
            out(Event::Skipped((msg.len() - keep) as u64));
        }
        let msg = &msg[..keep];
        if meta.partial && !truncated && msg.len() < max {
            self.pending[s] = Some(Pending {
                msg: msg.to_vec(),
                time_ns: meta.time_ns,
                style: meta.style,
                truncated,
                fragments: 1,
                start,
                last_end: end,
                born: born(),
            });
            return;
        }
        let cut = meta.partial;
        self.skipping[s] = cut;
        let offset = self.resume_offset(meta.stream, end);
        out(Event::Record(Emitted {
            time_ns: meta.time_ns,
            style: meta.style,
            stream: meta.stream,
            flags: flags(false, truncated || cut),
            message: msg,
            offset,
        }));
    }

    /// The file ends for good (rotated and drained, or deleted): emit fragments still waiting for
    /// their final part as they are, so nothing is lost. An incomplete last line stays unread.
    pub fn finish(&mut self, out: &mut dyn FnMut(Event<'_>)) {
        let mut order: Vec<(u64, usize)> = (0..2)
            .filter_map(|i| self.pending[i].as_ref().map(|p| (p.last_end, i)))
            .collect();
        order.sort();
        for (_, i) in order {
            self.emit_pending(i, false, out);
        }
        self.skipping = [false, false];
    }

    /// `--oneshot` at the end of what is there: fragments still waiting for their final part
    /// (a progress bar that never ends its line) are stored, flagged truncated, so a backfill
    /// leaves nothing behind; the rest of such a line, if it comes later, is stored as a line
    /// of its own. An unterminated physical line is a write in progress (or a torn one): it
    /// stays unread, and the next run reads it whole.
    pub fn flush_at_eof(&mut self, out: &mut dyn FnMut(Event<'_>)) {
        let mut order: Vec<(u64, usize)> = (0..2)
            .filter_map(|i| self.pending[i].as_ref().map(|p| (p.last_end, i)))
            .collect();
        order.sort();
        for (_, i) in order {
            self.emit_pending(i, true, out);
        }
    }

    /// Move the line state out, leaving a fresh one: a file truncated in place starts over,
    /// while the lines it held continue in its copy (copytruncate), which goes on at the same
    /// offset.
    pub fn take(&mut self) -> LineAssembler {
        std::mem::replace(self, LineAssembler::new(self.rule, self.max_line))
    }

    /// Forget everything (after a truncation the old content is gone).
    pub fn reset(&mut self) {
        *self = LineAssembler::new(self.rule, self.max_line);
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
