#!/usr/bin/env bash
# The kernel fast path (canopy-agent --fast-path on): vm1 and vm2 on net1,
# vm3 on net2 behind router r1, all on h1; vm4 on net1 on h2 (Geneve).
#   - Established flows run in the kernel: iperf3 vm1 -> vm2 (switched),
#     vm1 -> vm3 (routed) and vm1 -> vm4 (through the tunnel, encapsulated
#     and decapsulated in the kernel) complete, the agents' status counts
#     the kernel's hits far beyond what their own datapaths saw, and a
#     routed ping arrives with its TTL decremented once.
#   - Semantics stay the agent's: a port set down stops its traffic at once
#     (the topology change takes the kernel's flows back), and set up again
#     it flows again.
#   - Restarts: the stopped agent's flows go on in the kernel, the next
#     agent adopts them; with no agent for --fast-path-headless, nothing is
#     carried; an agent without the fast path takes the programs off.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
start_agent h1 192.168.77.1 --fast-path on --fast-path-setups on --fast-path-headless 3 \
  --metrics-listen 127.0.0.1:9100
start_agent h2 192.168.77.2 --fast-path on --fast-path-setups on
status() { "$bin/canopy-agent" --run-dir "$work/h1" status; }
state=$(status | field 'd["fast_path"]["state"]')
[ "$state" = on ] || fail "fast path $state: $(status | field 'd["fast_path"]')"

net1=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
sub1=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net1"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' | field 'd["subnet"]["id"]')
net2=$(api POST /v2.0/networks '{"network": {"name": "net2"}}' | field 'd["network"]["id"]')
sub2=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net2"'", "ip_version": 4,
  "cidr": "10.0.1.0/24"}}' | field 'd["subnet"]["id"]')
router=$(api POST /v2.0/routers '{"router": {"name": "r1"}}' | field 'd["router"]["id"]')
for s in "$sub1" "$sub2"; do
  api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"$s"'"}' >/dev/null
done
sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
for proto in tcp icmp; do
  api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id": "'"$sg"'",
    "direction": "ingress", "ethertype": "IPv4", "protocol": "'"$proto"'"}}' >/dev/null
done
declare -A ip_of id_of
for vm in "vm1 $net1 h1" "vm2 $net1 h1" "vm3 $net2 h1" "vm4 $net1 h2"; do
  set -- $vm
  new_port "$1" "$2"
  ip_of[$1]=$port_ip
  id_of[$1]=$port_id
  add_vm "$1" "$3" "$port_id" "$port_mac"
  dhcp "$1" >/dev/null
done
retry 20 in_ns "$tag-vm1" ping -c 1 -W 1 "${ip_of[vm2]}" >/dev/null || fail "vm1 cannot ping vm2"
retry 20 in_ns "$tag-vm1" ping -c 1 -W 1 "${ip_of[vm3]}" >/dev/null || fail "vm1 cannot ping vm3"

# Routed: one hop, the TTL decremented once (by the kernel, once the echo
# flow is installed: the later pings of the run).
ttls=$(in_ns "$tag-vm1" ping -c 5 -i 0.2 "${ip_of[vm3]}" | grep -o 'ttl=[0-9]*' | sort -u)
[ "$ttls" = "ttl=63" ] || fail "routed pings arrived with $ttls"

for vm in vm2 vm3 vm4; do
  bg "$tag-$vm" iperf3 -s -1 -p 5201
  wait_listen "$tag-$vm" 5201
  in_ns "$tag-vm1" iperf3 -c "${ip_of[$vm]}" -p 5201 -t 3 >"$work/iperf-$vm" 2>&1 ||
    fail "iperf3 vm1 -> $vm: $(cat "$work/iperf-$vm")"
  echo "vm1 -> $vm: $(grep -E 'receiver' "$work/iperf-$vm" | awk '{ print $7, $8 }')"
