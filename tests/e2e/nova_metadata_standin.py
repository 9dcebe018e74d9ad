#!/usr/bin/env python3
"""Nova's metadata API as the metadata proxy meets it, for end-to-end tests
without a Nova: checks X-Instance-ID-Signature (HMAC-SHA256 of X-Instance-ID
with the shared secret) as nova-api-metadata does, refuses a bad one with
403, and answers with what it was told, so the test sees what the proxy
sent.

    nova_metadata_standin.py PORT SECRET_FILE
"""
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port = int(sys.argv[1])
secret = open(sys.argv[2], "rb").read().strip()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        instance = self.headers.get("X-Instance-ID", "")
        signature = self.headers.get("X-Instance-ID-Signature", "")
        expected = hmac.new(secret, instance.encode(), hashlib.sha256).hexdigest()
        if not instance or not hmac.compare_digest(signature, expected):
            self.send_response(403)
            self.end_headers()
            self.wfile.write(b"bad signature")
            return
        body = json.dumps({
            "path": self.path,
            "instance_id": instance,
            "tenant_id": self.headers.get("X-Tenant-ID", ""),
            "forwarded_for": self.headers.get("X-Forwarded-For", ""),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
