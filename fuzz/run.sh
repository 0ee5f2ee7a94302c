#!/usr/bin/env bash
# Run one fuzz target for a while:  fuzz/run.sh TARGET [DURATION] [libFuzzer flags...]
#   DURATION: seconds, or with a unit: 90s, 10m, 1h (default 60s).
# The committed seeds (fuzz/seeds/TARGET) start the corpus; what libFuzzer finds is kept in
# fuzz/corpus/TARGET (not committed) and a crashing input in fuzz/artifacts/TARGET/. Exits
# non-zero on a crash, a leak, a timeout (10 s for one input) or an input using more than 2 GiB.
# Reproduce a crash:  fuzz/run.sh TARGET 0 fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")"
source ./toolchain.sh

target=${1:?usage: fuzz/run.sh TARGET [DURATION] [libFuzzer flags...]; targets: $(ls fuzz_targets | sed 's/\.rs$//' | tr '\n' ' ')}
duration=${2:-60}
shift $(( $# < 2 ? $# : 2 ))
case "$duration" in
  *h) secs=$(( ${duration%h} * 3600 )) ;;
  *m) secs=$(( ${duration%m} * 60 )) ;;
  *s) secs=${duration%s} ;;
  *) secs=$duration ;;
esac

mkdir -p "corpus/$target"
if [ "$secs" = 0 ] && [ $# -gt 0 ]; then
  # Replay the given inputs once (a crash artifact, or a corpus file).
  exec cargo "${FUZZ_TOOLCHAIN[@]}" fuzz run "${FUZZ_BUILD_FLAGS[@]}" "$target" "$@"
fi
# A decoder must refuse a declared length it has not got, not allocate it.
extra=()
[ "$target" = forward_decode ] && extra+=(-malloc_limit_mb=256)
exec cargo "${FUZZ_TOOLCHAIN[@]}" fuzz run "${FUZZ_BUILD_FLAGS[@]}" "$target" \
  "corpus/$target" "seeds/$target" -- \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 ${extra[@]+"${extra[@]}"} "$@"
