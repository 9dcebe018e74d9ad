#!/usr/bin/env bash
# Replays a libFuzzer target's corpus and crashers, then fuzzes it for
# $CANOPY_FUZZ_SECONDS (default 20; 0 = replay only). New crashes are left in
# a temp dir whose path is printed: copy them into tests/fuzz/crashers/<target>/
# with the fix, so ctest replays them for ever.
# Usage: run_fuzz.sh FUZZER CORPUS_DIR CRASHERS_DIR
set -euo pipefail
fuzzer=$1 corpus=$2 crashers=$3
seconds=${CANOPY_FUZZ_SECONDS:-20}

inputs=()
for f in "$corpus"/* "$crashers"/*; do
  [ -f "$f" ] && [ "$(basename "$f")" != .gitkeep ] && inputs+=("$f")
done
if [ ${#inputs[@]} -gt 0 ]; then
  "$fuzzer" -runs=0 "${inputs[@]}" 2>&1 | tail -3
fi
[ "$seconds" -gt 0 ] || exit 0

work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-fuzz-XXXXXX")
cp "$corpus"/* "$work/" 2>/dev/null || true
mkdir -p "$work/artifacts"
if ! "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$work" 2>"$work/log"; then
  tail -40 "$work/log"
  echo "fuzzer found a crash; inputs kept in $work/artifacts" >&2
  exit 1
fi
grep -E 'stat::number_of_executed_units|stat::peak_rss' "$work/log" || true
rm -rf "$work"
