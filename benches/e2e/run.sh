#!/usr/bin/env bash
# End-to-end benchmark: Docker json-file logs → `runnel agent --oneshot` (tail → index →
# Elasticsearch sink) → a fast local bulk endpoint, with compression none and gzip. The agent
# is pinned to one core, the endpoint (examples/bulk_server of runnel-sinks) to another.
#
# Prints, per run: the agent's CPU seconds (user + sys, all threads) per GiB of messages
# shipped and per GiB of input, docs/s (wall and per CPU-second), peak RSS. Checks that the
# endpoint acknowledged exactly one document per application line written.
#
# Environment:
#   RUNNEL_BENCH_BYTES       input size in bytes (default 268435456: 256 MiB)
#   RUNNEL_BENCH_CONTAINERS  containers (default 100)
#   RUNNEL_BENCH_CPU         core the agent is pinned to (default 0)
#   RUNNEL_BENCH_SERVER_CPU  core the endpoint is pinned to (default 1; unpinned on one core)
#   RUNNEL_BENCH_KEEP=1      keep the work directory
#   RUNNEL_BENCH_BASELINE    another `runnel` binary (say, a copy built from the main branch):
#                            it runs on the same input, alternately with this tree's, and its
#                            rows are printed beside, as `<compression>/base`
#   RUNNEL_BENCH_FIRST_TOUCH=0  do not hand each run recycled page-cache pages (see
#                            benches/ingest/first_touch.sh)
#   RUNNEL_BENCH_SINK_YAML   extra lines of YAML under sinks.elasticsearch, say
#                            "max_in_flight_bytes: 8MiB"
#   CARGO_TARGET_DIR         honoured (default <repo>/target)
set -euo pipefail

BYTES=${RUNNEL_BENCH_BYTES:-268435456}
CONTAINERS=${RUNNEL_BENCH_CONTAINERS:-100}
CPU=${RUNNEL_BENCH_CPU:-0}
SERVER_CPU=${RUNNEL_BENCH_SERVER_CPU:-1}

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=benches/ingest/peak_rss.sh
. "$repo/benches/ingest/peak_rss.sh"
# shellcheck source=benches/ingest/first_touch.sh
. "$repo/benches/ingest/first_touch.sh"
target_dir=${CARGO_TARGET_DIR:-$repo/target}

die() { echo "bench: $*" >&2; exit 1; }
for tool in taskset python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y util-linux python3)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install -y time)"
if [ -n "${RUNNEL_BENCH_BASELINE:-}" ]; then
    [ -x "$RUNNEL_BENCH_BASELINE" ] || die "RUNNEL_BENCH_BASELINE=$RUNNEL_BENCH_BASELINE is not an executable"
fi
server_pin=(taskset -c "$SERVER_CPU")
[ "$(nproc)" -gt 1 ] || server_pin=()

