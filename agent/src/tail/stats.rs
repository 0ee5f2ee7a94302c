//! Counters of the inputs and their Prometheus rendering (`runnel_input_*`, `runnel_ingest_*`).

use crate::ingest::QueueStats;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// Which input a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// Docker json-file under the Docker root.
    Docker,
    /// CRI files under the CRI root.
    Cri,
}

impl Input {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Input::Docker => "docker",
            Input::Cri => "cri",
        }
    }
    fn i(self) -> usize {
        match self {
            Input::Docker => 0,
            Input::Cri => 1,
        }
    }
}

/// Reads one counter of [`PerInput`] (for rendering).
type Getter = fn(&PerInput) -> &AtomicU64;

/// Per-input counters.
#[derive(Default)]
pub struct PerInput {
    /// Records handed to the writer.
    pub lines: AtomicU64,
    /// Bytes read from files (decompressed for gzip).
    pub bytes: AtomicU64,
    /// Lines that could not be parsed.
    pub parse_errors: AtomicU64,
    /// Records merged from partial fragments.
    pub partial_merges: AtomicU64,
    /// Records truncated to the line limit.
    pub truncations: AtomicU64,
    /// Bytes of truncated lines not stored: the part past `max_line_bytes`, up to the line's
    /// end (message bytes; raw bytes for a physical line cut before its end).
    pub skipped_bytes: AtomicU64,
    /// Lines emitted (truncated) before they ended because the node held
    /// `max_pending_bytes` for lines not yet ended.
    pub pending_evictions: AtomicU64,
    /// Rotated files drained and released.
    pub rotations: AtomicU64,
    /// Files found truncated in place (copytruncate).
    pub file_truncations: AtomicU64,
    /// Rotated files not opened when found (read later, oldest first) because the source
    /// already had `max_open_rotated_per_source` rotated files open; counted once per file.
    pub forced_closes: AtomicU64,
    /// Files deleted before they were read to their end, their unread lines lost: rotated
    /// files held back by that cap (raise the cap or slow the rotation), the copy of a
    /// copytruncated file rotated away before the tailer could look (it was stalled, or
    /// rotations came faster than polls), and the file last read before a restart rotated
    /// away while the agent was down.
    pub rotated_lost: AtomicU64,
    /// Sources skipped by include/exclude.
    pub skipped_by_filter: AtomicU64,
    /// Docker containers whose config.v2.json was missing or bad.
    pub identity_fallbacks: AtomicU64,
    /// Files seen twice (symlinks) and read once.
    pub duplicates: AtomicU64,
    /// Reads of a log file that failed: a plain file is read again at the next poll; a gzipped
    /// rotation that cannot be decompressed further is released with what was read from it.
    pub read_errors: AtomicU64,
    /// Gzipped rotations given up on because they are corrupt or cut short: the lines after
    /// the damage are lost.
    pub corrupt_gz: AtomicU64,
}

/// All tailer counters; shared between the tailer and writer threads and the HTTP layer.
#[derive(Default)]
pub struct Stats {
    inputs: [PerInput; 2],
    /// Files open now.
    pub open_files: AtomicI64,
    /// The ingest queue's counters (shared with the writer and the other inputs).
    pub queue: Arc<QueueStats>,
    /// Sources being read.
    pub sources: AtomicI64,
    /// Times file events were dropped (queue or kernel overflow) and a full rescan replaced them.
    pub events_lost: AtomicU64,
    /// Stamped when the tailer read something or finished a pass (for `/healthz`).
    pub input_beat: crate::progress::Beat,
    /// Stamped when a file under a log root changed: bytes may be waiting to be read.
    pub input_pending: crate::progress::Beat,
    /// The Docker Engine API client's counters (`inputs.docker.api`).
    pub docker_api: super::docker_api::ApiStats,
    /// Memory held for lines not yet ended (partial fragments, unterminated lines), all files.
    pub pending_bytes: AtomicI64,
    /// Logs found and not read (filtered out, or a second path to a file read already) that
    /// are still on disk; forgotten when they go.
    pub ignored_sources: AtomicI64,
    /// Directories under the log roots that the last full scan could not list.
    pub unlisted_dirs: AtomicI64,
}

impl Stats {
    /// Counters of a tailer whose records go into the queue counted by `queue`.
    pub fn new(queue: Arc<QueueStats>) -> Stats {
        Stats {
            queue,
            ..Stats::default()
        }
    }

