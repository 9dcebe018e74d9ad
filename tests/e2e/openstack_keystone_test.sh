#!/usr/bin/env bash
# canopy-server in keystone mode against a real Keystone (Debian's, with its
# own small config and SQLite database, started here): the openstack client
# authenticates at Keystone, finds canopy-server as the catalog's network
# endpoint and drives it; projects are kept apart; an invalid, a revoked and
# an expired token each get 401. Usage: openstack_keystone_test.sh BIN_DIR
bin=${1:?usage: openstack_keystone_test.sh BIN_DIR}
source "$(dirname "$0")/lib.sh"
command -v openstack >/dev/null || fail "the openstack client is not installed (scripts/install-deps.sh)"
command -v keystone-manage >/dev/null || fail "keystone is not installed (scripts/install-deps.sh)"
# Keystone and the client are Debian's Python programs: use Debian's python.
py=/usr/bin/python3

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ks_port=$(free_port)
ks_url="http://127.0.0.1:$ks_port/v3"
token_seconds=20
cat >"$work/keystone.conf" <<CONF
[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///$work/keystone.db
[identity]
# Test passwords: cheap hashing keeps each authentication fast.
password_hash_rounds = 4
[token]
provider = fernet
expiration = $token_seconds
[fernet_tokens]
key_repository = $work/fernet-keys
[fernet_receipts]
key_repository = $work/fernet-receipts
[credential]
key_repository = $work/credential-keys
CONF
manage() { keystone-manage --config-file "$work/keystone.conf" "$@" >>"$work/keystone-manage.log" 2>&1 ||
  fail "keystone-manage $1: $(tail -n 20 "$work/keystone-manage.log")"; }
manage db_sync
# Readers must not block Keystone's writers on its SQLite file.
sqlite3 "$work/keystone.db" 'PRAGMA journal_mode=WAL;' >/dev/null
me=$(id -un) group=$(id -gn)
manage fernet_setup --keystone-user "$me" --keystone-group "$group"
manage credential_setup --keystone-user "$me" --keystone-group "$group"
manage bootstrap --bootstrap-password admin-pw --bootstrap-public-url "$ks_url" \
  --bootstrap-region-id RegionOne

"$py" /usr/bin/keystone-wsgi-public --host 127.0.0.1 --port "$ks_port" -- \
  --config-file "$work/keystone.conf" >"$work/keystone.log" 2>&1 &
server_pids+=($!)
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$ks_url" && break
  kill -0 "${server_pids[-1]}" 2>/dev/null || fail "keystone exited: $(tail -n 30 "$work/keystone.log")"
  sleep 0.2
done
curl -sf -o /dev/null "$ks_url" || fail "keystone did not start: $(tail -n 30 "$work/keystone.log")"

as() {
  local user=$1 password=$2 project=$3
  shift 3
  env -u OS_AUTH_TYPE -u OS_ENDPOINT OS_AUTH_URL="$ks_url" OS_IDENTITY_API_VERSION=3 \
    OS_USERNAME="$user" OS_PASSWORD="$password" OS_PROJECT_NAME="$project" \
    OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne \
    openstack "$@"
}
admin() { as admin admin-pw admin "$@"; }
alice() { as alice alice-pw demo "$@"; }

# The service user canopy-server validates tokens with, and a tenant.
admin project create service >/dev/null
admin user create --password canopy-pw canopy >/dev/null
admin role add --project service --user canopy admin
admin project create demo >/dev/null
admin user create --password alice-pw alice >/dev/null
admin role add --project demo --user alice member

CANOPY_KEYSTONE_PASSWORD=canopy-pw start_server "$bin" "$work/server.log" \
  --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 --auth keystone \
  --keystone-url "$ks_url" --keystone-user canopy --keystone-project service --keystone-cache-ttl 2
admin service create --name canopy network >/dev/null
admin endpoint create --region RegionOne network public "$api_url" >/dev/null

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
kill "${server_pids[0]}"
wait "${server_pids[0]}" 2>/dev/null || true
[ "$(status some-token)" = 503 ] || fail "with Keystone down, a token got $(status some-token)"

stop_server
echo "e2e.openstack_keystone: all checks passed"
