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
expect_in '"mtu": 1442' "$out"
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

# The server's own message reaches the user.
set +e
out=$(os network set sky --mtu 10 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "an invalid MTU was accepted"
expect_in "Invalid input for mtu. Reason: '10' is not in range 68 through 65535." "$out"

os network delete sky green
out=$(os network list -f value)
[ -z "$out" ] || fail "networks left after delete: $out"
stop_server
echo "e2e.openstack_noauth: all checks passed"
