//! Reading back what the agent kept and shipped, and comparing it with what the containers
//! wrote: the index through `runnel logs --data-dir` (the user's own tool), the server through
//! a scroll over its index, the dead letters from the sink's file.

use crate::containers::{Spec, Written};
use crate::lines;
use std::path::Path;
use std::process::Command;

/// Examples kept of each kind of problem.
const EXAMPLES: usize = 3;

/// One container's lines as the index returned them.
#[derive(Debug, Default, Clone)]
pub struct IndexLines {
    /// Times each sequence number was stored (index = seq).
    pub seen: Vec<u32>,
    /// Lines stored twice or more (extra copies).
    pub duplicates: u64,
    /// Lines that came before a line written earlier.
    pub out_of_order: u64,
    /// Lines stored as only the end of the line written (its first fragments lost), by seq.
    pub headless: Vec<u64>,
    /// Lines that are not a line this container wrote, byte for byte, nor the end of one.
    pub garbled: u64,
    /// A few of the problems, for the report.
    pub examples: Vec<String>,
}

impl IndexLines {
    /// Lines stored at least once.
    pub fn stored(&self) -> u64 {
        self.seen.iter().filter(|&&n| n > 0).count() as u64
    }
}

fn note(examples: &mut Vec<String>, what: String) {
    if examples.len() < EXAMPLES {
        examples.push(what);
    }
}

