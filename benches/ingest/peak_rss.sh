# Sourced by the ingest benches. peak_rss TPID: while TPID (a `/usr/bin/time` wrapping the agent)
# runs, sample its child's anonymous and file-backed resident memory every 50 ms and leave the
# peaks in PEAK_ANON and PEAK_FILE (KiB). Peak RSS alone does not say whether memory is the
# agent's own or mapped index files in the page cache. The same samples read every thread's
# CPU time (/proc/PID/task/*/stat), left in THREAD_CPU as "name=seconds,..." per thread name,
# largest first: which stage the CPU went to. A thread's last 50 ms before it ends are not
# seen, so the split is a little short of /usr/bin/time's total. The caller then `wait`s.
peak_rss() {
    local tpid=$1 rpid="" a f stat tid rest name utime stime
    local -A ticks=() names=()
    PEAK_ANON=0 PEAK_FILE=0 THREAD_CPU=""
    while kill -0 "$tpid" 2>/dev/null; do
        [ -n "$rpid" ] || rpid=$(pgrep -P "$tpid" | head -n 1 || true)
        if [ -n "$rpid" ] && read -r a f < <(awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print a+0, f+0}' "/proc/$rpid/status" 2>/dev/null); then
            [ "$a" -gt "$PEAK_ANON" ] && PEAK_ANON=$a
            [ "$f" -gt "$PEAK_FILE" ] && PEAK_FILE=$f
            for stat in /proc/"$rpid"/task/*/stat; do
                read -r rest <"$stat" 2>/dev/null || continue
                tid=${rest%% *}
                name=${rest#*(}
                name=${name%)*}
                rest=${rest##*) }
                # Fields after the name: state is the 1st, utime the 12th, stime the 13th.
                read -r _ _ _ _ _ _ _ _ _ _ _ utime stime _ <<<"$rest"
                ticks[$tid]=$((utime + stime))
                names[$tid]=${name// /_}
            done
        fi
        sleep 0.05
    done
    if [ ${#ticks[@]} -gt 0 ]; then
        THREAD_CPU=$(for tid in "${!ticks[@]}"; do echo "${names[$tid]} ${ticks[$tid]}"; done \
            | awk -v hz="$(getconf CLK_TCK)" '{t[$1] += $2} END {for (n in t) printf "%s=%.2f\n", n, t[n] / hz}' \
            | sort -t= -k2 -rn | paste -sd, -)
    fi
}
