// Router SNAT on a fake clock: TCP, UDP and ICMP echo out and back, each
// frame equal to the one built from scratch for its translated fields (so
// with every checksum right); ICMP errors and their quotes in both
// directions; shared source ports, expiry, port exhaustion, the size limit;
// and random flows against a map of what was sent (printed seed).

#include "datapath/nat/snat_table.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "datapath/packet/builder.h"
#include "datapath/persist/state_file.h"
#include "testing/temp_dir.h"

namespace canopy::datapath::nat {
namespace {

using namespace std::chrono_literals;
using packet::Ipv4Address;
using packet::PacketBuilder;
using packet::TcpHeader;

// A random seed, or CANOPY_TEST_SEED's to replay a printed one.
uint64_t testSeed() {
  const char* fixed = std::getenv("CANOPY_TEST_SEED");
  return fixed != nullptr ? std::strtoull(fixed, nullptr, 10) : std::random_device{}();
}

const packet::MacAddress kInside{{0xfa, 0x16, 0x3e, 0, 0, 1}};
const packet::MacAddress kOutside{{0xfa, 0x16, 0x3e, 0, 0, 2}};
const Ipv4Address kHostA = Ipv4Address::of(10, 0, 0, 5);
const Ipv4Address kHostB = Ipv4Address::of(10, 0, 0, 6);
const Ipv4Address kGateway = Ipv4Address::of(203, 0, 113, 1);
const Ipv4Address kRemote = Ipv4Address::of(198, 51, 100, 7);
const Ipv4Address kRouterOnTheWay = Ipv4Address::of(192, 0, 2, 254);

std::vector<uint8_t> udp(Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport,
                         std::string_view data = "dns?") {
  return PacketBuilder()
      .eth(kInside, kOutside)
      .ipv4(src, dst)
      .udp(sport, dport)
      .payload(data)
      .build();
}

std::vector<uint8_t> tcp(Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport,
                         uint8_t flags) {
  return PacketBuilder()
      .eth(kInside, kOutside)
      .ipv4(src, dst)
      .tcp(sport, dport, flags, 7000, 9000)
      .payload("GET /")
      .build();
}

std::vector<uint8_t> echo(Ipv4Address src, Ipv4Address dst, uint8_t type, uint16_t id) {
  return PacketBuilder()
      .eth(kInside, kOutside)
      .ipv4(src, dst)
      .icmp(type, 0, id, 3)
      .payload("ping")
      .build();
}

// An ICMP error quoting `about` (a frame), cut after 8 bytes of its L4
// header unless `whole`.
std::vector<uint8_t> icmpError(Ipv4Address src, Ipv4Address dst, const std::vector<uint8_t>& about,
                               uint8_t type = 3, uint8_t code = 3, bool whole = true) {
  std::span<const uint8_t> quote(about);
  quote = quote.subspan(sizeof(packet::EthernetHeader));
  if (!whole) quote = quote.first(28);
  return PacketBuilder()
      .eth(kInside, kOutside)
      .ipv4(src, dst)
      .icmp(type, code)
      .payload(quote)
      .build();
}

class SnatTableTest : public ::testing::Test {
 protected:
  DropReason out(std::vector<uint8_t>& frame, Ipv4Address external = kGateway) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return snat.translateOutbound(frame, p, external);
  }
  DropReason in(std::vector<uint8_t>& frame) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return snat.translateInbound(frame, p);
  }
  // Sends `frame` out and expects `expected` on the wire.
  void expectOut(std::vector<uint8_t> frame, const std::vector<uint8_t>& expected) {
    ASSERT_EQ(out(frame), DropReason::None);
    EXPECT_EQ(frame, expected);
  }
  // Takes `frame` in and expects `expected` delivered inside.
  void expectIn(std::vector<uint8_t> frame, const std::vector<uint8_t>& expected) {
    ASSERT_EQ(in(frame), DropReason::None);
    EXPECT_EQ(frame, expected);
  }
  // A refused frame stays as it was.
  DropReason refusedIn(std::vector<uint8_t> frame) {
    auto before = frame;
    DropReason why = in(frame);
    EXPECT_EQ(frame, before);
    return why;
  }
  DropReason refusedOut(std::vector<uint8_t> frame) {
    auto before = frame;
    DropReason why = out(frame);
    EXPECT_EQ(frame, before);
    return why;
  }

