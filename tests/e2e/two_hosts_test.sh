#!/usr/bin/env bash
# Two hosts (namespaces with canopy-agent), two VMs (namespaces) on one
# tenant network over Geneve (or VXLAN with CANOPY_ENCAPSULATION=vxlan),
# everything made through the API: each VM gets its port's address, gateway
# and MTU from DHCP (busybox udhcpc), the VMs ping each other across the
# hosts and move 4 MiB over TCP (nc) each way with the guests' segmentation
# and checksum offloads on, and the ports become ACTIVE on their hosts.
# CANOPY_UNDERLAY=6: the hosts' tunnel addresses are IPv6 (the server told
# so, for the networks' MTU), and the VMs move IPv6 between them too.
# CANOPY_E2E_MIXED=1: h2's agent without the kernel fast path, beside h1's
# with it: h2's agent reads what h1's kernel sends into the tunnel.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

underlay_version=${CANOPY_UNDERLAY:-4}
if [ "$underlay_version" = 6 ]; then
  h1_address=fd77::1 h2_address=fd77::2
else
  h1_address=192.168.77.1 h2_address=192.168.77.2
fi
start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --overlay-ip-version "$underlay_version"

make_underlay
add_host h1 "$h1_address"
add_host h2 "$h2_address"
encapsulation=${CANOPY_ENCAPSULATION:-geneve}
start_agent h1 "$h1_address" --encapsulation "$encapsulation" --metrics-listen 127.0.0.1:9100
h2_fast=()
[ -n "${CANOPY_E2E_MIXED:-}" ] && h2_fast=(--fast-path off)
start_agent h2 "$h2_address" --encapsulation "$encapsulation" "${h2_fast[@]}"

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
mtu=$(api GET "/v2.0/networks/$net" | field 'd["network"]["mtu"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
port() { new_port "$1" "$net"; }
port vm1; vm1_id=$port_id; vm1_ip=$port_ip; vm1_mac=$port_mac
port vm2; vm2_id=$port_id; vm2_ip=$port_ip; vm2_mac=$port_mac

add_vm vm1 h1 "$vm1_id" "$vm1_mac"
add_vm vm2 h2 "$vm2_id" "$vm2_mac"

# The ports are bound to their hosts and ACTIVE once the agents report them.
for p in "$vm1_id h1" "$vm2_id h2"; do
  set -- $p
  for _ in $(seq 1 100); do
    shown=$(admin GET "/v2.0/ports/$1")
    [ "$(field 'd["port"]["status"]' <<<"$shown")" = ACTIVE ] &&
      [ "$(field 'd["port"]["binding:host_id"]' <<<"$shown")" = "$2" ] && break
    sleep 0.1
  done
  expect_in '"status":"ACTIVE"' "$shown"
  expect_in "\"binding:host_id\":\"$2\"" "$shown"
done

# DHCP: each VM gets its port's address, the gateway and the MTU.
lease=$(dhcp vm1)
expect_in "ip=$vm1_ip mask=24 router=10.0.0.1 mtu=$mtu" "$lease"
expect_in "hostname=host-${vm1_ip//./-}" "$lease"
# vm2's port names its host and adds boot options (dns_name, dns_domain,
# extra_dhcp_opts): its answer carries them once h2 has the change.
api PUT "/v2.0/ports/$vm2_id" '{"port": {"dns_name": "web-2", "dns_domain": "example.org.",
  "extra_dhcp_opts": [{"opt_name": "tftp-server", "opt_value": "192.0.2.10"},
                      {"opt_name": "server-ip-address", "opt_value": "192.0.2.10"}]}}' >/dev/null
for _ in $(seq 1 50); do
  lease=$(dhcp vm2)
  [[ $lease == *hostname=web-2* ]] && break
done
expect_in "ip=$vm2_ip mask=24 router=10.0.0.1 mtu=$mtu" "$lease"
expect_in "domain=example.org hostname=web-2" "$lease"
expect_in "tftp=192.0.2.10 siaddr=192.0.2.10" "$lease"

# Ping across the hosts, both ways.
in_ns "$tag-vm1" ping -c 3 -i 0.2 -W 2 "$vm2_ip" >"$work/ping1" || fail "vm1 -> vm2: $(cat "$work/ping1")"
in_ns "$tag-vm2" ping -c 3 -i 0.2 -W 2 "$vm1_ip" >"$work/ping2" || fail "vm2 -> vm1: $(cat "$work/ping2")"
expect_in "3 received" "$(cat "$work/ping1")"

# A frame of the network's full MTU crosses in one tunnel datagram: the
# network's MTU leaves room for the encapsulation and its options, so the
# hosts fragment nothing on the underlay (IP FragCreates stays put).
frag_creates() {
  if [ "$underlay_version" = 6 ]; then
    in_ns "$tag-$1" awk '$1 == "Ip6FragCreates" { print $2 }' /proc/net/snmp6
    return
  fi
  in_ns "$tag-$1" awk '/^Ip:/ && !f { for (i = 1; i <= NF; i++) if ($i == "FragCreates") c = i; f = 1; next }
    /^Ip:/ { print $c }' /proc/net/snmp
}
frags_before="$(frag_creates h1) $(frag_creates h2)"
in_ns "$tag-vm1" ping -c 3 -i 0.2 -W 2 -M do -s $((mtu - 28)) "$vm2_ip" >"$work/ping3" ||
  fail "vm1 -> vm2 at MTU $mtu: $(cat "$work/ping3")"
expect_in "3 received" "$(cat "$work/ping3")"
frags_after="$(frag_creates h1) $(frag_creates h2)"
[ "$frags_after" = "$frags_before" ] ||
  fail "the hosts fragmented tunnel datagrams (FragCreates h1 h2: $frags_before -> $frags_after)"

