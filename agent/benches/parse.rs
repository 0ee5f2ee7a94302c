//! Line parsing throughput: the json-file scanner and the CRI parser as the tailer runs them
//! (Docker's tail matched as literals, one time cache per file), beside the key-by-key json-file
//! parse with a fresh time cache per line (the same parser without those two paths) and `serde_json::from_slice` into
//! a generic `Value` per line (the yardstick), on the same lines: 100 lines a second, as a busy
//! container writes them. Criterion prints MiB/s (bytes) and lines/s (elements).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use runnel_agent::tail::parse::{parse_cri, parse_json, parse_json_any, TimeCache};

const LINES: usize = 20_000;

fn message(i: usize) -> String {
    format!(
        "GET /api/v1/items/{i} status=200 user=\"u{}\" took={}ms path=/a/b/c\tq={}",
        i % 97,
        i % 1000,
        "x".repeat(i % 120)
    )
}

fn time(i: usize) -> String {
    format!(
        "2024-05-01T12:{:02}:{:02}.{:09}Z",
        i / 6000 % 60,
        i / 100 % 60,
        i * 7919 % 1_000_000_000
    )
}

fn json_lines() -> Vec<Vec<u8>> {
    (0..LINES)
        .map(|i| {
            serde_json::json!({"log": format!("{}\n", message(i)), "stream": "stdout", "time": time(i)})
                .to_string()
                .into_bytes()
        })
        .collect()
}

fn cri_lines() -> Vec<Vec<u8>> {
    (0..LINES)
        .map(|i| format!("{} stdout F {}", time(i), message(i)).into_bytes())
        .collect()
}

fn bench(c: &mut Criterion) {
    let json = json_lines();
    let cri = cri_lines();
    let json_bytes: usize = json.iter().map(|l| l.len() + 1).sum();
    let cri_bytes: usize = cri.iter().map(|l| l.len() + 1).sum();
    for (unit, json_t, cri_t) in [
        (
            "bytes",
            Throughput::Bytes(json_bytes as u64),
            Throughput::Bytes(cri_bytes as u64),
        ),
        (
            "lines",
            Throughput::Elements(LINES as u64),
            Throughput::Elements(LINES as u64),
        ),
    ] {
        let mut g = c.benchmark_group(format!("parse_{unit}"));
        g.throughput(json_t);
        g.bench_function("json_file_scanner", |b| {
            let mut out = Vec::with_capacity(4096);
            let mut times = TimeCache::default();
            b.iter(|| {
                for l in &json {
                    out.clear();
                    black_box(parse_json(black_box(l), &mut out, &mut times).ok());
                }
            })
        });
        g.bench_function("json_file_general_uncached", |b| {
            let mut out = Vec::with_capacity(4096);
            b.iter(|| {
                for l in &json {
                    out.clear();
                    let mut times = TimeCache::default();
                    black_box(parse_json_any(black_box(l), &mut out, &mut times).ok());
                }
            })
        });
        g.bench_function("serde_json_value_yardstick", |b| {
            b.iter(|| {
                for l in &json {
                    black_box(serde_json::from_slice::<serde_json::Value>(black_box(l)).ok());
                }
            })
        });
        g.throughput(cri_t);
        g.bench_function("cri", |b| {
            let mut times = TimeCache::default();
            b.iter(|| {
                for l in &cri {
                    black_box(parse_cri(black_box(l), &mut times).ok());
                }
            })
        });
        g.bench_function("cri_uncached", |b| {
            b.iter(|| {
                for l in &cri {
                    black_box(parse_cri(black_box(l), &mut TimeCache::default()).ok());
                }
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
