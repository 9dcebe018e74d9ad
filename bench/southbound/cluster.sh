#!/usr/bin/env bash
# The control plane at scale: for 1, 2 and 3 canopy-server replicas on a
# three-member etcd cluster (fresh for each), N agents with one port each on
# one network (real gRPC streams, one connection each, in a few
# southbound_fleet processes): API port-create throughput, the time from an
# API write to every agent having applied it (p50, p99, max), and the
# servers' memory per idle agent (cluster_bench.cc). Then OVN in the same
# run with as many chassis as it holds here (ovn_peer.sh; CANOPY_OVN_PEER=off
# skips it), and the ratio of its p50 to Canopy's. CANOPY_FLEET_LAYOUT=separate
# puts each agent's port on a network of its own instead (memory per agent
# when views are small; no rounds).
#
# Usage: bench/southbound/cluster.sh [--agents 1000] [--rounds 30] [--replicas "1 2 3"]
#                                    [--ovn-chassis 100] [--build release|dev]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
agents=1000
rounds=30
replica_counts="1 2 3"
ovn_chassis=100
preset=release
while [ $# -gt 0 ]; do
  case $1 in
    --agents) agents=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --replicas) replica_counts=$2; shift 2 ;;
    --ovn-chassis) ovn_chassis=$2; shift 2 ;;
    --build) preset=$2; shift 2 ;;
    *) echo "usage: $0 [--agents N] [--rounds N] [--replicas \"1 2 3\"] [--ovn-chassis N]" >&2
       exit 2 ;;
  esac
done
cd "$root"
scripts/install-deps.sh >/dev/null
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" --target canopy-server southbound_fleet cluster_bench >/dev/null
bin=$root/build/$preset/bin
# One connection per agent, on both sides.
ulimit -n "$(ulimit -Hn)"  # the hard limit: enough for thousands of streams

source "$root/tests/e2e/lib.sh"
source "$root/tests/e2e/etcd.sh"

results=()
for replicas in $replica_counts; do
  # A fresh etcd cluster and fresh replicas for each count.
  etcd_pids=()
  etcd_clients=()
  etcd_peers=()
  rm -rf "$work"/etcd-m*
  start_etcd 3
  apis=()
  southbounds=()
  pids=()
  for ((i = 0; i < replicas; i++)); do
    sb=127.0.0.1:$(free_port)
    start_server "$bin" "$work/replica$replicas-$i.log" --store "$etcd_url" --listen 127.0.0.1:0 \
      --auth noauth --replica-id "r$i" --southbound-listen "$sb"
    apis+=("$api_url")
    southbounds+=("$sb")
    pids+=("$server_pid")
  done
  join() { local IFS=,; echo "$*"; }
  line=$("$bin/cluster_bench" --api "$(join "${apis[@]}")" --southbound "$(join "${southbounds[@]}")" \
    --pids "$(join "${pids[@]}")" --agents "$agents" --fleets 4 --rounds "$rounds" \
    --fleet-bin "$bin/southbound_fleet" --layout "${CANOPY_FLEET_LAYOUT:-shared}")
  echo "$line"
  results+=("$line")
  for pid in "${pids[@]}" "${etcd_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
done

if [ "${CANOPY_OVN_PEER:-on}" != off ]; then
  ovn=$("$root/bench/southbound/ovn_peer.sh" --chassis "$ovn_chassis" --rounds "$rounds")
  echo "$ovn"
  python3 - "$ovn" "${results[@]}" <<'PY'
import json, sys
o = json.loads(sys.argv[1])
for line in sys.argv[2:]:
    c = json.loads(line)
    print(f"{c['replicas']} replica(s), {c['agents']} agents: p50 {c['all_p50_ms']:.1f} ms; "
          f"OVN with {o.get('agents', '?')} chassis p50 {o['p50_ms']:.1f} ms: "
          f"{o['p50_ms'] / c['all_p50_ms']:.1f}x")
PY
fi