  FakeClock clock;
  SnatTable snat{clock};
};

TEST_F(SnatTableTest, UdpOutAndBackKeepsTheSourcePort) {
  expectOut(udp(kHostA, 5000, kRemote, 53), udp(kGateway, 5000, kRemote, 53));
  expectIn(udp(kRemote, 53, kGateway, 5000, "answer"), udp(kRemote, 53, kHostA, 5000, "answer"));
  // Later packets of the flow use the same mapping.
  expectOut(udp(kHostA, 5000, kRemote, 53, "again"), udp(kGateway, 5000, kRemote, 53, "again"));
  EXPECT_EQ(snat.size(), 1u);
}

TEST_F(SnatTableTest, TcpOutAndBack) {
  expectOut(tcp(kHostA, 40000, kRemote, 80, TcpHeader::kSyn),
            tcp(kGateway, 40000, kRemote, 80, TcpHeader::kSyn));
  expectIn(tcp(kRemote, 80, kGateway, 40000, TcpHeader::kSyn | TcpHeader::kAck),
           tcp(kRemote, 80, kHostA, 40000, TcpHeader::kSyn | TcpHeader::kAck));
  expectOut(tcp(kHostA, 40000, kRemote, 80, TcpHeader::kAck),
            tcp(kGateway, 40000, kRemote, 80, TcpHeader::kAck));
}

TEST_F(SnatTableTest, IcmpEchoOutAndBackByItsIdentifier) {
  // Identifier 77 is below the SNAT range (1024-65535): it gets the range's first.
  expectOut(echo(kHostA, kRemote, 8, 77), echo(kGateway, kRemote, 8, 1024));
  expectIn(echo(kRemote, kGateway, 0, 1024), echo(kRemote, kHostA, 0, 77));
  expectOut(echo(kHostA, kRemote, 8, 2000), echo(kGateway, kRemote, 8, 2000));
  expectIn(echo(kRemote, kGateway, 0, 2000), echo(kRemote, kHostA, 0, 2000));
  EXPECT_EQ(refusedIn(echo(kRemote, kGateway, 0, 1025)), DropReason::NatNoMapping);
}

TEST_F(SnatTableTest, TwoHostsOnTheSameSourcePortGetDifferentExternalPorts) {
  expectOut(udp(kHostA, 5000, kRemote, 53), udp(kGateway, 5000, kRemote, 53));
  auto b = udp(kHostB, 5000, kRemote, 53);
  ASSERT_EQ(out(b), DropReason::None);
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(b, p), DropReason::None);
  uint16_t b_port = p.key.tp_src;
  EXPECT_NE(b_port, 5000);
  EXPECT_EQ(b, udp(kGateway, b_port, kRemote, 53));
  // Each reply finds its own host.
  expectIn(udp(kRemote, 53, kGateway, 5000), udp(kRemote, 53, kHostA, 5000));
  expectIn(udp(kRemote, 53, kGateway, b_port), udp(kRemote, 53, kHostB, 5000));
  EXPECT_EQ(snat.size(), 2u);
}

TEST_F(SnatTableTest, IcmpErrorAboutAUdpFlowReachesTheInternalHost) {
  expectOut(udp(kHostA, 5000, kRemote, 53), udp(kGateway, 5000, kRemote, 53));
  // The remote's port unreachable quotes the packet as it arrived there...
  expectIn(icmpError(kRemote, kGateway, udp(kGateway, 5000, kRemote, 53)),
           icmpError(kRemote, kHostA, udp(kHostA, 5000, kRemote, 53)));
  // ...a router's time exceeded on the way too, with 8 bytes of UDP only.
  expectIn(icmpError(kRouterOnTheWay, kGateway, udp(kGateway, 5000, kRemote, 53), 11, 0, false),
           icmpError(kRouterOnTheWay, kHostA, udp(kHostA, 5000, kRemote, 53), 11, 0, false));
}

