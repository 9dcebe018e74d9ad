#!/usr/bin/env bash
# VM-to-VM TCP throughput (iperf3) and ping RTT through Canopy, with the same
# namespaces joined by the kernel in the same run as peers: one host (two VMs
# behind one canopy-agent) against a Linux bridge, two hosts (Geneve between
# two agents) against kernel VXLAN devices. Guests keep their offloads (TSO,
# GSO, tx checksum) on both sides, as virtio guests have them; with
# CANOPY_GUEST_OFFLOADS=off every guest, Canopy's and the peers', has its tx
# offloads off. Open vSwitch's userspace datapath (from Debian, installed
# if missing) is a second peer: two VMs on one host, and two hosts joined by
# a userspace Geneve tunnel. Small-packet forwarding rate too: 64-byte UDP
# frames from frame_flood (bench/e2e/frame_flood.cc) for
# CANOPY_BENCH_RATE_SECONDS (default 3), Mpps delivered to the receiving VM,
# against the Linux bridge and kernel VXLAN peers. The same TCP, RTT and
# 64-byte figures over IPv6 between the same guests (CANOPY_BENCH_IPV6=off
# skips them). CANOPY_BENCH_UNDERLAY=6: the hosts' tunnel addresses IPv6,
# Canopy's and the kernel VXLAN peer's (whose own outer UDP checksums it
# computes, as Linux's VXLAN does by default over IPv6; Canopy's kernel path
# sends zero ones, RFC 6935). CANOPY_BENCH_AGENT_ARGS:
# extra arguments (space-separated) for both canopy-agents. Needs root.
# Usage: bench/e2e/run.sh [seconds per iperf3 run, default 5]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${1:-5}
scripts/install-deps.sh >/dev/null
cmake --preset release >/dev/null
cmake --build --preset release --target canopy-server canopy-agent frame_flood -j2 >/dev/null
bin="$root/build/release/bin"
here="$root/tests/e2e"
source "$here/lib.sh"
source "$here/netns.sh"

