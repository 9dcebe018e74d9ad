// The packet library: frames built with PacketBuilder parse back to the
// fields they were built from; every malformed frame has its drop reason;
// incremental checksums equal full recomputation (random, with a seed).

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "datapath/packet/builder.h"
#include "datapath/packet/checksum.h"
#include "datapath/packet/parser.h"

namespace canopy::datapath::packet {
namespace {

const MacAddress kVm{{0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01}};
const MacAddress kRouter{{0xfa, 0x16, 0x3e, 0x00, 0x00, 0xfe}};
const Ipv4Address kVmIp = Ipv4Address::of(10, 0, 0, 5);
const Ipv4Address kOtherIp = Ipv4Address::of(10, 0, 1, 7);

Ipv6Address v6(uint8_t last) {
  Ipv6Address a;
  a.bytes = {0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last};
  return a;
}

DropReason parseFrame(const std::vector<uint8_t>& frame, ParsedPacket& p) {
  return parse(frame, p);
}

TEST(PacketParser, UdpOverIpv4) {
  PacketBuilder b;
  b.eth(kVm, kRouter).ipv4(kVmIp, kOtherIp, 17).udp(1000, 53).payload("query");
  auto frame = b.build();
  ParsedPacket p;
  ASSERT_EQ(parseFrame(frame, p), DropReason::None) << b.describe();
  EXPECT_EQ(p.key.eth_type, ethertype::kIpv4);
  EXPECT_EQ(p.key.eth_src, kVm);
  EXPECT_EQ(p.key.eth_dst, kRouter);
  EXPECT_EQ(p.key.ip_proto, ipproto::kUdp);
  EXPECT_EQ(p.key.ip_ttl, 17);
  EXPECT_EQ(p.key.tp_src, 1000);
  EXPECT_EQ(p.key.tp_dst, 53);
  EXPECT_EQ(p.key.ip_src[0], 10);
  EXPECT_EQ(p.key.ip_dst[3], 7);
  EXPECT_EQ(p.l3_offset, 14);
  EXPECT_EQ(p.l4_offset, 34);
  EXPECT_EQ(p.payload_offset, 42);
  EXPECT_EQ(p.l3_end, frame.size());
  // The builder's checksums verify: summing a header with its checksum gives 0.
  EXPECT_EQ(checksum(std::span(frame).subspan(14, 20)), 0);
  EXPECT_EQ(finish(sumWords(std::span(frame).subspan(34),
                            pseudoHeaderSum(kVmIp, kOtherIp, ipproto::kUdp, 13))),
            0);
}

TEST(PacketParser, TcpWithVlanAndPadding) {
  PacketBuilder b;
  b.eth(kVm, kRouter).vlan(42).ipv4(kVmIp, kOtherIp).tcp(40000, 22, TcpHeader::kSyn, 7);
  auto frame = b.build();
  frame.resize(frame.size() + 6, 0);  // Ethernet padding is not the IP packet
  ParsedPacket p;
  ASSERT_EQ(parseFrame(frame, p), DropReason::None) << b.describe();
  EXPECT_EQ(p.key.vlan_tci, 42);
  EXPECT_EQ(p.key.ip_proto, ipproto::kTcp);
  EXPECT_EQ(p.key.tcp_flags, TcpHeader::kSyn);
  EXPECT_EQ(p.key.tp_dst, 22);
  EXPECT_EQ(p.l3_offset, 18);
  EXPECT_EQ(p.l3_end, frame.size() - 6);
}

TEST(PacketParser, ArpAndIcmpAndIpv6) {
  ParsedPacket p;
  auto arp = PacketBuilder()
                 .eth(kVm, MacAddress::broadcast())
                 .arp(1, kVm, kVmIp, MacAddress{}, kOtherIp)
                 .build();
  ASSERT_EQ(parseFrame(arp, p), DropReason::None);
  EXPECT_EQ(p.key.eth_type, ethertype::kArp);
  EXPECT_EQ(p.key.tp_src, 1);
  EXPECT_EQ(p.key.ip_dst[3], 7);

  auto ping = PacketBuilder().eth(kVm, kRouter).ipv4(kVmIp, kOtherIp).icmp(8, 0, 77, 1).build();
  ASSERT_EQ(parseFrame(ping, p), DropReason::None);
  EXPECT_EQ(p.key.ip_proto, ipproto::kIcmp);
  EXPECT_EQ(p.key.tp_src, 8);
  EXPECT_EQ(p.key.icmp_id, 77);
  EXPECT_EQ(checksum(std::span(ping).subspan(34)), 0);

  auto ping6 = PacketBuilder().eth(kVm, kRouter).ipv6(v6(1), v6(2)).icmp(128, 0, 9).build();
  ASSERT_EQ(parseFrame(ping6, p), DropReason::None);
  EXPECT_EQ(p.key.eth_type, ethertype::kIpv6);
  EXPECT_EQ(p.key.ip_proto, ipproto::kIcmpv6);
  EXPECT_EQ(p.key.icmp_id, 9);
  EXPECT_EQ(p.key.ip_src, v6(1).bytes);
  EXPECT_EQ(p.l4_offset, 54);
}

TEST(PacketParser, FragmentsAreRecognised) {
  ParsedPacket p;
  auto first =
      PacketBuilder().eth(kVm, kRouter).ipv4(kVmIp, kOtherIp).udp(1, 2).fragment(0, true).build();
  ASSERT_EQ(parseFrame(first, p), DropReason::None);
  EXPECT_EQ(p.key.ip_frag, Fragment::First);
  EXPECT_EQ(p.key.tp_dst, 2);
  // A later fragment carries no UDP header: nothing past IP is read.
  auto later = PacketBuilder()
                   .eth(kVm, kRouter)
                   .ipv4(kVmIp, kOtherIp)
                   .payload("xxxxxxxx")
                   .fragment(1480, false)
                   .build();
  ASSERT_EQ(parseFrame(later, p), DropReason::None);
  EXPECT_EQ(p.key.ip_frag, Fragment::Later);
  EXPECT_EQ(p.l4_offset, 0);
}

// A guest's 4000-byte datagram over a 1500-byte MTU: its first fragment's
// UDP length is the whole datagram's, more than the fragment holds.
TEST(PacketParser, AFirstFragmentsUdpLengthIsTheDatagrams) {
  std::string data(1472, 'x');
  auto first = PacketBuilder()
                   .eth(kVm, kRouter)
                   .ipv4(kVmIp, kOtherIp)
                   .udp(4000, 5000)
                   .payload(data)
                   .fragment(0, true)
                   .build();
  auto with_length = [&](uint16_t length) {
    auto f = first;
    f[38] = static_cast<uint8_t>(length >> 8);  // UDP length, after Ethernet and IPv4
    f[39] = static_cast<uint8_t>(length);
    return f;
  };
  ParsedPacket p;
  ASSERT_EQ(parseFrame(with_length(4008), p), DropReason::None);
  EXPECT_EQ(p.key.ip_frag, Fragment::First);
  EXPECT_EQ(p.key.tp_src, 4000);
  EXPECT_EQ(p.key.tp_dst, 5000);
  // Shorter than what the first fragment already carries: not a datagram.
  EXPECT_EQ(parseFrame(with_length(100), p), DropReason::UdpBadLength);
  // Unfragmented, the length must fit the packet as before.
  auto whole = PacketBuilder().eth(kVm, kRouter).ipv4(kVmIp, kOtherIp).udp(1, 2).build();
  whole[38] = 0x0f;
  EXPECT_EQ(parseFrame(whole, p), DropReason::UdpBadLength);
}

TEST(PacketParser, Ipv6ExtensionHeadersAreWalked) {
  // Hop-by-hop (8 bytes) then UDP.
  auto frame = PacketBuilder().eth(kVm, kRouter).ipv6(v6(1), v6(2)).udp(5, 6).build();
  // Splice a hop-by-hop header in front of UDP.
  std::vector<uint8_t> with(frame.begin(), frame.begin() + 54);
  uint8_t hbh[8] = {ipproto::kUdp, 0, 1, 4, 0, 0, 0, 0};
  with.insert(with.end(), hbh, hbh + 8);
  with.insert(with.end(), frame.begin() + 54, frame.end());
  with[14 + 6] = ipproto::kHopByHop;
  with[14 + 5] = static_cast<uint8_t>(with[14 + 5] + 8);  // payload length
  ParsedPacket p;
  ASSERT_EQ(parseFrame(with, p), DropReason::None);
  EXPECT_EQ(p.key.ip_proto, ipproto::kUdp);
  EXPECT_EQ(p.key.tp_dst, 6);
  EXPECT_EQ(p.l4_offset, 62);
  // A chain of nine extension headers is refused.
  std::vector<uint8_t> chain(frame.begin(), frame.begin() + 54);
  for (int i = 0; i < 9; ++i) {
    uint8_t h[8] = {i == 8 ? ipproto::kUdp : ipproto::kDestinationOptions, 0, 1, 4, 0, 0, 0, 0};
    chain.insert(chain.end(), h, h + 8);
  }
  chain.insert(chain.end(), frame.begin() + 54, frame.end());
  chain[14 + 6] = ipproto::kDestinationOptions;
  uint16_t payload = static_cast<uint16_t>(chain.size() - 54);
  chain[14 + 4] = static_cast<uint8_t>(payload >> 8);
  chain[14 + 5] = static_cast<uint8_t>(payload);
  EXPECT_EQ(parseFrame(chain, p), DropReason::Ipv6TooManyExtensions);
}

struct Malformed {
  const char* name;
  std::vector<uint8_t> frame;
  DropReason expect;
};

TEST(PacketParser, EveryMalformedFrameHasItsReason) {
  auto udp = PacketBuilder().eth(kVm, kRouter).ipv4(kVmIp, kOtherIp).udp(1, 2).build();
  auto tcp = PacketBuilder().eth(kVm, kRouter).ipv4(kVmIp, kOtherIp).tcp(1, 2, 0).build();
  auto arp = PacketBuilder().eth(kVm, kRouter).arp(1, kVm, kVmIp, MacAddress{}, kOtherIp).build();
  auto v6 = PacketBuilder().eth(kVm, kRouter).ipv6(packet::Ipv6Address{}, {}).udp(1, 2).build();
  auto with = [](std::vector<uint8_t> f, size_t at, uint8_t value) {
    f[at] = value;
    return f;
  };
  auto cut = [](std::vector<uint8_t> f, size_t size) {
    f.resize(size);
    return f;
  };
  std::vector<Malformed> cases = {
      {"empty", {}, DropReason::EthernetTruncated},
      {"short ethernet", cut(udp, 13), DropReason::EthernetTruncated},
      {"vlan cut", cut(with(with(udp, 12, 0x81), 13, 0x00), 16), DropReason::VlanTruncated},
      {"qinq", with(with(udp, 12, 0x88), 13, 0xa8), DropReason::StackedVlan},
      {"arp cut", cut(arp, 30), DropReason::ArpTruncated},
      {"arp for another protocol", with(arp, 16, 0x86), DropReason::ArpNotEthernetIpv4},
      {"ipv4 cut", cut(udp, 20), DropReason::Ipv4Truncated},
      {"ipv4 version 5", with(udp, 14, 0x55), DropReason::Ipv4BadVersion},
      {"ipv4 ihl 4", with(udp, 14, 0x44), DropReason::Ipv4BadHeaderLength},
      {"ipv4 ihl past frame", with(udp, 14, 0x4f), DropReason::Ipv4BadHeaderLength},
      {"ipv4 total past frame", with(udp, 16, 0x10), DropReason::Ipv4BadTotalLength},
      {"ipv4 total below header", with(with(udp, 16, 0), 17, 10), DropReason::Ipv4BadTotalLength},
      {"udp cut", with(cut(udp, 38), 17, 24), DropReason::UdpTruncated},
      {"udp length 4", with(udp, 39, 4), DropReason::UdpBadLength},
      {"udp length past packet", with(udp, 39, 200), DropReason::UdpBadLength},
      {"tcp cut", with(cut(tcp, 50), 17, 36), DropReason::TcpTruncated},
      {"tcp offset 4", with(tcp, 46, 0x40), DropReason::TcpBadHeaderLength},
      {"tcp offset past packet", with(tcp, 46, 0xf0), DropReason::TcpBadHeaderLength},
      {"ipv6 cut", cut(v6, 40), DropReason::Ipv6Truncated},
      {"ipv6 version 4", with(v6, 14, 0x40), DropReason::Ipv6BadVersion},
      {"ipv6 payload past frame", with(v6, 18, 0x10), DropReason::Ipv6BadPayloadLength},
  };
  for (const auto& c : cases) {
    ParsedPacket p;
    EXPECT_EQ(parseFrame(c.frame, p), c.expect)
        << c.name << ": got " << dropReasonName(parseFrame(c.frame, p));
  }
}

TEST(DropReason, NamesAndTexts) {
  EXPECT_EQ(dropReasonName(DropReason::Ipv4Truncated), "ipv4_truncated");
  EXPECT_EQ(dropReasonName(DropReason::StackedVlan), "stacked_vlan");
  EXPECT_EQ(dropReasonText(DropReason::UdpBadLength),
            "UDP length shorter than its header or past the packet");
  EXPECT_EQ(dropReasonName(DropReason::None), "none");
}

TEST(FlowKey, HashAndEqualityCoverEveryField) {
  FlowKey a, b;
  EXPECT_EQ(a, b);
  EXPECT_EQ(flowKeyHash(a), flowKeyHash(b));
  b.icmp_id = 1;
  EXPECT_NE(a, b);
  EXPECT_NE(flowKeyHash(a), flowKeyHash(b));
}

// Differential: after rewriting a 16- or 32-bit field, the incremental
// checksum equals the one computed from scratch.
TEST(Checksum, IncrementalEqualsFull) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 2000; ++round) {
    std::vector<uint8_t> bytes(20 + rng() % 40 * 2);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    bytes[0] = 0x45;  // a non-zero word, as any real header has
    uint16_t before = checksum(bytes);
    size_t at = 2 * (1 + rng() % (bytes.size() / 2 - 2));
    if (rng() % 2 == 0) {
      uint16_t from = static_cast<uint16_t>(bytes[at] << 8 | bytes[at + 1]);
      auto to = static_cast<uint16_t>(rng());
      bytes[at] = static_cast<uint8_t>(to >> 8);
      bytes[at + 1] = static_cast<uint8_t>(to);
      ASSERT_EQ(checksumUpdate16(before, from, to), checksum(bytes)) << "round " << round;
    } else {
      at = std::min(at, bytes.size() - 4);
      at -= at % 2;
      Be32 from;
      std::memcpy(&from, &bytes[at], 4);
      auto to = static_cast<uint32_t>(rng());
      Be32 to_be = Be32::of(to);
      std::memcpy(&bytes[at], &to_be, 4);
      ASSERT_EQ(checksumUpdate32(before, from.host(), to), checksum(bytes)) << "round " << round;
    }
  }
}

