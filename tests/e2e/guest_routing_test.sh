#!/usr/bin/env bash
# What guests do with addresses that are not their ports' own:
#  - two guests running keepalived share a virtual IP (VRRP, the address
#    in both ports' allowed address pairs): a client reaches it at the
#    master, and again at the backup once the master stops;
#  - a guest that routes for others (its ports without port security),
#    reached through the router's static route (extraroute): a VM on
#    another network reaches a network behind the guest, both ways; with
#    port security on, the guest's forwarded answers are refused.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
command -v keepalived >/dev/null || { echo "SKIP: needs keepalived"; exit 77; }

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2

net() {
  local id
  id=$(api POST /v2.0/networks '{"network": {"name": "'"$1"'"}}' | field 'd["network"]["id"]')
  api POST /v2.0/subnets '{"subnet": {"network_id": "'"$id"'", "ip_version": 4,
    "cidr": "'"$2"'"'"${3:+, $3}"'}}' >/dev/null
  echo "$id"
}
net1=$(net net1 10.0.0.0/24)
net2=$(net net2 10.0.1.0/24)
net3=$(net net3 10.88.0.0/24 '"gateway_ip": null')
declare -A ids macs ips
vm() {  # vm NAME NETWORK HOST
  new_port "$1" "$2"
  ids[$1]=$port_id macs[$1]=$port_mac ips[$1]=$port_ip
  add_vm "$1" "$3" "$port_id" "$port_mac"
}

# --- a virtual IP shared by VRRP ---
vip=10.0.0.250
vm vrrp1 "$net1" h1
vm vrrp2 "$net1" h2
vm client "$net1" h1
for v in vrrp1 vrrp2; do
  api PUT "/v2.0/ports/${ids[$v]}" '{"port": {"allowed_address_pairs": [{"ip_address": "'"$vip"'"}]}}' >/dev/null
done
for v in vrrp1 vrrp2 client; do dhcp $v >/dev/null; done
wait_applied h1
wait_applied h2
# keepalived NAME PRIORITY: a VRRP instance for the virtual IP, in the
# foreground (ended with the test).
keepalived_in() {
  cat >"$work/$1.conf" <<CONF
global_defs {
  router_id $1
  enable_script_security
}
vrrp_instance vip {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority $2
  advert_int 1
  virtual_ipaddress {
    $vip/24
  }
}
CONF
  bg "$tag-$1" keepalived --dont-fork --log-console --vrrp --use-file "$work/$1.conf" \
    --pid "$work/$1.pid" --vrrp_pid "$work/$1.vrrp.pid" --no-syslog >"$work/$1.log" 2>&1
  keepalived_pid[$1]=${agent_pids[-1]}
}
declare -A keepalived_pid
holds() { in_ns "$tag-$1" ip -4 addr show dev eth0 | grep -q "inet $vip/"; }
keepalived_in vrrp1 150
keepalived_in vrrp2 100
retry 20 holds vrrp1 || fail "vrrp1 did not become master: $(tail -5 "$work/vrrp1.log")"
if holds vrrp2; then fail "both hold the virtual IP: the VRRP adverts do not cross"; fi
retry 10 in_ns "$tag-client" ping -c 1 -W 1 "$vip" || fail "the client cannot reach $vip at vrrp1"
at() { in_ns "$tag-client" ip neigh show "$vip" | grep -q "lladdr $1"; }
at "${macs[vrrp1]}" || fail "the virtual IP is not at vrrp1: $(in_ns "$tag-client" ip neigh)"
# The master stops: the backup takes the address and announces it.
kill "${keepalived_pid[vrrp1]}"
retry 15 holds vrrp2 || fail "vrrp2 did not take over: $(tail -5 "$work/vrrp2.log")"
retry 10 at "${macs[vrrp2]}" ||
  fail "the client still sends to vrrp1: $(in_ns "$tag-client" ip neigh show "$vip")"
retry 10 in_ns "$tag-client" ping -c 1 -W 1 "$vip" || fail "the client cannot reach $vip at vrrp2"

# --- a guest that routes, behind a static route ---
router=$(api POST /v2.0/routers '{"router": {"name": "r1"}}' | field 'd["router"]["id"]')
for n in "$net1" "$net2"; do
  sub=$(api GET "/v2.0/subnets?network_id=$n" | field 'd["subnets"][0]["id"]')
  api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"$sub"'"}' >/dev/null
done
vm gw "$net1" h1     # the guest router: eth0 on net1 ...
new_port gw-inside "$net3"
gw_inside_id=$port_id gw_inside_ip=$port_ip
# ... and eth1 on net3, a second interface like add_vm's first.
tap="tap${gw_inside_id:0:11}"
ip link add "$tap" type veth peer name eth1 netns "$tag-gw"
ip link set "$tap" netns "$tag-h1"
in_ns "$tag-h1" ip link set "$tap" up
in_ns "$tag-gw" ip link set eth1 address "$port_mac"
in_ns "$tag-gw" ip link set eth1 up
"$bin/canopy-agent" --run-dir "$work/h1" bind "$tap" "$gw_inside_id" || fail "bind $tap"
vm far "$net3" h2    # a VM behind the guest router
vm near "$net2" h2   # a VM on the router's other network
for v in gw near far; do dhcp $v >/dev/null; done
dhcp gw eth1 >/dev/null
in_ns "$tag-gw" sysctl -qw net.ipv4.ip_forward=1
in_ns "$tag-far" ip route replace default via "$gw_inside_ip"
api PUT "/v2.0/routers/$router" '{"router": {"routes": [{"destination": "10.88.0.0/24",
  "nexthop": "'"${ips[gw]}"'"}]}}' >/dev/null
wait_applied h1
wait_applied h2
# With port security, what the guest forwards is not from its own address:
# refused.
if in_ns "$tag-near" ping -c 2 -i 0.3 -W 1 "${ips[far]}" >/dev/null; then
  fail "forwarded by a guest with port security"
fi
for p in "${ids[gw]}" "$gw_inside_id"; do
  api PUT "/v2.0/ports/$p" '{"port": {"port_security_enabled": false, "security_groups": []}}' >/dev/null
done
retry 10 in_ns "$tag-near" ping -c 1 -W 1 "${ips[far]}" ||
  fail "near cannot reach far through the guest router"
in_ns "$tag-near" ping -c 3 -i 0.2 -W 2 "${ips[far]}" >"$work/ping" || fail "$(cat "$work/ping")"
expect_in "ttl=62" "$(cat "$work/ping")"  # the router, then the guest
send_blob "$tag-far" "$tag-near" "${ips[near]}" 5001 1048576
send_blob "$tag-near" "$tag-far" "${ips[far]}" 5002 1048576
echo "e2e.guest_routing: all checks passed"
