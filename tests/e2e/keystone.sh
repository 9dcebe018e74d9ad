# Debian's Keystone for end-to-end tests: source it after lib.sh. Keystone
# runs with its own small config and SQLite database in $work, bootstrapped
# with admin/admin-pw; canopy-server validates tokens as the service user
# canopy/canopy-pw, and alice/alice-pw is a member of project demo.
command -v openstack >/dev/null || fail "the openstack client is not installed (scripts/install-deps.sh)"
command -v keystone-manage >/dev/null || fail "keystone is not installed (scripts/install-deps.sh)"
# Keystone and the client are Debian's Python programs: use Debian's python.
py=/usr/bin/python3

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# prepare_keystone URL TOKEN_SECONDS: Keystone's config ($work/keystone.conf)
# and SQLite database in $work, its keys, and admin/admin-pw with URL as the
# identity endpoint.
prepare_keystone() {
  local url=$1 token_seconds=$2
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
  local me group
  me=$(id -un) group=$(id -gn)
  manage fernet_setup --keystone-user "$me" --keystone-group "$group"
  manage credential_setup --keystone-user "$me" --keystone-group "$group"
  manage bootstrap --bootstrap-password admin-pw --bootstrap-public-url "$url" \
    --bootstrap-region-id RegionOne
}

# start_keystone TOKEN_SECONDS: starts Keystone, creates the service user and
# the tenant; sets $ks_url and $keystone_pid.
start_keystone() {
  local token_seconds=$1 ks_port
  ks_port=$(free_port)
  ks_url="http://127.0.0.1:$ks_port/v3"
  prepare_keystone "$ks_url" "$token_seconds"

  "$py" /usr/bin/keystone-wsgi-public --host 127.0.0.1 --port "$ks_port" -- \
    --config-file "$work/keystone.conf" >"$work/keystone.log" 2>&1 &
  keystone_pid=$!
  server_pids+=("$keystone_pid")
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "$ks_url" && break
    kill -0 "$keystone_pid" 2>/dev/null || fail "keystone exited: $(tail -n 30 "$work/keystone.log")"
    sleep 0.2
  done
  curl -sf -o /dev/null "$ks_url" || fail "keystone did not start: $(tail -n 30 "$work/keystone.log")"

  admin project create service >/dev/null
  admin user create --password canopy-pw canopy >/dev/null
  admin role add --project service --user canopy admin
  admin project create demo >/dev/null
  admin user create --password alice-pw alice >/dev/null
  admin role add --project demo --user alice member
}

# as USER PASSWORD PROJECT ARGS...: the openstack client as that user.
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

# start_canopy_keystone BIN ARGS...: canopy-server in keystone mode as the
# catalog's network endpoint.
start_canopy_keystone() {
  local bin=$1
  shift
  CANOPY_KEYSTONE_PASSWORD=canopy-pw start_server "$bin" "$work/server.log" \
    --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 --auth keystone \
    --keystone-url "$ks_url" --keystone-user canopy --keystone-project service "$@"
  admin service create --name canopy network >/dev/null
  admin endpoint create --region RegionOne network public "$api_url" >/dev/null
}
