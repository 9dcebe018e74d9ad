// The NAT's conntrack helpers: FTP's PORT, EPRT and 227 found and
// rewritten (lengths and checksums as a frame built from scratch has them),
// sequence numbers and SACK blocks shifted for the edited connection, TFTP
// and FTP's expected connections through SNAT (used once, expired, their
// ports given back), and FTP through a floating IP.

#include "datapath/nat/helpers.h"

#include <gtest/gtest.h>

#include "datapath/nat/snat_table.h"
#include "datapath/packet/builder.h"
#include "datapath/packet/checksum.h"

namespace canopy::datapath::nat {
namespace {

using namespace std::chrono_literals;
using packet::Ipv4Address;
using packet::PacketBuilder;
using packet::TcpHeader;

const packet::MacAddress kA{{0xfa, 0x16, 0x3e, 0, 0, 1}};
const packet::MacAddress kB{{0xfa, 0x16, 0x3e, 0, 0, 2}};
const Ipv4Address kInside = Ipv4Address::of(10, 0, 0, 5);
const Ipv4Address kGateway = Ipv4Address::of(203, 0, 113, 10);
const Ipv4Address kServer = Ipv4Address::of(198, 51, 100, 7);

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::vector<uint8_t> tcp(Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport,
                         uint32_t seq, uint32_t ack, std::string_view data,
                         uint8_t flags = TcpHeader::kAck | TcpHeader::kPsh) {
  return PacketBuilder()
      .eth(kA, kB)
      .ipv4(src, dst)
      .tcp(sport, dport, flags, seq, ack)
      .payload(data)
      .build();
}

std::vector<uint8_t> udp(Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport,
                         std::string_view data) {
  return PacketBuilder().eth(kA, kB).ipv4(src, dst).udp(sport, dport).payload(data).build();
}

packet::ParsedPacket parsed(std::span<const uint8_t> frame) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None);
  return p;
}

uint16_t port(const std::vector<uint8_t>& frame, bool source) {
  auto p = parsed(frame);
  return source ? p.key.tp_src : p.key.tp_dst;
}

TEST(FtpEndpoint, FindsPortEprtAndPassive) {
  auto port = findFtpEndpoint(bytes("PORT 10,0,0,5,195,80\r\n"));
  ASSERT_TRUE(port);
  EXPECT_EQ(port->form, FtpForm::Port);
  EXPECT_EQ(port->address, kInside);
  EXPECT_EQ(port->port, 195 * 256 + 80);
  EXPECT_EQ(port->begin, 5u);
  EXPECT_EQ(port->end, 20u);

  auto eprt = findFtpEndpoint(bytes("eprt !1!10.0.0.5!50000!\r\n"));
  ASSERT_TRUE(eprt);
  EXPECT_EQ(eprt->form, FtpForm::Eprt);
  EXPECT_EQ(eprt->address, kInside);
  EXPECT_EQ(eprt->port, 50000);
  EXPECT_EQ(eprt->delimiter, '!');

  auto pasv = findFtpEndpoint(bytes("227 Entering Passive Mode (10,0,0,5,234,97).\r\n"));
  ASSERT_TRUE(pasv);
  EXPECT_EQ(pasv->form, FtpForm::Passive);
  EXPECT_EQ(pasv->port, 234 * 256 + 97);
}

TEST(FtpEndpoint, RefusesWhatIsNotOne) {
  for (std::string_view s : {
           "PORT 10,0,0,5,195\r\n",        // five numbers
           "PORT 10,0,0,256,1,1\r\n",      // out of range
           "PORT 10,0,0,5,195,80",         // the line goes on in the next segment
           "PORT 10,0,0,5,195,8000\r\n",   // four digits
           "EPRT |2|::1|5282|\r\n",        // IPv6
           "EPRT |1|10.0.0.5|70000|\r\n",  // port out of range
           "EPRT |1|10.0.0.5|5282\r\n",    // no closing delimiter
           "229 Entering Extended Passive Mode (|||6446|)\r\n",
           "RETR file\r\n",
           "",
           "PORT ",
           "227 no numbers\r\n",
       }) {
    EXPECT_FALSE(findFtpEndpoint(bytes(s))) << s;
  }
}

