#!/usr/bin/env bash
# `canopy trace`, `canopy status` and `canopy topology` against a real server
# with real agents and guests: two hosts, two VMs on one network, vm2 in a
# "web" group that admits nothing yet. The trace must agree with what real
# traffic does: tcp 8080 dropped by vm2's security group (named) while `nc`
# fails, delivered with the rule named once a rule allows it while `nc`
# succeeds, and its reply passes as established. `canopy status` shows both
# agents connected with the latest view applied, their ports, and the drops
# the failed connection caused; `canopy topology` nests the VMs under their
# network.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
export OS_AUTH_TYPE=none OS_ENDPOINT=$api_url
canopy() { "$bin/canopy" "$@"; }

make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2

canopy network create net1 >/dev/null
canopy subnet create sub1 --network net1 --subnet-range 10.0.0.0/24 >/dev/null
canopy security group create web >/dev/null
vm1_id=$(canopy port create vm1 --network net1 -f json | field 'd["id"]')
vm2_id=$(canopy port create vm2 --network net1 --security-group web -f json | field 'd["id"]')
show() { canopy port show "$1" -f json; }
vm1_ip=$(show "$vm1_id" | field 'd["fixed_ips"][0]["ip_address"]')
vm2_ip=$(show "$vm2_id" | field 'd["fixed_ips"][0]["ip_address"]')
add_vm vm1 h1 "$vm1_id" "$(show "$vm1_id" | field 'd["mac_address"]')"
add_vm vm2 h2 "$vm2_id" "$(show "$vm2_id" | field 'd["mac_address"]')"
for id in "$vm1_id" "$vm2_id"; do
  retry 20 sh -c "'$bin/canopy' port show $id -f json | grep -q '\"status\": *\"ACTIVE\"'" ||
    fail "port $id did not become ACTIVE"
done
dhcp vm1 >/dev/null
dhcp vm2 >/dev/null

# Blocked: the trace names vm2's group, and real traffic agrees.
trace=$(canopy trace --port vm1 --tcp 8080 --to "$vm2_ip" -f json)
[ "$(field 'd["verdict"]' <<<"$trace")" = dropped ] || fail "trace: $trace"
[ "$(field 'd["drop_reason"]' <<<"$trace")" = security_group_ingress ] || fail "trace: $trace"
web_id=$(canopy security group show web -f json | field 'd["id"]')
expect_in "$web_id" "$trace"
bg "$tag-vm2" nc -lk 8080
wait_listen "$tag-vm2" 8080
if in_ns "$tag-vm1" nc -z -w 2 "$vm2_ip" 8080; then fail "tcp 8080 open without a rule"; fi

# Allowed once a rule admits it: the trace names the rule, the reply passes
# as an established connection, and real traffic gets through.
rule=$(canopy security group rule create web --ingress --protocol tcp --dst-port 8080 -f json |
  field 'd["id"]')
retry 20 sh -c "'$bin/canopy' trace --port vm1 --tcp 8080 --to $vm2_ip -f json |
  grep -q '\"verdict\": *\"delivered\"'" || fail "trace still drops with the rule"
trace=$(canopy trace --port vm1 --tcp 8080 --to "$vm2_ip" --reply -f json)
expect_in "$rule" "$trace"
[ "$(field 'd["reply"]["verdict"]' <<<"$trace")" = delivered ] || fail "reply: $trace"
expect_in "established" "$(field 'd["reply"]["steps"]' <<<"$trace")"
retry 10 in_ns "$tag-vm1" nc -z -w 1 "$vm2_ip" 8080 || fail "tcp 8080 blocked with the rule"
human=$(canopy trace --port vm1 --tcp 8080 --to "$vm2_ip")
expect_in "h1" "$human"
expect_in "h2" "$human"
expect_in "delivered to port vm2" "$human"

# Status: both agents connected with the latest view, their ports, and the
# security-group drops of the blocked connection (agents report every 2 s).
for _ in $(seq 1 50); do
  status=$(canopy status -f json)
  python3 - "$status" <<'EOF' && break
import json, sys
s = json.loads(sys.argv[1])
agents = {a["host"]: a for a in s["agents"]}
ok = all(agents[h]["connected"] and agents[h]["applied_version"] == agents[h]["latest_version"]
         and agents[h]["ports"] == 1 for h in ("h1", "h2"))
drops = {d["reason"]: d["count"] for d in s["drops"]}
sys.exit(0 if ok and drops.get("security_group_ingress", 0) >= 1 else 1)
EOF
  sleep 0.2
done
python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if any(d["reason"]=="security_group_ingress" for d in s["drops"]) else 1)' "$status" ||
  fail "status: $status"
human=$(canopy status)
expect_in "h1" "$human"
expect_in "192.168.77.2" "$human"
expect_in "security_group_ingress" "$human"

# Topology: the VMs under their network, with their addresses and hosts.
tree=$(canopy topology)
expect_in "net1" "$tree"
expect_in "vm1" "$tree"
expect_in "$vm2_ip" "$tree"
canopy topology --dot | grep -q '^digraph' || fail "topology --dot is not Graphviz"
echo "trace_status: ok"
