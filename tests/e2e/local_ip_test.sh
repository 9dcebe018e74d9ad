#!/usr/bin/env bash
# Local IPs: one address that each host answers with a port of its own.
# Two hosts, four VMs on one network (vm1 and vm3 on h1, vm2 and vm4 on h2),
# all made through the API; a local IP on the network, associated with vm3
# and vm2. vm1 reaches vm3 at the local IP and vm4 reaches vm2 (TCP, so the
# replies come back from the local IP; each server says who it is); vm3's
# own connections keep its address; once vm3's association goes, h1 no
# longer answers the local IP.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
start_agent h1 192.168.77.1
start_agent h2 192.168.77.2

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
# The local IP first: the ports' addresses are allocated around it.
local_ip=$(api POST /v2.0/local_ips '{"local_ip": {"network_id": "'"$net"'",
  "local_ip_address": "10.0.0.50", "name": "cache"}}' | field 'd["local_ip"]["id"]')
[ -n "$local_ip" ] || fail "no local IP"
declare -A ids ips
for vm in "vm1 h1" "vm2 h2" "vm3 h1" "vm4 h2"; do
  set -- $vm
  new_port "$1" "$net"
  ids[$1]=$port_id ips[$1]=$port_ip
  add_vm "$1" "$2" "$port_id" "$port_mac"
done
for vm in vm1 vm2 vm3 vm4; do dhcp "$vm" >/dev/null; done

for vm in vm3 vm2; do
  out=$(api POST "/v2.0/local_ips/$local_ip/port_associations" \
    '{"port_association": {"fixed_port_id": "'"${ids[$vm]}"'"}}')
  expect_in "\"fixed_ip\":\"${ips[$vm]}\"" "$out"
done

# Each server answers with its name, a bounded number of times.
for vm in vm3 vm2; do
  bg "$tag-$vm" busybox nc -ll -p 7777 -e echo "$vm"
  wait_listen "$tag-$vm" 7777
done
ask() { in_ns "$tag-$1" nc -w 2 "$2" 7777 </dev/null; }
answers() { [ "$(ask "$1" 10.0.0.50)" = "$2" ]; }
retry 10 answers vm1 vm3 || fail "vm1 -> 10.0.0.50 is not answered by vm3: '$(ask vm1 10.0.0.50)'"
retry 10 answers vm4 vm2 || fail "vm4 -> 10.0.0.50 is not answered by vm2: '$(ask vm4 10.0.0.50)'"
in_ns "$tag-vm1" ping -c 2 -i 0.2 -W 2 10.0.0.50 >"$work/ping" || fail "ping 10.0.0.50: $(cat "$work/ping")"
expect_in "64 bytes from 10.0.0.50" "$(cat "$work/ping")"

# 4 MiB each way through the local IP (vm1 -> 10.0.0.50, vm3 answering on
# h1), whole. With the kernel fast path, both ways run in h1's kernel once
# established: to vm3's address, and its replies from 10.0.0.50 again.
hits=$(kernel_hits h1)
send_blob "$tag-vm1" "$tag-vm3" 10.0.0.50 7779
head -c 4194304 /dev/urandom >"$work/download"
bg "$tag-vm3" sh -c "exec nc -l -N 7780 <'$work/download'"
wait_listen "$tag-vm3" 7780
in_ns "$tag-vm1" timeout 30 nc -w 10 10.0.0.50 7780 </dev/null >"$work/download.received" ||
  fail "the download from 10.0.0.50 failed"
cmp -s "$work/download" "$work/download.received" ||
  fail "the download from 10.0.0.50: $(stat -c %s "$work/download.received") of 4194304 bytes"
if fast_path_on h1; then
  carried() { [ $(($(kernel_hits h1) - hits)) -gt 100 ]; }
  retry 5 carried || fail "h1's kernel carried $(($(kernel_hits h1) - hits)) packets through the local IP"
  echo "4 MiB each way through the local IP: $(($(kernel_hits h1) - hits)) packets in h1's kernel"
fi
# vm3's own connection to vm1 is its own address's.
bg "$tag-vm1" sh -c "nc -l -N 7778 </dev/null >'$work/from-vm3'; echo done >>'$work/from-vm3'"
wait_listen "$tag-vm1" 7778
echo hello | in_ns "$tag-vm3" nc -N -w 2 "${ips[vm1]}" 7778 || fail "vm3 -> vm1"
retry 5 grep -q done "$work/from-vm3" || fail "vm1 got nothing from vm3"
expect_in hello "$(cat "$work/from-vm3")"

# vm3's association goes: h1 answers 10.0.0.50 no more (its own port is
# bound nowhere), h2 still does.
api DELETE "/v2.0/local_ips/$local_ip/port_associations/${ids[vm3]}" >/dev/null
unanswered() { ! ask vm1 10.0.0.50 | grep -q vm3; }
retry 10 unanswered || fail "h1 still answers 10.0.0.50 with vm3"
answers vm4 vm2 || fail "h2 stopped answering 10.0.0.50"
echo "e2e.local_ip: all checks passed"
