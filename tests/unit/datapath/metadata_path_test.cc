// The metadata service's path through one host's datapath: a VM's TCP to
// 169.254.169.254:80 leaves by the metadata interface with a source that
// names its port, the service's answers come back to that port and address
// alone, ARP for the address is answered, and DHCP gives the route on
// subnets without a router.

#include <gtest/gtest.h>

#include <algorithm>

#include "datapath/packet/builder.h"
#include "datapath/packet/checksum.h"
#include "datapath/packet/describe.h"
#include "datapath/packet/dhcp.h"
#include "datapath/pipeline/datapath.h"
#include "testing/datapath_scenario.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using pipeline::Datapath;
using pipeline::Ingress;
using pipeline::Outputs;
using simulator::kMetadataAddress;
using simulator::kMetadataMac;
using simulator::metadataAddressOf;
using simulator::MetadataPeer;
using simulator::metadataPeerOf;

TEST(MetadataPeer, NamesAPortAndOneOfItsAddresses) {
  auto a = metadataAddressOf({.port = 11, .index = 2});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ip().toString(), "10.0.0.46");
  EXPECT_EQ(metadataPeerOf(*a), (MetadataPeer{11, 2}));
  auto last = metadataAddressOf({.port = simulator::kMetadataMaxPorts - 1, .index = 3});
  ASSERT_TRUE(last);
  EXPECT_EQ(last->ip().toString(), "10.255.255.255");
  EXPECT_EQ(metadataPeerOf(*last), (MetadataPeer{simulator::kMetadataMaxPorts - 1, 3}));
  // What cannot be named: no port, too large a key, a fifth address.
  EXPECT_FALSE(metadataAddressOf({.port = 0}));
  EXPECT_FALSE(metadataAddressOf({.port = simulator::kMetadataMaxPorts}));
  EXPECT_FALSE(metadataAddressOf({.port = 11, .index = 4}));
  EXPECT_FALSE(metadataPeerOf(Ipv4Address::of(10, 0, 0, 3)));  // port 0
  EXPECT_FALSE(metadataPeerOf(Ipv4Address::of(11, 0, 0, 44)));
  EXPECT_FALSE(metadataPeerOf(kMetadataAddress));
}

Ipv4Address v4of(const std::array<uint8_t, 16>& a) {
  return Ipv4Address::of(a[0], a[1], a[2], a[3]);
}

class MetadataPath : public ::testing::Test {
 protected:
  MetadataPath() : dp_(clock_, config(true)), off_(clock_, config(false)) {
    auto t = scenario().build(1);
    dp_.setTopology(*t);
    off_.setTopology(*t);
  }
  static pipeline::Config config(bool metadata) {
    pipeline::Config c;
    c.host.host = kH1;
    c.host.uplinks = {"physnet1"};
    c.host.metadata = metadata;
    return c;
  }
  struct Out {
    Outputs::Kind kind;
    uint32_t port;
    std::vector<uint8_t> bytes;
  };
  std::vector<Out> run(Datapath& dp, const Ingress& in, const std::vector<uint8_t>& frame) {
    Outputs out;
    last_ = dp.process(in, frame, out);
    std::vector<Out> r;
    for (const auto& i : out.items()) {
      auto b = out.bytes(i);
      r.push_back({i.kind, i.port, {b.begin(), b.end()}});
    }
    return r;
  }
  static std::vector<uint8_t> request(MacAddress from, MacAddress to, const char* src) {
    return PacketBuilder()
        .eth(from, to)
        .ipv4(v4(src), kMetadataAddress)
        .tcp(40000, 80, packet::TcpHeader::kSyn, 1000)
        .build();
  }
  static std::vector<uint8_t> answer(Ipv4Address to) {
    return PacketBuilder()
        .eth(kMetadataMac, kMetadataMac)
        .ipv4(kMetadataAddress, to)
        .tcp(80, 40000, packet::TcpHeader::kSyn | packet::TcpHeader::kAck, 5000, 1001)
        .build();
  }
  static packet::ParsedPacket parsed(std::span<const uint8_t> frame) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return p;
  }
  // The IPv4 header's and the TCP segment's checksums hold.
  static bool checksumsGood(std::span<const uint8_t> frame) {
    auto p = parsed(frame);
    auto header = frame.subspan(p.l3_offset, p.l4_offset - p.l3_offset);
    auto segment = frame.subspan(p.l4_offset, p.l3_end - p.l4_offset);
    auto src = v4of(p.key.ip_src);
    auto dst = v4of(p.key.ip_dst);
    uint32_t pseudo = packet::pseudoHeaderSum(src, dst, packet::ipproto::kTcp,
                                              static_cast<uint32_t>(segment.size()));
    return packet::checksum(header) == 0 && packet::finish(packet::sumWords(segment, pseudo)) == 0;
  }

  FakeClock clock_;
  Datapath dp_;
  Datapath off_;
  pipeline::Verdict last_;
};

