#!/usr/bin/env bash
# IPv6 for guests, done by the guests' own kernels and DHCPv6 client: on
# three networks behind one router, one per Neutron mode (SLAAC, DHCPv6
# stateful, DHCPv6 stateless), with VMs on two hosts:
#  - router advertisements as each mode says (rdisc6 reads them: flags,
#    lifetime, prefix, MTU, DNS), answered to solicitations and sent
#    unsolicited; the kernels take their SLAAC addresses (the ports' fixed
#    IPv6 addresses) and default routes from them;
#  - DHCPv6 (dhclient -6): the stateful port's fixed address and its own
#    options (extra_dhcp_opts); DNS servers and domain on the stateless
#    network;
#  - routing across subnets and hosts (ping, TCP), the router's own
#    address and link-local one answering, hop limit expiry answered with
#    time exceeded, a guest with a larger MTU told "packet too big" and
#    then its TCP crossing by path MTU discovery;
#  - an external IPv6 network through the router's gateway (on h2), not
#    translated: VMs on both hosts reach a server outside and are reached
#    from it; the next hop's MAC learned by neighbour discovery;
#  - port security: a spoofed source address and a rogue router
#    advertisement are dropped and counted.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
command -v dhclient >/dev/null && command -v rdisc6 >/dev/null ||
  { echo "SKIP: needs isc-dhcp-client and ndisc6"; exit 77; }

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
make_external
add_uplink h1
add_uplink h2
add_outside 2001:db8:1::1/64
start_agent h1 192.168.77.1 --uplink physnet1=ext0
start_agent h2 192.168.77.2 --uplink physnet1=ext0 --gateway

router=$(api POST /v2.0/routers '{"router": {"name": "r6"}}' | field 'd["router"]["id"]')
declare -A nets subnets
# network MODE CIDR: a network with an IPv6 subnet in that mode on the router.
network() {
  local mode=$1 cidr=$2
  nets[$mode]=$(api POST /v2.0/networks '{"network": {"name": "net-'"$mode"'", "dns_domain": "'"$mode"'.example."}}' |
    field 'd["network"]["id"]')
  subnets[$mode]=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"${nets[$mode]}"'",
    "ip_version": 6, "cidr": "'"$cidr"'", "ipv6_ra_mode": "'"$mode"'",
    "ipv6_address_mode": "'"$mode"'", "dns_nameservers": ["fd00::53"]}}' |
    field 'd["subnet"]["id"]')
  api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"${subnets[$mode]}"'"}' >/dev/null
}
network slaac fd00:a::/64
network dhcpv6-stateful fd00:b::/64
network dhcpv6-stateless fd00:c::/64
mtu=$(api GET "/v2.0/networks/${nets[slaac]}" | field 'd["network"]["mtu"]')

declare -A ids macs ips
# vm NAME MODE HOST
vm() {
  new_port "$1" "${nets[$2]}"
  ids[$1]=$port_id macs[$1]=$port_mac ips[$1]=$port_ip
  add_vm "$1" "$3" "$port_id" "$port_mac"
}
vm vm1 slaac h1
vm vm2 dhcpv6-stateful h2
vm vm3 dhcpv6-stateless h2
vm vm4 slaac h2

# --- router advertisements, read by rdisc6 (a solicitation answered) ---
# ra VM: the advertisement rdisc6 gets, one "name: value" per line.
# Its link-local address must have left duplicate address detection first.
ra() {
  ll_ready() { in_ns "$tag-$1" ip -6 addr show dev eth0 scope link | grep -v tentative | grep -q inet6; }
  retry 10 ll_ready "$1" || return 1
  in_ns "$tag-$1" rdisc6 -1 -w 1500 -r 3 eth0 | sed -E 's/ +: +/: /; s/^ +//; s/ +/ /g'
}
adv=$(ra vm1) || fail "vm1 got no router advertisement"
for line in "Stateful address conf.: No" "Stateful other conf.: No" "Router lifetime: 300" \
  "MTU: $mtu bytes" "Prefix: fd00:a::/64" "Autonomous address conf.: Yes" \
  "Recursive DNS server: fd00::53"; do
  expect_in "$line" "$adv"
done
adv=$(ra vm2) || fail "vm2 got no router advertisement"
expect_in "Stateful address conf.: Yes" "$adv"
expect_in "Autonomous address conf.: No" "$adv"
adv=$(ra vm3) || fail "vm3 got no router advertisement"
expect_in "Stateful other conf.: Yes" "$adv"
expect_in "Autonomous address conf.: Yes" "$adv"

# --- SLAAC by the guests' kernels: the ports' own addresses, a default route ---
slaac_done() {
  in_ns "$tag-$1" ip -6 addr show dev eth0 scope global | grep -v tentative | grep -q "inet6 $2/64"
}
routed() { in_ns "$tag-$1" ip -6 route show default | grep -q "via fe80::"; }
for v in vm1 vm4; do
  retry 20 slaac_done $v "${ips[$v]}" || fail "$v: no SLAAC address ${ips[$v]}: $(in_ns "$tag-$v" ip -6 addr)"
  retry 10 routed $v || fail "$v: no default route: $(in_ns "$tag-$v" ip -6 route)"
