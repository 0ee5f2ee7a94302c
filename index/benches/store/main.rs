//! Benchmarks of the segment store against the yardsticks the design promises to beat.
//!
//! `cargo bench -p runnel-index --bench store` prints, in one run:
//! 1. append throughput (with periodic sync, sealing and zstd compression of blocks) at zstd
//!    levels 1 and 3, beside plain zstd of the same bytes in blocks of the same size;
//! 2. a 60-second window out of a long history of one source (default 2 GiB of message bytes),
//!    beside a full scan of the same history that decodes every record and compares timestamps
//!    (what Docker and the kubelet do), with the ratios checked against the targets;
//! 3. `tail 100` on the same history, with the newest records in the active segment and again
//!    once everything is sealed (the tail then comes out of compressed blocks).
//!
//! Then criterion measurements of the window query and of `tail 100` (both states).
//!
//! Sizes: `RUNNEL_BENCH_HISTORY_BYTES` (default 2 GiB; 256 MiB with `--quick`) and
//! `RUNNEL_BENCH_APPEND_BYTES` (default 256 MiB; 64 MiB with `--quick`). `RUNNEL_BENCH_DIR` picks
//! where the history is written (default: a temporary directory, removed at exit). Run without
//! `--bench` (as `cargo test --benches` does) everything runs once on a few MiB as a smoke test.

mod loggen;

use criterion::Criterion;
use loggen::LogGen;
use runnel_index::{
    Limits, NewRecord, Position, Query, RecordFlags, SourceIdentity, Store, Stream, TimeStyle,
};
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;
const KEY: &str = "cri:bench_app-0_uid-0/app/0";
/// Appended message bytes between two syncs (a tailer batch) and seal_due checks.
const SYNC_EVERY_BYTES: u64 = 4 << 20;
/// Mean interval between lines of the history: 20 lines/s, so 2 GiB span about 6 days.
const HISTORY_INTERVAL_NS: i64 = 50_000_000;
const WINDOW_NS: i64 = 60_000_000_000;
/// 2023-11-14T22:13:20Z: a fixed start so runs are comparable.
const START_NS: i64 = 1_700_000_000_000_000_000;

struct Plan {
    bench_mode: bool,
    quick: bool,
    history_bytes: u64,
    append_bytes: u64,
    runs: usize,
}

fn env_bytes(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => Some(n),
        _ => panic!("{name}={v:?}: expected a positive number of bytes"),
    }
}

fn plan() -> Plan {
    let args: Vec<String> = std::env::args().collect();
    let bench_mode = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let (history, append, runs) = match (bench_mode, quick) {
        (false, _) => (8 << 20, 4 << 20, 1),
        (true, true) => (256 << 20, 64 << 20, 1),
        (true, false) => (2 << 30, 256 << 20, 3),
    };
    Plan {
        bench_mode,
        quick,
        history_bytes: env_bytes("RUNNEL_BENCH_HISTORY_BYTES").unwrap_or(history),
        append_bytes: env_bytes("RUNNEL_BENCH_APPEND_BYTES").unwrap_or(append),
        runs,
    }
}

fn limits(level: i32) -> Limits {
    Limits {
        zstd_level: level,
        // The history is synthetic and old: age must not delete it, nor the budget.
        max_age: Duration::from_secs(100 * 365 * 24 * 3600),
        max_disk_bytes: 1 << 40,
        ..Limits::default()
    }
}

fn record(time_ns: i64, message: &[u8], offset: u64) -> NewRecord<'_> {
    NewRecord {
        time_ns,
        time_style: TimeStyle {
            offset_secs: 0,
            frac_digits: 9,
            zulu: true,
        },
        stream: Stream::Stdout,
        flags: RecordFlags::default(),
        message,
        position: Position::File {
            file: runnel_index::FileId {
                dev: 2049,
                ino: 1234,
                fingerprint: 0xfeed,
            },
            offset,
        },
    }
}

fn open_store(dir: &Path, level: i32) -> Store {
    let store = Store::open(dir, limits(level)).expect("open store");
    let identity = SourceIdentity {
        namespace: Some("bench".into()),
        pod: Some("app-0".into()),
        container: Some("app".into()),
        restart: Some(0),
        ..SourceIdentity::default()
    };
    store.upsert_source(KEY, &identity).expect("upsert source");
    store
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB / d.as_secs_f64()
}

/// Lines held in memory so generation is not part of the timed append.
struct Corpus {
    /// Every line followed by `\n`: exactly the bytes of a log file.
    text: Vec<u8>,
    lines: Vec<(i64, usize, usize)>,
    message_bytes: u64,
}

