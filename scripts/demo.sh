#!/usr/bin/env bash
# Canopy's main job on its embedded default, from a fresh machine (as root:
# it makes network namespaces): installs the Debian packages, builds the
# `release` preset, runs canopy-server on the embedded SQLite store
# (build/demo/canopy.db) with its builtin Keystone, and two hosts (network
# namespaces, each with its canopy-agent) joined by an underlay bridge and
# an external bridge with an "outside" namespace. Through the API (the
# openstack client) it creates an external network, a tenant network, a
# router between them, two VMs (namespaces) on different hosts and a
# floating IP; then shows the VMs' DHCP leases, a ping between them over
# Geneve and a ping from outside to the floating IP, and the operator's view
# (`canopy topology`, `canopy status`, `canopy trace` of ssh from outside
# to the floating IP, which vm1's security group drops), and keeps running until Ctrl-C, which tears every namespace
# and process down.
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

# The namespace world's helpers, shared with the end-to-end tests.
bin="$root/build/release/bin"
here="$root/tests/e2e"
work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-demo-XXXXXX")
server_pids=()
fail() { echo "demo: $*" >&2; exit 1; }
cleanup() {
  for pid in "${server_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$work"
  echo "demo: torn down"
}
source "$here/netns.sh"
trap 'exit 0' INT TERM

echo
echo "Starting canopy-server on the embedded store build/demo/canopy.db."
build/release/bin/canopy-server --store "sqlite:build/demo/canopy.db" \
  --southbound-listen "unix:$work/southbound-0.sock" \
  --auth builtin --admin-password "$password" "$@" >"$work/server.log" 2>&1 &
server=$!
server_pids+=("$server")
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
# Pings to the VMs from anywhere (the default group admits only its members).
if [ -z "$(openstack security group rule list default --protocol icmp -f value -c ID)" ]; then
  openstack security group rule create --protocol icmp default >/dev/null
fi

echo "Making two hosts (namespaces with canopy-agent), an underlay and an external network..."
make_underlay
make_external
add_host h1 192.168.77.1
add_host h2 192.168.77.2
add_uplink h1
add_uplink h2
add_outside 203.0.113.1/24
start_agent h1 192.168.77.1 --uplink external=ext0
start_agent h2 192.168.77.2 --uplink external=ext0 --gateway
for vm in "vm1 h1" "vm2 h2"; do
  set -- $vm
  add_vm "$1" "$2" "$(openstack port show "$1" -f value -c id)" \
    "$(openstack port show "$1" -f value -c mac_address)"
done
echo
echo "DHCP leases (busybox udhcpc in each VM):"
for vm in vm1 vm2; do echo "  $vm: $(dhcp $vm)"; done
vm2_ip=$(openstack port show vm2 -f json -c fixed_ips | python3 -c \
  'import json,sys; print(json.load(sys.stdin)["fixed_ips"][0]["ip_address"])')
fip=$(openstack floating ip list --port vm1 -f value -c "Floating IP Address")
echo
echo "vm1 (on h1) pings vm2 (on h2) over Geneve:"
in_ns "$tag-vm1" ping -c 3 -i 0.3 "$vm2_ip" | sed 's/^/  /' || true
echo
echo "outside pings vm1's floating IP $fip:"
for _ in $(seq 1 20); do in_ns "$outside" ping -c 1 -W 1 "$fip" >/dev/null 2>&1 && break; done
in_ns "$outside" ping -c 3 -i 0.3 "$fip" | sed 's/^/  /' || true
echo
canopy=build/release/bin/canopy
echo "canopy topology (the same credentials as the openstack client):"
"$canopy" topology | sed 's/^/  /' || true
echo
echo "canopy status:"
"$canopy" status | sed 's/^/  /' || true
echo
echo "canopy trace: where does ssh from the outside to vm1's floating IP go, and why?"
"$canopy" trace --ip 203.0.113.1 --network public --tcp 22 --to "$fip" | sed 's/^/  /' || true
echo
echo "Running. Neutron API and a builtin Keystone on http://127.0.0.1:9696; in another terminal:"
echo "  source build/demo/admin-openrc; openstack port list"
echo "  ip netns exec $tag-vm1 ping $vm2_ip          # a VM's shell: ip netns exec $tag-vm1 sh"
echo "  build/release/bin/canopy-agent --run-dir $work/h1 status"
echo "  build/release/bin/canopy trace --port vm1 --icmp --to 203.0.113.1 --reply"
echo "Ctrl-C tears it all down."
wait "$server"
