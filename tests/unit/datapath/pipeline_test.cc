// One host's datapath beyond the golden traces: what it caches and
// invalidates, what it learns, how it meets full tables, provider VLANs,
// router answers, ICMP errors through SNAT, bad tunnel packets and DHCP
// INFORM. Each case runs in the test world (hosts h1..h3, scenario()).

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

#include "datapath/nat/helpers.h"
#include "datapath/packet/dhcp.h"
#include "datapath/packet/tunnel.h"
#include "datapath/simulator/replies.h"
#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using packet::TcpHeader;
using Received = World::Received;

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
      .payload("data")
      .build();
}
std::vector<uint8_t> ping(MacAddress from, MacAddress to, const char* src, const char* dst,
                          uint8_t type = 8) {
  return PacketBuilder()
      .eth(from, to)
      .ipv4(v4(src), v4(dst))
      .icmp(type, 0, 77, 1)
      .payload("abcdefgh")
      .build();
}

bool only(const std::vector<Received>& r, uint32_t host, uint32_t port) {
  return r.size() == 1 && r[0].host == host && r[0].kind == Outputs::Kind::Port &&
         r[0].port == port;
}
bool has(const Received& r, const std::string& text) {
  return describeFrame(r.bytes).find(text) != std::string::npos;
}
packet::ParsedPacket parsed(std::span<const uint8_t> frame) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None) << describeFrame(frame);
  return p;
}

class Pipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    world_.setTopology(scenario(), 1);
    for (uint32_t h : {kH1, kH2})
      world_.host(h).learnNeighbor(kPublic, ip("203.0.113.1"), kOutsideMac);
  }
  static TopologyParts parts() { return TopologyParts::of(**scenario().build(1)); }

  World world_;
};

TEST_F(Pipeline, RepeatedFlowIsSimulatedOnceThenServedFromTheCache) {
  Datapath& h1 = world_.host(kH1);
  auto frame = udp(mac(0, 1), mac(0, 5), "10.0.0.5", "10.0.0.8", 5000, 6000);
  // vm1's egress and vm5's ingress are simulated for the first packet (new
  // in conntrack) and again for the second (established): two states.
  uint64_t simulations = h1.counters().simulations;
  ASSERT_TRUE(only(world_.fromPort(kH1, kVm1, frame), kH1, kVm5));
  EXPECT_EQ(h1.counters().simulations, simulations + 2);
  ASSERT_TRUE(only(world_.fromPort(kH1, kVm1, frame), kH1, kVm5));
  EXPECT_EQ(h1.counters().simulations, simulations + 4);

  simulations = h1.counters().simulations;
  uint64_t hits = h1.cacheStats().hits;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(only(world_.fromPort(kH1, kVm1, frame), kH1, kVm5));
  EXPECT_EQ(h1.counters().simulations, simulations);
  EXPECT_EQ(h1.cacheStats().hits, hits + 20);  // both stages of each packet
}

TEST_F(Pipeline, RemovingARuleStopsNewConnectionsAndInvalidatesOnlyWhatReadIt) {
  Datapath& h1 = world_.host(kH1);
  // An established connection to vm3:80 (web), and a cached ping to vm5.
  ASSERT_TRUE(only(world_.fromPort(kH1, kVm1,
                                   tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 40000, 80,
                                       TcpHeader::kSyn)),
                   kH1, kVm3));
  ASSERT_TRUE(only(world_.fromPort(kH1, kVm3,
                                   tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "10.0.0.5", 80, 40000,
                                       TcpHeader::kSyn | TcpHeader::kAck)),
                   kH1, kVm1));
  auto data = tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 40000, 80,
                  TcpHeader::kPsh | TcpHeader::kAck);
  ASSERT_TRUE(only(world_.fromPort(kH1, kVm1, data), kH1, kVm3));
  auto to_vm5 = ping(mac(0, 1), mac(0, 5), "10.0.0.5", "10.0.0.8");
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(only(world_.fromPort(kH1, kVm1, to_vm5), kH1, kVm5));

  auto changed = parts();
  auto& rules = changed.groups.at(kWeb).rules;
  std::erase_if(rules, [](const topology::Rule& r) { return r.id == "rule-web-http"; });
  uint64_t invalidated = h1.cacheStats().invalidated;
  size_t cached = h1.cacheSize();
  world_.setTopology(changed.builder(), 2);
  // The only decision that read web's rules: vm3's ingress check of the
  // SYN (established packets are allowed before any rule is read).
  EXPECT_EQ(h1.cacheStats().invalidated, invalidated + 1);
  EXPECT_EQ(h1.cacheSize(), cached - 1);

  uint64_t simulations = h1.counters().simulations;
  EXPECT_TRUE(only(world_.fromPort(kH1, kVm1, to_vm5), kH1, kVm5));
  EXPECT_TRUE(only(world_.fromPort(kH1, kVm1, data), kH1, kVm3));
  EXPECT_EQ(h1.counters().simulations, simulations) << "other cached flows still hit";

  uint64_t refused = h1.counters().dropped(DropReason::SecurityGroupIngress);
  EXPECT_TRUE(world_
                  .fromPort(kH1, kVm1,
                            tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 40001, 80,
                                TcpHeader::kSyn))
                  .empty());
  EXPECT_EQ(h1.counters().dropped(DropReason::SecurityGroupIngress), refused + 1);
}

// Drops are also counted per local port: what a port sent (spoofing,
// egress) on the sender, what it was to receive (ingress) on the receiver,
// cached decisions included; a port that leaves the topology is forgotten.
TEST_F(Pipeline, DropsAreChargedToThePortTheyConcern) {
  Datapath& h1 = world_.host(kH1);
  auto spoofed = ping(mac(0, 1), mac(0, 5), "10.0.0.99", "10.0.0.8");
  EXPECT_TRUE(world_.fromPort(kH1, kVm1, spoofed).empty());
  auto blocked = tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 40000, 22, TcpHeader::kSyn);
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(world_.fromPort(kH1, kVm1, blocked).empty());
  auto drops = [&](uint32_t port, DropReason why) -> uint64_t {
    auto it = h1.portDrops().find(port);
    return it == h1.portDrops().end() ? 0 : it->second[static_cast<size_t>(why)];
  };
  EXPECT_EQ(drops(kVm1, DropReason::PortSecurityIp), 1u);
  EXPECT_EQ(drops(kVm3, DropReason::SecurityGroupIngress), 2u) << "the second from the cache";
  EXPECT_EQ(drops(kVm1, DropReason::SecurityGroupIngress), 0u);
  auto changed = parts();
  changed.ports.erase(kVm1);
  world_.setTopology(changed.builder(), 2);
  EXPECT_FALSE(h1.portDrops().contains(kVm1));
  EXPECT_TRUE(h1.portDrops().contains(kVm3));
}

