// Traffic to and from outside that does not go the usual way: distributed
// SNAT (a host with an uplink and a lease of the gateway address's ports
// translates its own VMs' connections; the gateway's host steers the replies
// to it by port) and floating IPs of VMs on a host without an uplink (the
// gateway's host translates and carries them).
//
// In the scenario, h1 and h2 have uplinks and h3 has none; r1's gateway
// (203.0.113.10) is on h2.

#include <gtest/gtest.h>

#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using packet::TcpHeader;

const char* const kGatewayIp = "203.0.113.10";
const char* const kRemote = "198.51.100.7";

std::vector<uint8_t> tcp(MacAddress from, MacAddress to, const char* src, const char* dst,
                         uint16_t sport, uint16_t dport, uint8_t flags) {
  return PacketBuilder()
      .eth(from, to)
      .ipv4(v4(src), v4(dst))
      .tcp(sport, dport, flags, 1000)
      .build();
}

packet::FlowKey keyOf(const std::vector<uint8_t>& frame) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None);
  return p.key;
}
std::string address(const std::array<uint8_t, 16>& a) {
  return IpAddress::v4(a[0], a[1], a[2], a[3]).toString();
}

class DistributedSnat : public ::testing::Test {
 protected:
  // Central ports 1024-3071 (the gateway host's), h1 leases 3072-5119.
  void SetUp() override {
    parts_ = TopologyParts::of(**scenario().build(1));
    auto& gw = *parts_.routers.at(kRouter).gateway;
    gw.central_first = 1024;
    gw.central_last = 3071;
    gw.leases = {{.host = kH1, .first = 3072, .last = 5119}};
    parts_.groups.at(kDefault).rules.push_back({.id = "ssh",
                                                .direction = topology::Direction::Ingress,
                                                .protocol = 6,
                                                .port_min = 22,
                                                .port_max = 22});
    world_.setTopology(parts_.builder(), 2);
    for (uint32_t h : {kH1, kH2, kH3}) {
      world_.host(h).learnNeighbor(kPublic, ip("203.0.113.1"), kOutsideMac);
    }
  }

  TopologyParts parts_;
  World world_;
};

TEST_F(DistributedSnat, AHostWithALeaseTranslatesItsOwnVmsAndGetsTheRepliesByPort) {
  for (uint16_t sport : {uint16_t{41000}, uint16_t{4000}}) {  // 4000 is in the lease: kept
    auto out = world_.fromPort(
        kH1, kVm1,
        tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", kRemote, sport, 443, TcpHeader::kSyn));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].kind, Outputs::Kind::Uplink);
    EXPECT_EQ(out[0].host, kH1) << "no hop through the gateway host";
    auto k = keyOf(out[0].bytes);
    EXPECT_EQ(address(k.ip_src), kGatewayIp);
    EXPECT_GE(k.tp_src, 3072);
    EXPECT_LE(k.tp_src, 5119);
    if (sport == 4000) {
      EXPECT_EQ(k.tp_src, 4000);
    }
    EXPECT_EQ(k.eth_src, simulator::distributedSnatMac(kH1)) << "not the gateway's MAC";
    EXPECT_EQ(k.eth_dst, kOutsideMac);

    // The reply arrives where the gateway's address is: steered to h1.
    for (int i = 0; i < 2; ++i) {
      auto back = world_.fromOutside(kH2, tcp(kOutsideMac, kGatewayMac, kRemote, kGatewayIp, 443,
                                              k.tp_src, TcpHeader::kSyn | TcpHeader::kAck));
      ASSERT_EQ(back.size(), 1u);
      EXPECT_EQ(back[0].host, kH1);
      EXPECT_EQ(back[0].port, kVm1);
      auto r = keyOf(back[0].bytes);
      EXPECT_EQ(address(r.ip_dst), "10.0.0.5");
      EXPECT_EQ(r.tp_dst, sport);
    }
  }
  EXPECT_EQ(world_.host(kH2).counters().snat_steered, 4u);
  EXPECT_EQ(world_.host(kH2).shared().snatSize(), 0u) << "nothing translated on the gateway host";
}

TEST_F(DistributedSnat, AHostWithoutAnUplinkGoesByTheGatewayHostInTheCentralRange) {
  auto out = world_.fromPort(
      kH3, kVm6, tcp(mac(0, 6), kRouterNet1Mac, "10.0.0.9", kRemote, 41000, 443, TcpHeader::kSyn));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].host, kH2);
  auto k = keyOf(out[0].bytes);
  EXPECT_GE(k.tp_src, 1024);
  EXPECT_LE(k.tp_src, 3071);
  EXPECT_EQ(k.eth_src, kGatewayMac);
  auto back = world_.fromOutside(kH2, tcp(kOutsideMac, kGatewayMac, kRemote, kGatewayIp, 443,
                                          k.tp_src, TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].port, kVm6);
  EXPECT_EQ(world_.host(kH2).counters().snat_steered, 0u);
}

TEST_F(DistributedSnat, EchoRepliesAreSteeredByTheirIdentifier) {
  auto ping = PacketBuilder()
                  .eth(mac(0, 1), kRouterNet1Mac)
                  .ipv4(v4("10.0.0.5"), v4(kRemote))
                  .icmp(8, 0, 77, 1)
                  .build();
  auto out = world_.fromPort(kH1, kVm1, ping);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].host, kH1);
  auto k = keyOf(out[0].bytes);
  ASSERT_GE(k.icmp_id, 3072);
  ASSERT_LE(k.icmp_id, 5119);
  auto reply = PacketBuilder()
                   .eth(kOutsideMac, kGatewayMac)
                   .ipv4(v4(kRemote), v4(kGatewayIp))
                   .icmp(0, 0, k.icmp_id, 1)
                   .build();
  auto back = world_.fromOutside(kH2, reply);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].port, kVm1);
  EXPECT_EQ(keyOf(back[0].bytes).icmp_id, 77);
}

