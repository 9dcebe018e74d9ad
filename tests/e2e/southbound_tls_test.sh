#!/usr/bin/env bash
# The southbound with mutual TLS: canopy-server presents a certificate and
# requires each agent's client certificate, signed by its CA and naming the
# agent's host. Two agents with their own certificates get their views and
# their VMs ping each other; an agent without a certificate (refused at the
# handshake), and one whose certificate names another host (refused at its
# hello), are never registered.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

# A CA, the server's certificate (the name gRPC expects on a unix socket is
# "localhost") and one client certificate per host name.
pki=$work/pki
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=canopy test CA" \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
issue() {
  local name=$1 san=$2
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$pki/$name.key" \
    -out "$pki/$name.csr" 2>/dev/null
  printf 'subjectAltName=%s\n' "$san" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 2 -extfile "$pki/$name.ext" -out "$pki/$name.pem" 2>/dev/null
}
issue localhost "DNS:localhost"
issue h1 "DNS:h1"
issue h2 "DNS:h2"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth --southbound-tls-cert "$pki/localhost.pem" \
  --southbound-tls-key "$pki/localhost.key" --southbound-tls-ca "$pki/ca.pem"

make_underlay
add_host h1 192.168.77.1
add_host h2 192.168.77.2
add_host h3 192.168.77.3
add_host h4 192.168.77.4
tls() { echo --tls-ca "$pki/ca.pem" --tls-cert "$pki/$1.pem" --tls-key "$pki/$1.key"; }
start_agent h1 192.168.77.1 $(tls h1)
start_agent h2 192.168.77.2 $(tls h2)
# Refused: h3 without a client certificate, and h4 with h1's certificate.
start_agent h3 192.168.77.3 --tls-ca "$pki/ca.pem"
start_agent h4 192.168.77.4 $(tls h1)

net=$(api POST /v2.0/networks '{"network": {"name": "net1"}}' | field 'd["network"]["id"]')
api POST /v2.0/subnets '{"subnet": {"network_id": "'"$net"'", "ip_version": 4,
  "cidr": "10.0.0.0/24"}}' >/dev/null
port() { new_port "$1" "$net"; }
port vm1; vm1_id=$port_id; vm1_mac=$port_mac
port vm2; vm2_id=$port_id; vm2_ip=$port_ip; vm2_mac=$port_mac
add_vm vm1 h1 "$vm1_id" "$vm1_mac"
add_vm vm2 h2 "$vm2_id" "$vm2_mac"
dhcp vm1 >/dev/null
dhcp vm2 >/dev/null
retry 10 in_ns "$tag-vm1" ping -c 1 -W 1 "$vm2_ip" || fail "vm1 cannot ping vm2 over TLS agents"

agents=$(admin GET /v2.0/agents)
expect_in '"host":"h1"' "$agents"
expect_in '"host":"h2"' "$agents"
for h in h3 h4; do
  if grep -q "\"host\":\"$h\"" <<<"$agents"; then fail "$h was registered: $agents"; fi
done
expect_in "refused hello as 'h4'" "$(cat "$work/server.log")"
expect_in "did not return a certificate" "$(cat "$work/server.log")"
echo "southbound_tls: ok"
