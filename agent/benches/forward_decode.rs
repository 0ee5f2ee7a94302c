//! Forward codec throughput on one PackedForward request of 1000 Fluent Bit-like records
//! (~200 bytes each): framing alone, decode + reading each record's fields as the server
//! does, the same with compact JSON, and a gzip request; beside a memchr newline count over
//! the same bytes (the cost of touching them once). Criterion prints MiB/s (the `bytes`
//! group) and records/s (the `records` group).

use std::io::Write;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use runnel_agent::inputs::forward::codec::{decode, frame_len, Limits, Request};

const RECORDS: usize = 1000;

fn str_(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() < 32 {
        out.push(0xa0 | s.len() as u8);
    } else {
        out.extend_from_slice(&[0xd9, s.len() as u8]);
    }
    out.extend_from_slice(s);
}

/// `[EventTime, {"log": ..., "stream": "stdout", "time": ...}]`, about 200 bytes.
fn entry(i: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x92, 0xd7, 0x00]);
    out.extend_from_slice(&(1_700_000_000 + i as u32).to_be_bytes());
    out.extend_from_slice(&((i * 7919 % 1_000_000_000) as u32).to_be_bytes());
    out.push(0x83);
    str_(out, b"log");
    let msg = format!(
        "GET /api/v1/items/{i} status=200 user=\"u{}\" took={}ms path=/a/b/c q={}\n",
        i % 97,
        i % 1000,
        "x".repeat(60 + i % 40)
    );
    str_(out, msg.as_bytes());
    str_(out, b"stream");
    str_(out, b"stdout");
    str_(out, b"time");
    str_(
        out,
        format!("2024-05-01T12:00:{:02}.{:09}Z", i % 60, i).as_bytes(),
    );
}

fn request(payload: &[u8], compressed: bool) -> Vec<u8> {
    let mut out = vec![0x93];
    str_(&mut out, b"kube.shop.web-0.side");
    out.push(0xc6);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(if compressed { 0x82 } else { 0x81 });
    str_(&mut out, b"chunk");
    str_(&mut out, b"p8n9gmxTQVC8/nh2wlKKeQ==");
    if compressed {
        str_(&mut out, b"compressed");
        str_(&mut out, b"gzip");
    }
    out
}

/// What the server does per record: time, message, stream; the sum keeps it from being
/// optimised away.
fn consume(frame: &[u8], scratch: &mut Vec<u8>) -> usize {
    let limits = Limits::default();
    let Ok(Request::Events(ev)) = decode(frame, &limits, scratch) else {
        panic!("bench request refused");
    };
    let mut n = 0usize;
    for e in ev.iter() {
        n = n.wrapping_add(e.time_ns as usize);
        n += e.record.get_str(b"log").map_or(0, <[u8]>::len);
        n += e.record.get_str(b"stream").map_or(0, <[u8]>::len);
    }
    n
}

/// CPU time of this thread, in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Runs `f` for about two CPU-seconds and prints MiB and records per CPU-second.
fn per_cpu_second(name: &str, bytes: usize, mut f: impl FnMut() -> usize) {
    let start = thread_cpu_seconds();
    let mut rounds = 0u64;
    let mut sink = 0usize;
    while thread_cpu_seconds() - start < 2.0 {
        for _ in 0..16 {
            sink = sink.wrapping_add(black_box(f()));
        }
        rounds += 16;
    }
    let cpu = thread_cpu_seconds() - start;
    println!(
        "{name:<32} {:>9.1} MiB per CPU-second {:>12.0} records per CPU-second (check {})",
        (bytes as f64 * rounds as f64) / cpu / (1 << 20) as f64,
        (RECORDS as f64 * rounds as f64) / cpu,
        sink % 10
    );
}

fn bench(c: &mut Criterion) {
    let mut payload = Vec::new();
    for i in 0..RECORDS {
        entry(i, &mut payload);
    }
    let plain = request(&payload, false);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&payload).expect("gzip to Vec");
    let gzip = request(&gz.finish().expect("gzip finish"), true);
    println!(
        "PackedForward: {RECORDS} records, {} bytes ({} per record); gzip frame {} bytes",
        plain.len(),
        plain.len() / RECORDS,
        gzip.len()
    );

    let mut scratch = Vec::new();
    per_cpu_second("memchr_newlines_baseline", plain.len(), || {
        memchr::memchr_iter(b'\n', black_box(&plain)).count()
    });
    per_cpu_second("frame_len", plain.len(), || {
        frame_len(black_box(&plain), 16 << 20).map_or(0, |n| n.unwrap_or(0))
    });
    per_cpu_second("decode_and_read_fields", plain.len(), || {
        consume(black_box(&plain), &mut scratch)
    });
    let mut json = Vec::new();
    per_cpu_second("decode_and_compact_json", plain.len(), || {
        let Ok(Request::Events(ev)) = decode(black_box(&plain), &Limits::default(), &mut scratch)
        else {
            panic!("bench request refused");
        };
        json.clear();
        for e in ev.iter() {
            e.record.write_compact_json(&mut json);
        }
        json.len()
    });
    per_cpu_second("gzip_decode_and_read_fields", plain.len(), || {
        consume(black_box(&gzip), &mut scratch)
    });

    for (name, tp) in [
        ("bytes", Throughput::Bytes(plain.len() as u64)),
        ("records", Throughput::Elements(RECORDS as u64)),
    ] {
        let mut g = c.benchmark_group(format!("forward_decode_{name}"));
        g.throughput(tp);
        g.sample_size(30);
        g.measurement_time(std::time::Duration::from_secs(3));
        g.bench_function("memchr_newlines_baseline", |b| {
            b.iter(|| memchr::memchr_iter(b'\n', black_box(&plain)).count())
        });
        g.bench_function("frame_len", |b| {
            b.iter(|| frame_len(black_box(&plain), 16 << 20))
        });
        let mut scratch = Vec::new();
        g.bench_function("decode_and_read_fields", |b| {
            b.iter(|| consume(black_box(&plain), &mut scratch))
        });
        let mut json = Vec::new();
        g.bench_function("decode_and_compact_json", |b| {
            b.iter(|| {
                let Ok(Request::Events(ev)) =
                    decode(black_box(&plain), &Limits::default(), &mut scratch)
                else {
                    panic!("bench request refused");
                };
                json.clear();
                for e in ev.iter() {
                    e.record.write_compact_json(&mut json);
                }
                json.len()
            })
        });
        // Throughput counted on the uncompressed bytes, as the records are what is stored.
        g.bench_function("gzip_decode_and_read_fields", |b| {
            b.iter(|| consume(black_box(&gzip), &mut scratch))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
