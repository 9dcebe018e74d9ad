#!/usr/bin/env bash
# OpenStack compute on Canopy, from Debian's packages: Keystone, RabbitMQ,
# Placement, Glance, nova-api (with its metadata API), nova-conductor,
# nova-scheduler and nova-compute with the libvirt driver (virt_type qemu:
# TCG, no KVM needed), canopy-server as the catalog's network endpoint
# (sending Nova its port events) and canopy-agent on the compute host
# (proxying the metadata service to Nova). Everything runs in one network
# namespace of this test's own, on its loopback; libvirtd and virtlogd are
# the machine's (/run/libvirt), started here and stopped here.
#
# The image is the end-to-end tests' busybox guest (tests/e2e/guest.sh) as
# Glance's kernel, ramdisk and machine images. `openstack server create`
# boots two VMs on a Canopy network; each takes its address by DHCP,
# fetches its instance id, SSH key and user data from Nova's metadata
# through Canopy, and the second pings the first (its address in the user
# data). `openstack server delete` unplugs and deletes the ports. Prints
# the times from create to ACTIVE and to the first ping.
#
# Usage: tests/nova/nova_test.sh BIN_DIR      (root; about 3 minutes)
here=$(cd "$(dirname "$0")" && pwd)
e2e="$here/../e2e"
bin=$(cd "$1" && pwd)
source "$e2e/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for program in nova-api nova-conductor nova-scheduler nova-compute placement-api glance-api \
  rabbitmq-server libvirtd keystone-manage openstack; do
  command -v "$program" >/dev/null ||
    { echo "SKIP: $program is not installed (scripts/install-deps.sh)"; exit 77; }
done
source "$e2e/guest.sh"
source "$e2e/keystone.sh"
py=/usr/bin/python3
export PATH="/usr/bin:/usr/sbin:/bin:/sbin:$PATH"

