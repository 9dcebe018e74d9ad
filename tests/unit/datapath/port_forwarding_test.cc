// Floating IP port forwarding (Neutron's floating-ip-port-forwarding): one
// unassociated floating IP forwards TCP and UDP ports (or ranges) to ports
// of different VMs. The router's gateway host answers for the address and
// translates what comes in; the VM's host translates the replies back.

#include <gtest/gtest.h>

#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using packet::TcpHeader;

const char* const kForwarded = "203.0.113.60";

std::vector<uint8_t> tcp(MacAddress from, MacAddress to, const char* src, const char* dst,
                         uint16_t sport, uint16_t dport, uint8_t flags) {
  return PacketBuilder()
      .eth(from, to)
      .ipv4(v4(src), v4(dst))
      .tcp(sport, dport, flags, 1000)
      .build();
}
std::vector<uint8_t> udp(MacAddress from, MacAddress to, const char* src, const char* dst,
                         uint16_t sport, uint16_t dport) {
  return PacketBuilder()
      .eth(from, to)
      .ipv4(v4(src), v4(dst))
      .udp(sport, dport)
      .payload("q")
      .build();
}

class PortForwarding : public ::testing::Test {
 protected:
  // 203.0.113.60 (r1's, gateway on h2): tcp 2222 -> vm1 (h1) :22, tcp 2223
  // -> vm6 (h3) :22, udp 5000-5009 -> vm1 6000-6009. The default group
  // lets ssh and those UDP ports in from anywhere.
  void SetUp() override {
    auto p = TopologyParts::of(**scenario().build(1));
    auto& rules = p.groups.at(kDefault).rules;
    rules.push_back({.id = "ssh",
                     .direction = topology::Direction::Ingress,
                     .protocol = 6,
                     .port_min = 22,
                     .port_max = 22});
    rules.push_back({.id = "udp",
                     .direction = topology::Direction::Ingress,
                     .protocol = 17,
                     .port_min = 6000,
                     .port_max = 6009});
    topology::FloatingIp f{.id = "fip-pf", .external = ip(kForwarded), .router_key = kRouter};
    f.forwardings = {{.protocol = 6,
                      .external_min = 2222,
                      .external_max = 2222,
                      .internal_min = 22,
                      .internal = ip("10.0.0.5"),
                      .port_key = kVm1},
                     {.protocol = 6,
                      .external_min = 2223,
                      .external_max = 2223,
                      .internal_min = 22,
                      .internal = ip("10.0.0.9"),
                      .port_key = kVm6},
                     {.protocol = 17,
                      .external_min = 5000,
                      .external_max = 5009,
                      .internal_min = 6000,
                      .internal = ip("10.0.0.5"),
                      .port_key = kVm1}};
    p.floating_ips.push_back(f);
    world_.setTopology(p.builder(), 2);
    for (uint32_t h : {kH1, kH2, kH3})
      world_.host(h).learnNeighbor(kPublic, ip("203.0.113.1"), kOutsideMac);
  }
  static uint16_t portAt(const std::vector<uint8_t>& frame, bool source) {
    packet::ParsedPacket p;
    if (packet::parse(frame, p) != DropReason::None) return 0;
    return source ? p.key.tp_src : p.key.tp_dst;
  }
  static std::string addressAt(const std::vector<uint8_t>& frame, bool source) {
    packet::ParsedPacket p;
    if (packet::parse(frame, p) != DropReason::None) return "";
    const auto& a = source ? p.key.ip_src : p.key.ip_dst;
    return IpAddress::v4(a[0], a[1], a[2], a[3]).toString();
  }

  World world_;
};

