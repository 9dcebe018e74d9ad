#!/usr/bin/env bash
# `canopy`, the command-line client, against a real canopy-server. In noauth
# mode (OS_AUTH_TYPE=none, OS_ENDPOINT): an external network and a tenant
# network with subnets, a router between them, ports, a security group with
# rules, a floating IP; list, show, set, unset and delete of each; -f json
# and -f value for scripts; the server's own error messages and exit status
# 1; `canopy topology` nesting them and `--dot` as Graphviz. Then with a
# password against the builtin Keystone (token and catalog endpoint), from
# OS_* variables and from a clouds.yaml. Usage: cli_test.sh BIN_DIR
bin=$(cd "${1:?usage: cli_test.sh BIN_DIR}" && pwd)
source "$(dirname "$0")/lib.sh"
[ -x "$bin/canopy" ] || fail "no canopy in $bin"

# Only what this test sets: no credentials of the caller's.
for v in $(env | grep -o '^OS_[A-Z_]*'); do unset "$v"; done
canopy() { "$bin/canopy" "$@"; }
# field EXPR: a Python expression over the JSON on stdin (as d).
field() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
# fails CMD...: runs a command that must exit 1; its stderr in $err.
fails() {
  local rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  [ "$rc" -eq 1 ] || fail "exit $rc (not 1) from: $* ($err)"
}

start_server "$bin" "$work/server.log" --store "sqlite:$work/canopy.db" --listen 127.0.0.1:0 \
  --auth noauth
export OS_AUTH_TYPE=none OS_ENDPOINT=$api_url

# --- create
out=$(canopy network create public --external --provider-network-type flat \
  --provider-physical-network ext -f json)
[ "$(field 'd["router:external"]' <<<"$out")" = True ] || fail "external network: $out"
public_id=$(field 'd["id"]' <<<"$out")
out=$(canopy subnet create public-sub --network public --subnet-range 198.51.100.0/24 --no-dhcp \
  -f value -c enable_dhcp -c cidr | tr '\n' ' ')
[ "$out" = "False 198.51.100.0/24 " ] || fail "external subnet: $out"
canopy network create inside >/dev/null
out=$(canopy subnet create inside-sub --network inside --subnet-range 10.30.0.0/24 \
  --dns-nameserver 10.30.0.53 --host-route destination=10.99.0.0/16,gateway=10.30.0.254 -f json)
[ "$(field 'd["gateway_ip"]' <<<"$out")" = 10.30.0.1 ] || fail "subnet: $out"
[ "$(field 'd["host_routes"][0]["nexthop"]' <<<"$out")" = 10.30.0.254 ] || fail "route: $out"
# The human table: Field | Value.
out=$(canopy subnet show inside-sub)
expect_in "| cidr              | 10.30.0.0/24" "$out"

out=$(canopy router create edge --external-gateway public -f json)
gateway_ip=$(field 'd["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]' <<<"$out")
expect_in "198.51.100." "$gateway_ip"
canopy router add subnet edge inside-sub

canopy security group create web --description "web servers" >/dev/null
out=$(canopy security group rule create web --protocol tcp --dst-port 80:81 \
  --remote-ip 0.0.0.0/0 -f json)
[ "$(field 'd["port_range_min"], d["port_range_max"], d["direction"]' <<<"$out")" = \
  "(80, 81, 'ingress')" ] || fail "rule: $out"
canopy security group rule create web --protocol icmp --remote-group web >/dev/null
out=$(canopy security group rule list web -f value -c "IP Protocol" -c "Port Range" | sort)
expect_in "tcp 80:81" "$out"
expect_in "icmp " "$out"

out=$(canopy port create vm1 --network inside --fixed-ip subnet=inside-sub,ip-address=10.30.0.10 \
  --security-group web --host compute-1 --device-owner compute:nova -f json)
[ "$(field 'd["fixed_ips"][0]["ip_address"]' <<<"$out")" = 10.30.0.10 ] || fail "port: $out"
web_id=$(canopy security group show web -f value -c id)
[ "$(field 'd["security_groups"]' <<<"$out")" = "['$web_id']" ] || fail "port groups: $out"
canopy port create vm2 --network inside --disable-port-security --no-security-group >/dev/null