TEST_F(SnatTableTest, IcmpErrorAboutATranslatedPortAndEcho) {
  // Host B's flow was moved off port 5000 by host A's.
  expectOut(udp(kHostA, 5000, kRemote, 53), udp(kGateway, 5000, kRemote, 53));
  auto b = udp(kHostB, 5000, kRemote, 53);
  ASSERT_EQ(out(b), DropReason::None);
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(b, p), DropReason::None);
  uint16_t b_port = p.key.tp_src;
  expectIn(icmpError(kRemote, kGateway, udp(kGateway, b_port, kRemote, 53)),
           icmpError(kRemote, kHostB, udp(kHostB, 5000, kRemote, 53)));
  // A ping that runs out of hops.
  expectOut(echo(kHostA, kRemote, 8, 9), echo(kGateway, kRemote, 8, 1024));
  expectIn(icmpError(kRouterOnTheWay, kGateway, echo(kGateway, kRemote, 8, 1024), 11, 0),
           icmpError(kRouterOnTheWay, kHostA, echo(kHostA, kRemote, 8, 9), 11, 0));
}

TEST_F(SnatTableTest, IcmpErrorFromTheInternalHostLeavesAsTheGateway) {
  auto b = udp(kHostB, 5000, kRemote, 53);
  expectOut(udp(kHostA, 5000, kRemote, 53), udp(kGateway, 5000, kRemote, 53));
  ASSERT_EQ(out(b), DropReason::None);
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(b, p), DropReason::None);
  uint16_t b_port = p.key.tp_src;
  // Host B refuses the answer it was given (remote:53 -> B:5000).
  expectOut(icmpError(kHostB, kRemote, udp(kRemote, 53, kHostB, 5000)),
            icmpError(kGateway, kRemote, udp(kRemote, 53, kGateway, b_port)));
  EXPECT_EQ(refusedOut(icmpError(kHostB, kRemote, udp(kRemote, 54, kHostB, 5000))),
            DropReason::NatNoMapping);
}

TEST_F(SnatTableTest, UnknownInboundIsNoMapping) {
  EXPECT_EQ(refusedIn(udp(kRemote, 53, kGateway, 5000)), DropReason::NatNoMapping);
  expectOut(udp(kHostA, 5000, kRemote, 53), udp(kGateway, 5000, kRemote, 53));
  // Another remote port, another remote, another protocol: none is the reply.
  EXPECT_EQ(refusedIn(udp(kRemote, 54, kGateway, 5000)), DropReason::NatNoMapping);
  EXPECT_EQ(refusedIn(udp(kRouterOnTheWay, 53, kGateway, 5000)), DropReason::NatNoMapping);
  EXPECT_EQ(refusedIn(tcp(kRemote, 53, kGateway, 5000, TcpHeader::kSyn)), DropReason::NatNoMapping);
  EXPECT_EQ(refusedIn(icmpError(kRemote, kGateway, udp(kGateway, 5001, kRemote, 53))),
            DropReason::NatNoMapping);
  // An error for another address than the mapping's.
  EXPECT_EQ(refusedIn(icmpError(kRemote, kHostB, udp(kGateway, 5000, kRemote, 53))),
            DropReason::NatNoMapping);
  // A quote too short to name a flow.
  auto short_quote = udp(kGateway, 5000, kRemote, 53);
  short_quote.resize(sizeof(packet::EthernetHeader) + 24);
  EXPECT_EQ(refusedIn(icmpError(kRemote, kGateway, short_quote)), DropReason::NatBadIcmpQuote);
}

