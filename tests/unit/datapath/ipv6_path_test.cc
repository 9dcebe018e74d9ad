// IPv6 for guests, one host's datapath at a time: router advertisements as
// Neutron's modes say, DHCPv6 on the VM's host, neighbour discovery for the
// router's link-local address, what port security refuses (advertisements,
// DHCP servers, spoofed advertisements and link-local addresses), what the
// security groups always let pass, ICMPv6 from the router (echo, errors,
// packet too big).

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "datapath/packet/dhcpv6.h"
#include "datapath/simulator/advertisements.h"
#include "datapath/simulator/replies.h"
#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::Ipv6Address;
using packet::PacketBuilder;
using simulator::linkLocalOf;
using topology::Ipv6Mode;
using Received = World::Received;

packet::ParsedPacket parsed(std::span<const uint8_t> frame) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None) << describeFrame(frame);
  return p;
}
Ipv6Address v6(const char* text) { return Ipv6Address::of(ip(text)); }
Ipv6Address v6(const IpAddress& a) { return Ipv6Address::of(a); }

// The options of a router advertisement, by type.
std::vector<std::vector<uint8_t>> raOptions(const std::vector<uint8_t>& frame, uint8_t type) {
  auto p = parsed(frame);
  std::vector<std::vector<uint8_t>> out;
  size_t at = p.l4_offset + 16;
  while (at + 2 <= p.l3_end && frame[at + 1] != 0) {
    size_t length = frame[at + 1] * size_t{8};
    if (frame[at] == type) {
      auto from = frame.begin() + static_cast<std::ptrdiff_t>(at);
      out.emplace_back(from, from + static_cast<std::ptrdiff_t>(length));
    }
    at += length;
  }
  return out;
}

class Ipv6Path : public ::testing::Test {
 protected:
  // The scenario with IPv6 (testing/datapath_scenario.h, addIpv6).
  void SetUp() override {
    auto p = TopologyParts::of(**scenario().build(1));
    addIpv6(p);
    world_.setTopology(p.builder(), 2);
  }

  std::vector<uint8_t> icmpv6(MacAddress from, MacAddress to, const IpAddress& src,
                              const IpAddress& dst, uint8_t type, std::vector<uint8_t> body = {},
                              uint8_t hop_limit = 255) {
    return PacketBuilder()
        .eth(from, to)
        .ipv6(v6(src), v6(dst), hop_limit)
        .icmp(type, 0)
        .payload(body)
        .build();
  }
  std::vector<uint8_t> solicitRouter(MacAddress from) {
    return icmpv6(from, {{0x33, 0x33, 0, 0, 0, 2}}, linkLocalOf(from), ip("ff02::2"), 133);
  }
  uint64_t drops(uint32_t host, DropReason why) {
    return world_.host(host).counters().dropped(why);
  }

  World world_;
};

TEST_F(Ipv6Path, ARouterSolicitationGetsTheAdvertisementOfTheSubnetsMode) {
  auto slaac = world_.fromPort(kH1, kVm1, solicitRouter(mac(0, 1)));
  ASSERT_EQ(slaac.size(), 1u);
  ASSERT_EQ(slaac[0].port, kVm1);
  const auto& ra = slaac[0].bytes;
  auto p = parsed(ra);
  EXPECT_EQ(p.key.tp_src, 134);
  EXPECT_EQ(p.key.ip_ttl, 255);
  EXPECT_EQ(p.key.eth_src, kRouterNet1Mac);
  EXPECT_EQ(IpAddress(6, p.key.ip_src), linkLocalOf(kRouterNet1Mac));
  EXPECT_EQ(IpAddress(6, p.key.ip_dst), linkLocalOf(mac(0, 1)));
  EXPECT_EQ(ra[p.l4_offset + 4], 64);  // current hop limit
  EXPECT_EQ(ra[p.l4_offset + 5], 0);   // neither M nor O
  EXPECT_EQ(ra[p.l4_offset + 6] << 8 | ra[p.l4_offset + 7], simulator::kRouterLifetime);
  auto prefixes = raOptions(ra, 3);
  ASSERT_EQ(prefixes.size(), 1u);
  EXPECT_EQ(prefixes[0][2], 64);
  EXPECT_EQ(prefixes[0][3], 0xc0);  // on-link, autonomous
  EXPECT_TRUE(
      std::equal(prefixes[0].begin() + 16, prefixes[0].end(), v6("fd00:1::").bytes.begin()));
  auto mtu = raOptions(ra, 5);
  ASSERT_EQ(mtu.size(), 1u);
  EXPECT_EQ(mtu[0][6] << 8 | mtu[0][7], 1442);
  auto dns = raOptions(ra, 25);
  ASSERT_EQ(dns.size(), 1u);
  EXPECT_TRUE(std::equal(dns[0].begin() + 8, dns[0].end(), v6("fd00::53").bytes.begin()));
  ASSERT_EQ(raOptions(ra, 1).size(), 1u);

  auto stateful = world_.fromPort(kH1, kVm3, solicitRouter(mac(0, 3)));
  ASSERT_EQ(stateful.size(), 1u);
  const auto& ra2 = stateful[0].bytes;
  auto p2 = parsed(ra2);
  EXPECT_EQ(ra2[p2.l4_offset + 5], 0x80);  // M: addresses by DHCPv6
  ASSERT_EQ(raOptions(ra2, 3).size(), 1u);
  EXPECT_EQ(raOptions(ra2, 3)[0][3], 0x80);  // on-link, not autonomous
  EXPECT_EQ(raOptions(ra2, 25).size(), 0u) << "DNS by DHCPv6 on a stateful subnet";
  EXPECT_EQ(raOptions(ra2, 5)[0][6] << 8 | raOptions(ra2, 5)[0][7], 1400);
}

