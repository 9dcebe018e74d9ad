#!/usr/bin/env bash
# A replica on an etcd that holds what Canopy did not write: another
# application's keys beside Canopy's, and malformed or foreign values where
# Canopy's documents live (not JSON, JSON of the wrong shape, fields of the
# wrong type). The replica starts, names each bad key in its log, serves the
# API and status, and keeps working for everything else; a newer layout
# version is refused at start with the key.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/etcd.sh"
command -v etcdctl >/dev/null || fail "etcdctl is not installed (scripts/install-deps.sh)"

start_etcd 1
endpoint=${etcd_url#etcd://}
put() { ETCDCTL_API=3 etcdctl --endpoints "$endpoint" put -- "$1" "$2" >/dev/null; }
# Another application's keys, and garbage in Canopy's collections.
put /other-app/config '{"x": 1}'
put /canopy/v1/ports/not-json 'this is not JSON {'
put /canopy/v1/networks/an-array '[1, 2, 3]'
put /canopy/v1/networks/wrong-types '{"id": 7, "name": ["x"], "admin_state_up": "yes", "mtu": "big"}'
put /canopy/v1/agents/odd-agent '{"host": 5, "alive": "maybe", "tunnel_ip": []}'
put /canopy/v1/agent-sessions/odd-agent '12'
put /canopy/v1/subnets/deep "$(python3 -c 'print("[" * 30000 + "]" * 30000)')"
put /canopy/v1/no-id/ '{}'

start_server "$bin" "$work/server.log" --store "$etcd_url" --listen 127.0.0.1:0 --auth noauth \
  --replica-id r0
for path in /v2.0/ports /v2.0/networks /v2.0/subnets /v2.0/agents /canopy/v1/status; do
  code=$(curl -sS -o "$work/out.json" -w '%{http_code}' "$api_url$path")
  [ "$code" = 200 ] || fail "GET $path answered $code: $(cat "$work/out.json")"
done
for key in /canopy/v1/ports/not-json /canopy/v1/subnets/deep; do
  grep -qF "$key" "$work/server.log" || fail "the log does not name $key: $(cat "$work/server.log")"
done
# Everything else works: a network, a subnet, a port.
net=$(curl -sS -X POST "$api_url/v2.0/networks" -H 'X-Project-Id: demo' \
  -d '{"network": {"name": "good"}}' | field 'd["network"]["id"]')
curl -sS -X POST "$api_url/v2.0/subnets" -H 'X-Project-Id: demo' -d '{"subnet": {"network_id": "'"$net"'",
  "ip_version": 4, "cidr": "10.0.0.0/24"}}' | grep -q '"cidr"' || fail "no subnet"
curl -sS -X POST "$api_url/v2.0/ports" -H 'X-Project-Id: demo' \
  -d '{"port": {"network_id": "'"$net"'"}}' | grep -q '"mac_address"' || fail "no port"
# The other application's key is untouched.
[ "$(ETCDCTL_API=3 etcdctl --endpoints "$endpoint" get --print-value-only /other-app/config)" = '{"x": 1}' ] ||
  fail "another application's key changed"
kill -0 "$server_pid" || fail "the replica died: $(tail -n 20 "$work/server.log")"
stop_server

# A newer Canopy's layout: refused at start, naming the key.
put /canopy/layout 99
if "$bin/canopy-server" --store "$etcd_url" --listen 127.0.0.1:0 --auth noauth \
  --southbound-listen "" >"$work/newer.log" 2>&1; then
  fail "a newer layout was accepted"
fi
expect_in "/canopy/layout" "$(cat "$work/newer.log")"
expect_in "newer Canopy" "$(cat "$work/newer.log")"
echo "e2e.etcd_foreign_values: all checks passed"
