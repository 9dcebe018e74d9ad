#pragma once
// Network address translation on frames, for floating IPs (1:1, on the VM's
// host) and router SNAT (port masquerading, on the gateway host):
//
// - rewrite: changes an IPv4 or IPv6 packet's source or destination
//   address and TCP/UDP port (or ICMP echo identifier) in place, updating
//   the IPv4, TCP, UDP, ICMP and ICMPv6 checksums incrementally (RFC 1624);
//   an ICMP error's quoted packet is translated with it (RFC 5508 section
//   4.2);
// - PortAllocator: the SNAT ports of each external address and protocol,
//   one per connection, given back when the connection ends; running out
//   is a named drop, never a reuse.
//
//   rewriteIpv4(frame, parsed, Side::Source, floating_ip, std::nullopt);
//   auto port = ports.allocate(gateway_ip, ipproto::kTcp);
//   if (!port) drop(DropReason::NatPortsExhausted);
//
// Router SNAT's per-connection state is SnatTable (snat_table.h).
//
// Thread-safety: rewrite functions are pure on their frame; an allocator
// belongs to one thread.

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "datapath/packet/drop_reason.h"
#include "datapath/packet/parser.h"

namespace canopy::datapath::nat {

enum class Side : uint8_t { Source, Destination };

// Rewrites the address (and, if given, the port or echo identifier) on one
// side of a parsed IPv4 packet. Later fragments change the address only.
//
// An ICMP error (isIcmpv4Error) quotes the packet it is about as that
// packet's sender sent it, so the quote's other side changes with the outer
// one: a new outer Source is also the quote's Destination, a new outer
// Destination the quote's Source. `port` then applies to the quote only
// (its port or echo identifier on that side); the quoted IPv4, UDP, ICMP
// and, when its checksum lies within the quote, TCP checksums are updated,
// and the outer ICMP checksum that covers them all.
//
// Returns a drop reason if the packet cannot be translated, before any byte
// has changed: NatNotIpv4, Ipv4Truncated, NatBadIcmpQuote.
// Precondition: `p` is parse()'s result for this frame.
DropReason rewriteIpv4(std::span<uint8_t> frame, const packet::ParsedPacket& p, Side side,
                       packet::Ipv4Address address, std::optional<uint16_t> port) noexcept;

// The same for IPv6, which has no header checksum but whose TCP, UDP and
// ICMPv6 checksums cover the addresses; an ICMPv6 error's quote is
// translated with it (its outer checksum covers both). Returns NatNotIpv6,
// Ipv6Truncated or NatBadIcmpQuote before any byte has changed.
DropReason rewriteIpv6(std::span<uint8_t> frame, const packet::ParsedPacket& p, Side side,
                       packet::Ipv6Address address, std::optional<uint16_t> port) noexcept;

// Either, by the packet's version; NatFamilyMismatch if `address` is of
// the other one.
DropReason rewriteIp(std::span<uint8_t> frame, const packet::ParsedPacket& p, Side side,
                     const IpAddress& address, std::optional<uint16_t> port) noexcept;

// The ICMPv4 messages that quote the packet they report on (RFC 792):
// destination unreachable, source quench, redirect, time exceeded,
// parameter problem.
constexpr bool isIcmpv4Error(uint16_t type) noexcept {
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

// The ICMPv6 messages that quote the packet they report on (RFC 4443):
// destination unreachable, packet too big, time exceeded, parameter problem.
constexpr bool isIcmpv6Error(uint16_t type) noexcept { return type >= 1 && type <= 4; }

// Where the packet that an ICMPv4 or ICMPv6 error quotes lies in the frame.
// All offsets are into the frame; the quote holds a whole IP header (for
// IPv6 with its extension headers) and at least 8 bytes after it (the
// ports, or an ICMP header's first half).
struct IcmpQuote {
  uint16_t ip_offset = 0;
  uint16_t l4_offset = 0;
  uint16_t end = 0;  // the end of the quote: the outer packet's end
  uint8_t protocol = 0;
  bool later_fragment = false;  // what follows the header is not an L4 header
};

// Finds the quote of a parsed ICMPv4 or ICMPv6 error; NatBadIcmpQuote if
// the packet is no such error or its quote is too short or of the other
// version.
DropReason icmpQuote(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                     IcmpQuote& out) noexcept;

// Ports first-last (inclusive): the ones a translation may take (a host's
// lease, with distributed SNAT).
struct PortRange {
  uint16_t first = 1024;
  uint16_t last = 65535;

  bool contains(uint16_t port) const noexcept { return port >= first && port <= last; }
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

class PortAllocator {
 public:
  PortAllocator(uint16_t first = 1024, uint16_t last = 65535) : first_(first), last_(last) {}

  // A free port of `external` for `protocol` within `range` (and the
  // allocator's own), or nullopt when all are taken (counted in
  // exhausted()). May throw std::bad_alloc on an address's first port, as
  // may claim().
  std::optional<uint16_t> allocate(packet::Ipv4Address external, uint8_t protocol,
                                   PortRange range = {});
  // Takes `port` itself if it is in the range and free (SNAT keeps a
  // connection's source port when it can); false otherwise, not counted.
  bool claim(packet::Ipv4Address external, uint8_t protocol, uint16_t port);
  // One more holder of a taken `port` (a helper's expected connection shares
  // its master's port); false if it is not taken or has too many holders.
  bool retain(packet::Ipv4Address external, uint8_t protocol, uint16_t port);
  // One holder fewer: the port is free when it has none.
  void release(packet::Ipv4Address external, uint8_t protocol, uint16_t port) noexcept;
  size_t inUse(packet::Ipv4Address external, uint8_t protocol) const;
  uint64_t exhausted() const noexcept { return exhausted_; }

 private:
  struct Pool {
    std::vector<uint8_t> used;  // holders per port
    size_t count = 0;
    size_t next = 0;  // where the search resumes
  };
  Pool& pool(packet::Ipv4Address external, uint8_t protocol);

  uint16_t first_, last_;
  std::map<std::pair<uint32_t, uint8_t>, Pool> pools_;
  uint64_t exhausted_ = 0;
};

}  // namespace canopy::datapath::nat
