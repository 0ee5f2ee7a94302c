# Sourced by the ingest and end-to-end benches. recycle_pages BYTES DIR CPU: write BYTES of
# zeros into a new file under DIR (dd pinned to CPU, fdatasync), delete it, and leave the CPU
# seconds the write took in FIRST_TOUCH_CPU.
#
# Why: on a virtual machine whose host takes back the memory a guest has freed (free page
# reporting, ballooning), the first write into a page-cache page that was never used, or was
# handed back, costs a host fault. A 1 GiB write into a new file measured 0.3 CPU-s right after
# another file's pages were freed and 1.9 CPU-s into pages never used, on the same machine;
# that difference, not the agent, decided a run's figure. A node whose memory is in use (its
# page cache full, as it is after a while on any node) recycles pages and does not pay it.
# Writing and deleting a file as large as the run will write, just before the run, hands the
# run recycled pages; the CPU of that write is the first-touch cost this machine charges now,
# printed beside the figures. RUNNEL_BENCH_FIRST_TOUCH=0 skips it (runs then pay whatever
# the machine charges).
recycle_pages() {
    local bytes=$1 dir=$2 cpu=$3 scratch out
    FIRST_TOUCH_CPU=0
    [ "${RUNNEL_BENCH_FIRST_TOUCH:-1}" = 0 ] && return 0
    scratch=$dir/first-touch.scratch
    out=$dir/first-touch.time
    taskset -c "$cpu" /usr/bin/time -f '%U %S' -o "$out" \
        dd if=/dev/zero of="$scratch" bs=1M count=$(((bytes + (1 << 20) - 1) >> 20)) conv=fdatasync status=none
    rm -f "$scratch"
    FIRST_TOUCH_CPU=$(awk '{print $1 + $2}' "$out")
}