// Differential: the word-at-a-time sum equals summing big-endian 16-bit
// words one by one, for any length, alignment and carried-in sum.
TEST(Checksum, SumEqualsWordByWordOracle) {
  const char* fixed = std::getenv("CANOPY_TEST_SEED");
  uint64_t seed = fixed != nullptr ? std::strtoull(fixed, nullptr, 10) : std::random_device{}();
  SCOPED_TRACE("CANOPY_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto oracle = [](std::span<const uint8_t> b, uint32_t sum) {
    uint64_t s = sum;
    for (size_t i = 0; i < b.size(); i += 2) {
      s += static_cast<uint32_t>(b[i] << 8 | (i + 1 < b.size() ? b[i + 1] : 0));
    }
    return s;
  };
  std::vector<uint8_t> bytes(70000);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  for (int round = 0; round < 1000; ++round) {
    size_t at = rng() % 16;
    size_t length = round < 100 ? static_cast<size_t>(round) : rng() % (bytes.size() - at);
    if (round % 7 == 0) length = rng() % 64;
    auto span = std::span<const uint8_t>(bytes).subspan(at, length);
    auto carried = static_cast<uint32_t>(rng() % 3 == 0 ? 0 : rng());
    uint64_t want = oracle(span, carried);
    while (want >> 16) want = (want & 0xffff) + (want >> 16);
    ASSERT_EQ(finish(sumWords(span, carried)), static_cast<uint16_t>(~want))
        << "round " << round << " at " << at << " length " << length;
  }
  std::vector<uint8_t> zeros(100, 0);
  EXPECT_EQ(finish(sumWords(zeros)), 0xffff);
}

TEST(Checksum, KnownValue) {
  // RFC 1071's example words: 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
  const uint8_t words[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(checksum(words), 0x220d);
}

}  // namespace
}  // namespace canopy::datapath::packet
