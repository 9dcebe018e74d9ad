#pragma once
// The L2-L4 parser: turns a frame into a FlowKey plus the offsets of its
// layers, or names why the frame is dropped. Every read is bounds-checked
// first (wire.h load()); nothing is cast out of the frame.
//
//   ParsedPacket p;
//   DropReason why = parse(frame, p);
//   if (why != DropReason::None) { counters.drop(why); return; }
//   use(p.key, p.l4_offset);
//
// Thread-safety: pure functions.

#include <cstdint>
#include <span>
#include <type_traits>

#include "datapath/packet/drop_reason.h"
#include "datapath/packet/wire.h"

namespace canopy::datapath::packet {

enum class Fragment : uint8_t {
  None,   // not a fragment
  First,  // offset 0, more to come: L4 header present
  Later,  // offset > 0: no L4 header
};

// The fields that decide a packet's fate, in a fixed layout with no padding
// bytes: zero-filled, compared and hashed as bytes. Changing it means
// changing parse() in parser.cc and flowKeyHash().
struct FlowKey {
  uint32_t in_port = 0;   // the logical ingress, set by the caller
  uint16_t eth_type = 0;  // host order, after any VLAN tag
  uint16_t vlan_tci = 0;  // 0: untagged
  MacAddress eth_src;
  MacAddress eth_dst;
  uint8_t ip_proto = 0;
  uint8_t ip_tos = 0;
  uint8_t ip_ttl = 0;
  Fragment ip_frag = Fragment::None;
  // IPv6 addresses, or IPv4 ones in the first four bytes (ARP: sender and
  // target protocol addresses).
  std::array<uint8_t, 16> ip_src{};
  std::array<uint8_t, 16> ip_dst{};
  uint16_t tp_src = 0;  // TCP/UDP port; ICMP type; ARP operation
  uint16_t tp_dst = 0;  // TCP/UDP port; ICMP code
  uint8_t tcp_flags = 0;
  uint8_t reserved = 0;
  uint16_t icmp_id = 0;  // ICMP/ICMPv6 echo identifier

  friend bool operator==(const FlowKey& a, const FlowKey& b) { return sameBytes(a, b); }
};
static_assert(sizeof(FlowKey) == 64);
static_assert(std::has_unique_object_representations_v<FlowKey>, "no padding bytes");

struct ParsedPacket {
  FlowKey key;
  uint16_t l3_offset = 0;       // after Ethernet and any VLAN tag
  uint16_t l3_end = 0;          // end of the IP packet (Ethernet padding excluded)
  uint16_t l4_offset = 0;       // 0: no L4 header (ARP, later fragments, unknown)
  uint16_t payload_offset = 0;  // after the L4 header; 0 if none
  // A fragment's datagram identification (IPv4's 16 bits, IPv6's 32).
  uint32_t fragment_id = 0;
  // A later fragment whose flow fields (ports, ICMP type and identifier)
  // are its first fragment's (conntrack/fragments.h), not its own.
  bool fragment_ports = false;
};

// Parses `frame` (Ethernet first). Unknown ethertypes and IP protocols are
// not drops: they parse as far as known.
DropReason parse(std::span<const uint8_t> frame, ParsedPacket& out) noexcept;

// A hash of all of a key's bytes (FNV-1a over 64-bit words).
uint64_t flowKeyHash(const FlowKey& key) noexcept;

}  // namespace canopy::datapath::packet
