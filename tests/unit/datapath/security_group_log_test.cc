// Security-group logging (Neutron's logging API): a logged port's host
// records each new connection its groups accept and each packet they drop,
// once per connection for ACCEPT, within a rate limit (what is over it is
// counted, not kept), on cached decisions as on fresh ones.

#include <gtest/gtest.h>

#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using packet::TcpHeader;

std::vector<uint8_t> tcp(uint8_t from, uint8_t to, const char* src, const char* dst, uint16_t sport,
                         uint16_t dport, uint8_t flags) {
  return PacketBuilder()
      .eth(mac(0, from), mac(0, to))
      .ipv4(v4(src), v4(dst))
      .tcp(sport, dport, flags, 1000)
      .build();
}

class SecurityGroupLog : public ::testing::Test {
 protected:
  // vm2 (h2) logs what its groups decide: `events` of topology::Port's.
  void build(uint8_t events) {
    auto p = TopologyParts::of(**scenario().build(1));
    p.ports.at(kVm2).log_events = events;
    world_.setTopology(p.builder(), 2);
  }
  std::vector<pipeline::SecurityGroupLogRecord> records(uint32_t host) {
    return world_.host(host).shared().takeSecurityGroupLog();
  }

  World world_;
};

TEST_F(SecurityGroupLog, ANewConnectionIsLoggedOnceWhereItsGroupsAcceptIt) {
  build(topology::Port::kLogAccept | topology::Port::kLogDrop);
  auto syn = tcp(1, 2, "10.0.0.5", "10.0.0.6", 40000, 80, TcpHeader::kSyn);
  ASSERT_EQ(world_.fromPort(kH1, kVm1, syn).size(), 1u);
  auto logged = records(kH2);
  ASSERT_EQ(logged.size(), 1u);
  const auto& r = logged[0];
  EXPECT_TRUE(r.accepted);
  EXPECT_FALSE(r.egress);
  EXPECT_EQ(r.port_id, "port-vm2");
  EXPECT_EQ(r.protocol, 6);
  EXPECT_EQ(r.source, ip("10.0.0.5"));
  EXPECT_EQ(r.destination_port, 80);
  EXPECT_TRUE(records(kH1).empty()) << "vm1 logs nothing";
  // The rest of the connection is not logged again.
  world_.fromPort(kH2, kVm2,
                  tcp(2, 1, "10.0.0.6", "10.0.0.5", 80, 40000, TcpHeader::kSyn | TcpHeader::kAck));
  world_.fromPort(kH1, kVm1, tcp(1, 2, "10.0.0.5", "10.0.0.6", 40000, 80, TcpHeader::kAck));
  EXPECT_TRUE(records(kH2).empty());
}

TEST_F(SecurityGroupLog, DroppedPacketsAreLoggedOnlyWhenDropIsAsked) {
  // vm3 (web group, behind the router) is not in vm2's default group.
  auto refused = [&] {
    return PacketBuilder()
        .eth(mac(0, 3), kRouterNet2Mac)
        .ipv4(v4("10.0.1.5"), v4("10.0.0.6"))
        .tcp(40000, 22, TcpHeader::kSyn, 1000)
        .build();
  };
  build(topology::Port::kLogAccept);
  EXPECT_TRUE(world_.fromPort(kH1, kVm3, refused()).empty());
  EXPECT_TRUE(records(kH2).empty()) << "ACCEPT only";
  build(topology::Port::kLogDrop);
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(world_.fromPort(kH1, kVm3, refused()).empty());
  auto logged = records(kH2);
  ASSERT_EQ(logged.size(), 2u) << "each dropped packet, the cached one too";
  EXPECT_FALSE(logged[0].accepted);
  EXPECT_EQ(logged[0].destination_port, 22);
  EXPECT_EQ(world_.host(kH2).counters().dropped(DropReason::SecurityGroupIngress), 3u);
}

TEST_F(SecurityGroupLog, WhatIsOverTheRateIsCountedNotKept) {
  build(topology::Port::kLogDrop);
  auto& shared = world_.host(kH2).shared();
  for (int i = 0; i < 100; ++i) {
    world_.fromPort(kH1, kVm3,
                    PacketBuilder()
                        .eth(mac(0, 3), kRouterNet2Mac)
                        .ipv4(v4("10.0.1.5"), v4("10.0.0.6"))
                        .tcp(static_cast<uint16_t>(30000 + i), 22, TcpHeader::kSyn, 1000)
                        .build());
  }
  // Neutron's defaults: bursts of 25, 100 a second.
  EXPECT_EQ(records(kH2).size(), 25u);
  EXPECT_EQ(shared.securityGroupLogSuppressed(), 75u);
  world_.clock.advance(std::chrono::milliseconds(100));  // 10 more allowed
  for (int i = 0; i < 20; ++i) {
    world_.fromPort(kH1, kVm3,
                    PacketBuilder()
                        .eth(mac(0, 3), kRouterNet2Mac)
                        .ipv4(v4("10.0.1.5"), v4("10.0.0.6"))
                        .tcp(static_cast<uint16_t>(31000 + i), 22, TcpHeader::kSyn, 1000)
                        .build());
  }
  EXPECT_EQ(records(kH2).size(), 10u);
  EXPECT_EQ(shared.securityGroupLogWritten(), 35u);
}

}  // namespace
}  // namespace canopy::datapath::testing
