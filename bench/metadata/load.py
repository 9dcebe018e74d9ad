#!/usr/bin/env python3
"""HTTP load on the metadata service from inside one guest (or on any
HTTP server): CONNECTIONS connections (kept alive where the server allows),
each sending GETs one after another for SECONDS; prints one JSON line:
requests, errors, and every latency in microseconds (for the caller to
merge across guests).

    load.py CONNECTIONS SECONDS PATH [HOST [PORT]]
"""
import http.client
import json
import sys
import threading
import time

connections, seconds, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
host = sys.argv[4] if len(sys.argv) > 4 else "169.254.169.254"
port = int(sys.argv[5]) if len(sys.argv) > 5 else 80
deadline = time.monotonic() + seconds
latencies = []
errors = [0]
lock = threading.Lock()


def worker():
    mine = []
    failed = 0
    conn = http.client.HTTPConnection(host, port, timeout=5)
    while time.monotonic() < deadline:
        start = time.monotonic()
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                failed += 1
                continue
        except Exception:
            failed += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=5)
            continue
        mine.append(int((time.monotonic() - start) * 1e6))
    with lock:
        latencies.extend(mine)
        errors[0] += failed


threads = [threading.Thread(target=worker) for _ in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"requests": len(latencies), "errors": errors[0], "latencies": latencies}))
