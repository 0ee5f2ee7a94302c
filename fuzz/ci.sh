#!/usr/bin/env bash
# CI: build every fuzz target and run each for a short bounded time (default 20 s; set
# FUZZ_SECONDS), failing on the first crash. Longer runs by hand: fuzz/run.sh TARGET 1h.
set -euo pipefail
cd "$(dirname "$0")"
source ./toolchain.sh
secs=${FUZZ_SECONDS:-20}
targets=$(cargo "${FUZZ_TOOLCHAIN[@]}" fuzz list)
echo "== fuzz: building $(echo "$targets" | wc -w) targets"
cargo "${FUZZ_TOOLCHAIN[@]}" fuzz build "${FUZZ_BUILD_FLAGS[@]}"
for t in $targets; do
  echo "== fuzz: $t for ${secs}s"
  log=$(mktemp)
  if ! ./run.sh "$t" "$secs" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $t FAILED (crashing input under fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units)' "$log" | tail -n 2 || true
  rm -f "$log"
done
