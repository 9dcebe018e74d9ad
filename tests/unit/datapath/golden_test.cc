// Golden traces: each scenario of the datapath walked through hosts h1..h3
// of the test world, with every step the simulator takes in Neutron's terms
// and every frame that leaves, compared with tests/golden/datapath/<name>.txt.
// CANOPY_UPDATE_GOLDEN=1 rewrites the files (review the diff). Each test
// also checks its outcome directly, so a wrong golden file cannot hide a
// wrong result.

#include "testing/golden.h"

#include <gtest/gtest.h>

#include "datapath/packet/dhcp.h"
#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using packet::TcpHeader;
using Received = World::Received;

void expectGolden(const std::string& name, const std::string& actual) {
  canopy::testing::expectGolden("datapath/" + name + ".txt", actual);
}

class Golden : public ::testing::Test {
 protected:
  void SetUp() override { start(world_); }
  static void start(World& w) {
    w.setTopology(scenario(), 1);
    for (uint32_t h : {kH1, kH2}) {
      w.host(h).learnNeighbor(kPublic, ip("203.0.113.1"), kOutsideMac);
    }
  }

  // Sends and records the trace and outputs under a heading.
  std::vector<Received> step(const std::string& heading, uint32_t host, const Ingress& in,
                             const std::vector<uint8_t>& frame, World* w = nullptr) {
    std::vector<std::string> trace;
    auto r = (w != nullptr ? *w : world_).send(host, in, frame, &trace);
    text_ += "== " + heading + "\n" + "in: " + describeFrame(frame) + "\n" + render(trace, r);
    return r;
  }

  static std::vector<uint8_t> tcp(MacAddress from, MacAddress to, const char* src, const char* dst,
                                  uint16_t sport, uint16_t dport, uint8_t flags, uint8_t ttl = 64) {
    return PacketBuilder()
        .eth(from, to)
        .ipv4(v4(src), v4(dst), ttl)
        .tcp(sport, dport, flags, 1000, 0)
        .build();
  }
  static std::vector<uint8_t> ping(MacAddress from, MacAddress to, const char* src, const char* dst,
                                   uint8_t type = 8, uint8_t ttl = 64) {
    return PacketBuilder()
        .eth(from, to)
        .ipv4(v4(src), v4(dst), ttl)
        .icmp(type, 0, 77, 1)
        .payload("abcdefgh")
        .build();
  }

  static bool only(const std::vector<Received>& r, uint32_t host, uint32_t port) {
    return r.size() == 1 && r[0].host == host && r[0].kind == Outputs::Kind::Port &&
           r[0].port == port;
  }

  World world_;
  std::string text_;
};

TEST_F(Golden, SameNetworkPing) {
  auto r = step("vm1 pings vm2 on another host (Geneve)", kH1, Ingress::fromPort(kVm1),
                ping(mac(0, 1), mac(0, 2), "10.0.0.5", "10.0.0.6"));
  EXPECT_TRUE(only(r, kH2, kVm2));
  r = step("vm2 replies", kH2, Ingress::fromPort(kVm2),
           ping(mac(0, 2), mac(0, 1), "10.0.0.6", "10.0.0.5", 0));
  EXPECT_TRUE(only(r, kH1, kVm1));
  expectGolden("same_network_ping", text_);
}

