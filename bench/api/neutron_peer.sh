#!/usr/bin/env bash
# Debian's real neutron-server (OpenStack Neutron 21 / Zed, bookworm package
# python3-neutron) as a benchmark peer for canopy-server: ML2 core plugin,
# noauth, SQLite in WORKDIR, oslo.messaging's in-process fake transport (no
# RabbitMQ), one API worker, bound to 127.0.0.1 only.
#
#   bench/api/neutron_peer.sh start WORKDIR PORT   # prints "neutron-server: http://127.0.0.1:PORT"
#   bench/api/neutron_peer.sh stop WORKDIR
#
# Requests: with noauth the project comes from X-Project-Id and the roles from
# X-Roles (e.g. "X-Project-Id: bench", "X-Roles: member"; "X-Roles: admin" for
# admin calls such as PUT /v2.0/quotas/ID). A request without X-Project-Id
# runs as admin in project "fake_project_id", as Neutron's own noauth does.
# Every start makes a fresh database. Quotas default to unlimited.
set -euo pipefail

PY=/usr/bin/python3   # Debian's python; a pyenv python3 may be first on PATH
die() { echo "neutron_peer.sh: $*" >&2; exit 1; }
usage() { echo "usage: $0 start WORKDIR PORT | stop WORKDIR" >&2; exit 2; }

# Debian's python, blind to pyenv/virtualenv settings and user site-packages.
dpy() { env -u PYTHONPATH -u PYTHONHOME -u PYTHONSTARTUP -u VIRTUAL_ENV "$PY" -s "$@"; }

install_deps() {
  # python3-neutron is the library (with ML2 and the eventlet API server);
  # the neutron-server package would pull in neutron-api (uwsgi) and
  # neutron-rpc-server services, which we do not want. curl is used below.
  local pkgs=(python3-neutron curl) missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "neutron_peer.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${missing[@]}" >&2 ||
      { apt-get update >&2 && apt-get install -y "${missing[@]}" >&2; } ||
      die "apt-get install ${missing[*]} failed"
  fi
}

write_config() {
  local dir=$1 port=$2
  mkdir -p "$dir/state" "$dir/lock"
  cat >"$dir/neutron.conf" <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = noauth
api_paste_config = $dir/api-paste.ini
bind_host = 127.0.0.1
bind_port = $port
api_workers = 1
# Neutron 21 raises rpc_workers below 1 to 1: one idle RPC worker process on
# the fake transport.
rpc_workers = 0
rpc_state_report_workers = 0
transport_url = fake:/
state_path = $dir/state
allow_overlapping_ips = true
dhcp_agent_notification = false
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
debug = false
use_stderr = false
log_dir = $dir
log_file = neutron.log

[database]
connection = sqlite:///$dir/neutron.sqlite

[quotas]
default_quota = -1
quota_network = -1
quota_subnet = -1
quota_port = -1
quota_security_group = -1
quota_security_group_rule = -1

[oslo_concurrency]
lock_path = $dir/lock

[oslo_messaging_notifications]
driver = noop

[agent]
report_interval = 0
EOF
  cat >"$dir/ml2_conf.ini" <<'EOF'
[ml2]
type_drivers = vxlan
tenant_network_types = vxlan
mechanism_drivers =
extension_drivers = port_security

[ml2_type_vxlan]
vni_ranges = 1:1000
EOF
  # Debian's /usr/share/neutron-common/api-paste.ini (package neutron-common),
  # except that the noauth pipeline's context filter is "header_context"
  # below: Debian's fake_project_id filter only builds a context when
  # X-Project-Id is absent, so X-Project-Id/X-Roles would be ignored.
  cat >"$dir/api-paste.ini" <<'EOF'
[composite:neutron]
use = egg:Paste#urlmap
/: neutronversions_composite
/healthcheck: healthcheck
/v2.0: neutronapi_v2_0

[composite:neutronapi_v2_0]
use = call:neutron.auth:pipeline_factory
noauth = cors http_proxy_to_wsgi request_id header_context catch_errors osprofiler extensions neutronapiapp_v2_0
keystone = cors http_proxy_to_wsgi request_id catch_errors osprofiler authtoken keystonecontext extensions neutronapiapp_v2_0

[composite:neutronversions_composite]
use = call:neutron.auth:pipeline_factory
noauth = cors http_proxy_to_wsgi neutronversions
keystone = cors http_proxy_to_wsgi neutronversions

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:catch_errors]
paste.filter_factory = oslo_middleware:CatchErrors.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = neutron

[filter:fake_project_id]
paste.filter_factory = neutron.auth:NoauthFakeProjectId.factory

[filter:header_context]
paste.filter_factory = neutron_peer_context:HeaderContext.factory

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware.http_proxy_to_wsgi:HTTPProxyToWSGI.factory

[filter:keystonecontext]
paste.filter_factory = neutron.auth:NeutronKeystoneContext.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:extensions]
paste.filter_factory = neutron.api.extensions:plugin_aware_extension_middleware_factory

[app:neutronversions]
paste.app_factory = neutron.pecan_wsgi.app:versions_factory

[app:neutronapiapp_v2_0]
paste.app_factory = neutron.api.v2.router:APIRouter.factory

[filter:osprofiler]
paste.filter_factory = osprofiler.web:WsgiMiddleware.factory