fn corpus(bytes: u64) -> Corpus {
    let mut gen = LogGen::new(7, START_NS, 1_000_000);
    let mut c = Corpus {
        text: Vec::with_capacity(bytes as usize + (1 << 20)),
        lines: Vec::new(),
        message_bytes: 0,
    };
    while c.message_bytes < bytes {
        let (t, line) = gen.next_line();
        let start = c.text.len();
        c.text.extend_from_slice(line);
        c.text.push(b'\n');
        c.lines.push((t, start, line.len()));
        c.message_bytes += line.len() as u64;
    }
    c
}

/// CPU time (user + system) this process used so far. The bench is single-threaded while it
/// measures, so a difference is the work done; unlike wall time it does not grow when the
/// machine is shared, nor with time spent waiting for fsync.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Wall and CPU time of one measured run.
#[derive(Clone, Copy)]
struct Took {
    wall: Duration,
    cpu: Duration,
}

fn took<T>(f: impl FnOnce() -> T) -> (Took, T) {
    let (w, c) = (Instant::now(), cpu_time());
    let v = f();
    let t = Took {
        wall: w.elapsed(),
        cpu: cpu_time().saturating_sub(c),
    };
    (t, v)
}

/// Appends the corpus with a sync and seal_due every few MiB and a final seal: what the ingest
/// path costs per byte, compression of sealed blocks included. Returns (time, disk bytes).
fn append_run(c: &Corpus, level: i32) -> (Took, u64) {
    let dir = tempdir();
    let store = open_store(dir.path(), level);
    took(|| append_all(c, &store))
}

fn append_all(c: &Corpus, store: &Store) -> u64 {
    let mut since_sync = 0u64;
    for &(t, start, len) in &c.lines {
        let msg = &c.text[start..start + len];
        store
            .append(KEY, &record(t, msg, (start + len + 1) as u64))
            .expect("append");
        since_sync += len as u64;
        if since_sync >= SYNC_EVERY_BYTES {
            store.sync().expect("sync");
            store.seal_due().expect("seal_due");
            since_sync = 0;
        }
    }
    store.sync().expect("sync");
    store.seal(KEY).expect("seal");
    store.stats().disk_bytes
}

/// The yardstick: plain zstd of the same bytes in blocks of the store's block size.
fn zstd_run(c: &Corpus, level: i32, block: usize) -> (Took, u64) {
    let mut z = zstd::bulk::Compressor::new(level).expect("zstd compressor");
    took(|| {
        let mut out = 0u64;
        for chunk in c.text.chunks(block) {
            out += z.compress(chunk).expect("zstd compress").len() as u64;
        }
        out
    })
}

fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("RUNNEL_BENCH_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).expect("create RUNNEL_BENCH_DIR");
            tempfile::tempdir_in(d).expect("tempdir in RUNNEL_BENCH_DIR")
        }
        None => tempfile::tempdir().expect("tempdir"),
    }
}

fn bench_append(p: &Plan) {
    let c = corpus(p.append_bytes);
    let block = Limits::default().block_raw_bytes;
    println!(
        "\n== append: {:.0} MiB of messages, {} records, sync+seal_due every {} MiB, block {} KiB, best of {} ==",
        c.message_bytes as f64 / MIB,
        c.lines.len(),
        SYNC_EVERY_BYTES >> 20,
        block >> 10,
        p.runs
    );
    println!(
        "rates per CPU-second (user+sys; robust on a shared machine), wall-clock rates in brackets \
         (the index's include waiting for fsync)"
    );
    println!(
        "{:>5} | {:>22} | {:>22} | {:>9} | {:>22} | {:>10} | {:>16}",
        "level",
        "index MiB/s",
        "index records/s",
        "idx ratio",
        "plain zstd MiB/s",
        "zstd ratio",
        "index/zstd CPU"
    );
    for level in [1, 3] {
        let (idx, disk) = (0..p.runs)
            .map(|_| append_run(&c, level))
            .min_by_key(|r| r.0.cpu)
            .expect("at least one run");
        let (z, zout) = (0..p.runs)
            .map(|_| zstd_run(&c, level, block))
            .min_by_key(|r| r.0.cpu)
            .expect("at least one run");
        let rate = |n: f64, d: Duration| n / d.as_secs_f64().max(1e-9);
        let (msg, text, lines) = (
            c.message_bytes as f64 / MIB,
            c.text.len() as f64 / MIB,
            c.lines.len() as f64,
        );
        println!(
            "{:>5} | {:>9.1} ({:>9.1}) | {:>9.0} ({:>9.0}) | {:>8.2}x | {:>9.1} ({:>9.1}) | {:>9.2}x | {:>15.2}x",
            level,
            rate(msg, idx.cpu),
            rate(msg, idx.wall),
            rate(lines, idx.cpu),
            rate(lines, idx.wall),
            c.text.len() as f64 / disk.max(1) as f64,
            rate(text, z.cpu),
            rate(text, z.wall),
            c.text.len() as f64 / zout.max(1) as f64,
            idx.cpu.as_secs_f64() / z.cpu.as_secs_f64().max(1e-9),
        );
    }
}