done
[ "$(in_ns "$tag-vm1" cat /proc/sys/net/ipv6/conf/eth0/mtu)" = "$mtu" ] ||
  fail "vm1 did not take the MTU $mtu from the advertisement"

# --- DHCPv6: stateful address, stateless settings ---
# dhcp6 VM [ARGS]: dhclient -6 in the VM (ended on exit); its log in $work/VM.dhcp6.
dhcp6() {
  local v=$1
  shift
  : >"$work/$v.dhcp6"
  # dhclient runs its script with an environment of its own: the log's
  # path goes in the script.
  sed "s|\$DHCP6_LOG|$work/$v.dhcp6|" "$here/dhclient6.script" >"$work/$v.dhclient.sh"
  chmod +x "$work/$v.dhclient.sh"
  bg "$tag-$v" dhclient -6 -d -1 "$@" -sf "$work/$v.dhclient.sh" \
    -lf "$work/$v.leases" -pf "$work/$v.dhclient.pid" eth0 2>"$work/$v.dhclient.log"
}
# vm2's port has DHCPv6 options of its own (extra_dhcp_opts, ip_version 6):
# they replace the subnet's DNS server and the network's domain.
api PUT "/v2.0/ports/${ids[vm2]}" '{"port": {"extra_dhcp_opts": [
  {"opt_name": "dns-server", "opt_value": "fd00::99", "ip_version": 6},
  {"opt_name": "domain-search", "opt_value": "extra.example", "ip_version": 6}]}}' >/dev/null
wait_applied h2
dhcp6 vm2
leased() { grep -q "^$1 " "$work/$2.dhcp6"; }
retry 30 leased BOUND6 vm2 || fail "vm2: no DHCPv6 lease: $(cat "$work/vm2.dhcp6")"
expect_in "address=${ips[vm2]}" "$(cat "$work/vm2.dhcp6")"
expect_in "dns=fd00::99" "$(cat "$work/vm2.dhcp6")"
expect_in "domain=extra.example." "$(cat "$work/vm2.dhcp6")"
has_address() { in_ns "$tag-$1" ip -6 addr show dev eth0 | grep -q "inet6 $2/"; }
retry 10 has_address vm2 "${ips[vm2]}" ||
  fail "vm2 did not take its address: $(in_ns "$tag-vm2" ip -6 addr) $(cat "$work/vm2.dhcp6")"
retry 10 routed vm2 || fail "vm2: no default route: $(in_ns "$tag-vm2" ip -6 route)"
dhcp6 vm3 -S
retry 30 leased "[A-Z0-9]*" vm3 || fail "vm3: no DHCPv6 information: $(cat "$work/vm3.dhcp6")"
expect_in "dns=fd00::53" "$(cat "$work/vm3.dhcp6")"
expect_in "domain=dhcpv6-stateless.example." "$(cat "$work/vm3.dhcp6")"
retry 20 slaac_done vm3 "${ips[vm3]}" || fail "vm3: no SLAAC address: $(in_ns "$tag-vm3" ip -6 addr)"

# --- routing across subnets and hosts ---
for pair in "vm1 vm2" "vm1 vm3" "vm2 vm4" "vm1 vm4"; do
  set -- $pair
  in_ns "$tag-$1" ping -6 -c 2 -W 2 "${ips[$2]}" >"$work/ping" ||
    fail "$1 -> $2 (${ips[$2]}): $(cat "$work/ping")"
done
in_ns "$tag-vm1" ping -6 -c 1 -W 2 fd00:b::1 >"$work/ping" || fail "the router's address: $(cat "$work/ping")"
gw_ll=$(in_ns "$tag-vm1" ip -6 route show default | grep -o 'fe80::[0-9a-f:]*')
in_ns "$tag-vm1" ping -6 -c 1 -W 2 "$gw_ll%eth0" >"$work/ping" ||
  fail "the router's link-local address: $(cat "$work/ping")"
hits=$(kernel_hits h1 h2)
send_blob "$tag-vm1" "$tag-vm2" "${ips[vm2]}" 5001 1048576
# With the kernel fast path (the default), the established connection's
# segments crossed in the kernel, routed (hop limit) as the agent routes.
if fast_path_on h1; then
  carried() { [ $(($(kernel_hits h1 h2) - hits)) -gt 20 ]; }
  retry 5 carried || fail "the kernel carried $(($(kernel_hits h1 h2) - hits)) IPv6 packets"
  echo "IPv6 TCP routed vm1 -> vm2: $(($(kernel_hits h1 h2) - hits)) packets in the kernel"
fi
# Fragmented datagrams (the kernels' fragment headers), both ways.
udp_big "$tag-vm1" "$tag-vm2" "${ips[vm2]}" 9100
# Hop limit 1: time exceeded from the router's address on vm1's subnet.
out=$(in_ns "$tag-vm1" ping -6 -c 1 -W 2 -t 1 "${ips[vm2]}" 2>&1 || true)
expect_in "From fd00:a::1 icmp_seq=1 Time exceeded" "$out"

