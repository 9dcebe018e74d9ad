#pragma once
// Which flow a fragmented datagram's later fragments belong to. Only the
// first fragment carries the L4 header (ports, ICMP type and identifier);
// the later ones name their datagram by addresses, protocol and
// identification (RFC 791, RFC 8200 4.5). The first fragment's flow fields
// are remembered under that name, so that later fragments are decided by
// conntrack, security groups and NAT as their first fragment was (OVS and
// Linux reassemble for the same reason; Canopy keeps the fragments and
// forwards each as it comes). A later fragment that comes before its first
// (or long after) has no flow: the datapath drops it, counted.
//
//   FragmentTable t;
//   if (p.key.ip_frag == Fragment::First) t.remember(p, now);
//   if (p.key.ip_frag == Fragment::Later && !t.fill(p, now)) drop(...);
//
// Thread-safety: none; the caller locks (SharedState).

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>

#include "base/clock.h"
#include "datapath/packet/parser.h"

namespace canopy::datapath::conntrack {

class FragmentTable {
 public:
  explicit FragmentTable(size_t capacity = 8192,
                         std::chrono::seconds lifetime = std::chrono::seconds(30))
      : capacity_(capacity), lifetime_(lifetime) {}

  // A first fragment: its flow fields under its datagram's name (the
  // oldest datagram forgotten when full).
  void remember(const packet::ParsedPacket& p, SteadyTime now);
  // A later fragment: its first fragment's flow fields put in its key
  // (p.fragment_ports set); false if the table does not know its datagram.
  bool fill(packet::ParsedPacket& p, SteadyTime now) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Name {
    uint16_t eth_type = 0;
    uint8_t protocol = 0;
    uint32_t id = 0;
    std::array<uint8_t, 16> src{};
    std::array<uint8_t, 16> dst{};
    friend auto operator<=>(const Name&, const Name&) = default;
  };
  struct Flow {
    uint16_t tp_src = 0;
    uint16_t tp_dst = 0;
    uint16_t icmp_id = 0;
    SteadyTime expires{};
  };
  static Name nameOf(const packet::ParsedPacket& p);

  size_t capacity_;
  std::chrono::seconds lifetime_;
  std::map<Name, Flow> entries_;
  std::deque<std::pair<Name, SteadyTime>> order_;  // by when remembered
};

}  // namespace canopy::datapath::conntrack
