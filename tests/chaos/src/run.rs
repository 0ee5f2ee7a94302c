//! One soak run: set the node up, let every actor loose for the configured time, drain, stop the
//! agent cleanly, and judge what the index and the server hold against what was written.
//!
//! Actors (threads, each with its own random stream): one writer per container; the killer
//! (SIGKILL at random moments, sometimes a longer outage, sometimes a restart with a tiny
//! inotify queue); the disk filler (a ballast takes the tmpfs for a few seconds, then the
//! agent must catch up); the sink's bad weather; bursts of files under the log roots; the
//! watcher (counters, unexpected deaths, memory).

use crate::agent::Supervisor;
use crate::containers::{self, Counts, Written};
use crate::disk::{Ballast, Tmpfs};
use crate::inotify::QueueLimit;
use crate::node::Node;
use crate::report::{Episode, Summary};
use crate::rng::Rng;
use crate::server::Osmem;
use crate::settings::Settings;
use crate::stop::{wait_for, Stop};
use crate::{faults, judge, metrics};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters read at the end, summed over all lives.
const COUNTERS: &[&str] = &[
    "runnel_input_lines_total",
    "runnel_input_rotations_total",
    "runnel_input_file_truncations_total",
    "runnel_input_events_lost_total",
    "runnel_input_rotated_lost_total",
    "runnel_input_forced_closes_total",
    "runnel_input_parse_errors_total",
    "runnel_input_truncated_lines_total",
    "runnel_input_pending_evictions_total",
    "runnel_input_partial_merges_total",
    "runnel_ingest_write_errors_total",
    "runnel_ingest_refused_records_total",
    "runnel_ingest_duplicate_records_total",
    "runnel_index_corrupt_blocks_total",
    "runnel_index_recovered_truncated_bytes_total",
    "runnel_index_seal_errors_total",
    "runnel_index_retention_records_total",
    "runnel_sink_es_documents_acked_total",
    "runnel_sink_es_documents_retried_total",
    "runnel_sink_es_documents_dead_lettered_total",
    "runnel_sink_es_dead_letter_write_errors_total",
    "runnel_sink_es_requests_failed_total",
    "runnel_sink_es_records_lost_total",
    "runnel_sink_es_ship_panics_total",
];

/// How long the final drain may take without progress before the run is judged as it stands.
const NO_PROGRESS: Duration = Duration::from_secs(45);

/// What the actors share.
struct Ctx<'a> {
    settings: &'a Settings,
    node: &'a Node,
    sup: &'a Supervisor,
    stop: &'a Stop,
    counts: &'a Counts,
    queue: &'a QueueLimit,
    /// Fatal problems found while running (the run then ends early).
    fatal: &'a Mutex<Vec<String>>,
}

impl Ctx<'_> {
    fn fatal(&self, what: String) {
        self.fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
        self.stop.raise();
    }
}

/// Records the index has taken in, all sources (`next_seq` survives restarts and retention).
fn stored_total(sup: &Supervisor) -> Option<u64> {
    let (status, body) = sup.get("/v1/sources").ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some(
        v["sources"]
            .as_array()?
            .iter()
            .map(|s| s["next_seq"].as_u64().unwrap_or(0))
            .sum(),
    )
}

fn killer(ctx: &Ctx) {
    let mut r = Rng::fork(ctx.settings.seed, "killer");
    while !ctx.stop.pause(r.millis(5_000, 25_000)) {
        let down = if r.chance(0.3) {
            r.millis(500, 4_000)
        } else {
            r.millis(0, 200)
        };
        let shrink = ctx.settings.shrink_inotify_queue && r.chance(0.35);
        if let Err(e) = ctx.sup.kill_and_restart(down, shrink.then_some(ctx.queue)) {
            ctx.fatal(e);
            return;
        }
    }
}

fn watcher(ctx: &Ctx) {
    let mut tick = 0u64;
    while !ctx.stop.pause(Duration::from_millis(100)) {
        ctx.sup.sample_memory();
        tick += 1;
        if tick.is_multiple_of(5) {
            if let Err(e) = ctx.sup.check() {
                ctx.fatal(e);
                return;
            }
        }
    }
}