TEST_F(Ipv6Path, NoAdvertisementWithoutAnRaMode) {
  auto p = TopologyParts::of(**scenario().build(1));
  p.switches.at(kNet1).subnets.push_back(
      {.id = "plain-v6", .cidr = prefix("fd00:1::/64"), .gateway = ip("fd00:1::1")});
  p.routers.at(kRouter).interfaces.push_back({.port_key = 901,
                                              .switch_key = kNet1,
                                              .mac = kRouterNet1Mac,
                                              .ip = ip("fd00:1::1"),
                                              .subnet = prefix("fd00:1::/64")});
  world_.setTopology(p.builder(), 3);
  for (const auto& r : world_.fromPort(kH1, kVm1, solicitRouter(mac(0, 1)))) {
    EXPECT_NE(parsed(r.bytes).key.tp_src, 134) << describeFrame(r.bytes);
  }
}

TEST_F(Ipv6Path, TheRoutersLinkLocalAddressIsAnsweredAndEchoes) {
  auto target = v6(linkLocalOf(kRouterNet1Mac));
  std::vector<uint8_t> body(target.bytes.begin(), target.bytes.end());
  auto na = world_.fromPort(kH1, kVm1,
                            icmpv6(mac(0, 1), {{0x33, 0x33, 0xff, 0, 1, 1}}, linkLocalOf(mac(0, 1)),
                                   ip("ff02::1:ff00:101"), 135, body));
  ASSERT_EQ(na.size(), 1u);
  EXPECT_EQ(parsed(na[0].bytes).key.tp_src, 136);
  EXPECT_EQ(parsed(na[0].bytes).key.eth_src, kRouterNet1Mac);

  for (IpAddress to : {linkLocalOf(kRouterNet1Mac), ip("fd00:1::1"), ip("fd00:2::1")}) {
    auto echo = PacketBuilder()
                    .eth(mac(0, 1), kRouterNet1Mac)
                    .ipv6(v6("fd00:1::5"), v6(to))
                    .icmp(128, 0, 9, 3)
                    .payload("ping6")
                    .build();
    auto reply = world_.fromPort(kH1, kVm1, echo);
    ASSERT_EQ(reply.size(), 1u) << to.toString();
    auto r = parsed(reply[0].bytes);
    EXPECT_EQ(r.key.tp_src, 129);
    EXPECT_EQ(IpAddress(6, r.key.ip_src), to);
    EXPECT_EQ(IpAddress(6, r.key.ip_dst), ip("fd00:1::5"));
  }
}

