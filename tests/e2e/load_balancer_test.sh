#!/usr/bin/env bash
# A load balancer in the datapath, with real sockets in namespaces: four
# hosts; backends be1 (h2) and be2 (h3) on net1, be3 (h4) on net2 behind the
# router; clients vm1 (h1, net1) and vm3 (h1, net2). The load balancer is made
# through Octavia's API: a VIP on net1, a TCP listener on 80 and a UDP one on
# 53, a ROUND_ROBIN pool of the three. Checks: every backend answers the
# VIP (each says its name), from a client on the VIP's network and from one
# behind the router; a backend reaches its own VIP (hairpin); the VIP
# answers pings, resets a port no listener has; a connection keeps its
# backend while another backend is added; a disabled member takes no new
# connections; weights spread connections; SOURCE_IP keeps a client on one
# backend; the UDP listener; the drops are counted by name.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
command -v socat >/dev/null || fail "socat is not installed (scripts/install-deps.sh)"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --load-balancer
lb() {
  curl -sS -X "$1" "$api_url/load-balancer/v2/lbaas$2" -H 'X-Project-Id: demo' \
    -H 'Content-Type: application/json' ${3:+-d "$3"}
}
make_underlay
for h in 1 2 3 4; do
  add_host "h$h" "192.168.77.$h"
  start_agent "h$h" "192.168.77.$h"
done

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
router=$(api POST /v2.0/routers '{"router": {"name": "r1"}}' | field 'd["router"]["id"]')
for s in "$sub1" "$sub2"; do
  api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"$s"'"}' >/dev/null
done
# Backends admit web and DNS clients from anywhere, and pings.
default_sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
for rule in '"protocol": "tcp", "port_range_min": 80, "port_range_max": 80' \
  '"protocol": "udp", "port_range_min": 53, "port_range_max": 53' '"protocol": "icmp"'; do
  api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
    "'"$default_sg"'", "direction": "ingress", "ethertype": "IPv4", '"$rule"'}}' >/dev/null
done

declare -A ip_of
for vm in "vm1 h1 $net1" "vm3 h1 $net2" "be1 h2 $net1" "be2 h3 $net1" "be3 h4 $net2" \
  "be4 h2 $net1"; do
  set -- $vm
  new_port "$1" "$3"
  ip_of[$1]=$port_ip
  add_vm "$1" "$2" "$port_id" "$port_mac"
done
for vm in vm1 vm3 be1 be2 be3 be4; do dhcp "$vm" >/dev/null; done
for be in be1 be2 be3 be4; do
  # Says its name, then echoes what it is sent until the client is done.
  bg "$tag-$be" busybox nc -ll -p 80 -e sh -c "echo $be; exec cat"
  bg "$tag-$be" socat UDP4-RECVFROM:53,fork SYSTEM:"echo $be"
  wait_listen "$tag-$be" 80
done

out=$(lb POST /loadbalancers '{"loadbalancer": {"name": "web", "vip_subnet_id": "'"$sub1"'"}}')
lb_id=$(field 'd["loadbalancer"]["id"]' <<<"$out")
vip=$(field 'd["loadbalancer"]["vip_address"]' <<<"$out")
[ -n "$vip" ] || fail "no VIP: $out"
listener=$(lb POST /listeners '{"listener": {"name": "http", "protocol": "TCP",
  "protocol_port": 80, "loadbalancer_id": "'"$lb_id"'"}}' | field 'd["listener"]["id"]')
pool=$(lb POST /pools '{"pool": {"name": "web", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
  "listener_id": "'"$listener"'"}}' | field 'd["pool"]["id"]')
declare -A member_of
for be in be1 be2 be3; do
  subnet=$sub1
  [ "$be" = be3 ] && subnet=$sub2
  member_of[$be]=$(lb POST "/pools/$pool/members" '{"member": {"address": "'"${ip_of[$be]}"'",
    "protocol_port": 80, "subnet_id": "'"$subnet"'"}}' | field 'd["member"]["id"]')
  [ -n "${member_of[$be]}" ] || fail "member $be not created"
done
for h in h1 h2 h3 h4; do wait_applied "$h"; done

ask() { in_ns "$tag-$1" nc -N -w 2 "$vip" "${2:-80}" </dev/null 2>/dev/null || true; }
# answered_by CLIENT COUNT: the names that answered COUNT connections, sorted
# and counted.
answered_by() {
  for _ in $(seq 1 "$2"); do ask "$1"; done | sort | uniq -c
}
all_three() { [ "$(answered_by "$1" 40 | grep -c 'be[123]$')" = 3 ]; }
retry 10 all_three vm1 || fail "vm1 -> $vip: not every backend answers: $(answered_by vm1 40)"
retry 10 all_three vm3 || fail "vm3 (behind the router) -> $vip: $(answered_by vm3 40)"
# Hairpin: be1 reaches its own VIP, and every backend, itself included.
retry 10 all_three be1 || fail "be1 -> its own VIP: $(answered_by be1 40)"

