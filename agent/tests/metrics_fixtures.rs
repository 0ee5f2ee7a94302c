//! The collector over fixture trees of real node layouts — cgroup v1 and v2 × systemd and
//! cgroupfs drivers × Docker, containerd and CRI-O (see `fixtures/metrics/make_fixtures.py`) —
//! must report exactly the figures in each layout's `expected.json`.

use runnel_agent::metrics::identity::IdentityPaths;
use runnel_agent::metrics::snapshot::ContainerSample;
use runnel_agent::metrics::{Collector, Settings};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LAYOUTS: [&str; 12] = [
    "v1-cgroupfs-docker",
    "v1-cgroupfs-containerd",
    "v1-cgroupfs-crio",
    "v1-systemd-docker",
    "v1-systemd-containerd",
    "v1-systemd-crio",
    "v2-cgroupfs-docker",
    "v2-cgroupfs-containerd",
    "v2-cgroupfs-crio",
    "v2-systemd-docker",
    "v2-systemd-containerd",
    "v2-systemd-crio",
];

fn fixture(layout: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics")
        .join(layout)
}

fn settings(root: &Path) -> Settings {
    Settings {
        cgroup_root: root.join("cgroup"),
        proc_root: root.join("proc"),
        sockets: true,
        socket_budget: Duration::from_secs(10),
        tcp_states: true,
        growth_window: Duration::from_secs(3600),
        identity: IdentityPaths::standard(
            Some(root.join("docker")),
            Some(root.join("log/pods")),
            vec![root.join("run/containerd"), root.join("run/crio")],
        ),
    }
}

fn opt(v: &Value) -> Option<u64> {
    v.as_u64()
}

fn check(layout: &str, got: &ContainerSample, want: &Value) {
    let ctx = format!("{layout} {}", got.cgroup.path);
    let s = |k: &str| want[k].as_str().unwrap_or_default().to_string();
    assert_eq!(got.cgroup.id, s("id"), "{ctx}: id");
    assert_eq!(
        serde_json::to_value(got.cgroup.runtime).unwrap(),
        want["runtime"],
        "{ctx}: runtime"
    );
    assert_eq!(
        got.cgroup.pod_uid.as_deref(),
        want["pod_uid"].as_str(),
        "{ctx}: pod uid"
    );
    assert_eq!(got.labels.namespace, s("namespace"), "{ctx}: namespace");
    assert_eq!(got.labels.pod, s("pod"), "{ctx}: pod");
    assert_eq!(got.labels.container, s("container"), "{ctx}: container");
    assert_eq!(got.labels.image, s("image"), "{ctx}: image");
    let figures = [
        ("processes", got.processes),
        ("threads", got.threads),
        ("threads_max", got.threads_max),
        ("fds", got.fds),
        ("sockets", got.sockets),
        ("cpu_usage_ns", got.stats.cpu_usage_ns),
        ("memory_working_set", got.stats.memory_working_set),
        ("memory_rss", got.stats.memory_rss),
        ("io_read_bytes", got.stats.io_read_bytes),
        ("io_write_bytes", got.stats.io_write_bytes),
    ];
    for (name, value) in figures {
        assert_eq!(value, opt(&want[name]), "{ctx}: {name}");
    }
    match (&got.tcp, want["tcp"].is_null()) {
        (None, true) => {}
        (Some(tcp), false) => {
            let as_vec = |k: &str| -> Vec<u64> {
                want["tcp"][k]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect()
            };
            assert_eq!(tcp.v4.to_vec(), as_vec("v4"), "{ctx}: tcp v4");
            assert_eq!(tcp.v6.to_vec(), as_vec("v6"), "{ctx}: tcp v6");
        }
        (got, _) => panic!("{ctx}: tcp {got:?}, want {}", want["tcp"]),
    }
}

#[test]
fn every_layout_reports_its_expected_figures() {
    for layout in LAYOUTS {
        let root = fixture(layout);
        let expected: Value =
            serde_json::from_slice(&std::fs::read(root.join("expected.json")).unwrap()).unwrap();
        let snap = Collector::new(settings(&root), None).pass();
        assert_eq!(snap.pass.layout, expected["layout"], "{layout}: layout");
        assert_eq!(snap.pass.error, None, "{layout}");
        let want = expected["containers"].as_array().unwrap();
        let got_paths: Vec<&str> = snap
            .containers
            .iter()
            .map(|c| c.cgroup.path.as_str())
            .collect();
        let want_paths: Vec<&str> = want.iter().map(|c| c["cgroup"].as_str().unwrap()).collect();
        assert_eq!(
            got_paths, want_paths,
            "{layout}: containers found (conmon and system cgroups skipped)"
        );
        for (got, want) in snap.containers.iter().zip(want) {
            check(layout, got, want);
        }
        assert_eq!(
            snap.pass.not_visible,
            expected["not_visible"].as_u64().unwrap(),
            "{layout}: containers outside the pid namespace"
        );
        assert_eq!(snap.totals.read_errors, 0, "{layout}: read errors");
        assert!(!snap.pass.socket_cut_short, "{layout}");
    }
}

#[test]
fn a_tiny_socket_budget_rotates_through_containers_and_keeps_stale_counts() {
    let root = fixture("v1-systemd-containerd");
    let mut s = settings(&root);
    s.socket_budget = Duration::ZERO;
    let mut c = Collector::new(s, None);
    // A zero budget still counts one container per pass, starting where the last pass stopped.
    let first = c.pass();
    assert!(first.pass.socket_cut_short);
    let fresh: Vec<bool> = first.containers.iter().map(|c| c.sockets_fresh).collect();
    assert_eq!(fresh, [true, false, false]);
    assert_eq!(first.containers[1].sockets, None, "never counted yet");
    let second = c.pass();
    let fresh: Vec<bool> = second.containers.iter().map(|c| c.sockets_fresh).collect();
    assert_eq!(fresh, [false, true, false]);
    assert_eq!(
        second.containers[0].sockets, first.containers[0].sockets,
        "stale but kept"
    );
    assert_eq!(second.pass.sockets_stale, 1);
    let third = c.pass();
    assert!(third.containers[2].sockets_fresh);
    assert_eq!(third.totals.socket_cut_short, 3);
    assert!(third
        .text
        .contains("runnel_metrics_socket_pass_cut_short_total 3\n"));
    assert!(third
        .text
        .contains("runnel_metrics_sockets_stale_containers 2\n"));
}

#[test]
fn sockets_off_means_no_readlink_and_no_socket_samples() {
    let root = fixture("v2-systemd-docker");
    let mut s = settings(&root);
    s.sockets = false;
    let snap = Collector::new(s, None).pass();
    assert!(snap.containers.iter().all(|c| c.sockets.is_none()));
    assert!(!snap.text.contains("\ncontainer_sockets{"));
    assert!(snap.text.contains("\ncontainer_file_descriptors{"));
}

#[test]
fn a_missing_cgroup_root_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.cgroup_root = dir.path().join("not-mounted");
    let snap = Collector::new(s, None).pass();
    assert!(snap.containers.is_empty());
    let err = snap.pass.error.unwrap();
    assert!(err.contains("no cgroup hierarchy found"), "{err}");
    assert!(snap
        .text
        .contains("runnel_metrics_cgroup_hierarchy_found 0\n"));
}
