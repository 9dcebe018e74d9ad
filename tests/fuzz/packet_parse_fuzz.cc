// Fuzzes the L2-L4 parser with arbitrary frames: it must never read out of
// bounds (ASan), and what it reports must lie inside the frame.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

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
  }
  (void)canopy::datapath::packet::flowKeyHash(p.key);
  return 0;
}
