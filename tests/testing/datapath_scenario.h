#pragma once
// The datapath tests' cloud, as a topology: hosts h1..h3, two tenants whose
// networks overlap, a router with an external gateway and SNAT, and a
// floating IP; plus short helpers for the MACs and addresses they use.
// Header-only, so the unit tests' World and the fuzz targets (which build
// without the unit tests) share one definition.
//
//   auto topology = testing::scenario().build(1);
//   const auto* vm3 = (*topology)->findPort(testing::world::kVm3);
//
// Thread-safety: pure functions and constants.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "datapath/packet/wire.h"
#include "datapath/topology/topology.h"

namespace canopy::datapath::testing {

using packet::Ipv4Address;
using packet::MacAddress;

inline MacAddress mac(uint8_t a, uint8_t b) { return {{0xfa, 0x16, 0x3e, 0x00, a, b}}; }
inline IpPrefix prefix(const char* text) { return *IpPrefix::parse(text); }
inline IpAddress ip(const char* text) { return *IpAddress::parse(text); }
inline Ipv4Address v4(const char* text) {
  IpAddress a = ip(text);
  return Ipv4Address::of(a);
}

// The scenario's names, to keep tests readable.
namespace world {
inline constexpr uint32_t kH1 = 1, kH2 = 2, kH3 = 3;
inline constexpr uint32_t kNet1 = 1, kNet2 = 2, kNetB = 3, kPublic = 100;
inline constexpr uint32_t kVm1 = 11, kVm2 = 12, kVm3 = 13, kVm5 = 15, kVm6 = 16, kVmB = 21;
inline constexpr uint32_t kRouter = 1;
inline constexpr uint32_t kDefault = 1, kWeb = 2, kDefaultB = 3;
inline const MacAddress kOutsideMac{{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}};
inline const MacAddress kRouterNet1Mac = mac(1, 1), kRouterNet2Mac = mac(1, 2),
                        kGatewayMac = mac(1, 0);
}  // namespace world

// Tenant A: net1 (10.0.0.0/24, VNI 101) with vm1 and vm5 on h1, vm2 on h2,
// vm6 on h3; net2 (10.0.1.0/24, VNI 102, MTU 1400) with vm3 on h1; router
// r1 joining them, its gateway on "public" (203.0.113.0/24, physnet1)
// held by h2 with SNAT; floating IP 203.0.113.50 for vm3. Groups: default
// (egress all, ingress from default) on vm1, vm2, vm5, vm6; web (ingress
// tcp 80 and icmp from anywhere, egress all) on vm3. Tenant B: net-b with
// the same 10.0.0.0/24 (VNI 201), vmb on h1 with 10.0.0.5 too.
inline topology::TopologyBuilder scenario() {
  using namespace world;
  using topology::Direction;
  topology::TopologyBuilder b;
  // h1 and h2 have uplinks to physnet1 (as World's datapaths), h3 none.
  b.addHost({.key = kH1, .name = "h1", .tunnel_ip = ip("192.168.100.1"), .uplinks = {"physnet1"}})
      .addHost(
          {.key = kH2, .name = "h2", .tunnel_ip = ip("192.168.100.2"), .uplinks = {"physnet1"}})
      .addHost({.key = kH3, .name = "h3", .tunnel_ip = ip("192.168.100.3")});
  b.addSwitch({.key = kNet1,
               .id = "net1-id",
               .name = "net1",
               .vni = 101,
               .mtu = 1442,
               .subnets = {{.id = "subnet1-id",
                            .cidr = prefix("10.0.0.0/24"),
                            .gateway = ip("10.0.0.1"),
                            .dns_servers = {ip("192.0.2.53")},
                            .host_routes = {{prefix("192.168.50.0/24"), ip("10.0.0.254")}}}},
               .dns_domain = "openstacklocal"});
  b.addSwitch(
      {.key = kNet2,
       .id = "net2-id",
       .name = "net2",
       .vni = 102,
       .mtu = 1400,
       .subnets = {
           {.id = "subnet2-id", .cidr = prefix("10.0.1.0/24"), .gateway = ip("10.0.1.1")}}});
  b.addSwitch(
      {.key = kNetB,
       .id = "netb-id",
       .name = "net-b",
       .vni = 201,
       .mtu = 1442,
       .subnets = {
           {.id = "subnetb-id", .cidr = prefix("10.0.0.0/24"), .gateway = ip("10.0.0.1")}}});
  b.addSwitch({.key = kPublic,
               .id = "public-id",
               .name = "public",
               .vni = 1000,
               .mtu = 1500,
               .subnets = {{.id = "public-subnet-id",
                            .cidr = prefix("203.0.113.0/24"),
                            .gateway = ip("203.0.113.1"),
                            .dhcp = false}},
               .external = true,
               .physical_network = "physnet1"});
  using topology::Rule;
  b.addGroup({.key = kDefault,
              .id = "sg-default-id",
              .name = "default",
              .rules = {Rule{.id = "rule-default-egress", .direction = Direction::Egress},
                        Rule{.id = "rule-default-ingress",
                             .direction = Direction::Ingress,
                             .remote_group = kDefault}}});
  b.addGroup({.key = kWeb,
              .id = "sg-web-id",
              .name = "web",
              .rules = {Rule{.id = "rule-web-http",
                             .direction = Direction::Ingress,
                             .protocol = 6,
                             .port_min = 80,
                             .port_max = 80,
                             .remote_prefix = prefix("0.0.0.0/0")},
                        Rule{.id = "rule-web-icmp", .direction = Direction::Ingress, .protocol = 1},
                        Rule{.id = "rule-web-egress", .direction = Direction::Egress}}});
  b.addGroup({.key = kDefaultB,
              .id = "sg-default-b-id",
              .name = "default",
              .rules = {Rule{.id = "rule-b-egress", .direction = Direction::Egress},
                        Rule{.id = "rule-b-ingress",
                             .direction = Direction::Ingress,
                             .remote_group = kDefaultB}}});
  auto vm = [&](uint32_t key, const char* name, uint32_t sw, uint8_t m, const char* address,
                uint32_t host, std::vector<uint32_t> groups) {
    b.addPort({.key = key,
               .id = std::string("port-") + name,
               .switch_key = sw,
               .mac = mac(0, m),
               .ips = {ip(address)},
               .groups = std::move(groups),
               .host = host,
               .device_owner = "compute:nova",
               .name = name});
  };
  vm(kVm1, "vm1", kNet1, 1, "10.0.0.5", kH1, {kDefault});
  vm(kVm2, "vm2", kNet1, 2, "10.0.0.6", kH2, {kDefault});
  vm(kVm5, "vm5", kNet1, 5, "10.0.0.8", kH1, {kDefault});
  vm(kVm6, "vm6", kNet1, 6, "10.0.0.9", kH3, {kDefault});
  vm(kVm3, "vm3", kNet2, 3, "10.0.1.5", kH1, {kWeb});
  vm(kVmB, "vmb", kNetB, 0x21, "10.0.0.5", kH1, {kDefaultB});
  b.addRouter({.key = kRouter,
               .id = "router1-id",
               .name = "r1",
               .interfaces = {{.port_key = 901,
                               .switch_key = kNet1,
                               .mac = kRouterNet1Mac,
                               .ip = ip("10.0.0.1"),
                               .subnet = prefix("10.0.0.0/24")},
                              {.port_key = 902,
                               .switch_key = kNet2,
                               .mac = kRouterNet2Mac,
                               .ip = ip("10.0.1.1"),
                               .subnet = prefix("10.0.1.0/24")}},
               .gateway = topology::Gateway{.port_key = 903,
                                            .switch_key = kPublic,
                                            .mac = kGatewayMac,
                                            .ips = {ip("203.0.113.10")},
                                            .snat = true,
                                            .host = kH2,
                                            .nexthop = ip("203.0.113.1")}});
  b.addFloatingIp({.id = "fip1-id",
                   .external = ip("203.0.113.50"),
                   .fixed = ip("10.0.1.5"),
                   .port_key = kVm3,
                   .router_key = kRouter});
  return b;
}

// An editable copy of a topology's objects: change what a test needs and
// build a new version, as the control plane would send it.
//
//   auto parts = TopologyParts::of(**scenario().build(1));
//   parts.ports.at(world::kVm3).admin_up = false;
//   auto next = parts.builder().build(2);
struct TopologyParts {
  std::map<uint32_t, topology::Switch> switches;
  std::map<uint32_t, topology::Port> ports;
  std::map<uint32_t, topology::Router> routers;
  std::map<uint32_t, topology::SecurityGroup> groups;
  std::map<uint32_t, topology::Host> hosts;
  std::vector<topology::FloatingIp> floating_ips;

