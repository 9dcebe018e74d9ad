// Fragments through the datapath: later fragments are decided as their
// first fragment was (security groups by its ports, conntrack by its
// connection, SNAT by its mapping), in IPv4 and IPv6; a later fragment of
// no known datagram is a counted drop. And the table that remembers.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "datapath/conntrack/fragments.h"
#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using namespace std::chrono_literals;
using packet::Fragment;
using packet::PacketBuilder;

packet::ParsedPacket parsed(std::span<const uint8_t> frame) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None) << describeFrame(frame);
  return p;
}

// A UDP datagram of 1200 bytes from `src` to `dst`:`port`, cut in two
// IPv4 fragments of identification `id` (the first 1000 bytes of the UDP
// datagram, then the rest: both fit the scenario's MTUs).
std::vector<std::vector<uint8_t>> fragmented(MacAddress from, MacAddress to, const char* src,
                                             const char* dst, uint16_t port, uint16_t id = 7) {
  std::string data(1192, 'd');
  auto first = PacketBuilder()
                   .eth(from, to)
                   .ipv4(v4(src), v4(dst))
                   .udp(4000, port)
                   .payload(std::string_view(data).substr(0, 992))
                   .fragment(0, true)
                   .build();
  auto later = PacketBuilder()
                   .eth(from, to)
                   .ipv4(v4(src), v4(dst))
                   .payload(std::string_view(data).substr(992))
                   .fragment(1000, false)
                   .build();
  later[23] = 17;  // its protocol: UDP, whose header is in the first
  for (auto* f : {&first, &later}) {
    (*f)[18] = static_cast<uint8_t>(id >> 8);  // IPv4 identification
    (*f)[19] = static_cast<uint8_t>(id);
    // The header checksum again (the identification and protocol changed).
    (*f)[24] = (*f)[25] = 0;
    uint32_t sum = 0;
    for (size_t i = 14; i < 34; i += 2) sum += static_cast<uint32_t>((*f)[i] << 8 | (*f)[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    (*f)[24] = static_cast<uint8_t>(~sum >> 8);
    (*f)[25] = static_cast<uint8_t>(~sum);
  }
  return {first, later};
}

TEST(FragmentTable, LaterFragmentsGetTheirFirstFragmentsFlow) {
  conntrack::FragmentTable t(2, 30s);
  SteadyTime now{};
  auto f = fragmented(mac(0, 1), mac(0, 2), "10.0.0.5", "10.0.0.6", 53);
  auto first = parsed(f[0]), later = parsed(f[1]);
  ASSERT_EQ(first.key.ip_frag, Fragment::First);
  ASSERT_EQ(later.key.ip_frag, Fragment::Later);
  EXPECT_FALSE(t.fill(later, now)) << "before its first";
  t.remember(first, now);
  ASSERT_TRUE(t.fill(later, now));
  EXPECT_TRUE(later.fragment_ports);
  EXPECT_EQ(later.key.tp_src, 4000);
  EXPECT_EQ(later.key.tp_dst, 53);
  // Another datagram (another identification) is another name.
  auto other = parsed(fragmented(mac(0, 1), mac(0, 2), "10.0.0.5", "10.0.0.6", 53, 8)[1]);
  EXPECT_FALSE(t.fill(other, now));
  // Forgotten when its time is up, or when the table is full.
  auto late = parsed(f[1]);
  EXPECT_FALSE(t.fill(late, now + 31s));
  for (uint16_t id = 20; id < 23; ++id) {
    t.remember(parsed(fragmented(mac(0, 1), mac(0, 2), "10.0.0.5", "10.0.0.6", 53, id)[0]), now);
  }
  EXPECT_LE(t.size(), 2u);
  EXPECT_FALSE(t.fill(late, now));
}

class FragmentPath : public ::testing::Test {
 protected:
  void SetUp() override {
    world_.setTopology(scenario(), 1);
    for (uint32_t h : {kH1, kH2}) {
      world_.host(h).learnNeighbor(kPublic, ip("203.0.113.1"), kOutsideMac);
    }
  }
  uint64_t drops(uint32_t host, DropReason why) {
    return world_.host(host).counters().dropped(why);
  }
  World world_;
};

// vm3's group (web) admits tcp 80 and ICMP: a fragmented datagram to a UDP
// port is refused whole, later fragment too (it used to pass any rule of
// its protocol); through vm1's group (from the default group), both pass.
TEST_F(FragmentPath, SecurityGroupsDecideLaterFragmentsByTheFirstsPorts) {
  auto to_vm2 = fragmented(mac(0, 1), mac(0, 2), "10.0.0.5", "10.0.0.6", 5353);
  for (const auto& f : to_vm2) {
    auto r = world_.fromPort(kH1, kVm1, f);
    ASSERT_EQ(r.size(), 1u) << describeFrame(f);
    EXPECT_EQ(r[0].port, kVm2);
  }
  // Now web gets a rule for udp 53 only: 53 passes whole, 54 not at all.
  auto p = TopologyParts::of(*world_.host(kH1).topology());
  p.groups.at(kWeb).rules.push_back({.id = "dns",
                                     .direction = topology::Direction::Ingress,
                                     .protocol = 17,
                                     .port_min = 53,
                                     .port_max = 53});
  world_.setTopology(p.builder(), 2);
  for (const auto& f : fragmented(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 53, 9)) {
    auto r = world_.fromPort(kH1, kVm1, f);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].port, kVm3);
  }
  for (const auto& f : fragmented(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 54, 10)) {
    EXPECT_TRUE(world_.fromPort(kH1, kVm1, f).empty());
  }
  EXPECT_EQ(drops(kH1, DropReason::SecurityGroupIngress), 2u);
  // A later fragment of a datagram never seen.
  auto orphan = fragmented(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 53, 11)[1];
  EXPECT_TRUE(world_.fromPort(kH1, kVm1, orphan).empty());
  EXPECT_EQ(drops(kH1, DropReason::FragmentUnknown), 1u);
}

