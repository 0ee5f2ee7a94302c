//! Helpers shared by the fuzz targets in `fuzz_targets/`: owned copies of what the code under
//! test hands back (so two runs can be compared), record generation and byte corruption for
//! the segment targets, and a scratch directory on tmpfs (a store fsyncs; on tmpfs that is
//! cheap, so a target runs thousands of store round trips a second).

pub mod store;

use runnel_agent::tail::lines::{Event, LineAssembler};
use runnel_agent::tail::parse::ParseError;
use runnel_index::{Stream, TimeStyle};

/// One event of a [`LineAssembler`], owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// A record: time, style, stream, flags bits, message, resume offset.
    Record {
        /// Time of the first fragment (ns).
        time_ns: i64,
        /// How that time was written.
        style: TimeStyle,
        /// stdout or stderr.
        stream: Stream,
        /// `RecordFlags` bits.
        flags: u8,
        /// The merged message.
        message: Vec<u8>,
        /// Where a restart may resume.
        offset: u64,
    },
    /// A line that did not parse, at this offset.
    Bad {
        /// Offset of its first byte.
        offset: u64,
        /// Why.
        error: ParseError,
    },
    /// Bytes of a line already emitted truncated that were skipped.
    Skipped(u64),
}

impl Owned {
    /// Copy an assembler event.
    pub fn of(e: Event<'_>) -> Owned {
        match e {
            Event::Record(r) => Owned::Record {
                time_ns: r.time_ns,
                style: r.style,
                stream: r.stream,
                flags: r.flags.0,
                message: r.message.to_vec(),
                offset: r.offset,
            },
            Event::Bad { offset, error } => Owned::Bad { offset, error },
            Event::Skipped(n) => Owned::Skipped(n),
        }
    }
}

/// Feed `data` to `asm` in pieces of the given lengths (the rest in one last piece), then
/// finish; returns every event in order.
pub fn run_assembler(asm: &mut LineAssembler, data: &[u8], pieces: &[usize]) -> Vec<Owned> {
    let mut events = Vec::new();
    let mut scratch = Vec::new();
    let mut at = 0usize;
    for &n in pieces {
        let end = (at + n).min(data.len());
        asm.feed(&data[at..end], at as u64, &mut scratch, &mut |e| {
            events.push(Owned::of(e))
        });
        at = end;
    }
    if at < data.len() {
        asm.feed(&data[at..], at as u64, &mut scratch, &mut |e| {
            events.push(Owned::of(e))
        });
    }
    asm.finish(&mut |e| events.push(Owned::of(e)));
    events
}

/// The time text a file would carry for `(time_ns, style)`.
pub fn time_text(time_ns: i64, style: TimeStyle) -> String {
    let mut out = Vec::new();
    runnel_agent::timefmt::format_rfc3339(time_ns, style, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}
