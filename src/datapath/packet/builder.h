#pragma once
// Builds frames layer by layer, filling lengths and checksums at the end:
// what tests write packets with, and what the datapath will answer with
// (ARP replies, ICMP errors, DHCP).
//
//   auto frame = PacketBuilder()
//                    .eth(vm_mac, router_mac)
//                    .ipv4(Ipv4Address::of(10, 0, 0, 5), Ipv4Address::of(10, 0, 1, 7))
//                    .udp(1000, 53)
//                    .payload("hello")
//                    .build();
//
// describe() gives one line for test failure messages.
// Thread-safety: a builder belongs to one thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "datapath/packet/wire.h"

namespace canopy::datapath::packet {

class PacketBuilder {
 public:
  PacketBuilder& eth(MacAddress src, MacAddress dst);
  PacketBuilder& vlan(uint16_t vid);
  PacketBuilder& arp(uint16_t operation, MacAddress sender_mac, Ipv4Address sender_ip,
                     MacAddress target_mac, Ipv4Address target_ip);
  PacketBuilder& ipv4(Ipv4Address src, Ipv4Address dst, uint8_t ttl = 64);
  PacketBuilder& ipv6(const Ipv6Address& src, const Ipv6Address& dst, uint8_t hop_limit = 64);
  // After ipv4(): fragment fields (offset in bytes, a multiple of 8).
  PacketBuilder& fragment(uint16_t offset_bytes, bool more_fragments);
  PacketBuilder& dontFragment();
  PacketBuilder& udp(uint16_t src_port, uint16_t dst_port);
  PacketBuilder& tcp(uint16_t src_port, uint16_t dst_port, uint8_t flags, uint32_t seq = 0,
                     uint32_t ack = 0);
  // ICMP for IPv4, ICMPv6 for IPv6 (echo fields in the rest of the header).
  PacketBuilder& icmp(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t sequence = 0);
  PacketBuilder& payload(std::string_view bytes);
  PacketBuilder& payload(std::span<const uint8_t> bytes);

  std::vector<uint8_t> build() const;
  std::string describe() const;

 private:
  enum class Layer : uint8_t { Eth, Vlan, Arp, Ipv4, Ipv6, Udp, Tcp, Icmp };
  struct Part {
    Layer layer;
    size_t offset;  // in bytes_
    size_t size;
  };
  void add(Layer layer, const void* header, size_t size);
  const Part* find(Layer layer) const;

  std::vector<uint8_t> bytes_;
  std::vector<Part> parts_;
  std::string description_;
};

}  // namespace canopy::datapath::packet
