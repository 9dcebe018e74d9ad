#!/usr/bin/env bash
# The datapath core now against another revision, in one run: builds that
# revision's datapath_bench in a temporary worktree, runs the two binaries
# in alternating pairs (each pair interleaved repetitions, medians), prints
# each benchmark's ratio now/then per pair and the median ratio, then
# counts instructions per frame of the cached paths under callgrind (the
# same for the same binary and input whatever else the machine does).
# Usage: bench/datapath/compare.sh REVISION [PAIRS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
base=${1:?usage: compare.sh REVISION [PAIRS]}
pairs=${2:-4}
scripts/install-deps.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target datapath_bench >/dev/null
work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-compare-XXXXXX")
cleanup() {
  git worktree remove --force "$work/tree" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
git worktree add -q --detach "$work/tree" "$base"
(cd "$work/tree" && cmake --preset release >/dev/null &&
  cmake --build --preset release --target datapath_bench >/dev/null)
then_bin=$work/tree/build/release/bin/datapath_bench
now_bin=build/release/bin/datapath_bench
filter='BM_Floor|BM_Cached|BM_FlowSetup|BM_ConntrackLookup'
run() {
  "$1" --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true \
    --benchmark_report_aggregates_only=true --benchmark_min_time=0.5 \
    --benchmark_filter="$filter" --benchmark_out="$2" --benchmark_out_format=json >/dev/null
}
for i in $(seq 1 "$pairs"); do
  run "$then_bin" "$work/then$i.json"
  run "$now_bin" "$work/now$i.json"
done
for v in then now; do
  bin=${v}_bin
  for b in BM_CachedL2 BM_CachedRouted BM_CachedFloatingIp BM_CachedSnatRedirect; do
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.$v.$b" "${!bin}" \
      --benchmark_filter="$b\$" --benchmark_min_time=0.05 >/dev/null 2>&1
  done
done
python3 - "$work" "$pairs" <<'PY'
import json, re, statistics, sys
work, pairs = sys.argv[1], int(sys.argv[2])
def medians(path):
    return {b["run_name"]: b["items_per_second"] for b in json.load(open(path))["benchmarks"]
            if b.get("aggregate_name") == "median"}
ratios = {}
for i in range(1, pairs + 1):
    then, now = medians(f"{work}/then{i}.json"), medians(f"{work}/now{i}.json")
    for name in then:
        if name in now:
            ratios.setdefault(name, []).append(now[name] / then[name])
print("| benchmark | now / then, per pair | median |")
print("|---|---|---:|")
for name, r in sorted(ratios.items()):
    print(f"| {name[3:]} | {' '.join(f'{x:.2f}' for x in r)} | {statistics.median(r):.3f} |")
def per_frame(path):
    # Inclusive instructions of processBatch() called from runBatches, per frame.
    calls = cost = 0
    names, fn, callee = {}, "", ""
    lines = open(path).read().split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, fid, name = m.groups()
            if name:
                names[fid] = name
            if kind == "cfn":
                callee = names.get(fid, fid)
            else:
                fn = names.get(fid, fid)
            continue
        m = re.match(r"^calls=(\d+)", line)
        if m and "processBatch" in callee and "runBatches" in fn:
            calls += int(m.group(1))
            cost += int(lines[i + 1].split()[1])
    return cost / (calls * 32) if calls else float("nan")
print()
print("| benchmark | instructions per frame, then | now | now / then |")
print("|---|---:|---:|---:|")
for b in ("BM_CachedL2", "BM_CachedRouted", "BM_CachedFloatingIp", "BM_CachedSnatRedirect"):
    t, n = per_frame(f"{work}/cg.then.{b}"), per_frame(f"{work}/cg.now.{b}")
    print(f"| {b[3:]} | {t:.0f} | {n:.0f} | {n / t:.3f} |")
PY