TEST_F(PortForwarding, ConnectionsToOneAddressReachDifferentVmsAndComeBackFromIt) {
  struct Case {
    uint16_t external;
    uint32_t vm, host;
    MacAddress mac;
    const char* address;
  };
  for (const Case& c : {Case{2222, kVm1, kH1, mac(0, 1), "10.0.0.5"},
                        Case{2223, kVm6, kH3, mac(0, 6), "10.0.0.9"}}) {
    for (int i = 0; i < 2; ++i) {  // the second from the cache
      auto in = world_.fromOutside(kH2, tcp(kOutsideMac, kGatewayMac, "198.51.100.7", kForwarded,
                                            40000, c.external, TcpHeader::kSyn));
      ASSERT_EQ(in.size(), 1u) << c.external;
      EXPECT_EQ(in[0].host, c.host);
      EXPECT_EQ(in[0].port, c.vm);
      EXPECT_EQ(addressAt(in[0].bytes, false), c.address);
      EXPECT_EQ(portAt(in[0].bytes, false), 22);
      EXPECT_EQ(addressAt(in[0].bytes, true), "198.51.100.7");
      // The reply, turned back on the VM's host, leaves by the gateway.
      auto out = world_.fromPort(c.host, c.vm,
                                 tcp(c.mac, kRouterNet1Mac, c.address, "198.51.100.7", 22, 40000,
                                     TcpHeader::kSyn | TcpHeader::kAck));
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0].kind, Outputs::Kind::Uplink);
      EXPECT_EQ(out[0].host, kH2) << "out of the gateway host's uplink";
      EXPECT_EQ(addressAt(out[0].bytes, true), kForwarded);
      EXPECT_EQ(portAt(out[0].bytes, true), c.external);
    }
  }
}

TEST_F(PortForwarding, ARangeKeepsItsOffset) {
  auto in = world_.fromOutside(
      kH2, udp(kOutsideMac, kGatewayMac, "198.51.100.7", kForwarded, 53000, 5003));
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].port, kVm1);
  EXPECT_EQ(portAt(in[0].bytes, false), 6003);
  auto out = world_.fromPort(
      kH1, kVm1, udp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 6003, 53000));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(portAt(out[0].bytes, true), 5003);
  EXPECT_EQ(addressAt(out[0].bytes, true), kForwarded);
}

TEST_F(PortForwarding, APortNoForwardingHasIsDropped) {
  auto in = world_.fromOutside(
      kH2, tcp(kOutsideMac, kGatewayMac, "198.51.100.7", kForwarded, 40000, 2224, TcpHeader::kSyn));
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(world_.host(kH2).counters().dropped(DropReason::FloatingIpPortNotForwarded), 1u);
  // Not TCP or UDP: nothing forwards it either.
  auto ping = PacketBuilder()
                  .eth(kOutsideMac, kGatewayMac)
                  .ipv4(v4("198.51.100.7"), v4(kForwarded))
                  .icmp(8, 0, 1, 1)
                  .build();
  EXPECT_TRUE(world_.fromOutside(kH2, ping).empty());
  EXPECT_EQ(world_.host(kH2).counters().dropped(DropReason::FloatingIpPortNotForwarded), 2u);
}

TEST_F(PortForwarding, TheGatewayHostAnswersForTheAddress) {
  auto arp = PacketBuilder()
                 .eth(kOutsideMac, MacAddress::broadcast())
                 .arp(1, kOutsideMac, v4("203.0.113.1"), MacAddress{}, v4(kForwarded))
                 .build();
  auto answer = world_.fromOutside(kH2, arp);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_NE(describeFrame(answer[0].bytes)
                .find(std::string(kForwarded) + " is-at " + kGatewayMac.toString()),
            std::string::npos)
      << describeFrame(answer[0].bytes);
  EXPECT_TRUE(world_.fromOutside(kH1, arp).empty()) << "only the gateway host answers";
}

TEST_F(PortForwarding, OtherTrafficOfTheVmIsNotTranslated) {
  // vm1 from another port goes out by router SNAT, as before.
  auto out = world_.fromPort(
      kH1, kVm1,
      tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 41000, 443, TcpHeader::kSyn));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(addressAt(out[0].bytes, true), "203.0.113.10") << "the router's SNAT address";
}

}  // namespace
}  // namespace canopy::datapath::testing
