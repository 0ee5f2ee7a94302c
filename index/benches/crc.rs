//! Frame CRC: `runnel_index::crc::crc32c` (three lanes) against the `crc32c` crate on the same
//! buffers, at frame sizes (a json-file line's frame is 100–600 bytes). Criterion prints GiB/s.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    for len in [64usize, 150, 300, 600, 1200, 4096] {
        let data: Vec<u8> = (0..len * 64).map(|i| (i * 131 % 251) as u8).collect();
        let mut g = c.benchmark_group(format!("crc32c_{len}B"));
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function("lanes", |b| {
            b.iter(|| {
                for f in data.chunks(len) {
                    black_box(runnel_index::crc::crc32c(black_box(f)));
                }
            })
        });
        g.bench_function("crc32c_crate", |b| {
            b.iter(|| {
                for f in data.chunks(len) {
                    black_box(crc32c::crc32c(black_box(f)));
                }
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
