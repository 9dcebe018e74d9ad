#!/usr/bin/env bash
# Floating-IP port forwarding to real virtual machines, made with the real
# `openstack` client at the builtin Keystone: one floating IP forwards TCP
# 8080 to vm1 (h1) port 80, TCP 8081 to vm2 (h2) port 80 and UDP 5300-5301
# to vm2 ports 53-54; the router's gateway is on h3 (the only host with an
# uplink). From a client outside:
# - each forwarded port reaches its guest (busybox httpd answers its name,
#   socat the UDP), and the answers come from the floating IP;
# - a port no forwarding has is not answered, and h3 counts
#   floating_ip_port_not_forwarded;
# - a forwarding changed live (8080 to vm2) and deleted takes effect;
# - Neutron's errors: an external port used twice, an address not the
#   port's, a port beyond 65535, deleting the floating IP while it forwards.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
source "$here/guest.sh"
command -v openstack >/dev/null || fail "the openstack client is not installed (scripts/install-deps.sh)"
command -v socat >/dev/null || fail "socat is not installed (scripts/install-deps.sh)"

builtin_identity "$work/identity.json"
start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth builtin --identity-file "$work/identity.json"
admin_token=$(as admin admin token issue -f value -c id)
make_underlay
make_external
for h in 1 2 3; do add_host "h$h" "192.168.77.$h"; done
add_uplink h3
add_outside 203.0.113.1/24
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2
start_agent h3 192.168.77.3 --uplink physnet1=ext0 --gateway

as admin admin network create public --external --provider-network-type flat \
  --provider-physical-network physnet1 >/dev/null
as admin admin subnet create --network public --subnet-range 203.0.113.0/24 \
  --gateway 203.0.113.1 --no-dhcp --allocation-pool start=203.0.113.10,end=203.0.113.100 \
  public-sub >/dev/null
as alice demo network create web >/dev/null
as alice demo subnet create --network web --subnet-range 10.0.0.0/24 web-sub >/dev/null
as alice demo router create r1 >/dev/null
as alice demo router set --external-gateway public r1
as alice demo router add subnet r1 web-sub
for rule in "--protocol tcp --dst-port 80" "--protocol udp --dst-port 53:54"; do
  as alice demo security group rule create $rule default >/dev/null
done

declare -A ip_of
guest() {
  local vm=$1 host=$2 out id mac
  out=$(as alice demo port create --network web "$vm" -f json)
  id=$(field 'd["id"]' <<<"$out")
  mac=$(field 'd["mac_address"]' <<<"$out")
  ip_of[$vm]=$(field 'd["fixed_ips"][0]["ip_address"]' <<<"$out")
  as admin admin port set --host "$host" --device-owner compute:nova \
    --device "$(cat /proc/sys/kernel/random/uuid)" "$id"
  make_guest "$vm" "mkdir -p /www; echo $vm >/www/index.html; head -c 2000000 /dev/zero >/www/big
httpd -p 80 -h /www
socat -lf /dev/null UDP4-RECVFROM:53,fork SYSTEM:'echo $vm-53' &
socat -lf /dev/null UDP4-RECVFROM:54,fork SYSTEM:'echo $vm-54' &
commands" socat
  boot_guest "$vm" "$host" "tap${id:0:11}" "$mac"
}
guest vm1 h1
guest vm2 h2
for vm in vm1 vm2; do wait_console "$vm" "GUEST-LEASE ip=${ip_of[$vm]}" 180; done
for vm in vm1 vm2; do wait_console "$vm" GUEST-COMMANDS-READY 60; done

fip=$(as alice demo floating ip create public -f value -c floating_ip_address)
forward() {  # forward FIP PORT ADDRESS PROTOCOL INTERNAL EXTERNAL: the new forwarding's id
  as alice demo floating ip port forwarding create --port "$2" --internal-ip-address "$3" \
    --protocol "$4" --internal-protocol-port "$5" --external-protocol-port "$6" "$1" \
    -f value -c id
}
pf1=$(forward "$fip" vm1 "${ip_of[vm1]}" tcp 80 8080)
forward "$fip" vm2 "${ip_of[vm2]}" tcp 80 8081 >/dev/null
# Ranges, which this client does not send: by the API, as alice.
alice_token=$(as alice demo token issue -f value -c id)
fip_id=$(as alice demo floating ip show "$fip" -f value -c id)
vm2_id=$(as alice demo port show vm2 -f value -c id)
pf_api() {  # pf_api JSON: POST a forwarding; prints the HTTP status
  curl -sS -o "$work/pf.out" -w '%{http_code}' -X POST \
    "$api_url/v2.0/floatingips/$fip_id/port_forwardings" -H "X-Auth-Token: $alice_token" \
    -H 'Content-Type: application/json' -d "{\"port_forwarding\": $1}"
}
status=$(pf_api '{"protocol": "udp", "internal_port_id": "'"$vm2_id"'", "internal_ip_address":
  "'"${ip_of[vm2]}"'", "internal_port_range": "53:54", "external_port_range": "5300:5301"}')
