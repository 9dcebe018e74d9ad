#!/usr/bin/env bash
# The real openstack client authenticating at canopy-server's builtin
# Keystone (password, project-scoped tokens, catalog) and driving the network
# API: projects see only their own resources, admin sees all, and a missing or
# bad token gets 401. Usage: openstack_builtin_test.sh BIN_DIR
bin=${1:?usage: openstack_builtin_test.sh BIN_DIR}
source "$(dirname "$0")/lib.sh"
command -v openstack >/dev/null || fail "the openstack client is not installed (scripts/install-deps.sh)"

builtin_identity "$work/identity.json"
start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth builtin --identity-file "$work/identity.json"


out=$(as alice demo network create alice-net -f json)
expect_in '"name": "alice-net"' "$out"
as alice demo subnet create --network alice-net --subnet-range 192.168.10.0/24 alice-sub >/dev/null
out=$(as alice demo port create --network alice-net alice-port -f json)
expect_in '"ip_address": "192.168.10.' "$out"
as bob other network create bob-net >/dev/null

[ "$(as alice demo network list -f value -c Name)" = "alice-net" ] || fail "alice sees others' networks"
[ "$(as bob other network list -f value -c Name)" = "bob-net" ] || fail "bob sees others' networks"
set +e
out=$(as bob other network show alice-net 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "bob can see alice's network"
out=$(as admin admin network list -f value -c Name | sort | tr '\n' ' ')
[ "$out" = "alice-net bob-net " ] || fail "admin list: '$out'"
# Admin-only attributes are shown to the admin only.
expect_in "provider:network_type" "$(as admin admin network show alice-net -f json)"

set +e
out=$(PW=wrong as alice demo network list 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a wrong password was accepted"
expect_in "401" "$out"

code=$(curl -s -o /dev/null -w '%{http_code}' "$api_url/v2.0/networks")
[ "$code" = 401 ] || fail "no token gave $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Auth-Token: not-a-token' "$api_url/v2.0/networks")
[ "$code" = 401 ] || fail "a bad token gave $code"

# Security groups: the default one with Neutron's rules, a group with a rule,
# a duplicate refused with the server's message, a group in use kept.
out=$(as alice demo security group list -f value -c Name)
[ "$out" = "default" ] || fail "security group list: '$out'"
[ "$(as alice demo security group rule list default -f value -c ID | wc -l)" = 4 ] || fail "default rules"
as alice demo security group create web >/dev/null
out=$(as alice demo security group rule create --protocol tcp --dst-port 22 --remote-ip 10.0.0.0/8 web -f json)
expect_in '"port_range_min": 22' "$out"
set +e
out=$(as alice demo security group rule create --protocol tcp --dst-port 22 --remote-ip 10.0.0.0/8 web 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a duplicate rule was accepted"
expect_in "Security group rule already exists" "$out"
as alice demo port create --network alice-net --security-group web web-port >/dev/null
set +e
out=$(as alice demo security group delete web 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a group in use was deleted"
expect_in "in use" "$out"
[ -z "$(as bob other security group list -f value -c Name | grep web)" ] || fail "bob sees alice's group"
as alice demo port delete web-port
as alice demo security group delete web

# Routers and floating IPs: an external network made by the admin, alice's
# router joining her subnet to it, a floating IP on her port.
as admin admin network create --external public >/dev/null
as admin admin subnet create --network public --subnet-range 203.0.113.0/24 --no-dhcp public-sub >/dev/null
[ "$(as alice demo network list --external -f value -c Name)" = "public" ] || fail "alice does not see the external network"
as alice demo router create r1 >/dev/null
as alice demo router add subnet r1 alice-sub
out=$(as alice demo port list --router r1 -f json)
expect_in '"ip_address": "192.168.10.1"' "$out"
as alice demo router set --external-gateway public r1
out=$(as alice demo router show r1 -f json)
expect_in '"enable_snat": true' "$out"
expect_in '"ip_address": "203.0.113.' "$out"
set +e
out=$(as alice demo router delete r1 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a router with interfaces was deleted"
expect_in "still has ports" "$out"
fip=$(as alice demo floating ip create public -f value -c floating_ip_address)
expect_in "203.0.113." "$fip"
as alice demo floating ip set --port alice-port "$fip"
out=$(as alice demo floating ip show "$fip" -f json)
expect_in '"fixed_ip_address": "192.168.10.' "$out"
expect_in '"status": "ACTIVE"' "$out"
[ "$(as bob other floating ip list -f value -c ID | wc -l)" = 0 ] || fail "bob sees alice's floating IP"
as alice demo floating ip unset --port "$fip"
out=$(as alice demo floating ip show "$fip" -f json)
expect_in '"port_id": null' "$out"
as alice demo floating ip delete "$fip"
as alice demo router unset --external-gateway r1
as alice demo router remove subnet r1 alice-sub
as alice demo router delete r1

# Quotas: the admin limits a project (with curl and a real token: the client's
# "quota set" insists on a compute service), the client lists the limit and
# the usage, and the project hits the limit and is told so.
token=$(as admin admin token issue -f value -c id)
demo_id=$(as admin admin project show demo -f value -c id)
quota() { curl -sf -X "$1" -H "X-Auth-Token: $token" ${2:+-d "$2"} "$api_url/v2.0/quotas/$demo_id"; }
expect_in '"network":1' "$(quota PUT '{"quota": {"network": 1}}')"
out=$(as admin admin quota list --network -f json)
expect_in '"Networks": 1' "$out"
out=$(as admin admin quota list --network --detail --project demo -f json)
expect_in '"Resource": "networks"' "$out"
set +e
out=$(as alice demo network create second 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a network over quota was created"
expect_in "Quota exceeded for resources: ['network']" "$out"
quota DELETE
expect_in '"network":100' "$(quota GET)"

as alice demo port delete alice-port
as alice demo network delete alice-net
stop_server
echo "e2e.openstack_builtin: all checks passed"
