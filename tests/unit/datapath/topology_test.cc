// Topology snapshots: lookups the simulator makes, and references checked
// when the snapshot is built.

#include "datapath/topology/topology.h"

#include <gtest/gtest.h>

namespace canopy::datapath::topology {
namespace {

const MacAddress kMac1{{0xfa, 0x16, 0x3e, 0, 0, 1}};
const MacAddress kMac2{{0xfa, 0x16, 0x3e, 0, 0, 2}};
const MacAddress kRouterMac{{0xfa, 0x16, 0x3e, 0, 0, 0xfe}};

TopologyBuilder twoPortsAndARouter() {
  TopologyBuilder b;
  b.addHost({.key = 1, .name = "host-a", .tunnel_ip = IpAddress::v4(192, 168, 0, 1)});
  b.addSwitch({.key = 1,
               .id = "net",
               .vni = 100,
               .mtu = 1442,
               .subnets = {{.id = "sub",
                            .cidr = *IpPrefix::parse("10.0.0.0/24"),
                            .gateway = IpAddress::v4(10, 0, 0, 1)}}});
  b.addGroup({.key = 5, .id = "sg", .rules = {{.id = "r1", .remote_group = 5}}});
  b.addPort({.key = 10,
             .id = "vm1",
             .switch_key = 1,
             .mac = kMac1,
             .ips = {IpAddress::v4(10, 0, 0, 5)},
             .groups = {5},
             .host = 1});
  b.addPort({.key = 11,
             .id = "vm2",
             .switch_key = 1,
             .mac = kMac2,
             .ips = {IpAddress::v4(10, 0, 0, 6)},
             .groups = {5}});
  b.addRouter({.key = 20,
               .id = "router",
               .interfaces = {{.port_key = 12,
                               .switch_key = 1,
                               .mac = kRouterMac,
                               .ip = IpAddress::v4(10, 0, 0, 1),
                               .subnet = *IpPrefix::parse("10.0.0.0/24")}}});
  b.addFloatingIp({.id = "fip",
                   .external = IpAddress::v4(203, 0, 113, 10),
                   .fixed = IpAddress::v4(10, 0, 0, 5),
                   .port_key = 10,
                   .router_key = 20});
  return b;
}

TEST(Topology, LookupsTheSimulatorMakes) {
  auto t = twoPortsAndARouter().build(7);
  ASSERT_TRUE(t) << t.error().toString();
  const Topology& topo = **t;
  EXPECT_EQ(topo.version(), 7u);
  ASSERT_NE(topo.portByMac(1, kMac2), nullptr);
  EXPECT_EQ(topo.portByMac(1, kMac2)->id, "vm2");
  EXPECT_EQ(topo.portByMac(2, kMac2), nullptr);
  EXPECT_EQ(topo.portByIp(1, IpAddress::v4(10, 0, 0, 5))->id, "vm1");
  const Router* router = nullptr;
  ASSERT_NE(topo.routerInterfaceOn(1, IpAddress::v4(10, 0, 0, 1), &router), nullptr);
  EXPECT_EQ(router->id, "router");
  EXPECT_EQ(topo.floatingIpFor(10, IpAddress::v4(10, 0, 0, 5))->id, "fip");
  EXPECT_EQ(topo.floatingIpAt(IpAddress::v4(203, 0, 113, 10))->port_key, 10u);
  EXPECT_EQ(topo.groupMembers(5), (std::vector<uint32_t>{10, 11}));
  EXPECT_TRUE(topo.findSwitch(1)->subnets[0].cidr.contains(IpAddress::v4(10, 0, 0, 200)));
  EXPECT_FALSE(topo.findSwitch(1)->subnets[0].cidr.contains(IpAddress::v4(10, 0, 1, 1)));
}

TEST(Topology, BadReferencesAreClearErrors) {
  auto expectError = [](TopologyBuilder b, const std::string& words) {
    auto t = b.build(1);
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message().find(words), std::string::npos) << t.error().message();
  };
  expectError(twoPortsAndARouter().addPort({.key = 13, .id = "lost", .switch_key = 9}),
              "port lost is on unknown switch 9");
  expectError(twoPortsAndARouter().addPort({.key = 10, .id = "twin", .switch_key = 1}),
              "two ports have key 10");
  expectError(
      twoPortsAndARouter().addPort({.key = 14, .id = "copy", .switch_key = 1, .mac = kMac1}),
      "MAC fa:16:3e:00:00:01 is taken");
  expectError(
      twoPortsAndARouter().addPort(
          {.key = 15, .id = "g", .switch_key = 1, .mac = {{2, 0, 0, 0, 0, 9}}, .groups = {99}}),
      "unknown security group 99");
  expectError(twoPortsAndARouter().addFloatingIp({.id = "f2", .port_key = 77}),
              "floating IP f2 is on unknown port 77");
}

// A router port with two addresses (IPv4 and IPv6 subnets on one port, as
// Neutron makes them) is two interfaces with one MAC; two ports with one
// MAC are refused.
TEST(Topology, ARouterPortWithTwoAddressesIsTwoInterfacesWithOneMac) {
  auto two = [](uint32_t second_port) {
    TopologyBuilder b;
    b.addSwitch({.key = 1, .id = "net"});
    b.addRouter({.key = 20,
                 .id = "router",
                 .interfaces = {{.port_key = 12,
                                 .switch_key = 1,
                                 .mac = kRouterMac,
                                 .ip = IpAddress::v4(10, 0, 0, 1),
                                 .subnet = *IpPrefix::parse("10.0.0.0/24")},
                                {.port_key = second_port,
                                 .switch_key = 1,
                                 .mac = kRouterMac,
                                 .ip = *IpAddress::parse("fd00::1"),
                                 .subnet = *IpPrefix::parse("fd00::/64")}}});
    return b.build(1);
  };
  auto t = two(12);
  ASSERT_TRUE(t) << t.error().toString();
  const Router* router = nullptr;
  EXPECT_NE((*t)->routerInterfaceOn(1, *IpAddress::parse("fd00::1"), &router), nullptr);
  EXPECT_NE((*t)->routerInterfaceOn(1, IpAddress::v4(10, 0, 0, 1), &router), nullptr);
  auto clash = two(13);
  ASSERT_FALSE(clash);
  EXPECT_NE(clash.error().message().find("is taken on its switch"), std::string::npos);
}

TEST(IpPrefix, ParsesAndContains) {
  auto p = IpPrefix::parse("fd00:20::/64");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->contains(*IpAddress::parse("fd00:20::1234")));
  EXPECT_FALSE(p->contains(*IpAddress::parse("fd00:21::1")));
  EXPECT_FALSE(p->contains(IpAddress::v4(10, 0, 0, 1)));
  EXPECT_EQ(IpPrefix::parse("10.1.2.0/23")->toString(), "10.1.2.0/23");
  EXPECT_TRUE(IpPrefix::parse("10.1.2.0/23")->contains(IpAddress::v4(10, 1, 3, 255)));
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/33"));
  EXPECT_FALSE(IpPrefix::parse("nonsense/8"));
  EXPECT_TRUE(IpPrefix::parse("0.0.0.0/0")->contains(IpAddress::v4(1, 2, 3, 4)));
}

}  // namespace
}  // namespace canopy::datapath::topology
