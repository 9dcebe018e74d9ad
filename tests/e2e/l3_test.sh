#!/usr/bin/env bash
# Routers, security groups, floating IPs and SNAT with real guests: two
# hosts (h2 holds the router's gateway), VMs on two networks behind one
# router, an external network (a bridge) with an outside namespace. Checks:
# a routed ping across hosts; a TCP port blocked until a rule allows it and
# blocked again for new connections once the rule goes; the floating IP
# reachable from outside and the VM's outbound connections seen from it;
# a VM without floating IP reaching outside as the router's gateway address;
# 4 MiB over TCP each way through the floating IP and out through SNAT, with
# the guests' offloads on (NAT rewrites what their partial checksums cover).
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth

make_underlay
make_external
add_host h1 192.168.77.1
add_host h2 192.168.77.2
add_uplink h1
add_uplink h2
add_outside 203.0.113.1/24
start_agent h1 192.168.77.1 --uplink physnet1=ext0
start_agent h2 192.168.77.2 --uplink physnet1=ext0 --gateway

public=$(public_network)
net() {
  local id
  id=$(api POST /v2.0/networks '{"network": {"name": "'"$1"'"}}' | field 'd["network"]["id"]')
  api POST /v2.0/subnets '{"subnet": {"network_id": "'"$id"'", "ip_version": 4,
    "cidr": "'"$2"'"}}' | field 'd["subnet"]["id"]'
}
sub1=$(net net1 10.0.0.0/24)
sub2=$(net net2 10.0.1.0/24)
net1=$(api GET "/v2.0/subnets/$sub1" | field 'd["subnet"]["network_id"]')
net2=$(api GET "/v2.0/subnets/$sub2" | field 'd["subnet"]["network_id"]')
router=$(api POST /v2.0/routers '{"router": {"name": "r1",
  "external_gateway_info": {"network_id": "'"$public"'"}}}' | field 'd["router"]["id"]')
gateway_ip=$(api GET "/v2.0/routers/$router" |
  field 'd["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]')
for s in "$sub1" "$sub2"; do
  api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"$s"'"}' >/dev/null
done

# vm1 (net1, h1) in the default group, which also admits ICMP from anywhere;
# vm2 (net2, h2) in "web", which admits nothing yet.
default_sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$default_sg"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}}' >/dev/null
web=$(api POST /v2.0/security-groups '{"security_group": {"name": "web"}}' |
  field 'd["security_group"]["id"]')
port() { new_port "$@"; }
port vm1 "$net1"; vm1_id=$port_id; vm1_ip=$port_ip; add_vm vm1 h1 "$vm1_id" "$port_mac"
port vm2 "$net2" "$web"; vm2_id=$port_id; vm2_ip=$port_ip; add_vm vm2 h2 "$vm2_id" "$port_mac"
dhcp vm1 >/dev/null
dhcp vm2 >/dev/null

# Routed, across the hosts: vm2 pings vm1 (allowed by vm1's ICMP rule).
retry 10 in_ns "$tag-vm2" ping -c 1 -W 1 "$vm1_ip" || fail "vm2 cannot ping vm1 through r1"
in_ns "$tag-vm2" ping -c 3 -i 0.2 -W 2 "$vm1_ip" >"$work/ping" || fail "routed ping: $(cat "$work/ping")"
expect_in "ttl=63" "$(cat "$work/ping")"

# Security groups: tcp 8080 on vm2 is blocked until a rule allows it.
bg "$tag-vm2" nc -lk 8080
wait_listen "$tag-vm2" 8080
if in_ns "$tag-vm1" nc -z -w 2 "$vm2_ip" 8080; then fail "tcp 8080 open without a rule"; fi
rule=$(api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$web"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
  "port_range_min": 8080, "port_range_max": 8080}}' | field 'd["security_group_rule"]["id"]')