TEST_F(Golden, RoutedPing) {
  auto r = step("vm1 pings vm3 through r1", kH1, Ingress::fromPort(kVm1),
                ping(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5"));
  ASSERT_TRUE(only(r, kH1, kVm3));
  EXPECT_NE(describeFrame(r[0].bytes).find("fa:16:3e:00:01:02 > fa:16:3e:00:00:03"),
            std::string::npos);
  EXPECT_NE(describeFrame(r[0].bytes).find("ttl 63"), std::string::npos);
  r = step("vm3 replies", kH1, Ingress::fromPort(kVm3),
           ping(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "10.0.0.5", 0));
  EXPECT_TRUE(only(r, kH1, kVm1));
  r = step("vm1 pings the router", kH1, Ingress::fromPort(kVm1),
           ping(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.0.1"));
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_NE(describeFrame(r[0].bytes).find("ip 10.0.0.1 > 10.0.0.5"), std::string::npos);
  expectGolden("routed_ping", text_);
}

TEST_F(Golden, SecurityGroupAllowAndDeny) {
  auto r = step("vm1 opens tcp 80 on vm3: web allows it", kH1, Ingress::fromPort(kVm1),
                tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 40000, 80, TcpHeader::kSyn));
  EXPECT_TRUE(only(r, kH1, kVm3));
  r = step("vm1 opens tcp 22 on vm3: no rule", kH1, Ingress::fromPort(kVm1),
           tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 40001, 22, TcpHeader::kSyn));
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::SecurityGroupIngress), 1u);
  expectGolden("security_group_allow_deny", text_);
}

TEST_F(Golden, EstablishedReply) {
  step("vm1 opens tcp 80 on vm3", kH1, Ingress::fromPort(kVm1),
       tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 40000, 80, TcpHeader::kSyn));
  auto r = step("vm3 answers: the reply passes vm1's default group", kH1, Ingress::fromPort(kVm3),
                tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "10.0.0.5", 80, 40000,
                    TcpHeader::kSyn | TcpHeader::kAck));
  EXPECT_TRUE(only(r, kH1, kVm1));
  r = step("vm3 opens a new connection to vm1: refused", kH1, Ingress::fromPort(kVm3),
           tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "10.0.0.5", 5555, 22, TcpHeader::kSyn));
  EXPECT_TRUE(r.empty());
  expectGolden("established_reply", text_);
}

TEST_F(Golden, RemoteGroupByTagAndByAddress) {
  auto r = step("vm2 (default) opens tcp 22 on vm1 over Geneve: allowed by the sender's tag", kH2,
                Ingress::fromPort(kVm2),
                tcp(mac(0, 2), mac(0, 1), "10.0.0.6", "10.0.0.5", 33000, 22, TcpHeader::kSyn));
  EXPECT_TRUE(only(r, kH1, kVm1));
  r = step("vm3 (web) opens tcp 22 on vm1: not in default", kH1, Ingress::fromPort(kVm3),
           tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "10.0.0.5", 33001, 22, TcpHeader::kSyn));
  EXPECT_TRUE(r.empty());

  World vxlan(Encapsulation::Vxlan);
  start(vxlan);
  r = step("over VXLAN: no tags, vm2 is matched by its address", kH2, Ingress::fromPort(kVm2),
           tcp(mac(0, 2), mac(0, 1), "10.0.0.6", "10.0.0.5", 33000, 22, TcpHeader::kSyn), &vxlan);
  EXPECT_TRUE(only(r, kH1, kVm1));
  expectGolden("remote_group_tag_and_address", text_);
}

TEST_F(Golden, FloatingIpInAndOut) {
  auto r =
      step("outside asks for the floating IP: h1 (vm3's host) answers", kH1, Ingress::fromUplink(0),
           PacketBuilder()
               .eth(kOutsideMac, MacAddress::broadcast())
               .arp(1, kOutsideMac, v4("203.0.113.1"), MacAddress{}, v4("203.0.113.50"))
               .build());
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(describeFrame(r[0].bytes).find("203.0.113.50 is-at fa:16:3e:00:00:03"),
            std::string::npos);
  r = step("outside opens tcp 80 on the floating IP", kH1, Ingress::fromUplink(0),
           tcp(kOutsideMac, mac(0, 3), "198.51.100.7", "203.0.113.50", 50000, 80, TcpHeader::kSyn));
  ASSERT_TRUE(only(r, kH1, kVm3));
  EXPECT_NE(describeFrame(r[0].bytes).find("198.51.100.7 > 10.0.1.5"), std::string::npos);
  r = step("vm3 answers from its fixed IP: leaves h1's uplink as the floating IP", kH1,
           Ingress::fromPort(kVm3),
           tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "198.51.100.7", 80, 50000,
               TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].kind, Outputs::Kind::Uplink);
  EXPECT_NE(describeFrame(r[0].bytes)
                .find("fa:16:3e:00:00:03 > 52:54:00:00:00:01 ip 203.0.113.50 > 198.51.100.7"),
            std::string::npos);
  expectGolden("floating_ip_in_out", text_);
}

