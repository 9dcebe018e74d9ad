#!/usr/bin/env bash
# Gateway high availability: a router's gateway on two gateway hosts (h2,
# h3, both with uplinks), the VM on h1. BFD between the agents decides
# which one holds it; the holder sends its SNAT mappings to the other. An
# iperf3 stream and a long-lived nc session go from the VM out through
# SNAT while
#   1. the holder's agent is killed -9 (and stays dead): the standby takes
#      over (gratuitous ARP, h1 redirects its tunnels) and the connections
#      go on, translated by the mappings it was sent;
#   2. that agent comes back: once its sessions have been up for the hold
#      time it takes the gateway back (it is the server's first choice),
#      the other lets go, the connections go on;
#   3. the holder's underlay link is cut: cut off, it lets go; the other
#      takes over;
#   4. the link back, its sessions up for the hold time, it takes the
#      gateway back (the server's first choice) as the other lets go.
# Checks after each step: exactly one of h2 and h3 holds the gateway, the
# nc session carries a new line, iperf3 flows; at the end every transfer
# completed (no reset). Each failover's longest time without a byte at the
# receiver is reported, and bounded. CANOPY_UNDERLAY=6: the hosts' tunnel
# addresses (and BFD between them) IPv6.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

max_gap_ms=${CANOPY_MAX_FAILOVER_GAP_MS:-3000}

underlay_version=${CANOPY_UNDERLAY:-4}
address_of() {  # address_of N: host hN's tunnel address
  if [ "$underlay_version" = 6 ]; then echo "fd77::$1"; else echo "192.168.77.$1"; fi
}
start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --overlay-ip-version "$underlay_version"
make_underlay
make_external
for i in 1 2 3; do add_host "h$i" "$(address_of "$i")"; done
add_uplink h2
add_uplink h3
add_outside 203.0.113.1/24
start_agent h1 "$(address_of 1)"
start_agent h2 "$(address_of 2)" --uplink physnet1=ext0 --gateway
start_agent h3 "$(address_of 3)" --uplink physnet1=ext0 --gateway

routed_network
new_port vm1 "$net"
add_vm vm1 h1 "$port_id" "$port_mac"
dhcp vm1 >/dev/null

# holders: the hosts (of h2, h3) whose agent says it holds the gateway.
status_of() { "$bin/canopy-agent" --run-dir "$work/$1" status 2>/dev/null; }
holds() {
  status_of "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
held = d.get("gateways_held_by", {})
key = d.get("host_key", 0)
sys.exit(0 if any(v == key for v in held.values()) else 1)'
}
holders() {
  local h out=""
  for h in h2 h3; do
    if [ -S "$work/$h/agent.sock" ] && holds "$h"; then out+="$h "; fi
  done
  echo "${out% }"
}
one_holder() { local got; got=$(holders); [ -n "$got" ] && [ "$(wc -w <<<"$got")" = 1 ]; }
retry 30 one_holder || fail "no single holder of the gateway: '$(holders)'"
retry 20 in_ns "$tag-vm1" ping -c 1 -W 1 203.0.113.1 || fail "vm1 cannot reach outside"
echo "the gateway is held by $(holders)"

# The streams and the session, out through SNAT: iperf3 up (the VM sends)
# and down (-R: the outside sends, so that what reaches the new holder
# first is inbound, which only a mapping it was sent can translate), and
# an nc session whose lines go both ways, the inbound one first.
bg "$outside" iperf3 -s -1 -p 5201 -i 0.1 --forceflush >"$work/iperf-server" 2>&1
wait_listen "$outside" 5201
bg "$outside" iperf3 -s -1 -p 5202 >"$work/iperf-server-down" 2>&1
wait_listen "$outside" 5202
mkfifo "$work/out.fifo" "$work/in.fifo"
bg "$outside" sh -c "exec nc -l 7001 <'$work/out.fifo' >'$work/nc'"
exec {nc_out_fd}>"$work/out.fifo"  # (nc opens its end once this one is)
wait_listen "$outside" 7001
# (Not through a shell function: $! must be iperf3 itself, which SIGINT ends.)
ip netns exec "$tag-vm1" iperf3 -c 203.0.113.1 -p 5201 -t 150 -b 300M >"$work/iperf-client" 2>&1 &
client=$!
agent_pids+=("$client")
ip netns exec "$tag-vm1" iperf3 -c 203.0.113.1 -p 5202 -t 150 -b 300M -R -i 0.1 --forceflush \
  >"$work/iperf-client-down" 2>&1 &
