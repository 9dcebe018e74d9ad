// Fuzzes the tunnel header parsers (VXLAN, Geneve with options) and the
// inner frame behind them: no out-of-bounds read, and what they report lies
// inside the payload.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "datapath/packet/parser.h"
#include "datapath/packet/tunnel.h"

using canopy::datapath::DropReason;
namespace packet = canopy::datapath::packet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> payload(data, size);
  packet::TunnelInfo t;
  for (auto parser : {packet::parseVxlan, packet::parseGeneve}) {
    if (parser(payload, t) != DropReason::None) continue;
    if (t.inner_offset > size) std::abort();
    for (const auto& o : t.options()) {
      if (o.data.data() < data || o.data.data() + o.data.size() > data + size) std::abort();
    }
    packet::ParsedPacket p;
    (void)packet::parse(payload.subspan(t.inner_offset), p);
  }
  return 0;
}
