#!/usr/bin/env bash
# OVN as the peer for restarts (docs/PERFORMANCE.md, "Restarts and
# failover"): one chassis on Open vSwitch's userspace datapath (this
# machine has no openvswitch kernel module), two VMs (namespaces) on one
# logical switch with a stateful ACL (allow-related, as Neutron's security
# groups are), an iperf3 stream from vm1 to vm2 in 0.1 s intervals while
#   1. ovn-controller is killed -9 and started again (the control plane:
#      flows stay in ovs-vswitchd);
#   2. ovs-vswitchd is killed -9 and started again (the datapath: its
#      flows and connection tracking are in this process, as Canopy's are
#      in its agent).
# Prints, for each, the longest time vm2 received nothing and whether the
# stream survived; with the kernel datapath, a vswitchd restart keeps the
# kernel's flows and conntrack (not measurable here).
#
# Real OVN from Debian (installed if missing); everything lives in a fresh
# temporary directory and in namespaces named after this run; daemons are
# stopped by the PIDs in their pidfiles on exit.
# Usage: bench/restart/ovn_peer.sh [SECONDS]
set -euo pipefail
seconds=${1:-12}
[ "$(id -u)" -eq 0 ] || { echo "ovn_peer.sh: needs root" >&2; exit 1; }
pkgs=(openvswitch-switch ovn-central ovn-host iperf3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi

work=$(mktemp -d -t canopy-ovn-restart.XXXXXX)
tag="or$$"
namespaces=()
client=
gone() { [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || echo Z)" = Z ]; }
cleanup() {
  local f pid pids=()
  [ -n "$client" ] && pids+=("$client")
  for f in "$work"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    grep -qaF "$work" "/proc/$pid/cmdline" 2>/dev/null && pids+=("$pid")
  done
  for ns in "${namespaces[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$pid"); done
  done
  kill "${pids[@]}" 2>/dev/null || true
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do
      gone "$pid" && break
      sleep 0.1
    done
    gone "$pid" || kill -9 "$pid" 2>/dev/null || true
  done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  for vm in vm1 vm2; do ip link del "$tag$vm" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

export OVS_RUNDIR=$work OVN_RUNDIR=$work OVS_DBDIR=$work OVS_LOGDIR=$work
export OVN_NB_DB=unix:$work/nb.sock OVN_SB_DB=unix:$work/sb.sock
daemon() {
  local name=$1
  shift
  "$name" -vconsole:off "$@" --pidfile="$work/$name.pid" --log-file="$work/$name.log" \
    --detach --no-chdir
}
for db in nb sb; do
  ovsdb-tool create "$work/$db.db" "/usr/share/ovn/ovn-$db.ovsschema"
  ovsdb-server -vconsole:off "$work/$db.db" --remote="punix:$work/$db.sock" \
    --unixctl="$work/$db.ctl" --pidfile="$work/$db.pid" --log-file="$work/$db.log" --detach \
    --no-chdir
done
ovn-nbctl --no-wait init
ovn-sbctl init
daemon ovn-northd --ovnnb-db="$OVN_NB_DB" --ovnsb-db="$OVN_SB_DB"
ovsdb-tool create "$work/conf.db" /usr/share/openvswitch/vswitch.ovsschema
daemon ovsdb-server "$work/conf.db" --remote="punix:$work/db.sock"
vsctl() { ovs-vsctl --db="unix:$work/db.sock" "$@"; }
vsctl --no-wait init -- add-br br-int -- set bridge br-int datapath_type=netdev \
  fail-mode=secure other-config:disable-in-band=true \
  -- set open_vswitch . external_ids:system-id=chassis1 "external_ids:ovn-remote=$OVN_SB_DB" \
  external_ids:ovn-encap-type=geneve external_ids:ovn-encap-ip=127.0.0.1 \
  external_ids:ovn-bridge-datapath-type=netdev
daemon ovs-vswitchd "unix:$work/db.sock"
daemon ovn-controller "unix:$work/db.sock"

declare -A ip=([vm1]=10.0.0.11 [vm2]=10.0.0.12) mac=([vm1]=0a:00:00:00:00:11 [vm2]=0a:00:00:00:00:12)
ovn-nbctl ls-add ls1
for vm in vm1 vm2; do
  ns="$tag-$vm"
  ip netns add "$ns"
  namespaces+=("$ns")
  ip link add "$tag$vm" type veth peer name eth0 netns "$ns"
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip link set eth0 address "${mac[$vm]}" up
  ip netns exec "$ns" ip addr add "${ip[$vm]}/24" dev eth0
  # The userspace datapath reads with plain AF_PACKET: checksums complete.
  ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null
  ip link set "$tag$vm" up
  vsctl add-port br-int "$tag$vm" -- set interface "$tag$vm" "external_ids:iface-id=$vm"
  ovn-nbctl lsp-add ls1 "$vm" -- lsp-set-addresses "$vm" "${mac[$vm]} ${ip[$vm]}" \
    -- lsp-set-port-security "$vm" "${mac[$vm]} ${ip[$vm]}"
done
# Stateful, as Neutron's security groups: egress anything, ingress tcp/5201.
ovn-nbctl pg-add pg vm1 vm2
ovn-nbctl acl-add pg from-lport 1002 'inport == @pg && ip4' allow-related \
  -- acl-add pg to-lport 1002 'outport == @pg && ip4 && tcp.dst == 5201' allow-related \
  -- acl-add pg to-lport 1001 'outport == @pg && ip4' drop
ovn-nbctl --timeout=60 --wait=hv sync
for vm in vm1 vm2; do ovn-nbctl --timeout=60 wait-until Logical_Switch_Port "$vm" up=true; done
for _ in $(seq 1 50); do
  ip netns exec "$tag-vm1" ping -c 1 -W 1 "${ip[vm2]}" >/dev/null 2>&1 && break
done

ip netns exec "$tag-vm2" iperf3 -s -1 -i 0.1 --forceflush >"$work/server" 2>&1 &
for _ in $(seq 1 50); do
  ip netns exec "$tag-vm2" ss -Hltn "sport = :5201" | grep -q . && break
  sleep 0.1
done
ip netns exec "$tag-vm1" iperf3 -c "${ip[vm2]}" -t "$seconds" -b 500M >"$work/client" 2>&1 &
client=$!
intervals() { grep -E '^\[ *[0-9]+\] +[0-9.]+-[0-9.]+ +sec' "$work/server" | grep -v receiver || true; }
until [ "$(intervals | wc -l)" -ge 10 ]; do sleep 0.1; done
gap_since() {  # longest run of empty intervals after interval $1, ms
  intervals | tail -n +"$1" | python3 -c '
import sys
longest = run = 0
for line in sys.stdin:
    run = run + 1 if " 0.00 Bytes" in line else 0
    longest = max(longest, run)
print(longest * 100)'
}
restart() {  # restart NAME ARGS...: kill -9 and start again
  local name=$1 pid
  shift
  pid=$(cat "$work/$name.pid")
  kill -9 "$pid"
  while ! gone "$pid"; do sleep 0.01; done
  rm -f "$work/$name.pid"
  daemon "$name" "$@"
}
mark=$(intervals | wc -l)
restart ovn-controller "unix:$work/db.sock"
sleep 3  # a fixed span of the stream to look at after the event
controller_gap=$(gap_since "$mark")
mark=$(intervals | wc -l)
restart ovs-vswitchd "unix:$work/db.sock"
wait "$client" && survived=yes || survived=no
vswitchd_gap=$(gap_since "$mark")
tail_zero=$(intervals | tail -n 5 | grep -c ' 0.00 Bytes' || true)
echo "OVN $(ovn-controller --version | sed -n '1s/.* //p') on Open vSwitch $(ovs-vswitchd --version | sed -n '1s/.* //p') (userspace datapath):"
echo "  ovn-controller kill -9 and restart: longest gap ${controller_gap} ms"
echo "  ovs-vswitchd kill -9 and restart: longest gap ${vswitchd_gap} ms; stream completed: $survived$([ "$tail_zero" -ge 5 ] && echo ' (stalled to the end)')"
