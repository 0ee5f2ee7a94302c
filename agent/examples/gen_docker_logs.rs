//! Benchmark input: write `TOTAL_BYTES` of Docker json-file logs spread over `CONTAINERS`
//! containers into `OUT_DIR/<id>/<id>-json.log` (+ `config.v2.json`), formatted exactly as
//! Docker writes them (via `runnel_agent::demo::format`). Application lines are 80–400 bytes,
//! one in 1500 is 20–60 KiB (split into 16 KiB fragments sharing one time), and each
//! container's first half is rotated to `-json.log.1`.
//!
//! Usage: `gen_docker_logs OUT_DIR TOTAL_BYTES [CONTAINERS]`. Prints `key=value` figures:
//! `bytes` (file bytes written), `lines` (application lines), `entries` (json-file entries).

use runnel_agent::demo::format::{docker_config_v2, write_json_file_entry, PodRef};
use runnel_agent::demo::workload::Rng;
use runnel_index::Stream;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const WORDS: &[&str] = &[
    "GET",
    "POST",
    "/api/v1/orders",
    "user_id=",
    "status=200",
    "latency_ms=",
    "INFO",
    "WARN",
    "ERROR",
    "request",
    "completed",
    "upstream",
    "connection",
    "reset",
    "by",
    "peer",
    "cache",
    "miss",
    "hit",
    "retrying",
    "timeout",
    "db.query",
    "SELECT",
    "FROM",
    "orders",
    "WHERE",
    "id",
    "=",
    "trace_id=",
    "span=",
    "k8s",
    "pod",
    "ready",
    "payment",
    "authorized",
    "queue",
    "depth",
    "worker",
    "heartbeat",
    "ok",
    "failed",
    "token",
    "expired",
];

struct Totals {
    bytes: u64,
    lines: u64,
    entries: u64,
}

fn message(rng: &mut Rng, seq: u64, out: &mut Vec<u8>) {
    out.clear();
    let target = if rng.below(1500) == 0 {
        20_000 + rng.below(40_000) as usize
    } else {
        80 + rng.below(321) as usize
    };
    let _ = write!(out, "seq={seq} ");
    while out.len() < target {
        if rng.below(4) == 0 {
            let _ = write!(out, "{} ", rng.next_u64() % 100_000);
        } else {
            out.extend_from_slice(rng.pick(WORDS).as_bytes());
            out.push(b' ');
        }
    }
    out.truncate(target);
}

fn write_container(
    dir: &Path,
    n: u32,
    share: u64,
    rng: &mut Rng,
    t: &mut Totals,
) -> std::io::Result<()> {
    let id = format!(
        "{:016x}{:016x}{:016x}{:016x}",
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        n
    );
    let cdir = dir.join(&id);
    std::fs::create_dir_all(&cdir)?;
    let live = cdir.join(format!("{id}-json.log"));
    let pod = PodRef {
        namespace: format!("bench-{}", n % 5),
        pod: format!("app-{n}"),
        uid: format!("uid-{n}"),
        container: "app".into(),
    };
    std::fs::write(
        cdir.join("config.v2.json"),
        docker_config_v2(&id, &pod, "bench/app:1", &live.to_string_lossy()),
    )?;
    let rotated = PathBuf::from(format!("{}.1", live.display()));
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&rotated)?);
    let (mut written, mut in_rotated) = (0u64, true);
    let (mut msg, mut buf) = (Vec::with_capacity(64 << 10), Vec::with_capacity(64 << 10));
    // An hour ago: recent enough that the index's age retention (default 7 days) keeps it.
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(3600))
        .unwrap_or(0);
    let mut time_ns = i64::try_from(hour_ago)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        + i64::from(n) * 1_000;
    let mut seq = 0u64;
    while written < share {
        if in_rotated && written >= share / 2 {
            file.flush()?;
            file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&live)?);
            in_rotated = false;
        }
        message(rng, seq, &mut msg);
        buf.clear();
        let stream = if rng.below(10) == 0 {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        t.entries += write_json_file_entry(&mut buf, &msg, stream, time_ns) as u64;
        file.write_all(&buf)?;
        written += buf.len() as u64;
        t.lines += 1;
        seq += 1;
        time_ns += 1_000 + rng.below(2_000_000) as i64;
    }
    file.flush()?;
    if in_rotated {
        std::fs::File::create(&live)?;
    }
    t.bytes += written;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(total)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: gen_docker_logs OUT_DIR TOTAL_BYTES [CONTAINERS]");
        return ExitCode::from(2);
    };
    let containers: u32 = match args.get(3).map(|s| s.parse()) {
        None => 100,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("CONTAINERS must be a positive number");
            return ExitCode::from(2);
        }
    };
    let mut rng = Rng::new(42);
    let mut totals = Totals {
        bytes: 0,
        lines: 0,
        entries: 0,
    };
    let share = total / u64::from(containers);
    for n in 0..containers {
        if let Err(e) = write_container(Path::new(out), n, share, &mut rng, &mut totals) {
            eprintln!("gen_docker_logs: writing container {n} under {out}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "bytes={}\nlines={}\nentries={}",
        totals.bytes, totals.lines, totals.entries
    );
    ExitCode::SUCCESS
}
