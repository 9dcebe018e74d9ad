#!/usr/bin/env bash
# The three programs as an operator meets them: --help for each, the server's
# store commands on fresh, corrupt and busy stores, a config file, a clean stop
# on SIGTERM. Usage: binaries_test.sh BIN_DIR
set -euo pipefail
bin=${1:?usage: binaries_test.sh BIN_DIR}
work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-e2e-XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill "$server_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
expect_in() { grep -qF -- "$1" <<<"$2" || fail "expected '$1' in: $2"; }

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
CONF
"$bin/canopy-server" --config "$work/server.conf" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "not built yet" "$work/server.log" && break
  sleep 0.1
done
expect_in "open at revision 0" "$(cat "$work/server.log")"
expect_in "debug store $work/run/canopy.db open" "$(cat "$work/server.log")"  # log-level from the file
expect_in "not built yet" "$(cat "$work/server.log")"
set +e
out=$("$bin/canopy-server" --store "sqlite:$work/run/canopy.db" check 2>&1); rc=$?
set -e
[ "$rc" -eq 1 ] || fail "second process was not refused: $out"
expect_in "in use by another process (pid $server_pid)" "$out"

# The API answers, and what it stored survives a restart.
api_url() { grep -Eo 'Neutron API on http://[0-9.:]+' "$work/server.log" | tail -n 1 | sed 's/Neutron API on //'; }
url=$(api_url)
[ -n "$url" ] || fail "no API address in the log: $(cat "$work/server.log")"
out=$(curl -sS -X POST "$url/v2.0/networks" -H 'X-Project-Id: p1' -d '{"network": {"name": "net-a"}}')
expect_in '"name":"net-a"' "$out"
net_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["id"])' <<<"$out")
out=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$url/v2.0/networks" -d '{"network": {"nmae": "typo"}}')
[ "$out" = 400 ] || fail "unknown attribute gave $out"

kill -TERM "$server_pid"
wait "$server_pid" || fail "server exited with $? on SIGTERM"
server_pid=
out=$("$bin/canopy-server" --config "$work/server.conf" check)
expect_in "store sqlite:$work/run/canopy.db: ok, schema version 1, revision 1" "$out"

: >"$work/server.log"
"$bin/canopy-server" --config "$work/server.conf" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "not built yet" "$work/server.log" && break
  sleep 0.1
done
url=$(api_url)
out=$(curl -sS "$url/v2.0/networks/$net_id" -H 'X-Project-Id: p1')
expect_in "\"id\":\"$net_id\"" "$out"
expect_in '"name":"net-a"' "$out"
kill -TERM "$server_pid"
wait "$server_pid" || fail "server exited with $? on SIGTERM"
server_pid=

# The agent says plainly that it is not built yet.
set +e
out=$("$bin/canopy-agent" --host-name hv1 2>&1); rc=$?
set -e
[ "$rc" -eq 1 ] || fail "agent exit $rc"
expect_in "not built yet" "$out"

echo "e2e.binaries: all checks passed"