TEST_F(Ipv6Path, DhcpV6GivesTheStatefulAddressAndTheRest) {
  auto client = packet::duidOf(mac(0, 3));
  packet::Dhcpv6Options o;
  o.add(packet::dhcpv6::kClientId, client);
  o.addIaNa(7, 0, 0, {});
  auto solicit = PacketBuilder()
                     .eth(mac(0, 3), {{0x33, 0x33, 0, 1, 0, 2}})
                     .ipv6(v6(linkLocalOf(mac(0, 3))), v6("ff02::1:2"))
                     .udp(546, 547)
                     .payload(packet::dhcpv6Request(packet::dhcpv6::kSolicit, 0x123456, o))
                     .build();
  auto answer = world_.fromPort(kH1, kVm3, solicit);
  ASSERT_EQ(answer.size(), 1u);
  auto p = parsed(answer[0].bytes);
  EXPECT_EQ(p.key.tp_src, 547);
  EXPECT_EQ(p.key.tp_dst, 546);
  EXPECT_EQ(IpAddress(6, p.key.ip_src), linkLocalOf(kRouterNet2Mac));
  EXPECT_EQ(IpAddress(6, p.key.ip_dst), linkLocalOf(mac(0, 3)));
  auto payload = std::span<const uint8_t>(answer[0].bytes).subspan(p.payload_offset);
  EXPECT_EQ(payload[0], packet::dhcpv6::kAdvertise);
  EXPECT_EQ(payload[1] << 16 | payload[2] << 8 | payload[3], 0x123456);
  auto has = [&](const Ipv6Address& a) {
    return std::search(payload.begin(), payload.end(), a.bytes.begin(), a.bytes.end()) !=
           payload.end();
  };
  EXPECT_TRUE(has(v6("fd00:2::5"))) << "the port's address in the IA";
  EXPECT_TRUE(has(v6("fd00::53"))) << "the DNS server";
  EXPECT_TRUE(std::search(payload.begin(), payload.end(), client.begin(), client.end()) !=
              payload.end());

  // Stateless (SLAAC subnet without DHCPv6): nothing answers at the edge.
  auto info = PacketBuilder()
                  .eth(mac(0, 1), {{0x33, 0x33, 0, 1, 0, 2}})
                  .ipv6(v6(linkLocalOf(mac(0, 1))), v6("ff02::1:2"))
                  .udp(546, 547)
                  .payload(packet::dhcpv6Request(packet::dhcpv6::kInformationRequest, 1, o))
                  .build();
  for (const auto& r : world_.fromPort(kH1, kVm1, info)) {
    EXPECT_NE(r.port, kVm1) << describeFrame(r.bytes);
  }
  // A malformed message is a counted drop.
  auto bad = PacketBuilder()
                 .eth(mac(0, 3), {{0x33, 0x33, 0, 1, 0, 2}})
                 .ipv6(v6(linkLocalOf(mac(0, 3))), v6("ff02::1:2"))
                 .udp(546, 547)
                 .payload(std::string("\x01\x00\x00\x01\x00\x01\x00\x30", 8))
                 .build();
  EXPECT_TRUE(world_.fromPort(kH1, kVm3, bad).empty());
  EXPECT_EQ(drops(kH1, DropReason::Dhcpv6BadOption), 1u);
}

TEST_F(Ipv6Path, PortSecurityRefusesWhatOnlyRoutersAndServersSay) {
  // A router advertisement from a VM.
  EXPECT_TRUE(world_
                  .fromPort(kH1, kVm1,
                            icmpv6(mac(0, 1), {{0x33, 0x33, 0, 0, 0, 1}}, linkLocalOf(mac(0, 1)),
                                   ip("ff02::1"), 134, std::vector<uint8_t>(8)))
                  .empty());
  EXPECT_EQ(drops(kH1, DropReason::PortSecurityRouterAdvertisement), 1u);
  // A neighbour advertisement for vm2's address.
  auto target = v6("fd00:1::6");
  std::vector<uint8_t> body(target.bytes.begin(), target.bytes.end());
  EXPECT_TRUE(world_
                  .fromPort(kH1, kVm1,
                            icmpv6(mac(0, 1), {{0x33, 0x33, 0, 0, 0, 1}}, ip("fd00:1::5"),
                                   ip("ff02::1"), 136, body))
                  .empty());
  EXPECT_EQ(drops(kH1, DropReason::PortSecurityNeighborAdvertisement), 1u);
  // For its own: to the others on the network.
  auto own = v6("fd00:1::5");
  std::vector<uint8_t> mine(own.bytes.begin(), own.bytes.end());
  EXPECT_FALSE(world_
                   .fromPort(kH1, kVm1,
                             icmpv6(mac(0, 1), {{0x33, 0x33, 0, 0, 0, 1}}, ip("fd00:1::5"),
                                    ip("ff02::1"), 136, mine))
                   .empty());
  // A DHCPv6 server's reply.
  auto reply = PacketBuilder()
                   .eth(mac(0, 1), mac(0, 2))
                   .ipv6(v6(linkLocalOf(mac(0, 1))), v6(linkLocalOf(mac(0, 2))))
                   .udp(547, 546)
                   .payload("x")
                   .build();
  EXPECT_TRUE(world_.fromPort(kH1, kVm1, reply).empty());
  EXPECT_EQ(drops(kH1, DropReason::PortSecurityDhcpServer), 1u);
  // A link-local source that is not its MAC's.
  auto spoof = icmpv6(mac(0, 1), mac(0, 2), linkLocalOf(mac(0, 2)), ip("fd00:1::6"), 128, {}, 64);
  EXPECT_TRUE(world_.fromPort(kH1, kVm1, spoof).empty());
  EXPECT_EQ(drops(kH1, DropReason::PortSecurityIp), 1u);
  // Neighbour discovery with another hop limit than 255.
  EXPECT_TRUE(world_
                  .fromPort(kH1, kVm1,
                            icmpv6(mac(0, 1), {{0x33, 0x33, 0, 0, 0, 2}}, linkLocalOf(mac(0, 1)),
                                   ip("ff02::2"), 133, {}, 64))
                  .empty());
  EXPECT_EQ(drops(kH1, DropReason::NdBadHopLimit), 1u);
}