fn shorten(s: &str) -> String {
    if s.len() <= 120 {
        return s.to_string();
    }
    let mut end = 120;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// `(name, seq)` of a message.
fn parse(line: &str) -> Option<(&str, u64)> {
    let mut it = line.splitn(3, ' ');
    let name = it.next()?;
    let seq = it.next()?.parse().ok()?;
    Some((name, seq))
}

/// Read `spec`'s lines from the index at `index_dir` with `runnel logs`.
pub fn index_lines(
    runnel: &Path,
    index_dir: &Path,
    seed: u64,
    spec: &Spec,
    written: u64,
) -> Result<IndexLines, String> {
    let out = Command::new(runnel)
        .arg("logs")
        .arg("--data-dir")
        .arg(index_dir)
        .args(["-n", &spec.namespace, &spec.pod, "-c", &spec.container])
        .output()
        .map_err(|e| format!("running runnel logs: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "runnel logs for {} failed ({}): {}",
            spec.pod,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = IndexLines {
        seen: vec![0; written as usize],
        ..IndexLines::default()
    };
    let mut last: Option<u64> = None;
    for line in text.lines() {
        let parsed = parse(line).filter(|(n, s)| *n == spec.name && *s < written);
        let Some((_, seq)) = parsed else {
            r.garbled += 1;
            note(
                &mut r.examples,
                format!("not a line of {}: {:?}", spec.name, shorten(line)),
            );
            continue;
        };
        if line != lines::message(seed, &spec.name, seq) {
            r.garbled += 1;
            note(
                &mut r.examples,
                format!(
                    "line {seq} differs from what was written: {:?}",
                    shorten(line)
                ),
            );
            continue;
        }
        let slot = &mut r.seen[seq as usize];
        if *slot > 0 {
            r.duplicates += 1;
            note(
                &mut r.examples,
                format!("line {seq} stored again (after line {last:?})"),
            );
        } else if last.is_some_and(|l| seq < l) {
            r.out_of_order += 1;
            note(
                &mut r.examples,
                format!("line {seq} came after line {last:?}"),
            );
        }
        *slot += 1;
        last = Some(seq);
    }
    Ok(r)
}

/// Why lines are missing from the index.
#[derive(Debug, Default, Clone, Copy)]
pub struct Missing {
    /// In a rotated file the "runtime" deleted (before the agent could read it, evidently).
    pub in_deleted_files: u64,
    /// Deleted files that held missing lines.
    pub deleted_files_hit: u64,
    /// Before the first stored line, not in a deleted file: what retention would remove.
    pub oldest: u64,
    /// Anything else: a gap no deletion explains.
    pub unexplained: u64,
}

/// Classify the lines of a container that the index does not hold.
pub fn missing(lines: &IndexLines, w: &Written) -> Missing {
    let mut m = Missing::default();
    let first_stored = lines
        .seen
        .iter()
        .position(|&n| n > 0)
        .unwrap_or(lines.seen.len());
    let mut files_hit = std::collections::BTreeSet::new();
    for (seq, _) in lines.seen.iter().enumerate().filter(|(_, &n)| n == 0) {
        let seq = seq as u64;
        if lines.headless.contains(&seq) {
            continue;
        }
        if let Some(i) = w.deleted.iter().position(|&(a, b)| (a..=b).contains(&seq)) {
            m.in_deleted_files += 1;
            files_hit.insert(i);
        } else if (seq as usize) < first_stored {
            m.oldest += 1;
        } else {
            m.unexplained += 1;
        }
    }
    m.deleted_files_hit = files_hit.len() as u64;
    m
}

/// The server's documents that are the end of a line whose head was lost in the index (the
/// same record, shipped): matched like [`IndexLines::headless`].
pub fn is_tail_of(seed: u64, name: &str, seq: u64, doc: &str) -> bool {
    let m = lines::message(seed, name, seq);
    m.len() > doc.len() && m.ends_with(doc)
}

/// What the server holds of one container.
#[derive(Debug, Default, Clone)]
pub struct Shipped {
    /// Documents per sequence number.
    pub docs: Vec<u32>,
}

/// The server's documents grouped by container; documents of no container are counted in the
/// second value, with examples. A document that is the stored end of a line the index holds
/// headless (`headless`, per container) counts for that line: the same record, shipped.
pub fn group_shipped(
    seed: u64,
    specs: &[Spec],
    written: &[u64],
    headless: &[Vec<u64>],
    messages: &[String],
) -> (Vec<Shipped>, u64, Vec<String>) {
    let mut out: Vec<Shipped> = written
        .iter()
        .map(|&n| Shipped {
            docs: vec![0; n as usize],
        })
        .collect();
    let mut foreign = 0;
    let mut examples = Vec::new();
    for m in messages {
        let hit = parse(m).and_then(|(name, seq)| {
            let i = specs.iter().position(|s| s.name == name)?;
            (seq < written[i] && *m == lines::message(seed, name, seq)).then_some((i, seq))
        });
        let hit = hit.or_else(|| {
            specs.iter().enumerate().find_map(|(i, spec)| {
                headless[i]
                    .iter()
                    .find(|&&seq| is_tail_of(seed, &spec.name, seq, m))
                    .map(|&seq| (i, seq))
            })
        });
        match hit {
            Some((i, seq)) => out[i].docs[seq as usize] += 1,
            None => {
                foreign += 1;
                note(
                    &mut examples,
                    format!("document not written by any container: {:?}", shorten(m)),
                );
            }
        }
    }
    (out, foreign, examples)
}

/// Messages in the dead-letter file and its rotated predecessor.
pub fn dead_letters(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let rotated = std::path::PathBuf::from(format!("{}.1", path.display()));
    for p in [rotated.as_path(), path] {
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        // An empty line is the separator written after an append that was cut short and
        // could not be taken back: not a dead letter, and not a torn one.
        for line in text.lines().filter(|l| !l.is_empty()) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                out.push(format!("<unparsable dead letter: {}>", shorten(line)));
                continue;
            };
            let doc = &v["document"];
            let msg = match doc {
                serde_json::Value::String(s) => serde_json::from_str::<serde_json::Value>(s)
                    .ok()
                    .and_then(|d| d["message"].as_str().map(str::to_string)),
                d => d["message"].as_str().map(str::to_string),
            };
            out.push(
                msg.unwrap_or_else(|| {
                    format!("<dead letter without a message: {}>", shorten(line))
                }),
            );
        }
    }
    out
}
