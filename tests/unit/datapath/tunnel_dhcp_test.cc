// Tunnel headers and DHCP: what is written parses back; malformed input has
// its drop reason.

#include <gtest/gtest.h>

#include "datapath/packet/builder.h"
#include "datapath/packet/dhcp.h"
#include "datapath/packet/parser.h"
#include "datapath/packet/tunnel.h"

namespace canopy::datapath::packet {
namespace {

const MacAddress kVm{{0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01}};
const MacAddress kPeer{{0xfa, 0x16, 0x3e, 0x00, 0x00, 0x02}};

std::vector<uint8_t> innerFrame() {
  return PacketBuilder()
      .eth(kVm, kPeer)
      .ipv4(Ipv4Address::of(10, 0, 0, 1), Ipv4Address::of(10, 0, 0, 2))
      .icmp(8, 0, 1, 1)
      .build();
}

TEST(Tunnel, VxlanRoundTrip) {
  auto inner = innerFrame();
  auto payload = vxlanPayload(0xabcdef, inner);
  TunnelInfo t;
  ASSERT_EQ(parseVxlan(payload, t), DropReason::None);
  EXPECT_EQ(t.vni, 0xabcdefu);
  ParsedPacket p;
  ASSERT_EQ(parse(std::span(payload).subspan(t.inner_offset), p), DropReason::None);
  EXPECT_EQ(p.key.eth_src, kVm);
  payload[0] = 0;  // no I flag
  EXPECT_EQ(parseVxlan(payload, t), DropReason::VxlanNoVni);
  EXPECT_EQ(parseVxlan(std::span(payload).first(7), t), DropReason::VxlanTruncated);
}

TEST(Tunnel, GeneveWithOptions) {
  auto inner = innerFrame();
  std::vector<GeneveOptionSpec> options = {
      {.option_class = kCanopyOptionClass, .type = 0x01, .data = {0, 0, 0, 42}},
      {.option_class = 0x0102, .type = 0x80 | 0x05, .data = {1, 2, 3, 4, 5, 6, 7, 8}},
  };
  auto payload = genevePayload(77, options, inner);
  TunnelInfo t;
  ASSERT_EQ(parseGeneve(payload, t), DropReason::None);
  EXPECT_EQ(t.vni, 77u);
  EXPECT_FALSE(t.control);
  ASSERT_EQ(t.options().size(), 2u);
  EXPECT_EQ(t.options()[0].option_class, kCanopyOptionClass);
  EXPECT_EQ(t.options()[0].type, 1);
  EXPECT_FALSE(t.options()[0].critical);
  EXPECT_EQ(t.options()[0].data[3], 42);
  EXPECT_TRUE(t.options()[1].critical);
  EXPECT_EQ(t.options()[1].data.size(), 8u);
  EXPECT_EQ(t.inner_offset, 8 + 8 + 12);
  ParsedPacket p;
  ASSERT_EQ(parse(std::span(payload).subspan(t.inner_offset), p), DropReason::None);
  EXPECT_EQ(p.key.icmp_id, 1);

  auto bad = payload;
  bad[0] = 0x40 | (bad[0] & 0x3f);  // version 1
  EXPECT_EQ(parseGeneve(bad, t), DropReason::GeneveBadVersion);
  bad = payload;
  bad[0] = 0x3f;  // 252 bytes of options
  EXPECT_EQ(parseGeneve(bad, t), DropReason::GeneveOptionsTruncated);
  bad = payload;
  bad[8 + 3] = 0x1f;  // the first option claims 124 bytes of data
  EXPECT_EQ(parseGeneve(bad, t), DropReason::GeneveOptionsTruncated);
  bad = payload;
  bad[2] = 0x08;  // protocol 0x0800, not Ethernet
  EXPECT_EQ(parseGeneve(bad, t), DropReason::GeneveNotEthernet);
  EXPECT_EQ(parseGeneve(std::span(payload).first(7), t), DropReason::GeneveTruncated);
  std::vector<GeneveOptionSpec> many(9, {.option_class = 1, .type = 1, .data = {}});
  EXPECT_EQ(parseGeneve(genevePayload(1, many, inner), t), DropReason::GeneveTooManyOptions);
}

TEST(Tunnel, CanopyOptionsRoundTrip) {
  const uint32_t groups[] = {3, 7, 0x01020304};
  CanopyOptions sent{
      .port = 42, .router = 0x0a0b0c0d, .groups_known = true, .groups_to_send = groups};
  std::vector<uint8_t> payload(geneveHeaderSize(sent) + 14, 0xee);
  EXPECT_EQ(geneveHeaderSize(sent), 8u + 12u + 4u + 12u);
  encodeGeneve(payload, 5001, sent);
  TunnelInfo t;
  ASSERT_EQ(parseGeneve(payload, t), DropReason::None);
  EXPECT_EQ(t.vni, 5001u);
  EXPECT_EQ(t.inner_offset, geneveHeaderSize(sent));
  CanopyOptions got;
  ASSERT_EQ(decodeCanopyOptions(t, got), DropReason::None);
  EXPECT_TRUE(got.has_destination);
  EXPECT_EQ(got.port, 42u);
  EXPECT_EQ(got.router, 0x0a0b0c0du);
  ASSERT_TRUE(got.groups_known);
  ASSERT_EQ(got.groupCount(), 3u);
  EXPECT_EQ(got.group(2), 0x01020304u);
  // Without groups: the destination alone.
  CanopyOptions plain{.port = 1};
  std::vector<uint8_t> small(geneveHeaderSize(plain));
  encodeGeneve(small, 7, plain);
  ASSERT_EQ(parseGeneve(small, t), DropReason::None);
  ASSERT_EQ(decodeCanopyOptions(t, got), DropReason::None);
  EXPECT_FALSE(got.groups_known);
  EXPECT_EQ(got.port, 1u);
}

TEST(Tunnel, CanopyOptionsRefuseWhatTheyCannotHonour) {
  auto decode = [](std::vector<GeneveOptionSpec> options) {
    auto payload = genevePayload(9, options, std::vector<uint8_t>(14, 0));
    TunnelInfo t;
    EXPECT_EQ(parseGeneve(payload, t), DropReason::None);
    CanopyOptions o;
    return decodeCanopyOptions(t, o);
  };
  // Another class's critical option; a critical one of ours we do not know;
  // a destination of the wrong size.
  EXPECT_EQ(decode({{0x0102, 0x81, {0, 0, 0, 0}}}), DropReason::TunnelBadOption);
  EXPECT_EQ(decode({{kCanopyOptionClass, 0x85, {0, 0, 0, 0}}}), DropReason::TunnelBadOption);
  EXPECT_EQ(decode({{kCanopyOptionClass, 0x81, {0, 0, 0, 1}}}), DropReason::TunnelBadOption);
  // Another class's or our unknown non-critical options are skipped.
  EXPECT_EQ(decode({{0x0102, 0x01, {0, 0, 0, 0}}, {kCanopyOptionClass, 0x05, {}}}),
            DropReason::None);
}

TEST(Dhcp, DiscoverParsesAndReplyCarriesOptions) {
  DhcpOptions ask;
  ask.addByte(dhcp::kMessageType, dhcp::kDiscover)
      .addAddress(dhcp::kRequestedAddress, Ipv4Address::of(10, 0, 0, 9))
      .add(dhcp::kParameterRequests, std::vector<uint8_t>{1, 3, 6, 26, 121})
      .addText(dhcp::kHostName, "vm1");
  auto discover = dhcpRequest(kVm, 0x1234, ask);
  DhcpMessage m;
  ASSERT_EQ(parseDhcp(discover, m), DropReason::None);
  EXPECT_EQ(m.message_type, dhcp::kDiscover);
  EXPECT_EQ(m.client_mac, kVm);
  EXPECT_EQ(m.header.xid.host(), 0x1234u);
  ASSERT_TRUE(m.requested_address);
  EXPECT_EQ(*m.requested_address, Ipv4Address::of(10, 0, 0, 9));
  EXPECT_EQ(m.parameter_requests.size(), 5u);
  EXPECT_EQ(std::string(m.host_name.begin(), m.host_name.end()), "vm1");

  ClasslessRoute routes[] = {
      {.destination = Ipv4Address::of(10, 99, 0, 0),
       .prefix_length = 16,
       .router = Ipv4Address::of(10, 0, 0, 254)},
      {.destination = Ipv4Address::of(0, 0, 0, 0),
       .prefix_length = 0,
       .router = Ipv4Address::of(10, 0, 0, 1)},
  };
  DhcpOptions reply;
  reply.addByte(dhcp::kMessageType, dhcp::kOffer)
      .addAddress(dhcp::kServerId, Ipv4Address::of(10, 0, 0, 2))
      .addU32(dhcp::kLeaseTime, 86400)
      .addU16(dhcp::kInterfaceMtu, 1442)
      .addClasslessRoutes(routes);
  auto offer = dhcpReply(m, Ipv4Address::of(10, 0, 0, 9), Ipv4Address::of(10, 0, 0, 2), reply);
  EXPECT_GE(offer.size(), 300u);
  DhcpMessage o;
  ASSERT_EQ(parseDhcp(offer, o), DropReason::None);
  EXPECT_EQ(o.header.op, 2);
  EXPECT_EQ(o.message_type, dhcp::kOffer);
  EXPECT_EQ(o.header.yiaddr, Ipv4Address::of(10, 0, 0, 9));
  EXPECT_EQ(o.header.xid.host(), 0x1234u);
  ASSERT_TRUE(o.server_id);
  // RFC 3442's encoding: 16 10 99 | 10 0 0 254, then 0 | 10 0 0 1.
  const std::vector<uint8_t> want = {121, 12, 16, 10, 99, 10, 0, 0, 254, 0, 10, 0, 0, 1};
  auto at = std::search(offer.begin(), offer.end(), want.begin(), want.end());
  EXPECT_NE(at, offer.end());
}

TEST(Dhcp, MalformedMessagesHaveTheirReasons) {
  DhcpOptions ask;
  ask.addByte(dhcp::kMessageType, dhcp::kRequest);
  auto good = dhcpRequest(kVm, 1, ask);
  DhcpMessage m;
  EXPECT_EQ(parseDhcp(std::span(good).first(200), m), DropReason::DhcpTruncated);
  EXPECT_EQ(parseDhcp(std::span(good).first(238), m), DropReason::DhcpTruncated);
  auto bad = good;
  bad[236] = 0;
  EXPECT_EQ(parseDhcp(bad, m), DropReason::DhcpBadMagic);
  bad = good;
  bad[1] = 6;  // token ring
  EXPECT_EQ(parseDhcp(bad, m), DropReason::DhcpNotEthernet);
  bad = good;
  bad.resize(240);
  bad.push_back(dhcp::kHostName);
  bad.push_back(50);  // 50 bytes promised, none there
  EXPECT_EQ(parseDhcp(bad, m), DropReason::DhcpBadOption);
}

}  // namespace
}  // namespace canopy::datapath::packet