work=$(mktemp -d "${TMPDIR:-/tmp}/runnel-e2e.XXXXXX")
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    if [ "${RUNNEL_BENCH_KEEP:-0}" != 1 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

echo "bench: building release binaries"
(cd "$repo" && cargo build --release -q -p runnel-agent --bin runnel --example gen_docker_logs)
(cd "$repo" && cargo build --release -q -p runnel-sinks --example bulk_server)
runnel=$target_dir/release/runnel
gen=$target_dir/release/examples/gen_docker_logs
server=$target_dir/release/examples/bulk_server

echo "bench: generating $BYTES bytes over $CONTAINERS containers in $work"
"$gen" "$work/containers" "$BYTES" "$CONTAINERS" >"$work/gen.out"
sync # the generated logs' writeback must not land in the first timed run
# shellcheck disable=SC1090
. "$work/gen.out" # bytes= lines= entries=
input_bytes=$bytes
app_lines=$lines

mkdir -p "$work/empty-cri"
now() { date +%s.%N; }
field() { awk -F': ' -v k="$1" '$1 ~ k {print $2}' "$2"; }

# Start the endpoint; sets server_pid and server_url.
start_server() {
    local out=$1 deadline
    "${server_pin[@]}" "$server" >"$out" 2>"$out.err" &
    server_pid=$!
    deadline=$(($(date +%s) + 10))
    until [ -s "$out" ]; do
        kill -0 "$server_pid" 2>/dev/null || die "bulk_server exited: $(cat "$out.err")"
        [ "$(date +%s)" -lt "$deadline" ] || die "bulk_server printed no address in 10 s"
        sleep 0.05
    done
    server_url=$(head -n 1 "$out")
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# One timed `--oneshot` run to a fresh endpoint; $1 = label, $2 = compression (none | gzip),
# $3 = the binary (default: this tree's). Prints one line of figures:
# label wall_s user_s sys_s peak_rss_kib peak_anon_kib peak_file_kib items message_bytes requests
# first_touch_cpu_s thread_cpu (name=seconds,... from peak_rss)
e2e() {
    local label=$1 compression=$2 bin=${3:-$runnel}
    local d=$work/run-${label//\//-}
    rm -rf "$d"
    mkdir -p "$d"
    start_server "$d/server.out"
    cat >"$d/runnel.yaml" <<YAML
data_dir: $d/data
node_name: bench
inputs:
  docker: { enabled: true, root: $work/containers }
  cri: { enabled: false, root: $work/empty-cri }
http: { listen: "127.0.0.1:0" }
metrics: { enabled: false }
log: { level: warn }
sinks:
  elasticsearch:
    enabled: true
    endpoints: ["$server_url"]
    index: "bench-%Y.%m.%d"
    compression: $compression
    template: { install: false }
YAML
    if [ -n "${RUNNEL_BENCH_SINK_YAML:-}" ]; then
        printf '%s\n' "$RUNNEL_BENCH_SINK_YAML" | sed 's/^/    /' >>"$d/runnel.yaml"
    fi
    # Warm the page cache with the input: the figure is the agent's CPU, not the disk's.
    cat "$work"/containers/*/* >/dev/null
    # The index gets about the input's size in active segments.
    recycle_pages $((input_bytes + input_bytes / 4)) "$d" "$CPU"
    echo "bench: runnel agent --oneshot on core $CPU → $server_url ($label)" >&2
    local t0 t1 tpid anon file
    t0=$(now)
    taskset -c "$CPU" /usr/bin/time -v -o "$d/time.out" "$bin" agent --config "$d/runnel.yaml" --oneshot \
        >"$d/agent.out" 2>"$d/agent.err" &
    tpid=$!
    peak_rss "$tpid"
    anon=$PEAK_ANON file=$PEAK_FILE
    wait "$tpid" || {
        cat "$d/agent.err" >&2
        die "$label: runnel agent --oneshot failed"
    }
    t1=$(now)
    grep -q "oneshot done: $app_lines records" "$d/agent.out" \
        || die "$label: $(tail -n 1 "$d/agent.out"); expected $app_lines records"
    local stats
    stats=$(python3 -c '
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1] + "/_bench/stats", timeout=10))
print(s["items"], s["message_bytes"], s["requests"])' "$server_url")
    stop_server
    local items=${stats%% *}
    [ "$items" = "$app_lines" ] || die "$label: the endpoint acknowledged $items documents; $app_lines lines were written"
    echo "$label $(python3 -c "print($t1 - $t0)") $(field 'User time' "$d/time.out") $(field 'System time' "$d/time.out")" \
        "$(field "Maximum resident set size" "$d/time.out") $anon $file $stats $FIRST_TOUCH_CPU ${THREAD_CPU:-none=0}"
    rm -rf "${d:?}/data"
}

runs=()
for compression in none gzip; do
    if [ -n "${RUNNEL_BENCH_BASELINE:-}" ]; then
        # base, tree, tree, base: a change in the machine's load, and the page cache one run
        # leaves to the next, favour neither; the two runs of each are averaged.
        runs+=("$(e2e "$compression/base" "$compression" "$RUNNEL_BENCH_BASELINE")")
        runs+=("$(e2e "$compression" "$compression")")
        runs+=("$(e2e "$compression" "$compression")")
        runs+=("$(e2e "$compression/base" "$compression" "$RUNNEL_BENCH_BASELINE")")
    else
        runs+=("$(e2e "$compression" "$compression")")
    fi
done

python3 - "$input_bytes" "$app_lines" "${runs[@]}" <<'PY'
import sys
inp, lines = int(sys.argv[1]), int(sys.argv[2])
merged, splits = {}, {}
for r in sys.argv[3:]:
    label, *v, threads = r.split()
    merged.setdefault(label, []).append([float(x) for x in v])
    split = splits.setdefault(label, {})
    for kv in threads.split(","):
        name, secs = kv.rsplit("=", 1)
        split[name] = split.get(name, 0.0) + float(secs)
print()
print(f"input: {inp / 2**20:.1f} MiB of json-file logs, {lines:,} application lines; "
      f"every run's endpoint acknowledged all of them")
print(f"{'run':<11}{'CPU-s/GiB msg':>14}{'CPU-s/GiB in':>13}{'CPU s':>7}{'(user':>7}{'+ sys)':>7}"
      f"{'docs/s':>10}{'docs/CPU-s':>11}{'wall s':>8}{'peak RSS':>12}{'(anon':>7}{'+ file)':>8}{'msg MiB':>9}{'requests':>9}{'1st touch':>10}  CPU s of each run")
for label, vs in merged.items():
    n = len(vs)
    avg = lambda i: sum(v[i] for v in vs) / n
    top = lambda i: max(v[i] for v in vs)
    wall, user, sys_, rss, anon, file = avg(0), avg(1), avg(2), top(3), top(4), top(5)
    items, msg, reqs, touch = avg(6), avg(7), avg(8), avg(9)
    cpu = max(user + sys_, 1e-3)
    print(f"{label:<11}{cpu / (msg / 2**30):>14.2f}{cpu / (inp / 2**30):>13.2f}{cpu:>7.2f}{user:>7.2f}{sys_:>7.2f}"
          f"{items / wall:>10,.0f}{items / cpu:>11,.0f}{wall:>8.2f}{rss / 1024:>8.1f} MiB{anon / 1024:>7.1f}{file / 1024:>8.1f}"
          f"{msg / 2**20:>9.1f}{reqs:>9.0f}{touch / (inp * 1.25 / 2**30):>10.2f}  {' '.join(f'{v[1] + v[2]:.2f}' for v in vs)}")
print("CPU = user + sys of all the agent's threads (tail, index, sink), pinned to one core; "
      "GiB msg = the documents' message bytes as the endpoint decoded them")
print("peak RSS from /usr/bin/time; anon = the agent's own memory, file = mapped index segments, sampled every 50 ms")
print("CPU s by thread (sampled from /proc every 50 ms, so a little short of the total; per GiB of messages in brackets):")
for label, split in splits.items():
    n, msg = len(merged[label]), sum(v[7] for v in merged[label]) / len(merged[label])
    parts = sorted(split.items(), key=lambda kv: -kv[1])
    print(f"  {label:<11}" + ", ".join(f"{name} {secs / n:.2f} ({secs / n / (msg / 2**30):.2f})" for name, secs in parts if secs > 0))
if any(v[9] for vs in merged.values() for v in vs):
    print("1st touch = CPU-s per GiB that writing into never-used page-cache pages cost this machine just before the run "
          "(benches/ingest/first_touch.sh); each run got recycled pages instead. RUNNEL_BENCH_FIRST_TOUCH=0: runs pay it")
if any(label.endswith("/base") for label in merged):
    print("/base = RUNNEL_BENCH_BASELINE on the same input; each row is the mean of 2 runs (base, tree, tree, base)")
PY
