#!/usr/bin/env bash
# A trunk port on a real virtual machine, made with the real `openstack`
# client at the builtin Keystone: the guest tg (h1) on the trunk's parent
# port (network lan) has VLAN sub-interfaces, 101 for network red and,
# added live, 102 for network blue; guests r1 (red) and b1 (blue) are on h2.
# Checks:
# - each VLAN interface takes its subport's address by DHCP (the answers
#   come back tagged) and reaches its network's guest on the other host;
# - a VLAN reaches its own network only: red's interface cannot reach b1;
# - a subport added with `openstack network trunk set` works at once, and
#   one removed with `trunk unset` stops at once: its frames are dropped as
#   trunk_vlan_unknown, as is a VLAN that no subport has;
# - the client shows the trunk and its subport ACTIVE, the trunk's
#   subports, and the parent's trunk_details;
# - Neutron's errors: a VLAN used twice, a subport already in the trunk.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
source "$here/guest.sh"
command -v openstack >/dev/null || fail "the openstack client is not installed (scripts/install-deps.sh)"
openstack network trunk --help >/dev/null 2>&1 ||
  fail "python3-neutronclient (openstack network trunk) is not installed (scripts/install-deps.sh)"

builtin_identity "$work/identity.json"
start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth builtin --identity-file "$work/identity.json"
admin_token=$(as admin admin token issue -f value -c id)
make_underlay
for h in 1 2; do add_host "h$h" "192.168.77.$h"; done
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2

declare -A cidr_of=([lan]=10.0.0.0/24 [red]=10.1.0.0/24 [blue]=10.2.0.0/24)
for net in lan red blue; do
  as alice demo network create "$net" >/dev/null
  as alice demo subnet create --network "$net" --subnet-range "${cidr_of[$net]}" "$net-sub" >/dev/null
done
as alice demo security group rule create --protocol icmp default >/dev/null

# The trunk: the parent on lan, subports with the parent's MAC (as a guest's
# VLAN interfaces take it), red's at first.
declare -A ip_of
out=$(as alice demo port create --network lan parent -f json)
parent_id=$(field 'd["id"]' <<<"$out")
parent_mac=$(field 'd["mac_address"]' <<<"$out")
for net in red blue; do
  out=$(as alice demo port create --network "$net" --mac-address "$parent_mac" "sub-$net" -f json)
  ip_of[sub-$net]=$(field 'd["fixed_ips"][0]["ip_address"]' <<<"$out")
done
as alice demo network trunk create --parent-port parent \
  --subport port=sub-red,segmentation-type=vlan,segmentation-id=101 trunk1 >/dev/null

guest() {
  local vm=$1 host=$2 net=$3 plan=$4 out id mac
  out=$(as alice demo port create --network "$net" "$vm" -f json)
  id=$(field 'd["id"]' <<<"$out")
  mac=$(field 'd["mac_address"]' <<<"$out")
  ip_of[$vm]=$(field 'd["fixed_ips"][0]["ip_address"]' <<<"$out")
  as admin admin port set --host "$host" --device-owner compute:nova \
    --device "$(cat /proc/sys/kernel/random/uuid)" "$id"
  make_guest "$vm" "$plan"
  boot_guest "$vm" "$host" "tap${id:0:11}" "$mac"
}
guest r1 h2 red commands
guest b1 h2 blue commands
# vlan N: a VLAN interface on eth0 and its address by DHCP.
vlan() {
  echo "ip link add link eth0 name eth0.$1 type vlan id $1 && ip link set eth0.$1 up &&
udhcpc -i eth0.$1 -n -q -t 20 -T 1 -s /udhcpc.script || echo GUEST-NO-LEASE-$1"
}
as admin admin port set --host h1 --device-owner compute:nova \
  --device "$(cat /proc/sys/kernel/random/uuid)" parent
guest_extra_modules="llc stp garp mrp 8021q" make_guest tg "$(vlan 101)
commands"
boot_guest tg h1 "tap${parent_id:0:11}" "$parent_mac"
for vm in r1 b1; do wait_console "$vm" "GUEST-LEASE ip=${ip_of[$vm]}" 180; done
wait_console tg "GUEST-LEASE ip=${ip_of[sub-red]}" 180
echo "  tg's VLAN 101 took ${ip_of[sub-red]} by DHCP through the trunk"
for vm in tg r1 b1; do wait_console "$vm" GUEST-COMMANDS-READY 60; done

