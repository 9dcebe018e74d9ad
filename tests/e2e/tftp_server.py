#!/usr/bin/env python3
"""A read-only TFTP server (RFC 1350) for the end-to-end tests: answers each
read request from a new port of its own (in a thread of its own), as TFTP servers do (which is what a
NAT must expect), in 512-byte blocks, each resent until acknowledged.

    tftp_server.py ADDRESS DIRECTORY LIFETIME_SECONDS

It ends after LIFETIME_SECONDS whatever happens (bounded, like every load
loop of the tests)."""
import os
import socket
import struct
import sys
import threading
import time

address, directory, lifetime = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + lifetime
listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
listener.bind((address, 69))


def error(sock, peer, code, text):
    sock.sendto(struct.pack("!HH", 5, code) + text.encode() + b"\0", peer)


def serve(request, peer):
    fields = request[2:].split(b"\0")
    name = os.path.basename(fields[0].decode(errors="replace"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))  # the transfer's own port
    sock.settimeout(1.0)
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        error(sock, peer, 1, "File not found")
        return
    data = open(path, "rb").read()
    block = 1
    while time.monotonic() < deadline:
        chunk = data[(block - 1) * 512:block * 512]
        for _ in range(5):
            sock.sendto(struct.pack("!HH", 3, block & 0xFFFF) + chunk, peer)
            try:
                reply, sender = sock.recvfrom(1024)
            except socket.timeout:
                continue
            if sender == peer and reply[:2] == b"\0\4" and \
                    struct.unpack("!H", reply[2:4])[0] == block & 0xFFFF:
                break
        else:
            return  # the client went away
        if len(chunk) < 512:
            print(f"sent {name} to {peer[0]}:{peer[1]}", flush=True)
            return
        block += 1


while time.monotonic() < deadline:
    listener.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        request, peer = listener.recvfrom(1024)
    except socket.timeout:
        break
    if request[:2] == b"\0\1":
        # Each transfer on its own (an abandoned one keeps retrying a while).
        threading.Thread(target=serve, args=(request, peer), daemon=True).start()
