#!/usr/bin/env bash
# A load balancer with an IPv6 VIP, with real sockets in namespaces: three
# hosts; client vm1 (h1), backends be1 (h2) and be2 (h3) on a network with
# an IPv6 SLAAC subnet (and an IPv4 one) on a router, their addresses taken
# by their own kernels. The load balancer is made through Octavia's API
# with its VIP on the IPv6 subnet, a TCP listener on 80 and a UDP one on 53.
# Checks: the VIP is found by neighbour discovery (the VIP port's MAC);
# every backend answers the VIP over TCP and UDP, the replies from the VIP
# (else the client's sockets would not take them); a backend reaches its own
# VIP (hairpin); pings are answered; a port without a listener is refused;
# a disabled member takes no new connections; 4 MiB echoed through the VIP
# (with the kernel fast path: in the client's host's kernel, the listener's
# bytes_in counting them).
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
command -v socat >/dev/null || fail "socat is not installed (scripts/install-deps.sh)"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --load-balancer
make_underlay
for h in 1 2 3; do
  add_host "h$h" "192.168.77.$h"
  start_agent "h$h" "192.168.77.$h"
done

net=$(api POST /v2.0/networks '{"network": {"name": "web"}}' | field 'd["network"]["id"]')
sub4=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' | field 'd["subnet"]["id"]')
sub6=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 6,
  "cidr": "fd00:5::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}' |
  field 'd["subnet"]["id"]')
router=$(api POST /v2.0/routers '{"router": {"name": "r1"}}' | field 'd["router"]["id"]')
for s in "$sub4" "$sub6"; do
  api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"$s"'"}' >/dev/null
done
default_sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
for rule in '"protocol": "tcp", "port_range_min": 80, "port_range_max": 80' \
  '"protocol": "udp", "port_range_min": 53, "port_range_max": 53' '"protocol": "ipv6-icmp"' \
  '"protocol": "tcp", "port_range_min": 8080, "port_range_max": 8080'; do
  api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
    "'"$default_sg"'", "direction": "ingress", "ethertype": "IPv6", '"$rule"'}}' >/dev/null
done

declare -A ip6_of server_of
v6_of() { field '[f["ip_address"] for f in d["port"]["fixed_ips"] if ":" in f["ip_address"]][0]'; }
for vm in "vm1 h1" "be1 h2" "be2 h3"; do
  set -- $vm
  new_port "$1" "$net"
  ip6_of[$1]=$(v6_of <"$work/$1.port")
  add_vm "$1" "$2" "$port_id" "$port_mac"
done
slaac_done() {
  in_ns "$tag-$1" ip -6 addr show dev eth0 scope global | grep -v tentative | grep -q "inet6 $2/64"
}
for vm in vm1 be1 be2; do
  retry 30 slaac_done "$vm" "${ip6_of[$vm]}" ||
    fail "$vm: no SLAAC address ${ip6_of[$vm]}: $(in_ns "$tag-$vm" ip -6 addr)"
done
# Each backend says its name, over TCP and UDP.
for be in be1 be2; do
  bg "$tag-$be" socat -lf /dev/null TCP6-LISTEN:80,fork,reuseaddr SYSTEM:"echo $be"
  server_of[$be]=${agent_pids[-1]}
  bg "$tag-$be" socat -lf /dev/null UDP6-RECVFROM:53,fork SYSTEM:"echo $be"
  bg "$tag-$be" socat -lf /dev/null TCP6-LISTEN:8080,fork,reuseaddr EXEC:cat
  wait_listen "$tag-$be" 80
  wait_listen "$tag-$be" 8080
done

out=$(lb POST /loadbalancers '{"loadbalancer": {"name": "web6", "vip_subnet_id": "'"$sub6"'"}}')
lb_id=$(field 'd["loadbalancer"]["id"]' <<<"$out")
vip=$(field 'd["loadbalancer"]["vip_address"]' <<<"$out")
case $vip in fd00:5::*) ;; *) fail "the VIP $vip is not on the IPv6 subnet: $out" ;; esac
vip_port=$(field 'd["loadbalancer"]["vip_port_id"]' <<<"$out")
vip_mac=$(api GET "/v2.0/ports/$vip_port" | field 'd["port"]["mac_address"]')
declare -A member_of
for protocol in TCP:80 UDP:53 TCP:8080; do
  listener=$(lb POST /listeners '{"listener": {"protocol": "'"${protocol%:*}"'",
    "protocol_port": '"${protocol#*:}"', "loadbalancer_id": "'"$lb_id"'"}}' |
    field 'd["listener"]["id"]')
  pool=$(lb POST /pools '{"pool": {"protocol": "'"${protocol%:*}"'", "lb_algorithm": "ROUND_ROBIN",
    "listener_id": "'"$listener"'"}}' | field 'd["pool"]["id"]')
  for be in be1 be2; do
    member_of[$be.$protocol]=$(lb POST "/pools/$pool/members" '{"member": {"address":
      "'"${ip6_of[$be]}"'", "protocol_port": '"${protocol#*:}"', "subnet_id": "'"$sub6"'"}}' |
      field 'd["member"]["id"]')
    [ -n "${member_of[$be.$protocol]}" ] || fail "member $be ($protocol) not created"
  done
  [ "$protocol" = TCP:80 ] && tcp_pool=$pool
  [ "$protocol" = TCP:8080 ] && bulk_listener=$listener
done
for h in h1 h2 h3; do wait_applied "$h"; done

ask() { in_ns "$tag-$1" nc -N -w 2 "$vip" 80 </dev/null 2>/dev/null || true; }
ask_udp() { in_ns "$tag-$1" socat -t 1 - "UDP6:[$vip]:53" <<<q 2>/dev/null || true; }
answered_by() { for _ in $(seq 1 "$3"); do "$1" "$2"; done | sort | uniq -c; }
both() { [ "$(answered_by "$1" "$2" 30 | grep -c 'be[12]$')" = 2 ]; }
retry 10 both ask vm1 || fail "vm1 -> [$vip]:80: $(answered_by ask vm1 30)"
# The VIP was found by neighbour discovery: the VIP port's MAC.
expect_in "lladdr $vip_mac" "$(in_ns "$tag-vm1" ip -6 neigh show "$vip")"
retry 10 both ask_udp vm1 || fail "vm1 -> [$vip]:53 (UDP): $(answered_by ask_udp vm1 30)"
# Hairpin: be1 reaches its own VIP, and both backends, itself included.
retry 10 both ask be1 || fail "be1 -> its own VIP: $(answered_by ask be1 30)"
in_ns "$tag-vm1" ping -6 -c 2 -i 0.2 -W 2 "$vip" >"$work/ping" || fail "ping $vip: $(cat "$work/ping")"
out=$(in_ns "$tag-vm1" nc -w 2 -z "$vip" 443 2>&1) && fail "port 443 of the VIP is open: $out"

# A disabled member takes no new connections.
lb PUT "/pools/$tcp_pool/members/${member_of[be2.TCP:80]}" \
  '{"member": {"admin_state_up": false}}' >/dev/null
only_be1() { [ "$(answered_by ask vm1 20 | grep -c 'be[12]$')" = 1 ] && [ "$(ask vm1)" = be1 ]; }
retry 10 only_be1 || fail "be2 still answers while disabled: $(answered_by ask vm1 20)"
# Bulk through the VIP (IPv6), in vm1's host's kernel with the fast path.
bulk_through_vip h1 vm1 "$vip" 8080 "/listeners/$bulk_listener/stats"
echo "e2e.lb_ipv6: all checks passed"