// Through the router's SNAT (vm1 has no floating IP; the gateway is on h2):
// both fragments leave from the gateway's address, the first one's port
// translated; the answer's fragments both reach vm1.
TEST_F(FragmentPath, SnatTranslatesLaterFragmentsByTheFirstsMapping) {
  auto out = fragmented(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "203.0.113.1", 53, 21);
  std::vector<packet::ParsedPacket> left;
  std::vector<std::vector<uint8_t>> wire;
  for (const auto& f : out) {
    auto r = world_.fromPort(kH1, kVm1, f);
    ASSERT_EQ(r.size(), 1u) << describeFrame(f);
    EXPECT_EQ(r[0].host, kH2);
    EXPECT_EQ(r[0].kind, Outputs::Kind::Uplink);
    left.push_back(parsed(r[0].bytes));
    wire.push_back(r[0].bytes);
  }
  EXPECT_EQ(Ipv4Address::of(IpAddress(4, left[0].key.ip_src)), v4("203.0.113.10"));
  EXPECT_EQ(Ipv4Address::of(IpAddress(4, left[1].key.ip_src)), v4("203.0.113.10"));
  uint16_t port = left[0].key.tp_src;
  EXPECT_EQ(drops(kH2, DropReason::NatLaterFragment), 0u);

  // The answer, fragmented by the server: to the gateway's address and port.
  auto back = fragmented(kOutsideMac, kGatewayMac, "203.0.113.1", "203.0.113.10", 4000, 22);
  // Its ports: from 53 to the translated one.
  back[0][34] = 0;
  back[0][35] = 53;
  back[0][36] = static_cast<uint8_t>(port >> 8);
  back[0][37] = static_cast<uint8_t>(port);
  back[0][40] = back[0][41] = 0;  // no UDP checksum
  for (const auto& f : back) {
    auto r = world_.fromOutside(kH2, f);
    ASSERT_EQ(r.size(), 1u) << describeFrame(f);
    EXPECT_EQ(r[0].host, kH1);
    EXPECT_EQ(r[0].port, kVm1);
    EXPECT_EQ(Ipv4Address::of(IpAddress(4, parsed(r[0].bytes).key.ip_dst)), v4("10.0.0.5"));
  }
}

