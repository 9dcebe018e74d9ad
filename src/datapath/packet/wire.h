#pragma once
// Wire formats, named after their RFCs: big-endian field types and the
// fixed-size headers of Ethernet (IEEE 802.3 / 802.1Q), ARP (RFC 826), IPv4
// (RFC 791), IPv6 (RFC 8200), ICMP (RFC 792), ICMPv6 (RFC 4443), UDP
// (RFC 768), TCP (RFC 9293), VXLAN (RFC 7348) and Geneve (RFC 8926).
//
// Headers are plain byte layouts with alignment 1: read them with load<T>()
// (which checks the length) into a local copy, never by casting a pointer
// into a frame.
//
//   Ipv4Header ip;
//   if (!load(frame, offset, ip)) return DropReason::Ipv4Truncated;
//   uint16_t total = ip.total_length.host();
//
// Thread-safety: value types.

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "base/ip.h"

namespace canopy::datapath::packet {

// A 16-bit big-endian field.
struct Be16 {
  uint8_t b[2] = {0, 0};

  static constexpr Be16 of(uint16_t host) {
    return Be16{{static_cast<uint8_t>(host >> 8), static_cast<uint8_t>(host)}};
  }
  constexpr uint16_t host() const { return static_cast<uint16_t>(b[0] << 8 | b[1]); }
  friend constexpr bool operator==(const Be16&, const Be16&) = default;
};
static_assert(sizeof(Be16) == 2 && alignof(Be16) == 1);

// A 32-bit big-endian field.
struct Be32 {
  uint8_t b[4] = {0, 0, 0, 0};

  static constexpr Be32 of(uint32_t host) {
    return Be32{{static_cast<uint8_t>(host >> 24), static_cast<uint8_t>(host >> 16),
                 static_cast<uint8_t>(host >> 8), static_cast<uint8_t>(host)}};
  }
  constexpr uint32_t host() const {
    return static_cast<uint32_t>(b[0]) << 24 | static_cast<uint32_t>(b[1]) << 16 |
           static_cast<uint32_t>(b[2]) << 8 | b[3];
  }
  friend constexpr bool operator==(const Be32&, const Be32&) = default;
};
static_assert(sizeof(Be32) == 4 && alignof(Be32) == 1);

struct MacAddress {
  std::array<uint8_t, 6> bytes{};

  static constexpr MacAddress broadcast() { return {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }
  constexpr bool isMulticast() const { return (bytes[0] & 1) != 0; }  // broadcast included
  constexpr bool isZero() const { return bytes == std::array<uint8_t, 6>{}; }
  std::string toString() const;
  friend constexpr auto operator<=>(const MacAddress&, const MacAddress&) = default;
};
static_assert(sizeof(MacAddress) == 6);

// An IPv4 address as it sits on the wire.
struct Ipv4Address {
  Be32 value;

  static constexpr Ipv4Address of(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return {Be32{{a, b, c, d}}};
  }
  // An IPv4 IpAddress's four bytes (the first four of any other).
  static constexpr Ipv4Address of(const IpAddress& a) {
    return {Be32{{a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]}}};
  }
  constexpr uint32_t host() const { return value.host(); }
  constexpr IpAddress ip() const {
    return IpAddress::v4(value.b[0], value.b[1], value.b[2], value.b[3]);
  }
  std::string toString() const;
  friend constexpr bool operator==(const Ipv4Address&, const Ipv4Address&) = default;
};
static_assert(sizeof(Ipv4Address) == 4);

struct Ipv6Address {
  std::array<uint8_t, 16> bytes{};
  static constexpr Ipv6Address of(const IpAddress& a) { return {a.bytes}; }
  constexpr IpAddress ip() const { return {6, bytes}; }
  std::string toString() const;
  friend constexpr auto operator<=>(const Ipv6Address&, const Ipv6Address&) = default;
};
static_assert(sizeof(Ipv6Address) == 16);

namespace ethertype {
inline constexpr uint16_t kIpv4 = 0x0800;
inline constexpr uint16_t kArp = 0x0806;
inline constexpr uint16_t kVlan = 0x8100;
inline constexpr uint16_t kQinQ = 0x88a8;
inline constexpr uint16_t kIpv6 = 0x86dd;
}  // namespace ethertype

namespace ipproto {
inline constexpr uint8_t kHopByHop = 0;
inline constexpr uint8_t kIcmp = 1;
inline constexpr uint8_t kTcp = 6;
inline constexpr uint8_t kUdp = 17;
inline constexpr uint8_t kRouting = 43;
inline constexpr uint8_t kFragment = 44;
inline constexpr uint8_t kEsp = 50;
inline constexpr uint8_t kAh = 51;
inline constexpr uint8_t kIcmpv6 = 58;
inline constexpr uint8_t kNoNext = 59;
inline constexpr uint8_t kDestinationOptions = 60;
}  // namespace ipproto

struct EthernetHeader {
  MacAddress dst;
  MacAddress src;
  Be16 type;
};
static_assert(sizeof(EthernetHeader) == 14);

// 802.1Q tag: what follows the TPID (0x8100) in place of the ethertype.
struct VlanTag {
  Be16 tci;  // PCP (3) | DEI (1) | VID (12)
  Be16 type;
};
static_assert(sizeof(VlanTag) == 4);

// ARP for IPv4 over Ethernet (the only kind a cloud network carries).
struct ArpPacket {
  Be16 hardware_type;       // 1
  Be16 protocol_type;       // 0x0800
  uint8_t hardware_length;  // 6
  uint8_t protocol_length;  // 4
  Be16 operation;           // 1 request, 2 reply
  MacAddress sender_mac;
  Ipv4Address sender_ip;
  MacAddress target_mac;
  Ipv4Address target_ip;
};
static_assert(sizeof(ArpPacket) == 28);

struct Ipv4Header {
  uint8_t version_ihl;  // version (4) | header length in 32-bit words
  uint8_t tos;
  Be16 total_length;
  Be16 id;
  Be16 flags_fragment;  // reserved | DF | MF | offset in 8-byte units
  uint8_t ttl;
  uint8_t protocol;
  Be16 checksum;
  Ipv4Address src;
  Ipv4Address dst;