TEST_F(Ipv6Path, NeighbourDiscoveryCrossesGroupsThatAllowNothing) {
  // vm3's group (web) allows only ICMP in; vm1 on another network... but
  // on its own: vm2 without any group at all still hears solicitations.
  auto p = TopologyParts::of(**scenario().build(1));
  p.switches.at(kNet1).subnets.push_back({.id = "v6", .cidr = prefix("fd00:1::/64")});
  p.ports.at(kVm1).ips.push_back(ip("fd00:1::5"));
  p.ports.at(kVm2).ips.push_back(ip("fd00:1::6"));
  p.ports.at(kVm2).groups.clear();
  world_.setTopology(p.builder(), 3);
  // An address nobody has: the solicitation floods, vm2 gets it.
  auto t = v6("fd00:1::77");
  std::vector<uint8_t> body(t.bytes.begin(), t.bytes.end());
  auto out = world_.fromPort(kH1, kVm1,
                             icmpv6(mac(0, 1), {{0x33, 0x33, 0xff, 0, 0, 0x77}}, ip("fd00:1::5"),
                                    ip("ff02::1:ff00:77"), 135, body));
  EXPECT_TRUE(std::any_of(out.begin(), out.end(), [](const auto& r) { return r.port == kVm2; }));
  // Echo is not: no group allows it.
  auto echo = icmpv6(mac(0, 1), mac(0, 2), ip("fd00:1::5"), ip("fd00:1::6"), 128, {}, 64);
  EXPECT_TRUE(world_.fromPort(kH1, kVm1, echo).empty());
}