client_down=$!
agent_pids+=("$client_down")
bg "$tag-vm1" sh -c "exec nc -N 203.0.113.1 7001 <'$work/in.fifo' >'$work/nc-in'"
exec {nc_fd}>"$work/in.fifo"

intervals() { iperf_intervals "$work/iperf-server"; }
flowing() { [ "$(intervals | grep -vc ' 0.00 Bytes')" -ge "$1" ]; }
say() {
  echo "in $1" >&"$nc_out_fd"
  retry 15 grep -qx "in $1" "$work/nc-in" ||
    fail "the nc session lost 'in $1' (inbound): $(tr '\n' ' ' <"$work/nc-in")"
  echo "$1" >&"$nc_fd"
  retry 15 grep -qx "$1" "$work/nc" || fail "the nc session lost '$1': $(tr '\n' ' ' <"$work/nc")"
}
retry 20 flowing 5 || fail "iperf3 does not flow: $(cat "$work/iperf-server")"
say before

step() {  # step NAME: waits for one holder and traffic, reports the gap since $mark
  local name=$1
  retry 30 one_holder || fail "$name: no single holder: '$(holders)'"
  local had
  had=$(intervals | grep -vc ' 0.00 Bytes')
  retry 30 flowing $((had + 5)) || fail "$name: no traffic after it"
  say "$name"
  local gap
  gap=$(longest_gap "$work/iperf-server" "$mark")
  echo "$name: now held by $(holders); longest gap ${gap} ms (at ${SECONDS} s)"
  [ "$gap" -le "$max_gap_ms" ] || fail "$name: a gap of $gap ms, over $max_gap_ms"
  gaps+=("$name $gap")
}
gaps=()

# 1. The holder's agent dies.
first=$(holders)
other=$([ "$first" = h2 ] && echo h3 || echo h2)
mark=$(intervals | wc -l)
pid=${agent_pid_of[$first]}
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
rm -f "$work/$first/agent.sock"
step "kill -9 of $first's agent"
[ "$(holders)" = "$other" ] || fail "after $first died, held by '$(holders)', not $other"

# 2. It comes back (its BFD sessions resume from its run directory).
mark=$(intervals | wc -l)
start_agent "$first" ${agent_args_of[$first]}
step "$first back"

# 3. The holder is cut off the underlay, then plugged back.
holder=$(holders)
spare=$([ "$holder" = h2 ] && echo h3 || echo h2)
mark=$(intervals | wc -l)
in_ns "$tag-$holder" ip link set ul0 down
step "$holder's underlay cut"
[ "$(holders)" = "$spare" ] || fail "with $holder cut off, held by '$(holders)', not $spare"
mark=$(intervals | wc -l)
in_ns "$tag-$holder" ip link set ul0 up
step "$holder's underlay back"
# 4. Its sessions up for the hold time, the server's first choice takes
# the gateway back; the other lets go at the same time.
mark=$(intervals | wc -l)
holds_alone() { [ "$(holders)" = "$1" ]; }
retry 15 holds_alone "$holder" || fail "$holder did not take the gateway back: '$(holders)'"
step "$holder takes it back"

for c in "$client iperf-client" "$client_down iperf-client-down"; do
  set -- $c
  kill -INT "$1" 2>/dev/null || true  # (it may have run its time)
  wait "$1" || true
  grep -q sender "$work/$2" || fail "iperf3 ($2) did not complete: $(cat "$work/$2")"
  if grep -qiE "reset|refused|error" "$work/$2"; then fail "iperf3 ($2) failed: $(cat "$work/$2")"; fi
done
# The downward stream's longest time without a byte, at the VM.
down_gap=$(longest_gap "$work/iperf-client-down")
echo "downward stream (inbound through SNAT): longest gap $down_gap ms"
[ "$down_gap" -le "$max_gap_ms" ] || fail "the downward stream had a gap of $down_gap ms"
echo "e2e.gateway_ha: all checks passed (longest gaps: $(printf '%s ms; ' "${gaps[@]}"))"