TEST_F(SnatTableTest, WhatHasNoPortsIsRefused) {
  auto arp = PacketBuilder().eth(kInside, kOutside).arp(1, kInside, kHostA, {}, kRemote).build();
  EXPECT_EQ(refusedOut(arp), DropReason::NatNotIpv4);
  // No L4 header the parser knows (protocol 0).
  auto raw = PacketBuilder().eth(kInside, kOutside).ipv4(kHostA, kRemote).payload("gre?").build();
  EXPECT_EQ(refusedOut(raw), DropReason::NatProtocolUnsupported);
  EXPECT_EQ(refusedIn(raw), DropReason::NatNoMapping);
  auto fragment = PacketBuilder()
                      .eth(kInside, kOutside)
                      .ipv4(kHostA, kRemote)
                      .udp(5000, 53)
                      .fragment(1480, false)
                      .build();
  EXPECT_EQ(refusedOut(fragment), DropReason::NatLaterFragment);
  EXPECT_EQ(snat.size(), 0u);
}

TEST_F(SnatTableTest, ExpiryFreesThePort) {
  SnatTable small(clock, {}, 16, 2000, 2000);  // one port
  auto send = [&](Ipv4Address host) {
    auto frame = udp(host, 5000, kRemote, 53);
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return small.translateOutbound(frame, p, kGateway);
  };
  ASSERT_EQ(send(kHostA), DropReason::None);
  EXPECT_EQ(send(kHostB), DropReason::NatPortsExhausted);
  clock.advance(179s);
  EXPECT_EQ(small.sweep(), 0u);
  ASSERT_EQ(send(kHostA), DropReason::None);  // refreshed
  clock.advance(179s);
  EXPECT_EQ(small.sweep(), 0u);
  clock.advance(2s);
  EXPECT_EQ(small.sweep(), 1u);
  EXPECT_EQ(small.size(), 0u);
  EXPECT_EQ(send(kHostB), DropReason::None);
  EXPECT_EQ(small.exhausted(), 1u);
}

// The kernel fast path carries a mapping's packets: its use keeps the
// mapping (told as a tuple from the inside), which stays found; unused, it
// expires as it would.
TEST_F(SnatTableTest, KeepAliveMovesTheTimeoutOnAsAPacketWould) {
  expectOut(udp(kHostA, 5000, kRemote, 53), udp(kGateway, 5000, kRemote, 53));
  EXPECT_FALSE(snat.keepAlive(kHostA, 5001, kRemote, 53, 17, true)) << "no such mapping";
  EXPECT_FALSE(snat.keepAlive(kHostA, 5000, kRemote, 53, 6, true)) << "another protocol";
  for (int i = 0; i < 3; ++i) {
    clock.advance(170s);
    EXPECT_TRUE(snat.keepAlive(kHostA, 5000, kRemote, 53, 17, true)) << i;
  }
  EXPECT_EQ(snat.sweep(), 0u);
  expectIn(udp(kRemote, 53, kGateway, 5000, "answer"), udp(kRemote, 53, kHostA, 5000, "answer"));
  // Looked at, unused: not moved on.
  clock.advance(170s);
  EXPECT_TRUE(snat.keepAlive(kHostA, 5000, kRemote, 53, 17, false));
  clock.advance(20s);
  EXPECT_FALSE(snat.keepAlive(kHostA, 5000, kRemote, 53, 17, false));
  EXPECT_EQ(snat.size(), 0u);
}