TEST_F(DistributedSnat, AReplyInALeaseThatMatchesNothingIsDroppedThere) {
  auto back = world_.fromOutside(kH2, tcp(kOutsideMac, kGatewayMac, kRemote, kGatewayIp, 443, 4500,
                                          TcpHeader::kSyn | TcpHeader::kAck));
  EXPECT_TRUE(back.empty());
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::NatNoMapping), 1u);
}

TEST_F(DistributedSnat, AnUnknownNextHopIsAskedForWithoutTheGatewaysAddress) {
  World fresh;
  fresh.setTopology(parts_.builder(), 2);
  auto out = fresh.fromPort(
      kH1, kVm1, tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", kRemote, 41000, 443, TcpHeader::kSyn));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].host, kH1);
  auto text = describeFrame(out[0].bytes);
  EXPECT_NE(text.find("who-has 203.0.113.1 tell 0.0.0.0"), std::string::npos) << text;
  EXPECT_EQ(keyOf(out[0].bytes).eth_src, simulator::distributedSnatMac(kH1));
}

TEST_F(DistributedSnat, WithoutALeaseTheHostSendsToTheGatewayHostAsBefore) {
  parts_.routers.at(kRouter).gateway->leases.clear();
  world_.setTopology(parts_.builder(), 3);
  auto out = world_.fromPort(
      kH1, kVm1, tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", kRemote, 41000, 443, TcpHeader::kSyn));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].host, kH2);
  EXPECT_EQ(keyOf(out[0].bytes).eth_src, kGatewayMac);
}

class FloatingIpByTheGateway : public DistributedSnat {
 protected:
  // vm6 (h3, no uplink) has 203.0.113.70.
  void SetUp() override {
    DistributedSnat::SetUp();
    parts_.routers.at(kRouter).gateway->leases.clear();
    parts_.floating_ips.push_back({.id = "fip6-id",
                                   .external = ip("203.0.113.70"),
                                   .fixed = ip("10.0.0.9"),
                                   .port_key = kVm6,
                                   .router_key = kRouter});
    world_.setTopology(parts_.builder(), 3);
  }
};

TEST_F(FloatingIpByTheGateway, TheGatewayHostAnswersArpForIt) {
  auto arp = PacketBuilder()
                 .eth(kOutsideMac, MacAddress::broadcast())
                 .arp(1, kOutsideMac, v4("203.0.113.1"), MacAddress{}, v4("203.0.113.70"))
                 .build();
  auto answer = world_.fromOutside(kH2, arp);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_NE(describeFrame(answer[0].bytes).find("203.0.113.70 is-at " + kGatewayMac.toString()),
            std::string::npos)
      << describeFrame(answer[0].bytes);
  EXPECT_TRUE(world_.fromOutside(kH1, arp).empty());
  // vm3's floating IP is still its own host's (h1 has an uplink).
  auto arp3 = PacketBuilder()
                  .eth(kOutsideMac, MacAddress::broadcast())
                  .arp(1, kOutsideMac, v4("203.0.113.1"), MacAddress{}, v4("203.0.113.50"))
                  .build();
  EXPECT_TRUE(world_.fromOutside(kH2, arp3).empty());
  EXPECT_EQ(world_.fromOutside(kH1, arp3).size(), 1u);
}

TEST_F(FloatingIpByTheGateway, ConnectionsInAndOutGoThroughTheGatewayHost) {
  for (int i = 0; i < 2; ++i) {  // the second from the cache
    auto in = world_.fromOutside(
        kH2, tcp(kOutsideMac, kGatewayMac, kRemote, "203.0.113.70", 40000, 22, TcpHeader::kSyn));
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0].host, kH3);
    EXPECT_EQ(in[0].port, kVm6);
    EXPECT_EQ(address(keyOf(in[0].bytes).ip_dst), "10.0.0.9");
    auto out = world_.fromPort(kH3, kVm6,
                               tcp(mac(0, 6), kRouterNet1Mac, "10.0.0.9", kRemote, 22, 40000,
                                   TcpHeader::kSyn | TcpHeader::kAck));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].kind, Outputs::Kind::Uplink);
    EXPECT_EQ(out[0].host, kH2);
    auto k = keyOf(out[0].bytes);
    EXPECT_EQ(address(k.ip_src), "203.0.113.70");
    EXPECT_EQ(k.tp_src, 22) << "1:1, ports kept";
    EXPECT_EQ(k.eth_src, kGatewayMac);
  }
  EXPECT_EQ(world_.host(kH2).shared().snatSize(), 0u) << "not router SNAT";
}

TEST_F(FloatingIpByTheGateway, AnUplinkOnTheVmsHostTakesItBack) {
  parts_.hosts.at(kH3).uplinks = {"physnet1"};
  world_.setTopology(parts_.builder(), 4);
  auto arp = PacketBuilder()
                 .eth(kOutsideMac, MacAddress::broadcast())
                 .arp(1, kOutsideMac, v4("203.0.113.1"), MacAddress{}, v4("203.0.113.70"))
                 .build();
  EXPECT_TRUE(world_.fromOutside(kH2, arp).empty()) << "h3 answers for it itself now";
}

}  // namespace
}  // namespace canopy::datapath::testing
