//! The partial-line merger (`agent/src/tail/lines.rs`, `LineAssembler`): bytes of a file, fed
//! in arbitrary pieces, become records.
//!
//! The input chooses the format, the line limit, how the bytes are cut into reads and
//! (in "long" mode) a run of bytes repeated past the raw-line limit. Asserts:
//! - every message fits the line limit; resume offsets never go backwards and never point past
//!   the bytes fed; memory held stays within a bound set by the limit, not by the input;
//! - reads cut anywhere give the same events as one read of the whole file;
//! - against a model written from the formats' rules: per stream, a record is a run of
//!   fragments ended by a final line (or by the end of the file), its message the concatenation
//!   capped at the limit, emitted once the fragments reach the limit (merged iff more than one
//!   fragment went in by then; truncated iff the line was longer or more fragments followed),
//!   timed by its first fragment; every line that does not parse is reported at its
//!   offset; an incomplete last line is held, not emitted.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use runnel_agent::tail::lines::LineAssembler;
use runnel_agent::tail::parse::{parse_cri, parse_json, Format, FormatRule, TimeCache};
use runnel_fuzz::{run_assembler, Owned};
use runnel_index::{RecordFlags, Stream};

/// `LineAssembler::raw_limit` beyond the line limit (kept in sync with lines.rs by the model
/// check: only inputs shorter than this are compared with the model).
const RAW_SLACK: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let format = if u.arbitrary::<bool>()? {
        Format::JsonFile
    } else {
        Format::Cri
    };
    let long = u.ratio(1, 8)?;
    let max_line = if long {
        u.int_in_range(1..=4096usize)?
    } else {
        u.int_in_range(1..=300usize)?
    };
    let npieces = u.int_in_range(0..=12usize)?;
    let mut pieces = Vec::with_capacity(npieces);
    for _ in 0..npieces {
        pieces.push(usize::from(u.arbitrary::<u8>()?));
    }
    let (repeat_len, repeat_count) = if long {
        (u.int_in_range(1..=64usize)?, u.int_in_range(1..=2560usize)?)
    } else {
        (0, 0)
    };
    let mut content = u.take_rest().to_vec();
    if long {
        let pat = content[content.len().saturating_sub(repeat_len)..].to_vec();
        if pat.is_empty() {
            return Ok(());
        }
        for _ in 0..repeat_count {
            content.extend_from_slice(&pat);
        }
        content.push(b'\n');
        pieces = vec![4096; content.len() / 4096 + 1];
    }

    let mut asm = LineAssembler::new(FormatRule::Fixed(format), max_line);
    let events = run_checked(&mut asm, &content, &pieces, max_line);
    if long || content.len() >= RAW_SLACK {
        return Ok(());
    }
    let whole = run_assembler(
        &mut LineAssembler::new(FormatRule::Fixed(format), max_line),
        &content,
        &[],
    );
    assert_eq!(events, whole, "cutting the reads changed the events");
    let incomplete = !content.is_empty() && !content.ends_with(b"\n");
    assert_eq!(asm.busy(), incomplete, "busy() after finish");
    check_model(format, max_line, &content, &events);
    Ok(())
}

