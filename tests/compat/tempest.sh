#!/usr/bin/env bash
# Tempest's Neutron API tests against canopy-server, run as a cloud runs
# them: Debian's Keystone (uwsgi, PostgreSQL) with canopy-server
# (--auth keystone) as the catalog's network endpoint, tempest 33 and
# neutron-tempest-plugin 2.0, and the extension list that neutron-server 21
# advertises (neutron-extensions.txt), so that what Canopy lacks shows as
# failures, not skips. Everything runs on loopback in a work dir and is
# stopped and removed at the end.
#
#   tests/compat/tempest.sh [BIN_DIR]                the core subset (CI)
#   CANOPY_TEMPEST=plugin tests/compat/tempest.sh    every neutron_tempest_plugin.api test
#   CANOPY_TEMPEST=tempest tests/compat/tempest.sh   tempest.api.network
#   CANOPY_TEMPEST=octavia tests/compat/tempest.sh   octavia-tempest-plugin's API tests of
#                                                    what layer 4 serves (docs/LOADBALANCING.md;
#                                                    counted, not judged yet)
#   CANOPY_TEMPEST='REGEX' tests/compat/tempest.sh   any selection
#
# Prints "N passed, N failed (N expected), N skipped" and exits non-zero if
# a test fails that expected-failures.txt does not list, or one it lists
# passes (the list may only shrink: take the line out). Env:
# CANOPY_TEMPEST_CONCURRENCY (2), CANOPY_TEMPEST_RESULTS=DIR (keep the
# results: subunit, CSV, logs), CANOPY_TEMPEST_SERVER=neutron (run the same
# tests against Debian's neutron-server, ML2, configured as canopy-server is
# here: the peer bench/compat/suite_times.sh measures against),
# CANOPY_TEMPEST_EXTRA_EXTENSIONS=a,b (aliases added to neutron-server's
# list, e.g. logging, whose tests are skipped without it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/build/dev/bin}
[ "$(id -u)" -eq 0 ] || { echo "tempest.sh: needs root (its PostgreSQL runs as postgres)"; exit 77; }
"$root/scripts/install-deps.sh" >/dev/null
source "$root/tests/e2e/lib.sh"
export PATH="/usr/bin:/usr/sbin:/bin:/sbin:$PATH"  # Debian's python for Debian's OpenStack
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

core='^neutron_tempest_plugin\.api\.(test_networks|test_networks_negative|test_subnets|test_ports|test_ports_negative|test_routers|test_routers_negative|test_floating_ips|test_floating_ips_negative|test_security_groups|test_security_groups_negative)\.'
exclude=
case "${CANOPY_TEMPEST:-core}" in
  core) regex=$core ;;
  octavia)
    regex='^octavia_tempest_plugin\.tests\.api\.v2\.'
    # What needs a proxy (L7, TLS, cookies, PROXY pools) or Octavia's own
    # machinery (flavors, availability zones, amphorae).
    exclude='\.(test_l7policy|test_l7rule|test_flavor\w*|test_availability_zone\w*|test_amphora)\.|_(HTTPS|PROXY|TLS)_|_(app|http)_cookie_|https_listener'
    ;;
  plugin) regex='^neutron_tempest_plugin\.api\.' ;;
  tempest) regex='^tempest\.api\.network\.' ;;
  *) regex=$CANOPY_TEMPEST ;;
esac
concurrency=${CANOPY_TEMPEST_CONCURRENCY:-2}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

