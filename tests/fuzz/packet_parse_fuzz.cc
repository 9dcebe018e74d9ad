// Fuzzes the L2-L4 parser with arbitrary frames: it must never read out of
// bounds (ASan), and what it reports must lie inside the frame. IPv4
// packets are also cut into fragments (packet/fragment.h): each parses, fits
// the MTU, and together they carry the packet's payload.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "datapath/packet/fragment.h"
#include "datapath/packet/parser.h"

using canopy::datapath::DropReason;
using canopy::datapath::packet::ParsedPacket;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> frame(data, size);
  ParsedPacket p;
  DropReason why = canopy::datapath::packet::parse(frame, p);
  if (why == DropReason::None) {
    size_t end = p.l3_end;
    bool inside = end <= size && p.l3_offset <= end && p.l4_offset <= end &&
                  p.payload_offset <= end && (p.l4_offset == 0 || p.l4_offset >= p.l3_offset) &&
                  (p.payload_offset == 0 || p.payload_offset >= p.l4_offset);
    if (!inside) std::abort();
    for (uint16_t mtu : {uint16_t{68}, uint16_t{576}, uint16_t{1280}}) {
      size_t carried = 0;
      auto pieces = canopy::datapath::packet::fragmentIpv4(frame, p, mtu);
      for (const auto& f : pieces) {
        ParsedPacket q;
        if (canopy::datapath::packet::parse(f, q) != DropReason::None) std::abort();
        if (static_cast<size_t>(q.l3_end - q.l3_offset) > mtu) std::abort();
        carried += q.l3_end - q.l3_offset - 20u;
      }
      if (!pieces.empty() && carried != p.l3_end - p.l3_offset - 20u) std::abort();
    }
  }
  (void)canopy::datapath::packet::flowKeyHash(p.key);
  return 0;
}
