# Helpers for end-to-end tests: source it. Each test gets a work dir removed
# on exit (kept with CANOPY_E2E_KEEP=1) and may start canopy-server processes that are stopped on exit.
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/canopy-e2e-XXXXXX")
server_pids=()
cleanup() {
  for pid in "${server_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  done
  # CANOPY_E2E_KEEP=1 keeps the work dir (logs, state) for a look after.
  if [ -n "${CANOPY_E2E_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
# retry SECONDS COMMAND...: runs it until it succeeds, or fails after SECONDS.
retry() {
  local end=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.3
  done
}
# field EXPR: a value of the JSON on stdin (d is the document).
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# iperf_intervals FILE: the interval lines of an iperf3 run's output in FILE
# (-i 0.1 --forceflush), not its summary.
iperf_intervals() {
  grep -E '^\[ *[0-9]+\] +[0-9.]+-[0-9.]+ +sec' "$1" | grep -v -e receiver -e sender || true
}
# longest_gap FILE [FROM]: the longest run of 0.1 s intervals without a byte
# in FILE, from its FROMth interval on, in ms.
longest_gap() {
  iperf_intervals "$1" | tail -n +"${2:-1}" |
    awk '/ 0\.00 Bytes/ { if (++run > longest) longest = run; next } { run = 0 }
         END { print longest * 100 + 0 }'
}
expect_in() { grep -qF -- "$1" <<<"$2" || fail "expected '$1' in: $2"; }

# start_server BIN LOG ARGS...: starts canopy-server, waits for its API, and
# sets $server_pid and $api_url.
start_server() {
  local bin=$1 log=$2
  shift 2
  # Each server its own southbound socket (tests may run side by side),
  # unless the test names one.
  local southbound=(--southbound-listen "unix:$work/southbound-${#server_pids[@]}.sock")
  case " $* " in *" --southbound-listen "*) southbound=() ;; esac
  "$bin/canopy-server" "${southbound[@]}" "$@" >"$log" 2>&1 &
  server_pid=$!
  server_pids+=("$server_pid")
  api_url=
  for _ in $(seq 1 100); do
    api_url=$(grep -Eo 'Neutron API on http://[0-9.:]+' "$log" | tail -n 1 | sed 's/Neutron API on //') || true
    [ -n "$api_url" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || fail "canopy-server exited: $(cat "$log")"
    sleep 0.1
  done
  fail "canopy-server did not start: $(cat "$log")"
}

stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || fail "canopy-server exited with $? on SIGTERM"
}

# builtin_identity FILE: an --identity-file with projects admin, demo and
# other, and their users admin (role admin), alice and bob; each password is
# the user's name followed by "-pw".
builtin_identity() {
  cat >"$1" <<'JSON'
{"projects": [{"name": "admin"}, {"name": "demo"}, {"name": "other"}],
 "users": [{"name": "admin", "password": "admin-pw", "project": "admin", "roles": ["admin"]},
           {"name": "alice", "password": "alice-pw", "project": "demo"},
           {"name": "bob", "password": "bob-pw", "project": "other"}]}
JSON
}

# as USER PROJECT ARGS...: the openstack client as USER (password $PW, or
# USER-pw) in PROJECT, at the builtin Keystone of the server at $api_url.
as() {
  local user=$1 project=$2
  shift 2
  env -u OS_AUTH_TYPE -u OS_ENDPOINT OS_AUTH_URL="$api_url/v3" OS_IDENTITY_API_VERSION=3 \
    OS_USERNAME="$user" OS_PASSWORD="${PW:-$user-pw}" OS_PROJECT_NAME="$project" \
    OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne \
    openstack "$@"
}
