#!/usr/bin/env bash
# New TCP connections per second between two VMs on one host: a
# conn_rate client (THREADS connections at a time, each answered and
# closed) for SECONDS, through Canopy with the fast path on and off
# (security groups, the connections tracked) and, in the same run, through
# a Linux bridge. ROUNDS rounds. SETUP_RATE_AGENT_ARGS: more arguments for
# the agent (e.g. "--port-flow-rate 0 --port-control-rate 0": no slow-path
# limits; "--fast-path-setups off": every setup through the agent). With
# the fast path, the first connection's handshake leaves a template and the
# kernel sets up the rest; the agent follows their closes (the kernel tells
# it of their FINs). Needs root.
# Usage: bench/e2e/setup_rate.sh [SECONDS (5)] [THREADS (4)] [ROUNDS (3)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-5}
threads=${2:-4}
rounds=${3:-3}
if [ "${SETUP_RATE_MODE:-}" = "" ]; then
  cd "$root"
  scripts/install-deps.sh >/dev/null
  cmake --preset release -DCANOPY_WERROR=OFF >/dev/null
  cmake --build --preset release --target canopy-server canopy-agent conn_rate -j2 >/dev/null
  for ((i = 1; i <= rounds; i++)); do
    for mode in bridge off on; do SETUP_RATE_MODE=$mode "$0" "$seconds" "$threads"; done
  done
  exit 0
fi
mode=$SETUP_RATE_MODE
bin="$root/build/release/bin"
here="$root/tests/e2e"
source "$here/lib.sh"
source "$here/netns.sh"

# rate FROM TO_ADDRESS: conn_rate's JSON from namespace FROM.
measure() {
  ip netns exec "$1" "$bin/conn_rate" connect "$2" 8080 "$seconds" "$threads"
}
report() {
  python3 -c '
import json, sys
r = json.loads(sys.argv[2])
print("%-22s %7.0f connections/s  failed %d  p50 %.2f ms  p99 %.2f ms" % (
    sys.argv[1], r["per_second"], r["failed"], r["p50_us"] / 1000, r["p99_us"] / 1000))' "$1" "$2"
}

if [ "$mode" = bridge ]; then
  new_ns "$tag-br"
  in_ns "$tag-br" ip link add br0 type bridge
  in_ns "$tag-br" ip link set br0 up
  for i in 1 2; do
    new_ns "$tag-p$i"
    ip link add "${tag}p$i" type veth peer name eth0 netns "$tag-p$i"
    ip link set "${tag}p$i" netns "$tag-br"
    in_ns "$tag-br" ip link set "${tag}p$i" master br0 up
    in_ns "$tag-p$i" ip addr add "10.7.0.$i/24" dev eth0
    in_ns "$tag-p$i" ip link set eth0 up
  done
  bg "$tag-p2" "$bin/conn_rate" serve 8080 p2
  wait_listen "$tag-p2" 8080
  report "Linux bridge" "$(measure "$tag-p1" 10.7.0.2)"
  exit 0
fi

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
read -ra extra <<<"${SETUP_RATE_AGENT_ARGS:-}"
setups=()
[ "$mode" = on ] && setups=(--fast-path-setups on)
start_agent h1 192.168.77.1 --log-level warn --fast-path "$mode" "${setups[@]}" "${extra[@]}"
net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id": "'"$sg"'",
  "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp"}}' >/dev/null
declare -A ip_of
for vm in vm1 vm2; do
  new_port "$vm" "$net"
  ip_of[$vm]=$port_ip
  add_vm "$vm" h1 "$port_id" "$port_mac"
  dhcp "$vm" >/dev/null
done
bg "$tag-vm2" "$bin/conn_rate" serve 8080 vm2
wait_listen "$tag-vm2" 8080
retry 20 in_ns "$tag-vm1" nc -z -w 1 "${ip_of[vm2]}" 8080 || fail "vm1 cannot reach vm2"
result=$(measure "$tag-vm1" "${ip_of[vm2]}")
report "Canopy, fast path $mode" "$result"
# Where each connection's packets went: through the agent's datapath, or
# the kernel (the agents publish their counters each second).
# (Read until the counters, published each second, stayed for 1.2 s.)
settled() {
  "$bin/canopy-agent" --run-dir "$work/h1" status >"$work/status.json"
  local now
  now=$(field 'd["datapath"]["packets"]' <"$work/status.json")
  if [ "$now" = "${last:-}" ]; then stable=$((stable + 1)); else stable=0; fi
  last=$now
  [ "$stable" -ge 4 ]
}
stable=0
retry 10 settled || true
python3 -c '
import json, sys
r, s = json.loads(sys.argv[1]), json.load(open(sys.argv[2]))
n = max(1, r["per_second"] * float(sys.argv[3]))
fp = s.get("fast_path", {})
print("%-22s %7.1f packets a connection in the agent, %.1f in the kernel, %.1f flows installed" % (
    "", s["datapath"]["packets"] / n, fp.get("hits", 0) / n, fp.get("installed", 0) / n))
if fp:
    print("%-22s %7.2f of the connections set up by the kernel; %d flows left after" % (
        "", fp.get("made", 0) / n, fp.get("flows", 0)))' \
  "$result" "$work/status.json" "$seconds"
