#!/usr/bin/env bash
# Real virtual machines on Canopy, bound as Nova binds them: two QEMU
# guests (Debian's cloud kernel, a busybox initramfs, virtio-net on a tap)
# on two hosts. Each port is bound to its host by the admin (as Nova does:
# binding:host_id, device_owner compute:nova) and gets its bridge binding; the
# tap "tap" + 11 characters of the port id is made on that bridge in the host's namespace
# as nova-compute makes it, and QEMU opens it. The agent attaches to it by
# itself when it appears; the port turns ACTIVE. The guests' own kernels
# and udhcpc take their addresses, and one pings the other across the
# hosts, then runs iperf3 to it. When a guest's tap goes its port is DOWN; when its port leaves
# the host the agent lets the tap go.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
source "$here/guest.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
start_agent h1 192.168.77.1
# CANOPY_E2E_MIXED=1: h2's agent without the kernel fast path, beside h1's
# with it: what h1's kernel sends into the tunnel (a guest's super-frames
# whole, checksums left partial), h2's agent reads.
if [ -n "${CANOPY_E2E_MIXED:-}" ]; then
  start_agent h2 192.168.77.2 --fast-path off
else
  start_agent h2 192.168.77.2
fi

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
declare -A ids macs ips taps
for vm in vm1 vm2; do
  new_port "$vm" "$net"
  ids[$vm]=$port_id macs[$vm]=$port_mac ips[$vm]=$port_ip taps[$vm]="tap${port_id:0:11}"
done
# Nova binds each port to its compute host.
bind_to() {
  admin PUT "/v2.0/ports/${ids[$1]}" '{"port": {"binding:host_id": "'"$2"'",
    "device_owner": "compute:nova", "device_id": "'"$(cat /proc/sys/kernel/random/uuid)"'"}}'
}
expect_in '"binding:vif_type":"bridge"' "$(bind_to vm1 h1)"
expect_in '"bridge_name":"cbr'"${ids[vm2]:0:11}"'"' "$(bind_to vm2 h2)"
status_of() { admin GET "/v2.0/ports/${ids[$1]}" | field 'd["port"]["status"]'; }
[ "$(status_of vm1)" = DOWN ] || fail "vm1's port is $(status_of vm1) before its VM exists"

make_guest vm2 'iperf3 -s -D -1; sleep 300' iperf3
make_guest vm1 "for i in \$(seq 30); do ping -c 1 -W 1 ${ips[vm2]} >/dev/null && break; done
ping -c 3 -W 2 ${ips[vm2]} && echo GUEST-PING-OK || echo GUEST-PING-FAILED
iperf3 -c ${ips[vm2]} -t 3 -f m && echo GUEST-IPERF-OK || echo GUEST-IPERF-FAILED
sleep 300" iperf3
boot_guest vm2 h2 "${taps[vm2]}" "${macs[vm2]}"
boot_guest vm1 h1 "${taps[vm1]}" "${macs[vm1]}"
vm1_qemu=${agent_pids[-1]}
active() { [ "$(status_of "$1")" = ACTIVE ]; }
retry 20 active vm1 || fail "vm1's port is $(status_of vm1), not ACTIVE, with its tap there"
retry 20 active vm2 || fail "vm2's port is $(status_of vm2), not ACTIVE, with its tap there"
"$bin/canopy-agent" --run-dir "$work/h1" list >"$work/h1.bindings"
expect_in "\"${taps[vm1]}\"" "$(cat "$work/h1.bindings")"
expect_in '"automatic": true' "$(cat "$work/h1.bindings")"

wait_console vm1 "GUEST-LEASE ip=${ips[vm1]}" 120
wait_console vm2 "GUEST-LEASE ip=${ips[vm2]}" 120
wait_console vm1 GUEST-PING 120
expect_in GUEST-PING-OK "$(cat "$work/vm1.console")"
expect_in "bytes from ${ips[vm2]}" "$(cat "$work/vm1.console")"
# TCP between the guests' virtio-net drivers (offloads on: super-frames
# through the taps and the tunnel), whole.
wait_console vm1 GUEST-IPERF 120
expect_in GUEST-IPERF-OK "$(cat "$work/vm1.console")"
grep -E "sender|receiver|ms$" "$work/vm1.console" | sed 's/^/  guest vm1: /'
# Not a figure but a sanity check: a path that loses super-frames (each one
# lost costs TCP a retransmission) moves a few Mbit/s here, a sound one
# hundreds.
mbits=$(awk '/receiver/ {print int($(NF-2))}' "$work/vm1.console")
[ "${mbits:-0}" -ge 50 ] || fail "iperf3 between the guests made ${mbits:-no} Mbit/s: frames lost"
# With the kernel fast path, the kernels carried the established TCP
# between the taps and the tunnel both ways: from vm1's tap into the tunnel
# and out of it into vm2's tap on h2, and back.
if fast_path_on h1 && fast_path_on h2; then
  for h in h1 h2; do
    carried() {
      status=$("$bin/canopy-agent" --run-dir "$work/$h" status)
      [ "$(field 'd["fast_path"]["hits"]' <<<"$status")" -gt 100 ] &&
        [ "$(field 'd["fast_path"]["tunnel_in"]' <<<"$status")" -gt 10 ]
    }
    retry 30 carried || fail "$h's kernel carried too little between the tap and the tunnel: $status"
    echo "  $h's kernel: $(field 'd["fast_path"]' <<<"$status")"
  done
fi
# QEMU hands the guest's offloads to the tap (TUNSETOFFLOAD): its frames
# reach the agent as super-frames with partial checksums.
in_ns "$tag-h1" ethtool -k "${taps[vm1]}" >"$work/tap.features"
expect_in "tcp-segmentation-offload: on" "$(cat "$work/tap.features")"

# The VM goes (its tap with it): the port is DOWN. Then Nova unbinds the
# port: the agent no longer holds the interface.
kill "$vm1_qemu"
wait "$vm1_qemu" 2>/dev/null || true
in_ns "$tag-h1" ip link del "${taps[vm1]}"
down() { [ "$(status_of vm1)" = DOWN ]; }
retry 20 down || fail "vm1's port is $(status_of vm1) after its tap went"
admin PUT "/v2.0/ports/${ids[vm1]}" '{"port": {"binding:host_id": ""}}' >/dev/null
unbound() { ! "$bin/canopy-agent" --run-dir "$work/h1" list | grep -q "${taps[vm1]}"; }
retry 20 unbound || fail "h1 still holds ${taps[vm1]} after its port left the host"
# ...and the port's bridge, which os-vif leaves behind, is gone with it.
no_bridge() { ! in_ns "$tag-h1" ip link show "cbr${ids[vm1]:0:11}" >/dev/null 2>&1; }
retry 20 no_bridge || fail "h1 still has vm1's bridge"
echo "e2e.qemu_guests: all checks passed"