done
# (Counts are a second old at most.)
hits_over() {
  local s
  s=$(status)
  hits=$(field 'd["fast_path"]["hits"]' <<<"$s")
  packets=$(field 'd["datapath"]["packets"]' <<<"$s")
  flows=$(field 'd["fast_path"]["flows"]' <<<"$s")
  [ "$hits" -gt $((packets * 10)) ] && [ "$flows" -ge 2 ]
}
retry 10 hits_over || fail "the kernel took $hits packets, the agent saw $packets, flows $flows"
echo "h1's kernel: $hits packets in $flows flows; its agent's datapath: $packets"
# h2's kernel took vm1's stream to vm4 out of the tunnel.
tunnelled() {
  tunnel_in=$("$bin/canopy-agent" --run-dir "$work/h2" status | field 'd["fast_path"]["tunnel_in"]')
  [ "$tunnel_in" -gt 1000 ]
}
retry 10 tunnelled || fail "h2's kernel decapsulated only $tunnel_in packets"
echo "h2's kernel: $tunnel_in packets out of the tunnel"
# The same counts for Prometheus, on the host's own loopback.
metrics=$(in_ns "$tag-h1" curl -sS http://127.0.0.1:9100/metrics)
expect_in "# TYPE canopy_fast_path_hits_total counter" "$metrics"
expect_in "canopy_fast_path_flows " "$metrics"

# A port set down: its traffic stops, though the kernel had its flows.
bg "$tag-vm2" sh -c 'while true; do nc -l -p 7000 >/dev/null; done'
wait_listen "$tag-vm2" 7000
ping_ok() { in_ns "$tag-vm1" ping -c 1 -W 1 "${ip_of[vm2]}" >/dev/null; }
ping_fails() { ! ping_ok; }
api PUT "/v2.0/ports/${id_of[vm2]}" '{"port": {"admin_state_up": false}}' >/dev/null
retry 20 ping_fails || fail "vm2 still answers with its port down"
api PUT "/v2.0/ports/${id_of[vm2]}" '{"port": {"admin_state_up": true}}' >/dev/null
retry 20 ping_ok || fail "vm2 does not answer with its port up again"
echo "a port down stops its traffic; up, it flows again"

# The agent's exit leaves the kernel carrying its flows (a restart does not
# stop established traffic): a ping that runs across h1's agent stopping
# goes on answered; the next agent adopts the flows it finds (and hands
# them back to its datapath once it has a view); stopped again, the kernel
# carries them for --fast-path-headless (3 s here) and then leaves every
# packet to the host; an agent without the fast path takes the programs
# off.
tap="tap${id_of[vm1]:0:11}"
# (grep -c reads it all: with pipefail, -q's early exit can fail tc.)
has_program() { in_ns "$tag-h1" tc filter show dev "$tap" ingress | grep -c bpf >/dev/null; }
has_program || fail "no program on $tap"
stop_h1() {
  kill -TERM "${agent_pid_of[h1]}"
  wait "${agent_pid_of[h1]}" 2>/dev/null || true
}
bg "$tag-vm1" sh -c "exec ping -i 0.2 -c 200 ${ip_of[vm2]} >$work/ping.out"
# And a TCP connection the kernel set up (from the template a first one to
# the same port left), answered each 0.2 s across the restart: the leaving
# agent adopts it into the connection state the next one takes over.
bg "$tag-vm2" python3 -c '
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7001))
s.listen(8)
def echo(c):
    try:
        while True:
            d = c.recv(4096)
            if not d:
                return
            c.sendall(d)
    except OSError:  # (reset when the test ends)
        pass
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
'
wait_listen "$tag-vm2" 7001
in_ns "$tag-vm1" python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], 7001), 2).close()' \
  "${ip_of[vm2]}"
