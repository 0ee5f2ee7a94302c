//! What a query costs beside a big history and many other sources, and what the agent's own
//! open costs per source.
//!
//! `cargo bench -p runnel-index --bench open` prints, in one run:
//! 1. a store with one source holding a long history (default 1 GiB of messages: sealed
//!    segments and a large active segment) and 500 other sources each with an active segment
//!    (default 1 MiB each), then, in this process, for a 60 s window at the end (in the active
//!    segment), a 60 s window in the sealed part and `tail 100`:
//!    - *before*: what a read-only open did until now: every source loaded and every active
//!      segment scanned whole (the index files are moved aside for this measurement);
//!    - *after*: the read-only open lists directories, loads only the wanted source, and reads
//!      its active segment from its index file;
//! 2. a writer's full open (`Store::open`, what the agent does at start) with 500 and 5000
//!    sources, each with a sealed segment and an active segment of 64 KiB: total, per source,
//!    and the memory maps held afterwards (sealed segments are mapped on demand now).
//!
//! `RUNNEL_BENCH_DIR=DIR` keeps the generated store in DIR (reused by a later run with the same
//! sizes) so that `benches/query/run.sh` can time the whole `runnel logs --data-dir` process on
//! it. Sizes: `RUNNEL_BENCH_HISTORY_BYTES` (default 1 GiB; 64 MiB without `--bench`),
//! `RUNNEL_BENCH_OTHERS` (500), `RUNNEL_BENCH_OTHER_BYTES` (1 MiB), and
//! `RUNNEL_BENCH_OPEN_SOURCES` (the writer-open sizes, default `500,5000`; empty skips them).

use runnel_index::{
    Limits, NewRecord, Position, Query, RecordFlags, SourceIdentity, Store, Stream, TimeStyle,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KEY: &str = "cri:bench_app-0_uid-0/app/0";
/// 2023-11-14T22:13:20Z.
const START_NS: i64 = 1_700_000_000_000_000_000;
/// 20 lines a second in the big history.
const INTERVAL_NS: i64 = 50_000_000;
const WINDOW_NS: i64 = 60_000_000_000;
const RUNS: usize = 15;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a number")),
        Err(_) => default,
    }
}