TEST_F(Pipeline, VlanTaggedFramesFromAPortThatIsNoTrunkAreDropped) {
  auto tagged = [](uint16_t vid) {
    return PacketBuilder()
        .eth(mac(0, 1), mac(0, 2))
        .vlan(vid)
        .ipv4(v4("10.0.0.5"), v4("10.0.0.6"))
        .icmp(8, 0, 1, 1)
        .build();
  };
  for (int i = 0; i < 2; ++i) {  // the second from the cache
    EXPECT_TRUE(world_.fromPort(kH1, kVm1, tagged(100)).empty());
  }
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::PortNotTrunk), 2u);
  // The same untagged goes through.
  auto plain = ping(mac(0, 1), mac(0, 2), "10.0.0.5", "10.0.0.6");
  EXPECT_EQ(world_.fromPort(kH1, kVm1, plain).size(), 1u);
}

TEST(PipelineNeighbors, UnknownNextHopIsAskedForThenUsed) {
  World w;  // no neighbour learned on any host
  w.setTopology(scenario(), 1);
  auto out =
      tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 41000, 443, TcpHeader::kSyn);
  auto r = w.fromPort(kH1, kVm1, out);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].host, kH2);  // the gateway host
  EXPECT_EQ(r[0].kind, Outputs::Kind::Uplink);
  EXPECT_TRUE(has(r[0],
                  "fa:16:3e:00:01:00 > ff:ff:ff:ff:ff:ff arp who-has 203.0.113.1 tell "
                  "203.0.113.10"))
      << describeFrame(r[0].bytes);
  EXPECT_EQ(w.host(kH2).counters().dropped(DropReason::NeighborUnresolved), 1u);

  r = w.fromOutside(kH2,
                    PacketBuilder()
                        .eth(kOutsideMac, kGatewayMac)
                        .arp(2, kOutsideMac, v4("203.0.113.1"), kGatewayMac, v4("203.0.113.10"))
                        .build());
  EXPECT_TRUE(r.empty());

  r = w.fromPort(kH1, kVm1, out);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].host, kH2);
  EXPECT_EQ(r[0].kind, Outputs::Kind::Uplink);
  EXPECT_TRUE(has(r[0], "fa:16:3e:00:01:00 > 52:54:00:00:00:01 ip 203.0.113.10 > 198.51.100.7"))
      << describeFrame(r[0].bytes);
  EXPECT_EQ(w.host(kH2).counters().dropped(DropReason::NeighborUnresolved), 1u);
}

TEST_F(Pipeline, VlanProviderNetworkTagsOnTheWayOutAndUntagsOnTheWayIn) {
  constexpr uint32_t kProvider = 50, kPv1 = 31, kPv2 = 32;
  auto p = parts();
  p.switches[kProvider] = {.key = kProvider,
                           .id = "provider-id",
                           .name = "provider",
                           .subnets = {{.id = "provider-subnet-id",
                                        .cidr = prefix("172.16.0.0/24"),
                                        .gateway = ip("172.16.0.1"),
                                        .dhcp = false}},
                           .physical_network = "physnet1",
                           .vlan = 42};
  p.ports[kPv1] = {.key = kPv1,
                   .id = "port-pv1",
                   .switch_key = kProvider,
                   .mac = mac(0, 0x31),
                   .ips = {ip("172.16.0.5")},
                   .groups = {kWeb},
                   .host = kH1,
                   .name = "pv1"};
  p.ports[kPv2] = {.key = kPv2,
                   .id = "port-pv2",
                   .switch_key = kProvider,
                   .mac = mac(0, 0x32),
                   .ips = {ip("172.16.0.6")},
                   .groups = {kWeb},
                   .host = kH2,
                   .name = "pv2"};
  world_.setTopology(p.builder(), 2);

  // pv1 on h1 pings pv2 on h2: out of h1's uplink, tagged.
  auto r = world_.fromPort(kH1, kPv1, ping(mac(0, 0x31), mac(0, 0x32), "172.16.0.5", "172.16.0.6"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].host, kH1);
  EXPECT_EQ(r[0].kind, Outputs::Kind::Uplink);
  auto out = parsed(r[0].bytes);
  EXPECT_EQ(out.key.vlan_tci & 0x0fff, 42);
  EXPECT_EQ(out.key.eth_type, packet::ethertype::kIpv4);

  // The physical network brings it, tagged, to h2: pv2 gets it untagged.
  r = world_.fromOutside(kH2, r[0].bytes);
  ASSERT_TRUE(only(r, kH2, kPv2));
  auto in = parsed(r[0].bytes);
  EXPECT_EQ(in.key.vlan_tci, 0);
  EXPECT_EQ(r[0].bytes[12], 0x08);
  EXPECT_EQ(r[0].bytes[13], 0x00);
  EXPECT_TRUE(has(r[0], "ip 172.16.0.5 > 172.16.0.6"));

  // Another VLAN on the same uplink is no network of this host's.
  auto other = PacketBuilder()
                   .eth(kOutsideMac, mac(0, 0x32))
                   .vlan(43)
                   .ipv4(v4("172.16.0.9"), v4("172.16.0.6"))
                   .icmp(8, 0, 1, 1)
                   .build();
  EXPECT_TRUE(world_.fromOutside(kH2, other).empty());
  EXPECT_EQ(world_.host(kH2).counters().dropped(DropReason::UnknownUplink), 1u);
}

// What a host answers to a frame of a VLAN network's uplink goes back on
// that VLAN: an ARP request for a floating IP on an external network that
// is a VLAN gets its reply tagged.
TEST_F(Pipeline, AnswersOnAnUplinkKeepTheVlanTheQuestionCameOn) {
  auto p = parts();
  p.switches.at(kPublic).vlan = 300;
  world_.setTopology(p.builder(), 2);
  auto request = PacketBuilder()
                     .eth(kOutsideMac, MacAddress::broadcast())
                     .vlan(300)
                     .arp(1, kOutsideMac, v4("203.0.113.1"), MacAddress{}, v4("203.0.113.50"))
                     .build();
  auto r = world_.fromOutside(kH1, request);  // vm3's floating IP, vm3 on h1
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].kind, Outputs::Kind::Uplink);
  auto reply = parsed(r[0].bytes);
  EXPECT_EQ(reply.key.vlan_tci & 0x0fff, 300);
  EXPECT_EQ(reply.key.eth_type, packet::ethertype::kArp);
  EXPECT_EQ(reply.key.eth_dst, kOutsideMac);
}

