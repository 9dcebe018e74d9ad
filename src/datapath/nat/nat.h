#pragma once
// Network address translation on frames, for floating IPs (1:1, on the VM's
// host) and router SNAT (port masquerading, on the gateway host):
//
// - rewrite: changes an IPv4 packet's source or destination address and
//   TCP/UDP port (or ICMP echo identifier) in place, updating the IPv4,
//   TCP, UDP and ICMP checksums incrementally (RFC 1624);
// - PortAllocator: the SNAT ports of each external address and protocol,
//   one per connection, given back when the connection ends; running out
//   is a named drop, never a reuse.
//
//   rewriteIpv4(frame, parsed, Side::Source, floating_ip, std::nullopt);
//   auto port = ports.allocate(gateway_ip, ipproto::kTcp);
//   if (!port) drop(DropReason::NatPortsExhausted);
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
// Returns a drop reason if the packet cannot be translated.
DropReason rewriteIpv4(std::span<uint8_t> frame, const packet::ParsedPacket& p, Side side,
                       packet::Ipv4Address address, std::optional<uint16_t> port) noexcept;

class PortAllocator {
 public:
  PortAllocator(uint16_t first = 1024, uint16_t last = 65535) : first_(first), last_(last) {}

  // A free port of `external` for `protocol`, or nullopt when all are taken.
  std::optional<uint16_t> allocate(packet::Ipv4Address external, uint8_t protocol);
  void release(packet::Ipv4Address external, uint8_t protocol, uint16_t port);
  size_t inUse(packet::Ipv4Address external, uint8_t protocol) const;
  uint64_t exhausted() const noexcept { return exhausted_; }

 private:
  struct Pool {
    std::vector<bool> used;
    size_t count = 0;
    size_t next = 0;  // where the search resumes
  };
  Pool& pool(packet::Ipv4Address external, uint8_t protocol);

  uint16_t first_, last_;
  std::map<std::pair<uint32_t, uint8_t>, Pool> pools_;
  uint64_t exhausted_ = 0;
};

}  // namespace canopy::datapath::nat
