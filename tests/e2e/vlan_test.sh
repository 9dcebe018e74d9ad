#!/usr/bin/env bash
# VLAN and flat provider networks on a physical network that carries tags
# (a Linux bridge joining the hosts' uplinks and an outside namespace):
#  - a project's network, naming no type, gets a VLAN from the server's
#    range (--tenant-network-type vlan --vlan-ranges); its VMs on two hosts
#    get DHCP, ping and a TCP stream, and what crosses the bridge carries
#    the network's tag (captured);
#  - an external network on another VLAN: a floating IP reached from
#    outside (on VLAN 300 through an access port), and SNAT, tagged on the
#    bridge;
#  - a flat network: VMs on two hosts and the outside on one link,
#    untagged.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --tenant-network-type vlan --vlan-ranges physnet1:200:209
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
make_external
add_uplink h1
add_uplink h2
add_outside 198.51.100.1/24  # untagged: the flat network
# The outside on VLAN 300 too, through an access port (this kernel has
# neither VLAN devices nor bridge VLAN filtering).
ip link add "${tag}trk" type veth peer name trunk netns "$external"
ip link set "${tag}trk" netns "$external"
in_ns "$external" ip link set "${tag}trk" master br0 up
in_ns "$external" ip link set trunk up
ip link add "${tag}acc" type veth peer name eth300 netns "$outside"
ip link set "${tag}acc" netns "$external"
in_ns "$external" ip link set "${tag}acc" up
bg "$external" python3 "$here/vlan_access.py" trunk "${tag}acc" 300 300
in_ns "$outside" ip addr add 203.0.113.1/24 dev eth300
# The access port copies frames as they are: no partial checksums or
# super-frames across it (there is no NIC to finish them).
in_ns "$outside" ethtool -K eth300 tx off >/dev/null
in_ns "$outside" ip link set eth300 up
start_agent h1 192.168.77.1 --uplink physnet1=ext0
start_agent h2 192.168.77.2 --uplink physnet1=ext0 --gateway

drops() { "$bin/canopy-agent" --run-dir "$work/$1" status | field "d['datapath']['drops']"; }
# capture NAME FILTER: tcpdump on the physical network's bridge, with the
# link-level header (the tags), until the test ends.
capture() {
  bg "$external" sh -c "exec timeout 60 tcpdump -l -e -n -i br0 '$2' >'$work/$1.cap' 2>'$work/$1.err'"
  wait_capture "$work/$1.err"
}

# --- a project's VLAN network ---
tnet=$(api POST /v2.0/networks '{"network": {"name": "tnet"}}' | field 'd["network"]["id"]')
shown=$(admin GET "/v2.0/networks/$tnet")
[ "$(field 'd["network"]["provider:network_type"]' <<<"$shown")" = vlan ] || fail "not a VLAN: $shown"
seg=$(field 'd["network"]["provider:segmentation_id"]' <<<"$shown")
[ "$seg" -ge 200 ] && [ "$seg" -le 209 ] || fail "VLAN $seg out of the range"
tsub=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$tnet"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' | field 'd["subnet"]["id"]')
declare -A ids ips
vm() {
  new_port "$1" "$2"
  ids[$1]=$port_id ips[$1]=$port_ip
  add_vm "$1" "$3" "$port_id" "$port_mac"
  dhcp "$1" >/dev/null
}
vm vm1 "$tnet" h1
vm vm2 "$tnet" h2
capture tagged "vlan $seg and icmp"
retry 10 in_ns "$tag-vm1" ping -c 1 -W 1 "${ips[vm2]}" || fail "vm1 cannot ping vm2 on VLAN $seg"
in_ns "$tag-vm1" ping -c 3 -i 0.2 -W 2 "${ips[vm2]}" >/dev/null || fail "vm1 -> vm2 lost pings"
on_wire() { grep -q "$1" "$work/$2.cap"; }
retry 5 on_wire "vlan $seg.*${ips[vm1]} > ${ips[vm2]}: ICMP echo request" tagged ||
  fail "no tagged request on the bridge: $(cat "$work/tagged.cap")"
retry 5 on_wire "vlan $seg.*${ips[vm2]} > ${ips[vm1]}: ICMP echo reply" tagged ||
  fail "no tagged reply on the bridge: $(cat "$work/tagged.cap")"