in_ns "$tag-vm1" ping -c 2 -i 0.2 -W 2 "$vip" >"$work/ping" || fail "ping $vip: $(cat "$work/ping")"
out=$(in_ns "$tag-vm1" nc -w 2 -z "$vip" 443 2>&1) && fail "port 443 of the VIP is open: $out"

# A connection keeps its backend while a member is added: what it sends
# after is still echoed by the same backend.
mkfifo "$work/hold"
bg "$tag-vm1" sh -c "exec 3<>'$work/hold'; exec nc '$vip' 80 <&3 >'$work/held'"
retry 10 grep -q be "$work/held" || fail "the held connection got no answer"
held_by=$(cat "$work/held")
member_of[be4]=$(lb POST "/pools/$pool/members" '{"member": {"address": "'"${ip_of[be4]}"'",
  "protocol_port": 80}}' | field 'd["member"]["id"]')
four() { [ "$(answered_by vm1 60 | grep -c 'be[1234]$')" = 4 ]; }
retry 10 four || fail "be4 takes no new connections: $(answered_by vm1 60)"
echo still-here >"$work/hold"
retry 10 grep -q still-here "$work/held" || fail "the held connection broke: $(cat "$work/held")"
[ "$(head -1 "$work/held")" = "$held_by" ] || fail "the held connection changed: $(cat "$work/held")"

# A disabled member takes no new connections.
lb PUT "/pools/$pool/members/${member_of[be2]}" '{"member": {"admin_state_up": false}}' >/dev/null
no_be2() { ! answered_by vm1 30 | grep -q be2; }
retry 10 no_be2 || fail "be2 still answers while disabled"
lb DELETE "/pools/$pool/members/${member_of[be4]}" >/dev/null
lb PUT "/pools/$pool/members/${member_of[be2]}" '{"member": {"admin_state_up": true}}' >/dev/null
retry 10 all_three vm1 || fail "be2 is not back: $(answered_by vm1 40)"

# Weights: be1 3, be2 1, be3 0 (drained): of 120 connections, be1 takes
# about three quarters (Maglev hashing over source ports: within 15 points).
lb PUT "/pools/$pool/members/${member_of[be1]}" '{"member": {"weight": 3}}' >/dev/null
lb PUT "/pools/$pool/members/${member_of[be3]}" '{"member": {"weight": 0}}' >/dev/null
weighted() {
  answered_by vm1 120 >"$work/weights"
  local one three
  one=$(awk '$2 == "be1" {print $1}' "$work/weights")
  three=$(awk '$2 == "be3" {print $1}' "$work/weights")
  [ -z "$three" ] && [ "${one:-0}" -ge 72 ] && [ "${one:-0}" -le 108 ]
}
retry 10 weighted || fail "weights 3:1:0 spread as $(cat "$work/weights")"

# SOURCE_IP: a client stays on one backend.
lb PUT "/pools/$pool" '{"pool": {"lb_algorithm": "SOURCE_IP"}}' >/dev/null
sticky() { [ "$(answered_by vm1 20 | wc -l)" = 1 ]; }
retry 10 sticky || fail "SOURCE_IP: vm1 reached $(answered_by vm1 20)"

# A UDP listener on 53 with the same members.
udp_listener=$(lb POST /listeners '{"listener": {"name": "dns", "protocol": "UDP",
  "protocol_port": 53, "loadbalancer_id": "'"$lb_id"'"}}' | field 'd["listener"]["id"]')
udp_pool=$(lb POST /pools '{"pool": {"name": "dns", "protocol": "UDP",
  "lb_algorithm": "ROUND_ROBIN", "listener_id": "'"$udp_listener"'"}}' | field 'd["pool"]["id"]')
for be in be1 be2; do
  lb POST "/pools/$udp_pool/members" '{"member": {"address": "'"${ip_of[$be]}"'",
    "protocol_port": 53}}' >/dev/null
done
udp_ask() { echo q | in_ns "$tag-vm1" socat -T 2 - "UDP4:$vip:53" 2>/dev/null || true; }
udp_both() {
  for _ in $(seq 1 30); do udp_ask; done | sort -u >"$work/udp"
  [ "$(grep -c 'be[12]$' "$work/udp")" = 2 ]
}
retry 10 udp_both || fail "UDP $vip:53 answered by: $(cat "$work/udp")"

drops=$("$bin/canopy-agent" --run-dir "$work/h1" status)
expect_in "lb_no_listener" "$drops"
echo "e2e.load_balancer: all checks passed"