fn disk_filler(ctx: &Ctx) -> Vec<Episode> {
    let mut r = Rng::fork(ctx.settings.seed, "disk");
    let mut episodes = Vec::new();
    let mut pause = r.millis(8_000, 20_000);
    while !ctx.stop.pause(pause) {
        pause = r.millis(15_000, 35_000);
        let before = stored_total(ctx.sup).unwrap_or(0);
        let mut ballast = match Ballast::fill(&ctx.node.ballast()) {
            Ok(b) => b,
            Err(e) => {
                ctx.fatal(e);
                break;
            }
        };
        let started = Instant::now();
        let hold = r.millis(4_000, 12_000);
        while started.elapsed() < hold && !ctx.stop.pause(Duration::from_millis(500)) {
            // Retention or a deleted file may have freed space: take it too.
            let _ = ballast.top_up();
        }
        let full_secs = started.elapsed().as_secs_f64();
        let during = stored_total(ctx.sup).unwrap_or(before);
        let written = containers::total(ctx.counts);
        let ballast_bytes = ballast.bytes;
        ballast.remove();
        let back = Instant::now();
        let recovered = wait_for(Duration::from_secs(90), || {
            stored_total(ctx.sup).is_some_and(|s| s >= written)
        });
        episodes.push(Episode {
            full_secs,
            ballast_bytes,
            stored_while_full: during.saturating_sub(before),
            recovered_secs: recovered.then(|| back.elapsed().as_secs_f64()),
        });
    }
    episodes
}

fn burster(ctx: &Ctx) -> (u64, u64) {
    let mut r = Rng::fork(ctx.settings.seed, "bursts");
    let (mut bursts, mut files) = (0, 0);
    while !ctx.stop.pause(r.millis(6_000, 20_000)) {
        let root = if r.chance(0.5) {
            ctx.node.docker_root()
        } else {
            ctx.node.cri_root()
        };
        let n = r.range(2_000, 6_000) as usize;
        if let Err(e) = crate::inotify::burst(&root.join(format!("zz-burst-{bursts}")), n) {
            ctx.fatal(format!("inotify burst under {}: {e}", root.display()));
            break;
        }
        bursts += 1;
        files += n as u64;
    }
    (bursts, files)
}