// Whether a reply's translation is the mapping's address and port alone (a
// kernel flow may repeat it): not for a helper's connection, whose
// segments may shift, also once its mapping's record made it elsewhere
// (a standby gateway host's replica, as an adopted state file's).
TEST_F(SnatTableTest, AReplyIsPlainUnlessItsMappingHasAHelper) {
  auto plainIn = [&](SnatTable& table, std::vector<uint8_t> frame) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    bool plain = true;
    EXPECT_EQ(table.translateInbound(frame, p, &plain), DropReason::None);
    return plain;
  };
  auto outWith = [&](SnatTable& table, std::vector<uint8_t> frame, SnatHelper helper) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    PayloadEdit edit;
    EXPECT_EQ(table.translateOutbound(frame, p, kGateway, helper, &edit), DropReason::None);
  };
  // (Records are written, and replicated, for a table with a state file.)
  canopy::testing::TempDir dir;
  auto file = persist::StateFile::open(dir.file("snat.state"), {.owner = 1, .slots = 64});
  ASSERT_TRUE(file) << file.error().message();
  snat.persistTo(file->get());
  std::vector<uint8_t> replica;
  snat.replicateTo(&replica, 1 << 20);
  outWith(snat, tcp(kHostA, 40000, kRemote, 80, TcpHeader::kSyn), SnatHelper::None);
  outWith(snat, tcp(kHostA, 40001, kRemote, 21, TcpHeader::kSyn), SnatHelper::Ftp);
  EXPECT_TRUE(plainIn(snat, tcp(kRemote, 80, kGateway, 40000, TcpHeader::kSyn | TcpHeader::kAck)));
  EXPECT_FALSE(plainIn(snat, tcp(kRemote, 21, kGateway, 40001, TcpHeader::kSyn | TcpHeader::kAck)));
  SnatTable next(clock);
  for (size_t at = 0; at + SnatTable::kRecordBytes <= replica.size();
       at += SnatTable::kRecordBytes) {
    EXPECT_TRUE(next.absorb(std::span(replica).subspan(at, SnatTable::kRecordBytes)));
  }
  EXPECT_EQ(next.size(), 2u);
  EXPECT_TRUE(plainIn(next, tcp(kRemote, 80, kGateway, 40000, TcpHeader::kAck)));
  EXPECT_FALSE(plainIn(next, tcp(kRemote, 21, kGateway, 40001, TcpHeader::kAck)));
  snat.persistTo(nullptr);
}

TEST_F(SnatTableTest, ExpiredMappingTakesNoReplyEvenBeforeTheSweep) {
  expectOut(echo(kHostA, kRemote, 8, 4000), echo(kGateway, kRemote, 8, 4000));
  clock.advance(29s);
  expectIn(echo(kRemote, kGateway, 0, 4000), echo(kRemote, kHostA, 0, 4000));
  clock.advance(30s);
  EXPECT_EQ(refusedIn(echo(kRemote, kGateway, 0, 4000)), DropReason::NatNoMapping);
  EXPECT_EQ(snat.size(), 0u);
}

TEST_F(SnatTableTest, ClosingTcpTimesOutSooner) {
  expectOut(tcp(kHostA, 40000, kRemote, 80, TcpHeader::kSyn),
            tcp(kGateway, 40000, kRemote, 80, TcpHeader::kSyn));
  expectOut(tcp(kHostA, 40001, kRemote, 80, TcpHeader::kSyn),
            tcp(kGateway, 40001, kRemote, 80, TcpHeader::kSyn));
  // The remote closes the first connection.
  expectIn(tcp(kRemote, 80, kGateway, 40000, TcpHeader::kFin | TcpHeader::kAck),
           tcp(kRemote, 80, kHostA, 40000, TcpHeader::kFin | TcpHeader::kAck));
  expectOut(tcp(kHostA, 40000, kRemote, 80, TcpHeader::kAck),
            tcp(kGateway, 40000, kRemote, 80, TcpHeader::kAck));
  clock.advance(121s);
  EXPECT_EQ(snat.sweep(), 1u);
  EXPECT_EQ(refusedIn(tcp(kRemote, 80, kGateway, 40000, TcpHeader::kAck)),
            DropReason::NatNoMapping);
  expectIn(tcp(kRemote, 80, kGateway, 40001, TcpHeader::kAck),
           tcp(kRemote, 80, kHostA, 40001, TcpHeader::kAck));
}

