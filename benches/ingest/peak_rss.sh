# Sourced by the ingest benches. peak_rss TPID: while TPID (a `/usr/bin/time` wrapping the agent)
# runs, sample its child's anonymous and file-backed resident memory every 50 ms and leave the
# peaks in PEAK_ANON and PEAK_FILE (KiB). Peak RSS alone does not say whether memory is the
# agent's own or mapped index files in the page cache. The caller then `wait`s for TPID.
peak_rss() {
    local tpid=$1 rpid="" a f
    PEAK_ANON=0 PEAK_FILE=0
    while kill -0 "$tpid" 2>/dev/null; do
        [ -n "$rpid" ] || rpid=$(pgrep -P "$tpid" | head -n 1 || true)
        if [ -n "$rpid" ] && read -r a f < <(awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print a+0, f+0}' "/proc/$rpid/status" 2>/dev/null); then
            [ "$a" -gt "$PEAK_ANON" ] && PEAK_ANON=$a
            [ "$f" -gt "$PEAK_FILE" ] && PEAK_FILE=$f
        fi
        sleep 0.05
    done
}
