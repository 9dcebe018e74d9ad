#!/usr/bin/env bash
# Octavia's API as the real `openstack loadbalancer` client drives it,
# authenticated at the builtin Keystone, whose catalog lists the
# load-balancer service: the canopy provider, a load balancer with its VIP
# port, a listener, a pool with SOURCE_IP persistence, members, a health
# monitor, the status tree, Octavia's errors (a duplicate member 409, a
# delete with children 400, what the provider does not do 501), projects
# apart, and a cascade delete that leaves no port behind.
# Usage: octavia_api_test.sh BIN_DIR
bin=${1:?usage: octavia_api_test.sh BIN_DIR}
source "$(dirname "$0")/lib.sh"
command -v openstack >/dev/null || fail "the openstack client is not installed (scripts/install-deps.sh)"
openstack loadbalancer --help >/dev/null 2>&1 ||
  fail "python3-octaviaclient is not installed (scripts/install-deps.sh)"

builtin_identity "$work/identity.json"
start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth builtin --identity-file "$work/identity.json" --load-balancer

# A command that must fail, with this text in its output.
refused() {
  local want=$1 out rc
  shift
  set +e
  out=$(as "$@" 2>&1)
  rc=$?
  set -e
  [ "$rc" -ne 0 ] || fail "'$*' succeeded: $out"
  expect_in "$want" "$out"
}

as alice demo network create web >/dev/null
as alice demo subnet create --network web --subnet-range 192.168.20.0/24 web-sub >/dev/null

expect_in "canopy" "$(as alice demo loadbalancer provider list -f value)"
out=$(as alice demo loadbalancer create --name lb1 --vip-subnet-id web-sub --wait -f json)
expect_in '"provisioning_status": "ACTIVE"' "$out"
expect_in '"provider": "canopy"' "$out"
vip=$(field 'd["vip_address"]' <<<"$out")
vip_port=$(field 'd["vip_port_id"]' <<<"$out")
case $vip in 192.168.20.*) ;; *) fail "VIP $vip is not in web-sub" ;; esac
[ "$(as alice demo port show "$vip_port" -f value -c device_owner)" = Octavia ] ||
  fail "the VIP port is not Octavia's"

as alice demo loadbalancer listener create --name http --protocol HTTP --protocol-port 80 lb1 \
  --wait >/dev/null
as alice demo loadbalancer pool create --name web-pool --listener http --protocol HTTP \
  --lb-algorithm SOURCE_IP --session-persistence type=SOURCE_IP --wait >/dev/null
for i in 11 12 13; do
  as alice demo loadbalancer member create --name "web$i" --address "192.168.20.$i" \
    --protocol-port 8080 --subnet-id web-sub --weight $((i - 10)) web-pool --wait >/dev/null
done
refused "already using ip 192.168.20.11 on protocol_port 8080" alice demo \
  loadbalancer member create --address 192.168.20.11 --protocol-port 8080 web-pool
as alice demo network create closed >/dev/null
as alice demo subnet create --network closed --subnet-range 192.168.30.0/24 --gateway none \
  closed-sub >/dev/null
refused "not reachable from subnet" alice demo \
  loadbalancer member create --address 10.9.9.9 --protocol-port 8080 --subnet-id closed-sub web-pool
as alice demo loadbalancer healthmonitor create --name check --delay 2 --timeout 1 \
  --max-retries 2 --type HTTP --url-path /healthz --expected-codes 200-204 web-pool --wait >/dev/null
refused "does not support a requested option" alice demo \
  loadbalancer listener create --protocol TERMINATED_HTTPS --protocol-port 443 \
  --default-tls-container-ref ref lb1
[ "$(as alice demo loadbalancer member list web-pool -f value -c name | sort | tr '\n' ' ')" = \
  "web11 web12 web13 " ] || fail "the pool does not list its three members"
[ "$(as alice demo loadbalancer member show web-pool web12 -f value -c weight)" = 2 ] ||
  fail "web12's weight is not 2"

tree=$(as alice demo loadbalancer status show lb1)
expect_in '"health_monitor"' "$tree"
expect_in '"address": "192.168.20.13"' "$tree"
stats=$(as alice demo loadbalancer stats show lb1 -f json)
expect_in '"active_connections"' "$stats"

# Another project sees none of it.
[ -z "$(as bob other loadbalancer list -f value -c id)" ] || fail "bob sees alice's load balancer"
refused "" bob other loadbalancer show lb1

refused "it has children" alice demo loadbalancer delete lb1
as alice demo loadbalancer delete --cascade lb1 --wait
[ -z "$(as alice demo loadbalancer list -f value -c id)" ] || fail "lb1 is still listed"
[ -z "$(as alice demo port list --device-owner Octavia -f value -c id)" ] ||
  fail "the VIP port outlived its load balancer"
echo "octavia_api: ok"