struct History {
    _dir: tempfile::TempDir,
    store: Store,
    records: u64,
    message_bytes: u64,
    first_ns: i64,
    last_ns: i64,
}

fn build_history(p: &Plan) -> History {
    let dir = tempdir();
    let store = open_store(dir.path(), 1);
    let mut gen = LogGen::new(42, START_NS, HISTORY_INTERVAL_NS);
    let (mut records, mut bytes, mut since_sync, mut offset) = (0u64, 0u64, 0u64, 0u64);
    let (mut first_ns, mut last_ns) = (i64::MAX, i64::MIN);
    let mut next_report = 256u64 << 20;
    let started = Instant::now();
    while bytes < p.history_bytes {
        let (t, line) = gen.next_line();
        offset += line.len() as u64 + 1;
        store.append(KEY, &record(t, line, offset)).expect("append");
        first_ns = first_ns.min(t);
        last_ns = last_ns.max(t);
        records += 1;
        bytes += line.len() as u64;
        since_sync += line.len() as u64;
        if since_sync >= SYNC_EVERY_BYTES {
            store.sync().expect("sync");
            store.seal_due().expect("seal_due");
            since_sync = 0;
        }
        if bytes >= next_report {
            eprintln!(
                "  history: {} MiB written ({:.1}s)",
                bytes >> 20,
                started.elapsed().as_secs_f64()
            );
            next_report += 256 << 20;
        }
    }
    store.sync().expect("sync");
    store.seal_due().expect("seal_due");
    let elapsed = started.elapsed();
    let stats = store.stats();
    println!(
        "\n== history: one source, {:.0} MiB of messages, {} records over {:.1} h, written in {:.1}s \
         ({:.1} MiB/s incl. line generation, level 1); {} sealed segments, {:.0} MiB on disk ==",
        bytes as f64 / MIB,
        records,
        (last_ns - first_ns) as f64 / 3.6e12,
        elapsed.as_secs_f64(),
        mib_s(bytes, elapsed),
        stats.sealed_segments,
        stats.disk_bytes as f64 / MIB
    );
    History {
        _dir: dir,
        store,
        records,
        message_bytes: bytes,
        first_ns,
        last_ns,
    }
}

fn window_query(h: &History) -> Query {
    let since = h.first_ns + (h.last_ns - h.first_ns) / 2;
    Query {
        since_ns: Some(since),
        until_ns: Some(since + WINDOW_NS),
        ..Query::default()
    }
}

/// Decode every record from the first one and compare timestamps: the Docker/kubelet way.
/// Returns (records in the window, their message bytes, records decoded).
fn full_scan(store: &Store, q: &Query) -> (u64, u64, u64) {
    let (since, until) = (
        q.since_ns.unwrap_or(i64::MIN),
        q.until_ns.unwrap_or(i64::MAX),
    );
    let (mut n, mut bytes, mut decoded, mut seq) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let batch = store
            .read_from(KEY, seq, 16_384, 16 << 20)
            .expect("read_from");
        if batch.records.is_empty() {
            break;
        }
        for r in &batch.records {
            decoded += 1;
            if r.time_ns >= since && r.time_ns < until {
                n += 1;
                bytes += r.message.len() as u64;
            }
        }
        seq = batch.next_seq;
    }
    (n, bytes, decoded)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn bench_window_and_tail(p: &Plan, h: &History) {
    let q = window_query(h);
    let res = h.store.query(KEY, &q).expect("window query");
    let window_bytes: u64 = res.records.iter().map(|r| r.message.len() as u64).sum();
    let iters = if p.bench_mode { 50 } else { 3 };
    let window_lat = median(
        (0..iters)
            .map(|_| {
                let t = Instant::now();
                let r = h.store.query(KEY, &q).expect("window query");
                std::hint::black_box(r.records.len());
                t.elapsed()
            })
            .collect(),
    );
    let scan_runs = if p.bench_mode && !p.quick { 3 } else { 1 };
    let mut scan_times = Vec::new();
    let mut scan = (0, 0, 0);
    for _ in 0..scan_runs {
        let t = Instant::now();
        scan = full_scan(&h.store, &q);
        scan_times.push(t.elapsed());
    }
    let scan_lat = median(scan_times);
    let block = Limits::default().block_raw_bytes as u64;
    let speedup = scan_lat.as_secs_f64() / window_lat.as_secs_f64();
    let budget = 2 * window_bytes + block;
    println!("\n== 60 s window in the middle of the history (hot page cache) ==");
    println!(
        "{:<38} | {:>12} | {:>10} | {:>14} | {:>12}",
        "read", "latency", "records", "decompressed", "read (disk)"
    );
    println!(
        "{:<38} | {:>9.3} ms | {:>10} | {:>10.1} KiB | {:>8.1} KiB",
        "index query (since/until)",
        window_lat.as_secs_f64() * 1e3,
        res.records.len(),
        res.bytes_decompressed as f64 / 1024.0,
        res.bytes_read as f64 / 1024.0
    );
    println!(
        "{:<38} | {:>9.3} ms | {:>10} | {:>10.1} MiB | {:>12}",
        "full scan (read_from all, filter)",
        scan_lat.as_secs_f64() * 1e3,
        scan.2,
        h.message_bytes as f64 / MIB,
        "-"
    );
    println!(
        "window: {} records, {:.1} KiB of messages, {} blocks decompressed",
        res.records.len(),
        window_bytes as f64 / 1024.0,
        res.blocks_decompressed
    );
    let same = scan.0 == res.records.len() as u64 && scan.1 == window_bytes;
    println!(
        "check  window == full-scan filter ({} records, {} bytes)   {}",
        scan.0,
        scan.1,
        verdict(same)
    );
    println!(
        "target window >= 1000x faster than full scan: {:.0}x   {}",
        speedup,
        verdict(speedup >= 1000.0)
    );
    println!(
        "target decompressed <= 2 x window bytes + 1 block: {} <= {} ({:.2}x window)   {}",
        res.bytes_decompressed,
        budget,
        res.bytes_decompressed as f64 / window_bytes.max(1) as f64,
        verdict(res.bytes_decompressed <= budget)
    );
    if scan.2 != h.records {
        println!(
            "check  full scan decoded {} of {} records   FAIL",
            scan.2, h.records
        );
    }

    tail_100(p, h, "newest records in the active segment");
}

