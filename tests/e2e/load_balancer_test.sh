#!/usr/bin/env bash
# A load balancer in the datapath, with real sockets in namespaces: four
# hosts (h1 holds the router's gateway, with an outside client); backends
# be1 (h2) and be2 (h3) on net1, be3 (h4) on net2 behind the router; clients
# vm1 (h1, net1) and vm3 (h1, net2). The load balancer is made
# through Octavia's API: a VIP on net1, a TCP listener on 80 and a UDP one on
# 53, a ROUND_ROBIN pool of the three. Checks: every backend answers the
# VIP (each says its name), from a client on the VIP's network and from one
# behind the router; a backend reaches its own VIP (hairpin); the VIP
# answers pings, resets a port no listener has; a connection keeps its
# backend while another backend is added; a disabled member takes no new
# connections; weights spread connections; SOURCE_IP keeps a client on one
# backend; the UDP listener; a floating IP on the VIP from outside; statistics;
# health checks (TCP, UDP-CONNECT, HTTP with a path and codes, PING) take a
# stopped backend out within the monitor's window and back; the drops are
# counted by name; members on a host whose agent died go ERROR.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
command -v socat >/dev/null || fail "socat is not installed (scripts/install-deps.sh)"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --load-balancer
make_underlay
make_external
for h in 1 2 3 4; do add_host "h$h" "192.168.77.$h"; done
# h1 holds the router's gateway (and the floating IP on the VIP).
add_uplink h1
add_outside 203.0.113.1/24
start_agent h1 192.168.77.1 --uplink physnet1=ext0 --gateway
declare -A agent_of
for h in 2 3 4; do
  start_agent "h$h" "192.168.77.$h"
  agent_of[h$h]=${agent_pids[-1]}
done
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
declare -A tcp_server udp_server
# Says its name, then echoes what it is sent until the client is done.
serve_tcp() {
  bg "$tag-$1" busybox nc -ll -p 80 -e sh -c "echo $1; exec cat 2>/dev/null"
  tcp_server[$1]=${agent_pids[-1]}
  wait_listen "$tag-$1" 80
}
serve_udp() {
  bg "$tag-$1" socat -lf /dev/null UDP4-RECVFROM:53,fork SYSTEM:"echo $1"
  udp_server[$1]=${agent_pids[-1]}
}
for be in be1 be2 be3 be4; do
  serve_tcp "$be"
  serve_udp "$be"
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

# A floating IP on the VIP serves a client outside, through the gateway host.
vip_port=$(lb GET "/loadbalancers/$lb_id" | field 'd["loadbalancer"]["vip_port_id"]')
fip=$(api POST /v2.0/floatingips '{"floatingip": {"floating_network_id": "'"$public"'",
  "port_id": "'"$vip_port"'"}}' | field 'd["floatingip"]["floating_ip_address"]')
[ -n "$fip" ] || fail "no floating IP for the VIP"
wait_applied h1
outside_ask() { in_ns "$outside" nc -N -w 2 "$fip" 80 </dev/null 2>/dev/null || true; }
from_outside() {
  [ "$(for _ in $(seq 1 40); do outside_ask; done | sort -u | grep -c 'be[123]$')" = 3 ]
}
retry 10 from_outside || fail "outside -> $fip: $(for _ in 1 2 3; do outside_ask; done)"
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

# Octavia's statistics: what the clients' hosts carried (reported by their
# agents every few seconds).
counted() {
  lb GET "/loadbalancers/$lb_id/stats" >"$work/stats"
  field 'd["stats"]["total_connections"] >= 100 and d["stats"]["bytes_out"] > 0' \
    <"$work/stats" | grep -q True
}
retry 20 counted || fail "statistics: $(cat "$work/stats")"

# Bulk through the VIP, in vm1's host's kernel with the fast path.
bulk_through_vip h1 vm1 "$vip" 80 "/loadbalancers/$lb_id/stats"

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

# Health checks by each member's own host: TCP every second, down after two
# failures in a row, up again after two good ones. A stopped backend is
# found down within the monitor's window (2 x 1 s, plus a 1 s timeout) and
# no request fails after; started again, it comes back.
lb PUT "/pools/$pool" '{"pool": {"lb_algorithm": "ROUND_ROBIN"}}' >/dev/null
for be in be1 be3; do
  lb PUT "/pools/$pool/members/${member_of[$be]}" '{"member": {"weight": 1}}' >/dev/null
done
lb POST /healthmonitors '{"healthmonitor": {"pool_id": "'"$pool"'", "type": "TCP", "delay": 1,
  "timeout": 1, "max_retries": 2, "max_retries_down": 2}}' | grep -q '"healthmonitor"' ||
  fail "no health monitor"
status() { lb GET "/pools/$1/members/$2" | field 'd["member"]["operating_status"]'; }
is() { [ "$(status "$pool" "${member_of[$1]}")" = "$2" ]; }
all_online() { is be1 ONLINE && is be2 ONLINE && is be3 ONLINE; }
retry 15 all_online || fail "members not ONLINE: $(lb GET "/pools/$pool/members")"
kill "${tcp_server[be3]}"
stopped=$(date +%s%N)
retry 15 is be3 ERROR || fail "be3 stopped but not ERROR: $(status "$pool" "${member_of[be3]}")"
found=$((($(date +%s%N) - stopped) / 1000000))
echo "be3 found down in $found ms (monitor window 3000 ms)"
[ "$found" -le 8000 ] || fail "be3 found down after $found ms"
lb_status=$(lb GET "/loadbalancers/$lb_id" | field 'd["loadbalancer"]["operating_status"]')
[ "$lb_status" = DEGRADED ] || fail "the load balancer is $lb_status with a member down"
# The datapath follows the store: once be3 is ERROR, no request fails.
settled() { ! answered_by vm1 20 | grep -q 'be3$'; }
for h in h1 h2 h3 h4; do wait_applied "$h"; done
for i in $(seq 1 40); do
  got=$(ask vm1)
  case $got in be1 | be2) ;; *) fail "request $i after be3 went down got '$got'" ;; esac