// A port without port security may send for others (a guest router): the
// groups it is in say nothing of the source, so remote-group rules match
// the source address, as Neutron's do.
TEST_F(Pipeline, RemoteGroupsMatchTheAddressOfWhatAPortWithoutSecuritySends) {
  auto p = parts();
  p.ports.at(kVm5).port_security = false;
  world_.setTopology(p.builder(), 2);
  auto from = [&](const char* source) {
    return PacketBuilder()
        .eth(mac(0, 5), mac(0, 2))
        .ipv4(v4(source), v4("10.0.0.6"))
        .udp(7000, 7001)
        .payload("forwarded")
        .build();
  };
  // vm2's group admits the default group: 10.0.0.99 is no member's address.
  EXPECT_TRUE(world_.fromPort(kH1, kVm5, from("10.0.0.99")).empty());
  EXPECT_EQ(world_.host(kH2).counters().dropped(DropReason::SecurityGroupIngress), 1u);
  // 10.0.0.9 is vm6's, a member.
  auto r = world_.fromPort(kH1, kVm5, from("10.0.0.9"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].port, kVm2);
}

TEST(PipelineConntrack, FullTableRefusesNewConnectionsButNotExistingOnes) {
  FakeClock clock;
  pipeline::Config config;
  config.host.host = kH1;
  config.conntrack.max_connections = 2;
  Datapath dp(clock, config);
  dp.setTopology(*scenario().build(1));
  auto send = [&](uint32_t port, const std::vector<uint8_t>& frame) {
    Outputs out;
    dp.process(Ingress::fromPort(port), frame, out);
    return out.items().size() == 1 && out.items()[0].kind == Outputs::Kind::Port
               ? out.items()[0].port
               : 0;
  };
  // One connection vm1 -> vm5, tracked in both ports' zones: the table is full.
  EXPECT_EQ(
      send(kVm1, tcp(mac(0, 1), mac(0, 5), "10.0.0.5", "10.0.0.8", 40000, 22, TcpHeader::kSyn)),
      kVm5);
  EXPECT_EQ(dp.connections().size(), 2u);

  EXPECT_EQ(
      send(kVm1, tcp(mac(0, 1), mac(0, 5), "10.0.0.5", "10.0.0.8", 40001, 22, TcpHeader::kSyn)),
      0u);
  EXPECT_EQ(dp.counters().dropped(DropReason::ConntrackFull), 1u);

  EXPECT_EQ(send(kVm5, tcp(mac(0, 5), mac(0, 1), "10.0.0.8", "10.0.0.5", 22, 40000,
                           TcpHeader::kSyn | TcpHeader::kAck)),
            kVm1);
  EXPECT_EQ(
      send(kVm1, tcp(mac(0, 1), mac(0, 5), "10.0.0.5", "10.0.0.8", 40000, 22, TcpHeader::kAck)),
      kVm5);
  EXPECT_EQ(dp.counters().dropped(DropReason::ConntrackFull), 1u);
  EXPECT_EQ(dp.connections().size(), 2u);
}

TEST_F(Pipeline, RouterWithoutRouteAnswersNetworkUnreachable) {
  auto p = parts();
  p.routers.at(kRouter).gateway.reset();
  p.floating_ips.clear();
  world_.setTopology(p.builder(), 2);
  auto r = world_.fromPort(kH1, kVm1,
                           udp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 5000, 53));
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_TRUE(has(r[0], "fa:16:3e:00:01:01 > fa:16:3e:00:00:01 ip 10.0.0.1 > 10.0.0.5"))
      << describeFrame(r[0].bytes);
  EXPECT_TRUE(has(r[0], "icmp 3/0")) << describeFrame(r[0].bytes);
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::NoRoute), 1u);
}

TEST_F(Pipeline, RouterAddressAnswersUdpWithPortUnreachableAndTcpWithReset) {
  auto r =
      world_.fromPort(kH1, kVm1, udp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.0.1", 5000, 53));
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_TRUE(has(r[0], "ip 10.0.0.1 > 10.0.0.5")) << describeFrame(r[0].bytes);
  EXPECT_TRUE(has(r[0], "icmp 3/3")) << describeFrame(r[0].bytes);

  r = world_.fromPort(
      kH1, kVm1,
      tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.0.1", 41000, 22, TcpHeader::kSyn));
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_TRUE(has(r[0], "ip 10.0.0.1 > 10.0.0.5")) << describeFrame(r[0].bytes);
  EXPECT_TRUE(has(r[0], "tcp 22 > 41000 [R")) << describeFrame(r[0].bytes);
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::RouterAddressNotServed), 2u);
}

TEST_F(Pipeline, IcmpErrorAboutSnatFlowReachesTheVmTranslatedBack) {
  auto r = world_.fromPort(kH1, kVm1,
                           udp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 41000, 53));
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].host, kH2);
  ASSERT_EQ(r[0].kind, Outputs::Kind::Uplink);
  auto left = parsed(r[0].bytes);
  ASSERT_TRUE(has(r[0], "ip 203.0.113.10 > 198.51.100.7")) << describeFrame(r[0].bytes);

  // 198.51.100.7 has nothing on port 53: its error quotes the translated packet.
  auto error = simulator::icmpError(r[0].bytes, left, kOutsideMac, v4("198.51.100.7"), 3, 3, 0);
  r = world_.fromOutside(kH2, error);
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_TRUE(has(r[0], "ip 198.51.100.7 > 10.0.0.5")) << describeFrame(r[0].bytes);
  EXPECT_TRUE(has(r[0], "icmp 3/3")) << describeFrame(r[0].bytes);
  auto p = parsed(r[0].bytes);
  const auto& b = r[0].bytes;
  size_t quote = p.payload_offset;  // the quoted IPv4 header, then 8 bytes of UDP
  ASSERT_GE(b.size(), quote + 28);
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + static_cast<long>(quote + 12),
                                 b.begin() + static_cast<long>(quote + 16)),
            (std::vector<uint8_t>{10, 0, 0, 5}));
  EXPECT_EQ(b[quote + 20] << 8 | b[quote + 21], 41000);
}