retry 10 in_ns "$tag-vm1" nc -z -w 1 "$vm2_ip" 8080 || fail "tcp 8080 still blocked with the rule"
api DELETE "/v2.0/security-group-rules/$rule" >/dev/null
wait_applied h2
if in_ns "$tag-vm1" nc -z -w 2 "$vm2_ip" 8080; then fail "tcp 8080 open after the rule went"; fi

# A remote-group rule admits members only: "members" opens tcp 9090 to its
# own members; vm1 gets through once it joins the group.
members=$(api POST /v2.0/security-groups '{"security_group": {"name": "members"}}' |
  field 'd["security_group"]["id"]')
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$members"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
  "port_range_min": 9090, "port_range_max": 9090, "remote_group_id": "'"$members"'"}}' >/dev/null
api PUT "/v2.0/ports/$vm2_id" '{"port": {"security_groups": ["'"$web"'", "'"$members"'"]}}' >/dev/null
bg "$tag-vm2" nc -lk 9090
wait_listen "$tag-vm2" 9090
wait_applied h2
if in_ns "$tag-vm1" nc -z -w 2 "$vm2_ip" 9090; then fail "tcp 9090 open to a non-member"; fi
api PUT "/v2.0/ports/$vm1_id" '{"port": {"security_groups": ["'"$default_sg"'", "'"$members"'"]}}' >/dev/null
retry 10 in_ns "$tag-vm1" nc -z -w 1 "$vm2_ip" 9090 || fail "tcp 9090 closed to a member"

# An address-group rule admits the group's addresses: tcp 7070 opens to vm1
# once its address joins the group.
admins=$(api POST /v2.0/address-groups '{"address_group": {"name": "admins",
  "addresses": ["10.99.0.0/24"]}}' | field 'd["address_group"]["id"]')
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$web"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
  "port_range_min": 7070, "port_range_max": 7070, "remote_address_group_id": "'"$admins"'"}}' >/dev/null
bg "$tag-vm2" nc -lk 7070
wait_listen "$tag-vm2" 7070
wait_applied h2
if in_ns "$tag-vm1" nc -z -w 2 "$vm2_ip" 7070; then fail "tcp 7070 open to an address outside the group"; fi
api PUT "/v2.0/address-groups/$admins/add_addresses" '{"addresses": ["'"$vm1_ip"'/32"]}' >/dev/null
retry 10 in_ns "$tag-vm1" nc -z -w 1 "$vm2_ip" 7070 || fail "tcp 7070 closed to an address in the group"

# Floating IP: announced by gratuitous ARP from vm1's host, reachable from
# outside; vm1's outbound connections come from it.
bg "$outside" sh -c "exec timeout 20 tcpdump -l -n -i eth0 arp >'$work/arp' 2>'$work/arp.err'"
wait_capture "$work/arp.err"
fip=$(api POST /v2.0/floatingips '{"floatingip": {"floating_network_id": "'"$public"'",
  "port_id": "'"$vm1_id"'"}}' | field 'd["floatingip"]["floating_ip_address"]')
retry 10 grep -q "who-has $fip tell $fip" "$work/arp" || fail "no gratuitous ARP for $fip: $(cat "$work/arp")"
retry 10 in_ns "$outside" ping -c 1 -W 1 "$fip" || fail "outside cannot ping the floating IP $fip"
bg "$outside" sh -c "exec nc -lknv 9000 >'$work/seen' 2>&1"
wait_listen "$outside" 9000
retry 10 sh -c "echo hello | ip netns exec '$tag-vm1' nc -N -w 2 203.0.113.1 9000" ||
  fail "vm1 cannot reach outside"
expect_in "$fip" "$(cat "$work/seen")"

# Bulk TCP through the floating IP, both ways, arrives whole.
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$default_sg"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
  "port_range_min": 9002, "port_range_max": 9002}}' >/dev/null