ns="cnova$$"
libvirt_started=
nova_cleanup() {
  # CANOPY_NOVA_LOGS=DIR: the services' logs are kept there.
  if [ -n "${CANOPY_NOVA_LOGS:-}" ]; then
    mkdir -p "$CANOPY_NOVA_LOGS"
    cp "$work"/*.log "$CANOPY_NOVA_LOGS/" 2>/dev/null || true
    cp -r "$work/rabbit/log" "$CANOPY_NOVA_LOGS/rabbit" 2>/dev/null || true
  fi
  # Instances first (their taps and QEMU), then the services, then libvirt.
  # (this test's libvirtd: it refuses to start beside another).
  if [ -n "$libvirt_started" ]; then
    for vm in $(virsh -c qemu:///system list --all --name 2>/dev/null | grep '^instance-' || true); do
      virsh -c qemu:///system destroy "$vm" >/dev/null 2>&1 || true
      virsh -c qemu:///system undefine --nvram "$vm" >/dev/null 2>&1 || true
    done
  fi
  # Every process in the namespace is this test's (the services, their
  # workers, RabbitMQ's epmd, libvirt's daemons and QEMU).
  if [ -n "${ns_up:-}" ]; then
    local left i
    for i in $(seq 50); do
      left=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -n "$left" ] || break
      # shellcheck disable=SC2086
      if [ "$i" -lt 40 ]; then kill $left 2>/dev/null || true; else kill -9 $left 2>/dev/null || true; fi
      sleep 0.2
    done
    ip netns del "$ns" 2>/dev/null || true
  fi
  cleanup
}
trap nova_cleanup EXIT
in_cloud() { ip netns exec "$ns" "$@"; }
# start NAME COMMAND...: a service in the cloud's namespace, logged.
start() {
  local name=$1
  shift
  ip netns exec "$ns" "$@" >"$work/$name.log" 2>&1 &
}
wait_http() {  # wait_http URL NAME
  local end=$((SECONDS + 90))
  until in_cloud curl -s -o /dev/null -m 2 "$1"; do
    [ $SECONDS -lt $end ] || fail "$2 did not start: $(tail -n 30 "$work/$2.log")"
    sleep 0.5
  done
}
# Ports on the namespace's own loopback: nothing else listens there.
ks_port=5000 nova_port=8774 metadata_port=8775 placement_port=8778 glance_port=9292
rabbit_port=5672 canopy_port=9696

# RabbitMQ and QEMU run as users of their own: they must reach their
# files under the work directory.
chmod 711 "$work"
ip netns add "$ns"
ns_up=1
in_cloud ip link set lo up

# --- Keystone, the catalog and the service users ---
ks_url="http://127.0.0.1:$ks_port/v3"
prepare_keystone "$ks_url" 3600
start keystone "$py" /usr/bin/keystone-wsgi-public --host 127.0.0.1 --port "$ks_port" -- \
  --config-file "$work/keystone.conf"
wait_http "$ks_url" keystone
as() {
  local user=$1 password=$2 project=$3
  shift 3
  in_cloud env -u OS_AUTH_TYPE -u OS_ENDPOINT -u OS_CLOUD OS_AUTH_URL="$ks_url" \
    OS_IDENTITY_API_VERSION=3 OS_USERNAME="$user" OS_PASSWORD="$password" \
    OS_PROJECT_NAME="$project" OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default \
    OS_REGION_NAME=RegionOne openstack "$@"
}
admin() { as admin admin-pw admin "$@"; }
demo() { as alice alice-pw demo "$@"; }
admin project create service >/dev/null
admin project create demo >/dev/null
admin user create --password alice-pw alice >/dev/null
admin role add --project demo --user alice member
for user in canopy nova placement glance; do
  admin user create --password "$user-pw" "$user" >/dev/null
  admin role add --project service --user "$user" admin
done
# Nova's events go out with the service role, as Nova's policy asks.
admin role create service >/dev/null 2>&1 || true
admin role add --project service --user canopy service

endpoint() {  # endpoint TYPE NAME URL
  admin service create --name "$2" "$1" >/dev/null
  admin endpoint create --region RegionOne "$1" public "$3" >/dev/null
}
endpoint compute nova "http://127.0.0.1:$nova_port/v2.1"
endpoint placement placement "http://127.0.0.1:$placement_port"
endpoint image glance "http://127.0.0.1:$glance_port"

# --- PostgreSQL for Nova, Placement and Glance (their services write at
# once: SQLite's single writer makes them fail with "database is locked") ---
pgbin=/usr/lib/postgresql/15/bin
install -d -m 700 -o postgres -g postgres "$work/pg"
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres -E UTF8 >"$work/initdb.log" 2>&1 ||
  fail "initdb: $(tail "$work/initdb.log")"
cat >>"$work/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = 5432
unix_socket_directories = ''
max_connections = 200
fsync = off
CONF
start postgres runuser -u postgres -- "$pgbin/postgres" -D "$work/pg"
end=$((SECONDS + 60))
until in_cloud "$pgbin/pg_isready" -q -h 127.0.0.1 -p 5432; do
  [ $SECONDS -lt $end ] || fail "postgres did not start: $(tail "$work/postgres.log")"
  sleep 0.2
done
for db in nova_api nova_cell0 nova placement glance; do
  in_cloud psql -q -h 127.0.0.1 -U postgres -c "create database $db" >/dev/null
done
pg() { echo "postgresql+psycopg2://postgres@127.0.0.1:5432/$1"; }

# --- RabbitMQ, for Nova's services ---
mkdir -p "$work/rabbit"
chown rabbitmq: "$work/rabbit"
cat >"$work/rabbit/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$rabbit_port
loopback_users.guest = true
CONF
chown rabbitmq: "$work/rabbit/rabbitmq.conf"
start rabbitmq env HOME="$work/rabbit" RABBITMQ_NODENAME=rabbit@localhost \
  RABBITMQ_MNESIA_BASE="$work/rabbit/mnesia" RABBITMQ_LOG_BASE="$work/rabbit/log" \
  RABBITMQ_CONFIG_FILE="$work/rabbit/rabbitmq" RABBITMQ_PID_FILE="$work/rabbit/pid" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$work/rabbit/plugins" rabbitmq-server
transport="rabbit://guest:guest@127.0.0.1:$rabbit_port/"

# The [keystone_authtoken] or client section of a service user.
auth_section() {  # auth_section USER
  cat <<CONF
auth_type = password
auth_url = $ks_url
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $1-pw
region_name = RegionOne
CONF
}
authtoken() {  # authtoken USER: keystonemiddleware's section
  printf '[keystone_authtoken]\nwww_authenticate_uri = %s\ninterface = public\n' "$ks_url"
  auth_section "$1"
}

# --- Placement ---
cat >"$work/placement.conf" <<CONF
[placement_database]
connection = $(pg placement)
[api]
auth_strategy = keystone
$(authtoken placement)
CONF
in_cloud placement-manage --config-file "$work/placement.conf" db sync >"$work/placement-manage.log" 2>&1 ||
  fail "placement db sync: $(tail "$work/placement-manage.log")"
# (its WSGI script reads placement.conf from OS_PLACEMENT_CONFIG_DIR only)
start placement env OS_PLACEMENT_CONFIG_DIR="$work" "$py" /usr/bin/placement-api \
  --host 127.0.0.1 --port "$placement_port"

# --- Glance ---
mkdir -p "$work/images"
cat >"$work/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $glance_port
workers = 1
enabled_backends = file:file
[database]
connection = $(pg glance)
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = $work/images
[os_glance_staging_store]
filesystem_store_datadir = $work/glance-staging
[os_glance_tasks_store]
filesystem_store_datadir = $work/glance-tasks
$(authtoken glance)
[paste_deploy]
flavor = keystone
config_file = /etc/glance/glance-api-paste.ini
CONF
in_cloud glance-manage --config-file "$work/glance-api.conf" db_sync >"$work/glance-manage.log" 2>&1 ||
  fail "glance db_sync: $(tail "$work/glance-manage.log")"
start glance glance-api --config-file "$work/glance-api.conf"

# --- canopy-server: the network endpoint, Nova's events ---
CANOPY_KEYSTONE_PASSWORD=canopy-pw start canopy-server "$bin/canopy-server" \
  --store "sqlite:$work/canopy.db" --listen "127.0.0.1:$canopy_port" \
  --southbound-listen "unix:$work/southbound.sock" --auth keystone \
  --keystone-url "$ks_url" --keystone-user canopy --keystone-project service --nova-events true
canopy_url="http://127.0.0.1:$canopy_port"
wait_http "$canopy_url/" canopy-server
endpoint network canopy "$canopy_url"

# --- Nova ---
secret="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$secret" >"$work/metadata-secret"
mkdir -p "$work/nova/instances" "$work/nova/lock"
cat >"$work/nova.conf" <<CONF
[DEFAULT]
host = compute1
my_ip = 127.0.0.1
state_path = $work/nova
instances_path = $work/nova/instances
transport_url = $transport
enabled_apis = osapi_compute,metadata
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = $nova_port
osapi_compute_workers = 1
metadata_listen = 127.0.0.1
metadata_listen_port = $metadata_port
metadata_workers = 1
compute_driver = libvirt.LibvirtDriver
vif_plugging_is_fatal = true
vif_plugging_timeout = 120
use_stderr = true
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = /etc/nova/api-paste.ini
[api_database]
connection = $(pg nova_api)
[database]
connection = $(pg nova)
$(authtoken nova)
[placement]
$(auth_section placement)
valid_interfaces = public
[neutron]
$(auth_section nova)
valid_interfaces = public
service_metadata_proxy = true
metadata_proxy_shared_secret = $secret
[glance]
valid_interfaces = public
[libvirt]
virt_type = qemu
cpu_mode = none
connection_uri = qemu:///system
[scheduler]
discover_hosts_in_cells_interval = 2
[filter_scheduler]
enabled_filters = ComputeFilter,ImagePropertiesFilter
[oslo_concurrency]
lock_path = $work/nova/lock
[vnc]
enabled = false
[spice]
enabled = false
[nova_sys_admin]
helper_command = privsep-helper --config-file $work/nova.conf
[privsep]
helper_command = privsep-helper --config-file $work/nova.conf
CONF
nm() { in_cloud nova-manage --config-file "$work/nova.conf" "$@" >>"$work/nova-manage.log" 2>&1 ||
  fail "nova-manage $*: $(tail -n 20 "$work/nova-manage.log")"; }
nm api_db sync
nm cell_v2 map_cell0 --database_connection "$(pg nova_cell0)"
nm cell_v2 create_cell --name cell1 --database_connection "$(pg nova)" --transport-url "$transport"
nm db sync

# libvirt: the machine's daemons, in the cloud's namespace (QEMU with them).
[ ! -S /run/libvirt/libvirt-sock ] || ! virsh -c qemu:///system version >/dev/null 2>&1 ||
  { echo "SKIP: a libvirtd already runs on this machine"; exit 77; }
in_cloud virtlogd -d -p "$work/virtlogd.pid"
in_cloud libvirtd -d -p "$work/libvirtd.pid"
libvirt_started=1

start nova-api nova-api --config-file "$work/nova.conf"
start nova-conductor nova-conductor --config-file "$work/nova.conf"
start nova-scheduler nova-scheduler --config-file "$work/nova.conf"
start nova-compute nova-compute --config-file "$work/nova.conf"
wait_http "http://127.0.0.1:$placement_port/" placement
wait_http "http://127.0.0.1:$glance_port/" glance
wait_http "http://127.0.0.1:$nova_port/" nova-api

# --- canopy-agent on compute1, proxying the metadata service to Nova ---
start canopy-agent "$bin/canopy-agent" --host-name compute1 --tunnel-ip 127.0.0.1 \
  --server "unix:$work/southbound.sock" --run-dir "$work/agent" \
  --nova-metadata-url "http://127.0.0.1:$metadata_port" --metadata-secret-file "$work/metadata-secret"

# The compute host, discovered into its cell.
end=$((SECONDS + 120))
until admin compute service list --service nova-compute -f value -c State 2>/dev/null | grep -q up; do
  [ $SECONDS -lt $end ] || fail "nova-compute did not come up: $(tail -n 40 "$work/nova-compute.log")"
  sleep 1
done
nm cell_v2 discover_hosts
until [ -n "$(admin hypervisor list -f value -c ID 2>/dev/null)" ]; do
  [ $SECONDS -lt $end ] || fail "no hypervisor: $(tail -n 40 "$work/nova-compute.log")"
  sleep 1
done

# --- The image: the busybox guest as kernel, ramdisk and machine image ---
make_guest guest 'md=http://169.254.169.254
for i in $(seq 30); do timeout 3 wget -q -O /tmp/meta $md/openstack/latest/meta_data.json && break; sleep 1; done
echo "GUEST-META $(cat /tmp/meta)"
echo "GUEST-INSTANCE-ID $(timeout 5 wget -q -O - $md/latest/meta-data/instance-id)"
echo "GUEST-KEY $(timeout 5 wget -q -O - $md/latest/meta-data/public-keys/0/openssh-key)"
target=$(timeout 5 wget -q -O - $md/openstack/latest/user_data | sed -n "s/^ping=//p")
echo "GUEST-TARGET $target"
if [ -n "$target" ]; then
  for i in $(seq 60); do ping -c 1 -W 1 $target >/dev/null && break; done
  ping -c 3 -W 2 $target && echo GUEST-PING-OK || echo GUEST-PING-FAILED
fi
sleep 600'
truncate -s 1M "$work/disk.raw"
kernel=$(admin image create --disk-format aki --container-format aki --public \
  --file "$guest_kernel" guest-kernel -f value -c id)
ramdisk=$(admin image create --disk-format ari --container-format ari --public \
  --file "$work/guest.cpio.gz" guest-ramdisk -f value -c id)
admin image create --disk-format raw --container-format bare --public --file "$work/disk.raw" \
  --property kernel_id="$kernel" --property ramdisk_id="$ramdisk" \
  --property os_command_line="console=ttyS0 panic=-1 quiet" guest >/dev/null
admin flavor create --ram 192 --disk 1 --vcpus 1 tiny >/dev/null

# --- The tenant's network and keys ---
demo network create private >/dev/null
demo subnet create --network private --subnet-range 10.0.0.0/24 private-subnet >/dev/null
ssh_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM3m7xQ0k2Yb5o4Zq1sVt8xW2e9pXy6a0cR4uJ7hLbKd alice@canopy"
echo "$ssh_key" >"$work/alice.pub"
demo keypair create --public-key "$work/alice.pub" alicekey >/dev/null

console() { cat "$work/nova/instances/$1/console.log" 2>/dev/null || true; }
# boot NAME USER-DATA: creates the server; sets $server_id, the times.
boot() {
  printf '%s\n' "$2" >"$work/$1.userdata"
  local t0=$SECONDS
  server_id=$(demo server create --flavor tiny --image guest --network private \
    --key-name alicekey --user-data "$work/$1.userdata" "$1" -f value -c id)
  local end=$((SECONDS + 240)) status=
  until [ "$status" = ACTIVE ]; do
    status=$(demo server show "$server_id" -f value -c status)
    [ "$status" != ERROR ] || fail "$1: ERROR: $(demo server show "$server_id" -f json -c fault)
      $(tail -n 40 "$work/nova-compute.log")"
    [ $SECONDS -lt $end ] || fail "$1 is $status after 240 s: $(tail -n 40 "$work/nova-compute.log")"
    sleep 1
  done
  active_seconds=$((SECONDS - t0))
  boot_start=$t0
}
boot vm1 ""
vm1=$server_id
vm1_active=$active_seconds
vm1_ip=$(demo server show vm1 -f json -c addresses | "$py" -c \
  'import json,sys; print(json.load(sys.stdin)["addresses"]["private"][0])')
echo "  vm1: ACTIVE in ${vm1_active}s at $vm1_ip"
boot vm2 "ping=$vm1_ip"
vm2=$server_id
echo "  vm2: ACTIVE in ${active_seconds}s"
end=$((SECONDS + 240))
until console "$vm2" | grep -q "GUEST-PING-"; do
  [ $SECONDS -lt $end ] || fail "vm2 never pinged: $(console "$vm2" | tail -n 30)"
  sleep 0.5
done
ping_seconds=$((SECONDS - boot_start))
echo "  vm2: first ping to vm1 ${ping_seconds}s after its create"

# Checked from inside: its address, its instance id, its key, its neighbour.
out=$(console "$vm2")
expect_in "GUEST-PING-OK" "$out"
expect_in "GUEST-INSTANCE-ID i-" "$out"  # EC2's id, as Nova gives it
expect_in "GUEST-KEY $ssh_key" "$out"
expect_in "GUEST-TARGET $vm1_ip" "$out"
expect_in '"uuid": "'"$vm2"'"' "$out"
expect_in '"uuid": "'"$vm1"'"' "$(console "$vm1")"
ports=$(admin port list --device-id "$vm2" -f value -c ID)
[ -n "$ports" ] || fail "vm2 has no port"
expect_in '"binding_host_id": "compute1"' "$(admin port show "$ports" -f json)"
expect_in '"binding_vif_type": "bridge"' "$(admin port show "$ports" -f json)"
expect_in "Creating event network-vif-plugged" "$(cat "$work/nova-api.log")"

# Deleted: the port is unbound, unplugged and gone.
demo server delete --wait vm2
[ -z "$(admin port list --device-id "$vm2" -f value -c ID)" ] || fail "vm2's port outlived it"
gone() { ! in_cloud "$bin/canopy-agent" --run-dir "$work/agent" list | grep -q "tap${ports:0:11}"; }
retry() { local n=$1; shift; for _ in $(seq "$n"); do "$@" && return 0; sleep 0.5; done; return 1; }
retry 40 gone || fail "the agent still holds vm2's tap"
# A second address on vm1's port: Nova hears network-changed and shows it.
vm1_port=$(admin port list --device-id "$vm1" -f value -c ID)
demo port set --fixed-ip subnet=private-subnet "$vm1_port"
changed() { grep -q "Creating event network-changed:$vm1_port" "$work/nova-api.log"; }
retry 40 changed || fail "Nova heard no network-changed for vm1's port"
two_addresses() { [ "$(demo server show vm1 -f json -c addresses | "$py" -c \
  'import json,sys; print(len(json.load(sys.stdin)["addresses"]["private"]))')" = 2 ]; }
retry 40 two_addresses || fail "Nova does not show vm1's second address"
demo server delete --wait vm1
# What Nova heard of the deletions, as Neutron tells it.
expect_in "Creating event network-vif-unplugged:$ports" "$(cat "$work/nova-api.log")"
expect_in "Creating event network-vif-deleted:$ports" "$(cat "$work/nova-api.log")"
echo "nova: all checks passed (vm1 ACTIVE ${vm1_active}s; vm2 ACTIVE ${active_seconds}s, first ping ${ping_seconds}s)"
