#!/usr/bin/env bash
# Tenant isolation and port security with real guests: two tenants with the
# same 10.0.0.0/24 and the same addresses on the same two hosts. Each
# tenant's VMs reach each other; a capture on the other tenant's VM sees
# none of it. A VM that spoofs its MAC, its IP or ARP, or sends VLAN-tagged
# frames without being a trunk, gets nothing through, and the agent counts
# why, per reason and per port.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
# api_as PROJECT METHOD PATH [BODY]
api_as() {
  local project=$1 method=$2 path=$3
  curl -sS -X "$method" "$api_url$path" -H "X-Project-Id: $project" \
    -H 'Content-Type: application/json' ${4:+-d "$4"}
}

make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
start_agent h1 192.168.77.1 --metrics-listen 127.0.0.1:9100
start_agent h2 192.168.77.2

for t in a b; do
  net=$(api_as "tenant-$t" POST /v2.0/networks '{"network": {"name": "net"}}' | field 'd["network"]["id"]')
  api_as "tenant-$t" POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
    "cidr": "10.0.0.0/24"}}' >/dev/null
  for vm in "1 h1 10.0.0.10" "2 h2 10.0.0.20"; do
    set -- $vm
    api_as "tenant-$t" POST /v2.0/ports '{"port": {"network_id": "'"$net"'", "name": "'"$t$1"'",
      "fixed_ips": [{"ip_address": "'"$3"'"}]}}' >"$work/$t$1.port"
    id=$(field 'd["port"]["id"]' <"$work/$t$1.port")
    mac=$(field 'd["port"]["mac_address"]' <"$work/$t$1.port")
    add_vm "$t$1" "$2" "$id" "$mac"
    dhcp "$t$1" >/dev/null
  done
done

# Each tenant's VMs reach each other; a capture on tenant b's VM with the
# same address sees nothing of tenant a's ping.
in_ns "$tag-b2" timeout 6 tcpdump -l -n -i eth0 icmp >"$work/b2.pcap.txt" 2>"$work/b2.pcap.err" &
capture=$!
wait_capture "$work/b2.pcap.err"
in_ns "$tag-a1" ping -c 5 -i 0.2 -W 2 10.0.0.20 >"$work/ping-a" || fail "a1 -> a2: $(cat "$work/ping-a")"
in_ns "$tag-b1" ping -c 2 -i 0.2 -W 2 10.0.0.20 >"$work/ping-b" || fail "b1 -> b2: $(cat "$work/ping-b")"
wait "$capture" || true
# b2 saw b1's two echo requests (and sent two replies), nothing of a1's five.
seen=$(grep -c "ICMP echo request" "$work/b2.pcap.txt" || true)
[ "$seen" -eq 2 ] || fail "b2 saw $seen echo requests: $(cat "$work/b2.pcap.txt")"

# MAC spoofing: a1 takes another MAC; nothing gets through.
in_ns "$tag-a1" ip link set eth0 address fa:16:3e:12:34:56
if in_ns "$tag-a1" ping -c 2 -i 0.2 -W 1 10.0.0.20 >/dev/null; then fail "a spoofed MAC got through"; fi
in_ns "$tag-a1" ip link set eth0 address "$(field 'd["port"]["mac_address"]' <"$work/a1.port")"
in_ns "$tag-a1" ping -c 1 -W 2 10.0.0.20 >/dev/null || fail "a1 lost its network after the MAC came back"

# IP spoofing: a1 sends from an address that is not its own.
in_ns "$tag-a1" ip addr add 10.0.0.99/24 dev eth0
if in_ns "$tag-a1" ping -c 2 -i 0.2 -W 1 -I 10.0.0.99 10.0.0.20 >/dev/null; then
  fail "a spoofed source address got through"
fi
# ARP spoofing: a1 claims a2's address.
in_ns "$tag-a1" ip addr add 10.0.0.20/32 dev eth0
in_ns "$tag-a1" busybox arping -c 2 -U -s 10.0.0.20 -I eth0 10.0.0.20 >/dev/null 2>&1 || true
# VLAN tags: a1 is no trunk; its tagged frames (an ARP request on VLAN 100)
# are dropped before anything else looks at them.
in_ns "$tag-a1" python3 -c '
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, socket.inet_aton("10.0.0.10"),
                  bytes(6), socket.inet_aton("10.0.0.20"))
for _ in range(3):
    s.send(b"\xff" * 6 + mac + struct.pack("!HH", 0x8100, 100) + b"\x08\x06" + arp)
' "$(field 'd["port"]["mac_address"]' <"$work/a1.port")"
reasons="port_security_mac port_security_ip port_security_arp port_not_trunk"
# The agent publishes its counters every second: waited for.
counted() {
  status=$("$bin/canopy-agent" --run-dir "$work/h1" status)
  for reason in $reasons; do
    [ "$(field "d['datapath']['drops'].get('$reason', 0)" <<<"$status")" -gt 0 ] || return 1
  done
}
for _ in $(seq 1 50); do counted && break; sleep 0.1; done
status=$("$bin/canopy-agent" --run-dir "$work/h1" status)
for reason in $reasons; do
  n=$(field "d['datapath']['drops'].get('$reason', 0)" <<<"$status")
  [ "$n" -gt 0 ] || fail "no $reason drops counted: $status"
  # ... and charged to a1's port, not to its neighbour b1 on the same host.
  a1_id=$(field 'd["port"]["id"]' <"$work/a1.port")
  n=$(field "sum(p['drops'].get('$reason', 0) for p in d['datapath']['ports'] if p['port_id'] == '$a1_id')" <<<"$status")
  [ "$n" -gt 0 ] || fail "no $reason drops charged to a1's port: $status"
  n=$(field "sum(p['drops'].get('$reason', 0) for p in d['datapath']['ports'] if p['port_id'] != '$a1_id')" <<<"$status")
  [ "$n" -eq 0 ] || fail "$reason drops charged to another port: $status"
done
metrics=$(in_ns "$tag-h1" curl -sS http://127.0.0.1:9100/metrics)
expect_in "canopy_port_drops_total{port=\"$a1_id\",interface=\"tap${a1_id:0:11}\",reason=\"port_security_mac\"}" "$metrics"

echo "e2e.isolation: all checks passed"