# iperf3 from namespace $1 to address $3 served in namespace $2: Gbit/s.
# The server is bounded in time: run in a command substitution, it is not
# among the processes the exit trap ends.
throughput() {
  bg "$2" sh -c "exec timeout $((seconds + 20)) iperf3 -s -1 -p 5201 >/dev/null 2>&1"
  sleep 0.5
  in_ns "$1" iperf3 -c "$3" -p 5201 -t "$seconds" -J | python3 -c \
    'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
# CANOPY_BENCH_PERF=DIR: a perf profile of the agents during each of
# Canopy's throughput runs (DIR/one_host.data, DIR/two_hosts.data). With
# CANOPY_BENCH_PERF_SYSTEM=1, of the whole machine instead (what the
# kernel's fast path costs is the kernel's), the bridge's run too
# (DIR/bridge.data).
profile() {
  [ -n "${CANOPY_BENCH_PERF:-}" ] || return 0
  local target
  if [ -n "${CANOPY_BENCH_PERF_SYSTEM:-}" ]; then
    target=(-a -g)
  elif [ "$1" = bridge ]; then
    return 0
  else
    target=(-p "$(IFS=,; echo "${canopy_agents[*]}")")
  fi
  mkdir -p "$CANOPY_BENCH_PERF"
  (sleep 1 && exec perf record -o "$CANOPY_BENCH_PERF/$1.data" "${target[@]}" \
    -- sleep $((seconds - 2))) >/dev/null 2>&1 &
}
# crosses FROM TO ADDRESS: whether 4 MiB get over one TCP connection from
# namespace FROM to a listener in TO at ADDRESS within 5 s. Run it in a
# subshell: the listener, bounded in time, is then not among the processes
# the exit trap ends (nor among the PIDs profile hands perf).
crosses() {
  bg "$2" sh -c "exec timeout 10 nc -l 5202 >/dev/null 2>&1"
  sleep 0.3
  head -c 4194304 /dev/zero | in_ns "$1" timeout 5 nc -N -w 3 "$3" 5202 >/dev/null 2>&1
}
# rate FROM SINK DST_IP DST_MAC SRC_IP: 64-byte UDP frames from FROM's eth0
# to DST_MAC and DST_IP for rate_seconds; prints "DELIVERED OFFERED" in
# Mpps: frames SINK's eth0 received, frames the generator sent, over the
# generator's time. The sink drops them as they arrive (an nftables netdev
# ingress hook, after eth0 counted them): its own IP stack, whose work
# (route lookups, ICMP errors) would be billed to whoever delivers the
# frame, the forwarder or the generator, is out of the measurement.
# frame_flood is bounded in time itself and by timeout.
rate_seconds=${CANOPY_BENCH_RATE_SECONDS:-3}
rate() {
  local rx=/sys/class/net/eth0/statistics/rx_packets before after out
  in_ns "$2" nft "add table netdev sink; add chain netdev sink in {" \
    "type filter hook ingress device eth0 priority 0; policy drop; }" || fail "nft in $2"
  before=$(in_ns "$2" cat "$rx")
  out=$(in_ns "$1" timeout $((${rate_seconds%.*} + 10)) "$bin/frame_flood" eth0 "$4" "$5" "$3" \
    --seconds "$rate_seconds") || fail "frame_flood in $1"
  sleep 0.3  # what is still queued on the way
  after=$(in_ns "$2" cat "$rx")
  in_ns "$2" nft delete table netdev sink || fail "nft in $2"
  set -- $out
  python3 -c "print('%.3f %.3f' % (($after - $before) / $4 / 1e6, $2 / $4 / 1e6))"
}
mac_of() { in_ns "$1" cat /sys/class/net/eth0/address; }
# rtt NS ADDRESS: the average of 20 echoes on an established path, every
# path alike: a first echo is sent and left out (through Canopy it is the
# flow's setup in the agent, which setup_rate.sh measures).
rtt() {
  in_ns "$1" ping -c 21 -i 0.05 "$2" | awk -F'time=' '
    / bytes from / && ++n > 1 { split($2, t, " "); sum += t[1] }
    END { if (n > 1) printf "%.3f\n", sum / (n - 1) }'
}
guest() {  # guest NS ADDRESS: eth0 as Canopy's guests have it (add_vm)
  guest_offloads "$1" eth0
  in_ns "$1" ip addr add "$2/24" dev eth0
  in_ns "$1" ip link set eth0 up
}

# --- peers: a Linux bridge (one host), kernel VXLAN (two hosts) ---
new_ns "$tag-br"
in_ns "$tag-br" ip link add br0 type bridge
in_ns "$tag-br" ip link set br0 up
for i in 1 2; do
  new_ns "$tag-p$i"
  ip link add "${tag}p$i" type veth peer name eth0 netns "$tag-p$i"
  ip link set "${tag}p$i" netns "$tag-br"
  in_ns "$tag-br" ip link set "${tag}p$i" master br0 up
  guest "$tag-p$i" "10.9.0.$i"
done
profile bridge
bridge_tput=$(throughput "$tag-p1" "$tag-p2" 10.9.0.2)
bridge_rtt=$(rtt "$tag-p1" 10.9.0.2)
bridge_rate=$(rate "$tag-p1" "$tag-p2" 10.9.0.2 "$(mac_of "$tag-p2")" 10.9.0.1)
ipv6=${CANOPY_BENCH_IPV6:-on}
# v6 NS ADDRESS: an IPv6 address on the guest's eth0 beside its IPv4 one.
v6() { in_ns "$1" ip -6 addr add "$2/64" dev eth0 nodad; }
if [ "$ipv6" = on ]; then
  v6 "$tag-p1" fd09::1
  v6 "$tag-p2" fd09::2
  bridge_tput6=$(throughput "$tag-p1" "$tag-p2" fd09::2)
  bridge_rtt6=$(rtt "$tag-p1" fd09::2)
  bridge_rate6=$(rate "$tag-p1" "$tag-p2" fd09::2 "$(mac_of "$tag-p2")" fd09::1)
fi

make_underlay
underlay_version=${CANOPY_BENCH_UNDERLAY:-4}
# underlay_address NET I: host I's tunnel address on underlay NET (77, 78).
underlay_address() {
  if [ "$underlay_version" = 6 ]; then echo "fd$1::$2"; else echo "192.168.$1.$2"; fi
}
vxlan_mtu=1450
[ "$underlay_version" = 6 ] && vxlan_mtu=1430
for i in 1 2; do
  add_host "k$i" "$(underlay_address 78 "$i")"
  ns="$tag-k$i"
  in_ns "$ns" ip link add vx0 type vxlan id 42 local "$(underlay_address 78 "$i")" \
    remote "$(underlay_address 78 $((3 - i)))" dstport 4789
  in_ns "$ns" ip link set vx0 mtu "$vxlan_mtu" up
  in_ns "$ns" ip link add br0 type bridge
  in_ns "$ns" ip link set vx0 master br0
  in_ns "$ns" ip link set br0 up
  new_ns "$tag-kv$i"
  ip link add "${tag}kv$i" type veth peer name eth0 netns "$tag-kv$i"
  ip link set "${tag}kv$i" netns "$ns"
  in_ns "$ns" ip link set "${tag}kv$i" master br0 up
  guest "$tag-kv$i" "10.8.0.$i"
  in_ns "$tag-kv$i" ip link set eth0 mtu "$vxlan_mtu"
done
vxlan_tput=$(throughput "$tag-kv1" "$tag-kv2" 10.8.0.2)
vxlan_rtt=$(rtt "$tag-kv1" 10.8.0.2)
vxlan_rate=$(rate "$tag-kv1" "$tag-kv2" 10.8.0.2 "$(mac_of "$tag-kv2")" 10.8.0.1)
if [ "$ipv6" = on ]; then
  v6 "$tag-kv1" fd08::1
  v6 "$tag-kv2" fd08::2
  vxlan_tput6=$(throughput "$tag-kv1" "$tag-kv2" fd08::2)
  vxlan_rtt6=$(rtt "$tag-kv1" fd08::2)
  vxlan_rate6=$(rate "$tag-kv1" "$tag-kv2" fd08::2 "$(mac_of "$tag-kv2")" fd08::1)
fi

# --- peers: Open vSwitch's userspace (netdev) datapath, userspace TSO on.
# Each OVS "host" is a namespace with an ovsdb-server and an ovs-vswitchd of
# its own, their files in a directory of the work dir. CANOPY_OVS_PEER=off
# skips these peers.
#
# start_ovs NS DIR: the daemons in namespace NS, database, sockets, pidfiles
# and logs (and the bridges' management sockets, through OVS_RUNDIR) in DIR;
# ended with the agents, by PID. ovs-vsctl talks to them as vsctl DIR.
start_ovs() {
  local ns=$1 dir=$2
  local env=(env OVS_RUNDIR="$dir" OVS_LOGDIR="$dir" OVS_DBDIR="$dir" OVS_SYSCONFDIR="$dir")
  mkdir -p "$dir"
  ovsdb-tool create "$dir/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  in_ns "$ns" "${env[@]}" ovsdb-server "$dir/conf.db" --remote="punix:$dir/db.sock" \
    --unixctl="$dir/ovsdb-server.ctl" --pidfile="$dir/ovsdb-server.pid" \
    --log-file="$dir/ovsdb-server.log" --detach --no-chdir 2>/dev/null
  agent_pids+=("$(cat "$dir/ovsdb-server.pid")")
  vsctl "$dir" --no-wait init
  vsctl "$dir" --no-wait set open_vswitch . other_config:userspace-tso-enable=true
  in_ns "$ns" "${env[@]}" ovs-vswitchd "unix:$dir/db.sock" --unixctl="$dir/ovs-vswitchd.ctl" \
    --pidfile="$dir/ovs-vswitchd.pid" --log-file="$dir/ovs-vswitchd.log" --detach --no-chdir \
    2>/dev/null
  agent_pids+=("$(cat "$dir/ovs-vswitchd.pid")")
}
vsctl() { local dir=$1; shift; ovs-vsctl --db="unix:$dir/db.sock" "$@"; }

ovs_tput=- ovs_rtt=- ovs2_tput=- ovs2_rtt=- ovs2_note=
if [ "${CANOPY_OVS_PEER:-on}" != off ]; then
  if ! command -v ovs-vswitchd >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openvswitch-switch >/dev/null
  fi
  # One host: two VMs on one bridge (NORMAL).
  ovs=$work/ovs
  new_ns "$tag-ovs"
  start_ovs "$tag-ovs" "$ovs"
  vsctl "$ovs" add-br br0 -- set bridge br0 datapath_type=netdev
  for i in 1 2; do
    new_ns "$tag-o$i"
    in_ns "$tag-ovs" ip link add "${tag}o$i" type veth peer name eth0 netns "$tag-o$i"
    in_ns "$tag-ovs" ip link set "${tag}o$i" up
    vsctl "$ovs" add-port br0 "${tag}o$i"
    guest "$tag-o$i" "10.7.0.$i"
  done
  retry 10 in_ns "$tag-o1" ping -c 1 -W 1 10.7.0.2 || fail "the OVS peer's VMs cannot reach each other"
  ovs_tput=$(throughput "$tag-o1" "$tag-o2" 10.7.0.2)
  ovs_rtt=$(rtt "$tag-o1" 10.7.0.2)

  # Two hosts, oh1 and oh2, joined by a veth (ul0 in each), the underlay
  # 192.168.79.0/24; a VM (ov1, ov2) on each host's bridge br-int, whose
  # Geneve port (VNI 42) leads to the other host. This is OVS's userspace
  # tunneling setup: the netdev datapath sends and receives the tunnel's
  # packets itself, through a bridge br-phy that holds the underlay port and
  # whose internal port holds the host's tunnel address. OVS routes the
  # tunnel by the kernel's route through br-phy (which it reads from the
  # host namespace) and learns the remote end's MAC from ARP through br-phy.
  for i in 1 2; do new_ns "$tag-oh$i"; done
  in_ns "$tag-oh1" ip link add ul0 type veth peer name ul0 netns "$tag-oh2"
  for i in 1 2; do
    ns="$tag-oh$i" dir="$work/ovs-h$i"
    start_ovs "$ns" "$dir"
    in_ns "$ns" ip link set ul0 up
    vsctl "$dir" add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy ul0
    in_ns "$ns" ip addr add "192.168.79.$i/24" dev br-phy
    in_ns "$ns" ip link set br-phy up
    vsctl "$dir" add-br br-int -- set bridge br-int datapath_type=netdev \
      -- add-port br-int gnv0 -- set interface gnv0 type=geneve \
      options:remote_ip="192.168.79.$((3 - i))" options:key=42
    new_ns "$tag-ov$i"
    in_ns "$ns" ip link add "${tag}ov$i" type veth peer name eth0 netns "$tag-ov$i"
    in_ns "$ns" ip link set "${tag}ov$i" up
    vsctl "$dir" add-port br-int "${tag}ov$i"
    guest "$tag-ov$i" "10.6.0.$i"
    in_ns "$tag-ov$i" ip link set eth0 mtu 1450  # Geneve's 50 bytes, as VXLAN's above
  done
  retry 10 in_ns "$tag-oh1" ping -c 1 -W 1 192.168.79.2 || fail "the OVS hosts cannot reach each other"
  retry 10 in_ns "$tag-ov1" ping -c 1 -W 1 10.6.0.2 ||
    fail "the two-host OVS peer's VMs cannot reach each other"
  ovs2_rtt=$(rtt "$tag-ov1" 10.6.0.2)
  if (crosses "$tag-ov1" "$tag-ov2" 10.6.0.2); then
    ovs2_tput=$(throughput "$tag-ov1" "$tag-ov2" 10.6.0.2)
  else
    # OVS before 3.3 drops at a userspace tunnel the packets that carry
    # offload flags: TSO ones, and before 3.2 also those whose checksum is
    # left to the NIC (what guests with tx offloads send), so that not even
    # a TCP handshake gets across. Measured instead with these two guests' tx
    # offloads off, and said so, with OVS's count of the drops, under the table.
    [ "${CANOPY_GUEST_OFFLOADS:-on}" != off ] ||
      fail "no TCP gets across the two-host OVS peer, its guests' tx offloads off"
    ovs2_tput="no TCP"
    drops=$(ovs-appctl -t "$work/ovs-h1/ovs-vswitchd.ctl" coverage/read-counter \
      netdev_push_header_drops 2>/dev/null) || drops="?"
    for i in 1 2; do in_ns "$tag-ov$i" ethtool -K eth0 tx off >/dev/null; done
    ovs2_note="OVS userspace, Geneve: with the guests' tx offloads on, no TCP got across"
    ovs2_note+=" (ping does): Open vSwitch $(ovs-vswitchd --version | sed -n '1s/.*) //p')"
    ovs2_note+=" dropped $drops packets at the tunnel (netdev_push_header_drops), as it does"
    ovs2_note+=" packets with offload flags (TSO; before 3.2 also partial checksums)."
    ovs2_note+=" With its two guests' tx offloads off:"
    ovs2_note+=" $(throughput "$tag-ov1" "$tag-ov2" 10.6.0.2) Gbit/s."
  fi
fi

# --- Canopy: one network, vm1 and vm2 on h1, vm3 on h2 ---
start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --overlay-ip-version "$underlay_version"
add_host h1 "$(underlay_address 77 1)"
add_host h2 "$(underlay_address 77 2)"
read -ra agent_args <<<"${CANOPY_BENCH_AGENT_ARGS:-}"
start_agent h1 "$(underlay_address 77 1)" --log-level warn "${agent_args[@]}"
start_agent h2 "$(underlay_address 77 2)" --log-level warn "${agent_args[@]}"
canopy_agents=("${agent_pids[@]: -2}")  # the last two: h1's and h2's agents
net=$(api POST /v2.0/networks '{"network": {"name": "bench"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
# Before the ports: each gets an IPv6 address too (SLAAC, from its MAC).
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 6,
  "cidr": "fd00::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}' >/dev/null
for vm in "vm1 h1" "vm2 h1" "vm3 h2"; do
  set -- $vm
  api POST /v2.0/ports '{"port": {"network_id": "'"$net"'", "name": "'"$1"'",
    "port_security_enabled": false, "security_groups": []}}' >"$work/$1.port"
  add_vm "$1" "$2" "$(field 'd["port"]["id"]' <"$work/$1.port")" \
    "$(field 'd["port"]["mac_address"]' <"$work/$1.port")"
  dhcp "$1" >/dev/null
