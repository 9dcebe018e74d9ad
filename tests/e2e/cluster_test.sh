#!/usr/bin/env bash
# The control plane as a cluster, through failures: three etcd members and
# three canopy-server replicas on them; two hosts whose agents list every
# replica; VMs pinging and streaming TCP to each other. Clients create and
# delete ports and networks on all replicas while the leading replica is
# killed -9 and then an etcd member is killed -9. Then: no acknowledged write
# lost, no address, MAC or VNI given twice, every agent reconnected within
# the bound, the lead moved, the traffic between the VMs never stopped.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"
source "$here/etcd.sh"

# How long an agent may take to be served by another replica after its
# replica died (it notices at once: the stream ends).
reconnect_bound=5
load_seconds=${CANOPY_CLUSTER_LOAD_SECONDS:-30}

start_etcd 3
declare -a replica_pids replica_urls
start_replica() {
  local i=$1
  start_server "$bin" "$work/replica$i.log" --store "$etcd_url" --listen 127.0.0.1:0 \
    --auth noauth --replica-id "r$i" --lease-ttl 3 --southbound-listen "unix:$work/sb$i.sock"
  replica_pids[$i]=$server_pid
  replica_urls[$i]=$api_url
}
for i in 0 1 2; do start_replica "$i"; done
api_url=${replica_urls[1]}

# leader: the replica id that leads, as replica $1 sees it.
leader() {
  curl -sS "${replica_urls[$1]}/canopy/v1/status" |
    field '([r["id"] for r in d["status"]["replicas"] if r["leader"]] + [""])[0]'
}
retry 15 leader 1 || fail "no replica leads: $(tail -n 5 "$work"/replica*.log)"
first_leader=$(leader 1)
echo "cluster: 3 etcd members, 3 replicas, leader $first_leader"

make_underlay
add_host h1 192.168.78.1
add_host h2 192.168.78.2
# The agents list every replica, each starting from another one.
agent_server="unix:$work/sb0.sock,unix:$work/sb1.sock,unix:$work/sb2.sock"
start_agent h1 192.168.78.1
agent_server="unix:$work/sb1.sock,unix:$work/sb2.sock,unix:$work/sb0.sock"
start_agent h2 192.168.78.2

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.1.0.0/16"}}' >/dev/null
new_port vm1 "$net"
add_vm vm1 h1 "$port_id" "$port_mac"
new_port vm2 "$net"
vm2_ip=$port_ip
add_vm vm2 h2 "$port_id" "$port_mac"
dhcp vm1 >/dev/null
dhcp vm2 >/dev/null
retry 15 in_ns "$tag-vm1" ping -c 1 -W 1 "$vm2_ip" || fail "vm1 cannot reach vm2 before the failures"

# Traffic across the failures: a ping every 100 ms and a TCP stream.
pings=$((load_seconds * 10 + 50))
in_ns "$tag-vm1" ping -c "$pings" -i 0.1 -W 1 "$vm2_ip" >"$work/ping" &
pinger=$!
in_ns "$tag-vm2" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
wait_listen "$tag-vm2" 5201
in_ns "$tag-vm1" iperf3 -c "$vm2_ip" -p 5201 -t "$((load_seconds + 5))" -b 20M -i 1 -J \
  >"$work/iperf.json" 2>&1 &
streamer=$!

# The clients, on every replica at once.
admin_net=$net
python3 "$here/cluster_load.py" "$work/load.json" "$load_seconds" 3000 "$admin_net" \
  "${replica_urls[@]}" &
loader=$!

# agent_replica HOST: the replica its agent is served by now ("" if none).
agent_replica() {
  "$bin/canopy-agent" --run-dir "$work/$1" status |
    field 'd["server"] if d["connected"] else ""'
}
sleep_until() { while [ "$SECONDS" -lt "$1" ]; do sleep 0.2; done; }
started=$SECONDS

