#!/usr/bin/env bash
# The real openstack client (python3-openstackclient) against canopy-server
# in noauth mode: network create, list, show, set, delete, and an error that
# shows the server's own message. Usage: openstack_noauth_test.sh BIN_DIR
bin=${1:?usage: openstack_noauth_test.sh BIN_DIR}
source "$(dirname "$0")/lib.sh"
command -v openstack >/dev/null || fail "the openstack client is not installed (scripts/install-deps.sh)"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 --auth noauth
os() { openstack --os-auth-type none --os-endpoint "$api_url" "$@"; }

out=$(os network create blue -f json)
expect_in '"name": "blue"' "$out"
expect_in '"mtu": 1418' "$out"
expect_in '"status": "ACTIVE"' "$out"
os network create green --description "the green one" --disable-port-security >/dev/null

out=$(os network list -f value -c Name | sort | tr '\n' ' ')
[ "$out" = "blue green " ] || fail "network list: '$out'"

out=$(os network show green -f json)
expect_in '"description": "the green one"' "$out"
expect_in '"port_security_enabled": false' "$out"

os network set blue --name sky --mtu 1400
out=$(os network show sky -f value -c mtu -c revision_number | tr '\n' ' ')
[ "$out" = "1400 2 " ] || fail "after set: '$out'"

os network set sky --tag blue --tag prod
[ "$(os network list --tags prod -f value -c Name)" = "sky" ] || fail "tag filter"
expect_in "blue" "$(os network show sky -f value -c tags)"

# The server's own message reaches the user.
set +e
out=$(os network set sky --mtu 10 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "an invalid MTU was accepted"
expect_in "Invalid input for mtu. Reason: '10' is not in range 68 through 65535." "$out"

out=$(os subnet create --network sky --subnet-range 10.20.0.0/24 --dns-nameserver 10.20.0.53 s1 -f json)
expect_in '"gateway_ip": "10.20.0.1"' "$out"
expect_in '"cidr": "10.20.0.0/24"' "$out"
expect_in "'start': '10.20.0.2'" "$(os subnet show s1 -f value -c allocation_pools)"
os subnet create --network sky --subnet-range fd00:20::/64 --ip-version 6 \
  --ipv6-ra-mode slaac --ipv6-address-mode slaac s6 >/dev/null
out=$(os subnet list --network sky -f value -c Name | sort | tr '\n' ' ')
[ "$out" = "s1 s6 " ] || fail "subnet list: '$out'"
os subnet set s1 --no-dhcp --host-route destination=10.99.0.0/16,gateway=10.20.0.254
out=$(os subnet show s1 -f json)
expect_in '"enable_dhcp": false' "$out"
expect_in '10.99.0.0/16' "$out"
set +e
out=$(os subnet create --network sky --subnet-range 10.20.0.128/25 overlap 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "an overlapping subnet was accepted"
expect_in "overlaps with another subnet" "$out"

out=$(os port create --network sky --fixed-ip subnet=s1,ip-address=10.20.0.10 vm1-port -f json)
expect_in '"ip_address": "10.20.0.10"' "$out"
expect_in '"mac_address": "fa:16:3e:' "$out"
expect_in '"status": "DOWN"' "$out"
os port create --network sky vm2-port >/dev/null
out=$(os port list --network sky -f value -c Name | sort | tr '\n' ' ')
[ "$out" = "vm1-port vm2-port " ] || fail "port list: '$out'"
os port set vm2-port --description "second VM"
expect_in "second VM" "$(os port show vm2-port -f value -c description)"
set +e
out=$(os port create --network sky --fixed-ip subnet=s1,ip-address=10.20.0.10 dup 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a duplicate address was accepted"
expect_in "IP address 10.20.0.10 already allocated" "$out"
set +e
out=$(os network delete sky 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a network with ports was deleted"
expect_in "ports still in use" "$out"
os port delete vm1-port vm2-port

os network delete sky green
out=$(os network list -f value)
[ -z "$out" ] || fail "networks left after delete: $out"

# A restart serves exactly what was there: routers, gateways, interfaces and
# floating IPs included.
os network create --external --provider-network-type flat --provider-physical-network ext public >/dev/null
os subnet create --network public --subnet-range 198.51.100.0/24 --no-dhcp public-sub >/dev/null
os network create inside >/dev/null
os subnet create --network inside --subnet-range 10.30.0.0/24 inside-sub >/dev/null
os port create --network inside vm >/dev/null
os router create --external-gateway public edge >/dev/null
os router add subnet edge inside-sub
os router set edge --route destination=172.16.0.0/12,gateway=10.30.0.9
fip=$(os floating ip create public --port vm -f value -c id)
snapshot() {
  os router show edge -f json --max-width 0
  os floating ip show "$fip" -f json
  os port list --long -f json
  os network show public -f json
}
before=$(snapshot)
expect_in '"destination": "172.16.0.0/12"' "$before"
expect_in '"provider:network_type": "flat"' "$before"
stop_server
start_server "$bin" "$work/server2.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 --auth noauth
after=$(snapshot)
[ "$before" = "$after" ] || fail "after a restart: $(diff <(echo "$before") <(echo "$after"))"
os floating ip delete "$fip"
os router remove subnet edge inside-sub 2>/dev/null && fail "an interface carrying a route was removed"
os router set edge --no-route
os router remove subnet edge inside-sub
os router delete edge
os port delete vm
os network delete inside public
stop_server
echo "e2e.openstack_noauth: all checks passed"