std::vector<uint8_t> tcpData(MacAddress from, MacAddress to, const char* src, const char* dst,
                             uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                             std::string_view data,
                             uint8_t flags = TcpHeader::kAck | TcpHeader::kPsh, uint8_t ttl = 64) {
  return PacketBuilder()
      .eth(from, to)
      .ipv4(v4(src), v4(dst), ttl)
      .tcp(sport, dport, flags, seq, ack)
      .payload(data)
      .build();
}

std::string payloadOf(const Received& r) {
  auto p = parsed(r.bytes);
  return std::string(r.bytes.begin() + p.payload_offset, r.bytes.begin() + p.l3_end);
}

// The router's ftp helper (tcp/21): vm1, behind SNAT on h2, opens an FTP
// control connection and sends PORT; the gateway host rewrites it to the
// gateway address and a port of its own, and the server's data connection
// to that port reaches vm1 (its group admits it, as Neutron needs too).
TEST_F(Pipeline, FtpHelperRewritesPortThroughSnatAndExpectsTheDataConnection) {
  auto p = parts();
  p.routers.at(kRouter).helpers = {
      {.protocol = 6, .port = 21, .kind = topology::NatHelperKind::Ftp}};
  p.groups.at(kDefault).rules.push_back({.id = "rule-ftp-data",
                                         .direction = topology::Direction::Ingress,
                                         .protocol = 6,
                                         .remote_prefix = prefix("198.51.100.0/24")});
  world_.setTopology(p.builder(), 2);
  auto r = world_.fromPort(kH1, kVm1,
                           tcpData(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 40000, 21,
                                   999, 0, "", TcpHeader::kSyn));
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].kind, Outputs::Kind::Uplink);
  EXPECT_TRUE(has(r[0], "ip 203.0.113.10 > 198.51.100.7")) << describeFrame(r[0].bytes);
  r = world_.fromOutside(kH2, tcpData(kOutsideMac, kGatewayMac, "198.51.100.7", "203.0.113.10", 21,
                                      40000, 7000, 1000, "", TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_TRUE(only(r, kH1, kVm1));

  std::string command = "PORT 10,0,0,5,195,80\r\n";
  r = world_.fromPort(kH1, kVm1,
                      tcpData(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 40000, 21,
                              1000, 7001, command));
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].kind, Outputs::Kind::Uplink);
  std::string sent = payloadOf(r[0]);
  ASSERT_TRUE(sent.starts_with("PORT 203,0,113,10,")) << sent;
  auto endpoint = nat::findFtpEndpoint(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(sent.data()), sent.size()));
  ASSERT_TRUE(endpoint);
  // Every checksum as a frame built with that text has it.
  auto out = parsed(r[0].bytes);
  EXPECT_EQ(r[0].bytes,
            tcpData(out.key.eth_src, out.key.eth_dst, "203.0.113.10", "198.51.100.7", 40000, 21,
                    1000, 7001, sent, TcpHeader::kAck | TcpHeader::kPsh, 63));

  r = world_.fromOutside(kH2, tcpData(kOutsideMac, kGatewayMac, "198.51.100.7", "203.0.113.10", 20,
                                      endpoint->port, 1, 0, "", TcpHeader::kSyn));
  ASSERT_TRUE(only(r, kH1, kVm1)) << r.size();
  EXPECT_TRUE(has(r[0], "ip 198.51.100.7 > 10.0.0.5")) << describeFrame(r[0].bytes);
  EXPECT_TRUE(has(r[0], "tcp 20 > 50000")) << describeFrame(r[0].bytes);

  // Without the helper, PORT leaves as it was.
  p.routers.at(kRouter).helpers.clear();
  world_.setTopology(p.builder(), 3);
  r = world_.fromPort(kH1, kVm1,
                      tcpData(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 40001, 21, 999,
                              0, "", TcpHeader::kSyn));
  ASSERT_EQ(r.size(), 1u);
  r = world_.fromPort(kH1, kVm1,
                      tcpData(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 40001, 21,
                              1000, 7001, command));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(payloadOf(r[0]), command);
}

// The router's tftp helper (udp/69): the server's answer from a port of
// its own reaches vm1 through SNAT.
TEST_F(Pipeline, TftpHelperExpectsTheServersAnswerThroughSnat) {
  auto p = parts();
  p.routers.at(kRouter).helpers = {
      {.protocol = 17, .port = 69, .kind = topology::NatHelperKind::Tftp}};
  p.groups.at(kDefault).rules.push_back({.id = "rule-tftp-data",
                                         .direction = topology::Direction::Ingress,
                                         .protocol = 17,
                                         .remote_prefix = prefix("198.51.100.0/24")});
  world_.setTopology(p.builder(), 2);
  auto request = PacketBuilder()
                     .eth(mac(0, 1), kRouterNet1Mac)
                     .ipv4(v4("10.0.0.5"), v4("198.51.100.7"))
                     .udp(40000, 69)
                     .payload(std::string("\0\1boot\0octet\0", 13))
                     .build();
  auto r = world_.fromPort(kH1, kVm1, request);
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].kind, Outputs::Kind::Uplink);
  auto left = parsed(r[0].bytes);
  auto answer = PacketBuilder()
                    .eth(kOutsideMac, kGatewayMac)
                    .ipv4(v4("198.51.100.7"), v4("203.0.113.10"))
                    .udp(50123, left.key.tp_src)
                    .payload(std::string("\0\3\0\1data", 8))
                    .build();
  r = world_.fromOutside(kH2, answer);
  ASSERT_TRUE(only(r, kH1, kVm1)) << r.size();
  EXPECT_TRUE(has(r[0], "ip 198.51.100.7 > 10.0.0.5")) << describeFrame(r[0].bytes);
  EXPECT_TRUE(has(r[0], "udp 50123 > 40000")) << describeFrame(r[0].bytes);
}

