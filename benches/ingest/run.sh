#!/usr/bin/env bash
# Ingest benchmark: 1 GiB of Docker json-file logs over 100 containers, ingested by
# `runnel agent --oneshot` pinned to one core (twice: with the production config, and with
# small segments so that compression happens during the run), against `zstd -1 -T1` over the
# same bytes.
#
# Targets: ingest >= 200 MiB/s on one core, peak RSS < 64 MiB.
#
# Environment:
#   RUNNEL_BENCH_BYTES       input size in bytes (default 1073741824)
#   RUNNEL_BENCH_CONTAINERS  containers (default 100)
#   RUNNEL_BENCH_CPU         core to pin to (default 0)
#   RUNNEL_BENCH_KEEP=1      keep the work directory
#   RUNNEL_BENCH_FIRST_TOUCH=0  do not hand each run recycled page-cache pages (see
#                            first_touch.sh: on this kind of virtual machine the first write
#                            into never-used memory costs more than the agent's own work)
#   RUNNEL_BENCH_BASELINE    another `runnel` binary (say, a copy built from the main branch):
#                            its runs on the same input are printed beside, as `<run>/base`
#   CARGO_TARGET_DIR         honoured (default <repo>/target)
set -euo pipefail

BYTES=${RUNNEL_BENCH_BYTES:-1073741824}
CONTAINERS=${RUNNEL_BENCH_CONTAINERS:-100}
CPU=${RUNNEL_BENCH_CPU:-0}
TARGET_MIBS=200
TARGET_RSS_MIB=64

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=benches/ingest/peak_rss.sh
. "$repo/benches/ingest/peak_rss.sh"
# shellcheck source=benches/ingest/first_touch.sh
. "$repo/benches/ingest/first_touch.sh"
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
# Write the generated logs out now: otherwise their writeback lands in the first timed run.
sync
# shellcheck disable=SC1090
. "$work/gen.out" # bytes= lines= entries=
input_bytes=$bytes
app_lines=$lines

mkdir -p "$work/empty-cri"
now() { date +%s.%N; }
field() { awk -F': ' -v k="$1" '$1 ~ k {print $2}' "$2"; }
cpu_of() { python3 -c "print(float('$(field 'User time' "$1")') + float('$(field 'System time' "$1")'))"; }

