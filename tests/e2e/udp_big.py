"""Datagrams larger than the MTU, fragmented by the sender's kernel:

    python3 udp_big.py serve PORT        answers datagrams with 4000 bytes
    python3 udp_big.py ask ADDRESS PORT  sends 4000 bytes (a few times) and
                                         prints the size of the answer

Both ends bounded in time (15 s)."""
import socket
import sys

SIZE = 4000
family = socket.AF_INET6 if ":" in "".join(sys.argv[2:]) or sys.argv[1] == "serve6" else socket.AF_INET

if sys.argv[1] in ("serve", "serve6"):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", int(sys.argv[2])))
    s.settimeout(15)
    data, peer = s.recvfrom(65535)
    print(len(data), flush=True)
    # Every query answered (the client asks again until an answer comes: an
    # IPv6 server learns a smaller path MTU from the first answer's "packet
    # too big"), until the client has been quiet for 3 s.
    s.settimeout(3)
    try:
        for _ in range(20):
            s.sendto(b"a" * SIZE, peer)
            data, peer = s.recvfrom(65535)
    except socket.timeout:
        pass
else:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(2)
    for _ in range(7):
        s.sendto(b"q" * SIZE, (sys.argv[2], int(sys.argv[3])))
        try:
            print(len(s.recvfrom(65535)[0]))
            break
        except socket.timeout:
            continue
    else:
        print("no answer")