done
# (The port's IPv4 address: its fixed IPs come in no set order.)
ip_of() {
  field '[f["ip_address"] for f in d["port"]["fixed_ips"] if ":" not in f["ip_address"]][0]' \
    <"$work/$1.port"
}
mac_port() { field 'd["port"]["mac_address"]' <"$work/$1.port"; }
retry 10 in_ns "$tag-vm1" ping -c 1 -W 1 "$(ip_of vm3)" || fail "canopy VMs cannot reach each other"
profile one_host
one_tput=$(throughput "$tag-vm1" "$tag-vm2" "$(ip_of vm2)")
one_rtt=$(rtt "$tag-vm1" "$(ip_of vm2)")
profile two_hosts
two_tput=$(throughput "$tag-vm1" "$tag-vm3" "$(ip_of vm3)")
two_rtt=$(rtt "$tag-vm1" "$(ip_of vm3)")
one_rate=$(rate "$tag-vm1" "$tag-vm2" "$(ip_of vm2)" "$(mac_port vm2)" "$(ip_of vm1)")
two_rate=$(rate "$tag-vm1" "$tag-vm3" "$(ip_of vm3)" "$(mac_port vm3)" "$(ip_of vm1)")
if [ "$ipv6" = on ]; then
  ip6_of() {
    field '[f["ip_address"] for f in d["port"]["fixed_ips"] if ":" in f["ip_address"]][0]' \
      <"$work/$1.port"
  }
  for vm in vm1 vm2 vm3; do v6 "$tag-$vm" "$(ip6_of $vm)"; done
  retry 10 in_ns "$tag-vm1" ping -6 -c 1 -W 1 "$(ip6_of vm3)" || fail "no IPv6 between Canopy's VMs"
  one_tput6=$(throughput "$tag-vm1" "$tag-vm2" "$(ip6_of vm2)")
  one_rtt6=$(rtt "$tag-vm1" "$(ip6_of vm2)")
  two_tput6=$(throughput "$tag-vm1" "$tag-vm3" "$(ip6_of vm3)")
  two_rtt6=$(rtt "$tag-vm1" "$(ip6_of vm3)")
  one_rate6=$(rate "$tag-vm1" "$tag-vm2" "$(ip6_of vm2)" "$(mac_port vm2)" "$(ip6_of vm1)")
  two_rate6=$(rate "$tag-vm1" "$tag-vm3" "$(ip6_of vm3)" "$(mac_port vm3)" "$(ip6_of vm1)")
