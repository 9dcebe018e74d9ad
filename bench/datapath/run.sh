#!/usr/bin/env bash
# Datapath core benchmark (no I/O, one core): Mpps of cached paths, flow
# setups and conntrack lookups with 10,000 ports and 1,000 rules, each as a
# ratio to the in-run floor (parse + copy of the same frames). Prints a
# Markdown table for docs/PERFORMANCE.md.
# Usage: bench/datapath/run.sh [extra benchmark flags]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
scripts/install-deps.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target datapath_bench >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Repetitions in random order, medians compared, so that every benchmark
# sees the same drift of a shared machine.
build/release/bin/datapath_bench --benchmark_repetitions=5 \
  --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \
  --benchmark_min_time=0.5 --benchmark_out="$out" --benchmark_out_format=json "$@" >/dev/null
python3 - "$out" <<'PY'
import json, sys
runs = {b["run_name"]: b for b in json.load(open(sys.argv[1]))["benchmarks"]
        if b.get("aggregate_name") == "median"}
def rate(name):
    for key, b in runs.items():
        if key.split("/")[0] == name:
            return b["items_per_second"]
    return None
floor = rate("BM_Floor")
print()
print("Medians of 5 interleaved repetitions, frames (or lookups) per second on one core.")
print()
print("| benchmark | rate | ratio to the floor |")
print("|---|---:|---:|")
for name in ("BM_Floor", "BM_CachedL2", "BM_CachedL2Qos", "BM_CachedL2Logged", "BM_FabricL2", "BM_CachedRouted", "BM_CachedFloatingIp",
             "BM_CachedSnatRedirect", "BM_FlowSetup", "BM_ConntrackLookup"):
    r = rate(name)
    if r is None:
        continue
    shown = f"{r / 1e6:.2f} M/s" if r >= 1e6 else f"{r / 1e3:.0f} k/s"
    print(f"| {name[3:]} | {shown} | {r / floor:.3f} |")
print()
qos, logged, plain = rate("BM_CachedL2Qos"), rate("BM_CachedL2Logged"), rate("BM_CachedL2")
if qos and plain:
    print(f"A QoS-limited port (egress limit and DSCP mark) on the cached path: "
          f"{qos / plain:.3f}x the same flows without QoS.")
if logged and plain:
    print(f"A logged security group (ACCEPT and DROP) on the cached path: "
          f"{logged / plain:.3f}x the same flows unlogged.")
print()
print("Workers over one SharedState (rates of all threads together):")
print()
print("| benchmark | 1 worker | 2 workers | scaling |")
print("|---|---:|---:|---:|")
for name in ("BM_WorkersCachedRouted", "BM_WorkersFlowSetup"):
    one = next((b["items_per_second"] for k, b in runs.items()
                if k.startswith(name) and k.endswith("threads:1")), None)
    two = next((b["items_per_second"] for k, b in runs.items()
                if k.startswith(name) and k.endswith("threads:2")), None)
    if one and two:
        print(f"| {name[3:]} | {one / 1e6:.2f} M/s | {two / 1e6:.2f} M/s | {two / one:.2f}x |")
PY