  static constexpr uint16_t kDontFragment = 0x4000;
  static constexpr uint16_t kMoreFragments = 0x2000;
  static constexpr uint16_t kOffsetMask = 0x1fff;
  constexpr unsigned version() const { return version_ihl >> 4; }
  constexpr unsigned headerBytes() const { return (version_ihl & 0x0fu) * 4; }
};
static_assert(sizeof(Ipv4Header) == 20);

struct Ipv6Header {
  Be32 version_class_flow;  // version (6) | traffic class | flow label
  Be16 payload_length;
  uint8_t next_header;
  uint8_t hop_limit;
  Ipv6Address src;
  Ipv6Address dst;
};
static_assert(sizeof(Ipv6Header) == 40);

// The start every IPv6 extension header but the fragment header shares
// (hop-by-hop, routing, destination options): its length is
// (length + 1) * 8 bytes.
struct Ipv6ExtensionHeader {
  uint8_t next_header;
  uint8_t length;
};
static_assert(sizeof(Ipv6ExtensionHeader) == 2);

struct Ipv6FragmentHeader {
  uint8_t next_header;
  uint8_t reserved;
  Be16 offset_flags;  // offset in 8-byte units (13) | reserved (2) | M (1)
  Be32 id;
};
static_assert(sizeof(Ipv6FragmentHeader) == 8);

// ICMP and ICMPv6 share the first four bytes and a four-byte "rest of header"
// (echo: identifier and sequence).
struct IcmpHeader {
  uint8_t type;
  uint8_t code;
  Be16 checksum;
  Be16 id;
  Be16 sequence;
};
static_assert(sizeof(IcmpHeader) == 8);

struct UdpHeader {
  Be16 src_port;
  Be16 dst_port;
  Be16 length;
  Be16 checksum;
};
static_assert(sizeof(UdpHeader) == 8);

struct TcpHeader {
  Be16 src_port;
  Be16 dst_port;
  Be32 sequence;
  Be32 acknowledgment;
  uint8_t data_offset;  // header length in 32-bit words, high nibble
  uint8_t flags;        // CWR ECE URG ACK PSH RST SYN FIN
  Be16 window;
  Be16 checksum;
  Be16 urgent;

  static constexpr uint8_t kFin = 0x01;
  static constexpr uint8_t kSyn = 0x02;
  static constexpr uint8_t kRst = 0x04;
  static constexpr uint8_t kPsh = 0x08;
  static constexpr uint8_t kAck = 0x10;
  static constexpr uint8_t kCwr = 0x80;
  constexpr unsigned headerBytes() const { return (data_offset >> 4) * 4u; }
};
static_assert(sizeof(TcpHeader) == 20);

struct VxlanHeader {
  uint8_t flags;  // 0x08: the VNI is valid
  uint8_t reserved1[3];
  uint8_t vni[3];
  uint8_t reserved2;
};
static_assert(sizeof(VxlanHeader) == 8);

struct GeneveHeader {
  uint8_t version_option_length;  // version (2) | option length in 4-byte words (6)
  uint8_t flags;                  // O (control) | C (critical options) | reserved
  Be16 protocol;                  // 0x6558: Ethernet
  uint8_t vni[3];
  uint8_t reserved;
};
static_assert(sizeof(GeneveHeader) == 8);

struct GeneveOption {
  Be16 option_class;
  uint8_t type;    // high bit: critical
  uint8_t length;  // low 5 bits: data length in 4-byte words
};
static_assert(sizeof(GeneveOption) == 4);

// Copies a T from `bytes` at `offset` if it fits; false otherwise.
template <typename T>
[[nodiscard]] constexpr bool load(std::span<const uint8_t> bytes, size_t offset, T& out) noexcept {
  static_assert(alignof(T) == 1, "wire types are byte layouts");
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return false;
  std::memcpy(&out, bytes.data() + offset, sizeof(T));
  return true;
}

// Writes a T into `bytes` at `offset`; the caller has checked the room.
template <typename T>
void store(std::span<uint8_t> bytes, size_t offset, const T& value) noexcept {
  static_assert(alignof(T) == 1, "wire types are byte layouts");
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// Whether two objects of a padding-free type hold the same bytes, compared a
// word at a time (inlined, no call): for keys hashed and compared as bytes.
template <typename T>
constexpr bool sameBytes(const T& a, const T& b) noexcept {
  static_assert(sizeof(T) % 8 == 0, "whole 64-bit words");
  uint64_t diff = 0;
  for (size_t i = 0; i < sizeof(T); i += 8) {
    uint64_t x, y;
    std::memcpy(&x, reinterpret_cast<const uint8_t*>(&a) + i, 8);
    std::memcpy(&y, reinterpret_cast<const uint8_t*>(&b) + i, 8);
    diff |= x ^ y;
  }
  return diff == 0;
}

}  // namespace canopy::datapath::packet