hits=$(kernel_hits h1)
send_blob "$tag-vm1" "$outside" 203.0.113.1 9001
send_blob "$outside" "$tag-vm1" "$fip" 9002
# With the kernel fast path (the default), the established connections
# crossed h1's uplink in the kernel, translated to and from the floating IP
# (only they ran on h1 meanwhile).
carried() { [ $(($(kernel_hits "$1") - hits)) -gt 100 ]; }
if fast_path_on h1; then
  retry 5 carried h1 || fail "h1's kernel carried $(($(kernel_hits h1) - hits)) packets of the floating IP"
  echo "floating IP TCP both ways: $(($(kernel_hits h1) - hits)) packets in h1's kernel"
fi

# SNAT: vm2 has no floating IP and comes out as the router's gateway address.
retry 10 sh -c "echo hello | ip netns exec '$tag-vm2' nc -N -w 2 203.0.113.1 9000" ||
  fail "vm2 cannot reach outside through SNAT"
expect_in "$gateway_ip" "$(cat "$work/seen")"
hits=$(kernel_hits h2)
send_blob "$tag-vm2" "$outside" 203.0.113.1 9003
# With the kernel fast path, the established connection crossed h2's
# uplink (h2 holds the gateway) in the kernel, translated by its mapping
# both ways.
if fast_path_on h2; then
  retry 5 carried h2 || fail "h2's kernel carried $(($(kernel_hits h2) - hits)) packets through SNAT"
  echo "SNAT TCP: $(($(kernel_hits h2) - hits)) packets in h2's kernel"
fi
# The trace shows the outside's real MAC, which h2 learned by ARP, not a
# placeholder (the agents report what they learn every few seconds).
outside_mac=$(in_ns "$outside" cat /sys/class/net/eth0/address)
traced() {
  OS_AUTH_TYPE=none OS_ENDPOINT=$api_url "$bin/canopy" trace --port "$vm2_id" --udp 9000 \
    --to 203.0.113.1 -f json >"$work/trace.json" && grep -q "$outside_mac" "$work/trace.json"
}
retry 15 traced || fail "the trace does not show the outside's MAC $outside_mac: $(cat "$work/trace.json")"

# Path MTU discovery through the translations: guests whose interfaces
# take 1500 bytes, more than their networks' MTU, announce a larger MSS;
# the outside's full-sized segments get "fragmentation needed" from the
# router, quoting them as sent (to the floating IP, to the gateway's
# address and port), and the transfers complete.
for v in vm1 vm2; do in_ns "$tag-$v" ip link set eth0 mtu 1500; done
send_blob "$outside" "$tag-vm1" "$fip" 9002
head -c 1048576 /dev/urandom >"$work/download"
bg "$outside" sh -c "exec nc -l -N 9005 <'$work/download'"
wait_listen "$outside" 9005
# (No -N here: vm2 sends nothing, and reads until the outside is done.)
in_ns "$tag-vm2" timeout 30 nc -w 10 203.0.113.1 9005 </dev/null >"$work/download.received" ||
  fail "vm2's download through SNAT failed"
cmp -s "$work/download" "$work/download.received" ||
  fail "vm2's download through SNAT: $(stat -c %s "$work/download.received") of 1048576 bytes"
# Both hosts told (h1 for the floating IP, h2 for SNAT); the counters are
# published every second.
told() {
  local n
  n=$("$bin/canopy-agent" --run-dir "$work/$1" status |
    field "d['datapath']['drops'].get('fragmentation_needed', 0)")
  [ "$n" -gt 0 ]
}
for h in h1 h2; do retry 5 told $h || fail "$h sent no fragmentation needed: not tested"; done

# Datagrams larger than the MTU, fragmented by the guests' and the
# outside's kernels: through SNAT, and to the floating IP (a rule admits
# the port; the answer's later fragments follow their first through
# conntrack and the translations).
udp_big "$tag-vm2" "$outside" 203.0.113.1 9100
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$default_sg"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "udp",
  "port_range_min": 9101, "port_range_max": 9101}}' >/dev/null
wait_applied h1
udp_big "$outside" "$tag-vm1" "$fip" 9101

echo "e2e.l3: all checks passed"