TEST_F(SnatTableTest, ExhaustionRefusesNewFlowsAndKeepsOldOnes) {
  SnatTable small(clock, {}, 16, 2000, 2001);
  auto outOf = [&](std::vector<uint8_t>& frame) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return small.translateOutbound(frame, p, kGateway);
  };
  auto inOf = [&](std::vector<uint8_t>& frame) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return small.translateInbound(frame, p);
  };
  auto a = udp(kHostA, 5000, kRemote, 53);
  auto b = udp(kHostB, 5000, kRemote, 53);
  auto c = udp(kHostB, 5001, kRemote, 53);
  ASSERT_EQ(outOf(a), DropReason::None);
  ASSERT_EQ(outOf(b), DropReason::None);
  EXPECT_EQ(a, udp(kGateway, 2000, kRemote, 53));
  EXPECT_EQ(b, udp(kGateway, 2001, kRemote, 53));
  auto before = c;
  EXPECT_EQ(outOf(c), DropReason::NatPortsExhausted);
  EXPECT_EQ(c, before);
  EXPECT_EQ(small.exhausted(), 1u);
  EXPECT_EQ(small.size(), 2u);
  // The existing mappings still work both ways.
  a = udp(kHostA, 5000, kRemote, 53);
  ASSERT_EQ(outOf(a), DropReason::None);
  EXPECT_EQ(a, udp(kGateway, 2000, kRemote, 53));
  auto reply = udp(kRemote, 53, kGateway, 2001);
  ASSERT_EQ(inOf(reply), DropReason::None);
  EXPECT_EQ(reply, udp(kRemote, 53, kHostB, 5000));
  // Other protocols have their own ports.
  auto ping = echo(kHostB, kRemote, 8, 2000);
  EXPECT_EQ(outOf(ping), DropReason::None);
}

TEST_F(SnatTableTest, FullTableRefusesNewMappingsUntilOnesExpire) {
  SnatTable small(clock, {}, 2);
  auto send = [&](uint16_t port) {
    auto frame = udp(kHostA, port, kRemote, 53);
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return small.translateOutbound(frame, p, kGateway);
  };
  ASSERT_EQ(send(5000), DropReason::None);
  ASSERT_EQ(send(5001), DropReason::None);
  EXPECT_EQ(send(5002), DropReason::NatTableFull);
  EXPECT_EQ(send(5000), DropReason::None);  // existing ones still pass
  clock.advance(181s);
  EXPECT_EQ(send(5002), DropReason::None);  // full: expired ones are swept first
  EXPECT_EQ(small.size(), 1u);
}

TEST_F(SnatTableTest, AnotherExternalAddressStartsTheFlowOver) {
  const Ipv4Address other = Ipv4Address::of(203, 0, 113, 2);
  expectOut(udp(kHostA, 5000, kRemote, 53), udp(kGateway, 5000, kRemote, 53));
  auto frame = udp(kHostA, 5000, kRemote, 53);
  ASSERT_EQ(out(frame, other), DropReason::None);
  EXPECT_EQ(frame, udp(other, 5000, kRemote, 53));
  EXPECT_EQ(refusedIn(udp(kRemote, 53, kGateway, 5000)), DropReason::NatNoMapping);
  expectIn(udp(kRemote, 53, other, 5000), udp(kRemote, 53, kHostA, 5000));
  EXPECT_EQ(snat.size(), 1u);
}

TEST_F(SnatTableTest, ALeaseOfPortsHoldsEveryNewMappingAndMovesOldOnes) {
  const PortRange lease{.first = 3072, .last = 5119};
  auto send = [&](std::vector<uint8_t> frame, PortRange ports) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    EXPECT_EQ(snat.translateOutbound(frame, p, kGateway, SnatHelper::None, nullptr, ports),
              DropReason::None);
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return p.key.tp_src;
  };
  EXPECT_EQ(send(udp(kHostA, 4000, kRemote, 53), lease), 4000) << "in the lease: kept";
  uint16_t moved = send(udp(kHostA, 40000, kRemote, 53), lease);
  EXPECT_TRUE(lease.contains(moved)) << moved;
  expectIn(udp(kRemote, 53, kGateway, moved), udp(kRemote, 53, kHostA, 40000));
  // A mapping made outside a new lease starts over inside it.
  uint16_t wide = send(udp(kHostB, 60000, kRemote, 53), {});
  EXPECT_EQ(wide, 60000);
  uint16_t now = send(udp(kHostB, 60000, kRemote, 53), lease);
  EXPECT_TRUE(lease.contains(now)) << now;
  EXPECT_EQ(refusedIn(udp(kRemote, 53, kGateway, 60000)), DropReason::NatNoMapping);
  EXPECT_EQ(snat.size(), 3u);
}

