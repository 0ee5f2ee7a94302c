//! A snapshot as Prometheus text format 0.0.4: cAdvisor's `container_*` families with the labels
//! `namespace`, `pod`, `container`, `id` (the cgroup path, as cAdvisor sets it) and `image`,
//! Runnel's growth gauges, and the collector's own `runnel_metrics_*` health. HELP and TYPE for
//! every family, label values escaped, no sample timestamps.

use super::process::Access;
use super::snapshot::{ContainerSample, Snapshot};
use super::tcp::STATES;
use std::fmt::Write;

/// Escape a label value: backslash, double quote and newline.
pub fn escape_label(value: &str, out: &mut String) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

fn container_labels(c: &ContainerSample, out: &mut String) {
    let l = &c.labels;
    for (i, (k, v)) in [
        ("container", l.container.as_str()),
        ("id", c.cgroup.path.as_str()),
        ("image", l.image.as_str()),
        ("namespace", l.namespace.as_str()),
        ("pod", l.pod.as_str()),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_label(v, out);
        out.push('"');
    }
}

/// One container family: a sample for every container that has the figure.
fn family(
    out: &mut String,
    snap: &Snapshot,
    (name, kind, help): (&str, &str, &str),
    value: impl Fn(&ContainerSample) -> Option<f64>,
) {
    header(out, name, kind, help);
    for c in &snap.containers {
        if let Some(v) = value(c) {
            out.push_str(name);
            out.push('{');
            container_labels(c, out);
            let _ = writeln!(out, "}} {v}");
        }
    }
}

fn tcp_family(out: &mut String, snap: &Snapshot, name: &str, help: &str, v6: bool) {
    header(out, name, "gauge", help);
    for c in &snap.containers {
        let Some(tcp) = &c.tcp else { continue };
        let counts = if v6 { &tcp.v6 } else { &tcp.v4 };
        for (state, n) in STATES.iter().zip(counts) {
            out.push_str(name);
            out.push('{');
            container_labels(c, out);
            let _ = writeln!(out, ",tcp_state=\"{state}\"}} {n}");
        }
    }
}

fn scalar(out: &mut String, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {v}");
}

fn as_f64(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64)
}

/// The whole text of a snapshot.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(1024 + snap.containers.len() * 2048);
    let o = &mut out;
    family(
        o,
        snap,
        (
            "container_threads",
            "gauge",
            "Number of threads running inside the container.",
        ),
        |c| as_f64(c.threads),
    );
    family(
        o,
        snap,
        (
            "container_threads_max",
            "gauge",
            "Maximum number of threads allowed inside the container (0 when unlimited).",
        ),
        |c| as_f64(c.threads_max),
    );
    family(
        o,
        snap,
        (
            "container_file_descriptors",
            "gauge",
            "Number of open file descriptors of the container's processes.",
        ),
        |c| as_f64(c.fds),
    );
    family(
        o,
        snap,
        (
            "container_sockets",
            "gauge",
            "Number of open sockets of the container's processes.",
        ),
        |c| as_f64(c.sockets),
    );
    family(
        o,
        snap,
        (
            "container_processes",
            "gauge",
            "Number of processes running inside the container.",
        ),
        |c| as_f64(c.processes),
    );
    family(
        o,
        snap,
        (
            "container_cpu_usage_seconds_total",
            "counter",
            "Cumulative CPU time consumed, in seconds.",
        ),
        |c| c.stats.cpu_usage_ns.map(|ns| ns as f64 / 1e9),
    );
    family(
        o,
        snap,
        (
            "container_memory_working_set_bytes",
            "gauge",
            "Memory usage minus inactive file cache, in bytes.",
        ),
        |c| as_f64(c.stats.memory_working_set),
    );
    family(
        o,
        snap,
        (
            "container_memory_rss",
            "gauge",
            "Anonymous memory (RSS) of the container, in bytes.",
        ),
        |c| as_f64(c.stats.memory_rss),
    );
    family(
        o,
        snap,
        (
            "container_fs_reads_bytes_total",
            "counter",
            "Cumulative bytes read from block devices.",
        ),
        |c| as_f64(c.stats.io_read_bytes),
    );
    family(
        o,
        snap,
        (
            "container_fs_writes_bytes_total",
            "counter",
            "Cumulative bytes written to block devices.",
        ),
        |c| as_f64(c.stats.io_write_bytes),
    );
    if snap.tcp_states {
        tcp_family(
            o,
            snap,
            "container_network_tcp_usage_total",
            "IPv4 TCP connections by state in the container's network namespace.",
            false,
        );
        tcp_family(
            o,
            snap,
            "container_network_tcp6_usage_total",
            "IPv6 TCP connections by state in the container's network namespace.",
            true,
        );
    }
    let window = snap.growth_window.as_secs();
    for (name, what, get) in [
        (
            "runnel_container_file_descriptors_growth_per_hour",
            "open file descriptors",
            (|c: &ContainerSample| c.growth.fds) as fn(&ContainerSample) -> Option<f64>,
        ),
        (
            "runnel_container_threads_growth_per_hour",
            "threads",
            |c: &ContainerSample| c.growth.threads,
        ),
        (
            "runnel_container_sockets_growth_per_hour",
            "sockets",
            |c: &ContainerSample| c.growth.sockets,
        ),
    ] {
        let help = format!(
            "Growth of the container's {what} per hour (least-squares slope over the last {window} s)."
        );
        family(o, snap, (name, "gauge", &help), get);
    }
    render_collector(o, snap);
    out
}

