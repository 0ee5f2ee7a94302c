#!/usr/bin/env bash
# Memory benchmark: the agent's resident memory must not grow with the input size or with the
# number of idle files it follows.
#
# 1. Input size: `runnel agent --oneshot` over 256 MiB and over 1 GiB of json-file logs
#    (2 containers, so both runs seal 32 MiB segments): peak RSS, anonymous and file-backed.
# 2. Idle files: a running agent follows N CRI containers that each wrote a few lines and then
#    went quiet (N = 100, 1000, 4000); its RSS once everything is ingested and it sits idle.
#
# Prints a table; exits 1 if the agent's own (anonymous) peak memory for the big input exceeds
# the small one's by more than 16 MiB, or if an idle figure reaches 64 MiB plus 4 KiB per idle
# container. (Both input runs seal segments: the index reads a whole active segment, up to
# index.segment_max_bytes, into memory to seal it, so that part is bounded by config.) File-backed memory (mapped index segments, page cache the
# kernel can drop) is printed beside it.
#
# Environment: RUNNEL_MEM_IDLE="100 1000 4000", RUNNEL_BENCH_KEEP=1, CARGO_TARGET_DIR.
set -euo pipefail

IDLE=${RUNNEL_MEM_IDLE:-"100 1000 4000"}
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=benches/ingest/peak_rss.sh
. "$repo/benches/ingest/peak_rss.sh"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
die() { echo "memory: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is missing"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install -y time)"

work=$(mktemp -d "${TMPDIR:-/tmp}/runnel-mem.XXXXXX")
agent_pid=
cleanup() {
    if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
    if [ "${RUNNEL_BENCH_KEEP:-0}" != 1 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

echo "memory: building release binaries"
(cd "$repo" && cargo build --release -q -p runnel-agent --bin runnel --example gen_docker_logs)
runnel=$target_dir/release/runnel
gen=$target_dir/release/examples/gen_docker_logs

config() { # $1 = dir
    mkdir -p "$1/docker" "$1/pods"
    cat >"$1/runnel.yaml" <<EOF
data_dir: $1/data
inputs:
  docker: { enabled: true, root: $1/docker }
  cri: { enabled: true, root: $1/pods }
http: { listen: "127.0.0.1:0" }
metrics: { enabled: false }
log: { level: warn }
EOF
}

declare -A peak
for mib in 256 1024; do
    d=$work/size-$mib
    config "$d"
    echo "memory: --oneshot over $mib MiB"
    "$gen" "$d/docker" $((mib << 20)) 2 >/dev/null
    /usr/bin/time -v -o "$d/time.out" "$runnel" agent --config "$d/runnel.yaml" --oneshot >/dev/null &
    tpid=$!
    peak_rss "$tpid"
    anon=$PEAK_ANON file=$PEAK_FILE
    wait "$tpid"
    peak[$mib]="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$d/time.out"):$anon:$file"
    rm -rf "$d/docker"
done

declare -A idle idle_fds
for n in $IDLE; do
    d=$work/idle-$n
    config "$d"
    python3 - "$d/pods" "$n" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    c = os.path.join(root, f"ns_pod-{i}_uid-{i}", "app")
    os.makedirs(c)
    with open(os.path.join(c, "0.log"), "w") as f:
        for j in range(5):
            f.write(f"2024-05-01T12:00:0{j}.{i:09d}Z stdout F pod {i} line {j} started and idle\n")
PY
    "$runnel" agent --config "$d/runnel.yaml" >"$d/agent.out" 2>"$d/agent.err" &
    agent_pid=$!
    addr=
    for _ in $(seq 600); do
        addr=$(sed -n 's#^runnel: listening on http://##p' "$d/agent.out")
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || die "agent did not start: $(cat "$d/agent.err")"
    want=$((n * 5))
    for _ in $(seq 1200); do
        got=$(python3 -c "
import sys, urllib.request
t = urllib.request.urlopen('http://$addr/metrics').read().decode()
print(sum(int(float(l.split()[-1])) for l in t.splitlines() if l.startswith('runnel_input_lines_total{')))")
        [ "$got" -ge "$want" ] && break
        sleep 0.1
    done
    [ "$got" -ge "$want" ] || die "only $got of $want lines ingested with $n idle containers"
    sleep 3 # idle: polls and rescans only
    idle[$n]=$(awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status")
    fds=$(find "/proc/$agent_pid/fd" -mindepth 1 | wc -l)
    idle_fds[$n]=$fds
    kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=
done

python3 - "${peak[256]}" "${peak[1024]}" "$IDLE" "$(for n in $IDLE; do echo -n "${idle[$n]}:${idle_fds[$n]} "; done)" <<'PY'
import sys
(small, small_anon, small_file), (big, big_anon, big_file) = (
    [int(v) / 1024 for v in a.split(":")] for a in sys.argv[1:3])
ns = [int(x) for x in sys.argv[3].split()]
idle = [tuple(int(v) for v in x.split(":")) for x in sys.argv[4].split()]
print()
print(f"{'measure':<44}{'RSS':>12}{'anon':>10}{'file':>10}")
print(f"{'--oneshot, 256 MiB input (peak)':<44}{small:>8.1f} MiB{small_anon:>10.1f}{small_file:>10.1f}")
print(f"{'--oneshot, 1 GiB input (peak)':<44}{big:>8.1f} MiB{big_anon:>10.1f}{big_file:>10.1f}")
print("anon = the agent's own memory; file = mapped index segments (page cache); peaks sampled every 50 ms")
# The agent's own memory must not grow with the input.
ok = big_anon - small_anon <= 16
for n, (kib, fds) in zip(ns, idle):
    mib = kib / 1024
    print(f"{f'running, {n} idle containers ({fds} fds)':<44}{mib:>8.1f} MiB   ({kib / n:.1f} KiB per container)")
    ok = ok and mib < 64 + n * 4 / 1024
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