[ "$status" = 201 ] || fail "the UDP range was refused ($status): $(cat "$work/pf.out")"
listed=$(as alice demo floating ip port forwarding list "$fip" -f json)
[ "$(field 'len(d)' <<<"$listed")" = 3 ] || fail "the floating IP's forwardings: $listed"
shown=$(curl -sS "$api_url/v2.0/floatingips/$fip_id" -H "X-Auth-Token: $alice_token")
[ "$(field 'len(d["floatingip"]["port_forwardings"])' <<<"$shown")" = 3 ] ||
  fail "the floating IP's view of its forwardings: $shown"

get() { in_ns "$outside" curl -sS -m 5 "http://$fip:$1/"; }
answers() { [ "$(get "$1")" = "$2" ]; }
retry 30 answers 8080 vm1 || fail "$fip:8080 does not reach vm1: $(get 8080)"
answers 8081 vm2 || fail "$fip:8081 does not reach vm2: $(get 8081)"
echo "  outside -> $fip:8080 answered by vm1 (h1), :8081 by vm2 (h2)"
# With the kernel fast path (the default), the gateway host h3 carries an
# established forwarding's packets in the kernel both ways: from its uplink
# translated into the tunnel to h1, and from the tunnel translated out of
# its uplink.
hits=$(kernel_hits h3)
size=$(in_ns "$outside" curl -sS -m 30 -o /dev/null -w '%{size_download}' "http://$fip:8080/big")
[ "$size" = 2000000 ] || fail "vm1's 2 MB through $fip:8080: $size bytes"
if fast_path_on h3; then
  carried() { [ $(($(kernel_hits h3) - hits)) -gt 20 ]; }
  retry 5 carried || fail "h3's kernel carried $(($(kernel_hits h3) - hits)) packets of the forwarding"
  echo "  2 MB through $fip:8080: $(($(kernel_hits h3) - hits)) packets in h3's kernel"
fi
udp() { in_ns "$outside" timeout 5 socat -T 2 - "UDP4:$fip:$1" <<<"q" 2>/dev/null; }
for try in 1 2 3; do out=$(udp 5301) && [ -n "$out" ] && break; done
[ "$out" = "vm2-54" ] || fail "$fip:5301/udp answered '$out', not vm2-54"
echo "  outside -> $fip:5301/udp answered by $out (the range keeps its offset)"
# The answers come from the floating IP itself (curl connected to it), and a
# capture on the outside sees no inside address.
in_ns "$outside" timeout 20 tcpdump -i eth0 -nl -c 4 "tcp port 8081" >"$work/capture" \
  2>"$work/capture.err" &
capture=$!
wait_capture "$work/capture.err"
get 8081 >/dev/null
wait "$capture" || true
grep -q "$fip.8081 > " "$work/capture" || fail "no answer from $fip:8081: $(cat "$work/capture")"
grep -q "10\.0\.0\." "$work/capture" && fail "an inside address went outside: $(cat "$work/capture")"

# A port no forwarding has.
get 8082 >/dev/null 2>&1 && fail "$fip:8082 was answered"
not_forwarded() {
  "$bin/canopy-agent" --run-dir "$work/h3" status |
    field 'd["datapath"]["drops"].get("floating_ip_port_not_forwarded", 0)'
}
[ "$(not_forwarded)" -gt 0 ] || fail "h3 counted no floating_ip_port_not_forwarded"

# Neutron's errors.
bad=$(forward "$fip" vm1 "${ip_of[vm1]}" tcp 81 8081 2>&1) && fail "8081 was taken twice: $bad"
bad=$(forward "$fip" vm1 "${ip_of[vm2]}" tcp 81 8090 2>&1) && fail "vm2's address on vm1: $bad"
status=$(pf_api '{"protocol": "tcp", "internal_port_id": "'"$vm2_id"'", "internal_ip_address":
  "'"${ip_of[vm2]}"'", "internal_port": 81, "external_port": 70000}')
[ "$status" = 400 ] || fail "port 70000 got $status: $(cat "$work/pf.out")"
expect_in "must be no more than '65535'" "$(cat "$work/pf.out")"
bad=$(as alice demo floating ip delete "$fip" 2>&1) && fail "a forwarding floating IP was deleted"

# Changed live (vm1 moves from 8080 to 8090), then deleted. (Moving it to
# vm2's port 80 is refused: 8081 forwards there already, as Neutron's.)
bad=$(as alice demo floating ip port forwarding set --port vm2 \
  --internal-ip-address "${ip_of[vm2]}" "$fip" "$pf1" 2>&1) && fail "vm2:80 was forwarded twice"
as alice demo floating ip port forwarding set --external-protocol-port 8090 "$fip" "$pf1"
gone() { ! get "$1" >/dev/null 2>&1; }
retry 30 answers 8090 vm1 || fail "$fip:8090 does not reach vm1 after the change: $(get 8090)"
gone 8080 || fail "$fip:8080 still answers after it moved to 8090"
as alice demo floating ip port forwarding delete "$fip" "$pf1"
retry 30 gone 8090 || fail "$fip:8090 still answers after its forwarding went"
answers 8081 vm2 || fail "8081 stopped with 8090's removal"
echo "  vm1's forwarding moved from 8080 to 8090 live, then removed; 8081 still works"
echo "PASS: one floating IP forwards ports to guests on different hosts"
