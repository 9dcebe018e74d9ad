// Trunk ports (Neutron's trunk): a VLAN on the parent's interface is a
// subport, a port of its own on its own network. Tagged frames from the
// parent go on as the subport's, untagged; what the subport receives (or is
// answered) leaves by the parent's interface with its tag; an unknown VLAN
// is dropped with its reason.

#include <gtest/gtest.h>

#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;

constexpr uint32_t kSubport = 50, kVm7 = 17;
constexpr uint16_t kVlan = 100;

// A frame with an 802.1Q tag of `vid` after its MACs.
std::vector<uint8_t> tagged(std::vector<uint8_t> frame, uint16_t vid) {
  const uint8_t tag[] = {0x81, 0x00, static_cast<uint8_t>(vid >> 8), static_cast<uint8_t>(vid)};
  frame.insert(frame.begin() + 12, std::begin(tag), std::end(tag));
  return frame;
}

std::vector<uint8_t> ping(MacAddress from, MacAddress to, const char* src, const char* dst) {
  return PacketBuilder().eth(from, to).ipv4(v4(src), v4(dst)).icmp(8, 0, 7, 1).build();
}

class Trunks : public ::testing::Test {
 protected:
  // vm1 (h1, net1) is a trunk's parent; its VLAN 100 is a subport on net2
  // (10.0.1.50, vm1's MAC, as guests' VLAN interfaces take it). vm7 is on
  // net2 on h2.
  void SetUp() override {
    auto p = TopologyParts::of(**scenario().build(1));
    p.ports[kSubport] = topology::Port{.key = kSubport,
                                       .id = "subport-id",
                                       .switch_key = kNet2,
                                       .mac = mac(0, 1),
                                       .ips = {ip("10.0.1.50")},
                                       .groups = {kWeb},
                                       .host = kH1,
                                       .trunk_parent = kVm1,
                                       .trunk_vid = kVlan};
    p.ports.at(kVm1).subports = {{kVlan, kSubport}};
    p.ports[kVm7] = topology::Port{.key = kVm7,
                                   .id = "vm7-id",
                                   .switch_key = kNet2,
                                   .mac = mac(0, 7),
                                   .ips = {ip("10.0.1.7")},
                                   .groups = {kWeb},
                                   .host = kH2};
    world_.setTopology(p.builder(), 2);
  }
  static uint16_t vlanOf(const std::vector<uint8_t>& frame) {
    if (frame.size() < 16 || frame[12] != 0x81 || frame[13] != 0x00) return 0;
    return static_cast<uint16_t>((frame[14] << 8 | frame[15]) & 0x0fff);
  }

  World world_;
};

TEST_F(Trunks, ASubportsVlanReachesItsNetworkUntagged) {
  auto r = world_.fromPort(kH1, kVm1,
                           tagged(ping(mac(0, 1), mac(0, 3), "10.0.1.50", "10.0.1.5"), kVlan));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].port, kVm3);
  EXPECT_EQ(vlanOf(r[0].bytes), 0) << "untagged on net2";
  // And across hosts.
  auto far = world_.fromPort(kH1, kVm1,
                             tagged(ping(mac(0, 1), mac(0, 7), "10.0.1.50", "10.0.1.7"), kVlan));
  ASSERT_EQ(far.size(), 1u);
  EXPECT_EQ(far[0].host, kH2);
  EXPECT_EQ(far[0].port, kVm7);
}

TEST_F(Trunks, WhatTheSubportReceivesLeavesByItsParentWithItsTag) {
  for (int i = 0; i < 2; ++i) {  // the second from the cache
    auto r = world_.fromPort(kH2, kVm7, ping(mac(0, 7), mac(0, 1), "10.0.1.7", "10.0.1.50"));
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].host, kH1);
    EXPECT_EQ(r[0].port, kVm1) << "the parent's interface carries it";
    EXPECT_EQ(vlanOf(r[0].bytes), kVlan);
    auto inner = r[0].bytes;
    inner.erase(inner.begin() + 12, inner.begin() + 16);
    EXPECT_EQ(inner, ping(mac(0, 7), mac(0, 1), "10.0.1.7", "10.0.1.50"));
  }
  // vm1's own traffic (net1) stays untagged.
  auto own = world_.fromPort(kH1, kVm5, ping(mac(0, 5), mac(0, 1), "10.0.0.8", "10.0.0.5"));
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].port, kVm1);
  EXPECT_EQ(vlanOf(own[0].bytes), 0);
}

TEST_F(Trunks, AnswersToTheSubportGoBackInItsVlan) {
  // ARP for net2's gateway, from the subport: the router's answer, tagged.
  auto arp = PacketBuilder()
                 .eth(mac(0, 1), MacAddress::broadcast())
                 .arp(1, mac(0, 1), v4("10.0.1.50"), MacAddress{}, v4("10.0.1.1"))
                 .build();
  auto r = world_.fromPort(kH1, kVm1, tagged(arp, kVlan));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].port, kVm1);
  EXPECT_EQ(vlanOf(r[0].bytes), kVlan);
  EXPECT_NE(describeFrame(r[0].bytes).find("10.0.1.1 is-at"), std::string::npos)
      << describeFrame(r[0].bytes);
}

TEST_F(Trunks, AVlanOfNoSubportIsDroppedWithItsReason) {
  auto r =
      world_.fromPort(kH1, kVm1, tagged(ping(mac(0, 1), mac(0, 3), "10.0.1.50", "10.0.1.5"), 200));
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::TrunkVlanUnknown), 1u);
  // On a port that is no trunk, a tag is port_not_trunk, as before.
  world_.fromPort(kH1, kVm5, tagged(ping(mac(0, 5), mac(0, 3), "10.0.0.8", "10.0.1.5"), kVlan));
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::PortNotTrunk), 1u);
}

TEST_F(Trunks, TheSubportsSecurityGroupsAndAddressesHold) {
  // Spoofed: the subport's VLAN with an address that is not its own.
  auto r = world_.fromPort(kH1, kVm1,
                           tagged(ping(mac(0, 1), mac(0, 3), "10.0.1.99", "10.0.1.5"), kVlan));
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::PortSecurityIp), 1u);
  // vm1's own address in the subport's VLAN is not the subport's either.
  r = world_.fromPort(kH1, kVm1, tagged(ping(mac(0, 1), mac(0, 3), "10.0.0.5", "10.0.1.5"), kVlan));
  EXPECT_TRUE(r.empty());
}

}  // namespace
}  // namespace canopy::datapath::testing