fn render_collector(o: &mut String, snap: &Snapshot) {
    let (p, t) = (&snap.pass, &snap.totals);
    scalar(
        o,
        "runnel_metrics_passes_total",
        "counter",
        "Collection passes run.",
        t.passes,
    );
    scalar(
        o,
        "runnel_metrics_pass_cpu_seconds_total",
        "counter",
        "CPU seconds spent by all collection passes.",
        t.cpu_seconds,
    );
    scalar(
        o,
        "runnel_metrics_pass_cpu_seconds",
        "gauge",
        "CPU seconds of the last collection pass.",
        p.cpu.as_secs_f64(),
    );
    scalar(
        o,
        "runnel_metrics_pass_duration_seconds",
        "gauge",
        "Wall-clock seconds of the last collection pass.",
        p.wall.as_secs_f64(),
    );
    scalar(
        o,
        "runnel_metrics_socket_cpu_seconds",
        "gauge",
        "CPU seconds the last pass spent counting sockets (bounded by metrics.socket_budget).",
        p.socket_cpu.as_secs_f64(),
    );
    scalar(
        o,
        "runnel_metrics_last_pass_timestamp_seconds",
        "gauge",
        "Unix time the last collection pass ended.",
        p.ended_unix,
    );
    scalar(
        o,
        "runnel_metrics_containers",
        "gauge",
        "Container cgroups found by the last pass.",
        snap.containers.len(),
    );
    scalar(
        o,
        "runnel_metrics_socket_pass_cut_short",
        "gauge",
        "1 when the socket budget ran out in the last pass before every container was counted.",
        u8::from(p.socket_cut_short),
    );
    scalar(
        o,
        "runnel_metrics_socket_pass_cut_short_total",
        "counter",
        "Passes whose socket counting the budget cut short.",
        t.socket_cut_short,
    );
    scalar(
        o,
        "runnel_metrics_sockets_stale_containers",
        "gauge",
        "Containers whose container_sockets value is from an earlier pass.",
        p.sockets_stale,
    );
    scalar(
        o,
        "runnel_metrics_containers_not_visible",
        "gauge",
        "Containers whose processes are outside the agent's pid namespace (hostPID missing).",
        p.not_visible,
    );
    scalar(
        o,
        "runnel_metrics_read_errors_total",
        "counter",
        "cgroup and proc reads that failed for another reason than a process or cgroup ending.",
        t.read_errors,
    );
    scalar(
        o,
        "runnel_metrics_cgroup_hierarchy_found",
        "gauge",
        "1 when the last pass found a cgroup hierarchy under metrics.cgroup_root.",
        u8::from(p.error.is_none()),
    );
    header(
        o,
        "runnel_metrics_access_denied_total",
        "counter",
        "Reads denied for lack of a right, by kind (fd_list: CAP_DAC_READ_SEARCH, fd_readlink \
         and netns: CAP_SYS_PTRACE).",
    );
    for a in Access::ALL {
        let n = t.denied.get(&a).copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "runnel_metrics_access_denied_total{{what=\"{}\"}} {n}",
            a.as_str()
        );
    }
    header(
        o,
        "runnel_metrics_degraded",
        "gauge",
        "1 when the last pass could not read some figures for lack of a right, by kind.",
    );
    for a in Access::ALL {
        let v = u8::from(p.denied.contains(&a));
        let _ = writeln!(o, "runnel_metrics_degraded{{what=\"{}\"}} {v}", a.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        escape_label("a\\b\"c\nd", &mut s);
        assert_eq!(s, "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn an_empty_snapshot_still_has_every_family_header() {
        let text = render(&Snapshot::default());
        for name in [
            "container_threads",
            "container_threads_max",
            "container_file_descriptors",
            "container_sockets",
            "container_processes",
            "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes",
            "container_memory_rss",
            "container_fs_reads_bytes_total",
            "container_fs_writes_bytes_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert!(!text.contains("tcp_usage"));
    }
}