fi

ratio() { python3 -c "print('%.2f' % ($1 / $2) if $2 > 0 else '-')"; }
echo
echo "iperf3 ${seconds} s, one TCP stream; ping RTT average of 20 after a first echo left out; guest tx offloads" \
  "${CANOPY_GUEST_OFFLOADS:-on}; underlay IPv$underlay_version."
echo
echo "| path | Canopy Gbit/s | peer | peer Gbit/s | ratio | Canopy RTT ms | peer RTT ms |"
echo "|---|---:|---|---:|---:|---:|---:|"
echo "| one host | $one_tput | Linux bridge | $bridge_tput | $(ratio "$one_tput" "$bridge_tput") | $one_rtt | $bridge_rtt |"
echo "| two hosts | $two_tput | kernel VXLAN | $vxlan_tput | $(ratio "$two_tput" "$vxlan_tput") | $two_rtt | $vxlan_rtt |"
if [ "$ovs_tput" != - ]; then
  echo "| one host | $one_tput | OVS userspace (netdev, TSO) | $ovs_tput | $(ratio "$one_tput" "$ovs_tput") | $one_rtt | $ovs_rtt |"
  ovs2_ratio=-
  if [ "$ovs2_tput" != "no TCP" ] && python3 -c "import sys; sys.exit(not float('$ovs2_tput') > 0)"; then
    ovs2_ratio=$(ratio "$two_tput" "$ovs2_tput")
  fi
  echo "| two hosts | $two_tput | OVS userspace, Geneve | $ovs2_tput | $ovs2_ratio | $two_rtt | $ovs2_rtt |"
  if [ -n "$ovs2_note" ]; then echo; echo "$ovs2_note"; fi
