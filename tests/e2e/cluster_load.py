#!/usr/bin/env python3
"""Writes to every replica of a Canopy cluster at once and records what each
acknowledged, so that a test can check, after failures, that nothing
acknowledged was lost and nothing was given twice.

cluster_load.py OUT.json SECONDS MAX_OPS NETWORK_ID URL [URL...]

Threads, one per URL to start with, create ports on NETWORK_ID (admin,
noauth), delete some of those they created, and now and then create a
network (its VNI must be unique). A request that fails goes to the next
replica. Every request has a timeout; the run is bounded by SECONDS and
MAX_OPS. OUT.json gets: created ports {id, ip, mac}, deleted port ids, ports whose
delete has an unknown outcome (maybe_deleted), networks {id, vni}, and
"unknown" (requests whose outcome was not seen: a timeout or a dropped
connection after sending, or a 503), and the errors counted.
"""
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request

out_path, seconds, max_ops, network = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
urls = sys.argv[5:]
deadline = time.monotonic() + seconds
lock = threading.Lock()
ops = 0
result = {"created": [], "deleted": [], "maybe_deleted": [], "networks": [], "unknown": 0,
          "errors": {},
          "by_replica": {u: 0 for u in urls}}


def call(url, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
        return r.status, (json.loads(text) if text else None)


def note_error(kind):
    with lock:
        result["errors"][kind] = result["errors"].get(kind, 0) + 1


def worker(first):
    global ops
    mine = []
    index = first
    rng = random.Random(first)
    while time.monotonic() < deadline:
        with lock:
            if ops >= max_ops:
                return
            ops += 1
        url = urls[index % len(urls)]
        roll = rng.random()
        deleting = None  # a port whose delete is in flight
        try:
            if roll < 0.03:
                status, body = call(url, "POST", "/v2.0/networks", {"network": {"name": "load"}})
                if status == 201:
                    n = body["network"]
                    with lock:
                        result["networks"].append({"id": n["id"],
                                                   "vni": n.get("provider:segmentation_id")})
                        result["by_replica"][url] += 1
            elif (roll < 0.30 or len(mine) > 100) and mine:  # within the project's quota
                port = mine.pop(rng.randrange(len(mine)))
                deleting = port
                status, _ = call(url, "DELETE", "/v2.0/ports/" + port)
                if status == 204:
                    with lock:
                        result["deleted"].append(port)
                        result["by_replica"][url] += 1
            else:
                status, body = call(url, "POST", "/v2.0/ports", {"port": {"network_id": network}})
                if status == 201:
                    p = body["port"]
                    mine.append(p["id"])
                    with lock:
                        result["created"].append({"id": p["id"], "mac": p["mac_address"],
                                                  "ip": p["fixed_ips"][0]["ip_address"]})
                        result["by_replica"][url] += 1
        except urllib.error.HTTPError as e:
            note_error(f"http {e.code}")
            with lock:
                samples = result.setdefault("samples", {}).setdefault(str(e.code), [])
                if len(samples) < 3:
                    samples.append(e.read().decode(errors="replace")[:300])
            if e.code >= 500:
                index += 1  # this replica is in trouble: the next one
                if deleting:  # 503: the store did not say whether it happened
                    with lock:
                        result["maybe_deleted"].append(deleting)
            time.sleep(0.05)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            # Refused: nothing was sent. Anything else may have been applied.
            reason = getattr(e, "reason", e)
            if isinstance(reason, ConnectionRefusedError):
                note_error("refused")
            else:
                note_error("unknown outcome")
                with lock:
                    result["unknown"] += 1
                    result.setdefault("unknown_ops", []).append(
                        {"delete": deleting} if deleting else {"write": url, "error": str(reason)})
                    if deleting:
                        result["maybe_deleted"].append(deleting)
            index += 1
            time.sleep(0.05)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(urls))]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(out_path, "w") as f:
    json.dump(result, f)
print(f"load: {len(result['created'])} ports created, {len(result['deleted'])} deleted, "
      f"{len(result['networks'])} networks, errors {result['errors']}, "
      f"by replica {list(result['by_replica'].values())}")