trunk_status() { as alice demo network trunk show trunk1 -f value -c status; }
active() { [ "$(trunk_status)" = ACTIVE ]; }
retry 30 active || fail "trunk1 is $(trunk_status), not ACTIVE with its parent's guest up"
sub_status() { as alice demo port show sub-red -f value -c status; }
sub_active() { [ "$(sub_status)" = ACTIVE ]; }
retry 30 sub_active || fail "sub-red is $(sub_status), not ACTIVE with its parent"

reaches() { guest_exec tg 40 "ping -c 2 -W 2 -I $1 $2" >/dev/null; }
reaches eth0.101 "${ip_of[r1]}" || fail "tg cannot reach r1 (red) over VLAN 101"
reaches eth0.101 "${ip_of[b1]}" && fail "tg reached b1 (blue) over VLAN 101 (red)"
echo "  VLAN 101 reaches red's r1 on h2, and not blue's b1"
# With the kernel fast path (the default), a subport's established flows
# run in h1's kernel: by the parent's tap and the VLAN, the tag taken off
# into the tunnel and put back on the way in.
if fast_path_on h1; then
  hits=$(kernel_hits h1)
  guest_exec tg 40 "ping -c 20 -i 0.1 -W 2 -I eth0.101 ${ip_of[r1]}" >/dev/null ||
    fail "tg lost pings to r1 over VLAN 101"
  carried() { [ $(($(kernel_hits h1) - hits)) -ge 20 ]; }
  retry 5 carried || fail "h1's kernel carried $(($(kernel_hits h1) - hits)) of VLAN 101's echoes"
  echo "  20 echoes over VLAN 101: $(($(kernel_hits h1) - hits)) packets in h1's kernel"
fi

# Blue, added live.
as alice demo network trunk set --subport port=sub-blue,segmentation-type=vlan,segmentation-id=102 \
  trunk1
wait_applied h1
out=$(guest_exec tg 60 "$(vlan 102)")
expect_in "GUEST-LEASE ip=${ip_of[sub-blue]}" "$out"
reaches eth0.102 "${ip_of[b1]}" || fail "tg cannot reach b1 (blue) over VLAN 102"
echo "  VLAN 102, added live, took ${ip_of[sub-blue]} and reaches blue's b1"
shown=$(as alice demo network trunk show trunk1 -f json)
[ "$(field 'len(d["sub_ports"])' <<<"$shown")" = 2 ] || fail "trunk1's subports: $shown"
details=$(as alice demo port show parent -f json)
[ "$(field 'len(d["trunk_details"]["sub_ports"])' <<<"$details")" = 2 ] ||
  fail "the parent's trunk_details: $details"

# Neutron's errors.
bad=$(as alice demo network trunk set \
  --subport port=b1,segmentation-type=vlan,segmentation-id=101 trunk1 2>&1) &&
  fail "VLAN 101 was given twice: $bad"
bad=$(as alice demo network trunk set \
  --subport port=sub-red,segmentation-type=vlan,segmentation-id=103 trunk1 2>&1) &&
  fail "sub-red was added twice: $bad"

# A VLAN of no subport, then blue removed live: dropped as trunk_vlan_unknown.
unknown() {
  "$bin/canopy-agent" --run-dir "$work/h1" status |
    field 'd["datapath"]["drops"].get("trunk_vlan_unknown", 0)'
}
guest_exec tg 30 "ip link add link eth0 name eth0.103 type vlan id 103 && ip link set eth0.103 up &&
ip addr add 10.9.0.2/24 dev eth0.103 && ping -c 2 -W 1 10.9.0.1" >/dev/null &&
  fail "VLAN 103 was answered"
before=$(unknown)
[ "$before" -gt 0 ] || fail "h1 counted no trunk_vlan_unknown for VLAN 103"
as alice demo network trunk unset --subport sub-blue trunk1
wait_applied h1
reaches eth0.102 "${ip_of[b1]}" && fail "tg still reaches b1 over VLAN 102 after its removal"
[ "$(unknown)" -gt "$before" ] || fail "VLAN 102's frames were not counted as trunk_vlan_unknown"
reaches eth0.101 "${ip_of[r1]}" || fail "VLAN 101 stopped with 102's removal"
echo "  VLAN 102 removed live: its frames are trunk_vlan_unknown; 101 still works"
echo "PASS: a trunk's VLANs reach their networks from a guest, changed live"