made_before=$(status | field 'd["fast_path"]["made"]')
# echo_client FILE: a connection to vm2's echo server, one byte each 0.2 s
# (30 s at most), how many came back written to FILE after each.
echo_client() {
  bg "$tag-vm1" python3 -c '
import socket, sys, time
c = socket.create_connection((sys.argv[1], 7001), 2)
c.settimeout(3)
ok = 0
with open(sys.argv[2], "w") as out:
    for _ in range(150):
        c.sendall(b"x")
        try:
            ok += len(c.recv(16)) > 0
        except OSError:
            break
        out.write("%d\n" % ok)
        out.flush()
        time.sleep(0.2)
' "${ip_of[vm2]}" "$1"
}
echo_client "$work/echo.out"
echoes() { tail -n 1 "${1:-$work/echo.out}" 2>/dev/null || echo 0; }
echoes_over() { [ "$(echoes "${2:-}")" -ge "$1" ]; }
retry 10 echoes_over 5 || fail "the echo connection is not answered"
made_after=$(status | field 'd["fast_path"]["made"]')
[ "$made_after" -gt "$made_before" ] || fail "h1's kernel did not set the echo connection up"
replies() { grep -c "bytes from" "$work/ping.out" 2>/dev/null || echo 0; }
replies_over() { [ "$(replies)" -ge "$1" ]; }
retry 10 replies_over 5 || fail "the ping is not answered: $(cat "$work/ping.out")"
stop_h1
has_program || fail "the agent took $tap's program"
before=$(replies)
retry 5 replies_over $((before + 5)) || fail "no reply with h1's agent stopped: $(replies) after $before"
echo "agent stopped: the kernel answered $(($(replies) - before)) more echoes"
start_agent h1 192.168.77.1 --fast-path on --fast-path-setups on --fast-path-headless 3
adopted() { grep -q "adopted [1-9][0-9]* flows" "$work/h1/agent.log"; }
retry 10 adopted || fail "the next agent adopted no flow: $(grep "fast path" "$work/h1/agent.log")"
handed() { grep -q "adopted flows handed back" "$work/h1/agent.log"; }
retry 15 handed || fail "the adopted flows were never handed back to the datapath"
before=$(replies)
retry 10 replies_over $((before + 5)) || fail "no reply after the restart"
echo "the next agent adopted the flows and handed them back; the ping goes on"
before=$(echoes)
retry 10 echoes_over $((before + 5)) ||
  fail "the connection the kernel set up is no longer answered after the restart ($(echoes))"
echo "the connection the kernel set up goes on across the restart ($(echoes) echoes)"

# A crash (kill -9) just after the kernel set a connection up, before the
# agent knew of it (it adopts those each second): the next agent takes it
# into its connection tracking from the flows it adopts (the templates
# say which the kernel made), so that its packets are still known, and
# answered, once those flows are handed back to its datapath.
in_ns "$tag-vm1" python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], 7001), 2).close()' \
  "${ip_of[vm2]}"
has_template() { [ "$(status | field 'd["fast_path"]["templates"]')" -ge 1 ]; }
retry 10 has_template || fail "the next agent learned no template: $(status)"
echo_client "$work/echo2.out"
# (As soon as its first echo came back: well within the agent's second.)
for _ in $(seq 200); do
  [ -s "$work/echo2.out" ] && break
  sleep 0.01
done
[ -s "$work/echo2.out" ] || fail "the second echo connection is not answered"
kill -KILL "${agent_pid_of[h1]}"
wait "${agent_pid_of[h1]}" 2>/dev/null || true
handings=$(grep -c "adopted flows handed back" "$work/h1/agent.log")
start_agent h1 192.168.77.1 --fast-path on --fast-path-setups on --fast-path-headless 3
handed_again() { [ "$(grep -c "adopted flows handed back" "$work/h1/agent.log")" -gt "$handings" ]; }
retry 15 handed_again || fail "the flows adopted after the crash were never handed back"
grep "adopted flows handed back" "$work/h1/agent.log" | tail -n 1 |
  grep -q "([1-9][0-9]* connections the kernel set up" ||
  fail "the connection the kernel set up was not taken into conntrack: $(grep "handed back" "$work/h1/agent.log" | tail -n 1)"
before=$(echoes "$work/echo2.out")
retry 10 echoes_over $((before + 5)) "$work/echo2.out" ||
  fail "the connection the kernel set up just before the crash is no longer answered ($(echoes "$work/echo2.out") after $before)"
echo "after a crash, the connection the kernel set up in the agent's last second goes on ($(echoes "$work/echo2.out") echoes)"
stop_h1
# No reply for 1.5 s: the kernel stopped carrying them (within the 3 s).
silent() {
  local n
  n=$(replies)
  sleep 1.5
  [ "$(replies)" = "$n" ]
}
retry 10 silent || fail "the kernel still carries h1's flows with no agent for long"
echo "with no agent for 3 s, the kernel carries nothing"
start_agent h1 192.168.77.1 --fast-path off
no_program() { ! has_program; }
retry 10 no_program || fail "an agent without the fast path left the program on $tap"
ping_ok || fail "vm1 cannot reach vm2 through the agent without the fast path"
echo "fast path: OK"