# 1. The leading replica dies.
sleep_until $((started + load_seconds / 4))
victim=${first_leader#r}
before_h1=$(agent_replica h1)
before_h2=$(agent_replica h2)
kill -KILL "${replica_pids[$victim]}"
wait "${replica_pids[$victim]}" 2>/dev/null || true
killed_at=$SECONDS
echo "killed replica r$victim (-9); agents were on: h1 $before_h1, h2 $before_h2"
for h in h1 h2; do
  end=$((SECONDS + reconnect_bound))
  until now=$(agent_replica "$h") && [ -n "$now" ] && [ "$now" != "unix:$work/sb$victim.sock" ]; do
    [ $SECONDS -le $end ] || fail "agent $h not served by another replica within ${reconnect_bound}s"
    sleep 0.1
  done
  echo "agent $h served by $now $((SECONDS - killed_at))s after the kill"
done
survivor=$(((victim + 1) % 3))
end=$((SECONDS + 15))
until new_leader=$(leader "$survivor") && [ -n "$new_leader" ] && [ "$new_leader" != "r$victim" ]; do
  [ $SECONDS -le $end ] || fail "the lead did not move from r$victim"
  sleep 0.2
done
echo "lead moved to $new_leader $((SECONDS - killed_at))s after the kill"

# 2. An etcd member dies: the one that leads etcd, the worst.
sleep_until $((started + load_seconds / 2))
etcd_victim=$(etcd_leader) || fail "no etcd member leads"
kill_etcd "$etcd_victim"
echo "killed etcd member m$etcd_victim (-9, the etcd leader)"

wait "$loader" || fail "the load failed"
wait "$streamer" || fail "the TCP stream failed: $(tail -n 20 "$work/iperf.json")"
wait "$pinger" || true

# What was acknowledged is there; what was given is unique.
api_url=${replica_urls[$survivor]}
admin GET "/v2.0/ports?network_id=$admin_net" >"$work/ports.json"
admin GET /v2.0/networks >"$work/networks.json"
python3 - "$work/load.json" "$work/ports.json" "$work/networks.json" <<'EOF' || fail "the cluster lost or duplicated state"
import collections, json, sys
load = json.load(open(sys.argv[1]))
ports = json.load(open(sys.argv[2]))["ports"]
networks = json.load(open(sys.argv[3]))["networks"]
by_id = {p["id"]: p for p in ports}
deleted = set(load["deleted"])
maybe = set(load["maybe_deleted"])  # deletes whose outcome nobody saw: either way is right
lost = [c["id"] for c in load["created"]
        if c["id"] not in deleted and c["id"] not in maybe and c["id"] not in by_id]
resurrected = [d for d in deleted if d in by_id]
changed = [c["id"] for c in load["created"] if c["id"] in by_id and
           (by_id[c["id"]]["mac_address"] != c["mac"] or
            by_id[c["id"]]["fixed_ips"][0]["ip_address"] != c["ip"])]
ips = collections.Counter(ip["ip_address"] for p in ports for ip in p["fixed_ips"])
macs = collections.Counter(p["mac_address"] for p in ports)
vnis = collections.Counter(n.get("provider:segmentation_id") for n in networks
                           if n.get("provider:network_type") in ("geneve", "vxlan"))
twice = {"ip": [k for k, v in ips.items() if v > 1], "mac": [k for k, v in macs.items() if v > 1],
         "vni": [k for k, v in vnis.items() if v > 1]}
missing_nets = [n["id"] for n in load["networks"] if n["id"] not in {x["id"] for x in networks}]
print(f"acknowledged: {len(load['created'])} ports created, {len(deleted)} deleted, "
      f"{len(load['networks'])} networks; {len(ports)} ports on the network now; "
      f"{load['unknown']} outcomes unknown ({len(maybe)} deletes); errors {load['errors']}")
bad = lost or resurrected or changed or missing_nets or any(twice.values())
if bad:
    print(f"error samples {load.get('samples')}; unknown outcomes {load.get('unknown_ops')}")
    print(f"lost {lost} resurrected {resurrected} changed {changed} "
          f"missing networks {missing_nets} given twice {twice}")
    sys.exit(1)
if len(load["created"]) < 50:
    print("too few writes were acknowledged to mean anything")
    sys.exit(1)
EOF

# The traffic never stopped: no ping lost, the stream moved every second.
summary=$(grep "packets transmitted" "$work/ping")
echo "ping across the failures: $summary"
expect_in " 0% packet loss" "$summary"
python3 - "$work/iperf.json" <<'EOF' || fail "the TCP stream stalled"
import json, sys
r = json.load(open(sys.argv[1]))
rates = [i["sum"]["bits_per_second"] for i in r["intervals"]]
print(f"tcp stream across the failures: {len(rates)} intervals, "
      f"slowest {min(rates) / 1e6:.1f} Mbit/s, average {r['end']['sum_received']['bits_per_second'] / 1e6:.1f}")
sys.exit(0 if rates and min(rates) > 1e6 else 1)
EOF

# Both agents alive and served, h1 and h2 each by a live replica.
for h in h1 h2; do
  admin GET /v2.0/agents | field '[a["alive"] for a in d["agents"] if a["host"] == "'"$h"'"][0]' |
    grep -q True || fail "agent $h is not alive after the failures"
done
restart_etcd "$etcd_victim"
echo "e2e.cluster: all checks passed"
