#!/usr/bin/env bash
# Store benchmark: Canopy's store against raw SQLite with the same durability,
# measured in the same run; prints a Markdown table of ratios for
# docs/PERFORMANCE.md. Usage: bench/store/run.sh [extra benchmark flags]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
scripts/install-deps.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target store_bench >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Repetitions in random order, medians compared: the machine is shared and
# fsync latency drifts, so each side must see the same drift.
CANOPY_BENCH_DIR="$root/build/release" build/release/bin/store_bench \
  --benchmark_repetitions=6 --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true \
  --benchmark_out="$out" --benchmark_out_format=json "$@"
python3 - "$out" <<'PY'
import json, sys
runs = {b["run_name"]: b for b in json.load(open(sys.argv[1]))["benchmarks"]
        if b.get("aggregate_name") == "median"}
print()
print("Medians of 6 interleaved repetitions.")
print()
print("| batch (keys/txn) | Canopy txn/s | raw SQLite txn/s | ratio | Canopy keys/s | raw keys/s |")
print("|---:|---:|---:|---:|---:|---:|")
for batch in (1, 16, 256):
    c = runs.get(f"BM_StoreTxn/{batch}/min_time:0.500/real_time")
    r = runs.get(f"BM_RawSqliteTxn/{batch}/min_time:0.500/real_time")
    if not c or not r:
        continue
    print(f"| {batch} | {c['txn_per_s']:.0f} | {r['txn_per_s']:.0f} | "
          f"{c['txn_per_s'] / r['txn_per_s']:.2f} | {c['keys_per_s']:.0f} | {r['keys_per_s']:.0f} |")
w = runs.get("BM_WatchDelivery/min_time:0.500/real_time")
if w:
    print()
    print(f"Watch delivery: commit p50 {w['commit_p50_us']:.0f} us; "
          f"txn() call to watcher holding the event p50 {w['watch_p50_us']:.0f} us.")
PY
