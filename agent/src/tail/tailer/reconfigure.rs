//! A config reload's part for the file inputs, applied on the tailer thread between polls:
//! new roots and enablement, new include/exclude filters, new line and read limits, the
//! node-wide limit of held bytes (`max_pending_bytes`), and the Docker API client (started,
//! stopped or pointed at another socket by the tailer's loop). Nothing
//! that holds data is rebuilt: the queue, its batches and the sources that stay selected keep
//! their files, positions and partial lines.

use super::{Input, Settings, Tailer};
use std::sync::atomic::Ordering;

impl Tailer {
    /// Apply `new` (built and checked by `Settings::from_config` before any part of the reload
    /// was applied). The queue's sizes (`queue_batches`, `batch_bytes`) and the fingerprint
    /// length are kept: a reload that changes them is refused before it gets here.
    /// Returns true when `inputs.docker.api` (or the Docker input's enablement, which gates
    /// it) changed: the caller then stops the API client and starts the new one.
    pub(super) fn reconfigure(&mut self, new: Settings) -> bool {
        // What was read so far goes to the writer before any source stops.
        self.out.flush();
        let old_roots = std::mem::replace(&mut self.settings.roots, new.roots);
        self.settings.filter = new.filter;
        self.settings.rescan = new.rescan;
        self.settings.max_pending = new.max_pending;
        let api_changed = self.settings.docker_api != new.docker_api;
        self.settings.docker_api = new.docker_api;
        let t = &mut self.settings.tail;
        t.max_line = new.tail.max_line;
        t.max_open_rotated = new.tail.max_open_rotated;
        if t.block != new.tail.block {
            t.block = new.tail.block;
            self.scratch.buf = vec![0; t.block];
        }
        for (_, root) in &old_roots {
            let kept = self.settings.roots.iter().any(|(_, r)| r == root);
            if !kept {
                if let Some(w) = self.watcher.as_mut() {
                    self.watches.forget_root(w, root);
                }
            }
        }
        let roots = &self.settings.roots;
        let filter = &self.settings.filter;
        // With the Docker API on, the engine says what runs: a container it named stays read
        // wherever its LogPath is (outside the Docker root it is known to the API alone, which
        // names it again only at its next start). Its `die`/`destroy` events still retire it.
        let api_on = self.settings.docker_api.is_some();
        let dropped: Vec<String> = self
            .sources
            .iter()
            .filter(|(_, s)| {
                let under_root = roots
                    .iter()
                    .any(|(input, r)| *input == s.input && s.live.starts_with(r));
                let from_api = api_on && s.input == Input::Docker;
                !(under_root || from_api) || !filter.allows(&s.identity)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in dropped {
            if let Some(s) = self.sources.remove(&key) {
                self.unwatch_api_dir(&s.live);
                self.pending_total = self.pending_total.saturating_sub(s.held_accounted);
                self.canonical.remove(&s.canonical);
                self.stats.sources.fetch_sub(1, Ordering::Relaxed);
                // Not retired: its records stay queryable, and if it is selected again it
                // resumes from its durable position in the index.
                tracing::info!(source = %key, "no longer selected by the config; stopped reading");
            }
        }
        // Earlier decisions (filtered out, read through another path) are made again under
        // the new config: a newly included container is found by this scan and read from its
        // durable position (the start of its files when it was never read).
        self.ignored.clear();
        self.scan_all();
        // A lower `max_pending_bytes` holds from now on: the oldest held lines go out.
        self.enforce_pending();
        tracing::info!(
            roots = self.settings.roots.len(),
            sources = self.sources.len(),
            "inputs reconfigured"
        );
        api_changed
    }
}