// IPv6: the fragment header's identification names the datagram.
TEST_F(FragmentPath, Ipv6LaterFragmentsFollowTheirFirst) {
  auto p = TopologyParts::of(*world_.host(kH1).topology());
  addIpv6(p);
  world_.setTopology(p.builder(), 2);
  auto fragment = [&](uint16_t offset, bool more, bool udp) {
    // Fragment header: next header UDP, offset (8-byte units) | M, id 0x1234.
    uint16_t bits = static_cast<uint16_t>(offset | (more ? 1 : 0));
    std::vector<uint8_t> body = {
        17, 0, static_cast<uint8_t>(bits >> 8), static_cast<uint8_t>(bits), 0, 0, 0x12, 0x34};
    if (udp) body.insert(body.end(), {0x0f, 0xa0, 0x14, 0xe9, 0x07, 0xd0, 0, 0});  // 4000 -> 5353
    body.resize(body.size() + 64, 'x');
    auto f = PacketBuilder()
                 .eth(mac(0, 1), mac(0, 2))
                 .ipv6(packet::Ipv6Address::of(ip("fd00:1::5")),
                       packet::Ipv6Address::of(ip("fd00:1::6")))
                 .payload(body)
                 .build();
    f[20] = 44;  // next header: fragment
    return f;
  };
  auto first = fragment(0, true, true), later = fragment(1480, false, false);
  ASSERT_EQ(parsed(first).key.ip_frag, Fragment::First);
  ASSERT_EQ(parsed(later).key.ip_frag, Fragment::Later);
  EXPECT_TRUE(world_.fromPort(kH1, kVm1, later).empty()) << "before its first";
  EXPECT_EQ(drops(kH1, DropReason::FragmentUnknown), 1u);
  ASSERT_EQ(world_.fromPort(kH1, kVm1, first).size(), 1u);
  auto r = world_.fromPort(kH1, kVm1, later);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].port, kVm2);
}

// Path MTU discovery through translations: "fragmentation needed" about a
// packet that came in through a floating IP or router SNAT quotes it as the
// outside sender sent it (to the floating IP, to the gateway's address and
// port), or the sender would not know which connection it is about.
TEST_F(FragmentPath, NeedFragQuotesThePacketAsTheOutsideSentIt) {
  std::string big(1500 - 20 - 8, 'x');
  // The quoted packet's destination address and port (its IPv4 header
  // without options, then UDP).
  struct Quote {
    Ipv4Address dst;
    uint16_t port;
  };
  auto quoteOf = [](const std::vector<uint8_t>& error) {
    packet::ParsedPacket e = parsed(error);
    EXPECT_EQ(e.key.tp_src, 3);
    EXPECT_EQ(e.key.tp_dst, 4);
    size_t at = e.payload_offset;
    IpAddress dst = IpAddress::v4(error[at + 16], error[at + 17], error[at + 18], error[at + 19]);
    return Quote{Ipv4Address::of(dst), static_cast<uint16_t>(error[at + 22] << 8 | error[at + 23])};
  };
  // To vm3's floating IP (vm3 on h1, net2's MTU 1400).
  auto to_fip = PacketBuilder()
                    .eth(kOutsideMac, mac(0, 3))
                    .ipv4(v4("203.0.113.1"), v4("203.0.113.50"))
                    .dontFragment()
                    .udp(53, 4000)
                    .payload(big)
                    .build();
  auto r = world_.fromOutside(kH1, to_fip);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].kind, Outputs::Kind::Uplink);
  auto q = quoteOf(r[0].bytes);
  EXPECT_EQ(q.dst, v4("203.0.113.50")) << "not 10.0.1.5";
  EXPECT_EQ(Ipv4Address::of(IpAddress(4, parsed(r[0].bytes).key.ip_dst)), v4("203.0.113.1"));

  // Through SNAT: vm1 (net1, MTU 1442) asks outside; the big answer comes
  // back to the gateway's address and port.
  auto ask = PacketBuilder()
                 .eth(mac(0, 1), kRouterNet1Mac)
                 .ipv4(v4("10.0.0.5"), v4("203.0.113.1"))
                 .udp(4001, 53)
                 .payload("q")
                 .build();
  auto asked = world_.fromPort(kH1, kVm1, ask);
  ASSERT_EQ(asked.size(), 1u);
  auto a = parsed(asked[0].bytes);
  uint16_t port = a.key.tp_src;
  auto answer = PacketBuilder()
                    .eth(kOutsideMac, kGatewayMac)
                    .ipv4(v4("203.0.113.1"), v4("203.0.113.10"))
                    .dontFragment()
                    .udp(53, port)
                    .payload(big)
                    .build();
  r = world_.fromOutside(kH2, answer);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].kind, Outputs::Kind::Uplink);
  q = quoteOf(r[0].bytes);
  EXPECT_EQ(q.dst, v4("203.0.113.10")) << "not 10.0.0.5";
  EXPECT_EQ(q.port, port);
}

}  // namespace
}  // namespace canopy::datapath::testing
