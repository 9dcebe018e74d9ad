#!/usr/bin/env bash
# Horizon on Canopy: Debian's openstack-dashboard, served on loopback against
# Keystone with canopy-server as the network endpoint, driven by headless
# Chromium (horizon_drive.py) as a member: network with a subnet, a port, a
# router with a gateway and an interface, a floating IP, a security group
# with a rule and the network topology, created, edited and deleted through
# the forms, with no error on any page. Usage: horizon_test.sh BIN_DIR
bin=${1:?usage: horizon_test.sh BIN_DIR}
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/keystone.sh"
for program in uwsgi chromium chromedriver; do
  command -v $program >/dev/null || fail "$program is not installed (scripts/install-deps.sh)"
done
[ -d /usr/share/openstack-dashboard ] || fail "openstack-dashboard is not installed (scripts/install-deps.sh)"

start_keystone 3600
start_canopy_keystone "$bin"
# The operator's external network, as a cloud has it.
admin network create --external --provider-network-type flat --provider-physical-network public \
  public >/dev/null
admin subnet create --network public --subnet-range 172.24.4.0/24 --no-dhcp public-sub >/dev/null

# Horizon as Debian installs it, with the settings of this test on top.
mkdir -p "$work/horizon"
cat >"$work/horizon/canopy_horizon.py" <<PY
from openstack_dashboard.settings import *  # noqa: F403
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
SECRET_KEY = "canopy-e2e-horizon"
OPENSTACK_KEYSTONE_URL = "$ks_url"
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PY
cat >"$work/horizon/wsgi.py" <<PY
import os
import sys
sys.path.insert(0, "/usr/share/openstack-dashboard")
os.environ["DJANGO_SETTINGS_MODULE"] = "canopy_horizon"
from django.core.wsgi import get_wsgi_application  # noqa: E402
application = get_wsgi_application()
PY
hz_url="http://127.0.0.1:$(free_port)"
uwsgi --plugin python3 --http-socket "${hz_url#http://}" --pythonpath "$work/horizon" \
  --wsgi-file "$work/horizon/wsgi.py" --static-map /static=/var/lib/openstack-dashboard/static \
  --master --processes 1 --threads 4 --die-on-term >"$work/horizon.log" 2>&1 &
server_pids+=($!)
for _ in $(seq 1 150); do
  curl -sf -o /dev/null "$hz_url/auth/login/" && break
  kill -0 "${server_pids[-1]}" 2>/dev/null || fail "horizon exited: $(tail -n 30 "$work/horizon.log")"
  sleep 0.2
done
curl -sf -o /dev/null "$hz_url/auth/login/" || fail "horizon did not start: $(tail -n 30 "$work/horizon.log")"

shots=${CANOPY_E2E_SCREENSHOTS:-$work}
"$py" "$(dirname "$0")/horizon_drive.py" "$hz_url" alice alice-pw "$shots" ||
  fail "horizon's last requests: $(grep -E '^\[pid' "$work/horizon.log" | tail -n 5)"

# Everything the member made through Horizon is gone again.
[ "$(alice network list -f value -c Name)" = public ] || fail "a network is left"
for kind in port router "floating ip"; do
  left=$(alice $kind list -f value -c ID)
  [ -z "$left" ] || fail "a $kind is left after Horizon deleted it: $left"
done
[ "$(alice security group list -f value -c Name)" = default ] || fail "a security group is left"
# Neither Horizon nor the browser saw a server error.
! grep -E 'HTTP/1.1 5[0-9][0-9]' "$work/horizon.log" || fail "horizon answered a server error"
stop_server
echo "e2e.horizon: all checks passed"