// A server behind a floating IP answers PASV: the 227 names the floating
// IP, translated on the VM's host; the control connection's later
// segments carry the length change.
TEST_F(Pipeline, FtpHelperRewritesPassiveReplyOfAServerBehindAFloatingIp) {
  auto p = parts();
  p.routers.at(kRouter).helpers = {
      {.protocol = 6, .port = 21, .kind = topology::NatHelperKind::Ftp}};
  p.groups.at(kWeb).rules.push_back({.id = "rule-ftp",
                                     .direction = topology::Direction::Ingress,
                                     .protocol = 6,
                                     .port_min = 21,
                                     .port_max = 21});
  world_.setTopology(p.builder(), 2);
  auto r = world_.fromOutside(kH1, tcpData(kOutsideMac, mac(0, 3), "198.51.100.7", "203.0.113.50",
                                           40000, 21, 8999, 0, "", TcpHeader::kSyn));
  ASSERT_TRUE(only(r, kH1, kVm3)) << r.size();
  std::string reply = "227 Entering Passive Mode (10,0,1,5,234,97).\r\n";
  r = world_.fromPort(kH1, kVm3,
                      tcpData(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "198.51.100.7", 21, 40000, 499,
                              9000, "", TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_EQ(r.size(), 1u);
  r = world_.fromOutside(kH1, tcpData(kOutsideMac, mac(0, 3), "198.51.100.7", "203.0.113.50", 40000,
                                      21, 9000, 500, "", TcpHeader::kAck));
  ASSERT_TRUE(only(r, kH1, kVm3)) << r.size();
  r = world_.fromPort(
      kH1, kVm3,
      tcpData(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "198.51.100.7", 21, 40000, 500, 9000, reply));
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].kind, Outputs::Kind::Uplink);
  EXPECT_EQ(payloadOf(r[0]), "227 Entering Passive Mode (203,0,113,50,234,97).\r\n");
  auto next =
      world_.fromPort(kH1, kVm3,
                      tcpData(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "198.51.100.7", 21, 40000,
                              500 + static_cast<uint32_t>(reply.size()), 9000, "150 ok\r\n"));
  ASSERT_EQ(next.size(), 1u);
  auto q = parsed(next[0].bytes);
  uint32_t seq = uint32_t{next[0].bytes[q.l4_offset + 4]} << 24 |
                 uint32_t{next[0].bytes[q.l4_offset + 5]} << 16 |
                 uint32_t{next[0].bytes[q.l4_offset + 6]} << 8 | next[0].bytes[q.l4_offset + 7];
  EXPECT_EQ(seq, 500 + reply.size() + 4);  // "203,0,113,50" is 4 longer than "10,0,1,5"
}

TEST_F(Pipeline, BadTunnelPacketsAreDroppedWithTheirReasons) {
  Datapath& h1 = world_.host(kH1);
  auto inner = ping(mac(0, 2), mac(0, 1), "10.0.0.6", "10.0.0.5");
  const IpAddress h2 = ip("192.168.100.2");
  auto geneve = [&](uint32_t vni, std::vector<packet::GeneveOptionSpec> options) {
    return packet::genevePayload(vni, options, inner);
  };

  EXPECT_TRUE(world_
                  .send(kH1, Ingress::fromTunnel(Encapsulation::Geneve, ip("192.168.100.99")),
                        geneve(101, {}))
                  .empty());
  EXPECT_EQ(h1.counters().dropped(DropReason::TunnelUnknownSource), 1u);

  auto unknown_critical =
      geneve(101, {{.option_class = 0x0102, .type = 0x80 | 0x05, .data = {0, 0, 0, 0}}});
  EXPECT_TRUE(
      world_.send(kH1, Ingress::fromTunnel(Encapsulation::Geneve, h2), unknown_critical).empty());
  EXPECT_EQ(h1.counters().dropped(DropReason::TunnelBadOption), 1u);

  EXPECT_TRUE(
      world_.send(kH1, Ingress::fromTunnel(Encapsulation::Geneve, h2), geneve(999, {})).empty());
  EXPECT_EQ(h1.counters().dropped(DropReason::UnknownVni), 1u);
  EXPECT_TRUE(world_
                  .send(kH1, Ingress::fromTunnel(Encapsulation::Vxlan, h2),
                        packet::vxlanPayload(999, inner))
                  .empty());
  EXPECT_EQ(h1.counters().dropped(DropReason::UnknownVni), 2u);

  // The same frame with an option that is not critical is carried (vm2 is
  // then matched into vm1's default group by its address).
  auto unknown_optional =
      geneve(101, {{.option_class = 0x0102, .type = 0x05, .data = {0, 0, 0, 0}}});
  EXPECT_TRUE(
      only(world_.send(kH1, Ingress::fromTunnel(Encapsulation::Geneve, h2), unknown_optional), kH1,
           kVm1));
}

// The options of a DHCP reply, by code.
std::map<uint8_t, std::vector<uint8_t>> dhcpOptions(std::span<const uint8_t> frame) {
  packet::ParsedPacket p = parsed(frame);
  auto udp_payload = frame.subspan(p.payload_offset, p.l3_end - p.payload_offset);
  std::map<uint8_t, std::vector<uint8_t>> options;
  for (size_t at = sizeof(packet::BootpHeader) + 4; at < udp_payload.size();) {
    uint8_t code = udp_payload[at];
    if (code == packet::dhcp::kPad) {
      ++at;
      continue;
    }
    if (code == packet::dhcp::kEnd || at + 1 >= udp_payload.size()) break;
    size_t length = udp_payload[at + 1];
    if (at + 2 + length > udp_payload.size()) break;
    options[code].assign(udp_payload.begin() + static_cast<long>(at + 2),
                         udp_payload.begin() + static_cast<long>(at + 2 + length));
    at += 2 + length;
  }
  return options;
}

TEST_F(Pipeline, DhcpInformIsAcknowledgedWithoutALease) {
  using namespace packet::dhcp;
  packet::DhcpOptions o;
  o.addByte(kMessageType, kInform);
  auto message = packet::dhcpRequest(mac(0, 1), 0x4321, o);
  // An INFORM client has its address already, in ciaddr (RFC 2131 4.4.3).
  const uint8_t ciaddr[] = {10, 0, 0, 5};
  std::copy(std::begin(ciaddr), std::end(ciaddr), message.begin() + 12);
  auto r = world_.fromPort(kH1, kVm1,
                           PacketBuilder()
                               .eth(mac(0, 1), MacAddress::broadcast())
                               .ipv4(v4("10.0.0.5"), v4("255.255.255.255"))
                               .udp(kClientPort, kServerPort)
                               .payload(message)
                               .build());
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_TRUE(has(r[0], "ip 10.0.0.1 > 10.0.0.5")) << describeFrame(r[0].bytes);
  EXPECT_TRUE(has(r[0], "dhcp ACK yiaddr 0.0.0.0")) << describeFrame(r[0].bytes);
  auto options = dhcpOptions(r[0].bytes);
  EXPECT_EQ(options[kMessageType], std::vector<uint8_t>{kAck});
  EXPECT_EQ(options[kSubnetMask], (std::vector<uint8_t>{255, 255, 255, 0}));
  EXPECT_EQ(options[packet::dhcp::kRouter], (std::vector<uint8_t>{10, 0, 0, 1}));
  EXPECT_EQ(options.count(kLeaseTime), 0u);
  EXPECT_EQ(options.count(kRenewalTime), 0u);
  EXPECT_EQ(options.count(kRebindingTime), 0u);
}

