"""A rogue router advertisement from a test VM: fd00:bad::/64 for SLAAC, to
all nodes on IFACE (argv[1]). Port security must stop it."""
import socket
import struct
import sys

iface = sys.argv[1]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
prefix = socket.inet_pton(socket.AF_INET6, "fd00:bad::")
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
ra += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0) + prefix
s.sendto(ra, ("ff02::1", 0, 0, socket.if_nametoindex(iface)))
