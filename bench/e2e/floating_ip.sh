#!/usr/bin/env bash
# TCP through a floating IP, from outside to a VM and back, against the
# kernel's own NAT in the same run: Canopy (one host with an uplink to a
# flat external network, the VM's floating IP translated by its host, in the
# kernel fast path or with --fast-path off) and, as the peer, a Linux router
# namespace between the same kind of namespaces, the floating IP translated
# by netfilter (iptables DNAT and SNAT, conntrack). iperf3 both ways, guests'
# offloads on (CANOPY_GUEST_OFFLOADS=off: off everywhere). Then router SNAT:
# the VM without its floating IP connects out (iperf3 -R for the way in)
# through the router's gateway address, against the same netfilter router
# (its SNAT). ROUNDS rounds.
# Needs root.
# Usage: bench/e2e/floating_ip.sh [SECONDS per iperf3 run (5)] [ROUNDS (2)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-5}
rounds=${2:-2}
if [ "${FLOATING_IP_MODE:-}" = "" ]; then
  cd "$root"
  scripts/install-deps.sh >/dev/null
  cmake --preset release -DCANOPY_WERROR=OFF >/dev/null
  cmake --build --preset release --target canopy-server canopy-agent -j2 >/dev/null
  for ((i = 1; i <= rounds; i++)); do
    for mode in linux on off; do FLOATING_IP_MODE=$mode "$0" "$seconds"; done
  done
  exit 0
fi
mode=$FLOATING_IP_MODE
bin="$root/build/release/bin"
here="$root/tests/e2e"
source "$here/lib.sh"
source "$here/netns.sh"

# gbps FROM SERVER_NS ADDRESS [-R]: iperf3 from FROM to ADDRESS (served in
# SERVER_NS; -R: the server sends), Gbit/s received. The server is bounded
# in time.
gbps() {
  bg "$2" sh -c "exec timeout $((seconds + 20)) iperf3 -s -1 -p 5201 >/dev/null 2>&1"
  wait_listen "$2" 5201
  in_ns "$1" iperf3 -c "$3" -p 5201 -t "$seconds" -J ${4:-} | python3 -c \
    'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
report() { printf '%-30s in %6s Gbit/s   out %6s Gbit/s\n' "$1" "$2" "$3"; }

if [ "$mode" = linux ]; then
  # outside (203.0.113.1) -- external bridge -- router (203.0.113.2;
  # 10.0.0.1) -- vm (10.0.0.5), the floating IP 203.0.113.50 translated to
  # and from 10.0.0.5: the hops Canopy's path has (the external network's
  # bridge, the host, the VM's veth).
  for n in out rt vm ex; do new_ns "$tag-$n"; done
  in_ns "$tag-ex" ip link add br0 type bridge
  in_ns "$tag-ex" ip link set br0 up
  ip link add "${tag}o" type veth peer name eth0 netns "$tag-out"
  ip link add "${tag}r" type veth peer name ext0 netns "$tag-rt"
  for l in o r; do
    ip link set "${tag}$l" netns "$tag-ex"
    in_ns "$tag-ex" ip link set "${tag}$l" master br0 up
  done
  ip link add "${tag}v" type veth peer name eth0 netns "$tag-vm"
  ip link set "${tag}v" netns "$tag-rt"
  in_ns "$tag-rt" ip link set "${tag}v" name int0
  for n in out vm; do guest_offloads "$tag-$n" eth0; done
  in_ns "$tag-out" ip addr add 203.0.113.1/24 dev eth0
  in_ns "$tag-rt" ip addr add 203.0.113.2/24 dev ext0
  in_ns "$tag-rt" ip addr add 203.0.113.50/32 dev ext0
  in_ns "$tag-rt" ip addr add 10.0.0.1/24 dev int0
  in_ns "$tag-vm" ip addr add 10.0.0.5/24 dev eth0
  for n in out vm; do in_ns "$tag-$n" ip link set eth0 up; done
  in_ns "$tag-rt" ip link set ext0 up
  in_ns "$tag-rt" ip link set int0 up
  in_ns "$tag-vm" ip route add default via 10.0.0.1
  in_ns "$tag-rt" sysctl -qw net.ipv4.ip_forward=1
  in_ns "$tag-rt" iptables -t nat -A PREROUTING -d 203.0.113.50 -j DNAT --to-destination 10.0.0.5
  in_ns "$tag-rt" iptables -t nat -A POSTROUTING -s 10.0.0.5 -j SNAT --to-source 203.0.113.50
  report "Linux router (netfilter NAT)" "$(gbps "$tag-out" "$tag-vm" 203.0.113.50)" \
    "$(gbps "$tag-vm" "$tag-out" 203.0.113.1)"
  report "Linux router, SNAT" "$(gbps "$tag-vm" "$tag-out" 203.0.113.1 -R)" \
    "$(gbps "$tag-vm" "$tag-out" 203.0.113.1)"
  exit 0
fi

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
make_external
add_host h1 192.168.77.1
add_uplink h1
add_outside 203.0.113.1/24
start_agent h1 192.168.77.1 --log-level warn --fast-path "$mode" --uplink physnet1=ext0 --gateway
routed_network
sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
for protocol in tcp icmp; do
  api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id": "'"$sg"'",
    "direction": "ingress", "ethertype": "IPv4", "protocol": "'"$protocol"'"}}' >/dev/null
done
new_port vm1 "$net"
add_vm vm1 h1 "$port_id" "$port_mac"
dhcp vm1 >/dev/null
fip=$(api POST /v2.0/floatingips '{"floatingip": {"floating_network_id": "'"$public"'",
  "port_id": "'"$port_id"'"}}' | field 'd["floatingip"]["floating_ip_address"]')
retry 20 in_ns "$outside" ping -c 1 -W 1 "$fip" >/dev/null || fail "outside cannot reach $fip"
report "Canopy, fast path $mode" "$(gbps "$outside" "$tag-vm1" "$fip")" \
  "$(gbps "$tag-vm1" "$outside" 203.0.113.1)"
# carried: what the kernel and the agent's datapath carried since the last
# call.
kernel_was=0 agent_was=0
carried() {
  [ "$mode" = on ] || return 0
  local k a
  k=$(kernel_hits h1)
  a=$("$bin/canopy-agent" --run-dir "$work/h1" status | field 'd["datapath"]["packets"]')
  echo "  (packets the kernel carried: $((k - kernel_was)); the agent's datapath: $((a - agent_was)))"
  kernel_was=$k agent_was=$a
}
carried
# Router SNAT: the floating IP gone, the VM's connections leave as the
# router's gateway address.
fip_id=$(api GET "/v2.0/floatingips?floating_ip_address=$fip" | field 'd["floatingips"][0]["id"]')
api DELETE "/v2.0/floatingips/$fip_id" >/dev/null
retry 20 in_ns "$tag-vm1" ping -c 1 -W 1 203.0.113.1 >/dev/null || fail "the VM cannot reach outside"
report "Canopy SNAT, fast path $mode" "$(gbps "$tag-vm1" "$outside" 203.0.113.1 -R)" \
  "$(gbps "$tag-vm1" "$outside" 203.0.113.1)"
carried
