// Local IP translations on a fake clock: a client's packet to the local IP
// goes on to the target, its reply gets the local IP back (checksums as if
// built so), other traffic of the target keeps its source, translations
// expire, and a full table refuses new ones.

#include "datapath/nat/dnat_table.h"

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
const Ipv4Address kLocalIp = Ipv4Address::of(10, 0, 0, 50);
const Ipv4Address kTarget = Ipv4Address::of(10, 0, 0, 8);

std::vector<uint8_t> udp(Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport) {
  return PacketBuilder().eth(kA, kB).ipv4(src, dst).udp(sport, dport).payload("q").build();
}

packet::ParsedPacket parse(std::span<const uint8_t> frame) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None);
  return p;
}

TEST(DnatTable, RepliesComeBackFromTheAddressTheClientSpokeTo) {
  FakeClock clock;
  DnatTable dnat(clock, 60s, 2);
  auto query = udp(kClient, 4000, kLocalIp, 53);
  ASSERT_EQ(dnat.translate(query, parse(query), kTarget), DropReason::None);
  EXPECT_EQ(query, udp(kClient, 4000, kTarget, 53));
  auto answer = udp(kTarget, 53, kClient, 4000);
  EXPECT_TRUE(dnat.translateReply(answer, parse(answer)));
  EXPECT_EQ(answer, udp(kLocalIp, 53, kClient, 4000));
  // The target's own traffic to the client, on other ports, is its own.
  auto own = udp(kTarget, 5353, kClient, 4000);
  EXPECT_FALSE(dnat.translateReply(own, parse(own)));
  EXPECT_EQ(own, udp(kTarget, 5353, kClient, 4000));
  // Replies keep a translation alive; after the timeout it is gone.
  clock.advance(59s);
  answer = udp(kTarget, 53, kClient, 4000);
  EXPECT_TRUE(dnat.translateReply(answer, parse(answer)));
  clock.advance(61s);
  answer = udp(kTarget, 53, kClient, 4000);
  EXPECT_FALSE(dnat.translateReply(answer, parse(answer)));
  EXPECT_EQ(dnat.size(), 0u);  // found expired, forgotten
  // What no packet uses goes with a sweep.
  query = udp(kClient, 4001, kLocalIp, 53);
  ASSERT_EQ(dnat.translate(query, parse(query), kTarget), DropReason::None);
  clock.advance(61s);
  EXPECT_EQ(dnat.sweep(), 1u);
  EXPECT_EQ(dnat.size(), 0u);
}

// The kernel fast path carries a translated connection: its use keeps the
// translation (told by its reply's tuple); unused, it expires.
TEST(DnatTable, KeepAliveMovesTheTimeoutOnAsAPacketWould) {
  FakeClock clock;
  DnatTable dnat(clock, 60s, 2);
  auto query = udp(kClient, 4000, kLocalIp, 53);
  ASSERT_EQ(dnat.translate(query, parse(query), kTarget), DropReason::None);
  EXPECT_FALSE(dnat.keepAlive(kTarget, 5353, kClient, 4000, 17, true)) << "no such translation";
  for (int i = 0; i < 3; ++i) {
    clock.advance(50s);
    EXPECT_TRUE(dnat.keepAlive(kTarget, 53, kClient, 4000, 17, true)) << i;
  }
  auto answer = udp(kTarget, 53, kClient, 4000);
  EXPECT_TRUE(dnat.translateReply(answer, parse(answer)));
  EXPECT_EQ(answer, udp(kLocalIp, 53, kClient, 4000));
  clock.advance(50s);
  EXPECT_TRUE(dnat.keepAlive(kTarget, 53, kClient, 4000, 17, false));
  clock.advance(11s);
  EXPECT_FALSE(dnat.keepAlive(kTarget, 53, kClient, 4000, 17, false));
}

TEST(DnatTable, AFullTableRefusesNewTranslations) {
  FakeClock clock;
  DnatTable dnat(clock, 60s, 2);
  for (uint16_t port : {uint16_t{4001}, uint16_t{4002}}) {
    auto q = udp(kClient, port, kLocalIp, 53);
    ASSERT_EQ(dnat.translate(q, parse(q), kTarget), DropReason::None);
  }
  auto third = udp(kClient, 4003, kLocalIp, 53);
  auto before = third;
  EXPECT_EQ(dnat.translate(third, parse(third), kTarget), DropReason::LocalIpTableFull);
  EXPECT_EQ(third, before);  // unchanged
  // An existing connection still passes.
  auto again = udp(kClient, 4001, kLocalIp, 53);
  EXPECT_EQ(dnat.translate(again, parse(again), kTarget), DropReason::None);
  // Expired ones make room.
  clock.advance(61s);
  EXPECT_EQ(dnat.translate(third, parse(third), kTarget), DropReason::None);
}

}  // namespace
}  // namespace canopy::datapath::nat
