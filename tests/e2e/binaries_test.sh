#!/usr/bin/env bash
# The three programs as an operator meets them: --help for each, the server's
# store commands on fresh, corrupt and busy stores, a config file, a clean stop
# on SIGTERM. Usage: binaries_test.sh BIN_DIR
bin=${1:?usage: binaries_test.sh BIN_DIR}
source "$(dirname "$0")/lib.sh"

# --help explains every option.
help=$("$bin/canopy-server" --help)
for opt in --config --store --log-level check dump; do expect_in "$opt" "$help"; done
help=$("$bin/canopy-agent" --help)
for opt in --config --host-name --log-level; do expect_in "$opt" "$help"; done
"$bin/canopy" --help >/dev/null

# check does not create a store that is not there.
set +e
out=$("$bin/canopy-server" --store "sqlite:$work/missing/canopy.db" check 2>&1); rc=$?
set -e
[ "$rc" -eq 1 ] || fail "check of a missing store: exit $rc, output: $out"
expect_in "does not exist" "$out"
[ ! -e "$work/missing" ] || fail "check created something"

# A corrupt store gives a clear error and exit status 1, not a crash.
head -c 8192 /dev/urandom >"$work/garbage.db"
set +e
out=$("$bin/canopy-server" --store "sqlite:$work/garbage.db" check 2>&1); rc=$?
set -e
[ "$rc" -eq 1 ] || fail "corrupt store: exit $rc, output: $out"
expect_in "not a SQLite database" "$out"

# Bad options are refused before anything starts.
set +e
out=$("$bin/canopy-server" --log-level loud check 2>&1); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "bad log level accepted"
expect_in "unknown log level 'loud'" "$out"

# The server, with options from a config file, creates its store on first
# run and holds it: a second process is refused clearly, and SIGTERM stops
# the server cleanly.
cat >"$work/server.conf" <<CONF
store = "sqlite:$work/run/canopy.db"
log-level = "debug"
listen = "127.0.0.1:0"
auth = "noauth"
CONF
start_server "$bin" "$work/server.log" --config "$work/server.conf"
expect_in "open at revision 0" "$(cat "$work/server.log")"
expect_in "debug store $work/run/canopy.db open" "$(cat "$work/server.log")"  # log-level from the file
set +e
out=$("$bin/canopy-server" --store "sqlite:$work/run/canopy.db" check 2>&1); rc=$?
set -e
[ "$rc" -eq 1 ] || fail "second process was not refused: $out"
expect_in "in use by another process (pid $server_pid)" "$out"

# The API answers, and what it stored survives a restart.
url=$api_url
out=$(curl -sS -X POST "$url/v2.0/networks" -H 'X-Project-Id: p1' -d '{"network": {"name": "net-a"}}')
expect_in '"name":"net-a"' "$out"
net_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["id"])' <<<"$out")
out=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$url/v2.0/networks" -d '{"network": {"nmae": "typo"}}')
[ "$out" = 400 ] || fail "unknown attribute gave $out"
expect_in "southbound for agents on unix:" "$(cat "$work/server.log")"

# Bad bodies, as any logged-in member could send them: a body over the
# limit is answered 413 with Neutron's error body (after curl has sent all
# of it: no broken pipe), one nested 60,000 deep 400; the server lives on.
head -c 10000000 /dev/zero | tr '\0' 'a' >"$work/big-body"
out=$(curl -sS -w ' %{http_code}' -X POST "$url/v2.0/networks" -H 'X-Project-Id: p1' \
  -H 'Expect:' --data-binary "@$work/big-body") || fail "10 MB body: curl failed: $out"
expect_in '"type":"HTTPRequestEntityTooLarge"' "$out"
expect_in " 413" "$out"
python3 -c 'print("{\"network\": {\"name\": " + "[" * 60000 + "]" * 60000 + "}}")' >"$work/deep-body"
out=$(curl -sS -w ' %{http_code}' -X POST "$url/v2.0/networks" -H 'X-Project-Id: p1' \
  --data-binary "@$work/deep-body")
expect_in '"type":"MalformedRequestBody"' "$out"
expect_in " 400" "$out"
out=$(curl -sS "$url/v2.0/networks/$net_id" -H 'X-Project-Id: p1')
expect_in "\"id\":\"$net_id\"" "$out"

stop_server
out=$("$bin/canopy-server" --config "$work/server.conf" check)
# The network, then (unless the server stopped first) its southbound key.
expect_in "store sqlite:$work/run/canopy.db: ok, schema version 2, revision " "$out"

start_server "$bin" "$work/server2.log" --config "$work/server.conf"
url=$api_url
out=$(curl -sS "$url/v2.0/networks/$net_id" -H 'X-Project-Id: p1')
expect_in "\"id\":\"$net_id\"" "$out"
expect_in '"name":"net-a"' "$out"
stop_server

# The agent refuses bad configuration with a clear message, and its
# subcommands say when no agent runs.
set +e
out=$("$bin/canopy-agent" --host-name hv1 --tunnel-ip not-an-address 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || fail "agent exit $rc"
expect_in "--tunnel-ip 'not-an-address' is not an IP address" "$out"
set +e
out=$("$bin/canopy-agent" --run-dir "$work/no-agent" status 2>&1); rc=$?
set -e
[ "$rc" -eq 1 ] || fail "agent status exit $rc"
expect_in "no agent on $work/no-agent/agent.sock" "$out"

echo "e2e.binaries: all checks passed"
