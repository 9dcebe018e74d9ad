#!/usr/bin/env bash
# Hitless agent restarts: established connections go on when an agent is
# killed -9 or stopped with SIGTERM and started again, since the new process
# adopts the connection state (conntrack, SNAT) and the last view the old
# one left in its run directory. Two hosts with uplinks: h1 holds vm1 (with
# a floating IP), h2 the router's gateway (SNAT) and vm2 (without). Three
# iperf3 streams run through the restarts, each with a long-lived nc
# session beside it:
#   east-west  vm1 -> vm2 (security groups at both ends, across the hosts)
#   SNAT       vm2 -> outside (through the gateway on h2)
#   floating   outside -> vm1's floating IP (translated on h1)
# while h2's agent is killed -9, h1's stopped with SIGTERM, h1's killed -9
# and h2's stopped with SIGTERM, each started again at once. Checks: every
# iperf3 transfer completes (no reset), every nc session carries a line
# sent after each restart, and each stream's longest time without a byte
# received (0.1 s intervals) is reported and under the stated bound.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

# The longest a stream may go without a byte: the agent's restart, then
# TCP's retransmission timer (200 ms, doubling) finding it back.
max_gap_ms=${CANOPY_MAX_RESTART_GAP_MS:-2000}

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
make_external
add_host h1 192.168.77.1
add_host h2 192.168.77.2
add_uplink h1
add_uplink h2
add_outside 203.0.113.1/24
start_agent h1 192.168.77.1 --uplink physnet1=ext0
start_agent h2 192.168.77.2 --uplink physnet1=ext0 --gateway

routed_network
default_sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$default_sg"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp"}}' >/dev/null
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$default_sg"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}}' >/dev/null
new_port vm1 "$net"; vm1_id=$port_id; vm1_ip=$port_ip; add_vm vm1 h1 "$vm1_id" "$port_mac"
new_port vm2 "$net"; vm2_ip=$port_ip; add_vm vm2 h2 "$port_id" "$port_mac"
dhcp vm1 >/dev/null
dhcp vm2 >/dev/null
fip=$(api POST /v2.0/floatingips '{"floatingip": {"floating_network_id": "'"$public"'",
  "port_id": "'"$vm1_id"'"}}' | field 'd["floatingip"]["floating_ip_address"]')
retry 10 in_ns "$tag-vm1" ping -c 1 -W 1 "$vm2_ip" || fail "vm1 cannot reach vm2"
retry 10 in_ns "$tag-vm2" ping -c 1 -W 1 203.0.113.1 || fail "vm2 cannot reach outside"
retry 10 in_ns "$outside" ping -c 1 -W 1 "$fip" || fail "outside cannot reach $fip"

# The streams: NAME FROM_NS TO_NS ADDRESS (iperf3 on 5201+i, nc on 7001+i).
streams=("east-west $tag-vm1 $tag-vm2 $vm2_ip" "snat $tag-vm2 $outside 203.0.113.1"
  "floating $outside $tag-vm1 $fip")
seconds=40  # bounds the transfers; they are stopped once the restarts are done
declare -A client_pid
i=0
for s in "${streams[@]}"; do
  set -- $s
  bg "$3" iperf3 -s -1 -p $((5201 + i)) -i 0.1 --forceflush >"$work/$1.iperf-server" 2>&1
  wait_listen "$3" $((5201 + i))
  bg "$3" sh -c "exec nc -l $((7001 + i)) >'$work/$1.nc'"
  wait_listen "$3" $((7001 + i))
  ip netns exec "$2" iperf3 -c "$4" -p $((5201 + i)) -t $seconds -b 1G \
    >"$work/$1.iperf-client" 2>&1 &
  client_pid[$1]=$!
  agent_pids+=("$!")
  mkfifo "$work/$1.fifo"
  bg "$2" sh -c "exec nc -N $4 $((7001 + i)) <'$work/$1.fifo'"
  eval "exec {fd}>'$work/$1.fifo'"
  nc_fd[$i]=$fd
  i=$((i + 1))
done

# intervals NAME: the stream's iperf3 server's intervals.
intervals() { iperf_intervals "$work/$1.iperf-server"; }
# flowing NAME COUNT: the stream has reported COUNT intervals with bytes.
flowing() { [ "$(intervals "$1" | grep -vc ' 0.00 Bytes')" -ge "$2" ]; }
# say N TEXT: a line on every nc session, which must arrive.
say() {
  local i=0 s text=$2
  for s in "${streams[@]}"; do
    echo "$text" >&"${nc_fd[$i]}"
    i=$((i + 1))
  done
  for s in "${streams[@]}"; do
    set -- $s
    retry 15 grep -qx "$text" "$work/$1.nc" ||
      fail "$1: the nc session lost '$text' (received: $(tr '\n' ' ' <"$work/$1.nc"))"
  done
}
for s in "${streams[@]}"; do
  set -- $s
  retry 20 flowing "$1" 5 || fail "$1: iperf3 does not flow: $(cat "$work/$1.iperf-server")"
done
say 0 before

n=0
for step in "h2 KILL" "h1 TERM" "h1 KILL" "h2 TERM"; do
  set -- $step
  n=$((n + 1))
  declare -A had
  for s in "${streams[@]}"; do set -- $s; had[$1]=$(intervals "$1" | grep -vc ' 0.00 Bytes'); done
  set -- $step
  restart_agent "$1" "$2"
  echo "restart $n: $1's agent, SIG$2: back in $restart_ms ms"
  wait_applied "$1"
  for s in "${streams[@]}"; do
    set -- $s
    retry 20 flowing "$1" $((had[$1] + 5)) || fail "$1: no traffic after restart $n"
  done
  say "$n" "after-$n"
done
"$bin/canopy-agent" --run-dir "$work/h1" status >"$work/h1.status"
adopted=$(field 'd["datapath"]["state"]["adopted"]["connections"]' <"$work/h1.status")
echo "h1's last start adopted $adopted connections"
[ "$adopted" -ge 2 ] || fail "h1 adopted $adopted connections: $(cat "$work/h1.status")"

# The streams end (their clients stopped), and none was reset.
for s in "${streams[@]}"; do
  set -- $s
  kill -INT "${client_pid[$1]}"
  wait "${client_pid[$1]}" || true
  grep -q "sender" "$work/$1.iperf-client" ||
    fail "$1: iperf3 did not complete: $(cat "$work/$1.iperf-client")"
  if grep -qiE "reset|refused|error" "$work/$1.iperf-client"; then
    fail "$1: iperf3 failed: $(cat "$work/$1.iperf-client")"
  fi
done

# Each stream's longest run of empty 0.1 s intervals at its receiver.
for s in "${streams[@]}"; do
  set -- $s
  gap=$(longest_gap "$work/$1.iperf-server")
  rate=$(grep -E "sender" "$work/$1.iperf-client" | awk '{print $7, $8}')
  echo "  $1: longest gap ${gap} ms, ${rate} over the run"
  [ "$gap" -le "$max_gap_ms" ] || fail "$1: a gap of $gap ms, over $max_gap_ms"
done
echo "e2e.hitless_restart: all checks passed"
