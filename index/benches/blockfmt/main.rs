//! Sealed-segment formats side by side: format 1 (blocks of whole frames) against format 2
//! (headers as columns, then messages), on the same records, beside plain `zstd -1` of the same
//! message bytes.
//!
//! `cargo bench -p runnel-index --bench blockfmt` prints, per corpus, bytes on disk per GiB of
//! messages, the compression ratio (message bytes / bytes on disk), and the CPU cost of sealing
//! (frames of the active segment → compressed blocks, index, footer) and of reading every record
//! back into owned records, as a query does. CPU time is user + system of this
//! (single-threaded) process, best of a few runs, so a shared machine slows it less than wall
//! time. Corpus size: `RUNNEL_BENCH_BLOCKFMT_BYTES` (default 256 MiB of messages; 64 MiB with
//! `--quick`; a few MiB as a smoke test without `--bench`).

#[path = "../store/loggen.rs"]
mod loggen;

use loggen::LogGen;
use runnel_index::bench_support::{self, Format};
use runnel_index::{FileId, NewRecord, Position, RecordFlags, Stream, TimeStyle};
use std::time::Duration;

const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;
const BLOCK: usize = 128 << 10;
/// What a seal reads from the active segment at a time.
const CHUNK: usize = 1 << 20;
const LEVEL: i32 = 1;

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Best CPU time of `runs` calls of `f`, and the last result.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs.max(1) {
        let c = cpu_time();
        let v = f();
        best = best.min(cpu_time().saturating_sub(c));
        last = Some(v);
    }
    (best, last.expect("at least one run"))
}

struct Corpus {
    name: &'static str,
    /// Frames as the active segment holds them.
    frames: Vec<u8>,
    /// Where the active segment's chunks end (each about [`CHUNK`] bytes of whole frames).
    chunk_ends: Vec<usize>,
    /// The messages, each followed by `\n`: the bytes plain zstd gets.
    text: Vec<u8>,
    records: u64,
    message_bytes: u64,
}

/// Records as the file tailer makes them: one file, offsets advancing by the line on disk
/// (a CRI line: timestamp, stream, tag, message, newline), nanosecond UTC times.
fn corpus(name: &'static str, bytes: u64, max_line: usize) -> Corpus {
    let mut gen = LogGen::new(7, 1_700_000_000_000_000_000, 2_000_000);
    let mut c = Corpus {
        name,
        frames: Vec::with_capacity(bytes as usize * 3 / 2),
        chunk_ends: Vec::new(),
        text: Vec::with_capacity(bytes as usize + (1 << 20)),
        records: 0,
        message_bytes: 0,
    };
    let file = FileId {
        dev: 2049,
        ino: 1_234_567,
        fingerprint: 0x9c3a_11f0_5e6d_77b2,
    };
    let mut offset = 0u64;
    while c.message_bytes < bytes {
        let (t, line) = gen.next_line();
        let msg = &line[..line.len().min(max_line)];
        offset += msg.len() as u64 + "2023-11-14T22:13:20.123456789Z stdout F \n".len() as u64;
        let rec = NewRecord {
            time_ns: t,
            time_style: TimeStyle {
                offset_secs: 0,
                frac_digits: 9,
                zulu: true,
            },
            stream: if c.records.is_multiple_of(50) {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            flags: RecordFlags::default(),
            message: msg,
            position: Position::File { file, offset },
        };
        bench_support::encode_frame(&mut c.frames, c.records, &rec);
        if c.frames.len() - c.chunk_ends.last().copied().unwrap_or(0) >= CHUNK {
            c.chunk_ends.push(c.frames.len());
        }
        c.text.extend_from_slice(msg);
        c.text.push(b'\n');
        c.records += 1;
        c.message_bytes += msg.len() as u64;
    }
    c.chunk_ends.push(c.frames.len());
    c
}

impl Corpus {
    fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.chunk_ends.iter().copied());
        starts
            .zip(self.chunk_ends.iter().copied())
            .map(|(a, b)| &self.frames[a..b])
    }
}

struct Row {
    label: String,
    disk: u64,
    seal_cpu: Option<Duration>,
    read_cpu: Option<Duration>,
}

/// Seal and read back in both formats, the two alternating run by run so that a change in the
/// machine's load falls on both.
fn run_formats(c: &Corpus, runs: usize, dir: &std::path::Path) -> [Row; 2] {
    let formats = [Format::V1, Format::V2];
    let mut seal_cpu = [Duration::MAX; 2];
    let mut read_cpu = [Duration::MAX; 2];
    let mut disk = [0u64; 2];
    let paths = formats.map(|f| dir.join(format!("{f:?}.sealed")));
    for _ in 0..runs.max(1) {
        for (i, &f) in formats.iter().enumerate() {
            let (t, bytes) = best(1, || {
                bench_support::seal(f, c.chunks(), BLOCK, LEVEL).expect("seal")
            });
            seal_cpu[i] = seal_cpu[i].min(t);
            disk[i] = bytes.len() as u64;
            std::fs::write(&paths[i], &bytes).expect("write segment");
        }
        for (i, &f) in formats.iter().enumerate() {
            let (t, got) = best(1, || bench_support::read_all(&paths[i]).expect("read"));
            assert_eq!(got, (c.records, c.message_bytes), "{f:?} reads back");
            read_cpu[i] = read_cpu[i].min(t);
        }
    }
    [0, 1].map(|i| Row {
        label: format!("index format {}", formats[i].footer_version()),
        disk: disk[i],
        seal_cpu: Some(seal_cpu[i]),
        read_cpu: Some(read_cpu[i]),
    })
}

