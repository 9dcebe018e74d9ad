// Load balancers in the datapath (docs/LOADBALANCING.md), in the test world:
// a VIP on net1 balanced on the client's own host by Maglev hashing, its
// connections pinned, replies translated back, hairpins, members behind the
// router, least connections, and what happens with no listener or member.

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

#include "datapath/packet/checksum.h"
#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using packet::TcpHeader;
using Received = World::Received;
using topology::LbAlgorithm;
using topology::LbListener;
using topology::LbMember;

constexpr uint32_t kVip = 50;
const MacAddress kVipMac = mac(0, 0x50);

std::vector<uint8_t> tcp(MacAddress from, MacAddress to, const char* src, const char* dst,
                         uint16_t sport, uint16_t dport, uint8_t flags) {
  return PacketBuilder()
      .eth(from, to)
      .ipv4(v4(src), v4(dst))
      .tcp(sport, dport, flags, 1000)
      .build();
}

packet::ParsedPacket parsed(std::span<const uint8_t> frame) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None) << describeFrame(frame);
  return p;
}

std::string text(const std::vector<Received>& r) {
  std::string s;
  for (const auto& x : r) {
    s += "h" + std::to_string(x.host) + " port " + std::to_string(x.port) + ": " +
         describeFrame(x.bytes) + "\n";
  }
  return s;
}

// Which member (by its port key) a connection reached, or 0.
uint32_t reached(const std::vector<Received>& r) {
  return r.size() == 1 && r[0].kind == Outputs::Kind::Port ? r[0].port : 0;
}

class LoadBalancer : public ::testing::Test {
 protected:
  // VIP 10.0.0.100 on net1 (an unbound port, as Octavia's), TCP 80 to vm2
  // (h2), vm6 (h3) and vm3 (net2, behind the router, on h1).
  static LbListener web() {
    return LbListener{.id = "listener-web",
                      .protocol = 6,
                      .port = 80,
                      .members = {{.address = ip("10.0.0.6"), .port = 80},
                                  {.address = ip("10.0.0.9"), .port = 80},
                                  {.address = ip("10.0.1.5"), .port = 80}}};
  }
  // With `ipv6`, the scenario's IPv6 subnets too (addIpv6), and the VIP
  // has fd00:1::100 besides.
  void setListeners(std::vector<LbListener> listeners, uint64_t version = 2, bool floating = false,
                    bool ipv6 = false) {
    auto p = TopologyParts::of(**scenario().build(1));
    if (ipv6) addIpv6(p);
    p.ports[kVip] = topology::Port{.key = kVip,
                                   .id = "vip-port",
                                   .switch_key = kNet1,
                                   .mac = kVipMac,
                                   .ips = {ip("10.0.0.100")},
                                   .device_owner = "Octavia",
                                   .listeners = std::move(listeners)};
    if (ipv6) p.ports[kVip].ips.push_back(ip("fd00:1::100"));
    // Members admit web clients from anywhere, as in the guides.
    p.groups.at(kDefault).rules.push_back({.id = "web-in",
                                           .direction = topology::Direction::Ingress,
                                           .protocol = 6,
                                           .port_min = 80,
                                           .port_max = 80});
    if (ipv6) {
      for (uint32_t group : {kDefault, kWeb}) {
        p.groups.at(group).rules.push_back({.id = "web-in-v6",
                                            .direction = topology::Direction::Ingress,
                                            .family = 6,
                                            .protocol = 6,
                                            .port_min = 80,
                                            .port_max = 80});
      }
    }
    if (floating) {
      p.floating_ips.push_back({.id = "fip-vip",
                                .external = ip("203.0.113.60"),
                                .fixed = ip("10.0.0.100"),
                                .port_key = kVip,
                                .router_key = kRouter});
    }
    world_.setTopology(p.builder(), version);
    for (uint32_t h : {kH1, kH2, kH3}) {
      world_.host(h).learnNeighbor(kPublic, ip("203.0.113.1"), kOutsideMac);
    }
  }
  std::vector<Received> connect(uint32_t client, uint16_t sport, uint8_t flags = TcpHeader::kSyn) {
    const char* from = client == kVm1 ? "10.0.0.5" : client == kVm5 ? "10.0.0.8" : "10.0.1.5";
    MacAddress to = client == kVm3 ? kRouterNet2Mac : kVipMac;
    uint8_t m = client == kVm1 ? 1 : client == kVm5 ? 5 : 3;
    std::vector<std::string> trace;
    auto r = world_.fromPort(kH1, client, tcp(mac(0, m), to, from, "10.0.0.100", sport, 80, flags),
                             &trace);
    last_trace_.clear();
    for (auto& t : trace) last_trace_ += t + "\n";
    return r;
  }