# --- packet too big: vm1 believes its link takes 1500 ---
# (The routers' advertisements would set it back: not taken from here on.)
in_ns "$tag-vm1" sysctl -qw net.ipv6.conf.eth0.accept_ra_mtu=0
in_ns "$tag-vm1" sysctl -qw net.ipv6.conf.eth0.mtu=1500
in_ns "$tag-vm1" ip -6 route replace default via "$gw_ll" dev eth0 mtu 1500
in_ns "$tag-vm1" ip -6 route flush cache
# Routed to vm2 (the router tells; on one network nothing does, as on a
# physical switch).
out=$(in_ns "$tag-vm1" ping -6 -c 1 -W 2 -M do -s 1440 "${ips[vm2]}" 2>&1 || true)
expect_in "From fd00:a::1 icmp_seq=1 Packet too big: mtu=$mtu" "$out"
in_ns "$tag-vm1" ip -6 route get "${ips[vm2]}" | grep -q "mtu $mtu" ||
  fail "vm1 did not learn the path MTU: $(in_ns "$tag-vm1" ip -6 route get "${ips[vm2]}")"
in_ns "$tag-vm1" ping -6 -c 1 -W 2 -s 1440 "${ips[vm2]}" >"$work/ping" ||
  fail "fragmented by vm1 after packet too big: $(cat "$work/ping")"
# A fresh TCP connection sized by the link's 1500 until told otherwise.
in_ns "$tag-vm1" ip -6 route flush cache
send_blob "$tag-vm1" "$tag-vm2" "${ips[vm2]}" 5002 1048576

# --- the external network, routed ---
public=$(admin POST /v2.0/networks '{"network": {"name": "public6", "router:external": true,
  "provider:network_type": "flat", "provider:physical_network": "physnet1"}}' |
  field 'd["network"]["id"]')
admin POST /v2.0/subnets '{"subnet": {"network_id": "'"$public"'", "ip_version": 6,
  "cidr": "2001:db8:1::/64", "gateway_ip": "2001:db8:1::1", "enable_dhcp": false}}' >/dev/null
gw6=$(api PUT "/v2.0/routers/$router" '{"router": {"external_gateway_info":
  {"network_id": "'"$public"'"}}}' |
  field 'd["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]')
in_ns "$outside" ip -6 route add fd00::/16 via "$gw6"
sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id": "'"$sg"'",
  "direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp"}}' >/dev/null
for v in vm1 vm2; do
  retry 10 in_ns "$tag-$v" ping -6 -c 1 -W 1 2001:db8:1::1 ||
    fail "$v cannot reach outside: $(in_ns "$tag-$v" ping -6 -c 1 -W 1 2001:db8:1::1)"
  retry 10 in_ns "$outside" ping -6 -c 1 -W 1 "${ips[$v]}" ||
    fail "outside cannot reach $v (${ips[$v]})"
done
bg "$outside" sh -c "exec nc -6 -lknv 9000 >'$work/seen' 2>&1"
wait_listen "$outside" 9000
in_ns "$tag-vm2" sh -c "echo hello | nc -6 -N -w 2 2001:db8:1::1 9000" || fail "vm2: tcp to outside"
seen() { grep -q "Connection received on ${ips[vm2]} " "$work/seen"; }
retry 5 seen || fail "outside saw another source than vm2's own address: $(cat "$work/seen")"
send_blob "$tag-vm1" "$outside" 2001:db8:1::1 9001 1048576
udp_big "$tag-vm2" "$outside" 2001:db8:1::1 9101
in_ns "$outside" ip -6 neigh show "$gw6" | grep -q lladdr ||
  fail "outside did not resolve the gateway: $(in_ns "$outside" ip -6 neigh)"

# --- port security ---
in_ns "$tag-vm1" ip -6 addr add fd00:a::99/64 dev eth0 nodad
if in_ns "$tag-vm1" ping -6 -c 2 -i 0.2 -W 1 -I fd00:a::99 "${ips[vm4]}" >/dev/null; then
  fail "a spoofed IPv6 source got through"
fi
in_ns "$tag-vm3" python3 "$here/send_ra.py" eth0
counted() {
  local status
  status=$("$bin/canopy-agent" --run-dir "$work/$1" status)
  [ "$(field "d['datapath']['drops'].get('$2', 0)" <<<"$status")" -gt 0 ]
}
retry 10 counted h1 port_security_ip || fail "no port_security_ip drop counted on h1"
retry 10 counted h2 port_security_router_advertisement ||
  fail "no port_security_router_advertisement drop counted on h2"
if in_ns "$tag-vm4" ip -6 addr show dev eth0 | grep -q "fd00:bad"; then
  fail "vm4 took the rogue advertisement's prefix"
fi
echo "e2e.ipv6: all checks passed"