TEST(FtpEndpoint, ReplacementTexts) {
  auto port = findFtpEndpoint(bytes("PORT 10,0,0,5,195,80\r\n"));
  auto e = port->replacedBy(kGateway, 1025);
  EXPECT_EQ(e.text, "203,0,113,10,4,1");
  EXPECT_EQ(e.delta(), 1);
  auto eprt = findFtpEndpoint(bytes("EPRT |1|10.0.0.5|50000|\r\n"));
  EXPECT_EQ(eprt->replacedBy(kGateway, 1025).text, "|1|203.0.113.10|1025|");
}

TEST(SeqAdjust, ShiftsWhatFollowsTheEditedSegment) {
  SeqAdjust a;
  EXPECT_FALSE(a.active());
  a.record(1000, 3);             // the segment at 1000 grew by 3
  EXPECT_EQ(a.forSeq(1000), 0);  // itself: only earlier edits
  EXPECT_EQ(a.forSeq(1020), 3);
  EXPECT_EQ(a.forAck(1000), 0);
  EXPECT_EQ(a.forAck(1023), 3);  // the receiver acknowledges the grown bytes
  // A retransmission of the edited segment records nothing new.
  a.record(1000, 3);
  EXPECT_EQ(a.forSeq(1020), 3);
  // A later edit adds to the earlier.
  a.record(2000, -2);
  EXPECT_EQ(a.forSeq(2000), 3);
  EXPECT_EQ(a.forSeq(2100), 1);
  // Around the wrap of the sequence space.
  SeqAdjust w;
  w.record(0xfffffff0u, 5);
  EXPECT_EQ(w.forSeq(0x10), 5);
  EXPECT_EQ(w.forSeq(0xffffffe0u), 0);
}

TEST(ApplyEdit, TheFrameIsAsIfBuiltWithTheNewText) {
  auto frame = tcp(kGateway, 40000, kServer, 21, 5000, 9000, "PORT 10,0,0,5,195,80\r\n");
  frame.resize(frame.size() + 4, 0);  // Ethernet padding goes
  auto p = parsed(frame);
  auto e = findFtpEndpoint(std::span<const uint8_t>(frame).subspan(p.payload_offset));
  ASSERT_TRUE(e);
  ASSERT_EQ(applyEdit(frame, p, e->replacedBy(kGateway, 1025)), DropReason::None);
  EXPECT_EQ(frame, tcp(kGateway, 40000, kServer, 21, 5000, 9000, "PORT 203,0,113,10,4,1\r\n"));
  // Shrinking too.
  p = parsed(frame);
  ASSERT_EQ(applyEdit(frame, p, PayloadEdit{.offset = 5, .length = 16, .text = "1,2,3,4,5,6"}),
            DropReason::None);
  EXPECT_EQ(frame, tcp(kGateway, 40000, kServer, 21, 5000, 9000, "PORT 1,2,3,4,5,6\r\n"));
  // An edit past the payload changes nothing.
  auto before = frame;
  p = parsed(frame);
  EXPECT_EQ(applyEdit(frame, p, PayloadEdit{.offset = 10, .length = 100, .text = "x"}),
            DropReason::NatHelperEdit);
  EXPECT_EQ(frame, before);
}

// A TCP frame whose first `options` payload bytes are header options.
std::vector<uint8_t> withOptions(std::vector<uint8_t> frame, size_t options) {
  auto p = parsed(frame);
  size_t tcp_at = p.l4_offset;
  frame[tcp_at + 12] = static_cast<uint8_t>(((20 + options) / 4) << 4);
  frame[tcp_at + 16] = frame[tcp_at + 17] = 0;
  auto segment = std::span<const uint8_t>(frame).subspan(tcp_at, p.l3_end - tcp_at);
  uint32_t sum = packet::pseudoHeaderSum(
      Ipv4Address::of(p.key.ip_src[0], p.key.ip_src[1], p.key.ip_src[2], p.key.ip_src[3]),
      Ipv4Address::of(p.key.ip_dst[0], p.key.ip_dst[1], p.key.ip_dst[2], p.key.ip_dst[3]), 6,
      static_cast<uint32_t>(segment.size()));
  uint16_t c = packet::finish(packet::sumWords(segment, sum));
  frame[tcp_at + 16] = static_cast<uint8_t>(c >> 8);
  frame[tcp_at + 17] = static_cast<uint8_t>(c);
  return frame;
}

