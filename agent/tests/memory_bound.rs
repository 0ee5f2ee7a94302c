//! The agent's memory is bounded by its configuration, measured on the real binary: a thousand
//! containers each hold a 32 KiB line that never ends (32 MiB in all if nothing bounded it).
//! `runnel agent --oneshot` reads them all, and its peak RSS (the kernel's `ru_maxrss` for the
//! child, whatever the machine's load) is compared with a control run over the same bytes as
//! lines that end: with `inputs.max_pending_bytes` at 1 MiB it peaks at most that (and a little
//! slack) above the control; with the bound raised past 32 MiB it peaks at least half of the
//! 32 MiB above (measured: 32–43 MiB), which shows the measurement sees the held lines.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use support::Node;

const CONTAINERS: usize = 1000;
const FRAGMENTS: usize = 8;
const FRAGMENT_BYTES: usize = 4096;

/// Run `runnel agent --oneshot` on `config`; returns its peak RSS in KiB.
// The child is reaped by `wait4`, which `Child` does not offer (it gives no rusage).
#[allow(clippy::zombie_processes)]
fn oneshot_peak_rss_kib(config: &Path) -> u64 {
    let stderr_path = config.with_file_name("agent.stderr");
    let child = Command::new(support::runnel_bin())
        .args(["agent", "--oneshot", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("starting runnel agent --oneshot");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "runnel agent --oneshot failed (status {status:#x}):\n{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    // Linux reports ru_maxrss in KiB.
    usage.ru_maxrss as u64
}

/// A node of `CONTAINERS` logs of `FRAGMENTS` CRI fragments each: a line that never ends
/// (`P` fragments only) or, for the control, as many lines that end (`F`).
fn node_with_lines(ended: bool, max_pending: &str) -> (Node, std::path::PathBuf) {
    let node = Node::new();
    let tag = if ended { "F" } else { "P" };
    let frag = format!(
        "2024-05-01T12:00:00Z stdout {tag} {}\n",
        "=".repeat(FRAGMENT_BYTES)
    );
    let body = frag.repeat(FRAGMENTS);
    for i in 0..CONTAINERS {
        let log = node.cri_log("ns", &format!("bar-{i}"), "app", 0);
        std::fs::write(log, &body).unwrap();
    }
    let cfg = node.config("");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  rescan_interval: 1s\n",
        &format!(
            "  rescan_interval: 1s\n  max_line_bytes: 64KiB\n  max_pending_bytes: {max_pending}\n"
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    (node, cfg)
}

#[test]
fn a_thousand_unended_lines_keep_the_agent_within_max_pending_bytes() {
    let (_control_node, control) = node_with_lines(true, "1MiB");
    let (_bounded_node, bounded) = node_with_lines(false, "1MiB");
    let (_loose_node, loose) = node_with_lines(false, "64MiB");
    let held_kib = (CONTAINERS * FRAGMENTS * FRAGMENT_BYTES / 1024) as u64;
    let control_kib = oneshot_peak_rss_kib(&control);
    let bounded_kib = oneshot_peak_rss_kib(&bounded);
    let loose_kib = oneshot_peak_rss_kib(&loose);
    eprintln!(
        "peak RSS of runnel agent --oneshot over {CONTAINERS} containers, {} MiB each run: \
         lines that end {control_kib} KiB; one unended line each, max_pending_bytes 1 MiB \
         {bounded_kib} KiB, 64 MiB {loose_kib} KiB",
        held_kib / 1024
    );
    // The 1 MiB bound, one source's lines between two checks (a raw line and two pending
    // lines at max_line_bytes), and allocator slack.
    const SLACK_KIB: u64 = 1024 + 3 * 64 + 3 * 1024;
    assert!(
        bounded_kib <= control_kib + SLACK_KIB,
        "with max_pending_bytes = 1 MiB the peak RSS is {bounded_kib} KiB, more than \
         {SLACK_KIB} KiB above the {control_kib} KiB of the same bytes as ended lines"
    );
    assert!(
        loose_kib >= control_kib + held_kib / 2,
        "with the bound raised past the {held_kib} KiB held, the peak should rise by about \
         that much: {control_kib} → {loose_kib} KiB (is ru_maxrss measuring the agent?)"
    );
}
