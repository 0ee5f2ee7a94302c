//! Forward ingest with acks beside the file tailer, on the same records, in the same process.
//!
//! `cargo bench -p runnel-agent --bench forward_ingest [-- RECORDS CONNECTIONS]`: PackedForward
//! chunks of 1000 records (~200 B messages) sent over CONNECTIONS TCP connections, each chunk
//! acknowledged only once durable; then the same records as CRI log files read by the tailer
//! with `--oneshot` semantics. Prints message MiB/s and records/s per CPU-second of the
//! agent's threads (the clients' own CPU, measured per thread, is subtracted) and wall time.

use runnel_agent::ingest::{Writer, WriterSettings};
use runnel_agent::inputs::forward::server::{ForwardServer, ForwardSettings};
use runnel_index::{Limits, Store};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

const PER_CHUNK: usize = 1000;

fn cpu(who: i32) -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn message(i: usize) -> String {
    format!(
        "{i:09} GET /api/v1/orders/{} HTTP/1.1 200 {} \"Mozilla/5.0 (X11; Linux x86_64) runnel-bench\" upstream=10.0.{}.{} rt=0.0{}",
        i * 7919 % 100_000,
        i % 9000 + 100,
        i % 250,
        i % 199,
        i % 97
    )
}

// A minimal msgpack writer for the bench's requests (the tests use independent encoders).
fn str_hdr(out: &mut Vec<u8>, n: usize) {
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n < 256 {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
}

fn chunk_request(first: usize, n: usize, chunk: &str) -> Vec<u8> {
    let mut entries = Vec::new();
    for i in first..first + n {
        entries.push(0x92);
        entries.extend_from_slice(&[0xd7, 0x00]);
        entries.extend_from_slice(&(1_796_119_200u32 + (i / 1000) as u32).to_be_bytes());
        entries.extend_from_slice(&((i % 1000) as u32).to_be_bytes());
        entries.push(0x82);
        str_hdr(&mut entries, 3);
        entries.extend_from_slice(b"log");
        let m = message(i);
        str_hdr(&mut entries, m.len());
        entries.extend_from_slice(m.as_bytes());
        str_hdr(&mut entries, 6);
        entries.extend_from_slice(b"stream");
        str_hdr(&mut entries, 6);
        entries.extend_from_slice(b"stdout");
    }
    let mut out = vec![0x93];
    let tag = b"kube.bench.load-0.app";
    str_hdr(&mut out, tag.len());
    out.extend_from_slice(tag);
    out.push(0xc6);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    out.extend_from_slice(&entries);
    out.push(0x81);
    str_hdr(&mut out, 5);
    out.extend_from_slice(b"chunk");
    str_hdr(&mut out, chunk.len());
    out.extend_from_slice(chunk.as_bytes());
    out
}

fn config(dir: &std::path::Path) -> runnel_config::Config {
    let mut cfg = runnel_config::Config {
        data_dir: dir.join("data"),
        ..Default::default()
    };
    cfg.inputs.docker.enabled = false;
    cfg.inputs.cri.root = dir.join("pods");
    cfg.inputs.forward.listen = "127.0.0.1:0".into();
    cfg
}

fn report(what: &str, records: usize, bytes: usize, cpu_s: f64, wall_s: f64) {
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "{what:<34} {records:>9} records {mib:>8.1} MiB  wall {wall_s:>6.2} s  cpu {cpu_s:>6.2} s  \
         {:>7.1} MiB/s per CPU-s  {:>9.0} records/s per CPU-s  {:>7.1} MiB/s wall",
        mib / cpu_s,
        records as f64 / cpu_s,
        mib / wall_s
    );
}

fn forward_run(records: usize, conns: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let store = Arc::new(Store::open(&cfg.data_dir.join("index"), Limits::default()).unwrap());
    let writer = Writer::start(store.clone(), WriterSettings::from_config(&cfg)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let settings = ForwardSettings::from_config(&cfg).unwrap();
    let server = rt
        .block_on(ForwardServer::start(settings, writer.submitter()))
        .unwrap();
    let addr = server.local_addr;
    let chunks = records / PER_CHUNK;
    // Requests are encoded before timing: only the agent's work is measured.
    let per_conn: Vec<Vec<Vec<u8>>> = (0..conns)
        .map(|c| {
            (c..chunks)
                .step_by(conns)
                .map(|k| chunk_request(k * PER_CHUNK, PER_CHUNK, &format!("bench-{k}")))
                .collect()
        })
        .collect();
    let cpu0 = cpu(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    let clients: Vec<_> = per_conn
        .into_iter()
        .map(|reqs| {
            std::thread::spawn(move || {
                let c0 = cpu(libc::RUSAGE_THREAD);
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                let mut ack = [0u8; 64];
                for r in reqs {
                    s.write_all(&r).unwrap();
                    let n = s.read(&mut ack).unwrap();
                    assert!(n > 0 && ack[..n].windows(3).any(|w| w == b"ack"));
                }
                cpu(libc::RUSAGE_THREAD) - c0
            })
        })
        .collect();
    let client_cpu: f64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let wall = t0.elapsed().as_secs_f64();
    let agent_cpu = cpu(libc::RUSAGE_SELF) - cpu0 - client_cpu;
    let stored: u64 = store.sources().iter().map(|s| s.records).sum();
    assert_eq!(
        stored as usize,
        chunks * PER_CHUNK,
        "every acked record stored"
    );
    rt.block_on(server.shutdown());
    writer.shutdown();
    (agent_cpu, wall)
}

fn tailer_run(records: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let cdir = cfg.inputs.cri.root.join("bench_load-0_uid/app");
    std::fs::create_dir_all(&cdir).unwrap();
    let mut text = String::new();
    for i in 0..records {
        text.push_str(&format!(
            "2026-12-01T10:{:02}:{:02}.{:09}Z stdout F {}\n",
            i / 60_000 % 60,
            i / 1000 % 60,
            i % 1000,
            message(i)
        ));
    }
    std::fs::write(cdir.join("0.log"), text).unwrap();
    let store = Arc::new(Store::open(&cfg.data_dir.join("index"), Limits::default()).unwrap());
    let cpu0 = cpu(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    let ingest = runnel_agent::tail::Ingest::start(&cfg, store.clone()).unwrap();
    ingest.run_until_eof().unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let c = cpu(libc::RUSAGE_SELF) - cpu0;
    let stored: u64 = store.sources().iter().map(|s| s.records).sum();
    assert_eq!(stored as usize, records);
    (c, wall)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let records = args.first().copied().unwrap_or(2_000_000) / PER_CHUNK * PER_CHUNK;
    let conns = args.get(1).copied().unwrap_or(4).max(1);
    let bytes: usize = (0..records).map(|i| message(i).len()).sum();
    println!("forward ingest with acks: {records} records of ~{} B, chunks of {PER_CHUNK}, {conns} connections", bytes / records.max(1));
    let (c, w) = forward_run(records, conns);
    report("forward PackedForward + acks", records, bytes, c, w);
    let (c, w) = tailer_run(records);
    report("file tailer (CRI) --oneshot", records, bytes, c, w);
}
