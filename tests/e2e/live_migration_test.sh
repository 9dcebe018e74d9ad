#!/usr/bin/env bash
# A live migration as Nova drives it through binding-extended, with
# namespace guests: vm1's port is bound to h1 (its tap made there, attached
# by the agent by itself); an inactive binding is made on h2, where the
# migrated guest's tap appears before the move (the port stays h1's);
# then the binding is activated on h2, the source's tap goes, and the
# guest (the same MAC and address, now behind h2's tap) is reached by vm2
# within a second or two; the port turns ACTIVE on h2 without any bind,
# and h1 lets its tap go.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
add_host h3 192.168.77.3
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2
start_agent h3 192.168.77.3

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
# ICMP admitted, so that vm2 can ping vm1 wherever it is.
default_sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$default_sg"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}}' >/dev/null
new_port vm2 "$net"; add_vm vm2 h3 "$port_id" "$port_mac"
dhcp vm2 >/dev/null
new_port vm1 "$net"
vm1_id=$port_id vm1_mac=$port_mac vm1_ip=$port_ip tap="tap${port_id:0:11}"
admin PUT "/v2.0/ports/$vm1_id" '{"port": {"binding:host_id": "h1",
  "device_owner": "compute:nova", "device_id": "'"$(cat /proc/sys/kernel/random/uuid)"'"}}' >/dev/null
status() { admin GET "/v2.0/ports/$vm1_id" | field 'd["port"]["status"]'; }
host() { admin GET "/v2.0/ports/$vm1_id" | field 'd["port"]["binding:host_id"]'; }

# guest NS HOST: vm1's guest side in NS behind "$tap" in HOST (as its VM).
guest() {
  new_ns "$1"
  ip link add "$tap" type veth peer name eth0 netns "$1"
  ip link set "$tap" netns "$tag-$2"
  in_ns "$tag-$2" ip link set "$tap" up
  in_ns "$1" ip link set eth0 address "$vm1_mac"
  in_ns "$1" ip addr add "$vm1_ip/24" dev eth0
}
guest "$tag-src" h1
in_ns "$tag-src" ip link set eth0 up
active() { [ "$(status)" = ACTIVE ]; }
retry 20 active || fail "vm1's port is $(status) with its tap on h1"
retry 10 in_ns "$tag-vm2" ping -c 1 -W 1 "$vm1_ip" || fail "vm2 cannot reach vm1 on h1"

# The target: an inactive binding on h2, and the migrated guest's tap
# there (its side still down, as a paused incoming VM).
out=$(admin POST "/v2.0/ports/$vm1_id/bindings" '{"binding": {"host": "h2"}}')
expect_in '"status":"INACTIVE"' "$out"
guest "$tag-dst" h2
wait_applied h2
[ "$(host)" = h1 ] || fail "the port left h1 before the activation"
"$bin/canopy-agent" --run-dir "$work/h2" list | grep -q "$tap" &&
  fail "h2 attached $tap before its binding was activated"

# The switch-over: activate on h2, the source VM stops (its tap goes), the
# target runs.
admin PUT "/v2.0/ports/$vm1_id/bindings/h2/activate" >/dev/null
start=$SECONDS
in_ns "$tag-h1" ip link del "$tap"
in_ns "$tag-dst" ip link set eth0 up
retry 10 in_ns "$tag-vm2" ping -c 1 -W 1 "$vm1_ip" || fail "vm2 cannot reach vm1 on h2"
echo "  vm1 reached on h2 $((SECONDS - start)) s after the activation"
[ $((SECONDS - start)) -le 3 ] || fail "vm1's traffic took $((SECONDS - start)) s to follow it"
retry 20 active || fail "vm1's port is $(status) on h2"
[ "$(host)" = h2 ] || fail "the port is $(host)'s"
admin DELETE "/v2.0/ports/$vm1_id/bindings/h1" >/dev/null
expect_in '"host":"h2"' "$(admin GET "/v2.0/ports/$vm1_id/bindings")"
gone() { ! "$bin/canopy-agent" --run-dir "$work/h1" list | grep -q "$tap"; }
retry 10 gone || fail "h1 still holds $tap"
echo "e2e.live_migration: all checks passed"