/// Feed piece by piece, checking limits, offsets and held memory after each piece.
fn run_checked(
    asm: &mut LineAssembler,
    content: &[u8],
    pieces: &[usize],
    max: usize,
) -> Vec<Owned> {
    let bound = 2 * (max + RAW_SLACK) + 4 * max + 4096;
    let mut events: Vec<Owned> = Vec::new();
    let mut scratch = Vec::new();
    let mut at = 0usize;
    let mut last_offset = 0u64;
    let mut check = |e: &Owned, fed: usize| match e {
        Owned::Record {
            message, offset, ..
        } => {
            assert!(
                message.len() <= max,
                "message of {} bytes > limit {max}",
                message.len()
            );
            assert!(
                *offset >= last_offset,
                "offset went back: {offset} after {last_offset}"
            );
            assert!(
                *offset <= fed as u64,
                "offset {offset} past the {fed} bytes fed"
            );
            last_offset = *offset;
        }
        Owned::Bad { offset, .. } => assert!(*offset < fed as u64),
        Owned::Skipped(n) => assert!(*n as usize <= fed, "skipped {n} of {fed} bytes fed"),
    };
    let mut cuts: Vec<usize> = pieces.to_vec();
    cuts.push(content.len());
    for n in cuts {
        let end = (at + n).min(content.len());
        let before = events.len();
        asm.feed(&content[at..end], at as u64, &mut scratch, &mut |e| {
            events.push(Owned::of(e))
        });
        for e in &events[before..] {
            check(e, end);
        }
        assert!(
            asm.held_bytes() <= bound,
            "holds {} bytes (bound {bound})",
            asm.held_bytes()
        );
        at = end;
        if at == content.len() {
            break;
        }
    }
    let before = events.len();
    asm.finish(&mut |e| events.push(Owned::of(e)));
    for e in &events[before..] {
        check(e, content.len());
    }
    events
}

struct Frag {
    stream: Stream,
    partial: bool,
    time_ns: i64,
    style: runnel_index::TimeStyle,
    content: Vec<u8>,
}

fn check_model(format: Format, max: usize, content: &[u8], events: &[Owned]) {
    // Complete lines only; each parsed on its own.
    let mut frags = Vec::new();
    let mut bad = Vec::new();
    let mut start = 0usize;
    while let Some(i) = content[start..].iter().position(|&b| b == b'\n') {
        let line = &content[start..start + i];
        let mut buf = Vec::new();
        let parsed = match format {
            Format::JsonFile => {
                parse_json(line, &mut buf, &mut TimeCache::default()).map(|m| (m, buf))
            }
            Format::Cri => parse_cri(line, &mut TimeCache::default()).map(|(m, c)| (m, c.to_vec())),
        };
        match parsed {
            Ok((m, c)) => frags.push(Frag {
                stream: m.stream,
                partial: m.partial,
                time_ns: m.time_ns,
                style: m.style,
                content: c,
            }),
            Err(_) => bad.push(start as u64),
        }
        start += i + 1;
    }
    let got_bad: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Owned::Bad { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect();
    assert_eq!(got_bad, bad, "unparsable lines reported");
    for stream in [Stream::Stdout, Stream::Stderr] {
        let mut want = Vec::new();
        let mut run: Vec<&Frag> = Vec::new();
        for f in frags.iter().filter(|f| f.stream == stream) {
            run.push(f);
            if !f.partial {
                want.push(record_of(&run, max));
                run.clear();
            }
        }
        if !run.is_empty() {
            want.push(record_of(&run, max));
        }
        let got: Vec<(i64, runnel_index::TimeStyle, u8, Vec<u8>)> = events
            .iter()
            .filter_map(|e| match e {
                Owned::Record {
                    time_ns,
                    style,
                    stream: s,
                    flags,
                    message,
                    ..
                } if *s == stream => Some((*time_ns, *style, *flags, message.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(got, want, "{stream:?} records differ from the model");
    }
}

/// A line is emitted as soon as its fragments reach the limit: merged iff more than one
/// fragment went into it by then; truncated iff it was longer, or the fragment that reached
/// the limit was not the line's last (partial: the line goes on, or would have).
fn record_of(run: &[&Frag], max: usize) -> (i64, runnel_index::TimeStyle, u8, Vec<u8>) {
    let all: Vec<u8> = run.iter().flat_map(|f| f.content.iter().copied()).collect();
    let mut held = 0usize;
    let hit = run.iter().position(|f| {
        held += f.content.len();
        held >= max
    });
    let used = hit.map_or(run.len(), |i| i + 1);
    let mut flags = 0;
    if used > 1 {
        flags |= RecordFlags::PARTIAL_MERGED;
    }
    if all.len() > max || hit.is_some_and(|i| run[i].partial) {
        flags |= RecordFlags::TRUNCATED;
    }
    (
        run[0].time_ns,
        run[0].style,
        flags,
        all[..all.len().min(max)].to_vec(),
    )
}
