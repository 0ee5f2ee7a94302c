//! Judging a run: what the index and the server hold against what the containers wrote, the
//! dead letters against the poison lines, the agent's counters against the losses found, and
//! the agent's own conduct (memory, deaths, recovery from a full disk).

use crate::containers::{Spec, Written};
use crate::node::Node;
use crate::report::{ContainerRow, Summary};
use crate::server::Osmem;
use crate::settings::Settings;
use crate::{lines, verify};

/// A run at least this long must have seen a SIGKILL and a full disk.
const EXERCISED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// What a finished run left to judge.
pub struct Evidence<'a> {
    /// The run's settings.
    pub settings: &'a Settings,
    /// The containers.
    pub specs: &'a [Spec],
    /// What each wrote.
    pub written: &'a [Written],
    /// The node (index, dead letters).
    pub node: &'a Node,
    /// The server.
    pub osmem: &'a Osmem,
}

/// Judge `ev` into `summary` (rows and figures) and `failures`; an error is a set-up problem
/// (the server cannot be read).
pub fn judge(
    ev: &Evidence,
    summary: &mut Summary,
    failures: &mut Vec<String>,
) -> Result<(), String> {
    let (settings, specs, written, node, osmem) =
        (ev.settings, ev.specs, ev.written, ev.node, ev.osmem);
    let seed = settings.seed;
    let line_counts: Vec<u64> = written.iter().map(|w| w.lines).collect();
    let mut rows = Vec::new();
    let mut index = Vec::new();
    let mut missing_total = verify::Missing::default();
    for (i, spec) in specs.iter().enumerate() {
        let got = match verify::index_lines(
            &settings.runnel,
            &node.index_dir(),
            seed,
            spec,
            line_counts[i],
        ) {
            Ok(g) => g,
            Err(e) => {
                failures.push(e);
                verify::IndexLines {
                    seen: vec![0; line_counts[i] as usize],
                    ..verify::IndexLines::default()
                }
            }
        };
        let m = verify::missing(&got, &written[i]);
        missing_total.in_deleted_files += m.in_deleted_files;
        missing_total.deleted_files_hit += m.deleted_files_hit;
        missing_total.oldest += m.oldest;
        missing_total.unexplained += m.unexplained;
        summary.index_problems.0 += got.duplicates;
        summary.index_problems.1 += got.out_of_order;
        summary.index_problems.2 += got.headless.len() as u64;
        summary.index_problems.3 += got.garbled;
        for e in &got.examples {
            failures.push(format!("index, {}: {e}", spec.name));
        }
        if m.unexplained > 0 {
            let gaps: Vec<u64> = got
                .seen
                .iter()
                .enumerate()
                .filter(|(_, &n)| n == 0)
                .map(|(s, _)| s as u64)
                .take(5)
                .collect();
            failures.push(format!(
                "index, {}: {} lines missing that no deleted file or retention explains (first: {gaps:?})",
                spec.name, m.unexplained
            ));
        }
        rows.push(ContainerRow {
            name: spec.name.clone(),
            scheme: spec.scheme.label(),
            written: line_counts[i],
            stored: got.stored(),
            rotations: written[i].rotations,
            deleted_files: written[i].deleted.len() as u64,
            missing: line_counts[i] - got.stored(),
            ..ContainerRow::default()
        });
        index.push(got);
    }
    summary.missing = (
        missing_total.in_deleted_files,
        missing_total.oldest,
        missing_total.unexplained,
    );
    let rotated_lost = summary.counter("runnel_input_rotated_lost_total");
    if missing_total.deleted_files_hit > rotated_lost {
        failures.push(format!(
            "{} lines were lost with {} rotated files deleted before the agent read them, but runnel_input_rotated_lost_total says {rotated_lost}: drops not counted",
            missing_total.in_deleted_files, missing_total.deleted_files_hit
        ));
    }
    let retained = summary.counter("runnel_index_retention_records_total");
    if missing_total.oldest > retained {
        failures.push(format!(
            "{} of the oldest lines are missing from the index but retention counted {retained} records: drops not counted",
            missing_total.oldest
        ));
    }
    let (dups, ooo, headless, garbled) = summary.index_problems;
    if dups + ooo + headless + garbled > 0 {
        failures.push(format!(
            "index: {dups} duplicated, {ooo} out-of-order, {headless} stored without their head, {garbled} garbled lines"
        ));
    }
    if summary.counter("runnel_index_corrupt_blocks_total") > 0 {
        failures.push(format!(
            "the index reported {} corrupt blocks",
            summary.counter("runnel_index_corrupt_blocks_total")
        ));
    }
    if summary.counter("runnel_sink_es_ship_panics_total") > 0 {
        failures.push("the sink's ship task panicked".into());
    }

    // Judge the server and the dead letters.
    let messages = osmem.messages()?;
    summary.server_peak_rss = osmem.peak_rss();
    let headless: Vec<Vec<u64>> = index.iter().map(|g| g.headless.clone()).collect();
    let (shipped_by, foreign, examples) =
        verify::group_shipped(seed, specs, &line_counts, &headless, &messages);
    failures.extend(examples.into_iter().map(|e| format!("server: {e}")));
    let dead_lines = verify::dead_letters(&node.dead_letter());
    let torn = dead_lines
        .iter()
        .filter(|m| m.starts_with("<unparsable"))
        .count() as u64;
    let dead_entries = dead_lines.len() as u64 - torn;
    let dead: std::collections::HashSet<String> = dead_lines.into_iter().collect();
    let (mut sdup, mut smiss, mut spoison) = (0u64, 0u64, 0u64);
    let mut miss_examples = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        for (seq, (&docs, &stored)) in shipped_by[i].docs.iter().zip(&index[i].seen).enumerate() {
            let seq = seq as u64;
            if lines::is_poison(seq) {
                if docs > 0 {
                    spoison += 1;
                }
                if stored > 0 {
                    summary.poison_stored += 1;
                    if dead.contains(&lines::message(seed, &spec.name, seq)) {
                        summary.poison_dead_lettered += 1;
                    }
                }
                continue;
            }
            if docs > 1 {
                sdup += u64::from(docs - 1);
            }
            if stored > 0 && docs == 0 {
                smiss += 1;
                if miss_examples.len() < 3 {
                    miss_examples.push(format!("{} {seq}", spec.name));
                }
            }
        }
        rows[i].shipped = shipped_by[i].docs.iter().filter(|&&n| n > 0).count() as u64;
    }
    summary.server_problems = (sdup, smiss, foreign, spoison);
    let sink_lost = summary.counter("runnel_sink_es_records_lost_total");
    if sdup > 0 || foreign > 0 || spoison > 0 {
        failures.push(format!(
            "server: {sdup} duplicate documents, {foreign} documents nobody wrote, {spoison} poison documents accepted"
        ));
    }
    // A poison line is done only once its dead letter is in the file: the sink holds the
    // batch and retries while the file cannot be written (a full disk). So a stored poison
    // line missing from the file is a miss like an unshipped line, excused only by records
    // retention deleted before the sink read them.
    let dead_missing = summary.poison_stored - summary.poison_dead_lettered;
    summary.dead_letters = (dead_entries, torn);
    if smiss + dead_missing > sink_lost {
        failures.push(format!(
            "server: {smiss} stored lines never shipped (e.g. {miss_examples:?}) and {dead_missing} of {} stored poison lines not in the dead-letter file, but the sink counted only {sink_lost} lost",
            summary.poison_stored
        ));
    }
    if torn > 0 {
        failures.push(format!(
            "the dead-letter file has {torn} lines that are not JSON: an append cut short by a full disk left half a line and the next dead letter was glued to it"
        ));
    }

    // The agent itself.
    let l = &summary.lives;
    if l.peak_rss > settings.rss_bound {
        failures.push(format!(
            "peak RSS {} MiB is above the bound of {} MiB (life {})",
            l.peak_rss >> 20,
            settings.rss_bound >> 20,
            l.peak_life
        ));
    }
    for e in &l.unexpected_exits {
        failures.push(e.clone());
    }
    for e in &l.failed_starts {
        failures.push(format!("a start failed: {e}"));
    }
    for (n, e) in summary.episodes.iter().enumerate() {
        if e.recovered_secs.is_none() {
            failures.push(format!(
                "disk-full episode {} ({:.1} s full): the index did not catch up within 90 s of the space coming back (or lines written before were lost)",
                n + 1,
                e.full_secs
            ));
        }
    }

    // What the run did not exercise. The killer's first pause is at most 25 s and the disk
    // filler's at most 20 s (`run.rs`): a run of a minute or more that saw neither did not
    // test what it claims, so that is a failure; a shorter one only says so.
    let exercised = settings.duration >= EXERCISED_AFTER;
    for (missing, what) in [
        (l.kills == 0, "no SIGKILL happened"),
        (summary.episodes.is_empty(), "the disk never filled"),
    ] {
        match (missing, exercised) {
            (false, _) => {}
            (true, true) => failures.push(format!(
                "{what} in a run of {} s (one is due within 25 s)",
                settings.duration.as_secs()
            )),
            (true, false) => summary.notes.push(format!("{what} (run longer)")),
        }
    }
    if summary.counter("runnel_input_events_lost_total") == 0 {
        summary
            .notes
            .push("inotify never overflowed (the agent drained every burst)".into());
    }
    if summary.poison_stored == 0 {
        summary
            .notes
            .push("no poison line was written (run longer)".into());
    }
    summary.rows = rows;
    Ok(())
}
