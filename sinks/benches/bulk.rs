//! Sink throughput: documents/s and MiB/s from an index of RUNNEL_BENCH_INDEX_BYTES (default
//! 1 GiB of message bytes) to a local bulk endpoint (`support/bulk_server.rs` in a child
//! process — this binary again, with RUNNEL_BENCH_SERVER set — that gunzips, parses every line
//! as JSON and acknowledges every item), the sink's CPU seconds per GiB of messages (getrusage of this
//! process only, over the shipping alone), and the index's raw `read_from` speed over
//! everything as the yardstick.
//!
//! `cargo bench -p runnel-sinks --bench bulk` (RUNNEL_BENCH_INDEX_BYTES=200000000 to shrink).
//!
//! Before/after in one run: `RUNNEL_BENCH_BASELINE=/path/to/an/older/bulk-binary` runs that
//! binary and this one alternately, `RUNNEL_BENCH_ROUNDS` times each (default 3), and prints
//! the sink's CPU s/GiB of both side by side (each run's best and median), so load from
//! other work on the machine falls on both alike.

#[path = "support/bulk_server.rs"]
mod bulk_server;

use runnel_index::{
    FileId, Limits, NewRecord, Position, RecordFlags, SourceIdentity, Store, Stream, TimeStyle,
};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn rusage_self() -> libc::rusage {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru
}

/// Minor page faults of this process so far: a fresh page the sink touches is one.
fn process_minor_faults() -> i64 {
    rusage_self().ru_minflt
}