std::string sack(uint32_t left, uint32_t right) {
  std::string s = {1, 1, 5, 10};
  for (uint32_t v : {left, right}) {
    for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>(v >> shift));
  }
  return s;
}

TEST(AdjustAck, AcknowledgmentsAndSackBlocksGoBack) {
  SeqAdjust a;
  a.record(1000, 3);
  auto frame =
      withOptions(tcp(kServer, 21, kGateway, 40000, 7000, 1030, sack(1040, 1050) + "ok"), 12);
  auto p = parsed(frame);
  adjustAck(frame, p, a);
  EXPECT_EQ(frame, withOptions(
                       tcp(kServer, 21, kGateway, 40000, 7000, 1027, sack(1037, 1047) + "ok"), 12));
  // The edited direction's own sequence numbers go forward.
  auto mine = tcp(kGateway, 40000, kServer, 21, 1030, 7000, "QUIT\r\n");
  p = parsed(mine);
  adjustSeq(mine, p, a);
  EXPECT_EQ(mine, tcp(kGateway, 40000, kServer, 21, 1033, 7000, "QUIT\r\n"));
}

class SnatHelperTest : public ::testing::Test {
 protected:
  DropReason out(std::vector<uint8_t>& frame, SnatHelper helper, PayloadEdit* edit = nullptr) {
    auto p = parsed(frame);
    DropReason why = snat.translateOutbound(frame, p, kGateway, helper, edit);
    if (edit != nullptr && !edit->text.empty() && why == DropReason::None) {
      p = parsed(frame);
      EXPECT_EQ(applyEdit(frame, p, *edit), DropReason::None);
    }
    return why;
  }
  DropReason in(std::vector<uint8_t>& frame) {
    auto p = parsed(frame);
    return snat.translateInbound(frame, p);
  }

  FakeClock clock;
  SnatTable snat{clock};
};

TEST_F(SnatHelperTest, TftpAnswerFromTheServersNewPortIsExpected) {
  std::string rrq("\0\1file\0octet\0", 13);
  auto request = udp(kInside, 40000, kServer, 69, rrq);
  // Without the helper the server's answer from its own port finds nothing.
  auto plain = request;
  ASSERT_EQ(out(plain, SnatHelper::None), DropReason::None);
  auto data = udp(kServer, 50123, kGateway, 40000, std::string("\0\3\0\1hello", 9));
  auto refused = data;
  EXPECT_EQ(in(refused), DropReason::NatNoMapping);

  ASSERT_EQ(out(request, SnatHelper::Tftp), DropReason::None);
  EXPECT_EQ(snat.expectations(), 1u);
  ASSERT_EQ(in(data), DropReason::None);
  EXPECT_EQ(data, udp(kServer, 50123, kInside, 40000, std::string("\0\3\0\1hello", 9)));
  EXPECT_EQ(snat.expectations(), 0u);  // used once
  // The client's acknowledgment goes back to the new port, as the gateway.
  auto ack = udp(kInside, 40000, kServer, 50123, std::string("\0\4\0\1", 4));
  ASSERT_EQ(out(ack, SnatHelper::None), DropReason::None);
  EXPECT_EQ(ack, udp(kGateway, 40000, kServer, 50123, std::string("\0\4\0\1", 4)));
  // Another server port is not expected any more; nor is another server.
  auto other = udp(kServer, 50999, kGateway, 40000, "x");
  EXPECT_EQ(in(other), DropReason::NatNoMapping);
}