chmod 755 "$work"  # PostgreSQL runs as its own user
server_kind=${CANOPY_TEMPEST_SERVER:-canopy}
agent_pids=() agent_namespaces=()
compat_cleanup() {
  for pid in "${agent_pids[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  for ns in "${agent_namespaces[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done
  [ -f "$work/keystone.pid" ] && kill -TERM "$(cat "$work/keystone.pid")" 2>/dev/null || true
  # neutron-server and its API workers: the process group it leads.
  [ -f "$work/neutron.pid" ] && kill -TERM -- "-$(cat "$work/neutron.pid")" 2>/dev/null || true
  [ -d "$work/pg" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  if [ -n "${CANOPY_TEMPEST_RESULTS:-}" ] && [ -d "$work/results" ]; then
    mkdir -p "$CANOPY_TEMPEST_RESULTS" && cp -r "$work/results/." "$CANOPY_TEMPEST_RESULTS/"
    cp "$work/tempest/tempest.log" "$CANOPY_TEMPEST_RESULTS/" 2>/dev/null || true
  fi
  cleanup
}
trap compat_cleanup EXIT
mkdir -p "$work/results"

# PostgreSQL for Keystone: a private cluster on a free loopback port.
pg_port=$(free_port)
install -d -o postgres -m 700 "$work/pg"
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" --auth=trust -U postgres >"$work/results/pg-init.log" 2>&1 ||
  fail "initdb: $(tail -n 20 "$work/results/pg-init.log")"
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -w -l "$work/pg/server.log" \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null ||
  fail "PostgreSQL did not start: $(tail -n 20 "$work/pg/server.log")"
psql=(psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -v ON_ERROR_STOP=1)
"${psql[@]}" -c "CREATE ROLE keystone LOGIN PASSWORD 'keystone'" -c "CREATE DATABASE keystone OWNER keystone" >/dev/null

# Keystone under uwsgi, its users and projects as a cloud has them.
ks_port=$(free_port)
ks_url="http://127.0.0.1:$ks_port/v3"
admin_password=admin
cat >"$work/keystone.conf" <<CONF
[DEFAULT]
log_file = $work/results/keystone.log
[database]
connection = postgresql+psycopg2://keystone:keystone@127.0.0.1:$pg_port/keystone
[identity]
password_hash_rounds = 4
[token]
provider = fernet
[fernet_tokens]
key_repository = $work/fernet-keys
[fernet_receipts]
key_repository = $work/fernet-receipts
[credential]
key_repository = $work/credential-keys
CONF
manage() { keystone-manage --config-file "$work/keystone.conf" "$@" >>"$work/results/keystone-manage.log" 2>&1 ||
  fail "keystone-manage $1: $(tail -n 20 "$work/results/keystone-manage.log")"; }
manage db_sync
manage fernet_setup --keystone-user root --keystone-group root
manage credential_setup --keystone-user root --keystone-group root
manage bootstrap --bootstrap-password "$admin_password" --bootstrap-public-url "$ks_url" \
  --bootstrap-internal-url "$ks_url" --bootstrap-admin-url "$ks_url" --bootstrap-region-id RegionOne
uwsgi --plugin python3 --http-socket "127.0.0.1:$ks_port" --wsgi-file /usr/bin/keystone-wsgi-public \
  --master --processes 2 --threads 2 --enable-threads --lazy-apps --die-on-term \
  --buffer-size 65535 --add-header "Connection: close" \
  --env "OS_KEYSTONE_CONFIG_FILES=$work/keystone.conf" \
  --pidfile "$work/keystone.pid" --daemonize "$work/results/keystone-uwsgi.log"
for _ in $(seq 1 150); do
  curl -sf -o /dev/null "$ks_url" && break
  sleep 0.2
done
curl -sf -o /dev/null "$ks_url" || fail "Keystone did not start: $(tail -n 30 "$work/results/keystone-uwsgi.log")"

export OS_AUTH_URL=$ks_url OS_IDENTITY_API_VERSION=3 OS_REGION_NAME=RegionOne OS_INTERFACE=public \
  OS_USERNAME=admin OS_PASSWORD=$admin_password OS_PROJECT_NAME=admin \
  OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default
unset OS_AUTH_TYPE OS_ENDPOINT OS_TOKEN OS_CLOUD
openstack -q project create service >/dev/null
openstack -q project create demo >/dev/null
openstack -q user create --password demo demo >/dev/null
openstack -q role add --project demo --user demo member
# neutron-server as the peer: ML2 with the service plugins tempest's suites
# exercise, the same segments (VXLAN 1-2000, VLANs 100-200 on physnet1),
# its own database in the same PostgreSQL, validating tokens as the same
# service user.
start_neutron() {
  "${psql[@]}" -c "CREATE ROLE neutron LOGIN PASSWORD 'neutron'" \
    -c "CREATE DATABASE neutron OWNER neutron" >/dev/null
  local port
  port=$(free_port)
  api_url="http://127.0.0.1:$port"
  mkdir -p "$work/neutron/lock"
  cat >"$work/neutron.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $port
auth_strategy = keystone
core_plugin = ml2
service_plugins = router,qos,segments,trunk,tag,timestamp,revisions,network_ip_availability,auto_allocate,port_forwarding,metering,flavors,conntrack_helper,ndp_proxy,local_ip,network_segment_range
api_paste_config = /etc/neutron/api-paste.ini
transport_url = fake://
api_workers = 2
rpc_workers = 0
rpc_state_report_workers = 0
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
allow_overlapping_ips = true
dns_domain = openstackgate.local.
state_path = $work/neutron
log_file = $work/results/neutron-server.log
global_physnet_mtu = 1500
[database]
connection = postgresql+psycopg2://neutron:neutron@127.0.0.1:$pg_port/neutron
[keystone_authtoken]
www_authenticate_uri = $ks_url
auth_url = $ks_url
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = canopy
password = canopy-pw
region_name = RegionOne
[oslo_concurrency]
lock_path = $work/neutron/lock
[oslo_policy]
enforce_scope = false
enforce_new_defaults = false
CONF
  cat >"$work/ml2_conf.ini" <<CONF
[ml2]
type_drivers = local,flat,vlan,vxlan,geneve,gre
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security,qos,subnet_dns_publish_fixed_ip,data_plane_status,uplink_status_propagation,port_numa_affinity_policy,port_device_profile,tag_ports_during_bulk_creation
path_mtu = 1500
[ml2_type_flat]
flat_networks = *
[ml2_type_vlan]
network_vlan_ranges = public,physnet1:100:200
[ml2_type_vxlan]
vni_ranges = 1:2000
[ml2_type_geneve]
vni_ranges = 1:2000
[ml2_type_gre]
tunnel_id_ranges = 1:2000
[securitygroup]
enable_security_group = true
CONF
  local conf=(--config-file "$work/neutron.conf" --config-file "$work/ml2_conf.ini")
  neutron-db-manage "${conf[@]}" upgrade heads >"$work/results/neutron-db-manage.log" 2>&1 ||
    fail "neutron-db-manage: $(tail -n 20 "$work/results/neutron-db-manage.log")"
  setsid neutron-server "${conf[@]}" >"$work/results/neutron-server.stdout" 2>&1 </dev/null &
  echo $! >"$work/neutron.pid"
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "$api_url/" && return 0
    kill -0 "$(cat "$work/neutron.pid")" 2>/dev/null ||
      fail "neutron-server exited: $(tail -n 30 "$work/results/neutron-server.stdout")"
    sleep 0.2
  done
  fail "neutron-server did not start: $(tail -n 30 "$work/results/neutron-server.log")"
}

openstack -q user create --password canopy-pw canopy >/dev/null
openstack -q role add --project service --user canopy admin

if [ "$server_kind" = neutron ]; then
  start_neutron
else
  CANOPY_KEYSTONE_PASSWORD=canopy-pw start_server "$bin" "$work/results/canopy-server.log" \
    --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 --auth keystone \
    --keystone-url "$ks_url" --keystone-user canopy --keystone-project service \
    --vlan-ranges public,physnet1:100:200 --overlay vxlan --vni-min 1 --vni-max 2000 \
    --load-balancer
  # Two canopy-agents, each in a network namespace of its own (no traffic
  # leaves it), so that the agent tests list, show and update real agents.
  for host in compute-1 compute-2; do
    ns="canopy-compat-$$-$host"
    ip netns add "$ns" || fail "ip netns add $ns (the agents need root)"
    agent_namespaces+=("$ns")
    ip -n "$ns" link set lo up
    mkdir -p "$work/$host"
    ip netns exec "$ns" "$bin/canopy-agent" --host-name "$host" --tunnel-ip 127.0.0.1 \
      --encapsulation vxlan --server "unix:$work/southbound-0.sock" --run-dir "$work/$host" \
      >"$work/results/agent-$host.log" 2>&1 &
    agent_pids+=($!)
  done
fi
openstack -q service create --name neutron network >/dev/null
for interface in public internal admin; do
  openstack -q endpoint create --region RegionOne network "$interface" "$api_url" >/dev/null
done
if [ "${CANOPY_TEMPEST:-core}" = octavia ]; then
  # Octavia's service (under the server's /load-balancer) and the roles its
  # tests give their users.
  openstack -q service create --name octavia load-balancer >/dev/null
  for interface in public internal admin; do
    openstack -q endpoint create --region RegionOne load-balancer "$interface" \
      "$api_url/load-balancer" >/dev/null
  done
  for role in load-balancer_member load-balancer_admin load-balancer_observer \
    load-balancer_global_observer; do
    openstack -q role create "$role" >/dev/null
  done
fi
alive_agents() {
  openstack network agent list -f json |
    python3 -c 'import json, sys; print(sum(a["Alive"] is True for a in json.load(sys.stdin)))'
}
if [ ${#agent_pids[@]} -gt 0 ]; then
  for _ in $(seq 1 100); do
    [ "$(alive_agents)" = 2 ] && break
    sleep 0.2
  done
  [ "$(alive_agents)" = 2 ] ||
    fail "the agents did not register: $(tail -n 5 "$work/results"/agent-*.log)"
fi

# The external network tempest's router and floating-IP tests use.
public_id=$(openstack network create --external --provider-network-type flat \
  --provider-physical-network public public -f value -c id)
openstack -q subnet create --network public --subnet-range 172.24.4.0/24 --gateway 172.24.4.1 \
  --allocation-pool start=172.24.4.10,end=172.24.4.250 --no-dhcp public-subnet >/dev/null

# tempest's workspace (it writes a tempest.log where it runs).
(cd "$work" && tempest init --workspace-path "$work/workspace.yaml" --name canopy "$work/tempest" >/dev/null)
extensions=$(grep -v '^#' "$here/neutron-extensions.txt" | paste -sd, -)
# Aliases neutron-server was not measured with (its logging plugin was not
# configured), for tests tempest skips without them.
[ -z "${CANOPY_TEMPEST_EXTRA_EXTENSIONS:-}" ] || extensions+=",$CANOPY_TEMPEST_EXTRA_EXTENSIONS"
sed -e "s#@WORK@#$work#g" -e "s#@KEYSTONE_URL@#$ks_url#g" -e "s#@ADMIN_PASSWORD@#$admin_password#g" \
  -e "s#@PUBLIC_NETWORK_ID@#$public_id#g" -e "s#@API_EXTENSIONS@#$extensions#g" \
  "$here/tempest.conf.in" >"$work/tempest/etc/tempest.conf"
if [ "${CANOPY_TEMPEST:-core}" = octavia ]; then
  cat >>"$work/tempest/etc/tempest.conf" <<CONF

[load_balancer]
catalog_type = load-balancer
endpoint_type = public
region = RegionOne
provider = canopy
enabled_provider_drivers = canopy:Canopy distributed layer-4 load balancing in each host's datapath
test_with_noop = false
test_with_ipv6 = true
RBAC_test_type = none
member_role = load-balancer_member
admin_role = load-balancer_admin
build_interval = 1
build_timeout = 60
check_interval = 1
check_timeout = 60
lb_build_interval = 1
lb_build_timeout = 120

[loadbalancer-feature-enabled]
not_implemented_is_error = false
CONF
  # The API tests boot nothing, but their base class asks for compute and
  # images unless in noop mode (which fakes the networks Canopy checks).
  sed -i 's/^\[service_available\]$/[service_available]\nload_balancer = true/;
          s/^nova = false$/nova = true/; s/^glance = false$/glance = true/' \
    "$work/tempest/etc/tempest.conf"
fi
cp "$work/tempest/etc/tempest.conf" "$work/results/tempest.conf"

start=$(date +%s)
set +e
(cd "$work/tempest" && tempest run --regex "$regex" ${exclude:+--exclude-regex "$exclude"} \
  --concurrency "$concurrency") >"$work/results/tempest-run.log" 2>&1
set -e
seconds=$(($(date +%s) - start))
(cd "$work/tempest" && stestr last --subunit) >"$work/results/last.subunit" 2>/dev/null || true
# (subunit2csv's status says whether tests failed: the CSV is what counts.)
subunit2csv <"$work/results/last.subunit" >"$work/results/results.csv" 2>/dev/null || true
[ "$(wc -l <"$work/results/results.csv")" -gt 1 ] ||
  fail "no results: $(tail -n 30 "$work/results/tempest-run.log")"

if [ "$server_kind" = neutron ] || [ "${CANOPY_TEMPEST:-core}" = octavia ]; then
  # The peer is counted, not judged: the expected failures are Canopy's
  # (Octavia's tests, too, until the datapath balances).
  python3 "$here/verdict.py" "$work/results/results.csv" /dev/null \
    "${CANOPY_TEMPEST:-core} ($server_kind)" "$seconds" | head -n 1
else
  python3 "$here/verdict.py" "$work/results/results.csv" "$here/expected-failures.txt" \
    "${CANOPY_TEMPEST:-core}" "$seconds"
fi