fi

read -r bridge_mpps bridge_offered <<<"$bridge_rate"
read -r vxlan_mpps vxlan_offered <<<"$vxlan_rate"
read -r one_mpps one_offered <<<"$one_rate"
read -r two_mpps two_offered <<<"$two_rate"
echo
echo "64-byte UDP frames, one flow, ${rate_seconds} s from frame_flood (AF_PACKET, qdisc bypass);"
echo "Mpps received by the destination VM's eth0; offered: what the generator sent."
echo
echo "| path | Canopy Mpps | peer | peer Mpps | ratio | offered Mpps (Canopy / peer) |"
echo "|---|---:|---|---:|---:|---:|"
echo "| one host | $one_mpps | Linux bridge | $bridge_mpps | $(ratio "$one_mpps" "$bridge_mpps") | $one_offered / $bridge_offered |"
echo "| two hosts | $two_mpps | kernel VXLAN | $vxlan_mpps | $(ratio "$two_mpps" "$vxlan_mpps") | $two_offered / $vxlan_offered |"
if [ "$ipv6" = on ]; then
  read -r bridge_mpps6 _ <<<"$bridge_rate6"
  read -r vxlan_mpps6 _ <<<"$vxlan_rate6"
  read -r one_mpps6 _ <<<"$one_rate6"
  read -r two_mpps6 _ <<<"$two_rate6"
  echo
  echo "IPv6, the same guests: TCP (iperf3 ${seconds} s), ping RTT, 64-byte UDP frames."
  echo
  echo "| path | Canopy Gbit/s | peer | peer Gbit/s | ratio | Canopy RTT ms | peer RTT ms | Canopy Mpps | peer Mpps | ratio |"
  echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  echo "| one host | $one_tput6 | Linux bridge | $bridge_tput6 | $(ratio "$one_tput6" "$bridge_tput6") | $one_rtt6 | $bridge_rtt6 | $one_mpps6 | $bridge_mpps6 | $(ratio "$one_mpps6" "$bridge_mpps6") |"
  echo "| two hosts | $two_tput6 | kernel VXLAN | $vxlan_tput6 | $(ratio "$two_tput6" "$vxlan_tput6") | $two_rtt6 | $vxlan_rtt6 | $two_mpps6 | $vxlan_mpps6 | $(ratio "$two_mpps6" "$vxlan_mpps6") |"
fi