/// `tail 100` on the history: median and p99 latency, checked against the 1 ms target.
fn tail_100(p: &Plan, h: &History, state: &str) {
    let tq = Query {
        tail_lines: Some(100),
        ..Query::default()
    };
    let tres = h.store.query(KEY, &tq).expect("tail query");
    let tail_iters = if p.bench_mode { 200 } else { 3 };
    let mut tail_times: Vec<Duration> = (0..tail_iters)
        .map(|_| {
            let t = Instant::now();
            let r = h.store.query(KEY, &tq).expect("tail query");
            std::hint::black_box(r.records.len());
            t.elapsed()
        })
        .collect();
    tail_times.sort();
    let tail_med = tail_times[tail_times.len() / 2];
    let tail_p99 = tail_times[(tail_times.len() * 99 / 100).min(tail_times.len() - 1)];
    let last_ok =
        tres.records.len() == 100 && tres.records.last().map(|r| r.seq) == Some(h.records - 1);
    println!("\n== tail 100 on the history ({state}) ==");
    println!(
        "median {:.3} ms, p99 {:.3} ms, {} records (last seq ok: {}), {:.1} KiB decompressed, {} blocks",
        tail_med.as_secs_f64() * 1e3,
        tail_p99.as_secs_f64() * 1e3,
        tres.records.len(),
        last_ok,
        tres.bytes_decompressed as f64 / 1024.0,
        tres.blocks_decompressed
    );
    println!(
        "target tail 100 < 1 ms: {:.3} ms   {}",
        tail_med.as_secs_f64() * 1e3,
        verdict(tail_med < Duration::from_millis(1) && last_ok)
    );
}

fn main() {
    let p = plan();
    println!(
        "runnel-index store bench: history {} MiB, append corpus {} MiB{}",
        p.history_bytes >> 20,
        p.append_bytes >> 20,
        if p.bench_mode {
            ""
        } else {
            " (smoke run: pass --bench for figures)"
        }
    );
    bench_append(&p);
    let h = build_history(&p);
    bench_window_and_tail(&p, &h);

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let wq = window_query(&h);
    c.bench_function("query_window_60s", |b| {
        b.iter(|| h.store.query(KEY, &wq).expect("window query").records.len())
    });
    let tq = Query {
        tail_lines: Some(100),
        ..Query::default()
    };
    c.bench_function("query_tail_100", |b| {
        b.iter(|| h.store.query(KEY, &tq).expect("tail query").records.len())
    });
    // Now with every record sealed: the tail comes out of compressed blocks.
    h.store.seal(KEY).expect("seal");
    tail_100(&p, &h, "every record sealed");
    c.bench_function("query_tail_100_sealed", |b| {
        b.iter(|| h.store.query(KEY, &tq).expect("tail query").records.len())
    });
    c.final_summary();
}