# TCP across the hosts, each way: the guests hand over super-frames with
# partial checksums, cut into segments for the tunnel; 4 MiB arrive whole.
send_blob "$tag-vm1" "$tag-vm2" "$vm2_ip" 5001
send_blob "$tag-vm2" "$tag-vm1" "$vm1_ip" 5002

# Over an IPv6 underlay, IPv6 inside too: the VMs' addresses of an IPv6
# subnet (static, as its ports have them), pinged and 4 MiB each way.
if [ "$underlay_version" = 6 ]; then
  subnet6=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 6,
    "cidr": "fd00:5::/64", "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}}' |
    field 'd["subnet"]["id"]')
  address6() {
    api PUT "/v2.0/ports/$1" '{"port": {"fixed_ips": [{"ip_address": "'"$2"'"},
      {"subnet_id": "'"$subnet6"'"}]}}' | field '[f["ip_address"] for f in d["port"]["fixed_ips"] if ":" in f["ip_address"]][0]'
  }
  vm1_ip6=$(address6 "$vm1_id" "$vm1_ip")
  vm2_ip6=$(address6 "$vm2_id" "$vm2_ip")
  in_ns "$tag-vm1" ip -6 addr add "$vm1_ip6/64" dev eth0 nodad
  in_ns "$tag-vm2" ip -6 addr add "$vm2_ip6/64" dev eth0 nodad
  ping6_across() { in_ns "$tag-vm1" ping -6 -c 1 -W 1 "$vm2_ip6" >/dev/null; }
  retry 50 ping6_across || fail "vm1 -> vm2 over IPv6: no answer"
  send_blob "$tag-vm1" "$tag-vm2" "$vm2_ip6" 5003
  send_blob "$tag-vm2" "$tag-vm1" "$vm1_ip6" 5004
fi

# A UDP datagram larger than the MTU, fragmented by the guest's kernel:
# the first fragment (whose UDP length is the whole datagram's) and the
# later ones cross, and the receiving guest reassembles all 4000 bytes.
in_ns "$tag-vm2" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 6000)); s.settimeout(15)
print(len(s.recvfrom(65535)[0]))' >"$work/udp-big" 2>&1 &
receiver=$!
ready() { in_ns "$tag-vm2" ss -lun | grep -q ':6000 '; }
retry 50 ready || fail "vm2's UDP receiver did not start"
for _ in 1 2 3; do  # datagrams are not retried: send a few, one is enough
  in_ns "$tag-vm1" python3 -c '
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x" * 4000, (sys.argv[1], 6000))' "$vm2_ip"
done
wait "$receiver" || fail "vm2 received no 4000-byte datagram: $(cat "$work/udp-big")"
[ "$(cat "$work/udp-big")" = 4000 ] || fail "vm2 received $(cat "$work/udp-big") bytes, not 4000"

# The agents count what they forwarded.
status=$("$bin/canopy-agent" --run-dir "$work/h1" status)
expect_in '"connected": true' "$status"
packets=$(field 'd["datapath"]["packets"]' <<<"$status")
[ "$packets" -gt 6 ] || fail "h1 forwarded only $packets packets: $status"
# The guests' offloads were carried: super-frames came in and were cut for
# the tunnel, segments from the tunnel were joined again before the datapath,
# and no request was refused (the status is published every second).
# With the kernel fast path, the kernel carried the established flows'
# super-frames through the tunnel both ways instead.
for h in h1 h2; do
  if fast_path_on "$h"; then
    carried() {
      status=$("$bin/canopy-agent" --run-dir "$work/$h" status)
      [ "$(field 'd["fast_path"]["hits"]' <<<"$status")" -gt 0 ] &&
        [ "$(field 'd["fast_path"]["tunnel_in"]' <<<"$status")" -gt 0 ]
    }
    retry 30 carried || fail "$h's kernel carried nothing through the tunnel: $status"
    continue
  fi
  for _ in $(seq 1 30); do
    status=$("$bin/canopy-agent" --run-dir "$work/$h" status)
    segmented=$(field 'd["datapath"]["offload"]["segmented"]' <<<"$status")
    joined=$(field 'd["datapath"]["offload"]["joined"]' <<<"$status")
    [ "$segmented" -gt 0 ] && [ "$joined" -gt 0 ] && break
    sleep 0.1
  done
  [ "$segmented" -gt 0 ] || fail "$h cut no super-frame for the tunnel: $status"
  [ "$joined" -gt 0 ] || fail "$h joined no tunnel segments before its datapath: $status"
  drops=$(field 'd["datapath"]["drops"]' <<<"$status")
  [[ "$drops" != *offload* ]] || fail "$h refused offload requests: $drops"
done

# The same counters for Prometheus, on the host's own loopback.
metrics=$(in_ns "$tag-h1" curl -sS http://127.0.0.1:9100/metrics)
expect_in "canopy_southbound_connected 1" "$metrics"
expect_in "# TYPE canopy_packets_total counter" "$metrics"
expect_in "canopy_port_frames_total{port=\"$vm1_id\",interface=\"tap${vm1_id:0:11}\",direction=\"rx\"}" "$metrics"

# An interface that disappears is noticed: its port goes DOWN.
ip -n "$tag-h2" link del "tap${vm2_id:0:11}"
for _ in $(seq 1 50); do
  [ "$(admin GET "/v2.0/ports/$vm2_id" | field 'd["port"]["status"]')" = DOWN ] && break
  sleep 0.1
done
expect_in '"status":"DOWN"' "$(admin GET "/v2.0/ports/$vm2_id")"

echo "e2e.two_hosts ($encapsulation): all checks passed"
