#!/usr/bin/env bash
# bench/e2e now against another revision, back to back on the same machine:
# builds REVISION's programs in a temporary worktree, then runs each tree's
# bench/e2e/run.sh in turn, PAIRS times, and prints every run's tables under
# its name. Each table's ratios are to the kernel peers measured in that
# same run, so "then" and "now" are compared ratio to ratio (CANOPY_OVS_PEER=off
# skips the Open vSwitch peers, as run.sh does). Needs root.
# Usage: bench/e2e/compare.sh REVISION [PAIRS] [seconds per iperf3 run]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
base=${1:?usage: compare.sh REVISION [PAIRS] [SECONDS]}
pairs=${2:-2}
seconds=${3:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-e2e-compare-XXXXXX")
cleanup() {
  git worktree remove --force "$work/tree" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
git worktree add -q --detach "$work/tree" "$base"
for ((i = 1; i <= pairs; i++)); do
  echo "## pair $i: then ($(git rev-parse --short "$base"))"
  "$work/tree/bench/e2e/run.sh" "$seconds"
  echo
  echo "## pair $i: now ($(git rev-parse --short HEAD)$(git diff --quiet || echo ', with changes'))"
  bench/e2e/run.sh "$seconds"
  echo
done