TEST_F(Golden, SnatOutAndBack) {
  auto r =
      step("vm1 (no floating IP) opens tcp 443 outside: SNAT on the gateway host h2", kH1,
           Ingress::fromPort(kVm1),
           tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "198.51.100.7", 41000, 443, TcpHeader::kSyn));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].host, kH2);
  EXPECT_EQ(r[0].kind, Outputs::Kind::Uplink);
  packet::ParsedPacket out;
  ASSERT_EQ(packet::parse(r[0].bytes, out), DropReason::None);
  EXPECT_EQ(describeFrame(r[0].bytes).find("ip 203.0.113.10 > 198.51.100.7") != std::string::npos,
            true);
  r = step("the reply reaches h2's uplink and goes back to vm1", kH2, Ingress::fromUplink(0),
           tcp(kOutsideMac, kGatewayMac, "198.51.100.7", "203.0.113.10", 443, out.key.tp_src,
               TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_NE(describeFrame(r[0].bytes).find("198.51.100.7 > 10.0.0.5"), std::string::npos);
  EXPECT_NE(describeFrame(r[0].bytes).find("tcp 443 > 41000"), std::string::npos);
  expectGolden("snat_out_and_back", text_);
}

TEST_F(Golden, ArpRequestReply) {
  auto r = step("vm1 asks for vm2's address", kH1, Ingress::fromPort(kVm1),
                PacketBuilder()
                    .eth(mac(0, 1), MacAddress::broadcast())
                    .arp(1, mac(0, 1), v4("10.0.0.5"), MacAddress{}, v4("10.0.0.6"))
                    .build());
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_NE(describeFrame(r[0].bytes).find("10.0.0.6 is-at fa:16:3e:00:00:02"), std::string::npos);
  r = step("vm1 asks for its gateway", kH1, Ingress::fromPort(kVm1),
           PacketBuilder()
               .eth(mac(0, 1), MacAddress::broadcast())
               .arp(1, mac(0, 1), v4("10.0.0.5"), MacAddress{}, v4("10.0.0.1"))
               .build());
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_NE(describeFrame(r[0].bytes).find("10.0.0.1 is-at fa:16:3e:00:01:01"), std::string::npos);
  expectGolden("arp_request_reply", text_);
}

// The options of a DHCP reply, by code.
std::map<uint8_t, std::vector<uint8_t>> dhcpOptions(std::span<const uint8_t> frame) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None);
  auto udp = frame.subspan(p.payload_offset, p.l3_end - p.payload_offset);
  std::map<uint8_t, std::vector<uint8_t>> options;
  for (size_t at = sizeof(packet::BootpHeader) + 4; at < udp.size();) {
    uint8_t code = udp[at];
    if (code == 0) {
      ++at;
      continue;
    }
    if (code == 255 || at + 1 >= udp.size()) break;
    size_t length = udp[at + 1];
    options[code].assign(udp.begin() + static_cast<long>(at + 2),
                         udp.begin() + static_cast<long>(at + 2 + length));
    at += 2 + length;
  }
  return options;
}

