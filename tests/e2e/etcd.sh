# An etcd cluster on loopback for end-to-end tests (source after lib.sh):
# start_etcd N starts N members (Debian's etcd-server) on free ports with
# their data under $work, and sets $etcd_url (etcd://...); kill_etcd I kills
# member I with SIGKILL, restart_etcd I starts it again on its data. The
# members are stopped on exit with the servers.

etcd_pids=()
etcd_clients=()
etcd_peers=()

# free_port: a TCP port nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_etcd_run() {
  local i=$1 state=$2 cluster="" j
  for j in "${!etcd_peers[@]}"; do
    cluster+="${cluster:+,}m$j=http://127.0.0.1:${etcd_peers[$j]}"
  done
  etcd --name "m$i" --data-dir "$work/etcd-m$i" \
    --listen-client-urls "http://127.0.0.1:${etcd_clients[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${etcd_clients[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${etcd_peers[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${etcd_peers[$i]}" \
    --initial-cluster "$cluster" --initial-cluster-state "$state" \
    --initial-cluster-token canopy-e2e --max-txn-ops 10000 \
    --heartbeat-interval 100 --election-timeout 1000 \
    --logger zap --log-level warn >>"$work/etcd-m$i.log" 2>&1 &
  etcd_pids[$i]=$!
  server_pids+=("$!")
}

# etcd_healthy: every live member has a leader.
etcd_healthy() {
  local i
  for i in "${!etcd_clients[@]}"; do
    kill -0 "${etcd_pids[$i]}" 2>/dev/null || continue
    curl -sf "http://127.0.0.1:${etcd_clients[$i]}/health" | grep -q '"health":"true"' || return 1
  done
}

start_etcd() {
  local n=$1 i
  command -v etcd >/dev/null || fail "etcd is not installed (scripts/install-deps.sh)"
  for ((i = 0; i < n; i++)); do
    etcd_clients[$i]=$(free_port)
    etcd_peers[$i]=$(free_port)
  done
  for ((i = 0; i < n; i++)); do _etcd_run "$i" new; done
  retry 30 etcd_healthy || fail "etcd did not become healthy: $(tail -n 20 "$work"/etcd-m*.log)"
  etcd_url="etcd://"
  for ((i = 0; i < n; i++)); do etcd_url+="${i:+,}127.0.0.1:${etcd_clients[$i]}"; done
  etcd_url=${etcd_url/etcd:\/\/,/etcd:\/\/}
}

kill_etcd() {
  kill -KILL "${etcd_pids[$1]}"
  wait "${etcd_pids[$1]}" 2>/dev/null || true
}

restart_etcd() {
  _etcd_run "$1" existing
  retry 30 etcd_healthy || fail "etcd member $1 did not come back: $(tail -n 20 "$work/etcd-m$1.log")"
}

# etcd_leader: the index of the member that leads now.
etcd_leader() {
  local i
  for i in "${!etcd_clients[@]}"; do
    kill -0 "${etcd_pids[$i]}" 2>/dev/null || continue
    local metrics
    metrics=$(curl -sf "http://127.0.0.1:${etcd_clients[$i]}/metrics") || continue
    if grep -q '^etcd_server_is_leader 1' <<<"$metrics"; then
      echo "$i"
      return 0
    fi
  done
  return 1
}