# One timed `--oneshot` run; $1 = label, $2 = extra YAML, $3 = the binary (default: this
# tree's). Prints one line of figures:
# label wall_s cpu_s peak_rss_kib index_bytes sealed_segments peak_anon_kib peak_file_kib
# first_touch_cpu_s thread_cpu (name=seconds,... from peak_rss).
ingest() {
    local label=$1 extra=$2 bin=${3:-$runnel}
    local d=$work/run-${label//\//-}
    mkdir -p "$d"
    cat >"$d/runnel.yaml" <<EOF
data_dir: $d/data
node_name: bench
inputs:
  docker: { enabled: true, root: $work/containers }
  cri: { enabled: false, root: $work/empty-cri }
http: { listen: "127.0.0.1:0" }
metrics: { enabled: false }
log: { level: warn }
$extra
EOF
    # Warm the page cache with the input (this machine's proactive reclaim may have dropped it):
    # the figure is the agent's CPU, not the disk's.
    cat "$work"/containers/*/* >/dev/null
    # The run writes about the input's size into active segments (and less into sealed ones).
    recycle_pages $((input_bytes + input_bytes / 4)) "$d" "$CPU"
    echo "bench: runnel agent --oneshot on core $CPU ($label)" >&2
    local t0 t1
    t0=$(now)
    taskset -c "$CPU" /usr/bin/time -v -o "$d/time.out" "$bin" agent --config "$d/runnel.yaml" --oneshot \
        >"$d/agent.out" 2>"$d/agent.err" &
    local tpid=$! anon file
    peak_rss "$tpid"
    anon=$PEAK_ANON file=$PEAK_FILE threads=${THREAD_CPU:-none=0}
    wait "$tpid" || {
        cat "$d/agent.err" >&2
        die "runnel agent --oneshot failed"
    }
    t1=$(now)
    grep -q "oneshot done: $app_lines records" "$d/agent.out" \
        || die "$label: $(tail -n 1 "$d/agent.out"); expected $app_lines records"
    echo "$label $(python3 -c "print($t1 - $t0)") $(cpu_of "$d/time.out")" \
        "$(field "Maximum resident set size" "$d/time.out") $(du -sb "$d/data" | cut -f1)" \
        "$(find "$d/data" -name '*.sealed' | wc -l) $anon $file $FIRST_TOUCH_CPU $threads"
    rm -rf "${d:?}/data"
}

# 1. defaults: the production config. 10 MiB per container stays in active segments (sealed
#    later, at 32 MiB or after 10 minutes), so this run does not pay for compression.
# 2. sealed: segments sealed at 2 MiB, so nearly everything is compressed during the run —
#    the figure to hold against zstd.
sealed_yaml="index: { segment_max_bytes: 2MiB }"
runs=()
if [ -n "${RUNNEL_BENCH_BASELINE:-}" ]; then
    [ -x "$RUNNEL_BENCH_BASELINE" ] || die "RUNNEL_BENCH_BASELINE=$RUNNEL_BENCH_BASELINE is not an executable"
    # Interleaved with this tree's runs in the order base, tree, tree, base, so that a change
    # in the machine's load, and the page cache one run leaves to the next, favour neither;
    # the two runs of each are averaged.
    for cfg in defaults sealed; do
        yaml=""
        [ "$cfg" = sealed ] && yaml=$sealed_yaml
        runs+=("$(ingest "$cfg/base" "$yaml" "$RUNNEL_BENCH_BASELINE")")
        runs+=("$(ingest "$cfg" "$yaml")")
        runs+=("$(ingest "$cfg" "$yaml")")
        runs+=("$(ingest "$cfg/base" "$yaml" "$RUNNEL_BENCH_BASELINE")")
    done
else
    runs+=("$(ingest defaults "")")
    runs+=("$(ingest sealed "$sealed_yaml")")
fi

echo "bench: zstd -1 -T1 over the same bytes on core $CPU"
mapfile -t files < <(find "$work/containers" -name '*-json.log*' | sort)
cat "${files[@]}" >/dev/null # warm, as for the agent
recycle_pages "$input_bytes" "$work" "$CPU" # its output lands in recycled pages, as the agent's
z0=$(now)
taskset -c "$CPU" /usr/bin/time -v -o "$work/ztime.out" zstd -q -1 -T1 -c "${files[@]}" >"$work/zstd.out"
z1=$(now)
zcpu_secs=$(python3 -c "print(float('$(field 'User time' "$work/ztime.out")') + float('$(field 'System time' "$work/ztime.out")'))")
zstd_bytes=$(stat -c %s "$work/zstd.out")

python3 - "$input_bytes" "$app_lines" "$z0" "$z1" "$zcpu_secs" "$zstd_bytes" "$TARGET_MIBS" "$TARGET_RSS_MIB" "${runs[@]}" <<'PY'
import sys
inp, lines, z0, z1, zcpu, zbytes, tmibs, trss = sys.argv[1:9]
# Runs of the same label (a baseline comparison runs each twice) are averaged; RSS is the
# largest of them.
merged, splits = {}, {}
for r in sys.argv[9:]:
    label, *v, threads = r.split()
    merged.setdefault(label, []).append(v)
    split = splits.setdefault(label, {})
    for kv in threads.split(","):
        name, secs = kv.rsplit("=", 1)
        split[name] = split.get(name, 0.0) + float(secs)
runs = []
for label, vs in merged.items():
    n = len(vs)
    avg = lambda i: sum(float(v[i]) for v in vs) / n
    top = lambda i: max(int(v[i]) for v in vs)
    runs.append([label, avg(0), avg(1), top(2), int(avg(3)), int(avg(4)), top(5), top(6), avg(7)])
inp, lines, zbytes = int(inp), int(lines), int(zbytes)
mib = inp / 2**20
zsecs, zcpu = float(z1) - float(z0), max(float(zcpu), 1e-3)
tmibs, trss = float(tmibs), float(trss)
print()
print(f"input: {mib:.1f} MiB of json-file logs over the containers, {lines:,} application lines (each run stored all of them)")
print(f"{'run':<15}{'MiB/s/CPU-s':>12}{'CPU-s/GiB':>10}{'x zstd':>7}{'lines/s/CPU-s':>15}{'CPU s':>7}{'wall MiB/s':>11}{'peak RSS':>11}{'(anon':>7}{'+ file)':>8}{'on disk':>10}{'sealed':>7}{'speed':>6}{'RSS':>5}{'1st touch':>10}")
ok = True
first_touch = []
for label, wall, cpu, rss_kib, ibytes, sealed, anon, file, touch in runs:
    wall, cpu, rss = float(wall), max(float(cpu), 1e-3), int(rss_kib) / 1024
    mibs = mib / cpu
    ok_speed, ok_rss = mibs >= tmibs, rss < trss
    ok = ok and (label.endswith('/base') or (ok_speed and ok_rss))
    print(f"{label:<15}{mibs:>12.1f}{cpu * 1024 / mib:>10.2f}{cpu / zcpu:>7.2f}{lines / cpu:>15,.0f}{cpu:>7.2f}{mib / wall:>11.1f}{rss:>7.1f} MiB"
          f"{int(anon) / 1024:>7.1f}{int(file) / 1024:>8.1f}"
          f"{int(ibytes) / 2**20:>6.0f} MiB{int(sealed):>7}{'PASS' if ok_speed else 'FAIL':>6}{'PASS' if ok_rss else 'FAIL':>5}"
          f"{touch * 1024 / (mib * 1.25):>10.2f}")
    first_touch.append(touch)
print(f"{'zstd -1 -T1':<15}{mib / zcpu:>12.1f}{zcpu * 1024 / mib:>10.2f}{1.0:>7.2f}{'':>15}{zcpu:>7.2f}{mib / zsecs:>11.1f}{'':>26}{zbytes / 2**20:>6.0f} MiB")
print(f"targets: >= {tmibs:.0f} MiB/s per CPU-second on one core; peak RSS < {trss:.0f} MiB")
print("CPU-s/GiB = CPU seconds per GiB of input (issue 12's target: <= 2.5); x zstd = CPU against zstd -1 -T1 over the same bytes on this machine")
print("anon = the agent's own memory; file = mapped index segments (clean page cache), sampled every 50 ms")
print("CPU s by thread (sampled from /proc every 50 ms, so a little short of the total):")
for label, split in splits.items():
    n = len(merged[label])
    parts = sorted(split.items(), key=lambda kv: -kv[1])
    print(f"  {label:<15}" + ", ".join(f"{name} {secs / n:.2f}" for name, secs in parts if secs > 0))
if any(first_touch):
    print("1st touch = CPU-s per GiB that writing into never-used page-cache pages cost this machine just before the run (a dd, see "
          "first_touch.sh); each run got recycled pages instead, as on a node whose memory is in use. RUNNEL_BENCH_FIRST_TOUCH=0: runs pay it")
if any(label.endswith("/base") for label, *_ in runs):
    print("/base = RUNNEL_BENCH_BASELINE on the same input; each row is the mean of 2 runs (base, tree, tree, base)")
sys.exit(0 if ok else 1)
PY
