#pragma once
// IPv4 fragmentation as a router does it (RFC 791 3.2, RFC 1812 5.2.6): a
// packet without DF that is larger than the next hop's MTU leaves as
// fragments, each with the packet's header (identification, addresses,
// protocol), an offset and MF, and a payload of a multiple of 8 bytes but
// for the last. A packet that is itself a fragment is cut again, its offset
// and its MF kept. IPv6 routers never fragment (RFC 8200 5): they answer
// "packet too big" instead.
//
//   for (auto& f : fragmentIpv4(frame, parsed, 1400)) send(f);
//
// Thread-safety: pure functions.

#include <cstdint>
#include <span>
#include <vector>

#include "datapath/packet/parser.h"

namespace canopy::datapath::packet {

// The frames (link header as in `frame`) of `p`'s packet cut to `mtu`
// bytes of IP each; empty when it cannot be cut (not IPv4, DF set, IP
// options, or an MTU too small to carry the L4 header in the first).
std::vector<std::vector<uint8_t>> fragmentIpv4(std::span<const uint8_t> frame,
                                               const ParsedPacket& p, uint16_t mtu);

}  // namespace canopy::datapath::packet