TEST_F(MetadataPath, ARequestLeavesByTheMetadataInterfaceNamingItsPort) {
  // Through its router (net1 has one) or to the service's MAC on the link.
  for (MacAddress to : {kRouterNet1Mac, kMetadataMac}) {
    auto out = run(dp_, Ingress::fromPort(kVm1), request(mac(0, 1), to, "10.0.0.5"));
    ASSERT_EQ(out.size(), 1u) << dropReasonName(last_.drop);
    EXPECT_EQ(out[0].kind, Outputs::Kind::Metadata);
    auto p = parsed(out[0].bytes);
    EXPECT_EQ(v4of(p.key.ip_src), *metadataAddressOf({kVm1, 0}));
    EXPECT_EQ(v4of(p.key.ip_dst), kMetadataAddress);
    EXPECT_EQ(p.key.eth_dst, kMetadataMac);
    EXPECT_TRUE(checksumsGood(out[0].bytes)) << packet::describeFrame(out[0].bytes);
  }
  // A host without the service routes it like any other packet: never to a
  // metadata interface.
  for (const auto& o :
       run(off_, Ingress::fromPort(kVm1), request(mac(0, 1), kRouterNet1Mac, "10.0.0.5"))) {
    EXPECT_NE(o.kind, Outputs::Kind::Metadata);
  }
}

TEST_F(MetadataPath, TheAnswerGoesToThePortAndAddressItsDestinationNames) {
  auto out = run(dp_, Ingress::fromMetadata(), answer(*metadataAddressOf({kVm1, 0})));
  ASSERT_EQ(out.size(), 1u) << dropReasonName(last_.drop);
  EXPECT_EQ(out[0].kind, Outputs::Kind::Port);
  EXPECT_EQ(out[0].port, kVm1);
  auto p = parsed(out[0].bytes);
  EXPECT_EQ(v4of(p.key.ip_dst), v4("10.0.0.5"));
  EXPECT_EQ(v4of(p.key.ip_src), kMetadataAddress);
  EXPECT_EQ(p.key.eth_dst, mac(0, 1));
  EXPECT_EQ(p.key.eth_src, kMetadataMac);
  EXPECT_TRUE(checksumsGood(out[0].bytes));

  // Nothing for a port on another host, an address the port lacks, or no
  // port at all: dropped, and counted.
  for (auto to : {*metadataAddressOf({kVm2, 0}), *metadataAddressOf({kVm1, 1}),
                  Ipv4Address::of(10, 0, 0, 3), Ipv4Address::of(192, 0, 2, 1)}) {
    EXPECT_TRUE(run(dp_, Ingress::fromMetadata(), answer(to)).empty()) << to.ip().toString();
    EXPECT_EQ(last_.drop, DropReason::MetadataUnserved);
  }
}

TEST_F(MetadataPath, OnlyThePortsOwnAddressesAreServed) {
  // Port security drops a spoofed source before the service sees it...
  EXPECT_TRUE(
      run(dp_, Ingress::fromPort(kVm1), request(mac(0, 1), kMetadataMac, "10.0.0.6")).empty());
  EXPECT_EQ(last_.drop, DropReason::PortSecurityIp);
  // ...and without port security the service answers only the port's own
  // addresses, never another port's name.
  auto parts = TopologyParts::of(*dp_.topology());
  parts.ports.at(kVm1).port_security = false;
  dp_.setTopology(*parts.builder().build(2));
  EXPECT_TRUE(
      run(dp_, Ingress::fromPort(kVm1), request(mac(0, 1), kMetadataMac, "10.0.0.6")).empty());
  EXPECT_EQ(last_.drop, DropReason::MetadataUnserved);
}

TEST_F(MetadataPath, ArpForTheServiceIsAnsweredWhereItIsServed) {
  auto arp = PacketBuilder()
                 .eth(mac(0, 1), MacAddress::broadcast())
                 .arp(1, mac(0, 1), v4("10.0.0.5"), MacAddress{}, kMetadataAddress)
                 .build();
  auto out = run(dp_, Ingress::fromPort(kVm1), arp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(packet::describeFrame(out[0].bytes).find("is-at 02:00:5e:a9:fe:fe"), std::string::npos)
      << packet::describeFrame(out[0].bytes);
  for (const auto& o : run(off_, Ingress::fromPort(kVm1), arp)) {
    EXPECT_EQ(packet::describeFrame(o.bytes).find("is-at 02:00:5e:a9:fe:fe"), std::string::npos);
  }
}

TEST_F(MetadataPath, DhcpGivesTheRouteOnlyWithoutARouter) {
  const std::vector<uint8_t> route = {32, 169, 254, 169, 254, 0, 0, 0, 0};  // RFC 3442
  auto has_route = [&](Datapath& dp, uint32_t port, MacAddress m) {
    packet::DhcpOptions ask;
    ask.addByte(packet::dhcp::kMessageType, packet::dhcp::kDiscover);
    auto frame = PacketBuilder()
                     .eth(m, MacAddress::broadcast())
                     .ipv4(Ipv4Address::of(0, 0, 0, 0), Ipv4Address::of(255, 255, 255, 255))
                     .udp(68, 67)
                     .payload(packet::dhcpRequest(m, 7, ask))
                     .build();
    auto out = run(dp, Ingress::fromPort(port), frame);
    EXPECT_EQ(out.size(), 1u);
    if (out.empty()) return false;
    return std::search(out[0].bytes.begin(), out[0].bytes.end(), route.begin(), route.end()) !=
           out[0].bytes.end();
  };
  EXPECT_TRUE(has_route(dp_, kVmB, mac(0, 0x21)));    // net-b: no router
  EXPECT_FALSE(has_route(dp_, kVm1, mac(0, 1)));      // net1: through its router
  EXPECT_FALSE(has_route(off_, kVmB, mac(0, 0x21)));  // no service on the host
}

}  // namespace
}  // namespace canopy::datapath::testing