done
serve_tcp be3
retry 15 is be3 ONLINE || fail "be3 started again but not ONLINE"
retry 10 all_three vm1 || fail "be3 is back ONLINE but takes nothing: $(answered_by vm1 40)"

# UDP-CONNECT (every 3 s at least, as Octavia has it): a backend whose DNS
# server stops is refused, hence ERROR.
lb POST /healthmonitors '{"healthmonitor": {"pool_id": "'"$udp_pool"'", "type": "UDP-CONNECT",
  "delay": 3, "timeout": 1, "max_retries": 1, "max_retries_down": 2}}' | grep -q '"healthmonitor"' ||
  fail "no UDP-CONNECT health monitor"
udp_members=$(lb GET "/pools/$udp_pool/members")
be2_udp=$(field '[m["id"] for m in d["members"] if m["address"] == "'"${ip_of[be2]}"'"][0]' \
  <<<"$udp_members")
udp_is() { [ "$(status "$udp_pool" "$be2_udp")" = "$1" ]; }
retry 15 udp_is ONLINE || fail "be2's UDP member is not ONLINE: $(lb GET "/pools/$udp_pool/members") $("$bin/canopy-agent" --run-dir "$work/h3" status | grep -A8 health_checks)"
kill "${udp_server[be2]}"
retry 20 udp_is ERROR || fail "be2's DNS stopped but its member is not ERROR"
only_be1() { [ "$(for _ in $(seq 1 10); do udp_ask; done | sort -u)" = be1 ]; }
retry 10 only_be1 || fail "UDP still reaches be2"

# HTTP: be1 has /healthz, be2 answers it 404; only be1 is ONLINE.
# PING: be3 stops answering echoes, and goes ERROR.
for be in be1 be2; do
  mkdir -p "$work/www-$be"
  echo "$be" >"$work/www-$be/index.html"
  [ "$be" = be1 ] && echo ok >"$work/www-$be/healthz"
  bg "$tag-$be" busybox httpd -f -p 8080 -h "$work/www-$be"
  wait_listen "$tag-$be" 8080
done
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$default_sg"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
  "port_range_min": 8080, "port_range_max": 8080}}' >/dev/null
web_listener=$(lb POST /listeners '{"listener": {"name": "web", "protocol": "HTTP",
  "protocol_port": 8080, "loadbalancer_id": "'"$lb_id"'"}}' | field 'd["listener"]["id"]')
web_pool=$(lb POST /pools '{"pool": {"name": "web", "protocol": "HTTP",
  "lb_algorithm": "ROUND_ROBIN", "listener_id": "'"$web_listener"'"}}' | field 'd["pool"]["id"]')
declare -A web_member
for be in be1 be2; do
  web_member[$be]=$(lb POST "/pools/$web_pool/members" '{"member": {"address":
    "'"${ip_of[$be]}"'", "protocol_port": 8080}}' | field 'd["member"]["id"]')
done
lb POST /healthmonitors '{"healthmonitor": {"pool_id": "'"$web_pool"'", "type": "HTTP",
  "delay": 1, "timeout": 1, "max_retries": 1, "max_retries_down": 1, "url_path": "/healthz",
  "expected_codes": "200-204"}}' | grep -q '"healthmonitor"' || fail "no HTTP health monitor"
web_is() { [ "$(status "$web_pool" "${web_member[$1]}")" = "$2" ]; }
retry 15 web_is be1 ONLINE || fail "be1 (with /healthz) is not ONLINE"
retry 15 web_is be2 ERROR || fail "be2 (404 on /healthz) is not ERROR"
web_only_be1() {
  [ "$(for _ in $(seq 1 10); do in_ns "$tag-vm1" wget -q -O - "http://$vip:8080/" 2>/dev/null
  done | sort -u)" = be1 ]
}
retry 10 web_only_be1 || fail "HTTP through the VIP still reaches be2"

lb DELETE "/healthmonitors/$(lb GET "/healthmonitors?pool_id=$pool" |
  field 'd["healthmonitors"][0]["id"]')" >/dev/null
lb POST /healthmonitors '{"healthmonitor": {"pool_id": "'"$pool"'", "type": "PING", "delay": 1,
  "timeout": 1, "max_retries": 1, "max_retries_down": 2}}' | grep -q '"healthmonitor"' ||
  fail "no PING health monitor"
retry 15 is be3 ONLINE || fail "be3 is not ONLINE by PING"
in_ns "$tag-be3" sysctl -qw net.ipv4.icmp_echo_ignore_all=1
retry 15 is be3 ERROR || fail "be3 ignores pings but is not ERROR"

drops=$("$bin/canopy-agent" --run-dir "$work/h1" status)
expect_in "lb_no_listener" "$drops"

# A host whose agent dies forwards and checks nothing: once the server has
# it dead (10 s without a session), its members are ERROR.
retry 10 is be2 ONLINE || fail "be2 is not ONLINE by PING"
kill "${agent_of[h3]}"
retry 30 is be2 ERROR || fail "h3's agent is dead but be2 is not ERROR"
echo "e2e.load_balancer: all checks passed"
