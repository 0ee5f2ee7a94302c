#!/usr/bin/env bash
# Ingest benchmark: 1 GiB of Docker json-file logs over 100 containers, ingested by
# `runnel agent --oneshot` pinned to one core, against `zstd -1 -T1` over the same bytes.
#
# Targets: ingest >= 200 MiB/s on one core, peak RSS < 64 MiB.
#
# Environment:
#   RUNNEL_BENCH_BYTES       input size in bytes (default 1073741824)
#   RUNNEL_BENCH_CONTAINERS  containers (default 100)
#   RUNNEL_BENCH_CPU         core to pin to (default 0)
#   RUNNEL_BENCH_KEEP=1      keep the work directory
#   CARGO_TARGET_DIR         honoured (default <repo>/target)
set -euo pipefail

BYTES=${RUNNEL_BENCH_BYTES:-1073741824}
CONTAINERS=${RUNNEL_BENCH_CONTAINERS:-100}
CPU=${RUNNEL_BENCH_CPU:-0}
TARGET_MIBS=200
TARGET_RSS_MIB=64

repo=$(cd "$(dirname "$0")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}

die() { echo "bench: $*" >&2; exit 1; }
for tool in taskset zstd python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y util-linux zstd python3)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install -y time)"

work=$(mktemp -d "${TMPDIR:-/tmp}/runnel-bench.XXXXXX")
if [ "${RUNNEL_BENCH_KEEP:-0}" != 1 ]; then trap 'rm -rf "$work"' EXIT; fi

echo "bench: building release binaries"
(cd "$repo" && cargo build --release -q -p runnel-agent --bin runnel --example gen_docker_logs)
runnel=$target_dir/release/runnel
gen=$target_dir/release/examples/gen_docker_logs

echo "bench: generating $BYTES bytes over $CONTAINERS containers in $work"
"$gen" "$work/containers" "$BYTES" "$CONTAINERS" >"$work/gen.out"
# shellcheck disable=SC1090
. "$work/gen.out" # bytes= lines= entries=
input_bytes=$bytes
app_lines=$lines

mkdir -p "$work/empty-cri"
cat >"$work/runnel.yaml" <<EOF
data_dir: $work/data
node_name: bench
inputs:
  docker: { enabled: true, root: $work/containers }
  cri: { enabled: false, root: $work/empty-cri }
http: { listen: "127.0.0.1:0" }
metrics: { enabled: false }
log: { level: warn }
EOF

now() { date +%s.%N; }

echo "bench: runnel agent --oneshot on core $CPU"
t0=$(now)
taskset -c "$CPU" /usr/bin/time -v -o "$work/time.out" "$runnel" agent --config "$work/runnel.yaml" --oneshot \
    >"$work/agent.out" 2>"$work/agent.err" || {
    cat "$work/agent.err" >&2
    die "runnel agent --oneshot failed"
}
t1=$(now)
field() { awk -F': ' -v k="$1" '$1 ~ k {print $2}' "$2"; }
rss_kib=$(field "Maximum resident set size" "$work/time.out")
cpu_secs=$(python3 -c "print(float('$(field 'User time' "$work/time.out")') + float('$(field 'System time' "$work/time.out")'))")
index_bytes=$(du -sb "$work/data" | cut -f1)
agent_out=$(tail -n 1 "$work/agent.out")

echo "bench: zstd -1 -T1 over the same bytes on core $CPU"
mapfile -t files < <(find "$work/containers" -name '*-json.log*' | sort)
z0=$(now)
taskset -c "$CPU" /usr/bin/time -v -o "$work/ztime.out" zstd -q -1 -T1 -c "${files[@]}" >"$work/zstd.out"
z1=$(now)
zcpu_secs=$(python3 -c "print(float('$(field 'User time' "$work/ztime.out")') + float('$(field 'System time' "$work/ztime.out")'))")
zstd_bytes=$(stat -c %s "$work/zstd.out")

python3 - "$input_bytes" "$app_lines" "$t0" "$t1" "$cpu_secs" "$rss_kib" "$z0" "$z1" "$zcpu_secs" "$zstd_bytes" \
    "$index_bytes" "$TARGET_MIBS" "$TARGET_RSS_MIB" "$agent_out" <<'PY'
import sys
(inp, lines, t0, t1, cpu, rss_kib, z0, z1, zcpu, zbytes, ibytes, tmibs, trss, agent_out) = sys.argv[1:]
inp, lines, rss_kib, zbytes, ibytes = int(inp), int(lines), int(rss_kib), int(zbytes), int(ibytes)
secs, zsecs = float(t1) - float(t0), float(z1) - float(z0)
cpu, zcpu = max(float(cpu), 1e-3), max(float(zcpu), 1e-3)
mib = inp / 2**20
# Throughput per CPU-second (user+sys, all threads pinned to one core) is the figure judged:
# on a shared machine the wall clock also counts time the core was lent to other processes.
mibs, zmibs, rss = mib / cpu, mib / zcpu, rss_kib / 1024
ok_speed, ok_rss = mibs >= float(tmibs), rss < float(trss)
print()
print(f"input: {mib:.1f} MiB, {lines} lines; agent said: {agent_out}")
print(f"{'measure':<30}{'value':>18}{'target':>14}{'result':>8}")
print(f"{'runnel ingest per CPU-second':<30}{mibs:>12.1f} MiB/s{'>= ' + tmibs:>14}{'PASS' if ok_speed else 'FAIL':>8}")
print(f"{'runnel lines per CPU-second':<30}{lines / cpu:>18,.0f}")
print(f"{'runnel CPU time (user+sys)':<30}{cpu:>16.2f} s")
print(f"{'runnel wall time':<30}{secs:>16.2f} s   ({mib / secs:.1f} MiB/s, {lines / secs:,.0f} lines/s wall)")
print(f"{'runnel peak RSS':<30}{rss:>14.1f} MiB{'< ' + trss + ' MiB':>14}{'PASS' if ok_rss else 'FAIL':>8}")
print(f"{'index on disk':<30}{ibytes / 2**20:>14.1f} MiB   ({inp / max(ibytes, 1):.1f}x smaller than input)")
print(f"{'zstd -1 -T1 per CPU-second':<30}{zmibs:>12.1f} MiB/s   (wall {mib / zsecs:.1f} MiB/s, {inp / max(zbytes, 1):.1f}x)")
print(f"{'runnel / zstd (CPU)':<30}{mibs / zmibs:>18.2f}")
sys.exit(0 if ok_speed and ok_rss else 1)
PY
