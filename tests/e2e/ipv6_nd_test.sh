#!/usr/bin/env bash
# Neighbour discovery answered at the edge, with the guests' own kernels:
# on a network with an IPv6 subnet and a router, a guest's solicitations
# for another guest's address (on another host, even with that guest's
# interface down) and for the router's are answered by its own host;
# duplicate address detection completes for the guest's own address and
# fails for an address another port holds. The guests' addresses are the
# ports' fixed IPv6 addresses, configured by hand (router advertisements
# and DHCPv6 are not served yet).
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2

net=$(api POST /v2.0/networks '{"network": {"name": "net6"}}' | field 'd["network"]["id"]')
sub=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 6,
  "cidr": "fd00:1::/64"}}' | field 'd["subnet"]["id"]')
router=$(api POST /v2.0/routers '{"router": {"name": "r6"}}' | field 'd["router"]["id"]')
api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"$sub"'"}' >/dev/null
gw_mac=$(api GET "/v2.0/ports?device_id=$router" | field 'd["ports"][0]["mac_address"]')
declare -A ids macs ips
for vm in vm1 vm2; do
  new_port "$vm" "$net"
  ids[$vm]=$port_id macs[$vm]=$port_mac ips[$vm]=$port_ip
done
add_vm vm1 h1 "${ids[vm1]}" "${macs[vm1]}"
add_vm vm2 h2 "${ids[vm2]}" "${macs[vm2]}"
for vm in vm1 vm2; do
  in_ns "$tag-$vm" ip -6 addr add "${ips[$vm]}/64" dev eth0
done
# Duplicate address detection completes: the addresses leave "tentative".
settled() { ! in_ns "$tag-$1" ip -6 addr show dev eth0 | grep -qE "tentative|dadfailed"; }
for vm in vm1 vm2; do retry 10 settled $vm || fail "$vm: $(in_ns "$tag-$vm" ip -6 addr show dev eth0)"; done

in_ns "$tag-vm1" ping -6 -c 2 -W 2 "${ips[vm2]}" >"$work/ping" || fail "vm1 -> vm2: $(cat "$work/ping") $(in_ns "$tag-vm1" ip -6 addr show dev eth0) $(in_ns "$tag-vm1" ip -6 route)"

# With vm2's interface down, its host answers for it still.
in_ns "$tag-vm1" ip -6 neigh flush dev eth0
in_ns "$tag-vm2" ip link set eth0 down
in_ns "$tag-vm1" ping -6 -c 1 -W 1 "${ips[vm2]}" >/dev/null 2>&1 || true
resolved() { in_ns "$tag-vm1" ip -6 neigh show "$1" | grep -q "lladdr $2"; }
retry 5 resolved "${ips[vm2]}" "${macs[vm2]}" ||
  fail "vm1 did not learn vm2's MAC from the edge: $(in_ns "$tag-vm1" ip -6 neigh show)"
# The router's address, answered with the router interface's MAC.
in_ns "$tag-vm1" ping -6 -c 1 -W 1 fd00:1::1 >/dev/null 2>&1 || true
retry 5 resolved fd00:1::1 "$gw_mac" ||
  fail "vm1 did not learn the router's MAC: $(in_ns "$tag-vm1" ip -6 neigh show)"

# A guest claiming vm2's address: duplicate address detection fails.
in_ns "$tag-vm1" ip -6 addr add "${ips[vm2]}/64" dev eth0
failed() { in_ns "$tag-vm1" ip -6 addr show dev eth0 | grep -q dadfailed; }
retry 10 failed || fail "vm1 took vm2's address: $(in_ns "$tag-vm1" ip -6 addr show dev eth0)"
echo "e2e.ipv6_nd: all checks passed"