/// Wait until `progress` reaches `done`, giving up after [`NO_PROGRESS`] without a change or
/// after `limit`; keeps the agent alive meanwhile. Returns whether it got there.
fn drain<T: PartialEq>(
    sup: &Supervisor,
    limit: Duration,
    mut progress: impl FnMut() -> Option<(T, bool)>,
) -> bool {
    let mut last: (Option<T>, Instant) = (None, Instant::now());
    let deadline = Instant::now() + limit;
    loop {
        let _ = sup.check();
        if let Some((value, done)) = progress() {
            if done {
                return true;
            }
            if last.0.as_ref() != Some(&value) {
                last = (Some(value), Instant::now());
            }
        }
        if last.1.elapsed() > NO_PROGRESS || Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Run the soak; the summary says what passed and what failed. An error is a set-up problem.
pub fn run(settings: &Settings) -> Result<Summary, String> {
    let t0 = Instant::now();
    println!(
        "chaos soak: seed {} ({:#x}), {} s, {} docker + {} cri containers, rate x{}, tmpfs {} MiB, index budget {} MiB, RSS bound {} MiB, binary {}",
        settings.seed,
        settings.seed,
        settings.duration.as_secs(),
        settings.docker_containers,
        settings.cri_containers,
        settings.rate_scale,
        settings.tmpfs_bytes >> 20,
        settings.index_bytes >> 20,
        settings.rss_bound >> 20,
        settings.runnel.display()
    );
    let node = Node::create(&settings.work_parent, settings.seed)?;
    println!("chaos soak: work dir {}", node.path().display());
    let tmpfs = Tmpfs::mount(&node.disk(), settings.tmpfs_bytes)?;
    let queue = QueueLimit::remember();
    let osmem = Osmem::start()?;
    let proxy = crate::proxy::Proxy::start(&osmem.url, "");
    let config = node.write_config(&proxy.url, settings.index_bytes)?;
    let specs = containers::plan(
        settings.seed,
        settings.docker_containers,
        settings.cri_containers,
        settings.rate_scale,
        &node.docker_root(),
        &node.cri_root(),
    );
    for s in &specs {
        containers::prepare(s).map_err(|e| format!("{}: {e}", s.live.display()))?;
    }
    let sup = Supervisor::new(&settings.runnel, &config, &node.agent_log());
    sup.start()?;

    let stop = Stop::default();
    let counts: Counts = specs.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let fatal = Mutex::new(Vec::new());
    let ctx = Ctx {
        settings,
        node: &node,
        sup: &sup,
        stop: &stop,
        counts: &counts,
        queue: &queue,
        fatal: &fatal,
    };
    let chaos_start = Instant::now();
    let (written, episodes, (bursts, burst_files), fault_counts) = std::thread::scope(|s| {
        let ctx = &ctx;
        let writers: Vec<_> = specs
            .iter()
            .zip(&counts)
            .map(|(spec, c)| s.spawn(move || containers::write(settings.seed, spec, ctx.stop, c)))
            .collect();
        s.spawn(|| killer(ctx));
        s.spawn(|| watcher(ctx));
        let disk = s.spawn(|| disk_filler(ctx));
        let bursts = s.spawn(|| burster(ctx));
        let st = proxy.state.clone();
        let faults = s.spawn(move || faults::inject(settings.seed, &st, ctx.stop));
        ctx.stop.pause(settings.duration);
        ctx.stop.raise();
        let written: Vec<Result<Written, String>> = writers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a writer panicked".into())))
            .collect();
        (
            written,
            disk.join().unwrap_or_default(),
            bursts.join().unwrap_or_default(),
            faults.join().unwrap_or_default(),
        )
    });
    let chaos_secs = chaos_start.elapsed().as_secs_f64();
    queue.restore();
    let mut failures: Vec<String> = fatal.into_inner().unwrap_or_else(|e| e.into_inner());
    let written: Vec<Written> = written
        .into_iter()
        .map(|w| {
            w.unwrap_or_else(|e| {
                failures.push(format!("writer: {e}"));
                Written::default()
            })
        })
        .collect();
    let line_counts: Vec<u64> = written.iter().map(|w| w.lines).collect();
    let written_total: u64 = line_counts.iter().sum();

    // Drain: everything into the index, then everything acknowledged by the server.
    println!("chaos soak: chaos over after {chaos_secs:.0} s; draining {written_total} lines");
    let indexed = drain(&sup, Duration::from_secs(300), || {
        stored_total(&sup).map(|s| (s, s >= written_total))
    });
    // Lines in files deleted before they were read can never arrive: the judge below says
    // whether what is missing is all of that kind, and counted.
    let short = (!indexed).then(|| stored_total(&sup));
    let shipped = drain(&sup, Duration::from_secs(300), || {
        let (status, page) = sup.get("/metrics").ok()?;
        if status != 200 {
            return None;
        }
        let lag = metrics::family_sum(&page, "runnel_sink_es_cursor_lag_records");
        let acked = metrics::family_sum(&page, "runnel_sink_es_documents_acked_total");
        let listed = page.contains("runnel_sink_es_cursor_lag_records{");
        Some(((acked as u64, lag as u64), listed && lag == 0.0))
    });
    if !shipped {
        failures.push(
            "the sink did not ship every stored record within the drain (cursor lag above 0)"
                .into(),
        );
    }
    // After the storm the agent must call itself healthy again (nothing left stuck).
    let mut health = String::new();
    let healthy = wait_for(Duration::from_secs(30), || match sup.get("/healthz") {
        Ok((200, _)) => true,
        Ok((code, body)) => {
            health = format!("{code}: {body}");
            false
        }
        Err(e) => {
            health = e;
            false
        }
    });
    if !healthy {
        failures.push(format!("/healthz after the drain: {health}"));
    }
    if let Err(e) = sup.stop() {
        failures.push(e);
    }

    // Judge what is left.
    let mut summary = Summary {
        seed: settings.seed,
        chaos_secs,
        rss_bound: settings.rss_bound,
        episodes,
        bursts,
        burst_files,
        faults: fault_counts,
        ..Summary::default()
    };
    {
        let p = proxy.state.lock().unwrap_or_else(|e| e.into_inner());
        summary.proxy_requests = p.requests;
        summary.proxy_item_faults = p.item_faults;
        if !p.violations.is_empty() {
            failures.push(format!(
                "the sink sent malformed bulk requests: {:?}",
                &p.violations[..p.violations.len().min(3)]
            ));
        }
    }
    let tally = sup.tally.lock().unwrap_or_else(|e| e.into_inner()).clone();
    summary.counters = COUNTERS.iter().map(|&c| (c, tally.get(c))).collect();
    summary.lives = sup.lives.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let evidence = judge::Evidence {
        settings,
        specs: &specs,
        written: &written,
        node: &node,
        osmem: &osmem,
    };
    judge::judge(&evidence, &mut summary, &mut failures)?;
    if let Some(stored) = short {
        let (in_deleted_files, oldest, _) = summary.missing;
        let gap = stored.map(|s| written_total.saturating_sub(s));
        if gap.is_none_or(|g| g > in_deleted_files + oldest) {
            failures.push(format!(
                "the index did not take in every line written within the drain (it has {stored:?} of {written_total} records; {in_deleted_files} were in files deleted before they were read, {oldest} removed by retention)"
            ));
        }
    }
    summary.failures = failures;
    summary.total_secs = t0.elapsed().as_secs_f64();
    if !summary.failures.is_empty() {
        // The index is on the tmpfs, which goes now: keep a copy next to the agent's log.
        let _ = std::process::Command::new("cp")
            .arg("-a")
            .arg(node.data_dir())
            .arg(node.path().join("data-copy"))
            .status();
    }
    drop(tmpfs);
    if !summary.failures.is_empty() {
        let kept = node.keep();
        summary.notes.push(format!(
            "work dir kept for inspection: {} (agent.log has every life)",
            kept.display()
        ));
    }
    Ok(summary)
}
