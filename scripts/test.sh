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
stage() {
  echo
  echo "=== $* ==="
  "$@" || { echo "=== FAILED: $* ==="; status=1; }
}

build() {
  cmake --preset "$1" -DCANOPY_WERROR=ON >/dev/null && cmake --build --preset "$1" -j "$jobs"
}

stage build dev && stage ctest --preset dev
stage build asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  stage ctest --preset asan
stage build fuzz && CANOPY_FUZZ_SECONDS=${CANOPY_FUZZ_SECONDS:-20} stage ctest --preset fuzz

echo
if [ "$status" -eq 0 ]; then echo "scripts/test.sh: all stages passed"; else echo "scripts/test.sh: FAILED"; fi
exit "$status"