fn plain_zstd(c: &Corpus, runs: usize) -> [Row; 2] {
    let mut z = zstd::bulk::Compressor::new(LEVEL).expect("zstd");
    let (cpu, blocks) = best(runs, || {
        c.text
            .chunks(BLOCK)
            .map(|b| z.compress(b).expect("zstd").len() as u64)
            .sum::<u64>()
    });
    let (scpu, stream) = best(runs, || {
        zstd::stream::encode_all(&c.text[..], LEVEL).expect("zstd stream")
    });
    let mut d = zstd::bulk::Decompressor::new().expect("zstd");
    let bcomp: Vec<Vec<u8>> = c
        .text
        .chunks(BLOCK)
        .map(|b| zstd::bulk::compress(b, LEVEL).expect("zstd"))
        .collect();
    let (dcpu, _) = best(runs, || {
        bcomp
            .iter()
            .map(|b| d.decompress(b, BLOCK).expect("unzstd").len())
            .sum::<usize>()
    });
    let (sdcpu, _) = best(runs, || {
        zstd::stream::decode_all(&stream[..]).expect("unzstd").len()
    });
    [
        Row {
            label: "zstd -1, 128 KiB blocks of messages".into(),
            disk: blocks,
            seal_cpu: Some(cpu),
            read_cpu: Some(dcpu),
        },
        Row {
            label: "zstd -1, one stream (as the CLI)".into(),
            disk: stream.len() as u64,
            seal_cpu: Some(scpu),
            read_cpu: Some(sdcpu),
        },
    ]
}

fn report(c: &Corpus, runs: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "\n== {}: {:.0} MiB of messages, {} records ({:.0} B mean), frames {:.0} MiB; block {} KiB, zstd level {LEVEL}, best of {runs} ==",
        c.name,
        c.message_bytes as f64 / MIB,
        c.records,
        c.message_bytes as f64 / c.records.max(1) as f64,
        c.frames.len() as f64 / MIB,
        BLOCK >> 10
    );
    println!(
        "{:<38} | {:>14} | {:>10} | {:>15} | {:>15}",
        "", "MiB on disk", "ratio", "seal/compress", "read/decompress"
    );
    println!(
        "{:<38} | {:>14} | {:>10} | {:>15} | {:>15}",
        "", "per GiB of msg", "(msg/disk)", "CPU-s per GiB", "CPU-s per GiB"
    );
    let [v1, v2] = run_formats(c, runs, dir.path());
    let z = plain_zstd(c, runs);
    let gib = c.message_bytes as f64 / GIB;
    let per_gib = |d: Option<Duration>| {
        d.map_or("-".to_string(), |d| format!("{:.3}", d.as_secs_f64() / gib))
    };
    for r in [&v1, &v2, &z[0], &z[1]] {
        println!(
            "{:<38} | {:>14.1} | {:>9.2}x | {:>15} | {:>15}",
            r.label,
            r.disk as f64 / MIB / gib,
            c.message_bytes as f64 / r.disk.max(1) as f64,
            per_gib(r.seal_cpu),
            per_gib(r.read_cpu),
        );
    }
    let ratio = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => a.as_secs_f64() / b.as_secs_f64().max(1e-9),
        _ => f64::NAN,
    };
    println!(
        "format 2 vs 1: {:.1}% of the bytes on disk, seal CPU {:.2}x, read CPU {:.2}x; \
         format 2 is {:.1}% larger than zstd -1 in blocks of the messages alone",
        100.0 * v2.disk as f64 / v1.disk.max(1) as f64,
        ratio(v2.seal_cpu, v1.seal_cpu),
        ratio(v2.read_cpu, v1.read_cpu),
        100.0 * (v2.disk as f64 / z[0].disk.max(1) as f64 - 1.0),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench_mode = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let default = match (bench_mode, quick) {
        (false, _) => 4 << 20,
        (true, true) => 64 << 20,
        (true, false) => 256 << 20,
    };
    let bytes = match std::env::var("RUNNEL_BENCH_BLOCKFMT_BYTES") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => panic!("RUNNEL_BENCH_BLOCKFMT_BYTES={v:?}: expected a positive number of bytes"),
        },
        Err(_) => default,
    };
    let runs = if bench_mode { 5 } else { 1 };
    println!(
        "runnel-index sealed block formats bench: {} MiB of messages per corpus{}",
        bytes >> 20,
        if bench_mode {
            ""
        } else {
            " (smoke run: pass --bench for figures)"
        }
    );
    report(
        &corpus(
            "service log lines (100-300 B, some long)",
            bytes,
            usize::MAX,
        ),
        runs,
    );
    report(&corpus("short lines (at most 60 B)", bytes / 2, 60), runs);
}
