#!/usr/bin/env bash
# The metadata service at 169.254.169.254, answered on each VM's own host.
#
# A QEMU guest (its own kernel and busybox) on a network without a router
# takes the route to the service from DHCP (option 121) and fetches its
# instance id, hostname, SSH key and user data in the EC2 and OpenStack
# layouts: what the operator put on its port (instance_metadata). Namespace
# guests check the rest: each gets its own instance's metadata on the same
# host and on another, also when it forges X-Instance-ID or
# X-Forwarded-For; a guest on a routed network reaches the service through
# its router; a flood is rate-limited for its port alone; malformed HTTP
# gets 400. On a third host the agent proxies to Nova's metadata API (a
# stand-in that checks the signature as nova-api-metadata does) with the
# headers Nova needs.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
source "$here/guest.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
add_host h3 192.168.77.3
start_agent h1 192.168.77.1 --metadata-rate 5
start_agent h2 192.168.77.2
echo "a-secret-shared-with-nova" >"$work/secret"
bg "$tag-h3" sh -c "exec python3 '$here/nova_metadata_standin.py' 8775 '$work/secret' \
  >'$work/nova.log' 2>&1"
start_agent h3 192.168.77.3 --nova-metadata-url http://127.0.0.1:8775 \
  --metadata-secret-file "$work/secret"

net=$(api POST /v2.0/networks '{"network": {"name": "isolated"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
declare -A ids macs ips devices
user_data=$(printf '#cloud-config\nhostname: web-1\n' | base64 -w0)
key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2hJ0dJvQ8k0mZx9bH7kq1Vt3eQxQyqv1kWf6qQ0s3x test@canopy"
for vm in vm1 vm2 vm3 vm4 vm5; do
  new_port "$vm" "$net"
  ids[$vm]=$port_id macs[$vm]=$port_mac ips[$vm]=$port_ip
  devices[$vm]=$(cat /proc/sys/kernel/random/uuid)
  body='{"port": {"device_id": "'"${devices[$vm]}"'", "device_owner": "compute:nova"'
  [ "$vm" = vm1 ] && body+=', "instance_metadata": {"name": "web-1",
    "public_keys": {"mykey": "'"$key"'"}, "user_data": "'"$user_data"'"}'
  api PUT "/v2.0/ports/${ids[$vm]}" "$body}}" >/dev/null
done
# Bad instance metadata is refused, and nothing of it kept.
bad=$(api PUT "/v2.0/ports/${ids[vm2]}" '{"port": {"instance_metadata": {"user_data": "not base64!"}}}')
expect_in '"type":"HTTPBadRequest"' "$bad"
expect_in "not valid base64" "$bad"
bad=$(api PUT "/v2.0/ports/${ids[vm2]}" '{"port": {"instance_metadata": {"colour": "red"}}}')
expect_in "instance_metadata.colour" "$bad"
expect_in '"instance_metadata":{}' "$(api GET "/v2.0/ports/${ids[vm2]}")"

# vm1: a QEMU guest on h1, its tap bound as Nova binds it (busybox 1.35's wget
# crashes with -T: timeout(1) bounds it instead).
admin PUT "/v2.0/ports/${ids[vm1]}" '{"port": {"binding:host_id": "h1"}}' >/dev/null
make_guest vm1 'md=http://169.254.169.254
echo "GUEST-ROUTES $(ip route | grep 169.254 | tr "\n" " ")"
for i in $(seq 20); do timeout 3 wget -q -O /tmp/id $md/latest/meta-data/instance-id && break; sleep 0.5; done
echo "GUEST-INSTANCE-ID $(cat /tmp/id)"
echo "GUEST-HOSTNAME $(timeout 5 wget -q -O - $md/latest/meta-data/hostname)"
echo "GUEST-LOCAL-IPV4 $(timeout 5 wget -q -O - $md/latest/meta-data/local-ipv4)"
echo "GUEST-KEY $(timeout 5 wget -q -O - $md/latest/meta-data/public-keys/0/openssh-key)"
echo "GUEST-USER-DATA $(timeout 5 wget -q -O - $md/openstack/latest/user_data | tr "\n" "|")"
echo "GUEST-META-JSON $(timeout 5 wget -q -O - $md/openstack/latest/meta_data.json)"
echo GUEST-METADATA-DONE
sleep 300'
boot_guest vm1 h1 "tap${ids[vm1]:0:11}" "${macs[vm1]}"

# Namespace guests: vm3 and vm4 on h1 with vm1, vm2 on h2, vm5 on h3.
add_vm vm2 h2 "${ids[vm2]}" "${macs[vm2]}"
add_vm vm3 h1 "${ids[vm3]}" "${macs[vm3]}"
add_vm vm4 h1 "${ids[vm4]}" "${macs[vm4]}"
add_vm vm5 h3 "${ids[vm5]}" "${macs[vm5]}"
for vm in vm2 vm3 vm4 vm5; do
  lease=$(dhcp $vm)
  # No router on the subnet: the route to the service, on the link.
  expect_in "staticroutes=169.254.169.254/32 0.0.0.0" "$lease"
done
md() {  # md VM PATH [CURL ARGS...]: the body, or the status when not 200
  local vm=$1 path=$2
  shift 2
  in_ns "$tag-$vm" curl -sS -m 5 -w '%{http_code}' -o "$work/$vm.body" "$@" \
    "http://169.254.169.254$path" >"$work/$vm.status" || echo 000 >"$work/$vm.status"
  if [ "$(cat "$work/$vm.status")" = 200 ]; then cat "$work/$vm.body"; else cat "$work/$vm.status"; fi
}
md_ready() { [ "$(md "$1" /latest/meta-data/instance-id)" = "${devices[$1]}" ]; }
for vm in vm2 vm3 vm4; do
  retry 20 md_ready $vm || fail "$vm: instance-id is $(md $vm /latest/meta-data/instance-id)"
