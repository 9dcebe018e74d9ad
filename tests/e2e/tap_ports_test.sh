#!/usr/bin/env bash
# Taps the agent owns: canopy-agent creates a VM's interface as a tap (with
# a virtio-net header and offloads) right in the VM's namespace, and keeps
# the tap's file. A tap VM gets its lease (udhcpc), pings and moves 4 MiB
# over TCP each way with its offloads on, to a veth VM on the same host and
# to a tap VM across a Geneve tunnel; the guest's super-frames reach the
# agent whole. After an agent restart the agent attaches to the same tap
# again and traffic resumes; unbinding removes the tap, and a tap deleted
# under the agent is noticed and its port reported DOWN.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
new_port vm1 "$net"; vm1_id=$port_id; vm1_ip=$port_ip; vm1_mac=$port_mac
new_port vm2 "$net"; vm2_id=$port_id; vm2_ip=$port_ip; vm2_mac=$port_mac
new_port vm3 "$net"; vm3_id=$port_id; vm3_ip=$port_ip; vm3_mac=$port_mac

# add_tap_vm VM HOST PORT MAC: the agent makes the VM's interface, a tap,
# inside the VM's namespace.
add_tap_vm() {
  local vm=$1 host=$2 port=$3 mac=$4 ns="$tag-$1" dev="tap${3:0:11}"
  new_ns "$ns"
  "$bin/canopy-agent" --run-dir "$work/$host" bind "$dev" "$port" --tap \
    --netns "/run/netns/$ns" || fail "bind the tap $dev"
  in_ns "$ns" ip -d link show "$dev" | grep -q "tun type tap" || fail "$dev is no tap in $vm"
  in_ns "$ns" ip link set "$dev" address "$mac"
  guest_offloads "$ns" "$dev"
  in_ns "$ns" ip link set "$dev" up
}
vm1_dev="tap${vm1_id:0:11}"
add_tap_vm vm1 h1 "$vm1_id" "$vm1_mac"
add_vm vm2 h1 "$vm2_id" "$vm2_mac"
add_tap_vm vm3 h2 "$vm3_id" "$vm3_mac"

# A bind that cannot work is refused with a reason, and nothing is bound.
if out=$("$bin/canopy-agent" --run-dir "$work/h1" bind tapnowhere 00000000-0000-0000-0000-00000000dead --tap \
  --netns /run/netns/no-such-namespace 2>&1); then
  fail "a tap in a missing namespace was bound: $out"
fi
expect_in "no-such-namespace" "$out"
list=$("$bin/canopy-agent" --run-dir "$work/h1" list)
expect_in '"tap": true' "$list"
[[ "$list" != *tapnowhere* ]] || fail "the refused binding is listed: $list"

for vm in vm1 vm3; do
  for _ in $(seq 1 100); do
    [ "$(admin GET "/v2.0/ports/$(eval echo "\$${vm}_id")" | field 'd["port"]["status"]')" = ACTIVE ] &&
      break
    sleep 0.1
  done
done
lease=$(dhcp vm1 "$vm1_dev")
expect_in "ip=$vm1_ip mask=24 router=10.0.0.1" "$lease"
dhcp vm2 >/dev/null
lease=$(dhcp vm3 "tap${vm3_id:0:11}")
expect_in "ip=$vm3_ip mask=24" "$lease"

in_ns "$tag-vm1" ping -c 3 -i 0.2 -W 2 "$vm2_ip" >"$work/ping12" || fail "tap vm1 -> veth vm2: $(cat "$work/ping12")"
in_ns "$tag-vm3" ping -c 3 -i 0.2 -W 2 "$vm1_ip" >"$work/ping31" || fail "tap vm3 -> tap vm1: $(cat "$work/ping31")"
send_blob "$tag-vm1" "$tag-vm2" "$vm2_ip" 5001
send_blob "$tag-vm2" "$tag-vm1" "$vm1_ip" 5002
send_blob "$tag-vm1" "$tag-vm3" "$vm3_ip" 5003
send_blob "$tag-vm3" "$tag-vm1" "$vm1_ip" 5004

# The guest's super-frames came through the tap whole (unless the test runs
# with the guests' offloads off).
if [ "${CANOPY_GUEST_OFFLOADS:-on}" != off ]; then
  for _ in $(seq 1 30); do
    status=$("$bin/canopy-agent" --run-dir "$work/h1" status)
    super=$(field 'd["datapath"]["offload"]["super_frames"]' <<<"$status")
    [ "$super" -gt 0 ] && break
    sleep 0.1
  done
  [ "$super" -gt 0 ] || fail "no super-frame came from the tap: $status"
fi

# The agent restarts: the binding comes back from its run directory, the
# agent attaches to the same tap (still in vm1's namespace) and traffic
# resumes.
h1_agent=${agent_pids[0]}
kill -TERM "$h1_agent"
wait "$h1_agent" 2>/dev/null || true
in_ns "$tag-vm1" ip link show "$vm1_dev" >/dev/null || fail "the tap went with the agent"
start_agent h1 192.168.77.1
retry 10 in_ns "$tag-vm1" ping -c 1 -W 1 "$vm2_ip" || fail "no traffic after the agent restarted"
send_blob "$tag-vm2" "$tag-vm1" "$vm1_ip" 5005

# Unbound, the tap is gone and the port is DOWN.
"$bin/canopy-agent" --run-dir "$work/h1" unbind "$vm1_dev" || fail "unbind $vm1_dev"
retry 5 sh -c "! ip netns exec '$tag-vm1' ip link show '$vm1_dev' >/dev/null 2>&1" ||
  fail "the tap is still there after unbind"
status_is() { [ "$(admin GET "/v2.0/ports/$1" | field 'd["port"]["status"]')" = "$2" ]; }
retry 5 status_is "$vm1_id" DOWN || fail "the unbound port is not DOWN"

# vm3's tap is deleted in its namespace: the agent notices and reports the
# port DOWN.
in_ns "$tag-vm3" ip link del "tap${vm3_id:0:11}"
retry 5 status_is "$vm3_id" DOWN || fail "the port of the deleted tap is not DOWN"
grep -q "disappeared" "$work/h2/agent.log" || fail "h2's agent did not say the tap went"
# ...and does not spin on the dead file: under a fifth of a core over 2 s.
cpu() { awk '{ print $14 + $15 }' "/proc/${agent_pids[1]}/stat"; }
before=$(cpu)
sleep 2
used=$(($(cpu) - before))
[ "$used" -lt $((2 * $(getconf CLK_TCK) / 5)) ] || fail "h2's agent used $used ticks in 2 s"

echo "e2e.tap_ports: all checks passed"