TEST_F(Ipv6Path, RoutedBetweenSubnetsWithErrorsFromTheRouter) {
  // vm1 (net1, h1) to vm3 (net2, h1): routed, hop limit down by one.
  auto ping = PacketBuilder()
                  .eth(mac(0, 1), kRouterNet1Mac)
                  .ipv6(v6("fd00:1::5"), v6("fd00:2::5"), 64)
                  .icmp(128, 0, 1, 1)
                  .build();
  auto routed = world_.fromPort(kH1, kVm1, ping);
  ASSERT_EQ(routed.size(), 1u);
  EXPECT_EQ(routed[0].port, kVm3);
  auto r = parsed(routed[0].bytes);
  EXPECT_EQ(r.key.ip_ttl, 63);
  EXPECT_EQ(r.key.eth_src, kRouterNet2Mac);
  EXPECT_EQ(r.key.eth_dst, mac(0, 3));

  // Hop limit 1: time exceeded, from the router's address on net1.
  auto expiring = PacketBuilder()
                      .eth(mac(0, 1), kRouterNet1Mac)
                      .ipv6(v6("fd00:1::5"), v6("fd00:2::5"), 1)
                      .icmp(128, 0, 1, 1)
                      .build();
  auto te = world_.fromPort(kH1, kVm1, expiring);
  ASSERT_EQ(te.size(), 1u);
  auto e = parsed(te[0].bytes);
  EXPECT_EQ(e.key.tp_src, 3);
  EXPECT_EQ(IpAddress(6, e.key.ip_src), ip("fd00:1::1"));
  EXPECT_EQ(IpAddress(6, e.key.ip_dst), ip("fd00:1::5"));

  // No route: unreachable (type 1 code 0).
  auto lost = PacketBuilder()
                  .eth(mac(0, 1), kRouterNet1Mac)
                  .ipv6(v6("fd00:1::5"), v6("fd00:9::5"), 64)
                  .icmp(128, 0, 1, 1)
                  .build();
  auto nr = world_.fromPort(kH1, kVm1, lost);
  ASSERT_EQ(nr.size(), 1u);
  EXPECT_EQ(parsed(nr[0].bytes).key.tp_src, 1);
  EXPECT_EQ(parsed(nr[0].bytes).key.tp_dst, 0);

  // Larger than net2's MTU (1400): packet too big with the MTU.
  auto big = PacketBuilder()
                 .eth(mac(0, 1), kRouterNet1Mac)
                 .ipv6(v6("fd00:1::5"), v6("fd00:2::5"), 64)
                 .udp(5000, 5001)
                 .payload(std::string(1420, 'x'))
                 .build();
  auto ptb = world_.fromPort(kH1, kVm1, big);
  ASSERT_EQ(ptb.size(), 1u);
  auto t = parsed(ptb[0].bytes);
  EXPECT_EQ(t.key.tp_src, 2);
  const auto& b = ptb[0].bytes;
  EXPECT_EQ(b[t.l4_offset + 6] << 8 | b[t.l4_offset + 7], 1400);
  EXPECT_EQ(IpAddress(6, t.key.ip_src), ip("fd00:1::1"));
  EXPECT_LE(b.size() - 14, 1280u);
  EXPECT_EQ(drops(kH1, DropReason::FragmentationNeeded), 1u);
}

// Unsolicited advertisements: at once to a port first seen, the first
// three at most 16 s apart, then every 30 to 100 s; at once again when what
// is advertised changes; none on a switch without an advertising router.
TEST_F(Ipv6Path, PeriodicAdvertisementsFollowTheSchedule) {
  using namespace std::chrono_literals;
  simulator::AdvertisementSchedule schedule(7);
  const auto& t = *world_.host(kH1).topology();
  const std::vector<uint32_t> ports{kVm1, kVm3, kVmB};
  SteadyTime now{};
  auto ports_of = [](const std::vector<simulator::AdvertisementSchedule::Due>& due) {
    std::vector<uint32_t> keys;
    for (const auto& d : due) keys.push_back(d.port);
    return keys;
  };
  auto first = schedule.due(t, ports, now);
  EXPECT_EQ(ports_of(first), (std::vector<uint32_t>{kVm1, kVm3}));
  auto p = parsed(first[0].frame);
  EXPECT_EQ(p.key.tp_src, 134);
  EXPECT_EQ(IpAddress(6, p.key.ip_dst), ip("ff02::1"));
  EXPECT_TRUE(p.key.eth_dst.isMulticast());
  EXPECT_TRUE(schedule.due(t, ports, now + 1s).empty());
  int sent = 1;
  SteadyTime last = now;
  for (auto at = now + 1s; at < now + 400s; at += 1s) {
    auto due = schedule.due(t, {ports.data(), 1}, at);  // vm1 alone from here
    if (due.empty()) continue;
    ++sent;
    auto gap = at - last;
    if (sent <= simulator::AdvertisementSchedule::kInitialAdvertisements) {
      EXPECT_LE(gap, 16s) << "advertisement " << sent;
    } else {
      EXPECT_GE(gap, 30s) << "advertisement " << sent;
      EXPECT_LE(gap, 101s) << "advertisement " << sent;
    }
    last = at;
  }
  EXPECT_GE(sent, 6);
  // A change to what is advertised (net1's MTU): at once.
  auto parts = TopologyParts::of(t);
  parts.switches.at(kNet1).mtu = 1400;
  auto changed = *parts.builder().build(9);
  auto again = schedule.due(*changed, {ports.data(), 1}, last + 1s);
  ASSERT_EQ(again.size(), 1u);
}