  static TopologyParts of(const topology::Topology& t) {
    return {t.switches(), t.ports(), t.routers(), t.groups(), t.hosts(), t.floatingIps()};
  }
  topology::TopologyBuilder builder() const {
    topology::TopologyBuilder b;
    for (const auto& [key, s] : switches) b.addSwitch(s);
    for (const auto& [key, p] : ports) b.addPort(p);
    for (const auto& [key, r] : routers) b.addRouter(r);
    for (const auto& [key, g] : groups) b.addGroup(g);
    for (const auto& [key, h] : hosts) b.addHost(h);
    for (const auto& f : floating_ips) b.addFloatingIp(f);
    return b;
  }
};

// IPv6 beside the scenario's IPv4: net1 gets fd00:1::/64 (SLAAC, a DNS
// server), net2 fd00:2::/64 (DHCPv6-stateful, same server); r1 an
// interface on each, on its IPv4 ports (one MAC); vm1, vm2 fd00:1::5, ::6,
// vm3 fd00:2::5; the default group IPv6 rules as Neutron's, web ICMPv6 in.
inline void addIpv6(TopologyParts& p) {
  using namespace world;
  using topology::Ipv6Mode;
  p.switches.at(kNet1).subnets.push_back({.id = "subnet1-v6",
                                          .cidr = prefix("fd00:1::/64"),
                                          .gateway = ip("fd00:1::1"),
                                          .dns_servers = {ip("fd00::53")},
                                          .ra_mode = Ipv6Mode::Slaac,
                                          .address_mode = Ipv6Mode::Slaac});
  p.switches.at(kNet2).subnets.push_back({.id = "subnet2-v6",
                                          .cidr = prefix("fd00:2::/64"),
                                          .gateway = ip("fd00:2::1"),
                                          .dns_servers = {ip("fd00::53")},
                                          .ra_mode = Ipv6Mode::Dhcpv6Stateful,
                                          .address_mode = Ipv6Mode::Dhcpv6Stateful});
  p.routers.at(kRouter).interfaces.push_back({.port_key = 901,
                                              .switch_key = kNet1,
                                              .mac = kRouterNet1Mac,
                                              .ip = ip("fd00:1::1"),
                                              .subnet = prefix("fd00:1::/64")});
  p.routers.at(kRouter).interfaces.push_back({.port_key = 902,
                                              .switch_key = kNet2,
                                              .mac = kRouterNet2Mac,
                                              .ip = ip("fd00:2::1"),
                                              .subnet = prefix("fd00:2::/64")});
  p.ports.at(kVm1).ips.push_back(ip("fd00:1::5"));
  p.ports.at(kVm2).ips.push_back(ip("fd00:1::6"));
  p.ports.at(kVm3).ips.push_back(ip("fd00:2::5"));
  using topology::Direction;
  using topology::Rule;
  auto& def = p.groups.at(kDefault).rules;
  def.push_back({.id = "v6-egress", .direction = Direction::Egress, .family = 6});
  def.push_back(
      {.id = "v6-ingress", .direction = Direction::Ingress, .family = 6, .remote_group = kDefault});
  auto& web = p.groups.at(kWeb).rules;
  web.push_back({.id = "v6-icmp", .direction = Direction::Ingress, .family = 6, .protocol = 58});
  web.push_back({.id = "v6-web-egress", .direction = Direction::Egress, .family = 6});
}

}  // namespace canopy::datapath::testing