out=$(canopy floating ip create public --port vm1 -f json)
fip=$(field 'd["floating_ip_address"]' <<<"$out")
[ "$(field 'd["fixed_ip_address"]' <<<"$out")" = 10.30.0.10 ] || fail "floating IP: $out"

# --- list and show
[ "$(canopy network list -f value -c Name | sort | tr '\n' ' ')" = "inside public " ] ||
  fail "network list"
[ "$(canopy network list --external -f value -c Name)" = public ] || fail "--external filter"
[ "$(canopy port list --network inside -f value -c Name | sort | tr '\n' ' ')" = \
  " vm1 vm2 " ] || fail "port list: $(canopy port list --network inside)"
out=$(canopy port list --router edge -f json)
# The interface and the gateway.
[ "$(field 'sorted(ip["ip_address"] for p in d for ip in p["fixed_ips"])' <<<"$out")" = \
  "['10.30.0.1', '$gateway_ip']" ] || fail "router ports: $out"
[ "$(canopy floating ip list -f value -c "Floating IP Address" -c "Fixed IP Address")" = \
  "$fip 10.30.0.10" ] || fail "floating ip list"
out=$(canopy router list)
expect_in "| edge | ACTIVE | UP    |" "$out"
[ "$(canopy network show "$public_id" -f value -c name)" = public ] || fail "show by id"
[ "$(canopy floating ip show "$fip" -f value -c port_id)" = \
  "$(canopy port show vm1 -f value -c id)" ] || fail "floating ip by address"

# --- set and unset
canopy network set inside --name inner --mtu 1400
[ "$(canopy network show inner -f value -c mtu)" = 1400 ] || fail "network set"
canopy subnet set inside-sub --dns-nameserver 10.30.0.54
[ "$(canopy subnet show inside-sub -f json | field 'd["dns_nameservers"]')" = \
  "['10.30.0.53', '10.30.0.54']" ] || fail "dns appended"
canopy subnet unset inside-sub --dns-nameserver 10.30.0.53
[ "$(canopy subnet show inside-sub -f value -c dns_nameservers)" = 10.30.0.54 ] || fail "dns removed"
canopy port set vm2 --description "second VM"
[ "$(canopy port show vm2 -f value -c description)" = "second VM" ] || fail "port set"
canopy router set edge --disable-snat
[ "$(canopy router show edge -f json | field 'd["external_gateway_info"]["enable_snat"]')" = False ] ||
  fail "router set --disable-snat"
canopy router add route edge --destination 172.16.0.0/12 --gateway 10.30.0.9
expect_in "destination='172.16.0.0/12', nexthop='10.30.0.9'" "$(canopy router show edge -c routes -f value)"
canopy router remove route edge --destination 172.16.0.0/12 --gateway 10.30.0.9
[ "$(canopy router show edge -f json | field 'd["routes"]')" = "[]" ] || fail "route removed"
canopy floating ip unset --port "$fip"
[ "$(canopy floating ip show "$fip" -f json | field 'd["port_id"]')" = None ] || fail "fip unset"
canopy floating ip set "$fip" --port vm1
[ "$(canopy floating ip show "$fip" -f value -c fixed_ip_address)" = 10.30.0.10 ] || fail "fip set"
canopy quota set admin --networks 5
[ "$(canopy quota show admin -f json | field 'd["network"]')" = 5 ] || fail "quota set"