fn process_cpu_secs() -> f64 {
    let ru = rusage_self();
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Start the bulk server in a child process, so its CPU is not the sink's.
fn start_server() -> (String, std::process::Child) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("RUNNEL_BENCH_SERVER", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (line.trim().to_string(), child)
}

/// The CPU s/GiB figure of each `sink (<mode>)` line of a run's output.
fn cpu_figures(out: &str) -> Vec<(String, f64)> {
    out.lines()
        .filter_map(|l| {
            let mode = l.strip_prefix("sink (")?.split(')').next()?;
            let before = l.split(" CPU s/GiB").next()?;
            let v = before.rsplit("= ").next()?.trim().parse().ok()?;
            Some((mode.to_string(), v))
        })
        .collect()
}

/// Run `baseline` and this binary alternately and print their sink figures side by side.
fn compare(baseline: &std::ffi::OsStr) {
    let rounds: usize = std::env::var("RUNNEL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let me = std::env::current_exe().unwrap();
    let mut seen: Vec<(String, &str, Vec<f64>)> = Vec::new();
    for round in 0..rounds {
        for (name, exe) in [("baseline", std::path::Path::new(baseline)), ("this", &me)] {
            let out = std::process::Command::new(exe)
                .env_remove("RUNNEL_BENCH_BASELINE")
                .stderr(std::process::Stdio::inherit())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            for l in text.lines().filter(|l| l.starts_with("sink (")) {
                println!("round {round} {name}: {l}");
            }
            for (mode, v) in cpu_figures(&text) {
                match seen.iter_mut().find(|(m, n, _)| *m == mode && *n == name) {
                    Some((_, _, vs)) => vs.push(v),
                    None => seen.push((mode, name, vec![v])),
                }
            }
        }
    }
    println!("sink CPU s/GiB of messages over {rounds} alternated runs (best / median):");
    for (mode, name, vs) in &mut seen {
        vs.sort_by(f64::total_cmp);
        println!(
            "  {mode:<16} {name:<8} {:.1} / {:.1}   {:?}",
            vs[0],
            vs[vs.len() / 2],
            vs
        );
    }
}

fn main() {
    if std::env::var_os("RUNNEL_BENCH_SERVER").is_some() {
        bulk_server::serve(0, true).unwrap();
        return;
    }
    if let Some(b) = std::env::var_os("RUNNEL_BENCH_BASELINE") {
        compare(&b);
        return;
    }
    let target: u64 = std::env::var("RUNNEL_BENCH_INDEX_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("index"), Limits::default()).unwrap());
    // Fill: 8 sources, ~180-byte messages.
    let t0 = Instant::now();
    let keys: Vec<String> = (0..8)
        .map(|i| format!("cri:bench_pod-{i}_uid-{i}/app/0"))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        store
            .upsert_source(
                k,
                &SourceIdentity {
                    container_id: Some(format!("{i:064x}")),
                    namespace: Some("bench".into()),
                    pod: Some(format!("pod-{i}")),
                    pod_uid: Some(format!("uid-{i}")),
                    container: Some("app".into()),
                    image: Some("registry.example/app:1".into()),
                    log_path: Some(format!("/var/log/pods/bench_pod-{i}_uid-{i}/app/0.log")),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let mut written = 0u64;
    let mut n = 0u64;
    let mut msg = Vec::with_capacity(256);
    while written < target {
        msg.clear();
        use std::io::Write;
        let _ = write!(
            msg,
            "2026-01-02 03:04:05.{n:06} INFO [worker-{}] request id={n:016x} path=/api/v1/items/{} status=200 bytes={} duration_ms={} user=\"someone@example.com\"",
            n % 17, n % 1000, n % 65536, n % 250
        );
        let k = &keys[(n % 8) as usize];
        store
            .append(
                k,
                &NewRecord {
                    time_ns: 1_767_323_045_000_000_000 + n as i64 * 1000,
                    time_style: TimeStyle::default(),
                    stream: Stream::Stdout,
                    flags: RecordFlags(0),
                    message: &msg,
                    position: Position::File {
                        file: FileId {
                            dev: 1,
                            ino: n % 8,
                            fingerprint: 7,
                        },
                        offset: n * 200,
                    },
                },
            )
            .unwrap();
        written += msg.len() as u64;
        n += 1;
        if n.is_multiple_of(100_000) {
            store.sync().unwrap();
        }
    }
    store.sync().unwrap();
    for k in &keys {
        let _ = store.seal(k);
    }
    println!(
        "filled index: {n} records, {:.1} MiB of messages in {:.1}s",
        written as f64 / 1048576.0,
        t0.elapsed().as_secs_f64()
    );

    // Yardstick: raw read_from over everything.
    let t0 = Instant::now();
    let c0 = thread_cpu_secs();
    let mut read = 0u64;
    for k in &keys {
        let mut from = 0;
        loop {
            let b = store.read_from(k, from, 10_000, 5 << 20).unwrap();
            if b.records.is_empty() {
                break;
            }
            read += b.records.len() as u64;
            from = b.next_seq;
        }
    }
    let rs = t0.elapsed().as_secs_f64();
    let rc = thread_cpu_secs() - c0;
    println!(
        "index read_from: {read} records in {rs:.2}s = {:.0} records/s, {:.1} MiB/s of messages, {rc:.2}s CPU",
        read as f64 / rs,
        written as f64 / 1048576.0 / rs
    );

    // The same without a copy per message: the records as views into their blocks.
    let t0 = Instant::now();
    let c0 = thread_cpu_secs();
    let mut seen = 0u64;
    let mut msg_bytes = 0u64;
    for k in &keys {
        let mut from = 0;
        loop {
            let end = store
                .read_each(k, from, 10_000, 5 << 20, &mut |f| {
                    msg_bytes += f.message.len() as u64
                })
                .unwrap();
            if end.records == 0 {
                break;
            }
            seen += end.records as u64;
            from = end.next_seq;
        }
    }
    let es = t0.elapsed().as_secs_f64();
    let ec = thread_cpu_secs() - c0;
    assert_eq!(
        (seen, msg_bytes),
        (read, written),
        "read_each saw every record"
    );
    println!(
        "index read_each (no copies): {seen} records in {es:.2}s = {:.0} records/s, {:.1} MiB/s of messages, {ec:.2}s CPU",
        seen as f64 / es,
        written as f64 / 1048576.0 / es
    );

    // Why the sink gzips at level 1 itself (the official client's built-in compression is
    // level 6 inside the async request path), and why with ISA-L: one 5 MiB NDJSON body with
    // the sink's gzip and at both levels with the other backends.
    {
        let id = store
            .sources()
            .into_iter()
            .next()
            .map(|s| s.identity)
            .unwrap_or_default();
        let frag = runnel_sinks::encode::SourceFragment::new("bench-node", &keys[0], &id);
        let mut body = Vec::new();
        let mut from = 0;
        while body.len() < 5 << 20 {
            let b = store.read_from(&keys[0], from, 1000, 1 << 20).unwrap();
            if b.records.is_empty() {
                break;
            }
            for r in &b.records {
                body.extend_from_slice(b"{\"create\":{\"_index\":\"x\"}}\n");
                runnel_sinks::encode::encode_document(&mut body, &r.view(), &frag, None);
                body.push(b'\n');
            }
            from = b.next_seq;
        }
        // CPU time of this thread, best of 5, so other load on the machine does not count.
        let best = |f: &mut dyn FnMut() -> usize| {
            let mut best = f64::MAX;
            let mut out = 0;
            for _ in 0..5 {
                let t0 = thread_cpu_secs();
                out = f();
                best = best.min(thread_cpu_secs() - t0);
            }
            (best, out)
        };
        let report = |name: &str, (s, z): (f64, usize)| {
            println!(
                "{name}: {:.1} MiB NDJSON in {:.1} ms CPU = {:.0} MiB/s, ratio {:.1}%",
                body.len() as f64 / 1048576.0,
                s * 1e3,
                body.len() as f64 / 1048576.0 / s,
                z as f64 * 100.0 / body.len() as f64
            );
        };
        report(
            &format!(
                "gzip (the sink's: {}, state reused)",
                runnel_sinks::gzip::BACKEND
            ),
            best(&mut || runnel_sinks::gzip::gzip(&body).unwrap().len()),
        );
        for level in [1u32, 6] {
            report(
                &format!(
                    "gzip level {level} (zlib-rs: flate2 Compress, native gzip, state reused)"
                ),
                best(&mut || runnel_sinks::gzip::zlib_gzip(&body, level).unwrap().len()),
            );
            report(
                &format!("gzip level {level} (flate2 GzEncoder, zlib-rs backend)"),
                best(&mut || {
                    use std::io::Write;
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                    enc.write_all(&body).unwrap();
                    enc.finish().unwrap().len()
                }),
            );
            report(
                &format!("gzip level {level} (libdeflate, compressor reused)"),
                {
                    let mut c = libdeflater::Compressor::new(
                        libdeflater::CompressionLvl::new(level as i32).unwrap(),
                    );
                    let mut out = vec![0u8; c.gzip_compress_bound(body.len())];
                    best(&mut || c.gzip_compress(&body, &mut out).unwrap())
                },
            );
            // flate2's default backend, for the choice (raw deflate: no gzip CRC).
            report(
                &format!("deflate level {level} (miniz_oxide, flate2's default)"),
                best(&mut || miniz_oxide::deflate::compress_to_vec(&body, level as u8).len()),
            );
        }
    }

    for gzip in [true, false] {
        let (url, server) = start_server();
        let mut cfg = runnel_config::Config::default().sinks.elasticsearch;
        cfg.enabled = true;
        cfg.endpoints = vec![url];
        cfg.index = "bench-%Y.%m.%d".into();
        cfg.compression = if gzip {
            runnel_config::Compression::Gzip
        } else {
            runnel_config::Compression::None
        };
        let state = dir
            .path()
            .join(if gzip { "sink-gzip" } else { "sink-plain" });
        let cpu0 = process_cpu_secs();
        let faults0 = process_minor_faults();
        let t0 = Instant::now();
        let sink =
            runnel_sinks::ElasticsearchSink::start(&cfg, "bench-node", store.clone(), &state)
                .unwrap();
        sink.drain(Duration::from_secs(3600)).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let cpu = process_cpu_secs() - cpu0;
        let faults = process_minor_faults() - faults0;
        let m = sink.metrics();
        let raw = m.bytes_raw.load(Relaxed);
        let wire = m.bytes_compressed.load(Relaxed);
        let acked = m.docs_acked.load(Relaxed);
        let high = m.in_flight_bytes_max.load(Relaxed);
        sink.shutdown();
        let mut server = server;
        drop(server.stdin.take());
        let _ = server.wait();
        assert_eq!(acked, n, "every record acknowledged");
        let gib = written as f64 / (1u64 << 30) as f64;
        println!(
            "sink ({}): {acked} docs in {secs:.2}s = {:.0} docs/s, {:.1} MiB/s of messages, {:.1} MiB/s NDJSON, wire {:.1} MiB ({:.1}% of raw), CPU {:.2}s = {:.1} CPU s/GiB of messages (sink process only), in-flight max {:.1} MiB, {faults} page faults",
            if gzip { "gzip" } else { "no compression" },
            acked as f64 / secs,
            written as f64 / 1048576.0 / secs,
            raw as f64 / 1048576.0 / secs,
            wire as f64 / 1048576.0,
            wire as f64 * 100.0 / raw.max(1) as f64,
            cpu,
            cpu / gib,
            high as f64 / 1048576.0,
        );
    }
}
