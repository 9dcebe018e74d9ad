#!/usr/bin/env bash
# Stateless security groups (Neutron's stateful=false, extension
# stateful-security-group) with real sockets in namespaces: vm1 (h1, the
# default group) connects to a TCP server on vm2 (h2) whose group is
# stateless and admits TCP to port 80. Checks: the group shows
# stateful=false to the openstack client; without an egress rule vm2's
# replies are dropped (security_group_egress), so the connection fails,
# where a stateful group would have let them out; with one, it works, and
# h2 tracks none of vm2's packets. The API refuses to flip a group in use
# (409 SecurityGroupInUse) and a port with stateful and stateless groups
# (409 SecurityGroupConflict).
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

expect_in '"alias":"stateful-security-group"' "$(api GET /v2.0/extensions)"
net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
out=$(api POST /v2.0/security-groups '{"security_group": {"name": "sl", "stateful": false}}')
sl=$(field 'd["security_group"]["id"]' <<<"$out")
expect_in '"stateful":false' "$out"
[ "$(openstack --os-auth-type none --os-endpoint "$api_url" security group show "$sl" -f value \
  -c stateful)" = False ] || fail "the openstack client does not see the group stateless"
# A new group may send anything; here vm2 may send nothing until a rule
# says so, and may receive TCP to port 80.
for rule in $(api GET "/v2.0/security-group-rules?security_group_id=$sl" |
  field '" ".join(r["id"] for r in d["security_group_rules"])'); do
  api DELETE "/v2.0/security-group-rules/$rule"
done
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id": "'"$sl"'",
  "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80}}' \
  >/dev/null

new_port vm1 "$net"
add_vm vm1 h1 "$port_id" "$port_mac"
new_port vm2 "$net" "$sl"
vm2_port=$port_id vm2_ip=$port_ip
add_vm vm2 h2 "$port_id" "$port_mac"
dhcp vm1 >/dev/null
dhcp vm2 >/dev/null  # DHCP passes whatever the groups say
# Says its name, then echoes until the client is done.
bg "$tag-vm2" busybox nc -ll -p 80 -e sh -c "echo vm2; exec cat 2>/dev/null"
wait_listen "$tag-vm2" 80
wait_applied h1
wait_applied h2

ask() { in_ns "$tag-vm1" nc -N -w 2 "$vm2_ip" 80 </dev/null 2>/dev/null || true; }
[ -z "$(ask)" ] || fail "vm2 answered without an egress rule for its replies"
drops() { "$bin/canopy-agent" --run-dir "$work/h2" status; }
dropped_egress() { drops | grep -q '"security_group_egress"'; }
retry 10 dropped_egress || fail "h2 counted no security_group_egress drop: $(drops)"

api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id": "'"$sl"'",
  "direction": "egress", "protocol": "tcp"}}' >/dev/null
wait_applied h2
answers() { [ "$(ask)" = vm2 ]; }
retry 10 answers || fail "vm2 does not answer with an egress rule for its replies"
for _ in 1 2 3; do [ "$(ask)" = vm2 ] || fail "a connection to vm2 failed"; done
# A connection held open: vm1's host tracks it, vm2's does not.
mkfifo "$work/hold"
bg "$tag-vm1" sh -c "exec 3<>'$work/hold'; exec nc '$vm2_ip' 80 <&3 >'$work/held'"
retry 10 grep -q vm2 "$work/held" || fail "the held connection got no answer"
connections() { "$bin/canopy-agent" --run-dir "$work/$1" status | field 'd["datapath"]["connections"]'; }
tracked() { [ "$(connections h1)" -gt 0 ]; }
retry 10 tracked || fail "h1 tracks none of vm1's (stateful) connections"
[ "$(connections h2)" = 0 ] || fail "h2 tracks vm2's connections: $(connections h2)"

# A group in use keeps its kind; a port takes groups of one kind.
out=$(api PUT "/v2.0/security-groups/$sl" '{"security_group": {"stateful": true}}')
expect_in '"type":"SecurityGroupInUse"' "$out"
default_sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
out=$(api PUT "/v2.0/ports/$vm2_port" '{"port": {"security_groups": ["'"$sl"'", "'"$default_sg"'"]}}')
expect_in '"type":"SecurityGroupConflict"' "$out"
echo "e2e.stateless_groups: all checks passed"