// To and from an external IPv6 network through the router's gateway, not
// translated (as Neutron): the next hop's MAC asked for by a neighbour
// solicitation out of the gateway host's uplink and learned from the
// advertisement; the gateway's address answered there.
TEST_F(Ipv6Path, RoutedToTheExternalNetworkWithoutTranslation) {
  auto p = TopologyParts::of(*world_.host(kH1).topology());
  p.switches.at(kPublic).subnets.push_back({.id = "public-v6",
                                            .cidr = prefix("2001:db8:1::/64"),
                                            .gateway = ip("2001:db8:1::1"),
                                            .dhcp = false});
  p.routers.at(kRouter).gateway->ips.push_back(ip("2001:db8:1::10"));
  p.routers.at(kRouter).gateway->nexthop6 = ip("2001:db8:1::1");
  world_.setTopology(p.builder(), 3);
  const MacAddress outside_mac{{0x52, 0x54, 0, 0, 0, 6}};

  auto out = PacketBuilder()
                 .eth(mac(0, 1), kRouterNet1Mac)
                 .ipv6(v6("fd00:1::5"), v6("2001:db8:99::7"), 64)
                 .udp(4000, 53)
                 .payload("query")
                 .build();
  // The next hop unknown: a solicitation for it out of h2's uplink.
  auto asked = world_.fromPort(kH1, kVm1, out);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].host, kH2);
  EXPECT_EQ(asked[0].kind, Outputs::Kind::Uplink);
  auto ns = parsed(asked[0].bytes);
  EXPECT_EQ(ns.key.tp_src, 135);
  EXPECT_EQ(IpAddress(6, ns.key.ip_src), ip("2001:db8:1::10"));
  EXPECT_EQ(IpAddress(6, ns.key.ip_dst), ip("ff02::1:ff00:1"));
  EXPECT_EQ(drops(kH2, DropReason::NeighborUnresolved), 1u);
  // The advertisement teaches it.
  auto target = v6("2001:db8:1::1");
  std::vector<uint8_t> body(target.bytes.begin(), target.bytes.end());
  body.insert(body.end(), {2, 1});
  body.insert(body.end(), outside_mac.bytes.begin(), outside_mac.bytes.end());
  auto na = PacketBuilder()
                .eth(outside_mac, kGatewayMac)
                .ipv6(v6("2001:db8:1::1"), v6("2001:db8:1::10"), 255)
                .icmp(136, 0, 0x6000, 0)
                .payload(body)
                .build();
  world_.fromOutside(kH2, na);
  auto sent = world_.fromPort(kH1, kVm1, out);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].host, kH2);
  EXPECT_EQ(sent[0].kind, Outputs::Kind::Uplink);
  auto o = parsed(sent[0].bytes);
  EXPECT_EQ(IpAddress(6, o.key.ip_src), ip("fd00:1::5")) << "not translated";
  EXPECT_EQ(o.key.eth_src, kGatewayMac);
  EXPECT_EQ(o.key.eth_dst, outside_mac);
  EXPECT_EQ(o.key.ip_ttl, 63);

  // The gateway's address is answered on its host only.
  auto gw = v6("2001:db8:1::10");
  std::vector<uint8_t> solicit(gw.bytes.begin(), gw.bytes.end());
  auto who = PacketBuilder()
                 .eth(outside_mac, {{0x33, 0x33, 0xff, 0, 0, 0x10}})
                 .ipv6(v6("2001:db8:1::1"), v6("ff02::1:ff00:10"), 255)
                 .icmp(135, 0)
                 .payload(solicit)
                 .build();
  auto answer = world_.fromOutside(kH2, who);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].kind, Outputs::Kind::Uplink);
  EXPECT_EQ(parsed(answer[0].bytes).key.tp_src, 136);
  EXPECT_EQ(parsed(answer[0].bytes).key.eth_src, kGatewayMac);
  for (const auto& r : world_.fromOutside(kH1, who)) {
    EXPECT_NE(parsed(r.bytes).key.tp_src, 136) << "h1 does not hold the gateway";
  }

  // In: to the VM, its source kept.
  auto in = PacketBuilder()
                .eth(outside_mac, kGatewayMac)
                .ipv6(v6("2001:db8:99::7"), v6("fd00:1::5"), 64)
                .udp(53, 4000)
                .payload("answer")
                .build();
  auto delivered = world_.fromOutside(kH2, in);
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].host, kH1);
  EXPECT_EQ(delivered[0].port, kVm1);
  EXPECT_EQ(IpAddress(6, parsed(delivered[0].bytes).key.ip_src), ip("2001:db8:99::7"));
}

}  // namespace
}  // namespace canopy::datapath::testing
