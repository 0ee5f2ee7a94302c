#!/usr/bin/env bash
# Wall time of the whole `runnel logs --data-dir` process on a 1 GiB history with 500 other
# sources, before and after, in one run.
#
#   benches/query/run.sh                 # builds the release binary and the store, then times
#   RUNNEL_BASELINE_BIN=/path/to/old/runnel benches/query/run.sh
#
# The store is generated (once; reused while the sizes stay the same) by the index bench
# `cargo bench -p runnel-index --bench open` into RUNNEL_BENCH_DIR (default /tmp/runnel-query-bench),
# which also prints the in-process figures. "before" is RUNNEL_BASELINE_BIN, a `runnel` built
# from the commit before this change (build one with
# `git worktree add /tmp/base <rev> && cargo build --release -p runnel-agent --manifest-path /tmp/base/Cargo.toml`);
# without it only the new binary is timed. Each figure is the median of RUNS (default 21) runs
# with a warm page cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
export RUNNEL_BENCH_DIR="${RUNNEL_BENCH_DIR:-/tmp/runnel-query-bench}"
RUNS="${RUNS:-21}"
cargo build --release -q -p runnel-agent
# The writer-open part (500 and 5000 sources) is the bench's own business; 500 here.
# SKIP_INDEX_BENCH=1 only times the processes on a store generated before.
if [ -z "${SKIP_INDEX_BENCH:-}" ] || [ ! -f "$RUNNEL_BENCH_DIR/bench-params" ]; then
    RUNNEL_BENCH_OPEN_SOURCES="${RUNNEL_BENCH_OPEN_SOURCES:-500}" cargo bench -q -p runnel-index --bench open
fi
NEW="${CARGO_TARGET_DIR:-$PWD/target}/release/runnel"
BASE="${RUNNEL_BASELINE_BIN:-}"
python3 - "$RUNNEL_BENCH_DIR" "$RUNS" "$NEW" "$BASE" <<'PY'
import datetime, os, resource, statistics, subprocess, sys, time
d, runs, new, base = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lines = open(f"{d}/bench-params").read().split()
end_ns = int(lines[3])
start_ns = 1_700_000_000_000_000_000
def rfc(ns):
    t = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}Z"
mid = start_ns + (end_ns - start_ns) // 2
cases = [
    ("60 s window at the end (active)", ["--since-time", rfc(end_ns - 60 * 10**9), "--until-time", rfc(end_ns + 1)]),
    ("60 s window in the middle (sealed)", ["--since-time", rfc(mid), "--until-time", rfc(mid + 60 * 10**9)]),
    ("--tail 100", ["--tail", "100"]),
]
def run(binary, args):
    """Median wall ms, median CPU ms (user + sys of the child), lines printed."""
    cmd = [binary, "logs", "--data-dir", d, "-n", "bench", "app-0"] + args
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout
    walls, cpus = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - t)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3, out.count(b"\n")
xs, cs = [], []
for _ in range(runs):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter(); subprocess.run([new, "--version"], stdout=subprocess.DEVNULL, check=True); xs.append(time.perf_counter() - t)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cs.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
print(f"\nwhole `runnel logs --data-dir` process, median of {runs} runs, ms (wall, and CPU = user + sys);")
print(f"`runnel --version` alone: {statistics.median(xs)*1e3:.2f} wall, {statistics.median(cs)*1e3:.2f} CPU; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
print(f"{'query':<36} {'lines':>6} {'wall before':>12} {'wall after':>11} {'CPU before':>11} {'CPU after':>10} {'speedup':>8}")
for name, args in cases:
    a, ac, n = run(new, args)
    if base:
        b, bc, m = run(base, args)
        assert m == n, f"{name}: {m} lines before, {n} after"
        print(f"{name:<36} {n:>6} {b:>12.2f} {a:>11.2f} {bc:>11.2f} {ac:>10.2f} {b/a:>7.0f}x")
    else:
        print(f"{name:<36} {n:>6} {'-':>12} {a:>11.2f} {'-':>11} {ac:>10.2f}")
PY
