#!/usr/bin/env bash
# Interop with a third-party VTEP: a Linux kernel VXLAN interface in its own
# namespace on the underlay, registered as a static VTEP (POST /v2.0/agents)
# with a port on the tenant network, exchanges frames with a VM behind
# canopy-agent: the VM pings it and it pings the VM, over VXLAN (RFC 7348).
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth

make_underlay
add_host h1 192.168.77.1
add_host kv 192.168.77.9
start_agent h1 192.168.77.1

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
vni=$(admin GET "/v2.0/networks/$net" | field 'd["network"]["provider:segmentation_id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null

# The kernel VTEP: registered, with a port of its own on the network.
out=$(admin POST /v2.0/agents '{"agent": {"host": "kv", "configurations":
  {"tunnel_ip": "192.168.77.9", "encapsulations": ["vxlan"]}}}')
expect_in '"agent_type":"Static VTEP"' "$out"
api POST /v2.0/ports '{"port": {"network_id": "'"$net"'", "name": "kernel",
  "fixed_ips": [{"ip_address": "10.0.0.200"}]}}' >"$work/kernel.port"
kernel_id=$(field 'd["port"]["id"]' <"$work/kernel.port")
kernel_mac=$(field 'd["port"]["mac_address"]' <"$work/kernel.port")
admin PUT "/v2.0/ports/$kernel_id" '{"port": {"binding:host_id": "kv"}}' >/dev/null

api POST /v2.0/ports '{"port": {"network_id": "'"$net"'", "name": "vm1"}}' >"$work/vm1.port"
vm1_ip=$(field 'd["port"]["fixed_ips"][0]["ip_address"]' <"$work/vm1.port")
vm1_mac=$(field 'd["port"]["mac_address"]' <"$work/vm1.port")
add_vm vm1 h1 "$(field 'd["port"]["id"]' <"$work/vm1.port")" "$vm1_mac"
dhcp vm1 >/dev/null

kv="$tag-kv"
in_ns "$kv" ethtool -K ul0 tx off >/dev/null
in_ns "$kv" ip link add vxlan0 address "$kernel_mac" type vxlan id "$vni" local 192.168.77.9 \
  dstport 4789 nolearning
in_ns "$kv" bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst 192.168.77.1
in_ns "$kv" bridge fdb append "$vm1_mac" dev vxlan0 dst 192.168.77.1
in_ns "$kv" ip addr add 10.0.0.200/24 dev vxlan0
in_ns "$kv" ip link set vxlan0 mtu 1400 up

for _ in $(seq 1 30); do
  in_ns "$tag-vm1" ping -c 1 -W 1 10.0.0.200 >/dev/null 2>&1 && break
done
in_ns "$tag-vm1" ping -c 3 -i 0.2 -W 2 10.0.0.200 >"$work/ping1" ||
  fail "vm1 -> kernel VTEP: $(cat "$work/ping1")"
in_ns "$kv" ping -c 3 -i 0.2 -W 2 "$vm1_ip" >"$work/ping2" ||
  fail "kernel VTEP -> vm1: $(cat "$work/ping2")"
expect_in "3 received" "$(cat "$work/ping2")"

# Agents are listed in Neutron's shape.
out=$(admin GET /v2.0/agents)
expect_in '"host":"h1"' "$out"
expect_in '"agent_type":"Canopy agent"' "$out"

echo "e2e.vxlan_interop: all checks passed"
