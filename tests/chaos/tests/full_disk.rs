//! The index's own disk filling up, deterministically (the soak does it at random): on a real
//! tmpfs with no byte left, appends fail and are retried (counted in
//! `runnel_ingest_write_errors_total`), the agent stays up and answers, and once space returns
//! every line written meanwhile is stored once and in order.

use runnel_chaos::agent::Supervisor;
use runnel_chaos::disk::Ballast;
use runnel_chaos::metrics::family_sum;
use runnel_chaos::stop::wait_for;
use std::io::Write;
use std::time::Duration;

fn cri_lines(from: u64, to: u64) -> String {
    (from..to)
        .map(|i| {
            format!(
                "2024-05-01T12:{:02}:{:02}.{:09}Z stdout F line {i:06} {}\n",
                i / 60 % 60,
                i % 60,
                i,
                "y".repeat((i % 40) as usize)
            )
        })
        .collect()
}

/// The deaths the test did not cause, with their log tails.
fn died(sup: &Supervisor) -> Vec<String> {
    sup.lives
        .lock()
        .map(|l| l.unexpected_exits.clone())
        .unwrap_or_default()
}

#[test]
fn a_full_index_disk_stalls_ingest_without_loss_and_it_catches_up_when_space_returns() {
    let runnel = runnel_chaos::binary::runnel_binary().unwrap_or_else(|e| panic!("{e}"));
    // Declared first, dropped last: the agent stops, then the tmpfs goes, then its mount point.
    let mounted = runnel_chaos::disk::mount_on_temp_dir("runnel-full-disk-", 16 << 20)
        .unwrap_or_else(|e| panic!("{e}"));
    let disk = &mounted.disk;
    let dir = tempfile::Builder::new()
        .prefix("runnel-full-disk-")
        .tempdir()
        .unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("pods/ns_pod_uid/app")).unwrap();
    let config = p.join("runnel.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {data}\ninputs:\n  docker: {{ enabled: false }}\n  \
             cri: {{ enabled: true, root: {pods} }}\n  rescan_interval: 1s\n\
             index: {{ max_age: 36500d }}\nhttp: {{ listen: \"127.0.0.1:0\" }}\n\
             log: {{ format: text }}\n",
            data = disk.path().join("data").display(),
            pods = p.join("pods").display(),
        ),
    )
    .unwrap();
    let sup = Supervisor::new(&runnel, &config, &p.join("agent.log"));
    sup.start().unwrap_or_else(|e| panic!("{e}"));
    let metric = |family: &str| {
        sup.get("/metrics")
            .map(|(_, page)| family_sum(&page, family) as u64)
            .unwrap_or(0)
    };
    let live = p.join("pods/ns_pod_uid/app/0.log");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&live)
        .unwrap();
    log.write_all(cri_lines(0, 1000).as_bytes()).unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || metric(
            "runnel_index_records_appended_total"
        ) >= 1000),
        "the first 1000 lines were not stored"
    );

    let ballast = Ballast::fill(&disk.path().join("ballast")).unwrap();
    assert!(disk.free_bytes() < 64 << 10, "the tmpfs is not full");
    log.write_all(cri_lines(1000, 4000).as_bytes()).unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || metric(
            "runnel_ingest_write_errors_total"
        ) >= 2),
        "appends on a full disk never failed (or were not retried)"
    );
    // Still up and answering while the disk is full.
    let (code, _) = sup.get("/v1/sources").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, 200);
    sup.check().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        died(&sup),
        Vec::<String>::new(),
        "the agent died on a full disk"
    );
    assert!(
        metric("runnel_index_records_appended_total") < 4000,
        "every line was stored on a full disk: the test did not fill it"
    );

    ballast.remove();
    log.write_all(cri_lines(4000, 4500).as_bytes()).unwrap();
    assert!(
        wait_for(Duration::from_secs(90), || metric(
            "runnel_index_records_appended_total"
        ) >= 4500),
        "the index did not catch up within 90 s once space returned"
    );
    sup.check().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        died(&sup),
        Vec::<String>::new(),
        "the agent died catching up"
    );
    assert_eq!(
        sup.lives.lock().unwrap().starts,
        1,
        "one life from start to end"
    );
    sup.stop().unwrap();

    let out = std::process::Command::new(&runnel)
        .args(["logs", "--data-dir"])
        .arg(disk.path().join("data/index"))
        .args(["-n", "ns", "pod", "-c", "app"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let want: Vec<String> = cri_lines(0, 4500)
        .lines()
        .map(|l| l.splitn(4, ' ').nth(3).unwrap_or_default().to_string())
        .collect();
    assert_eq!(got.len(), want.len(), "lines lost or stored twice");
    assert!(got == want, "lines out of order or changed");
}
