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
cmake --build --preset release -j "$(nproc)" --target canopy-server canopy-agent canopy
mkdir -p build/demo
# The admin's credentials: made once, kept in build/demo/admin-openrc.
if [ ! -f build/demo/admin-openrc ]; then
  password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  umask 077
  cat >build/demo/admin-openrc <<RC
export OS_AUTH_URL=http://127.0.0.1:9696/v3
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD=$password
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne
RC
fi
password=$(sed -n 's/^export OS_PASSWORD=//p' build/demo/admin-openrc)
echo
echo "Starting canopy-server on the embedded store build/demo/canopy.db (Ctrl-C stops it)."
echo "Neutron API and a builtin Keystone on http://127.0.0.1:9696. Try, in another terminal:"
echo "  source build/demo/admin-openrc"
echo "  openstack network create demo"
echo "  openstack subnet create --network demo --subnet-range 10.0.0.0/24 demo-v4"
echo "  openstack port create --network demo vm1"
echo "Not built yet: routers, floating IPs, quotas, canopy-agent and the demo topology."
exec build/release/bin/canopy-server --store "sqlite:build/demo/canopy.db" \
  --auth builtin --admin-password "$password" "$@"
