#!/usr/bin/env bash
# Restarts with traffic flowing between two VMs on two hosts: the server
# killed (SIGKILL) during a continuous ping loses nothing, since the agents
# forward on their last view, and they reconnect when it is back; an agent
# restarted during a continuous ping gets its bindings back and traffic
# resumes, and the loss is measured and reported.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

server_args=(--store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 --auth noauth
  --southbound-listen "unix:$work/southbound-0.sock")
start_server "$bin" "$work/server.log" "${server_args[@]}"

make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
for vm in "vm1 h1" "vm2 h2"; do
  set -- $vm
  api POST /v2.0/ports '{"port": {"network_id": "'"$net"'", "name": "'"$1"'"}}' >"$work/$1.port"
  add_vm "$1" "$2" "$(field 'd["port"]["id"]' <"$work/$1.port")" \
    "$(field 'd["port"]["mac_address"]' <"$work/$1.port")"
  dhcp "$1" >/dev/null
done
vm2_ip=$(field 'd["port"]["fixed_ips"][0]["ip_address"]' <"$work/vm2.port")
in_ns "$tag-vm1" ping -c 2 -W 2 "$vm2_ip" >/dev/null || fail "no ping before the restarts"

# replies FILE N: waits until the ping writing FILE has had N replies.
replies() {
  for _ in $(seq 1 100); do
    [ "$(grep -c "bytes from" "$1" 2>/dev/null)" -ge "$2" ] && return 0
    sleep 0.1
  done
  fail "ping got fewer than $2 replies: $(cat "$1")"
}

# The server dies during a continuous ping: nothing is lost, and pings go on
# while it is down (the agents forward headless).
in_ns "$tag-vm1" ping -c 25 -i 0.2 -W 1 "$vm2_ip" >"$work/ping-server" &
pinger=$!
replies "$work/ping-server" 5
kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null || true
replies "$work/ping-server" 12
start_server "$bin" "$work/server2.log" "${server_args[@]}"
wait "$pinger" || true
expect_in "25 received, 0% packet loss" "$(cat "$work/ping-server")"
for h in h1 h2; do
  for _ in $(seq 1 100); do
    "$bin/canopy-agent" --run-dir "$work/$h" status | grep -q '"connected": true' && break
    sleep 0.1
  done
  expect_in '"connected": true' "$("$bin/canopy-agent" --run-dir "$work/$h" status)"
done

# h2's agent restarts during a continuous ping: its bindings come back from
# its run directory and the ping resumes.
in_ns "$tag-vm1" ping -c 40 -i 0.2 -W 1 "$vm2_ip" >"$work/ping-agent" &
pinger=$!
replies "$work/ping-agent" 5
h2_agent=${agent_pids[1]}
kill -TERM "$h2_agent"
wait "$h2_agent" 2>/dev/null || true
start_agent h2 192.168.77.2
wait "$pinger" || true
summary=$(grep "packets transmitted" "$work/ping-agent")
loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' <<<"$summary")
echo "agent restart: $summary"
# The last pings went through: traffic resumed.
tail -n 8 "$work/ping-agent" | grep -q "icmp_seq=40 " || fail "traffic did not resume: $(cat "$work/ping-agent")"
[ "${loss%.*}" -lt 50 ] || fail "agent restart lost $loss%"

echo "e2e.restart: all checks passed (agent restart lost $loss% of 40 pings at 5/s)"