  World world_;
  std::string last_trace_;
};

TEST_F(LoadBalancer, ConnectionsSpreadOverEveryMemberAndKeepTheirMember) {
  setListeners({web()});
  std::map<uint32_t, int> seen;
  std::map<uint16_t, uint32_t> member_of;
  for (uint16_t sport = 20000; sport < 20300; ++sport) {
    auto r = connect(kVm1, sport);
    uint32_t m = reached(r);
    ASSERT_NE(m, 0u) << text(r);
    auto p = parsed(r[0].bytes);
    EXPECT_EQ(p.key.tp_dst, 80);
    EXPECT_EQ(p.key.ip_src[3], 5) << "the client's own address is kept";
    ++seen[m];
    member_of[sport] = m;
  }
  ASSERT_EQ(seen.size(), 3u);
  for (auto [m, n] : seen) EXPECT_GT(n, 60) << "member " << m;
  // Octavia's statistics, as the host counts them.
  auto counters = world_.host(kH1).shared().lbCounters();
  ASSERT_EQ(counters.size(), 1u);
  EXPECT_EQ(counters.begin()->second.total, 300u);
  EXPECT_EQ(counters.begin()->second.active, 300u);
  EXPECT_EQ(counters.begin()->second.bytes_in, 300u * 40);
  // Later packets of each connection reach the same member.
  for (uint16_t sport = 20000; sport < 20300; sport += 7) {
    EXPECT_EQ(reached(connect(kVm1, sport, TcpHeader::kAck)), member_of[sport]);
  }
}

TEST_F(LoadBalancer, RepliesComeFromTheVip) {
  setListeners({{.id = "l",
                 .protocol = 6,
                 .port = 80,
                 .members = {{.address = ip("10.0.0.6"), .port = 8080}}}});
  auto r = connect(kVm1, 33000);
  ASSERT_EQ(reached(r), kVm2) << text(r);
  auto p = parsed(r[0].bytes);
  EXPECT_EQ(p.key.ip_dst[3], 6);
  EXPECT_EQ(p.key.tp_dst, 8080);
  auto back = world_.fromPort(kH2, kVm2,
                              tcp(mac(0, 2), mac(0, 1), "10.0.0.6", "10.0.0.5", 8080, 33000,
                                  TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_EQ(reached(back), kVm1) << text(back);
  auto q = parsed(back[0].bytes);
  EXPECT_EQ(q.key.ip_src[3], 100) << describeFrame(back[0].bytes);
  EXPECT_EQ(q.key.tp_src, 80);
  EXPECT_EQ(q.key.tp_dst, 33000);
  // The connection goes on, both ways.
  ASSERT_EQ(reached(connect(kVm1, 33000, TcpHeader::kAck)), kVm2);
}

TEST_F(LoadBalancer, ANewMemberTakesNewConnectionsOnly) {
  setListeners({web()}, 2);
  std::map<uint16_t, uint32_t> before;
  for (uint16_t sport = 40000; sport < 40200; ++sport)
    before[sport] = reached(connect(kVm1, sport));
  auto more = web();
  more.members.push_back({.address = ip("10.0.0.8"), .port = 80});  // vm5, on h1
  setListeners({more}, 3);
  int moved_new = 0;
  for (auto [sport, m] : before) {
    EXPECT_EQ(reached(connect(kVm1, sport, TcpHeader::kAck)), m) << "pinned, port " << sport;
  }
  for (uint16_t sport = 50000; sport < 50200; ++sport) {
    if (reached(connect(kVm1, sport)) == kVm5) ++moved_new;
  }
  EXPECT_GT(moved_new, 20) << "the new member takes about a quarter of new connections";
}

TEST_F(LoadBalancer, AConnectionFromAReusedPortCountsAgainstTheLimit) {
  auto l = web();
  l.connection_limit = 1;
  setListeners({l});
  ASSERT_NE(reached(connect(kVm1, 100)), 0u);
  ASSERT_NE(reached(connect(kVm1, 100, TcpHeader::kAck | TcpHeader::kFin)), 0u);
  // The client reuses its port within the closed connection's ten seconds:
  // a new connection, open, so the limit leaves no room for another.
  ASSERT_NE(reached(connect(kVm1, 100)), 0u);
  EXPECT_TRUE(connect(kVm1, 101).empty()) << last_trace_;
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::LbConnectionLimit), 1u);
}