// A port's own DHCP settings (Neutron's dns_name, dns_domain and
// extra_dhcp_opts) go in its answer; an extra option replaces the
// server's own of the same code, and a next server is BOOTP's siaddr.
TEST_F(Pipeline, DhcpCarriesThePortsOwnSettings) {
  using namespace packet::dhcp;
  auto p = parts();
  auto& vm1 = p.ports.at(kVm1);
  vm1.dhcp_host_name = "web-1";
  vm1.dhcp_domain = "example.org.";
  vm1.dhcp_next_server = ip("10.0.0.99");
  vm1.dhcp_options = {{66, {'t', 'f', 't', 'p'}}, {kInterfaceMtu, {0x05, 0x00}}};
  world_.setTopology(p.builder(), 2);
  packet::DhcpOptions o;
  o.addByte(kMessageType, kDiscover);
  auto r = world_.fromPort(kH1, kVm1,
                           PacketBuilder()
                               .eth(mac(0, 1), MacAddress::broadcast())
                               .ipv4(v4("0.0.0.0"), v4("255.255.255.255"))
                               .udp(kClientPort, kServerPort)
                               .payload(packet::dhcpRequest(mac(0, 1), 0x99, o))
                               .build());
  ASSERT_TRUE(only(r, kH1, kVm1));
  auto options = dhcpOptions(r[0].bytes);
  EXPECT_EQ(options[kMessageType], std::vector<uint8_t>{kOffer});
  EXPECT_EQ(std::string(options[kHostName].begin(), options[kHostName].end()), "web-1");
  EXPECT_EQ(std::string(options[kDomainName].begin(), options[kDomainName].end()), "example.org");
  EXPECT_EQ(options[66], (std::vector<uint8_t>{'t', 'f', 't', 'p'}));
  EXPECT_EQ(options[kInterfaceMtu], (std::vector<uint8_t>{0x05, 0x00}));
  int mtus = 0;  // the port's MTU option, not the server's as well
  packet::ParsedPacket pp = parsed(r[0].bytes);
  auto payload = std::span<const uint8_t>(r[0].bytes).subspan(pp.payload_offset);
  for (size_t at = sizeof(packet::BootpHeader) + 4; at + 1 < payload.size();) {
    if (payload[at] == kPad) {
      ++at;
      continue;
    }
    if (payload[at] == kEnd) break;
    if (payload[at] == kInterfaceMtu) ++mtus;
    at += size_t{2} + payload[at + 1];
  }
  EXPECT_EQ(mtus, 1);
  EXPECT_EQ(payload[20], 10);  // siaddr, 10.0.0.99
  EXPECT_EQ(payload[23], 99);
}

// A local IP (10.0.0.50) associated with vm5 on h1: vm1, on the same host
// and network, finds it at vm5's MAC and reaches vm5 through it, and vm5's
// replies come back from the local IP; what vm5 sends on its own keeps its
// address; a host without an association does not translate.
TEST_F(Pipeline, ALocalIpIsAnsweredByItsPortOnTheSameHost) {
  auto p = parts();
  p.ports.at(kVm5).local_ips = {{ip("10.0.0.50"), ip("10.0.0.8")}};
  world_.setTopology(p.builder(), 2);
  auto arp = world_.fromPort(kH1, kVm1,
                             PacketBuilder()
                                 .eth(mac(0, 1), MacAddress::broadcast())
                                 .arp(1, mac(0, 1), v4("10.0.0.5"), MacAddress{}, v4("10.0.0.50"))
                                 .build());
  ASSERT_TRUE(only(arp, kH1, kVm1));
  EXPECT_TRUE(has(arp[0], "arp reply 10.0.0.50 is-at fa:16:3e:00:00:05"))
      << describeFrame(arp[0].bytes);

  auto in = world_.fromPort(kH1, kVm1, ping(mac(0, 1), mac(0, 5), "10.0.0.5", "10.0.0.50"));
  ASSERT_TRUE(only(in, kH1, kVm5)) << (in.empty() ? "" : describeFrame(in[0].bytes));
  EXPECT_TRUE(has(in[0], "ip 10.0.0.5 > 10.0.0.8")) << describeFrame(in[0].bytes);
  EXPECT_EQ(parsed(in[0].bytes).key.ip_dst[3], 8);

  auto out = world_.fromPort(kH1, kVm5, ping(mac(0, 5), mac(0, 1), "10.0.0.8", "10.0.0.5", 0));
  ASSERT_TRUE(only(out, kH1, kVm1));
  EXPECT_TRUE(has(out[0], "ip 10.0.0.50 > 10.0.0.5")) << describeFrame(out[0].bytes);

  // vm5's own traffic (another echo identifier) is its own.
  auto own = PacketBuilder()
                 .eth(mac(0, 5), mac(0, 1))
                 .ipv4(v4("10.0.0.8"), v4("10.0.0.5"))
                 .icmp(8, 0, 78, 1)
                 .payload("abcdefgh")
                 .build();
  auto mine = world_.fromPort(kH1, kVm5, own);
  ASSERT_TRUE(only(mine, kH1, kVm1));
  EXPECT_TRUE(has(mine[0], "ip 10.0.0.8 > 10.0.0.5")) << describeFrame(mine[0].bytes);

  // h2 has no association: vm2's packet is not sent to vm5's address.
  auto far = world_.fromPort(kH2, kVm2, udp(mac(0, 2), mac(0, 5), "10.0.0.6", "10.0.0.50", 1, 53));
  for (const auto& r : far) {
    EXPECT_FALSE(has(r, "10.0.0.8")) << describeFrame(r.bytes);
  }
}