TEST_F(Golden, DhcpExchange) {
  using namespace packet::dhcp;
  auto client = [&](uint8_t type, std::optional<Ipv4Address> requested) {
    packet::DhcpOptions o;
    o.addByte(kMessageType, type);
    if (requested) o.addAddress(kRequestedAddress, *requested);
    return PacketBuilder()
        .eth(mac(0, 1), MacAddress::broadcast())
        .ipv4(v4("0.0.0.0"), v4("255.255.255.255"))
        .udp(kClientPort, kServerPort)
        .payload(packet::dhcpRequest(mac(0, 1), 0x1234, o))
        .build();
  };
  auto r = step("vm1 DISCOVER", kH1, Ingress::fromPort(kVm1), client(kDiscover, std::nullopt));
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_NE(describeFrame(r[0].bytes).find("dhcp OFFER yiaddr 10.0.0.5"), std::string::npos);
  r = step("vm1 REQUEST 10.0.0.5", kH1, Ingress::fromPort(kVm1), client(kRequest, v4("10.0.0.5")));
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_NE(describeFrame(r[0].bytes).find("dhcp ACK yiaddr 10.0.0.5"), std::string::npos);
  auto o = dhcpOptions(r[0].bytes);
  EXPECT_EQ(o[kSubnetMask], (std::vector<uint8_t>{255, 255, 255, 0}));
  EXPECT_EQ(o[packet::dhcp::kRouter], (std::vector<uint8_t>{10, 0, 0, 1}));
  EXPECT_EQ(o[kDnsServers], (std::vector<uint8_t>{192, 0, 2, 53}));
  EXPECT_EQ(o[kLeaseTime], (std::vector<uint8_t>{0, 1, 0x51, 0x80}));  // 86400 s
  EXPECT_EQ(o[kInterfaceMtu], (std::vector<uint8_t>{0x05, 0xa2}));     // 1442
  EXPECT_EQ(std::string(o[kHostName].begin(), o[kHostName].end()), "host-10-0-0-5");
  EXPECT_EQ(std::string(o[kDomainName].begin(), o[kDomainName].end()), "openstacklocal");
  EXPECT_EQ(o[kClasslessRoutes],
            (std::vector<uint8_t>{24, 192, 168, 50, 10, 0, 0, 254, 0, 10, 0, 0, 1}));
  r = step("vm1 REQUEST 10.0.0.77, not its address", kH1, Ingress::fromPort(kVm1),
           client(kRequest, v4("10.0.0.77")));
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_NE(describeFrame(r[0].bytes).find("dhcp NAK"), std::string::npos);
  expectGolden("dhcp_exchange", text_);
}

TEST_F(Golden, TtlExceeded) {
  auto r = step("vm1 sends with TTL 1 through r1", kH1, Ingress::fromPort(kVm1),
                ping(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 8, 1));
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_NE(describeFrame(r[0].bytes).find("ip 10.0.0.1 > 10.0.0.5"), std::string::npos);
  EXPECT_NE(describeFrame(r[0].bytes).find("icmp 11/0"), std::string::npos);
  expectGolden("ttl_exceeded", text_);
}

TEST_F(Golden, FragmentationNeeded) {
  std::string big(1442 - 20 - 8, 'x');
  auto frame = PacketBuilder()
                   .eth(mac(0, 1), kRouterNet1Mac)
                   .ipv4(v4("10.0.0.5"), v4("10.0.1.5"))
                   .dontFragment()
                   .udp(5000, 6000)
                   .payload(big)
                   .build();
  auto r = step("vm1 sends 1442 bytes with DF towards net2 (MTU 1400)", kH1,
                Ingress::fromPort(kVm1), frame);
  ASSERT_TRUE(only(r, kH1, kVm1));
  EXPECT_NE(describeFrame(r[0].bytes).find("icmp 3/4"), std::string::npos);
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(r[0].bytes, p), DropReason::None);
  EXPECT_EQ(r[0].bytes[p.l4_offset + 6] << 8 | r[0].bytes[p.l4_offset + 7], 1400);
  // Without DF the router cuts it (an echo request, which vm3's group
  // admits): two fragments, the later one admitted by its first's flow.
  auto no_df = PacketBuilder()
                   .eth(mac(0, 1), kRouterNet1Mac)
                   .ipv4(v4("10.0.0.5"), v4("10.0.1.5"))
                   .icmp(8, 0, 5, 1)
                   .payload(big)
                   .build();
  r = step("without DF the router fragments it", kH1, Ingress::fromPort(kVm1), no_df);
  ASSERT_EQ(r.size(), 2u);
  size_t carried = 0;
  for (const auto& f : r) {
    ASSERT_EQ(packet::parse(f.bytes, p), DropReason::None);
    EXPECT_EQ(f.port, kVm3);
    EXPECT_LE(p.l3_end - p.l3_offset, 1400);
    carried += p.l3_end - p.l3_offset - 20u;
  }
  EXPECT_EQ(carried, 1442u - 20u);
  expectGolden("fragmentation_needed", text_);
}