fn limits() -> Limits {
    Limits {
        max_age: Duration::from_secs(100 * 365 * 24 * 3600),
        max_disk_bytes: 1 << 42,
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

fn identity(ns: &str, pod: &str) -> SourceIdentity {
    SourceIdentity {
        namespace: Some(ns.into()),
        pod: Some(pod.into()),
        container: Some("app".into()),
        restart: Some(0),
        ..SourceIdentity::default()
    }
}

/// A cheap synthetic line of about 200 bytes.
fn line(buf: &mut Vec<u8>, i: u64) {
    use std::io::Write;
    buf.clear();
    let _ = write!(
        buf,
        "2023-11-14 INFO  [worker-{}] request id={:016x} path=/api/v1/orders/{} status=200 took={}ms user=u{} region=eu-west-1 cache=miss bytes={} trace={:032x}",
        i % 16,
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        i % 100_000,
        i % 997,
        i % 5000,
        (i * 37) % 65536,
        (i as u128).wrapping_mul(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)
    );
}

/// The history's last record time.
struct Generated {
    end_ns: i64,
    secs: f64,
}

fn generate(dir: &Path, history: u64, others: u64, other_bytes: u64) -> Generated {
    let t = Instant::now();
    let store = Store::open(dir, limits()).expect("open store");
    store
        .upsert_source(KEY, &identity("bench", "app-0"))
        .expect("upsert");
    let mut buf = Vec::new();
    let (mut bytes, mut i, mut t_ns) = (0u64, 0u64, START_NS);
    while bytes < history {
        line(&mut buf, i);
        store
            .append(KEY, &record(t_ns, &buf, bytes))
            .expect("append");
        bytes += buf.len() as u64;
        i += 1;
        t_ns += INTERVAL_NS;
        if i.is_multiple_of(20_000) {
            store.sync().expect("sync");
        }
    }
    store.sync().expect("sync");
    let end_ns = t_ns - INTERVAL_NS;
    for o in 0..others {
        let key = format!("cri:other_pod-{o}_uid-{o}/app/0");
        store
            .upsert_source(&key, &identity("other", &format!("pod-{o}")))
            .expect("upsert");
        let (mut b, mut j) = (0u64, 0u64);
        while b < other_bytes {
            line(&mut buf, j);
            store
                .append(
                    &key,
                    &record(end_ns - 3_600_000_000_000 + j as i64 * 1_000_000, &buf, b),
                )
                .expect("append");
            b += buf.len() as u64;
            j += 1;
        }
        if o % 50 == 49 {
            store.sync().expect("sync");
        }
    }
    store.sync().expect("sync");
    Generated {
        end_ns,
        secs: t.elapsed().as_secs_f64(),
    }
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Index files of the active segments, moved aside (and back) for the "before" measurement.
fn index_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for s in std::fs::read_dir(dir.join("sources"))
        .expect("sources")
        .flatten()
    {
        for f in std::fs::read_dir(s.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|e| e == "idx") {
                out.push(f.path());
            }
        }
    }
    out
}

fn hide(files: &[PathBuf], hidden: bool) {
    for f in files {
        let aside = f.with_extension("idx-aside");
        let (from, to) = if hidden { (f, &aside) } else { (&aside, f) };
        std::fs::rename(from, to).expect("move index file");
    }
}

/// One query the way a fresh `runnel logs --data-dir` process answers it: returns records.
fn run_query(dir: &Path, q: &Query, load_everything: bool) -> usize {
    let store = Store::open_read_only(dir).expect("open read-only");
    if load_everything {
        // What the old open did before answering: load every source.
        let _ = store.sources();
    } else {
        // Resolving by key: list, then load the one source.
        let keys = store.keys();
        assert!(keys.iter().any(|k| k == KEY));
        store.source_info(KEY).expect("info").expect("source");
    }
    store.query(KEY, q).expect("query").records.len()
}

fn time_query(dir: &Path, q: &Query, load_everything: bool) -> (Duration, usize) {
    let mut n = 0;
    let xs = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            n = run_query(dir, q, load_everything);
            t.elapsed()
        })
        .collect();
    (median(xs), n)
}

fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// A writer's open with `n` sources, each with a sealed segment and a 64 KiB active segment.
fn agent_open(n: u64) -> (Duration, u64, usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(tmp.path(), limits()).expect("open");
        let mut buf = Vec::new();
        for s in 0..n {
            let key = format!("cri:ns_pod-{s}_uid-{s}/app/0");
            store
                .upsert_source(&key, &identity("ns", &format!("pod-{s}")))
                .expect("upsert");
            for round in 0..2 {
                let mut b = 0u64;
                let mut j = 0u64;
                while b < 64 << 10 {
                    line(&mut buf, j);
                    store
                        .append(&key, &record(START_NS + j as i64, &buf, b))
                        .expect("append");
                    b += buf.len() as u64;
                    j += 1;
                }
                if round == 0 {
                    store.seal(&key).expect("seal");
                }
            }
            if s % 100 == 99 {
                store.sync().expect("sync");
            }
        }
        store.sync().expect("sync");
    }
    // Written-back first, so the open is not measured against the generation's writeback.
    let _ = std::process::Command::new("sync").status();
    let before = map_count();
    let t = Instant::now();
    let store = Store::open(tmp.path(), limits()).expect("reopen");
    let d = t.elapsed();
    let maps = map_count().saturating_sub(before);
    let open_maps = store.stats().open_maps;
    drop(store);
    (d, open_maps, maps)
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let history = env_u64(
        "RUNNEL_BENCH_HISTORY_BYTES",
        if bench_mode { 1 << 30 } else { 64 << 20 },
    );
    let others = env_u64("RUNNEL_BENCH_OTHERS", if bench_mode { 500 } else { 20 });
    let other_bytes = env_u64("RUNNEL_BENCH_OTHER_BYTES", 1 << 20);
    let tmp;
    let dir = match std::env::var_os("RUNNEL_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().expect("tempdir");
            tmp.path().to_path_buf()
        }
    };
    let params = format!("{history} {others} {other_bytes}\n");
    let marker = dir.join("bench-params");
    let end_ns = match std::fs::read_to_string(&marker) {
        Ok(s) if s.lines().next() == params.lines().next() => {
            let end = s
                .lines()
                .nth(1)
                .and_then(|l| l.parse().ok())
                .expect("marker");
            println!("reusing the store in {}", dir.display());
            end
        }
        _ => {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("bench dir");
            let g = generate(&dir, history, others, other_bytes);
            println!(
                "generated {} MiB of history + {others} sources x {} KiB in {:.1} s into {}",
                history >> 20,
                other_bytes >> 10,
                g.secs,
                dir.display()
            );
            std::fs::write(&marker, format!("{params}{}\n", g.end_ns)).expect("marker");
            g.end_ns
        }
    };
    {
        let s = Store::open_read_only(&dir).expect("open");
        let info = s.source_info(KEY).expect("info").expect("source");
        println!(
            "history source: {} records, {} segments, {:.1} MiB on disk; {} sources in all",
            info.records,
            info.segments,
            info.disk_bytes as f64 / 1048576.0,
            s.keys().len()
        );
    }
    let queries = [
        (
            "60 s window at the end (active segment)",
            Query {
                since_ns: Some(end_ns - WINDOW_NS),
                until_ns: Some(end_ns + 1),
                ..Query::default()
            },
        ),
        (
            "60 s window in the middle (sealed)",
            Query {
                since_ns: Some(START_NS + (end_ns - START_NS) / 2),
                until_ns: Some(START_NS + (end_ns - START_NS) / 2 + WINDOW_NS),
                ..Query::default()
            },
        ),
        (
            "tail 100",
            Query {
                tail_lines: Some(100),
                ..Query::default()
            },
        ),
    ];
    println!(
        "\nread-only open + query, in process (median of {RUNS} fresh opens; page cache warm)"
    );
    println!(
        "{:<42} {:>8} {:>12} {:>12} {:>8}",
        "query", "records", "before ms", "after ms", "speedup"
    );
    let idx = index_files(&dir);
    for (name, q) in &queries {
        hide(&idx, true);
        let (before, n0) = time_query(&dir, q, true);
        hide(&idx, false);
        let (after, n1) = time_query(&dir, q, false);
        assert_eq!(n0, n1, "{name}: both ways give the same records");
        println!(
            "{name:<42} {n1:>8} {:>12.3} {:>12.3} {:>7.0}x",
            ms(before),
            ms(after),
            before.as_secs_f64() / after.as_secs_f64()
        );
    }
    println!("(before = every source loaded, every active segment scanned whole, as the old read-only open did; after = sources listed, one loaded, active segment read from its index)");
    println!("\nwriter open (Store::open, what the agent does at start), 2 x 64 KiB per source");
    println!(
        "{:>8} {:>10} {:>14} {:>12} {:>14}",
        "sources", "open ms", "us per source", "open maps", "new mappings"
    );
    let sizes: Vec<u64> = match std::env::var("RUNNEL_BENCH_OPEN_SOURCES") {
        Ok(v) => v
            .split(',')
            .filter(|x| !x.trim().is_empty())
            .map(|x| {
                x.trim()
                    .parse()
                    .expect("RUNNEL_BENCH_OPEN_SOURCES: numbers")
            })
            .collect(),
        Err(_) if bench_mode => vec![500, 5000],
        Err(_) => vec![50],
    };
    for &n in &sizes {
        let (d, open_maps, mappings) = agent_open(n);
        println!(
            "{n:>8} {:>10.1} {:>14.1} {:>12} {:>14}",
            ms(d),
            d.as_secs_f64() * 1e6 / n as f64,
            open_maps,
            mappings
        );
    }
    println!("(before this change every sealed segment stayed mapped from open: one mapping per sealed segment)");
}
