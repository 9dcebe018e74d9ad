#pragma once
// One line for a frame, in tcpdump's manner: Ethernet, then ARP or IPv4 and
// its transport (TCP flags, ICMP type/code, DHCP message type). For traces,
// golden files and failure messages.
//
//   describeFrame(frame)  // "fa:16:3e:00:00:01 > ff:ff:ff:ff:ff:ff arp who-has 10.0.0.1
//   tell 10.0.0.5"
//
// Thread-safety: a pure function.

#include <cstdint>
#include <span>
#include <string>

namespace canopy::datapath::packet {

std::string describeFrame(std::span<const uint8_t> frame);

}  // namespace canopy::datapath::packet
