// NAT on frames: checksums after a rewrite equal those computed from
// scratch, and translating back gives the original frame (random packets,
// printed seed); the SNAT port allocator never hands out a port twice.

#include "datapath/nat/nat.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "datapath/packet/builder.h"
#include "datapath/packet/checksum.h"

namespace canopy::datapath::nat {
namespace {

using packet::Ipv4Address;
using packet::PacketBuilder;

const packet::MacAddress kA{{0xfa, 0x16, 0x3e, 0, 0, 1}};
const packet::MacAddress kB{{0xfa, 0x16, 0x3e, 0, 0, 2}};

Ipv4Address randomAddress(std::mt19937_64& rng) {
  auto v = static_cast<uint32_t>(rng());
  return {packet::Be32::of(v)};
}

// The frame a builder would make for the same fields: its checksums are
// computed from scratch.
std::vector<uint8_t> rebuilt(const std::vector<uint8_t>& frame, int kind,
                             const std::string& payload) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None);
  Ipv4Address src, dst;
  std::memcpy(&src, p.key.ip_src.data(), 4);
  std::memcpy(&dst, p.key.ip_dst.data(), 4);
  PacketBuilder b;
  b.eth(kA, kB).ipv4(src, dst, p.key.ip_ttl);
  if (kind == 0) b.udp(p.key.tp_src, p.key.tp_dst);
  if (kind == 1) b.tcp(p.key.tp_src, p.key.tp_dst, p.key.tcp_flags, 11, 22);
  if (kind == 2) b.icmp(8, 0, p.key.icmp_id, 5);
  return b.payload(payload).build();
}

TEST(Nat, RewriteKeepsChecksumsRightAndReverses) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 500; ++round) {
    int kind = static_cast<int>(rng() % 3);
    std::string payload(rng() % 50, 'x');
    for (auto& c : payload) c = static_cast<char>(rng());
    auto src = randomAddress(rng), dst = randomAddress(rng);
    auto sport = static_cast<uint16_t>(rng()), dport = static_cast<uint16_t>(rng());
    PacketBuilder b;
    b.eth(kA, kB).ipv4(src, dst);
    if (kind == 0) b.udp(sport, dport);
    if (kind == 1) b.tcp(sport, dport, packet::TcpHeader::kAck, 11, 22);
    if (kind == 2) b.icmp(8, 0, sport, 5);
    auto original = b.payload(payload).build();
    auto frame = original;
    packet::ParsedPacket p;
    ASSERT_EQ(packet::parse(frame, p), DropReason::None) << b.describe();

    Side side = rng() % 2 ? Side::Source : Side::Destination;
    auto to = randomAddress(rng);
    auto to_port = static_cast<uint16_t>(rng());
    if (kind == 2) side = Side::Source;  // the echo identifier is the source's
    ASSERT_EQ(rewriteIpv4(frame, p, side, to, to_port), DropReason::None);
    ASSERT_EQ(frame, rebuilt(frame, kind, payload)) << "round " << round << ": " << b.describe();

    // And back.
    ASSERT_EQ(packet::parse(frame, p), DropReason::None);
    Ipv4Address back = side == Side::Source ? src : dst;
    uint16_t back_port = kind == 2 ? sport : (side == Side::Source ? sport : dport);
    ASSERT_EQ(rewriteIpv4(frame, p, side, back, back_port), DropReason::None);
    ASSERT_EQ(frame, original) << "round " << round << ": " << b.describe();
  }
}

TEST(Nat, UdpWithoutChecksumStaysWithout) {
  auto frame = PacketBuilder()
                   .eth(kA, kB)
                   .ipv4(Ipv4Address::of(10, 0, 0, 1), Ipv4Address::of(10, 0, 0, 2))
                   .udp(1, 2)
                   .build();
  frame[34 + 6] = frame[34 + 7] = 0;  // "no checksum"
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(frame, p), DropReason::None);
  ASSERT_EQ(rewriteIpv4(frame, p, Side::Source, Ipv4Address::of(203, 0, 113, 5), 4000),
            DropReason::None);
  EXPECT_EQ(frame[34 + 6], 0);
  EXPECT_EQ(frame[34 + 7], 0);
  EXPECT_EQ(packet::checksum(std::span(frame).subspan(14, 20)), 0);  // IP header still right
}

TEST(Nat, RefusesWhatIsNotIpv4) {
  auto arp = PacketBuilder()
                 .eth(kA, kB)
                 .arp(1, kA, Ipv4Address::of(1, 1, 1, 1), {}, Ipv4Address::of(1, 1, 1, 2))
                 .build();
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(arp, p), DropReason::None);
  EXPECT_EQ(rewriteIpv4(arp, p, Side::Source, {}, std::nullopt), DropReason::NatNotIpv4);
}

TEST(PortAllocator, NeverTwiceAndExhaustionIsCounted) {
  PortAllocator ports(2000, 2009);
  auto gw = Ipv4Address::of(203, 0, 113, 1);
  std::set<uint16_t> taken;
  for (int i = 0; i < 10; ++i) {
    auto port = ports.allocate(gw, packet::ipproto::kTcp);
    ASSERT_TRUE(port);
    EXPECT_GE(*port, 2000);
    EXPECT_LE(*port, 2009);
    EXPECT_TRUE(taken.insert(*port).second);
  }
  EXPECT_FALSE(ports.allocate(gw, packet::ipproto::kTcp));
  EXPECT_EQ(ports.exhausted(), 1u);
  // Other protocols and addresses have their own ports.
  EXPECT_TRUE(ports.allocate(gw, packet::ipproto::kUdp));
  EXPECT_TRUE(ports.allocate(Ipv4Address::of(203, 0, 113, 2), packet::ipproto::kTcp));
  ports.release(gw, packet::ipproto::kTcp, 2004);
  EXPECT_EQ(ports.allocate(gw, packet::ipproto::kTcp), 2004);
  EXPECT_EQ(ports.inUse(gw, packet::ipproto::kTcp), 10u);
}

}  // namespace
}  // namespace canopy::datapath::nat