TEST_F(SnatHelperTest, TftpExpectationExpiresAndGivesItsPortBack) {
  std::string rrq("\0\1file\0octet\0", 13);
  auto request = udp(kInside, 40000, kServer, 69, rrq);
  ASSERT_EQ(out(request, SnatHelper::Tftp), DropReason::None);
  // Not a request (an error packet): expects nothing more.
  auto error = udp(kInside, 40000, kServer, 69, std::string("\0\5\0\0x\0", 6));
  ASSERT_EQ(out(error, SnatHelper::Tftp), DropReason::None);
  EXPECT_EQ(snat.expectations(), 1u);
  clock.advance(301s);
  auto data = udp(kServer, 50123, kGateway, 40000, "late");
  EXPECT_EQ(in(data), DropReason::NatNoMapping);
  clock.advance(200s);
  snat.sweep();
  EXPECT_EQ(snat.expectations(), 0u);
  EXPECT_EQ(snat.size(), 0u);
  // Port 40000 is free again: a new flow keeps it.
  auto again = udp(kInside, 40000, kServer, 53, "dns");
  ASSERT_EQ(out(again, SnatHelper::None), DropReason::None);
  EXPECT_EQ(port(again, true), 40000);
}

TEST_F(SnatHelperTest, FtpActiveModeThroughSnat) {
  auto syn = tcp(kInside, 40000, kServer, 21, 999, 0, "", TcpHeader::kSyn);
  ASSERT_EQ(out(syn, SnatHelper::Ftp), DropReason::None);
  auto synack =
      tcp(kServer, 21, kGateway, 40000, 6999, 1000, "", TcpHeader::kSyn | TcpHeader::kAck);
  ASSERT_EQ(in(synack), DropReason::None);

  // PORT names the inside host: rewritten to the gateway and a port of its
  // own, on which the data connection is expected.
  std::string command = "PORT 10,0,0,5,195,80\r\n";
  auto port_cmd = tcp(kInside, 40000, kServer, 21, 1000, 7000, command);
  PayloadEdit edit;
  ASSERT_EQ(out(port_cmd, SnatHelper::Ftp, &edit), DropReason::None);
  auto p = parsed(port_cmd);
  auto sent = findFtpEndpoint(std::span<const uint8_t>(port_cmd).subspan(p.payload_offset));
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->address, kGateway);
  uint16_t data_port = sent->port;
  EXPECT_NE(data_port, 50000);
  std::string rewritten = "PORT 203,0,113,10," + std::to_string(data_port >> 8) + "," +
                          std::to_string(data_port & 0xff) + "\r\n";
  EXPECT_EQ(port_cmd, tcp(kGateway, 40000, kServer, 21, 1000, 7000, rewritten));
  EXPECT_EQ(snat.expectations(), 1u);
  int32_t delta = static_cast<int32_t>(rewritten.size() - command.size());

  // The server's acknowledgment of the longer text comes back to what the
  // client sent.
  uint32_t acked = 1000 + static_cast<uint32_t>(rewritten.size());
  auto ok = tcp(kServer, 21, kGateway, 40000, 7000, acked, "200 PORT ok\r\n");
  ASSERT_EQ(in(ok), DropReason::None);
  EXPECT_EQ(ok, tcp(kServer, 21, kInside, 40000, 7000, 1000 + static_cast<uint32_t>(command.size()),
                    "200 PORT ok\r\n"));
  // The client's next command moves by the difference.
  uint32_t next = 1000 + static_cast<uint32_t>(command.size());
  auto retr = tcp(kInside, 40000, kServer, 21, next, 7013, "RETR f\r\n");
  ASSERT_EQ(out(retr, SnatHelper::Ftp, &edit), DropReason::None);
  EXPECT_EQ(retr, tcp(kGateway, 40000, kServer, 21, next + static_cast<uint32_t>(delta), 7013,
                      "RETR f\r\n"));

  // The server's data connection (from port 20) reaches the client's port.
  auto data = tcp(kServer, 20, kGateway, data_port, 1, 0, "", TcpHeader::kSyn);
  ASSERT_EQ(in(data), DropReason::None);
  EXPECT_EQ(data, tcp(kServer, 20, kInside, 50000, 1, 0, "", TcpHeader::kSyn));
  EXPECT_EQ(snat.expectations(), 0u);
  auto data_reply = tcp(kInside, 50000, kServer, 20, 1, 2, "", TcpHeader::kSyn | TcpHeader::kAck);
  ASSERT_EQ(out(data_reply, SnatHelper::None), DropReason::None);
  EXPECT_EQ(data_reply,
            tcp(kGateway, data_port, kServer, 20, 1, 2, "", TcpHeader::kSyn | TcpHeader::kAck));
  // Another host may not use the expectation's port.
  auto stranger =
      tcp(Ipv4Address::of(192, 0, 2, 1), 20, kGateway, data_port, 1, 0, "", TcpHeader::kSyn);
  EXPECT_EQ(in(stranger), DropReason::NatNoMapping);
}