// Random flows from a few hosts and ports through a small port range: every
// packet sent out comes back to its sender, external ports of live mappings
// never collide, and exhaustion happens exactly when the range is used up.
TEST_F(SnatTableTest, RandomFlowsComeBackToTheirSenders) {
  uint64_t seed = testSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  constexpr uint16_t kFirst = 3000, kLast = 3063;
  SnatTable small(clock, {}, 1024, kFirst, kLast);
  // (protocol, host, port, remote port) -> external port
  std::map<std::tuple<uint8_t, uint8_t, uint16_t, uint16_t>, uint16_t> oracle;
  std::map<uint8_t, std::set<uint16_t>> used;
  for (int round = 0; round < 2000; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto host_byte = static_cast<uint8_t>(1 + rng() % 4);
    Ipv4Address host = Ipv4Address::of(10, 0, 0, host_byte);
    auto port = static_cast<uint16_t>(kFirst - 4 + rng() % 12);
    auto remote_port = static_cast<uint16_t>(53 + rng() % 3);
    int kind = static_cast<int>(rng() % 3);
    uint8_t proto = kind == 0   ? packet::ipproto::kUdp
                    : kind == 1 ? packet::ipproto::kTcp
                                : packet::ipproto::kIcmp;
    if (proto == packet::ipproto::kIcmp) remote_port = port;
    auto build = [&](Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport, bool reply) {
      if (kind == 0) return udp(src, sport, dst, dport);
      if (kind == 1) return tcp(src, sport, dst, dport, TcpHeader::kAck);
      return echo(src, dst, reply ? 0 : 8, reply ? dport : sport);
    };
    auto frame = build(host, port, kRemote, remote_port, false);
    packet::ParsedPacket p;
    ASSERT_EQ(packet::parse(frame, p), DropReason::None);
    auto key = std::make_tuple(proto, host_byte, port, remote_port);
    auto known = oracle.find(key);
    DropReason why = small.translateOutbound(frame, p, kGateway);
    if (known == oracle.end() && used[proto].size() == kLast - kFirst + 1u) {
      ASSERT_EQ(why, DropReason::NatPortsExhausted);
      continue;
    }
    ASSERT_EQ(why, DropReason::None);
    ASSERT_EQ(packet::parse(frame, p), DropReason::None);
    uint16_t external = proto == packet::ipproto::kIcmp ? p.key.icmp_id : p.key.tp_src;
    if (known != oracle.end()) {
      ASSERT_EQ(external, known->second);
    } else {
      ASSERT_TRUE(used[proto].insert(external).second) << "external port " << external;
      if (port >= kFirst && port <= kLast && external != port) {
        // The source port is kept unless another mapping holds it.
        bool held = false;
        for (const auto& [k, v] : oracle) held |= std::get<0>(k) == proto && v == port;
        ASSERT_TRUE(held) << "port " << port << " became " << external;
      }
      oracle[key] = external;
    }
    ASSERT_EQ(frame, build(kGateway, external, kRemote, remote_port, false));
    auto reply = build(kRemote, remote_port, kGateway, external, true);
    ASSERT_EQ(packet::parse(reply, p), DropReason::None);
    ASSERT_EQ(small.translateInbound(reply, p), DropReason::None);
    ASSERT_EQ(reply, build(kRemote, remote_port, host, port, true));
  }
  EXPECT_EQ(small.size(), oracle.size());
}

}  // namespace
}  // namespace canopy::datapath::nat
