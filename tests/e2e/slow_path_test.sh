#!/usr/bin/env bash
# Slow-path protection: a VM flooding new flows (UDP to random ports) is
# held to its port's rate of flow setups, while its neighbour on the same
# host goes on setting up TCP connections. vm1 (the flooder) and vm5 on h1,
# vm2 (the server) on h2. Checks: vm5's connection setups per second during
# the flood are at least half of what they were before it, the flood is
# counted as flow_setup_rate_limited, and an ARP flood as arp_rate_limited;
# the same flood with the protection off is measured and reported. These
# run with every setup through the agent (--fast-path-setups off): what is
# checked is the slow path's share. Then vm5's setups made in the kernel
# (from a template) are measured alone and during the same flood: they do
# not need the agent, and must go on.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
# Each port may open 500 connections a second: vm5 alone runs at that limit,
# as a busy neighbour would; the flooder is held to it.
start_agent h1 192.168.77.1 --port-flow-rate 500 --port-flow-burst 500 \
  --port-control-rate 100 --port-control-burst 100 --fast-path-setups off
start_agent h2 192.168.77.2

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
for vm in "vm1 h1" "vm5 h1" "vm2 h2"; do
  set -- $vm
  new_port "$1" "$net"
  add_vm "$1" "$2" "$port_id" "$port_mac"
  dhcp "$1" >/dev/null
done
vm2_ip=$(field 'd["port"]["fixed_ips"][0]["ip_address"]' <"$work/vm2.port")
retry 10 in_ns "$tag-vm5" ping -c 1 -W 1 "$vm2_ip" || fail "vm5 cannot reach vm2"

# vm2 accepts and closes TCP connections on 8000.
bg "$tag-vm2" python3 -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8000))
s.listen(4096)
while True:
    c, _ = s.accept()
    c.close()
'
wait_listen "$tag-vm2" 8000

# setups SECONDS: vm5's TCP connection setups per second to vm2 (connect,
# then close), one at a time for SECONDS.
setups() {
  in_ns "$tag-vm5" python3 -c '
import socket, sys, time
end = time.monotonic() + float(sys.argv[2])
ok = 0
while time.monotonic() < end:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((sys.argv[1], 8000))
        ok += 1
    except OSError:
        pass
    s.close()
print(int(ok / float(sys.argv[2])))
' "$vm2_ip" "$1"
}
# flood SECONDS: vm1 sends UDP to random ports of vm2 (each a new flow),
# as fast as it can for SECONDS; prints how many it sent.
flood() {
  in_ns "$tag-vm1" python3 -c '
import random, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + float(sys.argv[2])
sent = 0
while time.monotonic() < end and sent < 5_000_000:
    for _ in range(256):
        try:
            s.sendto(b"x", (sys.argv[1], random.randint(1024, 65535)))
            sent += 1
        except OSError:
            pass
print(sent)
' "$vm2_ip" "$1"
}
drops() {
  "$bin/canopy-agent" --run-dir "$work/h1" status |
    python3 -c "import json,sys; print(json.load(sys.stdin)['datapath']['drops'].get('$1', 0))"
}

before=$(setups 3)
echo "vm5's connection setups alone: $before/s"
[ "$before" -ge 50 ] || fail "vm5 sets up only $before connections a second without a flood"

flood 5 >"$work/flood" &
flooder=$!
agent_pids+=("$flooder")
during=$(setups 3)
wait "$flooder"
limited=$(drops flow_setup_rate_limited)
echo "during vm1's flood of $(cat "$work/flood") new flows: vm5 $during/s; $limited of the flood dropped as flow_setup_rate_limited"
[ "$limited" -gt 1000 ] || fail "the flood was not limited ($limited dropped)"
[ "$during" -ge $((before / 2)) ] ||
  fail "vm5's setups fell from $before/s to $during/s during the flood"

# An ARP flood: answered at the control rate, the rest named.
in_ns "$tag-vm1" python3 -c '
import socket, struct, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = open("/sys/class/net/eth0/address").read().strip()
src = bytes.fromhex(mac.replace(":", ""))
frame = b"\xff" * 6 + src + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src + \
    socket.inet_aton("10.0.0.250") + b"\x00" * 6 + socket.inet_aton("10.0.0.1")
end = time.monotonic() + 2
n = 0
while time.monotonic() < end and n < 500_000:
    s.send(frame)
    n += 1
'
arp=$(drops arp_rate_limited)
echo "ARP flood: $arp dropped as arp_rate_limited"
[ "$arp" -gt 100 ] || fail "the ARP flood was not limited ($arp dropped)"
retry 10 in_ns "$tag-vm5" ping -c 1 -W 1 "$vm2_ip" || fail "vm5 lost vm2 after the ARP flood"

# h1's agent again, with ARGS.
restart_h1() {
  local pid=${agent_pid_of[h1]}
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  rm -f "$work/h1/agent.sock"
  start_agent h1 192.168.77.1 "$@"
  wait_applied h1
}

# The same flood without the protection, for the record.
restart_h1 --port-flow-rate 0 --port-control-rate 0 --fast-path-setups off
flood 5 >/dev/null &
flooder=$!
agent_pids+=("$flooder")
unprotected=$(setups 3)
wait "$flooder"
echo "the same flood without protection: vm5 $unprotected/s"

# vm5's setups made in the kernel, protected as before: the agent sees
# neither their SYN nor their SYN-ACK. During the flood they share the
# CPUs with it (the kernel's own packet processing, ksoftirqd, the flooder
# and the agent busy with the flood); they must go on.
restart_h1 --port-flow-rate 500 --port-flow-burst 500 --port-control-rate 100 \
  --port-control-burst 100 --fast-path-setups on
kernel_before=$(setups 3)
made=$("$bin/canopy-agent" --run-dir "$work/h1" status |
  python3 -c "import json,sys; print(json.load(sys.stdin)['fast_path'].get('made', 0))")
echo "vm5's setups made in the kernel alone: $kernel_before/s ($made made by h1's kernel)"
if fast_path_on h1; then
  [ "$made" -gt $((kernel_before * 2)) ] || fail "h1's kernel made only $made connections"
fi
flood 5 >/dev/null &
flooder=$!
agent_pids+=("$flooder")
kernel_during=$(setups 3)
wait "$flooder"
echo "during the same flood: vm5 $kernel_during/s"
[ "$kernel_during" -ge 50 ] || fail "vm5's setups made in the kernel fell to $kernel_during/s"
echo "e2e.slow_path: all checks passed (vm5: $before/s alone, $during/s during the flood, $unprotected/s unprotected; made in the kernel: $kernel_before/s alone, $kernel_during/s during the flood)"
