#!/usr/bin/env bash
# Southbound fan-out: the time from an API write to every one of N agents
# (real gRPC streams on loopback, in one process) having applied it. Then the
# same with real OVN (bench/southbound/ovn_peer.sh: N chassis, each its own
# ovn-controller and ovs-vswitchd; CANOPY_OVN_PEER=off skips it) and the
# ratio of OVN's p50 to Canopy's.
# Usage: bench/southbound/run.sh [--agents 50] [--rounds 20]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
agents=50
rounds=20
while [ $# -gt 0 ]; do
  case $1 in
    --agents) agents=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--agents N] [--rounds N]" >&2; exit 2 ;;
  esac
done
scripts/install-deps.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target fanout_bench >/dev/null
canopy=$(build/release/bin/fanout_bench --agents "$agents" --rounds "$rounds" 2>/dev/null)
echo "$canopy"
if [ "${CANOPY_OVN_PEER:-on}" != off ]; then
  ovn=$(bench/southbound/ovn_peer.sh --chassis "$agents" --rounds "$rounds")
  echo "$ovn"
  /usr/bin/python3 - "$canopy" "$ovn" <<'PY'
import json, sys
c, o = (json.loads(a) for a in sys.argv[1:3])
ratio = "%.1f" % (o["p50_ms"] / c["p50_ms"]) if c["p50_ms"] > 0 else "n/a"
print(f"OVN p50 / Canopy p50: {ratio} ({o['p50_ms']:.1f} ms / {c['p50_ms']:.1f} ms)")
PY
fi