[app:healthcheck]
paste.app_factory = oslo_middleware:Healthcheck.app_factory
EOF
  mkdir -p "$dir/py"
  cat >"$dir/py/neutron_peer_context.py" <<'EOF'
"""noauth request context from headers, for the benchmark peer.

Like neutron.auth.NeutronKeystoneContext (the context is built from the
X-Project-Id / X-User-Id / X-Roles headers) but without requiring X-User-Id,
and like neutron.auth.NoauthFakeProjectId when X-Project-Id is absent (admin
in project "fake_project_id").
"""
from neutron_lib import context
from oslo_middleware import base
import webob.dec


class HeaderContext(base.ConfigurableMiddleware):

    @webob.dec.wsgify
    def __call__(self, req):
        ctx = context.Context.from_environ(req.environ)
        if not ctx.project_id:
            ctx.project_id = 'fake_project_id'
            ctx = ctx.elevated()
        req.environ['neutron.context'] = ctx
        return self.application
EOF
}

create_schema() {
  local dir=$1
  rm -f "$dir/neutron.sqlite"
  # neutron-db-manage's alembic migrations ALTER tables, which SQLite cannot;
  # build the schema from the models (as Neutron's own unit tests do), then
  # stamp the alembic heads so the database reads as current.
  dpy - "sqlite:///$dir/neutron.sqlite" >>"$dir/db.log" 2>&1 <<'EOF' || { cat "$dir/db.log" >&2; die "schema creation failed (see $dir/db.log)"; }
import sys
import sqlalchemy as sa
from neutron.db.migration.models import head

engine = sa.create_engine(sys.argv[1])
head.get_metadata().create_all(engine)
print("tables:", len(sa.inspect(engine).get_table_names()))
EOF
  dpy -c 'import sys; from neutron.db.migration.cli import main; sys.argv[0] = "neutron-db-manage"; sys.exit(main())' \
    --config-file "$dir/neutron.conf" --config-file "$dir/ml2_conf.ini" stamp heads >>"$dir/db.log" 2>&1 ||
    { cat "$dir/db.log" >&2; die "neutron-db-manage stamp heads failed (see $dir/db.log)"; }
}

# The pid in WORKDIR/neutron.pid is alive and is still our neutron-server (a
# stale pid file may name a pid that has since been reused).
alive() {
  local pid
  [ -f "$1/neutron.pid" ] || return 1
  pid=$(cat "$1/neutron.pid")
  kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--config-file $1/neutron.conf"
}

start() {
  [ $# -eq 2 ] || usage
  local dir port url pid code
  mkdir -p "$1"
  dir=$(cd "$1" && pwd)
  port=$2
  [[ $port =~ ^[0-9]+$ ]] || die "bad port: $port"
  alive "$dir" && die "already running (pid $(cat "$dir/neutron.pid")) in $dir"
  dpy -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null ||
    die "127.0.0.1:$port is in use"
  install_deps
  write_config "$dir" "$port"
  : >"$dir/db.log"
  create_schema "$dir"
  rm -f "$dir/neutron.log"
  # neutron-server's console entry point (neutron.cmd.eventlet.server:main;
  # its script is in the neutron-common package, not installed here).
  # setsid: its own session, so a terminal's signals do not reach it.
  PYTHONPATH="$dir/py" setsid env -u PYTHONHOME -u VIRTUAL_ENV "$PY" -s -c \
    'import sys; sys.argv[0] = "neutron-server"; from neutron.cmd.eventlet.server import main; sys.exit(main())' \
    --config-file "$dir/neutron.conf" --config-file "$dir/ml2_conf.ini" \
    </dev/null >>"$dir/neutron.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/neutron.pid"
  url="http://127.0.0.1:$port"
  for _ in $(seq 1 600); do
    code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' -m 5 \
      -H 'X-Project-Id: bench' -H 'X-Roles: member' "$url/v2.0/networks" || true)
    [ "$code" = 200 ] && { echo "neutron-server: $url"; return 0; }
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$dir/neutron.log" >&2
      rm -f "$dir/neutron.pid"
      die "neutron-server exited during startup (log: $dir/neutron.log)"
    fi
    sleep 0.2
  done
  tail -n 40 "$dir/neutron.log" >&2
  stop "$dir" || true
  die "neutron-server did not answer 200 on $url/v2.0/networks within 120 s"
}

stop() {
  [ $# -eq 1 ] || usage
  local dir pid kids=()
  [ -d "$1" ] || return 0
  dir=$(cd "$1" && pwd)
  [ -f "$dir/neutron.pid" ] || return 0
  pid=$(cat "$dir/neutron.pid")
  if alive "$dir"; then
    # The parent is oslo.service's ProcessLauncher: on SIGTERM it stops its
    # own children (api, rpc and periodic workers) and then exits. Their pids
    # are noted in case it has to be killed outright.
    read -r -a kids < <(cat /proc/"$pid"/task/*/children 2>/dev/null; echo) || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "neutron_peer.sh: pid $pid ignored SIGTERM for 30 s; killing it and its workers (${kids[*]})" >&2
      kill -KILL "$pid" "${kids[@]}" 2>/dev/null || true
    fi
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$dir/neutron.pid"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) usage ;;
esac
