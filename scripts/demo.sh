#!/usr/bin/env bash
# Canopy's main job on its embedded default, from a fresh machine: installs
# the Debian packages, builds the `release` preset and runs canopy-server on
# the embedded SQLite store (build/demo/canopy.db) until Ctrl-C.
# The agent, the API and the demo topology are not built yet; the server says so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh"
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
mkdir -p build/demo
echo
echo "Starting canopy-server on the embedded store build/demo/canopy.db (Ctrl-C stops it)."
echo "Neutron API: http://127.0.0.1:9696 (noauth). Try, in another terminal:"
echo "  export OS_AUTH_TYPE=none OS_ENDPOINT=http://127.0.0.1:9696"
echo "  openstack network create demo && openstack subnet create --network demo --subnet-range 10.0.0.0/24 demo-v4"
echo "Not built yet: routers, floating IPs, security groups, Keystone auth, canopy-agent and the demo topology."
exec build/release/bin/canopy-server --store "sqlite:build/demo/canopy.db" "$@"