TEST_F(LoadBalancer, TwoListenersOnOneMemberGiveItDistinctTuples) {
  // Listeners 80 and 8080 both to vm2:80. A client's connection to each
  // from the same source port would be one tuple at vm2, whose TIME-WAIT
  // would take the second SYN for an old duplicate.
  LbListener web8080{.id = "listener-8080",
                     .protocol = 6,
                     .port = 8080,
                     .members = {{.address = ip("10.0.0.6"), .port = 80}}};
  LbListener web80 = web8080;
  web80.id = "listener-80";
  web80.port = 80;
  setListeners({web80, web8080});
  auto send = [&](uint16_t dport, uint8_t flags) {
    return world_.fromPort(kH1, kVm1,
                           tcp(mac(0, 1), kVipMac, "10.0.0.5", "10.0.0.100", 40000, dport, flags));
  };
  auto first = send(8080, TcpHeader::kSyn);
  ASSERT_EQ(reached(first), kVm2) << text(first);
  EXPECT_EQ(parsed(first[0].bytes).key.tp_src, 40000) << "the client's own port when it can";
  ASSERT_EQ(reached(send(8080, TcpHeader::kAck | TcpHeader::kFin)), kVm2);
  // Long after the first one's pin is gone, within vm2's TIME-WAIT.
  world_.clock.advance(std::chrono::seconds(30));
  world_.host(kH1).shared().sweep();
  auto second = send(80, TcpHeader::kSyn);
  ASSERT_EQ(reached(second), kVm2) << text(second);
  const uint16_t seen = parsed(second[0].bytes).key.tp_src;
  EXPECT_NE(seen, 40000) << "vm2 would see the closed connection's tuple";
  EXPECT_GE(seen, 61000);
  // vm2's answer to that port reaches the client as from VIP:80, to its own port.
  auto back = world_.fromPort(kH2, kVm2,
                              tcp(mac(0, 2), mac(0, 1), "10.0.0.6", "10.0.0.5", 80, seen,
                                  TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_EQ(reached(back), kVm1) << text(back);
  auto q = parsed(back[0].bytes);
  EXPECT_EQ(q.key.ip_src[3], 100);
  EXPECT_EQ(q.key.tp_src, 80);
  EXPECT_EQ(q.key.tp_dst, 40000);
  // Later segments keep the port they were given.
  auto later = send(80, TcpHeader::kAck);
  ASSERT_EQ(reached(later), kVm2);
  EXPECT_EQ(parsed(later[0].bytes).key.tp_src, seen);
  // After vm2's TIME-WAIT, the tuple is free again.
  ASSERT_EQ(reached(send(80, TcpHeader::kAck | TcpHeader::kFin)), kVm2);
  world_.clock.advance(std::chrono::seconds(100));
  world_.host(kH1).shared().sweep();
  auto third = send(8080, TcpHeader::kSyn);
  ASSERT_EQ(reached(third), kVm2) << text(third);
  EXPECT_EQ(parsed(third[0].bytes).key.tp_src, 40000);
}

TEST_F(LoadBalancer, AMemberBehindTheRouterAndAClientBehindIt) {
  setListeners({{.id = "l",
                 .protocol = 6,
                 .port = 80,
                 .members = {{.address = ip("10.0.1.5"), .port = 80}}}});
  auto r = connect(kVm1, 1234);
  ASSERT_EQ(reached(r), kVm3) << text(r);
  auto p = parsed(r[0].bytes);
  EXPECT_EQ(p.key.ip_ttl, 63) << "routed once";
  // vm3's reply is routed back and comes from the VIP.
  auto back = world_.fromPort(kH1, kVm3,
                              tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "10.0.0.5", 80, 1234,
                                  TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_EQ(reached(back), kVm1) << text(back);
  EXPECT_EQ(parsed(back[0].bytes).key.ip_src[3], 100);

  // A client on net2 reaches the VIP through the router.
  setListeners({{.id = "l",
                 .protocol = 6,
                 .port = 80,
                 .members = {{.address = ip("10.0.0.6"), .port = 80}}}},
               3);
  auto routed = connect(kVm3, 2345);
  ASSERT_EQ(reached(routed), kVm2) << text(routed) << last_trace_;
  auto rb = world_.fromPort(kH2, kVm2,
                            tcp(mac(0, 2), kRouterNet1Mac, "10.0.0.6", "10.0.1.5", 80, 2345,
                                TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_EQ(reached(rb), kVm3) << text(rb);
  EXPECT_EQ(parsed(rb[0].bytes).key.ip_src[3], 100);
}

TEST_F(LoadBalancer, AMemberReachesItsOwnVip) {
  setListeners({{.id = "l",
                 .protocol = 6,
                 .port = 80,
                 .members = {{.address = ip("10.0.0.8"), .port = 8080}}}});
  auto r = connect(kVm5, 5555);
  ASSERT_EQ(reached(r), kVm5) << text(r);
  auto p = parsed(r[0].bytes);
  EXPECT_EQ(p.key.ip_src[3], 100) << "from the VIP, so that the reply comes back";
  EXPECT_EQ(p.key.ip_dst[3], 8);
  EXPECT_EQ(p.key.tp_dst, 8080);
  EXPECT_EQ(p.key.eth_dst, mac(0, 5));
  // vm5 answers the VIP, and gets its answer as the VIP's.
  auto back = world_.fromPort(kH1, kVm5,
                              tcp(mac(0, 5), kVipMac, "10.0.0.8", "10.0.0.100", 8080, 5555,
                                  TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_EQ(reached(back), kVm5) << text(back);
  auto q = parsed(back[0].bytes);
  EXPECT_EQ(q.key.ip_src[3], 100);
  EXPECT_EQ(q.key.tp_src, 80);
  EXPECT_EQ(q.key.ip_dst[3], 8);
  EXPECT_EQ(q.key.tp_dst, 5555);
  EXPECT_EQ(q.key.eth_src, kVipMac);
  // And the client side goes on.
  ASSERT_EQ(reached(connect(kVm5, 5555, TcpHeader::kAck)), kVm5);
}

TEST_F(LoadBalancer, NoMemberUpResetsAndBackupsStandIn) {
  auto l = web();
  for (auto& m : l.members) m.up = false;
  setListeners({l});
  auto r = connect(kVm1, 7000);
  ASSERT_EQ(reached(r), kVm1) << text(r);
  EXPECT_NE(parsed(r[0].bytes).key.tcp_flags & TcpHeader::kRst, 0) << describeFrame(r[0].bytes);
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::LbNoMember), 1u);

  l.members.push_back({.address = ip("10.0.0.9"), .port = 81, .backup = true});
  setListeners({l}, 3);
  auto b = connect(kVm1, 7001);
  ASSERT_EQ(reached(b), kVm6) << text(b);
  EXPECT_EQ(parsed(b[0].bytes).key.tp_dst, 81);
  // A primary back up takes new connections from the backup.
  l.members[0].up = true;
  setListeners({l}, 4);
  EXPECT_EQ(reached(connect(kVm1, 7002)), kVm2);
}

TEST_F(LoadBalancer, OtherPortsPingsAndSourcesOutsideTheAllowedCidrs) {
  auto l = web();
  setListeners({l});
  auto other = connect(kVm1, 7100);  // to port 80: balanced
  ASSERT_NE(reached(other), kVm1);
  auto closed = world_.fromPort(
      kH1, kVm1, tcp(mac(0, 1), kVipMac, "10.0.0.5", "10.0.0.100", 7101, 443, TcpHeader::kSyn));
  ASSERT_EQ(reached(closed), kVm1) << text(closed);
  EXPECT_NE(parsed(closed[0].bytes).key.tcp_flags & TcpHeader::kRst, 0);
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::LbNoListener), 1u);
  auto echo = world_.fromPort(kH1, kVm1,
                              PacketBuilder()
                                  .eth(mac(0, 1), kVipMac)
                                  .ipv4(v4("10.0.0.5"), v4("10.0.0.100"))
                                  .icmp(8, 0, 9, 1)
                                  .payload("ping")
                                  .build());
  ASSERT_EQ(reached(echo), kVm1) << text(echo);
  EXPECT_EQ(parsed(echo[0].bytes).key.tp_src, 0) << "an echo reply";

  l.allowed_cidrs = {prefix("10.0.1.0/24")};
  setListeners({l}, 3);
  EXPECT_TRUE(connect(kVm1, 7102).empty());
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::LbSourceNotAllowed), 1u);
  EXPECT_NE(reached(connect(kVm3, 7103)), 0u) << "from net2, allowed" << last_trace_;
}

// A floating IP on the VIP serves clients outside: answered and balanced
// by the host that holds the router's gateway (h2); the member's replies
// come back through it from the floating IP.
TEST_F(LoadBalancer, AFloatingIpOnTheVipServesClientsOutside) {
  setListeners({{.id = "l",
                 .protocol = 6,
                 .port = 80,
                 .members = {{.address = ip("10.0.0.9"), .port = 80}}}},
               2, /*floating=*/true);
  auto arp = world_.fromOutside(
      kH2, PacketBuilder()
               .eth(kOutsideMac, MacAddress::broadcast())
               .arp(1, kOutsideMac, v4("203.0.113.1"), MacAddress{}, v4("203.0.113.60"))
               .build());
  ASSERT_EQ(arp.size(), 1u) << text(arp);
  EXPECT_NE(describeFrame(arp[0].bytes).find("is-at " + kGatewayMac.toString()), std::string::npos)
      << describeFrame(arp[0].bytes);
  EXPECT_TRUE(world_
                  .fromOutside(kH1, PacketBuilder()
                                        .eth(kOutsideMac, MacAddress::broadcast())
                                        .arp(1, kOutsideMac, v4("203.0.113.1"), MacAddress{},
                                             v4("203.0.113.60"))
                                        .build())
                  .empty())
      << "only the gateway host answers";

  std::vector<std::string> trace;
  auto in = world_.fromOutside(
      kH2, tcp(kOutsideMac, kGatewayMac, "203.0.113.1", "203.0.113.60", 6000, 80, TcpHeader::kSyn),
      &trace);
  std::string steps;
  for (const auto& t : trace) steps += t + "\n";
  ASSERT_EQ(reached(in), kVm6) << text(in) << steps;
  auto p = parsed(in[0].bytes);
  EXPECT_EQ(p.key.ip_dst[3], 9);
  EXPECT_EQ(p.key.tp_dst, 80);
  EXPECT_EQ(p.key.ip_src[0], 203) << "the client's own address";

  auto back = world_.fromPort(kH3, kVm6,
                              tcp(mac(0, 6), kRouterNet1Mac, "10.0.0.9", "203.0.113.1", 80, 6000,
                                  TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_EQ(back.size(), 1u) << text(back);
  ASSERT_EQ(back[0].kind, Outputs::Kind::Uplink) << text(back);
  EXPECT_EQ(back[0].host, kH2);
  auto q = parsed(back[0].bytes);
  EXPECT_EQ(q.key.ip_src[3], 60) << describeFrame(back[0].bytes);
  EXPECT_EQ(q.key.tp_src, 80);
  // The connection goes on, pinned.
  auto more = world_.fromOutside(
      kH2, tcp(kOutsideMac, kGatewayMac, "203.0.113.1", "203.0.113.60", 6000, 80, TcpHeader::kAck));
  EXPECT_EQ(reached(more), kVm6) << text(more);
}

// A listener's connection limit holds on each host for its own clients:
// a new connection beyond it is dropped (the client's SYN is retried, as
// against a full backlog) until one closes.
TEST_F(LoadBalancer, TheConnectionLimitHoldsOnEachHost) {
  auto l = web();
  l.connection_limit = 2;
  setListeners({l});
  EXPECT_NE(reached(connect(kVm1, 100)), 0u);
  EXPECT_NE(reached(connect(kVm1, 101)), 0u);
  EXPECT_TRUE(connect(kVm1, 102).empty());
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::LbConnectionLimit), 1u);
  EXPECT_NE(reached(connect(kVm1, 100, TcpHeader::kAck)), 0u) << "open ones go on";
  EXPECT_NE(reached(connect(kVm1, 100, TcpHeader::kAck | TcpHeader::kFin)), 0u);
  EXPECT_NE(reached(connect(kVm1, 102)), 0u) << "one closed: room for another";
}

TEST_F(LoadBalancer, SourceIpPersistenceKeepsAClientOnOneMember) {
  auto l = web();
  l.source_ip_persistence = true;
  setListeners({l});
  std::set<uint32_t> members;
  for (uint16_t sport = 1000; sport < 1100; ++sport) members.insert(reached(connect(kVm1, sport)));
  EXPECT_EQ(members.size(), 1u);
}

TEST_F(LoadBalancer, LeastConnectionsTakesTheMemberWithFewest) {
  auto l = web();
  l.algorithm = LbAlgorithm::LeastConnections;
  l.members.pop_back();  // vm2 and vm6
  setListeners({l});
  std::map<uint32_t, int> seen;
  std::map<uint16_t, uint32_t> member_of;
  for (uint16_t sport = 3000; sport < 3010; ++sport) {
    member_of[sport] = reached(connect(kVm1, sport));
    ++seen[member_of[sport]];
  }
  EXPECT_EQ(seen[kVm2], 5);
  EXPECT_EQ(seen[kVm6], 5);
  // Closed connections no longer count: end three of vm2's.
  int closed = 0;
  for (auto [sport, m] : member_of) {
    if (m != kVm2 || closed == 3) continue;
    ASSERT_EQ(reached(connect(kVm1, sport, TcpHeader::kAck | TcpHeader::kFin)), kVm2);
    ++closed;
  }
  ASSERT_EQ(closed, 3);
  std::map<uint32_t, int> next;
  for (uint16_t sport = 3100; sport < 3104; ++sport) ++next[reached(connect(kVm1, sport))];
  EXPECT_GE(next[kVm2], 3) << "vm2 had 2 open against vm6's 5";
}

// An IPv6 VIP: answered by neighbour discovery, balanced and translated
// back on the client's host like an IPv4 one, ICMPv6 errors and pings
// included.
TEST_F(LoadBalancer, AnIpv6VipIsAnsweredBalancedAndTranslatedBack) {
  setListeners({{.id = "l6",
                 .protocol = 6,
                 .port = 80,
                 .members = {{.address = ip("fd00:1::6"), .port = 8080},
                             {.address = ip("fd00:2::5"), .port = 80}}}},
               2, false, true);
  const auto vm1 = packet::Ipv6Address::of(ip("fd00:1::5"));
  const auto vip = packet::Ipv6Address::of(ip("fd00:1::100"));
  // Who has the VIP? Its port's MAC, answered on vm1's host.
  // After the header's reserved word: the target, and the source's MAC.
  std::vector<uint8_t> solicit_body(vip.bytes.begin(), vip.bytes.end());
  solicit_body.insert(solicit_body.end(), {1, 1, 0xfa, 0x16, 0x3e, 0, 0, 1});
  auto solicit = PacketBuilder()
                     .eth(mac(0, 1), {{0x33, 0x33, 0xff, 0, 1, 0}})
                     .ipv6(vm1, packet::Ipv6Address::of(ip("ff02::1:ff00:100")), 255)
                     .icmp(135, 0)
                     .payload(solicit_body)
                     .build();
  auto answer = world_.fromPort(kH1, kVm1, solicit);
  ASSERT_EQ(answer.size(), 1u) << text(answer);
  auto na = parsed(answer[0].bytes);
  EXPECT_EQ(na.key.tp_src, 136);
  EXPECT_EQ(na.key.eth_src, kVipMac);

  auto syn = [&](uint16_t sport, uint8_t flags) {
    return PacketBuilder()
        .eth(mac(0, 1), kVipMac)
        .ipv6(vm1, vip)
        .tcp(sport, 80, flags, 1000)
        .build();
  };
  std::map<uint32_t, int> seen;
  uint16_t to_vm2 = 0;
  for (uint16_t sport = 40000; sport < 40100; ++sport) {
    std::vector<std::string> trace;
    auto r = world_.fromPort(kH1, kVm1, syn(sport, TcpHeader::kSyn), &trace);
    uint32_t m = reached(r);
    ASSERT_TRUE(m == kVm2 || m == kVm3) << text(r) << ::testing::PrintToString(trace);
    ++seen[m];
    auto p = parsed(r[0].bytes);
    EXPECT_EQ(IpAddress(6, p.key.ip_src), ip("fd00:1::5")) << "the client's own address is kept";
    EXPECT_EQ(IpAddress(6, p.key.ip_dst), m == kVm2 ? ip("fd00:1::6") : ip("fd00:2::5"));
    EXPECT_EQ(p.key.tp_dst, m == kVm2 ? 8080 : 80);
    // The translated segment is the one a client would have sent the
    // member: checksums as computed from scratch.
    auto direct = PacketBuilder()
                      .eth(p.key.eth_src, p.key.eth_dst)
                      .ipv6(vm1, packet::Ipv6Address{p.key.ip_dst}, p.key.ip_ttl)
                      .tcp(sport, p.key.tp_dst, TcpHeader::kSyn, 1000)
                      .build();
    EXPECT_EQ(r[0].bytes, direct) << describeFrame(r[0].bytes);
    if (m == kVm2 && to_vm2 == 0) to_vm2 = sport;
  }
  EXPECT_EQ(seen.size(), 2u);
  ASSERT_NE(to_vm2, 0);

  // vm2's answer comes to vm1 from the VIP; an ICMPv6 error about the
  // connection too.
  auto back = world_.fromPort(kH2, kVm2,
                              PacketBuilder()
                                  .eth(mac(0, 2), mac(0, 1))
                                  .ipv6(packet::Ipv6Address::of(ip("fd00:1::6")), vm1)
                                  .tcp(8080, to_vm2, TcpHeader::kSyn | TcpHeader::kAck, 5000)
                                  .build());
  ASSERT_EQ(reached(back), kVm1) << text(back);
  auto q = parsed(back[0].bytes);
  EXPECT_EQ(IpAddress(6, q.key.ip_src), ip("fd00:1::100"));
  EXPECT_EQ(q.key.tp_src, 80);
  EXPECT_EQ(q.key.tp_dst, to_vm2);
  auto expected = PacketBuilder()
                      .eth(q.key.eth_src, q.key.eth_dst)
                      .ipv6(vip, vm1, q.key.ip_ttl)
                      .tcp(80, to_vm2, TcpHeader::kSyn | TcpHeader::kAck, 5000)
                      .build();
  EXPECT_EQ(back[0].bytes, expected) << describeFrame(back[0].bytes);
  ASSERT_EQ(reached(world_.fromPort(kH1, kVm1, syn(to_vm2, TcpHeader::kAck))), kVm2);
  auto segment = PacketBuilder()
                     .eth(mac(0, 1), mac(0, 2))
                     .ipv6(vm1, packet::Ipv6Address::of(ip("fd00:1::6")))
                     .tcp(to_vm2, 8080, TcpHeader::kAck, 1001)
                     .build();
  std::vector<uint8_t> quote(segment.begin() + sizeof(packet::EthernetHeader), segment.end());
  auto error = world_.fromPort(kH2, kVm2,
                               PacketBuilder()
                                   .eth(mac(0, 2), mac(0, 1))
                                   .ipv6(packet::Ipv6Address::of(ip("fd00:1::6")), vm1)
                                   .icmp(1, 4)
                                   .payload(quote)
                                   .build());
  ASSERT_EQ(reached(error), kVm1) << text(error);
  auto e = parsed(error[0].bytes);
  EXPECT_EQ(IpAddress(6, e.key.ip_src), ip("fd00:1::100"));
  auto quoted_back = PacketBuilder()
                         .eth(mac(0, 1), mac(0, 2))
                         .ipv6(vm1, vip)
                         .tcp(to_vm2, 80, TcpHeader::kAck, 1001)
                         .build();
  EXPECT_TRUE(std::equal(quoted_back.begin() + sizeof(packet::EthernetHeader), quoted_back.end(),
                         error[0].bytes.begin() + e.payload_offset))
      << "the quote is the segment vm1 sent, to the VIP";
  auto icmp = std::span<const uint8_t>(error[0].bytes).subspan(e.l4_offset);
  EXPECT_EQ(packet::finish(packet::sumWords(
                icmp, packet::pseudoHeaderSum(vip, vm1, packet::ipproto::kIcmpv6,
                                              static_cast<uint32_t>(icmp.size())))),
            0)
      << "the ICMPv6 checksum holds";

  // Pings to the VIP are answered; a port without a listener is reset.
  auto echo = PacketBuilder().eth(mac(0, 1), kVipMac).ipv6(vm1, vip).icmp(128, 0, 7, 1).build();
  auto pong = world_.fromPort(kH1, kVm1, echo);
  ASSERT_EQ(pong.size(), 1u) << text(pong);
  EXPECT_EQ(parsed(pong[0].bytes).key.tp_src, 129);
  auto other = PacketBuilder()
                   .eth(mac(0, 1), kVipMac)
                   .ipv6(vm1, vip)
                   .tcp(40200, 443, TcpHeader::kSyn, 1)
                   .build();
  auto reset = world_.fromPort(kH1, kVm1, other);
  ASSERT_EQ(reset.size(), 1u) << text(reset);
  EXPECT_NE(parsed(reset[0].bytes).key.tcp_flags & TcpHeader::kRst, 0);
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::LbNoListener), 1u);
}

}  // namespace
}  // namespace canopy::datapath::testing
