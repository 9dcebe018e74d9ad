#!/usr/bin/env bash
# Runs every test Canopy has, from a fresh machine: installs the Debian
# packages, builds the `dev` and `asan` presets with -Werror, runs ctest on
# `dev` (unit + end-to-end) and the unit tests under ASan + UBSan, then
# replays the fuzz corpora and crashers and fuzzes each target briefly.
# Exit status is non-zero if anything failed; every stage runs regardless.
#   scripts/test.sh            everything
#   CANOPY_FUZZ_SECONDS=0      replay crashers/corpora only, no new fuzzing
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/install-deps.sh" || exit 1

jobs=$(nproc)
status=0
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
stage() {
  echo
  echo "=== $* ==="
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  # Add up ctest's "N% tests passed, F tests failed out of T".
  local summary
  summary=$(grep -Eo '[0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1)
  if [ -n "$summary" ]; then
    local f t
    read -r f _ _ _ _ t <<<"$summary"
    failed=$((failed + f))
    passed=$((passed + t - f))
  fi
  [ "$rc" -eq 0 ] || { echo "=== FAILED: $* ==="; status=1; }
  return "$rc"
}

build() {
  cmake --preset "$1" -DCANOPY_WERROR=ON >/dev/null && cmake --build --preset "$1" -j "$jobs"
}

# Tests run $jobs at a time; those that boot QEMU guests one at a time
# (RESOURCE_LOCK qemu), the Nova stack and tempest alone (RUN_SERIAL).
stage build dev && stage ctest --preset dev -j "$jobs"
stage build asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  stage ctest --preset asan -j "$jobs"
stage build fuzz && CANOPY_FUZZ_SECONDS=${CANOPY_FUZZ_SECONDS:-20} stage ctest --preset fuzz -j "$jobs"

echo
if [ "$status" -eq 0 ]; then echo "scripts/test.sh: all stages passed"; else echo "scripts/test.sh: FAILED"; fi
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1  # a failed build counts too
echo "tests: $passed passed, $failed failed"
exit "$status"