TEST_F(SnatHelperTest, FtpPortNamingAnotherHostIsLeftAlone) {
  auto cmd = tcp(kInside, 40000, kServer, 21, 1000, 7000, "PORT 10,0,0,9,195,80\r\n");
  PayloadEdit edit;
  ASSERT_EQ(out(cmd, SnatHelper::Ftp, &edit), DropReason::None);
  EXPECT_TRUE(edit.text.empty());
  EXPECT_EQ(snat.expectations(), 0u);
  EXPECT_EQ(cmd, tcp(kGateway, 40000, kServer, 21, 1000, 7000, "PORT 10,0,0,9,195,80\r\n"));
}

TEST(FtpFloatingTable, PassiveReplyOfAServerBehindAFloatingIp) {
  FakeClock clock;
  FtpFloatingTable table(clock, 60s);
  const Ipv4Address fip = Ipv4Address::of(203, 0, 113, 50);
  // The VM's 227, translated to the floating IP already.
  std::string reply = "227 Entering Passive Mode (10,0,0,5,234,97).\r\n";
  auto frame = tcp(fip, 21, kServer, 40000, 500, 9000, reply);
  auto p = parsed(frame);
  PayloadEdit edit;
  ASSERT_EQ(table.outbound(frame, p, kInside, fip, edit), DropReason::None);
  ASSERT_FALSE(edit.text.empty());
  ASSERT_EQ(applyEdit(frame, p, edit), DropReason::None);
  std::string rewritten = "227 Entering Passive Mode (203,0,113,50,234,97).\r\n";
  EXPECT_EQ(frame, tcp(fip, 21, kServer, 40000, 500, 9000, rewritten));
  EXPECT_EQ(table.size(), 1u);
  // The client's acknowledgment, arriving for the floating IP.
  uint32_t delta = static_cast<uint32_t>(rewritten.size() - reply.size());
  auto ack = tcp(kServer, 40000, fip, 21, 9000, 500 + static_cast<uint32_t>(rewritten.size()),
                 "RETR f\r\n");
  p = parsed(ack);
  table.inbound(ack, p);
  EXPECT_EQ(ack, tcp(kServer, 40000, fip, 21, 9000, 500 + static_cast<uint32_t>(reply.size()),
                     "RETR f\r\n"));
  // The server's next reply moves forward.
  uint32_t next = 500 + static_cast<uint32_t>(reply.size());
  auto more = tcp(fip, 21, kServer, 40000, next, 9008, "150 ok\r\n");
  p = parsed(more);
  edit = {};
  ASSERT_EQ(table.outbound(more, p, kInside, fip, edit), DropReason::None);
  EXPECT_TRUE(edit.text.empty());
  EXPECT_EQ(more, tcp(fip, 21, kServer, 40000, next + delta, 9008, "150 ok\r\n"));
  // Idle connections are forgotten.
  clock.advance(61s);
  table.sweep();
  EXPECT_EQ(table.size(), 0u);
}

}  // namespace
}  // namespace canopy::datapath::nat