# --- the server's errors, exit status 1
fails canopy subnet create bad --network inner --subnet-range 10.1.2.3/99
expect_in "canopy: Invalid input for cidr" "$err"
expect_in "(HTTP 400)" "$err"
fails canopy network show missing
expect_in "could not be found" "$err"
fails canopy network delete inner
expect_in "ports still in use" "$err"
expect_in "(HTTP 409)" "$err"
fails canopy security group rule create web --protocol tcp --dst-port 80:81 --remote-ip 0.0.0.0/0
expect_in "Security group rule already exists" "$err"
fails env OS_ENDPOINT=http://127.0.0.1:1 "$bin/canopy" network list
expect_in "cannot reach http://127.0.0.1:1" "$err"
rc=0
out=$(canopy network create 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "a usage error exits $rc"

# --- topology: project > router > network > subnet > port
tree=$(canopy topology)
python3 - "$tree" "$fip" <<'PY' || fail "topology nesting: $tree"
import sys
tree, fip = sys.argv[1], sys.argv[2]
parents, stack = {}, []
for line in tree.splitlines():
    depth = 0
    while line[depth * 4:depth * 4 + 4] in ("├── ", "└── ", "│   ", "    "):
        depth += 1
    label = line[depth * 4:]
    stack[depth:] = [label]
    parents[label] = stack[:-1]
def chain(prefix):
    hits = [l for l in parents if l.startswith(prefix)]
    assert len(hits) == 1, (prefix, hits)
    return [p.split("  ")[0] for p in parents[hits[0]]] + [hits[0]]
vm1 = chain("port vm1 ")
assert vm1[:4] == ["project admin", "router edge", "network inner", "subnet inside-sub"], vm1
assert "10.30.0.10" in vm1[4] and "host compute-1" in vm1[4] and "floating " + fip in vm1[4], vm1
assert chain("port vm2 ")[:4] == vm1[:4]
assert chain("network public")[:1] == ["project admin"]
assert chain("subnet public-sub")[:2] == ["project admin", "network public"]
assert "gateway public" in chain("router edge")[-1]
PY
dot_out=$(canopy topology --dot)
[ "${dot_out%%{*}" = "digraph canopy " ] || fail "topology --dot: $dot_out"
expect_in "\"router:" "$dot_out"
if command -v dot >/dev/null; then dot -Tsvg >/dev/null <<<"$dot_out" || fail "dot refuses it"; fi

# --- delete
canopy floating ip delete "$fip"
canopy router remove subnet edge inside-sub
canopy router unset edge --external-gateway
canopy router delete edge
canopy port delete vm1 vm2
canopy security group delete web
canopy network delete inner public
[ -z "$(canopy network list -f value)" ] || fail "networks left: $(canopy network list)"
[ -z "$(canopy router list)" ] || fail "routers left"
stop_server

# --- a password and the builtin Keystone: the token, then the catalog's
# network endpoint
unset OS_AUTH_TYPE OS_ENDPOINT
cat >"$work/identity.json" <<'JSON'
{"projects": [{"name": "admin"}, {"name": "demo"}],
 "users": [{"name": "admin", "password": "admin-pw", "project": "admin", "roles": ["admin"]},
           {"name": "alice", "password": "alice-pw", "project": "demo"}]}
JSON
start_server "$bin" "$work/server2.log" --store "sqlite:$work/canopy2.db" --listen 127.0.0.1:0 \
  --auth builtin --identity-file "$work/identity.json"
as() {
  local user=$1
  shift
  OS_AUTH_URL="$api_url/v3" OS_USERNAME="$user" OS_PASSWORD="${PW:-$user-pw}" \
    OS_PROJECT_NAME=$([ "$user" = admin ] && echo admin || echo demo) \
    OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default "$bin/canopy" "$@"
}
as alice network create alice-net >/dev/null
as admin network create admin-net >/dev/null
[ "$(as alice network list -f value -c Name)" = alice-net ] || fail "alice sees others' networks"
[ "$(as admin network list -f value -c Name | sort | tr '\n' ' ')" = "admin-net alice-net " ] ||
  fail "admin list"
demo_id=$(as alice network show alice-net -f value -c project_id)
# The token's project is the default for quotas.
[ "$(as alice quota show -f json | field 'd["network"]')" = 100 ] || fail "quota of alice's project"
# Admins see project names (the builtin Keystone lists projects to them).
expect_in "project demo ($demo_id)" "$(as admin topology)"
PW=wrong fails as alice network list
expect_in "authenticating at $api_url/v3" "$err"
expect_in "(HTTP 401)" "$err"

# The same from a clouds.yaml, with --os-cloud and OS_CLIENT_CONFIG_FILE.
cat >"$work/clouds.yaml" <<YAML
clouds:
  canopy-demo:
    auth_type: password
    auth:
      auth_url: $api_url/v3
      username: alice
      password: alice-pw
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
YAML
out=$(OS_CLIENT_CONFIG_FILE="$work/clouds.yaml" canopy --os-cloud canopy-demo network list -f value -c Name)
[ "$out" = alice-net ] || fail "clouds.yaml: '$out'"
(cd "$work" && OS_CLOUD=canopy-demo "$bin/canopy" network delete alice-net) || fail "./clouds.yaml"
as admin network delete admin-net
stop_server
echo "e2e.cli: all checks passed"
