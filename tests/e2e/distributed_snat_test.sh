#!/usr/bin/env bash
# Distributed SNAT (canopy-server --snat distributed) and floating IPs of
# VMs on a host without an uplink. One router, one gateway address; its
# gateway on h2. h1, h2 and h3 have uplinks and a VM each; h4 has no uplink
# and two VMs, one with a floating IP.
#   - Each of vm1, vm2, vm3 opens connections to a server outside, which
#     records the source address and port of each: every one comes from the
#     gateway address, each host's ports lie in one block of its own (not
#     the central block), and the replies reached the VMs (steered by the
#     gateway's host to h1 and h3: counted there). Pings work too (echo
#     replies steered by their identifier).
#   - vm5 (h4, no uplink, no floating IP) goes by the gateway's host, in
#     the central block.
#   - vm4 (h4, floating IP): reachable from outside (ping, TCP), and what it
#     opens comes from its floating IP: the gateway's host answers ARP for
#     it and translates it.
#   - h3's agent dies: its lease returns. It comes back: it leases again
#     and its VM's connections are translated there again.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --snat distributed --snat-block-ports 2048
make_underlay
make_external
for i in 1 2 3 4; do add_host "h$i" "192.168.77.$i"; done
for i in 1 2 3; do add_uplink "h$i"; done
add_outside 203.0.113.1/24
start_agent h1 192.168.77.1 --uplink physnet1=ext0
start_agent h2 192.168.77.2 --uplink physnet1=ext0 --gateway
start_agent h3 192.168.77.3 --uplink physnet1=ext0
start_agent h4 192.168.77.4

routed_network
gateway_ip=$(api GET "/v2.0/routers/$router" |
  field 'd["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]')
open=$(api POST /v2.0/security-groups '{"security_group": {"name": "open"}}' |
  field 'd["security_group"]["id"]')
for proto in icmp tcp; do
  api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id": "'"$open"'",
    "direction": "ingress", "protocol": "'"$proto"'"}}' >/dev/null
done
declare -A host_of=([vm1]=h1 [vm2]=h2 [vm3]=h3 [vm4]=h4 [vm5]=h4)
for vm in vm1 vm2 vm3 vm4 vm5; do
  new_port "$vm" "$net" "$open"
  add_vm "$vm" "${host_of[$vm]}" "$port_id" "$port_mac"
  dhcp "$vm" >/dev/null
  declare "port_of_$vm=$port_id"
done
fip=$(api POST /v2.0/floatingips '{"floatingip": {"floating_network_id": "'"$public"'",
  "port_id": "'"$port_of_vm4"'"}}' | field 'd["floatingip"]["floating_ip_address"]')
echo "gateway address $gateway_ip; vm4's floating IP $fip"

# The server outside: answers each connection with the source it saw.
bg "$outside" python3 -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(64)
while True:
    c, (ip, port) = s.accept()
    c.sendall(("%s %d\n" % (ip, port)).encode())
    c.close()
'
wait_listen "$outside" 8080

# seen VM: one connection from VM to the server; prints "address port".
seen() { in_ns "$tag-$1" nc -w 5 203.0.113.1 8080 </dev/null; }
for vm in vm1 vm2 vm3 vm5; do
  retry 20 in_ns "$tag-$vm" ping -c 1 -W 1 203.0.113.1 >/dev/null || fail "$vm cannot ping outside"
done

# Each VM's connections: their source as the server saw it.
declare -A block_of
for vm in vm1 vm2 vm3 vm5; do
  : >"$work/$vm.seen"
  for _ in $(seq 1 20); do
    got=$(seen "$vm") || fail "$vm: a connection failed"
    echo "$got" >>"$work/$vm.seen"
  done
  addresses=$(cut -d' ' -f1 "$work/$vm.seen" | sort -u)
  [ "$addresses" = "$gateway_ip" ] || fail "$vm: sources $addresses, not $gateway_ip"
  blocks=$(cut -d' ' -f2 "$work/$vm.seen" | awk '{ print int(($1 - 1024) / 2048) }' | sort -u)
  [ "$(wc -l <<<"$blocks")" = 1 ] || fail "$vm: ports in several blocks: $(tr '\n' ' ' <"$work/$vm.seen")"
  block_of[$vm]=$blocks
  echo "$vm (${host_of[$vm]}): ports $(cut -d' ' -f2 "$work/$vm.seen" | sort -n | sed -n '1p;$p' | tr '\n' ' ')(block $blocks)"
done
[ "${block_of[vm5]}" = 0 ] || fail "vm5 (no uplink) not in the central block: ${block_of[vm5]}"
for vm in vm1 vm2 vm3; do
  [ "${block_of[$vm]}" != 0 ] || fail "$vm translated in the central block"
done
[ "$(printf '%s\n' "${block_of[vm1]}" "${block_of[vm2]}" "${block_of[vm3]}" | sort -u | wc -l)" = 3 ] ||
  fail "hosts share a block: vm1 ${block_of[vm1]}, vm2 ${block_of[vm2]}, vm3 ${block_of[vm3]}"

# The replies to h1's and h3's translations were steered by h2; none of
# theirs went out through h2 (h2 translated only its own and vm5's).
status_of() { "$bin/canopy-agent" --run-dir "$work/$1" status; }
# (Status counts are a second old at most.)
steered() { steered=$(status_of h2 | field 'd["datapath"]["snat_steered"]'); [ "$steered" -ge 80 ]; }
retry 10 steered || fail "h2 steered $steered replies, fewer than the 40 connections' 80"
echo "h2 steered $steered replies to h1 and h3"

# vm4, on h4 without an uplink, through its floating IP both ways.
retry 20 in_ns "$outside" ping -c 1 -W 1 "$fip" >/dev/null || fail "no ping to vm4's floating IP"
got=$(seen vm4) || fail "vm4: a connection failed"
[ "${got% *}" = "$fip" ] || fail "vm4's connection came from ${got% *}, not $fip"
bg "$tag-vm4" sh -c 'echo hello from vm4 | nc -l -p 7000'
wait_listen "$tag-vm4" 7000
got=$(in_ns "$outside" nc -w 5 "$fip" 7000 </dev/null)
[ "$got" = "hello from vm4" ] || fail "outside -> $fip:7000 got '$got'"
echo "vm4 ($fip) reachable from outside, and its connections come from it"

# h3's agent dies: its lease returns (the server's log shows the leases).
leases() { grep 'SNAT leases' "$work/server.log" | tail -n 1; }
kill -KILL "${agent_pid_of[h3]}"
wait "${agent_pid_of[h3]}" 2>/dev/null || true
rm -f "$work/h3/agent.sock"
no_h3() { leases | grep -q '"h1"' && ! leases | grep -q '"h3"'; }
retry 30 no_h3 || fail "h3's lease did not return: $(leases)"
echo "h3 gone: $(leases)"
start_agent h3 ${agent_args_of[h3]}
has_h3() { leases | grep -q '"h3"'; }
retry 30 has_h3 || fail "h3 has no lease again: $(leases)"
again() {
  local got
  got=$(seen vm3) || return 1
  [ "$(((${got#* } - 1024) / 2048))" != 0 ]
}
retry 20 again || fail "vm3's connections are not translated on h3 again"
echo "h3 back: $(leases)"
echo "distributed SNAT: OK"