done
# Each its own, however it asks.
for vm in vm2 vm3; do
  got=$(md $vm /latest/meta-data/instance-id -H "X-Instance-ID: ${devices[vm1]}" \
    -H "X-Forwarded-For: ${ips[vm1]}")
  [ "$got" = "${devices[$vm]}" ] || fail "$vm forging vm1's headers got '$got'"
  [ "$(md $vm /latest/meta-data/local-ipv4)" = "${ips[$vm]}" ] || fail "$vm: local-ipv4"
done
expect_in '"uuid":"'"${devices[vm3]}"'"' "$(md vm3 /openstack/latest/meta_data.json)"
[ "$(md vm3 /latest/meta-data/no-such-thing)" = 404 ] || fail "a missing item is not 404"
[ "$(md vm3 /openstack/latest/user_data)" = 404 ] || fail "vm3 has no user data, not 404"
[ "$(md vm3 /latest/meta-data/instance-id -X POST)" = 405 ] || fail "POST is not 405"
# Malformed HTTP: 400, and the service goes on.
garbage=$(printf 'NOT HTTP AT ALL\r\n\r\n' | in_ns "$tag-vm3" nc -w 3 169.254.169.254 80 || true)
expect_in "400" "$garbage"
md_ready vm3 || fail "vm3 after malformed HTTP"

# vm3 floods (h1's agent allows 5 per second, bursts of 25): it is refused
# with 429 while vm4, on the same host, is still answered.
# 150 requests, 8 at a time: done well within the 25 s that would refill
# the bucket for all of them, however loaded the machine.
codes=$(in_ns "$tag-vm3" sh -c 'seq 150 | xargs -P 8 -I{} curl -s -m 5 -o /dev/null \
  -w "%{http_code}\n" http://169.254.169.254/latest/meta-data/instance-id' | sort | uniq -c)
echo "  vm3's flood of 150 requests: $(echo $codes)"
expect_in " 429" "$codes"
md_ready vm4 || fail "vm4 was refused while vm3 flooded"

# A routed network: the service through the router, no route by DHCP.
net2=$(api POST /v2.0/networks '{"network": {"name": "routed"}}' | field 'd["network"]["id"]')
sub2=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net2"'", "ip_version": 4,
  "cidr": "10.1.0.0/24"}}' | field 'd["subnet"]["id"]')
router=$(api POST /v2.0/routers '{"router": {"name": "r1"}}' | field 'd["router"]["id"]')
api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"$sub2"'"}' >/dev/null
new_port vm6 "$net2"
ids[vm6]=$port_id devices[vm6]=$(cat /proc/sys/kernel/random/uuid)
api PUT "/v2.0/ports/${ids[vm6]}" '{"port": {"device_id": "'"${devices[vm6]}"'"}}' >/dev/null
add_vm vm6 h2 "${ids[vm6]}" "$port_mac"
lease=$(dhcp vm6)
[[ "$lease" == *"staticroutes= "* ]] || fail "a routed subnet got a metadata route: $lease"
retry 20 md_ready vm6 || { "$bin/canopy-agent" --run-dir "$work/h2" status; in_ns "$tag-vm6" ip route; in_ns "$tag-vm6" ip neigh; fail "vm6 through its router: $(md vm6 /latest/meta-data/instance-id)"; }

# h3 proxies to Nova, signed; the guest's own headers go nowhere.
nova_ready() { [[ "$(md vm5 /openstack/latest/meta_data.json -H 'X-Instance-ID: forged')" == *'"instance_id": "'"${devices[vm5]}"'"'* ]]; }
retry 20 nova_ready || fail "vm5 through Nova: $(cat "$work/vm5.status") $(cat "$work/vm5.body")"
answer=$(md vm5 /openstack/latest/meta_data.json?x=1)
expect_in '"path": "/openstack/latest/meta_data.json?x=1"' "$answer"
expect_in '"forwarded_for": "'"${ips[vm5]}"'"' "$answer"
tenant=$(api GET "/v2.0/ports/${ids[vm5]}" | field 'd["port"]["project_id"]')
expect_in '"tenant_id": "'"$tenant"'"' "$answer"

# The QEMU guest: its route, then everything cloud-init reads.
wait_console vm1 GUEST-METADATA-DONE 180
console=$(cat "$work/vm1.console")
expect_in "GUEST-ROUTES 169.254.169.254 dev eth0" "$console"
expect_in "GUEST-INSTANCE-ID ${devices[vm1]}" "$console"
expect_in "GUEST-HOSTNAME web-1" "$console"
expect_in "GUEST-LOCAL-IPV4 ${ips[vm1]}" "$console"
expect_in "GUEST-KEY $key" "$console"
expect_in "GUEST-USER-DATA #cloud-config|hostname: web-1|" "$console"
expect_in '"public_keys":{"mykey":"ssh-ed25519' "$console"

status=$("$bin/canopy-agent" --run-dir "$work/h1" status)
echo "$status" | python3 -c 'import json,sys; print("  h1 metadata:", json.load(sys.stdin)["metadata"])'
expect_in '"mode": "standalone"' "$status"
expect_in '"mode": "nova"' "$("$bin/canopy-agent" --run-dir "$work/h3" status)"
echo "e2e.metadata: all checks passed"
