//! The soak's findings: the figures of a run and the summary table printed at its end.

use crate::agent::Lives;
use crate::server::FaultCounts;
use std::fmt::Write;

/// One container's row.
#[derive(Debug, Default, Clone)]
pub struct ContainerRow {
    /// Its name (`d00`, `c01`).
    pub name: String,
    /// Rotation scheme label.
    pub scheme: &'static str,
    /// Lines written.
    pub written: u64,
    /// Distinct lines in the index.
    pub stored: u64,
    /// Distinct lines in the server.
    pub shipped: u64,
    /// Rotations done.
    pub rotations: u64,
    /// Rotated files deleted by the "runtime".
    pub deleted_files: u64,
    /// Lines missing from the index.
    pub missing: u64,
}

/// One disk-full episode.
#[derive(Debug, Default, Clone)]
pub struct Episode {
    /// How long the disk was full, seconds.
    pub full_secs: f64,
    /// Bytes the ballast took.
    pub ballast_bytes: u64,
    /// Records the index gained while the disk was full.
    pub stored_while_full: u64,
    /// Seconds after the space came back until every line written by then was stored (None:
    /// not within the deadline).
    pub recovered_secs: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// The seed (replay with `CHAOS_SEED`).
    pub seed: u64,
    /// Seconds of chaos.
    pub chaos_secs: f64,
    /// Seconds of the whole run.
    pub total_secs: f64,
    /// Per container.
    pub rows: Vec<ContainerRow>,
    /// The agent's lives.
    pub lives: Lives,
    /// Faults drawn by kind.
    pub faults: FaultCounts,
    /// Bulk requests the proxy saw and single items it failed.
    pub proxy_requests: u64,
    /// Items the proxy answered 429/500 without forwarding.
    pub proxy_item_faults: u64,
    /// Disk-full episodes.
    pub episodes: Vec<Episode>,
    /// Bursts of files created under the log roots.
    pub bursts: u64,
    /// Files those bursts created.
    pub burst_files: u64,
    /// Agent counters summed over all lives, `(name, value)`.
    pub counters: Vec<(&'static str, u64)>,
    /// Poison lines stored in the index.
    pub poison_stored: u64,
    /// Poison lines found in the dead-letter file.
    pub poison_dead_lettered: u64,
    /// Readable entries and torn (not JSON) lines in the dead-letter file.
    pub dead_letters: (u64, u64),
    /// Duplicates, out-of-order, headless (first fragments lost) and garbled lines in the
    /// index.
    pub index_problems: (u64, u64, u64, u64),
    /// Lines missing from the index: in deleted files, oldest (retention), unexplained.
    pub missing: (u64, u64, u64),
    /// Documents twice or more, missing, not written by anyone, poison shipped.
    pub server_problems: (u64, u64, u64, u64),
    /// osmem-server's peak RSS, bytes (it keeps every document in memory).
    pub server_peak_rss: u64,
    /// Bound RSS is held to, bytes.
    pub rss_bound: u64,
    /// What the run found wrong (empty = pass).
    pub failures: Vec<String>,
    /// What the run did not manage to exercise (not failures, but the run proved less).
    pub notes: Vec<String>,
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

impl Summary {
    /// A counter by name (0 if absent).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let sum = |f: fn(&ContainerRow) -> u64| self.rows.iter().map(f).sum::<u64>();
        let _ = writeln!(
            t,
            "\n== chaos soak: seed {} (CHAOS_SEED={} to replay), {:.0} s of chaos, {:.0} s in all ==",
            self.seed, self.seed, self.chaos_secs, self.total_secs
        );
        let _ = writeln!(
            t,
            "{:<6} {:<14} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}",
            "cont.", "rotation", "written", "stored", "shipped", "rotated", "deleted", "missing"
        );
        for r in &self.rows {
            let _ = writeln!(
                t,
                "{:<6} {:<14} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}",
                r.name,
                r.scheme,
                r.written,
                r.stored,
                r.shipped,
                r.rotations,
                r.deleted_files,
                r.missing
            );
        }
        let _ = writeln!(
            t,
            "{:<6} {:<14} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}",
            "all",
            "",
            sum(|r| r.written),
            sum(|r| r.stored),
            sum(|r| r.shipped),
            sum(|r| r.rotations),
            sum(|r| r.deleted_files),
            sum(|r| r.missing)
        );
        let l = &self.lives;
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let longest = self
            .episodes
            .iter()
            .map(|e| e.full_secs)
            .fold(0.0, f64::max);
        let slowest = self
            .episodes
            .iter()
            .filter_map(|e| e.recovered_secs)
            .fold(0.0, f64::max);
        let unrecovered = self
            .episodes
            .iter()
            .filter(|e| e.recovered_secs.is_none())
            .count();
        let rows: Vec<(String, String)> = vec![
            (
                "lines written / stored / shipped".into(),
                format!(
                    "{} / {} / {}",
                    sum(|r| r.written),
                    sum(|r| r.stored),
                    sum(|r| r.shipped)
                ),
            ),
            (
                "agent SIGKILLs / starts / small-inotify-queue starts".into(),
                format!("{} / {} / {}", l.kills, l.starts, l.small_queue_starts),
            ),
            (
                "unexpected agent exits / failed starts".into(),
                format!("{} / {}", l.unexpected_exits.len(), l.failed_starts.len()),
            ),
            ("sink faults injected".into(), faults.join(", ")),
            (
                "proxy bulk requests / item faults".into(),
                format!("{} / {}", self.proxy_requests, self.proxy_item_faults),
            ),
            (
                "disk-full episodes (longest full, slowest recovery)".into(),
                format!(
                    "{} ({longest:.1} s, {slowest:.1} s; {unrecovered} not recovered)",
                    self.episodes.len()
                ),
            ),
            (
                "inotify bursts (files) / overflows counted".into(),
                format!(
                    "{} ({}) / {}",
                    self.bursts,
                    self.burst_files,
                    self.counter("runnel_input_events_lost_total")
                ),
            ),
            (
                "peak RSS (VmHWM; highest VmRSS sample) vs bound".into(),
                format!(
                    "{} ({}) vs {} (life {})",
                    mib(l.peak_rss),
                    mib(l.max_sampled_rss),
                    mib(self.rss_bound),
                    l.peak_life
                ),
            ),
            (
                "documents in the server / its peak RSS".into(),
                format!("{} / {}", sum(|r| r.shipped), mib(self.server_peak_rss)),
            ),
            (
                "poison lines stored / in the dead-letter file (its entries, torn lines)".into(),
                format!(
                    "{} / {} ({}, {})",
                    self.poison_stored,
                    self.poison_dead_lettered,
                    self.dead_letters.0,
                    self.dead_letters.1
                ),
            ),
            (
                "dead-letter writes failed and retried".into(),
                self.counter("runnel_sink_es_dead_letter_write_errors_total")
                    .to_string(),
            ),
            (
                "drops counted: rotated files lost, retention records, sink lost, dead letters"
                    .into(),
                format!(
                    "{}, {}, {}, {}",
                    self.counter("runnel_input_rotated_lost_total"),
                    self.counter("runnel_index_retention_records_total"),
                    self.counter("runnel_sink_es_records_lost_total"),
                    self.counter("runnel_sink_es_documents_dead_lettered_total")
                ),
            ),
            (
                "index missing: in deleted files / oldest / unexplained".into(),
                format!(
                    "{} / {} / {}",
                    self.missing.0, self.missing.1, self.missing.2
                ),
            ),
            (
                "index duplicates / out of order / headless / garbled".into(),
                format!(
                    "{} / {} / {} / {}",
                    self.index_problems.0,
                    self.index_problems.1,
                    self.index_problems.2,
                    self.index_problems.3
                ),
            ),
            (
                "server duplicates / missing / foreign / poison".into(),
                format!(
                    "{} / {} / {} / {}",
                    self.server_problems.0,
                    self.server_problems.1,
                    self.server_problems.2,
                    self.server_problems.3
                ),
            ),
        ];
        let _ = writeln!(t);
        for (k, v) in rows {
            let _ = writeln!(t, "{k:<62} {v}");
        }
        let _ = writeln!(t, "agent counters over all lives:");
        for (k, v) in &self.counters {
            let _ = writeln!(t, "  {k:<60} {v}");
        }
        for e in &self.episodes {
            let _ = writeln!(
                t,
                "  disk full {:.1} s (ballast {}), +{} records while full, recovered {}",
                e.full_secs,
                mib(e.ballast_bytes),
                e.stored_while_full,
                e.recovered_secs
                    .map(|s| format!("in {s:.1} s"))
                    .unwrap_or_else(|| "NOT within 90 s".into())
            );
        }
        for n in &self.notes {
            let _ = writeln!(t, "note: {n}");
        }
        if self.failures.is_empty() {
            let _ = writeln!(t, "RESULT: pass");
        } else {
            let _ = writeln!(t, "RESULT: {} failure(s)", self.failures.len());
            for f in &self.failures {
                let _ = writeln!(t, "FAIL: {f}");
            }
        }
        t
    }
}
