// Fuzzes the DHCP parser: no out-of-bounds read, option views inside the
// message, and a reply can always be written for what parsed.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "datapath/packet/dhcp.h"

using canopy::datapath::DropReason;
namespace packet = canopy::datapath::packet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> payload(data, size);
  packet::DhcpMessage m;
  if (packet::parseDhcp(payload, m) != DropReason::None) return 0;
  for (auto view : {m.parameter_requests, m.client_id, m.host_name}) {
    if (!view.empty() && (view.data() < data || view.data() + view.size() > data + size)) {
      std::abort();
    }
  }
  packet::DhcpOptions o;
  o.addByte(packet::dhcp::kMessageType, packet::dhcp::kNak);
  if (packet::dhcpReply(m, {}, {}, o).size() < 300) std::abort();
  return 0;
}