// A guest's TCP with segmentation offload hands over super-frames that
// stand for MSS-sized segments: the MTU of the way out (here the public
// network's 1500, through vm3's floating IP) is checked against one
// segment. The same frame without its segment size is too big, with DF:
// answered with fragmentation needed. The segment size is no part of the
// cache key: both are served by one cached decision.
TEST_F(Pipeline, SuperFrameIsCheckedAgainstTheMtuBySegment) {
  Datapath& h1 = world_.host(kH1);
  auto syn = tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "203.0.113.1", 40000, 443, TcpHeader::kSyn);
  auto r = world_.fromPort(kH1, kVm3, syn);
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].kind, Outputs::Kind::Uplink);
  std::vector<uint8_t> data(30000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 13);
  auto super_frame = PacketBuilder()
                         .eth(mac(0, 3), kRouterNet2Mac)
                         .ipv4(v4("10.0.1.5"), v4("203.0.113.1"))
                         .dontFragment()
                         .tcp(40000, 443, TcpHeader::kAck | TcpHeader::kPsh, 1, 1)
                         .payload(data)
                         .build();

  Outputs out;
  const Datapath::Input gso[] = {
      {.in = Ingress::fromPort(kVm3), .frame = super_frame, .segment_size = 1400}};
  h1.processBatch(gso, out);
  ASSERT_EQ(out.items().size(), 1u);
  const auto& item = out.items()[0];
  EXPECT_EQ(item.kind, Outputs::Kind::Uplink);
  EXPECT_FALSE(item.generated);
  EXPECT_EQ(item.input, 0u);
  ASSERT_EQ(item.length, super_frame.size()) << "forwarded whole, for the kernel to segment";
  auto left = parsed(out.bytes(item));
  EXPECT_EQ(left.key.ip_src[0], 203);
  EXPECT_EQ(left.key.ip_src[3], 50) << "through the floating IP";
  EXPECT_EQ(left.l3_end - left.payload_offset, 30000);

  uint64_t simulations = h1.counters().simulations;
  uint64_t too_big = h1.counters().dropped(DropReason::FragmentationNeeded);
  out.clear();
  const Datapath::Input plain[] = {{.in = Ingress::fromPort(kVm3), .frame = super_frame}};
  h1.processBatch(plain, out);
  ASSERT_EQ(out.items().size(), 1u);
  const auto& answer = out.items()[0];
  EXPECT_EQ(answer.kind, Outputs::Kind::Port);
  EXPECT_EQ(answer.port, kVm3);
  EXPECT_TRUE(answer.generated);
  auto bytes = out.bytes(answer);
  EXPECT_NE(describeFrame(bytes).find("icmp 3/4"), std::string::npos) << describeFrame(bytes);
  auto icmp = parsed(bytes);
  EXPECT_EQ(bytes[icmp.l4_offset + 6] << 8 | bytes[icmp.l4_offset + 7], 1500);
  EXPECT_EQ(h1.counters().dropped(DropReason::FragmentationNeeded), too_big + 1);
  EXPECT_EQ(h1.counters().simulations, simulations) << "one cached decision for both";

  // Segments of 1480 bytes would not fit either.
  out.clear();
  const Datapath::Input large[] = {
      {.in = Ingress::fromPort(kVm3), .frame = super_frame, .segment_size = 1480}};
  h1.processBatch(large, out);
  ASSERT_EQ(out.items().size(), 1u);
  EXPECT_TRUE(out.items()[0].generated);
  EXPECT_EQ(h1.counters().dropped(DropReason::FragmentationNeeded), too_big + 2);
}

// Each output names the input it came from, and says whether the datapath
// made it (an answer) or forwarded the input.
TEST_F(Pipeline, OutputsNameTheirInputAndWhetherTheDatapathMadeThem) {
  auto arp = PacketBuilder()
                 .eth(mac(0, 1), MacAddress::broadcast())
                 .arp(1, mac(0, 1), v4("10.0.0.5"), MacAddress{}, v4("10.0.0.1"))
                 .build();
  auto to_vm5 = udp(mac(0, 1), mac(0, 5), "10.0.0.5", "10.0.0.8", 5000, 6000);
  auto to_vm2 = udp(mac(0, 1), mac(0, 2), "10.0.0.5", "10.0.0.6", 5000, 6000);
  const Datapath::Input batch[] = {{.in = Ingress::fromPort(kVm1), .frame = to_vm5},
                                   {.in = Ingress::fromPort(kVm1), .frame = arp},
                                   {.in = Ingress::fromPort(kVm1), .frame = to_vm2}};
  Outputs out;
  world_.host(kH1).processBatch(batch, out);
  ASSERT_EQ(out.items().size(), 3u);
  EXPECT_EQ(out.items()[0].input, 0u);
  EXPECT_EQ(out.items()[0].kind, Outputs::Kind::Port);
  EXPECT_FALSE(out.items()[0].generated);
  EXPECT_EQ(out.items()[1].input, 1u);
  EXPECT_TRUE(out.items()[1].generated) << "the router's ARP reply";
  EXPECT_EQ(out.items()[2].input, 2u);
  EXPECT_EQ(out.items()[2].kind, Outputs::Kind::Tunnel);
  EXPECT_FALSE(out.items()[2].generated);
  // A tunnel output's inner frame starts after the Geneve header and options.
  auto tunnelled = out.bytes(out.items()[2]);
  auto inner = tunnelled.subspan(out.items()[2].inner_offset);
  EXPECT_TRUE(std::equal(inner.begin(), inner.end(), to_vm2.begin(), to_vm2.end()));
}

// Two workers of one host: each its own Datapath (cache, counters), one
// SharedState. A connection's reply may come in on the other worker.
class TwoWorkers : public ::testing::Test {
 protected:
  void SetUp() override {
    pipeline::Config c;
    c.host.host = kH1;
    c.host.uplinks = {"physnet1"};
    shared_ = std::make_shared<pipeline::SharedState>(clock_, c, /*workers=*/2);
    for (auto& w : workers_) {
      w = std::make_unique<Datapath>(clock_, c, shared_);
      w->setTopology(*scenario().build(1));
    }
  }
  FakeClock clock_;
  std::shared_ptr<pipeline::SharedState> shared_;
  std::unique_ptr<Datapath> workers_[2];
};

