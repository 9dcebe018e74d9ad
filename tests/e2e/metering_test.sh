#!/usr/bin/env bash
# Metering (Neutron's metering API, admin only) with real sockets in
# namespaces: two hosts, h2 holds the router's gateway; vm1 (h1) goes out
# by SNAT through h2, vm2 (h1, with a floating IP) by its own
# host's uplink. The admin makes labels for the project's routers: "out"
# (egress anywhere but an excluded address), "in" (ingress from the
# outside network) and "other" (another project's, which this router does
# not carry). Checks: a 1 MB transfer out of vm1 is counted by "out" on the
# gateway host (bytes at least the transfer's), the answers by "in"; vm2's
# floating-IP traffic on its own host; an excluded destination is not
# counted; "other" counts nothing; the counts show in the agent's status,
# its Prometheus metrics and the server's totals (GET /canopy/v1/metering);
# Neutron's errors for bad rules.
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
source "$here/lib.sh"
source "$here/netns.sh"

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
make_underlay
make_external
add_host h1 192.168.77.1
add_host h2 192.168.77.2
add_uplink h1
add_uplink h2
add_outside 203.0.113.1/24
in_ns "$outside" ip addr add 203.0.113.2/24 dev eth0
start_agent h1 192.168.77.1 --uplink physnet1=ext0 --metrics-listen 127.0.0.1:9464
start_agent h2 192.168.77.2 --uplink physnet1=ext0 --gateway --metrics-listen 127.0.0.1:9464

routed_network
default_sg=$(api GET "/v2.0/security-groups?name=default" | field 'd["security_groups"][0]["id"]')
api POST /v2.0/security-group-rules '{"security_group_rule": {"security_group_id":
  "'"$default_sg"'", "direction": "ingress", "protocol": "icmp"}}' >/dev/null

# The labels, by the admin, for project demo's routers (and another's).
expect_in '"alias":"metering"' "$(api GET /v2.0/extensions)"
label() {
  admin POST /v2.0/metering/metering-labels '{"metering_label": {"name": "'"$1"'",
    "tenant_id": "'"${2:-demo}"'"}}' | field 'd["metering_label"]["id"]'
}
rule() {
  admin POST /v2.0/metering/metering-label-rules '{"metering_label_rule": {"metering_label_id":
    "'"$1"'", "direction": "'"$2"'", '"$3"'}}'
}
out_label=$(label out)
in_label=$(label in)
other_label=$(label other someone-else)
expect_in '"metering_label_rule"' "$(rule "$out_label" egress '"remote_ip_prefix": "0.0.0.0/0"')"
expect_in '"metering_label_rule"' "$(rule "$out_label" egress '"remote_ip_prefix": "203.0.113.2/32",
  "excluded": true')"
expect_in '"metering_label_rule"' "$(rule "$in_label" ingress '"source_ip_prefix": "203.0.113.0/24"')"
expect_in '"metering_label_rule"' "$(rule "$other_label" egress '"remote_ip_prefix": "0.0.0.0/0"')"
# Neutron's errors.
expect_in '"type":"MeteringLabelRuleOverlaps"' \
  "$(rule "$out_label" egress '"remote_ip_prefix": "203.0.113.0/24"')"
expect_in "Cannot use 'remote-ip-prefix' in conjunction with" \
  "$(rule "$in_label" ingress '"remote_ip_prefix": "10.0.0.0/8", "source_ip_prefix": "10.0.0.0/8"')"
expect_in '"type":"MeteringLabelNotFound"' \
  "$(rule 6a5e2f55-0000-4000-8000-000000000000 egress '"remote_ip_prefix": "10.0.0.0/8"')"
expect_in '"metering_labels":[]' "$(api GET /v2.0/metering/metering-labels)"  # admin only
# The openstack client (as the admin: noauth without a project).
os() { openstack --os-auth-type none --os-endpoint "$api_url" "$@"; }
[ "$(os network meter show "$out_label" -f value -c name)" = out ] || fail "openstack network meter show"
[ "$(os network meter rule list -f value -c ID | wc -l)" = 4 ] ||
  fail "openstack network meter rule list: $(os network meter rule list)"

new_port vm1 "$net"
add_vm vm1 h1 "$port_id" "$port_mac"
new_port vm2 "$net"
vm2_id=$port_id
add_vm vm2 h1 "$port_id" "$port_mac"
dhcp vm1 >/dev/null
dhcp vm2 >/dev/null
fip=$(api POST /v2.0/floatingips '{"floatingip": {"floating_network_id": "'"$public"'",
  "port_id": "'"$vm2_id"'"}}' | field 'd["floatingip"]["floating_ip_address"]')
wait_applied h1
wait_applied h2

# vm1 sends 1 MB out by SNAT (through h2); pings an excluded address.
send_blob "$tag-vm1" "$outside" 203.0.113.1 9000 1048576
in_ns "$tag-vm1" ping -c 3 -i 0.2 -W 2 203.0.113.2 >/dev/null || fail "vm1 cannot ping 203.0.113.2"
# The outside pings vm2's floating IP (on h1, by its own uplink).
retry 10 in_ns "$outside" ping -c 1 -W 1 "$fip" || fail "the outside cannot ping $fip"

counted() {  # counted HOST LABEL FIELD
  "$bin/canopy-agent" --run-dir "$work/$1" status |
    field "sum(m['$3'] for m in d['datapath']['metering'] if m['label'] == '$2')"
}
big_enough() { [ "$(counted h2 "$out_label" bytes)" -ge 1048576 ]; }
retry 10 big_enough || fail "h2 counted $(counted h2 "$out_label" bytes) bytes out, not the 1 MB sent"
packets_out=$(counted h2 "$out_label" packets)
[ "$(counted h2 "$in_label" packets)" -gt 0 ] || fail "h2 counted none of the answers in"
# Pings to the excluded address: their answers count "in" (so the counts
# read are fresh), the pings themselves do not count "out".
in_before=$(counted h2 "$in_label" packets)
in_ns "$tag-vm1" ping -c 3 -i 0.2 -W 2 203.0.113.2 >/dev/null
answers_in() { [ "$(counted h2 "$in_label" packets)" -ge $((in_before + 3)) ]; }
retry 10 answers_in || fail "the answers from 203.0.113.2 were not counted in"
[ "$(counted h2 "$out_label" packets)" = "$packets_out" ] ||
  fail "pings to the excluded 203.0.113.2 were counted"
in_fip() { [ "$(counted h1 "$in_label" packets)" -gt 0 ] && [ "$(counted h1 "$out_label" packets)" -gt 0 ]; }
retry 10 in_fip || fail "h1 counted none of vm2's floating-IP traffic"
[ "$(counted h1 "$other_label" packets)$(counted h2 "$other_label" packets)" = 00 ] ||
  fail "another project's label counted this router's traffic"

metrics=$(in_ns "$tag-h2" curl -sf http://127.0.0.1:9464/metrics)
expect_in "canopy_metering_label_bytes_total{label=\"$out_label\"}" "$metrics"
total() {
  admin GET /canopy/v1/metering |
    field "[l['$2'] for l in d['metering_labels'] if l['id'] == '$1'][0]"
}
reported() { [ "$(total "$out_label" bytes)" -ge 1048576 ]; }
retry 15 reported || fail "the server's total for 'out' is $(total "$out_label" bytes) bytes"
echo "e2e.metering: all checks passed"
