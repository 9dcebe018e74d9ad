#!/usr/bin/env bash
# Canopy's main job on its embedded default, from a fresh machine: installs
# the Debian packages, builds the `release` preset, runs canopy-server on the
# embedded SQLite store (build/demo/canopy.db) with its builtin Keystone, and
# creates the demo topology through the API with the openstack client (an
# external network, a tenant network, a router between them, two VM ports, a
# floating IP), then serves until Ctrl-C. canopy-agent, which will carry the
# topology's packets, is not built yet; the server says so.
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
build/release/bin/canopy-server --store "sqlite:build/demo/canopy.db" \
  --auth builtin --admin-password "$password" "$@" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; exit 0' INT TERM
for _ in $(seq 1 100); do
  curl -sf -o /dev/null http://127.0.0.1:9696/ && break
  kill -0 "$server" 2>/dev/null || { wait "$server"; exit 1; }
  sleep 0.1
done

# The demo topology, made once (the store keeps it across runs).
set -a
source build/demo/admin-openrc
set +a
if ! openstack router show demo-router >/dev/null 2>&1; then
  echo "Creating the demo topology through the API..."
  openstack network create --external --provider-network-type flat \
    --provider-physical-network external public >/dev/null
  openstack subnet create --network public --subnet-range 203.0.113.0/24 --no-dhcp \
    --allocation-pool start=203.0.113.100,end=203.0.113.200 public-v4 >/dev/null
  openstack network create demo-net >/dev/null
  openstack subnet create --network demo-net --subnet-range 10.0.0.0/24 \
    --dns-nameserver 10.0.0.53 demo-v4 >/dev/null
  openstack router create --external-gateway public demo-router >/dev/null
  openstack router add subnet demo-router demo-v4
  openstack port create --network demo-net vm1 >/dev/null
  openstack port create --network demo-net vm2 >/dev/null
  openstack floating ip create public --port vm1 >/dev/null
fi
echo
openstack router show demo-router -c name -c status -c external_gateway_info
openstack port list --network demo-net -c Name -c "Fixed IP Addresses" -c Status
openstack floating ip list -c "Floating IP Address" -c "Fixed IP Address" -c Port
echo
echo "Neutron API and a builtin Keystone on http://127.0.0.1:9696. In another terminal:"
echo "  source build/demo/admin-openrc"
echo "  openstack network list; openstack router show demo-router"
echo "canopy-agent (the datapath that will carry these VMs' packets) is not built yet."
wait "$server"