TEST_F(TwoWorkers, AConnectionCommittedOnOneIsEstablishedOnTheOther) {
  Outputs out;
  auto syn = tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 40000, 80, TcpHeader::kSyn);
  auto v = workers_[0]->process(Ingress::fromPort(kVm1), syn, out);
  EXPECT_EQ(v.outputs, 1u);
  EXPECT_FALSE(v.dropped());
  auto syn_ack = tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "10.0.0.5", 80, 40000,
                     TcpHeader::kSyn | TcpHeader::kAck);
  out.clear();
  v = workers_[1]->process(Ingress::fromPort(kVm3), syn_ack, out);
  EXPECT_EQ(v.outputs, 1u) << dropReasonName(v.drop);
  EXPECT_EQ(workers_[0]->connections().size(), 2u);  // vm1's zone and vm3's
  EXPECT_EQ(&workers_[0]->connections(), &workers_[1]->connections());

  // A worker with a table of its own has never seen the connection.
  pipeline::Config c;
  c.host.host = kH1;
  Datapath alone(clock_, c);
  alone.setTopology(*scenario().build(1));
  auto data = tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "10.0.0.5", 80, 40000, TcpHeader::kAck);
  out.clear();
  v = alone.process(Ingress::fromPort(kVm3), data, out);
  EXPECT_EQ(v.outputs, 0u);
  EXPECT_EQ(v.drop, DropReason::ConntrackNotSyn);
}

TEST_F(TwoWorkers, ANeighbourLearnedOnOneInvalidatesTheOthersCachedDecision) {
  // vm3's floating IP to the outside, through the external next hop: the
  // decision (with the next hop's MAC) is cached on worker 1.
  workers_[0]->learnNeighbor(kPublic, ip("203.0.113.1"), kOutsideMac);
  auto out_bound = udp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "203.0.113.1", 5000, 53);
  auto destination = [&] {
    Outputs out;
    auto v = workers_[1]->process(Ingress::fromPort(kVm3), out_bound, out);
    EXPECT_EQ(v.outputs, 1u) << dropReasonName(v.drop);
    if (out.items().empty()) return MacAddress{};
    auto bytes = out.bytes(out.items()[0]);
    MacAddress m;
    std::copy(bytes.begin(), bytes.begin() + 6, m.bytes.begin());
    return m;
  };
  EXPECT_EQ(destination(), kOutsideMac);  // new in conntrack
  EXPECT_EQ(destination(), kOutsideMac);  // established
  uint64_t simulations = workers_[1]->counters().simulations;
  EXPECT_EQ(destination(), kOutsideMac);
  EXPECT_EQ(workers_[1]->counters().simulations, simulations) << "served from the cache";
  // The next hop moves to another MAC, learned by worker 0: worker 1's next
  // packet goes to it.
  const MacAddress moved = mac(9, 9);
  workers_[0]->learnNeighbor(kPublic, ip("203.0.113.1"), moved);
  EXPECT_EQ(destination(), moved);
}

// Neighbour discovery answered at the edge, as ARP is: a solicitation for
// another port's address or the router's gets an advertisement from the
// VM's own host (solicited, to the asker; R for the router); one for the
// asker's own address (duplicate address detection) goes on unanswered.
TEST_F(Pipeline, NeighborSolicitationsAreAnsweredAtTheEdge) {
  auto p = parts();
  p.ports.at(kVm1).ips.push_back(ip("fd00::5"));
  p.ports.at(kVm2).ips.push_back(ip("fd00::6"));
  p.routers.at(kRouter).interfaces.push_back({.port_key = 904,
                                              .switch_key = kNet1,
                                              .mac = mac(1, 3),
                                              .ip = ip("fd00::1"),
                                              .subnet = prefix("fd00::/64")});
  world_.setTopology(p.builder(), 2);
  auto solicit = [&](const char* from, const char* target, uint8_t hop_limit = 255) {
    auto t = packet::Ipv6Address::of(ip(target));
    std::vector<uint8_t> body(t.bytes.begin(), t.bytes.end());
    body.insert(body.end(), {1, 1, 0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01});  // source link-layer
    auto solicited = ip("ff02::1:ff00:0");
    std::copy_n(t.bytes.begin() + 13, 3, solicited.bytes.begin() + 13);
    return PacketBuilder()
        .eth(mac(0, 1), MacAddress{{0x33, 0x33, 0xff, t.bytes[13], t.bytes[14], t.bytes[15]}})
        .ipv6(packet::Ipv6Address::of(ip(from)), packet::Ipv6Address::of(solicited), hop_limit)
        .icmp(135, 0)
        .payload(body)
        .build();
  };
  auto port = world_.fromPort(kH1, kVm1, solicit("fd00::5", "fd00::6"));
  ASSERT_TRUE(only(port, kH1, kVm1)) << (port.empty() ? "" : describeFrame(port[0].bytes));
  auto na = parsed(port[0].bytes);
  EXPECT_EQ(na.key.tp_src, 136);
  EXPECT_EQ(na.key.eth_src, mac(0, 2));
  EXPECT_EQ(na.key.eth_dst, mac(0, 1));
  EXPECT_EQ(na.key.ip_ttl, 255);
  EXPECT_EQ(IpAddress(6, na.key.ip_dst), ip("fd00::5"));
  const auto& b = port[0].bytes;
  EXPECT_EQ(b[na.l4_offset + 4], 0x60);  // solicited, override; not a router
  EXPECT_TRUE(std::equal(b.end() - 6, b.end(), mac(0, 2).bytes.begin()));  // its MAC option

  auto router = world_.fromPort(kH1, kVm1, solicit("fd00::5", "fd00::1"));
  ASSERT_TRUE(only(router, kH1, kVm1));
  EXPECT_EQ(router[0].bytes[parsed(router[0].bytes).l4_offset + 4], 0xe0);  // and R
  EXPECT_EQ(parsed(router[0].bytes).key.eth_src, mac(1, 3));

  // Duplicate address detection of another port's address: the answer goes
  // to all nodes, unsolicited, and tells the guest its address is taken.
  auto dad = world_.fromPort(kH1, kVm1, solicit("::", "fd00::6"));
  ASSERT_TRUE(only(dad, kH1, kVm1));
  EXPECT_EQ(IpAddress(6, parsed(dad[0].bytes).key.ip_dst), ip("ff02::1"));
  EXPECT_EQ(dad[0].bytes[parsed(dad[0].bytes).l4_offset + 4], 0x20);
  // Its own address: nothing answers at the edge; the solicitation floods.
  for (const auto& r : world_.fromPort(kH1, kVm1, solicit("::", "fd00::5"))) {
    EXPECT_NE(parsed(r.bytes).key.tp_src, 136) << describeFrame(r.bytes);
  }
  // Not a valid solicitation (hop limit not 255): not answered.
  for (const auto& r : world_.fromPort(kH1, kVm1, solicit("fd00::5", "fd00::6", 64))) {
    EXPECT_NE(parsed(r.bytes).key.tp_src, 136) << describeFrame(r.bytes);
  }
}

}  // namespace
}  // namespace canopy::datapath::testing