TEST_F(Golden, Spoofing) {
  auto r = step("vm1 sends with vm2's MAC", kH1, Ingress::fromPort(kVm1),
                ping(mac(0, 2), mac(0, 5), "10.0.0.5", "10.0.0.8"));
  EXPECT_TRUE(r.empty());
  r = step("vm1 sends from 10.0.0.99", kH1, Ingress::fromPort(kVm1),
           ping(mac(0, 1), mac(0, 5), "10.0.0.99", "10.0.0.8"));
  EXPECT_TRUE(r.empty());
  r = step("vm1 claims vm5's address in ARP", kH1, Ingress::fromPort(kVm1),
           PacketBuilder()
               .eth(mac(0, 1), MacAddress::broadcast())
               .arp(2, mac(0, 1), v4("10.0.0.8"), mac(0, 6), v4("10.0.0.9"))
               .build());
  EXPECT_TRUE(r.empty());
  const auto& c = world_.host(kH1).counters();
  EXPECT_EQ(c.dropped(DropReason::PortSecurityMac), 1u);
  EXPECT_EQ(c.dropped(DropReason::PortSecurityIp), 1u);
  EXPECT_EQ(c.dropped(DropReason::PortSecurityArp), 1u);
  expectGolden("spoofing", text_);
}

TEST_F(Golden, OverlappingTenants) {
  auto r = step("vmb (tenant B, 10.0.0.5 too) sends to vm2's MAC: unknown on net-b", kH1,
                Ingress::fromPort(kVmB), ping(mac(0, 0x21), mac(0, 2), "10.0.0.5", "10.0.0.6"));
  EXPECT_TRUE(r.empty());
  r = step("vmb asks for 10.0.0.6: nobody on net-b has it", kH1, Ingress::fromPort(kVmB),
           PacketBuilder()
               .eth(mac(0, 0x21), MacAddress::broadcast())
               .arp(1, mac(0, 0x21), v4("10.0.0.5"), MacAddress{}, v4("10.0.0.6"))
               .build());
  EXPECT_TRUE(r.empty());
  r = step("vm1 sends to vmb's MAC: unknown on net1, flooded, refused by every port", kH1,
           Ingress::fromPort(kVm1), ping(mac(0, 1), mac(0, 0x21), "10.0.0.5", "10.0.0.5"));
  for (const auto& x : r) EXPECT_NE(x.port, kVmB);
  EXPECT_TRUE(r.empty());
  expectGolden("overlapping_tenants", text_);
}

TEST_F(Golden, BroadcastReplication) {
  auto r =
      step("vm1 asks for an unknown address: flooded once per host", kH1, Ingress::fromPort(kVm1),
           PacketBuilder()
               .eth(mac(0, 1), MacAddress::broadcast())
               .arp(1, mac(0, 1), v4("10.0.0.5"), MacAddress{}, v4("10.0.0.99"))
               .build());
  ASSERT_EQ(r.size(), 3u);
  std::set<std::pair<uint32_t, uint32_t>> got;
  for (const auto& x : r) got.insert({x.host, x.port});
  EXPECT_EQ(got, (std::set<std::pair<uint32_t, uint32_t>>{{kH1, kVm5}, {kH2, kVm2}, {kH3, kVm6}}));
  expectGolden("broadcast_replication", text_);
}

}  // namespace
}  // namespace canopy::datapath::testing
