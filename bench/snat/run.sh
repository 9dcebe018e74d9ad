#!/usr/bin/env bash
# Outbound connection setups per second through router SNAT, central against
# distributed (canopy-server --snat), in the same run: a VM on each of h1
# and h2 (both with uplinks) opens TCP connections to a server outside
# (conn_rate, THREADS at a time per VM, each answered and closed) for
# SECONDS; the router's gateway is on h3. Central: h1 and h2 tunnel every
# packet to h3, which translates it. Distributed: h1 and h2 translate their
# own (no hop out), h3 steers the replies to them by port. ROUNDS rounds,
# the modes alternating. Prints each run's connections per second (both
# VMs together), failures and latency. Needs root.
#
# A host's lease bounds its translations of a protocol open at once (a
# closed TCP connection keeps its port for 120 s), as the whole range
# bounds the gateway host's: blocks of BLOCK_PORTS (16384: two hosts'
# leases and the central block fit) hold what SECONDS of setups take.
# Usage: bench/snat/run.sh [SECONDS (5)] [THREADS (4)] [ROUNDS (3)] [BLOCK_PORTS (16384)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-5}
threads=${2:-4}
rounds=${3:-3}
block=${4:-16384}

if [ "${SNAT_BENCH_MODE:-}" = "" ]; then
  cd "$root"
  scripts/install-deps.sh >/dev/null
  cmake --preset release -DCANOPY_WERROR=OFF >/dev/null
  cmake --build --preset release --target canopy-server canopy-agent conn_rate -j2 >/dev/null
  for ((i = 1; i <= rounds; i++)); do
    for mode in central distributed; do
      SNAT_BENCH_MODE=$mode "$0" "$seconds" "$threads" 1 "$block"
    done
  done
  exit 0
fi

mode=$SNAT_BENCH_MODE
bin="$root/build/release/bin"
here="$root/tests/e2e"
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --snat "$mode" --snat-block-ports "$block"
make_underlay
make_external
for i in 1 2 3; do
  add_host "h$i" "192.168.77.$i"
  add_uplink "h$i"
done
add_outside 203.0.113.1/24
start_agent h1 192.168.77.1 --uplink physnet1=ext0
start_agent h2 192.168.77.2 --uplink physnet1=ext0
start_agent h3 192.168.77.3 --uplink physnet1=ext0 --gateway

routed_network
for vm in "vm1 h1" "vm2 h2"; do
  set -- $vm
  new_port "$1" "$net"
  add_vm "$1" "$2" "$port_id" "$port_mac"
  dhcp "$1" >/dev/null
done
bg "$outside" "$bin/conn_rate" serve 8080 outside
wait_listen "$outside" 8080
for vm in vm1 vm2; do
  retry 20 in_ns "$tag-$vm" nc -z -w 1 203.0.113.1 8080 ||
    fail "$vm cannot reach outside"
done
ip netns exec "$tag-vm1" "$bin/conn_rate" connect 203.0.113.1 8080 "$seconds" "$threads" \
  >"$work/vm1.json" &
one=$!
ip netns exec "$tag-vm2" "$bin/conn_rate" connect 203.0.113.1 8080 "$seconds" "$threads" \
  >"$work/vm2.json"
wait "$one"
python3 - "$mode" "$work/vm1.json" "$work/vm2.json" <<'EOF'
import json, sys
mode, runs = sys.argv[1], [json.load(open(f)) for f in sys.argv[2:]]
rate = sum(r["per_second"] for r in runs)
fails = sum(r["failed"] for r in runs)
p50 = max(r["p50_us"] for r in runs) / 1000
p99 = max(r["p99_us"] for r in runs) / 1000
print(f"{mode:12s} {rate:8.0f} connections/s  failures {fails}  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
EOF
steered=$("$bin/canopy-agent" --run-dir "$work/h3" status | field 'd["datapath"]["snat_steered"]')
echo "             (h3 steered $steered replies)"