hits=$(kernel_hits h1 h2)
send_blob "$tag-vm1" "$tag-vm2" "${ips[vm2]}" 5001 1048576
# With the kernel fast path (the default), the established stream crossed
# both uplinks in the kernels, tagged on the way out and untagged on the
# way in.
if fast_path_on h1 && fast_path_on h2; then
  carried() { [ $(($(kernel_hits h1 h2) - hits)) -gt 20 ]; }
  retry 5 carried || fail "the kernels carried $(($(kernel_hits h1 h2) - hits)) packets on VLAN $seg"
  echo "TCP vm1 -> vm2 on VLAN $seg: $(($(kernel_hits h1 h2) - hits)) packets in the kernels"
fi

# --- an external network on VLAN 300: floating IP and SNAT ---
public=$(admin POST /v2.0/networks '{"network": {"name": "public", "router:external": true,
  "provider:network_type": "vlan", "provider:physical_network": "physnet1",
  "provider:segmentation_id": 300}}' | field 'd["network"]["id"]')
admin POST /v2.0/subnets '{"subnet": {"network_id": "'"$public"'", "ip_version": 4,
  "cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1", "enable_dhcp": false,
  "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.100"}]}}' >/dev/null
router=$(api POST /v2.0/routers '{"router": {"name": "r1",
  "external_gateway_info": {"network_id": "'"$public"'"}}}' | field 'd["router"]["id"]')
gateway_ip=$(api GET "/v2.0/routers/$router" |
  field 'd["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]')
api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"$tsub"'"}' >/dev/null
sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id": "'"$sg"'",
  "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}}' >/dev/null
# What crosses the access port must be whole (above): the VMs' own frames too.
for v in vm1 vm2; do in_ns "$tag-$v" ethtool -K eth0 tx off >/dev/null; done
capture external "vlan 300 and icmp"
fip=$(api POST /v2.0/floatingips '{"floatingip": {"floating_network_id": "'"$public"'",
  "port_id": "'"${ids[vm1]}"'"}}' | field 'd["floatingip"]["floating_ip_address"]')
retry 10 in_ns "$outside" ping -c 1 -W 1 "$fip" || fail "outside cannot ping the floating IP $fip: $(drops h1)"
retry 5 on_wire "vlan 300.*203.0.113.1 > $fip: ICMP echo request" external ||
  fail "no request to the floating IP on VLAN 300: $(cat "$work/external.cap")"
bg "$outside" sh -c "exec nc -lknv 9000 >'$work/seen' 2>&1"
wait_listen "$outside" 9000
retry 10 sh -c "echo hello | ip netns exec '$tag-vm2' nc -N -w 2 203.0.113.1 9000" ||
  fail "vm2 cannot reach outside through SNAT: $(drops h2)"
expect_in "$gateway_ip" "$(cat "$work/seen")"
send_blob "$tag-vm1" "$outside" 203.0.113.1 9001 1048576
send_blob "$tag-vm2" "$outside" 203.0.113.1 9002 1048576

# --- a flat network: untagged ---
flat=$(admin POST /v2.0/networks '{"network": {"name": "flat", "shared": true,
  "provider:network_type": "flat", "provider:physical_network": "physnet1"}}' |
  field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$flat"'", "ip_version": 4,
  "cidr": "198.51.100.0/24", "allocation_pools": [{"start": "198.51.100.10",
  "end": "198.51.100.99"}]}}' >/dev/null
vm vm3 "$flat" h1
vm vm4 "$flat" h2
capture untagged "icmp and not vlan"
for pair in "vm3 ${ips[vm4]}" "vm4 198.51.100.1" "vm3 198.51.100.1"; do
  set -- $pair
  retry 10 in_ns "$tag-$1" ping -c 1 -W 1 "$2" || fail "$1 cannot ping $2 on the flat network"
done
retry 5 on_wire "${ips[vm3]} > ${ips[vm4]}: ICMP echo request" untagged ||
  fail "no untagged frame on the bridge: $(cat "$work/untagged.cap")"
if grep -q "vlan" "$work/untagged.cap"; then fail "a tag on the flat network: $(cat "$work/untagged.cap")"; fi
echo "e2e.vlan: all checks passed"
