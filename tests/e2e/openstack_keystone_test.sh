#!/usr/bin/env bash
# canopy-server in keystone mode against a real Keystone (Debian's, with its
# own small config and SQLite database, started here): the openstack client
# authenticates at Keystone, finds canopy-server as the catalog's network
# endpoint and drives it; projects are kept apart; an invalid, a revoked and
# an expired token each get 401. Usage: openstack_keystone_test.sh BIN_DIR
bin=${1:?usage: openstack_keystone_test.sh BIN_DIR}
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/keystone.sh"
token_seconds=20
start_keystone $token_seconds
start_canopy_keystone "$bin" --keystone-cache-ttl 2

out=$(alice network create alice-net -f json)
expect_in '"name": "alice-net"' "$out"
alice subnet create --network alice-net --subnet-range 10.20.0.0/24 alice-sub >/dev/null
expect_in '"ip_address": "10.20.0.' "$(alice port create --network alice-net alice-port -f json)"
admin network create admin-net >/dev/null
[ "$(alice network list -f value -c Name)" = "alice-net" ] || fail "alice sees others' networks"
out=$(admin network list -f value -c Name | sort | tr '\n' ' ')
[ "$out" = "admin-net alice-net " ] || fail "admin list: '$out'"
demo_id=$(admin project show demo -f value -c id)
expect_in "\"project_id\": \"$demo_id\"" "$(alice network show alice-net -f json)"
set +e
out=$(alice network show admin-net 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "alice can see the admin's network"

status() { curl -s -o /dev/null -w '%{http_code}' ${1:+-H "X-Auth-Token: $1"} "$api_url/v2.0/networks"; }
[ "$(status)" = 401 ] || fail "no token was accepted"
[ "$(status not-a-token)" = 401 ] || fail "an invalid token was accepted"
token=$(alice token issue -f value -c id)
[ "$(status "$token")" = 200 ] || fail "a fresh token was refused"
# refused_within SECONDS TOKEN: the token is refused before SECONDS pass.
refused_within() {
  local end=$((SECONDS + $1))
  while [ $SECONDS -lt $end ]; do
    [ "$(status "$2")" = 401 ] && return 0
    sleep 0.2
  done
  return 1
}
# Revoked: refused once the cache (2 s here) has let it go.
alice token revoke "$token"
refused_within 5 "$token" || fail "a revoked token was accepted"
# Expired: refused once Keystone's lifetime ($token_seconds s here) is over,
# though the server saw it valid before.
token=$(alice token issue -f value -c id)
[ "$(status "$token")" = 200 ] || fail "a fresh token was refused"
refused_within $((token_seconds + 3)) "$token" || fail "an expired token was accepted"
# Keystone gone: the server says so (503) rather than letting anyone in.
kill "$keystone_pid"
wait "$keystone_pid" 2>/dev/null || true
[ "$(status some-token)" = 503 ] || fail "with Keystone down, a token got $(status some-token)"

stop_server
echo "e2e.openstack_keystone: all checks passed"
