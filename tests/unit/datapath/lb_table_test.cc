// A load balancer's connections imported from the kernel fast path, on a
// fake clock: pinned as if the datapath had balanced their first packet
// (counted, their replies translated back to the VIP, kept alive by use),
// and refused where the member's side is another live connection's.

#include "datapath/nat/lb_table.h"

#include <gtest/gtest.h>

#include "datapath/packet/builder.h"

namespace canopy::datapath::nat {
namespace {

using namespace std::chrono_literals;
using packet::Ipv4Address;
using packet::PacketBuilder;

const packet::MacAddress kA{{0xfa, 0x16, 0x3e, 0, 0, 1}};
const packet::MacAddress kB{{0xfa, 0x16, 0x3e, 0, 0, 2}};
const Ipv4Address kClient = Ipv4Address::of(10, 0, 0, 5);
const Ipv4Address kVip = Ipv4Address::of(10, 0, 0, 100);
const Ipv4Address kOtherVip = Ipv4Address::of(10, 0, 0, 101);
const Ipv4Address kMember = Ipv4Address::of(10, 0, 0, 8);
constexpr uint64_t kListener = 42;
constexpr uint16_t kZone = 3;

std::vector<uint8_t> tcp(Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport,
                         uint8_t flags = packet::TcpHeader::kAck) {
  return PacketBuilder().eth(kA, kB).ipv4(src, dst).tcp(sport, dport, flags, 1, 1).build();
}

packet::ParsedPacket parse(std::span<const uint8_t> frame) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None);
  return p;
}

LbTable::Key forward(Ipv4Address vip, uint16_t client_port) {
  LbTable::Key k{
      .src_port = client_port, .dst_port = 80, .zone = kZone, .protocol = 6, .family = 4};
  std::copy_n(kClient.value.b, 4, k.src.begin());
  std::copy_n(vip.value.b, 4, k.dst.begin());
  return k;
}

const LbTarget kTarget{.address = kMember.ip(), .port = 8080};

TEST(LbTableImport, AKernelConnectionIsPinnedCountedAndTranslatedBack) {
  FakeClock clock;
  LbTable lb(clock);
  ASSERT_TRUE(lb.import(forward(kVip, 40000), kTarget, kListener, /*closing=*/false));
  auto next = tcp(kClient, 40000, kVip, 80);
  auto pinned = lb.pinned(parse(next), kZone);
  ASSERT_TRUE(pinned);
  EXPECT_EQ(*pinned, kTarget);
  EXPECT_EQ(lb.connections(kListener, kTarget), 1u);
  auto counters = lb.counters()[kListener];
  EXPECT_EQ(counters.total, 1u);
  EXPECT_EQ(counters.active, 1u);
  // The member's reply (a FIN from its side, say) gets the VIP back.
  auto reply = tcp(kMember, 8080, kClient, 40000);
  EXPECT_TRUE(lb.translateReply(reply, parse(reply), kZone));
  EXPECT_EQ(reply, tcp(kVip, 80, kClient, 40000));
  // Imported again (another worker's adoption): the same pin, counted once.
  EXPECT_TRUE(lb.import(forward(kVip, 40000), kTarget, kListener, false));
  EXPECT_EQ(lb.counters()[kListener].total, 1u);
  // Used, it lives past the idle hour; unused, it goes.
  clock.advance(50min);
  EXPECT_TRUE(lb.keepAlive(forward(kVip, 40000), true, 0, 0));
  clock.advance(50min);
  EXPECT_TRUE(lb.keepAlive(forward(kVip, 40000), false, 0, 0));
  clock.advance(11min);
  EXPECT_FALSE(lb.keepAlive(forward(kVip, 40000), false, 0, 0));
}

TEST(LbTableImport, AClosingConnectionIsNotOpenAndTheMembersSideIsNotTakenTwice) {
  FakeClock clock;
  LbTable lb(clock);
  ASSERT_TRUE(lb.import(forward(kVip, 40001), kTarget, kListener, /*closing=*/true));
  EXPECT_EQ(lb.connections(kListener, kTarget), 0u);
  EXPECT_EQ(lb.counters()[kListener].total, 1u);
  // The same client port to another VIP on the same member: the member
  // would see one tuple for two connections.
  ASSERT_TRUE(lb.import(forward(kVip, 40002), kTarget, kListener, false));
  EXPECT_FALSE(lb.import(forward(kOtherVip, 40002), kTarget, kListener, false));
  // Pinned elsewhere already: not this member.
  EXPECT_FALSE(
      lb.import(forward(kVip, 40002), {.address = kMember.ip(), .port = 9090}, kListener, false));
  // Not TCP or UDP, or the member of the other family: refused.
  auto icmp = forward(kVip, 40003);
  icmp.protocol = 1;
  EXPECT_FALSE(lb.import(icmp, kTarget, kListener, false));
  EXPECT_FALSE(lb.import(forward(kVip, 40004), {.address = IpAddress{6, {0xfd}}, .port = 80},
                         kListener, false));
}

}  // namespace
}  // namespace canopy::datapath::nat
