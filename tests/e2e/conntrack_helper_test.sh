#!/usr/bin/env bash
# Conntrack helpers (l3-conntrack-helper): the router's NAT runs FTP's and
# TFTP's application-level gateways, with real clients and servers. Two
# hosts (h2 holds the router's gateway), vm1 behind SNAT and vm3 with a
# floating IP, both on h1; an outside namespace with a TFTP server and an
# FTP server (pyftpdlib). Each of these fails without the router's helper
# and works with it:
# - TFTP through SNAT (busybox tftp): the server answers from a new port;
# - active FTP through SNAT (curl -P, EPRT and PORT, two files on one
#   control connection): the address the client names is rewritten to the
#   gateway's and a port that expects the data connection, and the control
#   connection goes on with the shifted sequence numbers;
# - passive FTP to a server behind a floating IP (curl --disable-epsv,
#   using the address of the 227 reply): the reply names the floating IP.
# As in Neutron, the VMs' security groups must admit the data connections.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

ftp_python=/usr/bin/python3
"$ftp_python" -c 'import pyftpdlib' 2>/dev/null || { echo "SKIP: python3-pyftpdlib missing"; exit 77; }

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

public=$(admin POST /v2.0/networks '{"network": {"name": "public", "router:external": true,
  "provider:network_type": "flat", "provider:physical_network": "physnet1"}}' |
  field 'd["network"]["id"]')
admin POST /v2.0/subnets '{"subnet": {"network_id": "'"$public"'", "ip_version": 4,
  "cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1", "enable_dhcp": false,
  "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.100"}]}}' >/dev/null
net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
sub=$(api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' | field 'd["subnet"]["id"]')
router=$(api POST /v2.0/routers '{"router": {"name": "r1",
  "external_gateway_info": {"network_id": "'"$public"'"}}}' | field 'd["router"]["id"]')
api PUT "/v2.0/routers/$router/add_router_interface" '{"subnet_id": "'"$sub"'"}' >/dev/null

# The data connections come from outside: the default group admits them.
default_sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
for proto in tcp udp; do
  api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
    "'"$default_sg"'", "direction": "ingress", "ethertype": "IPv4", "protocol": "'"$proto"'",
    "remote_ip_prefix": "203.0.113.0/24"}}' >/dev/null
done
new_port vm1 "$net"; add_vm vm1 h1 "$port_id" "$port_mac"
new_port vm3 "$net"; vm3_id=$port_id; add_vm vm3 h1 "$port_id" "$port_mac"
dhcp vm1 >/dev/null
dhcp vm3 >/dev/null
fip=$(api POST /v2.0/floatingips '{"floatingip": {"floating_network_id": "'"$public"'",
  "port_id": "'"$vm3_id"'"}}' | field 'd["floatingip"]["floating_ip_address"]')

# The servers: TFTP and FTP outside, FTP (passive ports 30000-30009) on vm3.
mkdir -p "$work/files"
head -c 3000 /dev/urandom >"$work/files/boot.img"  # six TFTP blocks
head -c 200000 /dev/urandom >"$work/files/a.bin"
head -c 5000 /dev/urandom >"$work/files/b.bin"
bg "$outside" sh -c "exec $ftp_python '$here/tftp_server.py' 203.0.113.1 '$work/files' 240 \
  >'$work/tftp.log' 2>&1"
bg "$outside" sh -c "exec $ftp_python -m pyftpdlib -i 203.0.113.1 -p 21 -d '$work/files' \
  >'$work/ftp-outside.log' 2>&1"
bg "$tag-vm3" sh -c "exec $ftp_python -m pyftpdlib -p 21 -d '$work/files' -r 30000-30009 \
  >'$work/ftp-vm3.log' 2>&1"
wait_listen "$outside" 21
wait_listen "$tag-vm3" 21
retry 10 in_ns "$tag-vm1" ping -c 1 -W 1 203.0.113.1 || fail "vm1 cannot reach outside"
retry 10 in_ns "$outside" nc -z -w 1 "$fip" 21 || fail "outside cannot reach $fip:21"

# The agents' drop counters, for a failure's message.
drops() {
  for h in h1 h2; do
    "$bin/canopy-agent" --run-dir "$work/$h" status |
      python3 -c "import json,sys; d=json.load(sys.stdin); print(d['host'], d['datapath']['drops'])"
  done
}
same() { cmp -s "$work/files/$1" "$2"; }
tftp_get() {
  rm -f "$work/tftp.out"
  in_ns "$tag-vm1" timeout 5 busybox tftp -g -r boot.img -l "$work/tftp.out" 203.0.113.1 &&
    same boot.img "$work/tftp.out"
}
# ftp_active [--disable-eprt]: two files over one control connection.
ftp_active() {
  rm -f "$work/a.active" "$work/b.active"
  in_ns "$tag-vm1" timeout 10 curl -sS --max-time 8 -P - "$@" \
    ftp://203.0.113.1/a.bin -o "$work/a.active" ftp://203.0.113.1/b.bin -o "$work/b.active" \
    2>>"$work/curl.log" && same a.bin "$work/a.active" && same b.bin "$work/b.active"
}
ftp_passive_to_fip() {
  rm -f "$work/a.passive" "$work/b.passive"
  # curl ignores the 227 reply's address by default (since 7.74, for NATs
  # that do not rewrite it); clients that use it need the helper.
  in_ns "$outside" timeout 10 curl -sS --max-time 8 --disable-epsv --no-ftp-skip-pasv-ip \
    "ftp://$fip/a.bin" -o "$work/a.passive" "ftp://$fip/b.bin" -o "$work/b.passive" \
    2>>"$work/curl.log" && same a.bin "$work/a.passive" && same b.bin "$work/b.passive"
}

# Without helpers: none of them works.
tftp_get && fail "TFTP through SNAT worked without the tftp helper"
ftp_active && fail "active FTP (EPRT) through SNAT worked without the ftp helper"
ftp_active --disable-eprt && fail "active FTP (PORT) through SNAT worked without the ftp helper"
ftp_passive_to_fip && fail "passive FTP to $fip worked without the ftp helper"

helper() {
  api POST "/v2.0/routers/$router/conntrack_helpers" '{"conntrack_helper": {"helper": "'"$1"'",
    "protocol": "'"$2"'", "port": '"$3"'}}' | field 'd["conntrack_helper"]["id"]'
}
tftp_helper=$(helper tftp udp 69)
ftp_helper=$(helper ftp tcp 21)
[ -n "$tftp_helper" ] && [ -n "$ftp_helper" ] || fail "helpers not created"
expect_in '"helper":"ftp"' "$(api GET "/v2.0/routers/$router")"
wait_applied h1
wait_applied h2

retry 15 tftp_get || fail "TFTP through SNAT with the helper: $(drops)"
retry 15 ftp_active || fail "active FTP (EPRT) through SNAT with the helper: $(tail -5 "$work/curl.log") $(drops)"
ftp_active --disable-eprt || fail "active FTP (PORT) through SNAT: $(tail -5 "$work/curl.log") $(drops)"
retry 15 ftp_passive_to_fip || fail "passive FTP to $fip with the helper: $(tail -5 "$work/curl.log") $(drops)"

# The helper goes: TFTP through SNAT stops working again.
api DELETE "/v2.0/routers/$router/conntrack_helpers/$tftp_helper" >/dev/null
wait_applied h2
tftp_get && fail "TFTP through SNAT still worked after the helper went"
echo "e2e.conntrack_helper: all checks passed"
