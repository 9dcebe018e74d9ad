"""An access port of a VLAN, for test worlds whose kernel has no VLAN
devices nor bridge VLAN filtering: frames tagged VID on TRUNK leave ACCESS
untagged; frames from ACCESS enter TRUNK tagged. The kernel takes received
tags out of frames and tells them beside (PACKET_AUXDATA), as it does for
canopy-agent.

    python3 vlan_access.py TRUNK ACCESS VID SECONDS
"""
import select
import socket
import struct
import sys
import time

SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
TP_STATUS_VLAN_VALID = 1 << 4
ETH_P_ALL = 3

trunk_name, access_name, vid, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])


def open_socket(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.bind((name, ETH_P_ALL))
    return s


def tag_of(ancillary):
    for level, kind, data in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= 20:
            status, _, _, _, _, tci = struct.unpack_from("IIIHHH", data)
            if status & TP_STATUS_VLAN_VALID or tci:
                return tci
    return None


trunk, access = open_socket(trunk_name), open_socket(access_name)
end = time.monotonic() + seconds
while time.monotonic() < end:
    ready, _, _ = select.select([trunk, access], [], [], 0.5)
    for s in ready:
        frame, ancillary, _, _ = s.recvmsg(65600, socket.CMSG_SPACE(32))
        tci = tag_of(ancillary)
        if s is trunk:
            if tci is None and frame[12:14] == b"\x81\x00":
                tci = struct.unpack_from("!H", frame, 14)[0]
                frame = frame[:12] + frame[16:]
            if tci is not None and tci & 0x0FFF == vid:
                access.send(frame)
        elif tci is None:
            trunk.send(frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:])
