//! Against a real Docker engine: the collector finds a running container's cgroup in the node's
//! real hierarchy (whatever the engine's cgroup driver and version), names it from Docker's
//! `config.v2.json`, and counts its processes, threads, descriptors and sockets exactly from the
//! real `/proc`; a process started with `docker exec` shows on the next pass.
//!
//! Needs `docker info` to succeed and `/bin/busybox`; see `docker_support` for the skip rule.

mod docker_support;

use docker_support::{build_busybox_image, docker_ok, docker_root_or_fail, unique, Cleanup};
use runnel_agent::metrics::identity::IdentityPaths;
use runnel_agent::metrics::snapshot::ContainerSample;
use runnel_agent::metrics::{Collector, Settings};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn find<'a>(snap: &'a runnel_agent::metrics::Snapshot, id: &str) -> Option<&'a ContainerSample> {
    snap.containers.iter().find(|c| c.cgroup.id == id)
}

#[test]
fn a_real_docker_container_is_found_named_and_counted_exactly() {
    let Some(docker_root) = docker_root_or_fail("per-container metrics of a real Docker container")
    else {
        return;
    };
    let name = unique("runnel-metrics");
    let guard = Cleanup {
        containers: vec![name.clone()],
        image: format!("{name}:busybox"),
    };
    build_busybox_image(&guard.image);
    // sh opens fds 3 and 4, starts `nc` listening (inheriting 0-4, plus its socket) and becomes
    // `sleep`: 2 processes, 2 threads, 1 socket, and 5 + 7 descriptors: nc blocked in accept()
    // holds the number of the connection it waits for, which the kernel's count (the `st_size`
    // of /proc/<pid>/fd) includes and a listing of the directory does not.
    let id = docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        &guard.image,
        "sh",
        "-c",
        "exec 3</dev/null 4</dev/null; nc -l -p 7070 & exec sleep 600",
    ]);
    let mut settings = Settings {
        cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        proc_root: PathBuf::from("/proc"),
        sockets: true,
        socket_budget: Duration::from_secs(5),
        tcp_states: true,
        growth_window: Duration::from_secs(3600),
        identity: IdentityPaths::standard(Some(docker_root), None, Vec::new()),
    };
    settings.identity.container_log_links = None;
    let mut collector = Collector::new(settings, None);

    // Wait for the shell to have started nc and turned into sleep (until then the shell holds
    // descriptors of its own).
    let deadline = Instant::now() + Duration::from_secs(20);
    let snap = loop {
        let snap = collector.pass();
        // nc's socket exists a moment before it listens: both are waited for.
        let settled = |c: &ContainerSample| {
            c.sockets == Some(1)
                && c.processes == Some(2)
                && c.fds == Some(5 + 7)
                && c.tcp.map(|t| t.v4[9] + t.v6[9]) == Some(1)
        };
        if find(&snap, &id).is_some_and(settled) {
            break snap;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} not seen with 2 processes, 12 descriptors and 1 socket; found: {:#?}",
            find(&snap, &id)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let c = find(&snap, &id).unwrap();
    assert!(c.cgroup.path.ends_with(&id) || c.cgroup.path.contains(&format!("docker-{id}")));
    assert_eq!(serde_json::to_value(c.cgroup.runtime).unwrap(), "docker");
    assert_eq!(c.labels.container, name);
    assert_eq!(c.labels.image, guard.image);
    assert_eq!(c.threads, Some(2));
    assert!(c.stats.cpu_usage_ns.is_some_and(|ns| ns > 0), "{c:?}");
    assert!(c.stats.memory_working_set.is_some_and(|b| b > 0), "{c:?}");
    assert_eq!(
        c.tcp.map(|t| t.v4[9] + t.v6[9]),
        Some(1),
        "nc listens on 7070 (v4 or dual-stack v6) in the container's own network namespace"
    );

    docker_ok(&["exec", "-d", &name, "/bin/busybox", "sleep", "300"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let snap = collector.pass();
        let c = find(&snap, &id).unwrap();
        if c.processes == Some(3) {
            assert_eq!(c.threads, Some(3));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "docker exec'd process never seen: {c:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(guard);
    // The runtime removes the cgroup as part of the removal, which may finish a moment after
    // the client returns: waited for with a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    while find(&collector.pass(), &id).is_some() {
        assert!(
            Instant::now() < deadline,
            "a removed container is still in the snapshot after 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
