// Fuzzes the DHCPv6 parser and the server's answer: no out-of-bounds read,
// identifier views inside the message, and an answer (or none) for every
// message that parsed.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "datapath/packet/builder.h"
#include "datapath/packet/dhcpv6.h"
#include "datapath/packet/parser.h"
#include "datapath/simulator/replies.h"

using canopy::IpAddress;
using canopy::datapath::DropReason;
namespace packet = canopy::datapath::packet;
namespace simulator = canopy::datapath::simulator;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> payload(data, size);
  packet::Dhcpv6Message m;
  if (packet::parseDhcpv6(payload, m) != DropReason::None) return 0;
  for (auto view : {m.client_id, m.server_id}) {
    if (!view.empty() && (view.data() < data || view.data() + view.size() > data + size)) {
      std::abort();
    }
  }
  // The answer of a server with one address, as the simulator asks it.
  const packet::MacAddress client{{0xfa, 0x16, 0x3e, 0, 0, 1}};
  const packet::MacAddress server{{0xfa, 0x16, 0x3e, 0, 0, 2}};
  auto frame = packet::PacketBuilder()
                   .eth(client, {{0x33, 0x33, 0, 1, 0, 2}})
                   .ipv6(packet::Ipv6Address::of(simulator::linkLocalOf(client)),
                         packet::Ipv6Address::of(*IpAddress::parse("ff02::1:2")))
                   .udp(546, 547)
                   .payload(payload)
                   .build();
  packet::ParsedPacket parsed;
  if (packet::parse(frame, parsed) != DropReason::None) return 0;  // too long for a frame
  const std::vector<IpAddress> addresses{*IpAddress::parse("fd00::5")};
  const std::vector<IpAddress> dns{*IpAddress::parse("fd00::53")};
  auto answer = simulator::dhcpv6Answer(m, parsed, server, addresses, dns, "example.org.", 86400);
  if (!answer.frame.empty()) {
    packet::ParsedPacket reply;
    if (packet::parse(answer.frame, reply) != DropReason::None) std::abort();
    if (reply.key.tp_src != 547 || reply.key.tp_dst != 546) std::abort();
  }
  return 0;
}