    /// The counters of one input.
    pub fn input(&self, i: Input) -> &PerInput {
        &self.inputs[i.i()]
    }

    /// Append the Prometheus text.
    pub fn render(&self, out: &mut String) {
        self.queue.render(out);
        let per: [(&str, &str, Getter); 16] = [
            (
                "runnel_input_lines_total",
                "Records read from log files and queued for the index.",
                |p| &p.lines,
            ),
            (
                "runnel_input_bytes_total",
                "Bytes read from log files (decompressed for gzip).",
                |p| &p.bytes,
            ),
            (
                "runnel_input_parse_errors_total",
                "Lines that could not be parsed and were skipped.",
                |p| &p.parse_errors,
            ),
            (
                "runnel_input_partial_merges_total",
                "Records merged from partial fragments.",
                |p| &p.partial_merges,
            ),
            (
                "runnel_input_truncated_lines_total",
                "Records cut to inputs.max_line_bytes.",
                |p| &p.truncations,
            ),
            (
                "runnel_input_skipped_bytes_total",
                "Bytes of truncated lines not stored (past inputs.max_line_bytes, to the line's end).",
                |p| &p.skipped_bytes,
            ),
            (
                "runnel_input_pending_evictions_total",
                "Lines emitted truncated before their end because inputs.max_pending_bytes was reached.",
                |p| &p.pending_evictions,
            ),
            (
                "runnel_input_rotations_total",
                "Rotated files drained to their end and released.",
                |p| &p.rotations,
            ),
            (
                "runnel_input_file_truncations_total",
                "Files found truncated in place (copytruncate).",
                |p| &p.file_truncations,
            ),
            (
                "runnel_input_forced_closes_total",
                "Rotated files left closed (read later) by max_open_rotated_per_source.",
                |p| &p.forced_closes,
            ),
            (
                "runnel_input_rotated_lost_total",
                "Log files deleted before they were read to their end (held back by the cap, a copytruncate copy rotated away unread, or rotated away while the agent was down).",
                |p| &p.rotated_lost,
            ),
            (
                "runnel_input_skipped_by_filter_total",
                "Containers skipped by include/exclude.",
                |p| &p.skipped_by_filter,
            ),
            (
                "runnel_input_identity_fallbacks_total",
                "Docker containers whose config.v2.json was missing or bad.",
                |p| &p.identity_fallbacks,
            ),
            (
                "runnel_input_duplicate_paths_total",
                "Log files reached by a second path (symlink) and read once.",
                |p| &p.duplicates,
            ),
            (
                "runnel_input_read_errors_total",
                "Failed reads of log files (plain files are read again at the next poll).",
                |p| &p.read_errors,
            ),
            (
                "runnel_input_corrupt_gzip_total",
                "Gzipped rotations released at a decompression error; their lines past it are lost.",
                |p| &p.corrupt_gz,
            ),
        ];
        for (name, help, get) in per {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for i in [Input::Docker, Input::Cri] {
                let _ = writeln!(
                    out,
                    "{name}{{input=\"{}\"}} {}",
                    i.as_str(),
                    get(self.input(i)).load(Ordering::Relaxed)
                );
            }
        }
        let gauges: [(&str, &str, i64); 5] = [
            (
                "runnel_input_pending_bytes",
                "Memory held for lines not yet ended (bounded by inputs.max_pending_bytes).",
                self.pending_bytes.load(Ordering::Relaxed),
            ),
            (
                "runnel_input_ignored_sources",
                "Logs on disk that are not read (filtered out, or a second path to a file read).",
                self.ignored_sources.load(Ordering::Relaxed),
            ),
            (
                "runnel_input_unlisted_directories",
                "Directories under the log roots the last scan could not list (their logs are not read).",
                self.unlisted_dirs.load(Ordering::Relaxed),
            ),
            (
                "runnel_input_open_files",
                "Log files open now.",
                self.open_files.load(Ordering::Relaxed),
            ),
            (
                "runnel_input_sources",
                "Container logs being followed.",
                self.sources.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let name = "runnel_input_events_lost_total";
        let _ = writeln!(
            out,
            "# HELP {name} File event overflows replaced by a full rescan.\n# TYPE {name} counter\n{name} {}",
            self.events_lost.load(Ordering::Relaxed)
        );
        self.docker_api.render(out);
    }
}
