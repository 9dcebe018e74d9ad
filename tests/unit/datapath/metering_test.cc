// Metering labels on a router (Neutron's metering): what crosses its
// gateway is counted, where it crosses (the gateway host for SNAT, the VM's
// host for a floating IP), by the labels whose rules match and whose
// excluded rules do not; cached decisions count too.

#include <gtest/gtest.h>

#include "datapath/nat/maglev.h"
#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using topology::MeterLabel;
using topology::MeterRule;

std::vector<uint8_t> udp(MacAddress from, MacAddress to, const char* src, const char* dst,
                         uint16_t sport, uint16_t dport) {
  return PacketBuilder()
      .eth(from, to)
      .ipv4(v4(src), v4(dst))
      .udp(sport, dport)
      .payload("data")
      .build();
}
constexpr uint64_t kUdpBytes = 20 + 8 + 4;

class Metering : public ::testing::Test {
 protected:
  // r1's labels: everything out but to 198.51.100.99; what comes in from
  // 198.51.100.0/24; what leaves from net1 (source filter).
  void SetUp() override {
    auto p = TopologyParts::of(**scenario().build(1));
    p.routers.at(kRouter).meters = {
        MeterLabel{.id = "all-out",
                   .rules = {MeterRule{.remote = prefix("0.0.0.0/0")},
                             MeterRule{.excluded = true, .remote = prefix("198.51.100.99/32")}}},
        MeterLabel{.id = "in",
                   .rules = {MeterRule{.ingress = true, .remote = prefix("198.51.100.0/24")}}},
        MeterLabel{.id = "from-net1", .rules = {MeterRule{.source = prefix("10.0.0.0/24")}}}};
    world_.setTopology(p.builder(), 2);
    for (uint32_t h : {kH1, kH2})
      world_.host(h).learnNeighbor(kPublic, ip("203.0.113.1"), kOutsideMac);
  }
  pipeline::Counters::Metered counted(uint32_t host, const char* label) {
    const auto& m = world_.host(host).counters().meters;
    auto it = m.find(nat::stableHash(label));
    return it == m.end() ? pipeline::Counters::Metered{} : it->second;
  }

  World world_;
};

TEST_F(Metering, SnatTrafficIsCountedOnTheGatewayHostBothWays) {
  for (int i = 0; i < 2; ++i) {  // the second from the cache
    auto r = world_.fromPort(kH1, kVm1,
                             udp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 41000, 53));
    ASSERT_EQ(r.size(), 1u);
    ASSERT_EQ(r[0].host, kH2);
  }
  EXPECT_EQ(counted(kH2, "all-out").packets, 2u);
  EXPECT_EQ(counted(kH2, "all-out").bytes, 2 * kUdpBytes);
  EXPECT_EQ(counted(kH2, "from-net1").packets, 2u);
  EXPECT_EQ(counted(kH1, "all-out").packets, 0u) << "counted where it leaves, once";
  EXPECT_EQ(counted(kH2, "in").packets, 0u);

  // The answer comes in through SNAT's address, to vm1.
  auto back = world_.fromOutside(
      kH2, udp(kOutsideMac, kGatewayMac, "198.51.100.7", "203.0.113.10", 53, 41000));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(counted(kH2, "in").packets, 1u);
  EXPECT_EQ(counted(kH2, "in").bytes, kUdpBytes);

  // An excluded destination: not for "all-out", still from net1.
  world_.fromPort(kH1, kVm1,
                  udp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.99", 41000, 53));
  EXPECT_EQ(counted(kH2, "all-out").packets, 2u);
  EXPECT_EQ(counted(kH2, "from-net1").packets, 3u);
}

TEST_F(Metering, FloatingIpTrafficIsCountedOnTheVmsHost) {
  // vm3 (10.0.1.5, floating IP 203.0.113.50) on h1 sends out by its own uplink.
  auto r = world_.fromPort(kH1, kVm3,
                           udp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "198.51.100.7", 5000, 53));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].host, kH1);
  EXPECT_EQ(counted(kH1, "all-out").packets, 1u);
  EXPECT_EQ(counted(kH1, "from-net1").packets, 0u) << "its source is on net2";
  EXPECT_EQ(counted(kH2, "all-out").packets, 0u);
  world_.fromOutside(kH1, udp(kOutsideMac, mac(0, 3), "198.51.100.7", "203.0.113.50", 53, 5000));
  EXPECT_EQ(counted(kH1, "in").packets, 1u);
}

TEST_F(Metering, TrafficInsideTheCloudIsNotCounted) {
  auto r =
      world_.fromPort(kH1, kVm1, udp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 41000, 53));
  EXPECT_TRUE(world_.host(kH1).counters().meters.empty());
  EXPECT_TRUE(world_.host(kH2).counters().meters.empty());
}

}  // namespace
}  // namespace canopy::datapath::testing
