// Checksum and segmentation offload (packet/offload.h): received requests
// are kept, completed or refused; a partial checksum is right again after
// NAT rewrote the addresses it covers; super-frames are cut into segments
// that parse back with complete checksums, consecutive sequence numbers,
// the right lengths and flags, and the original payload.

#include "datapath/packet/offload.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>

#include "datapath/nat/nat.h"
#include "datapath/packet/builder.h"
#include "datapath/packet/checksum.h"
#include "datapath/packet/describe.h"
#include "datapath/packet/parser.h"

namespace canopy::datapath::packet {
namespace {

const MacAddress kVm{{0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01}};
const MacAddress kRouter{{0xfa, 0x16, 0x3e, 0x00, 0x00, 0xfe}};
const Ipv4Address kVmIp = Ipv4Address::of(10, 0, 0, 5);
const Ipv4Address kOtherIp = Ipv4Address::of(10, 0, 1, 7);
const Ipv4Address kFloatingIp = Ipv4Address::of(203, 0, 113, 20);

// A random seed, or CANOPY_TEST_SEED's to replay a printed one.
uint64_t testSeed() {
  const char* fixed = std::getenv("CANOPY_TEST_SEED");
  return fixed != nullptr ? std::strtoull(fixed, nullptr, 10) : std::random_device{}();
}

Ipv6Address v6(uint8_t last) {
  Ipv6Address a;
  a.bytes = {0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last};
  return a;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed = 1) {
  std::vector<uint8_t> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed + i * 7 + i / 251);
  return p;
}

ParsedPacket parsed(std::span<const uint8_t> frame) {
  ParsedPacket p;
  EXPECT_EQ(parse(frame, p), DropReason::None) << describeFrame(frame);
  return p;
}

// The pseudo-header sum of a parsed TCP/UDP packet, computed here from
// scratch as the oracle.
uint32_t pseudo(std::span<const uint8_t> frame, const ParsedPacket& p) {
  auto length = static_cast<uint32_t>(p.l3_end - p.l4_offset);
  if (p.key.eth_type == ethertype::kIpv4) {
    Ipv4Header ip;
    EXPECT_TRUE(load(frame, p.l3_offset, ip));
    return pseudoHeaderSum(ip.src, ip.dst, p.key.ip_proto, length);
  }
  Ipv6Header ip;
  EXPECT_TRUE(load(frame, p.l3_offset, ip));
  return pseudoHeaderSum(ip.src, ip.dst, p.key.ip_proto, length);
}

uint16_t field(std::span<const uint8_t> frame, size_t at) {
  return static_cast<uint16_t>(frame[at] << 8 | frame[at + 1]);
}

// Whether the frame's TCP/UDP checksum verifies (and, for IPv4, its
// header checksum).
bool checksumsValid(std::span<const uint8_t> frame) {
  ParsedPacket p = parsed(frame);
  if (p.key.eth_type == ethertype::kIpv4 &&
      checksum(frame.subspan(p.l3_offset, p.l4_offset - p.l3_offset)) != 0) {
    return false;
  }
  return finish(sumWords(frame.subspan(p.l4_offset, p.l3_end - p.l4_offset), pseudo(frame, p))) ==
         0;
}

// What a guest's kernel hands over: the checksum field holds the folded
// pseudo-header sum, and the request says where it is.
Offload makePartial(std::vector<uint8_t>& frame, uint8_t gso_type = Offload::kGsoNone,
                    uint16_t gso_size = 0) {
  ParsedPacket p = parsed(frame);
  size_t at = p.l4_offset + (p.key.ip_proto == ipproto::kTcp ? 16u : 6u);
  uint32_t sum = pseudo(frame, p);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  store(std::span<uint8_t>(frame), at, Be16::of(static_cast<uint16_t>(sum)));
  return {.flags = Offload::kNeedsChecksum,
          .gso_type = gso_type,
          .hdr_len = p.payload_offset,
          .gso_size = gso_size,
          .csum_start = p.l4_offset,
          .csum_offset = static_cast<uint16_t>(at - p.l4_offset)};
}

void setIpv4Id(std::vector<uint8_t>& frame, uint16_t id) {
  ParsedPacket p = parsed(frame);
  std::span<uint8_t> f(frame);
  store(f, p.l3_offset + 4, Be16::of(id));
  store(f, p.l3_offset + 10, Be16::of(0));
  store(f, p.l3_offset + 10, Be16::of(checksum(f.subspan(p.l3_offset, 20))));
}

std::vector<uint8_t> tcpFrame(size_t payload, uint8_t flags, uint32_t seq, bool vlan = false) {
  PacketBuilder b;
  b.eth(kVm, kRouter);
  if (vlan) b.vlan(42);
  return b.ipv4(kVmIp, kOtherIp)
      .dontFragment()
      .tcp(40000, 5001, flags, seq, 77)
      .payload(pattern(payload))
      .build();
}

TEST(Offload, NothingAskedIsNothingKept) {
  auto frame = tcpFrame(100, TcpHeader::kAck, 1);
  auto before = frame;
  Offload o{.flags = Offload::kDataValid};
  EXPECT_EQ(acceptOffload(frame, o), DropReason::None);
  EXPECT_TRUE(o.none());
  EXPECT_EQ(o.flags, 0);
  EXPECT_EQ(frame, before);
}

TEST(Offload, PartialTcpChecksumIsKeptForLater) {
  auto frame = tcpFrame(1000, TcpHeader::kAck | TcpHeader::kPsh, 1);
  Offload o = makePartial(frame);
  auto before = frame;
  EXPECT_EQ(acceptOffload(frame, o), DropReason::None);
  EXPECT_TRUE(o.partial());
  EXPECT_FALSE(o.gso());
  EXPECT_EQ(frame, before) << "nothing to change yet";
  EXPECT_FALSE(checksumsValid(frame));
  ASSERT_EQ(completeChecksum(frame, o.csum_start, o.csum_offset), DropReason::None);
  EXPECT_TRUE(checksumsValid(frame));
}

TEST(Offload, OtherPartialChecksumsAreCompletedOnReceive) {
  // ICMP with its checksum left to the device: no later step knows how to
  // finish it, so it is finished at once and the request dropped.
  auto frame = PacketBuilder()
                   .eth(kVm, kRouter)
                   .ipv4(kVmIp, kOtherIp)
                   .icmp(8, 0, 7, 1)
                   .payload("abcdefgh")
                   .build();
  auto good = frame;
  ParsedPacket p = parsed(frame);
  store(std::span<uint8_t>(frame), p.l4_offset + 2, Be16::of(0));
  Offload o{.flags = Offload::kNeedsChecksum, .csum_start = p.l4_offset, .csum_offset = 2};
  ASSERT_EQ(acceptOffload(frame, o), DropReason::None);
  EXPECT_TRUE(o.none());
  EXPECT_EQ(frame, good);

  Offload outside{.flags = Offload::kNeedsChecksum,
                  .csum_start = static_cast<uint16_t>(frame.size() - 1),
                  .csum_offset = 0};
  EXPECT_EQ(acceptOffload(frame, outside), DropReason::OffloadBadChecksumOffset);
}

// What another host's kernel encapsulated with its checksum left partial
// is recognised (and finished right); a complete checksum, a corrupt one and
// ICMP are left as they are.
TEST(Offload, AChecksumAnotherKernelLeftPartialIsRecognised) {
  auto tcp = tcpFrame(1, TcpHeader::kAck, 1);
  auto udp = PacketBuilder()
                 .eth(kVm, kRouter)
                 .ipv6(v6(5), v6(7))
                 .udp(40000, 53)
                 .payload(pattern(30))
                 .build();
  for (auto* frame : {&tcp, &udp}) {
    ASSERT_TRUE(checksumsValid(*frame));
    EXPECT_TRUE(leftPartial(*frame).none()) << "complete";
    auto corrupt = *frame;
    corrupt.back() ^= 0x5a;
    EXPECT_TRUE(leftPartial(corrupt).none()) << "corrupt, not partial";
    Offload expected = makePartial(*frame);
    Offload o = leftPartial(*frame);
    ASSERT_TRUE(o.partial());
    EXPECT_FALSE(o.gso());
    EXPECT_EQ(o.csum_start, expected.csum_start);
    EXPECT_EQ(o.csum_offset, expected.csum_offset);
    ASSERT_EQ(completeChecksum(*frame, o.csum_start, o.csum_offset), DropReason::None);
    EXPECT_TRUE(checksumsValid(*frame));
  }
  auto icmp = PacketBuilder().eth(kVm, kRouter).ipv4(kVmIp, kOtherIp).icmp(8, 0, 7, 1).build();
  EXPECT_TRUE(leftPartial(icmp).none());
  EXPECT_TRUE(leftPartial(std::span<const uint8_t>(tcp).first(30)).none()) << "truncated";
}

TEST(Offload, GsoOfWhatCannotBeSegmentedIsRefused) {
  auto icmp = PacketBuilder().eth(kVm, kRouter).ipv4(kVmIp, kOtherIp).icmp(8, 0).build();
  ParsedPacket p = parsed(icmp);
  Offload o{.flags = Offload::kNeedsChecksum,
            .gso_type = Offload::kGsoTcpv4,
            .gso_size = 1400,
            .csum_start = p.l4_offset,
            .csum_offset = 2};
  EXPECT_EQ(acceptOffload(icmp, o), DropReason::OffloadUnsupported);

  auto tcp6 = PacketBuilder()
                  .eth(kVm, kRouter)
                  .ipv6(v6(1), v6(2))
                  .tcp(1, 2, TcpHeader::kAck)
                  .payload(pattern(3000))
                  .build();
  Offload tcpv4_on_v6 = makePartial(tcp6, Offload::kGsoTcpv4, 1400);
  EXPECT_EQ(acceptOffload(tcp6, tcpv4_on_v6), DropReason::OffloadUnsupported);

  auto frame = tcpFrame(3000, TcpHeader::kAck, 1);
  Offload zero = makePartial(frame, Offload::kGsoTcpv4, 0);
  EXPECT_EQ(acceptOffload(frame, zero), DropReason::OffloadBadSegmentSize);
  Offload ufo = makePartial(frame, Offload::kGsoUdp, 1400);
  EXPECT_EQ(acceptOffload(frame, ufo), DropReason::OffloadUnsupported);
}

TEST(Offload, CoalescedFrameWithCompleteChecksumBecomesPartial) {
  // GRO on a receiving device: a super-frame whose checksum was verified
  // (DATA_VALID) and is no partial sum. It leaves like any super-frame.
  auto frame = tcpFrame(5000, TcpHeader::kAck, 1);
  Offload o{.flags = Offload::kDataValid, .gso_type = Offload::kGsoTcpv4, .gso_size = 1448};
  ASSERT_EQ(acceptOffload(frame, o), DropReason::None);
  EXPECT_TRUE(o.partial());
  ParsedPacket p = parsed(frame);
  EXPECT_EQ(o.csum_start, p.l4_offset);
  EXPECT_EQ(o.csum_offset, 16);
  EXPECT_EQ(o.hdr_len, p.payload_offset);
  ASSERT_EQ(completeChecksum(frame, o.csum_start, o.csum_offset), DropReason::None);
  EXPECT_TRUE(checksumsValid(frame));
}

// The datapath's NAT updates checksums incrementally, which assumes a
// complete one: on a partial sum it goes wrong, and setPartialChecksum()
// puts it right from the final headers.
TEST(Offload, PartialChecksumIsRightAgainAfterNat) {
  for (bool udp : {false, true}) {
    for (bool vlan : {false, true}) {
      SCOPED_TRACE(std::string(udp ? "udp" : "tcp") + (vlan ? " vlan" : ""));
      PacketBuilder b;
      b.eth(kVm, kRouter);
      if (vlan) b.vlan(7);
      b.ipv4(kVmIp, kOtherIp);
      if (udp) {
        b.udp(5000, 53);
      } else {
        b.tcp(40000, 80, TcpHeader::kAck, 1234, 1);
      }
      auto frame = b.payload(pattern(777)).build();
      Offload o = makePartial(frame);
      ASSERT_EQ(acceptOffload(frame, o), DropReason::None);
      ASSERT_TRUE(o.partial());

      ParsedPacket p = parsed(frame);
      ASSERT_EQ(nat::rewriteIpv4(frame, p, nat::Side::Source, kFloatingIp, 61000),
                DropReason::None);
      auto unfixed = frame;
      ASSERT_EQ(completeChecksum(unfixed, o.csum_start, o.csum_offset), DropReason::None);
      EXPECT_FALSE(checksumsValid(unfixed)) << "an incremental update of a partial sum";

      ASSERT_EQ(setPartialChecksum(frame, o), DropReason::None);
      p = parsed(frame);
      EXPECT_EQ(o.csum_start, p.l4_offset);
      EXPECT_EQ(field(frame, o.csum_start + o.csum_offset), [&] {
        uint32_t s = pseudo(frame, p);
        while (s >> 16) s = (s & 0xffff) + (s >> 16);
        return static_cast<uint16_t>(s);
      }());
      ASSERT_EQ(completeChecksum(frame, o.csum_start, o.csum_offset), DropReason::None);
      EXPECT_TRUE(checksumsValid(frame)) << describeFrame(frame);
    }
  }
}

// Checks every segment of `s` against the super-frame it came from.
void expectSegmentsOf(const std::vector<uint8_t>& frame, const Segments& s, size_t mss,
                      std::span<const uint8_t> prefix) {
  ParsedPacket fp = parsed(frame);
  const size_t payload = fp.l3_end - fp.payload_offset;
  ASSERT_EQ(s.count, payload == 0 ? 1 : (payload + mss - 1) / mss);
  TcpHeader first{};
  Ipv4Header ip{};
  bool tcp = fp.key.ip_proto == ipproto::kTcp;
  if (tcp) {
    ASSERT_TRUE(load(frame, fp.l4_offset, first));
  }
  bool v4 = fp.key.eth_type == ethertype::kIpv4;
  if (v4) {
    ASSERT_TRUE(load(frame, fp.l3_offset, ip));
  }
  std::vector<uint8_t> joined;
  for (size_t i = 0; i < s.count; ++i) {
    SCOPED_TRACE("segment " + std::to_string(i));
    auto datagram = s.at(i);
    if (i + 1 < s.count) {
      EXPECT_EQ(datagram.size(), s.stride);
    }
    ASSERT_GE(datagram.size(), prefix.size());
    EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), datagram.begin()));
    auto seg = datagram.subspan(prefix.size());
    ParsedPacket p = parsed(seg);
    EXPECT_EQ(p.l3_end, seg.size());
    EXPECT_EQ(p.payload_offset, fp.payload_offset);
    size_t chunk = p.l3_end - p.payload_offset;
    EXPECT_EQ(chunk, std::min(mss, payload - i * mss));
    EXPECT_TRUE(checksumsValid(seg)) << describeFrame(seg);
    if (v4) {
      Ipv4Header h;
      ASSERT_TRUE(load(seg, p.l3_offset, h));
      EXPECT_EQ(h.id.host(), static_cast<uint16_t>(ip.id.host() + i));
      EXPECT_EQ(h.flags_fragment, ip.flags_fragment);
      EXPECT_EQ(h.ttl, ip.ttl);
    }
    if (tcp) {
      TcpHeader t;
      ASSERT_TRUE(load(seg, p.l4_offset, t));
      EXPECT_EQ(t.sequence.host(), static_cast<uint32_t>(first.sequence.host() + i * mss));
      EXPECT_EQ(t.acknowledgment, first.acknowledgment);
      uint8_t want = first.flags;
      if (i + 1 < s.count) want &= static_cast<uint8_t>(~(TcpHeader::kFin | TcpHeader::kPsh));
      if (i > 0) want &= static_cast<uint8_t>(~TcpHeader::kCwr);
      EXPECT_EQ(t.flags, want);
    } else {
      UdpHeader u;
      ASSERT_TRUE(load(seg, p.l4_offset, u));
      EXPECT_EQ(u.length.host(), 8 + chunk);
    }
    joined.insert(joined.end(), seg.begin() + p.payload_offset, seg.end());
  }
  EXPECT_TRUE(std::equal(joined.begin(), joined.end(), frame.begin() + fp.payload_offset,
                         frame.begin() + fp.l3_end))
      << "the payload, in order";
  EXPECT_EQ(joined.size(), payload);
}

TEST(Segment, TcpSuperFrameIntoTunnelDatagrams) {
  auto frame =
      tcpFrame(30000, TcpHeader::kAck | TcpHeader::kPsh | TcpHeader::kFin | TcpHeader::kCwr,
               0xfffff000);  // the sequence number wraps on the way
  setIpv4Id(frame, 0xfff0);  // and the identification
  Offload o = makePartial(frame, Offload::kGsoTcpv4 | Offload::kGsoEcn, 1400);
  ASSERT_EQ(acceptOffload(frame, o), DropReason::None);
  const std::vector<uint8_t> prefix = {0x08, 0, 0, 0, 0, 0, 42, 0};  // a VXLAN header
  Segments s;
  ASSERT_EQ(segment(frame, o, 0, prefix, s), DropReason::None);
  EXPECT_EQ(s.count, 22u);
  EXPECT_EQ(s.stride, prefix.size() + 14 + 20 + 20 + 1400);
  EXPECT_EQ(s.at(21).size(), prefix.size() + 54 + 30000 - 21 * 1400);
  expectSegmentsOf(frame, s, 1400, prefix);
}

TEST(Segment, SmallerSegmentsThanAskedAndOneThatFits) {
  auto frame = tcpFrame(10000, TcpHeader::kAck, 5, /*vlan=*/true);
  Offload o = makePartial(frame, Offload::kGsoTcpv4, 1448);
  Segments s;
  ASSERT_EQ(segment(frame, o, 1000, {}, s), DropReason::None);  // the tunnel's limit
  expectSegmentsOf(frame, s, 1000, {});

  auto small = tcpFrame(500, TcpHeader::kAck | TcpHeader::kPsh, 5);
  Offload p = makePartial(small, Offload::kGsoTcpv4, 1448);
  ASSERT_EQ(segment(small, p, 0, {}, s), DropReason::None);
  EXPECT_EQ(s.count, 1u);
  expectSegmentsOf(small, s, 1448, {});
}

TEST(Segment, Ipv6AndUdp) {
  auto v6frame = PacketBuilder()
                     .eth(kVm, kRouter)
                     .ipv6(v6(1), v6(2))
                     .tcp(1000, 2000, TcpHeader::kAck | TcpHeader::kPsh, 99)
                     .payload(pattern(9000, 3))
                     .build();
  Offload o6 = makePartial(v6frame, Offload::kGsoTcpv6, 1380);
  ASSERT_EQ(acceptOffload(v6frame, o6), DropReason::None);
  Segments s;
  ASSERT_EQ(segment(v6frame, o6, 0, {}, s), DropReason::None);
  expectSegmentsOf(v6frame, s, 1380, {});

  auto udp = PacketBuilder()
                 .eth(kVm, kRouter)
                 .ipv4(kVmIp, kOtherIp)
                 .udp(4000, 4001)
                 .payload(pattern(12000, 9))
                 .build();
  Offload ou = makePartial(udp, Offload::kGsoUdpL4, 1200);
  ASSERT_EQ(acceptOffload(udp, ou), DropReason::None);
  ASSERT_EQ(segment(udp, ou, 0, {}, s), DropReason::None);
  expectSegmentsOf(udp, s, 1200, {});

  // A UDP datagram its sender did not ask to cut stays whole.
  Offload plain = makePartial(udp);
  EXPECT_EQ(segment(udp, plain, 1200, {}, s), DropReason::OffloadUnsupported);
  // Nor is a segment size that makes thousands of segments accepted.
  EXPECT_EQ(segment(udp, ou, 4, {}, s), DropReason::OffloadBadSegmentSize);
}

// After NAT on a super-frame and the fix-up, every segment's checksum is
// still complete.
TEST(Segment, AfterNatAndFixup) {
  auto frame = tcpFrame(20000, TcpHeader::kAck, 42);
  Offload o = makePartial(frame, Offload::kGsoTcpv4, 1448);
  ASSERT_EQ(acceptOffload(frame, o), DropReason::None);
  ASSERT_EQ(nat::rewriteIpv4(frame, parsed(frame), nat::Side::Destination, kFloatingIp, 8080),
            DropReason::None);
  ASSERT_EQ(setPartialChecksum(frame, o), DropReason::None);
  Segments s;
  ASSERT_EQ(segment(frame, o, 0, {}, s), DropReason::None);
  expectSegmentsOf(frame, s, 1448, {});
  ParsedPacket p = parsed(s.at(0));
  EXPECT_EQ(p.key.tp_dst, 8080);
}

// Random frames, sizes and flags: the segments always join back into the
// frame. A printed seed replays a failure.
TEST(Segment, RandomFramesJoinBack) {
  uint64_t seed = testSeed();
  SCOPED_TRACE("CANOPY_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 200; ++round) {
    size_t payload = rng() % 40000;
    size_t mss = 64 + rng() % 2000;
    auto flags = static_cast<uint8_t>(
        TcpHeader::kAck | (rng() & (TcpHeader::kFin | TcpHeader::kPsh | TcpHeader::kCwr)));
    auto frame = tcpFrame(payload, flags, static_cast<uint32_t>(rng()), rng() % 2 == 0);
    setIpv4Id(frame, static_cast<uint16_t>(rng()));
    Offload o = makePartial(frame, Offload::kGsoTcpv4, static_cast<uint16_t>(mss));
    Segments s;
    ASSERT_EQ(segment(frame, o, 0, {}, s), DropReason::None) << "round " << round;
    expectSegmentsOf(frame, s, mss, {});
    if (::testing::Test::HasFailure()) FAIL() << "round " << round;
  }
}

// The receiving side: the segments of a super-frame, as a tunnel brings
// them, join back into it; cut again, they are the same segments.
TEST(Coalesce, SegmentsJoinBackIntoTheSuperFrame) {
  auto frame = tcpFrame(20000, TcpHeader::kAck | TcpHeader::kPsh, 0xffffff00);
  Offload o = makePartial(frame, Offload::kGsoTcpv4, 1400);
  Segments s;
  ASSERT_EQ(segment(frame, o, 0, {}, s), DropReason::None);
  TcpCoalescer c;
  for (size_t i = 0; i < s.count; ++i) ASSERT_TRUE(c.add(s.at(i))) << "segment " << i;
  EXPECT_EQ(c.segments(), s.count);
  Offload joined_offload;
  auto joined = c.finish(joined_offload);
  EXPECT_EQ(joined_offload.gso_type, Offload::kGsoTcpv4);
  EXPECT_EQ(joined_offload.gso_size, 1400);
  EXPECT_TRUE(joined_offload.partial());
  ParsedPacket p = parsed(joined);
  EXPECT_EQ(joined_offload.csum_start, p.l4_offset);
  EXPECT_EQ(joined_offload.hdr_len, p.payload_offset);
  EXPECT_EQ(p.key.tcp_flags, TcpHeader::kAck | TcpHeader::kPsh) << "PSH of the last";
  ASSERT_EQ(joined.size(), frame.size());
  EXPECT_TRUE(std::equal(joined.begin() + p.payload_offset, joined.end(),
                         frame.begin() + p.payload_offset));
  std::vector<uint8_t> complete(joined.begin(), joined.end());
  ASSERT_EQ(completeChecksum(complete, joined_offload.csum_start, joined_offload.csum_offset),
            DropReason::None);
  EXPECT_TRUE(checksumsValid(complete));

  Segments again;
  ASSERT_EQ(segment(joined, joined_offload, 0, {}, again), DropReason::None);
  ASSERT_EQ(again.count, s.count);
  for (size_t i = 0; i < s.count; ++i) {
    auto a = s.at(i), b = again.at(i);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end())) << "segment " << i;
  }

  // One segment alone stays as it came.
  c.clear();
  ASSERT_TRUE(c.add(s.at(0)));
  Offload alone;
  auto one = c.finish(alone);
  EXPECT_TRUE(alone.none());
  EXPECT_TRUE(std::equal(one.begin(), one.end(), s.at(0).begin(), s.at(0).end()));
}

// IPv6 segments join the same way: the payload length set, a TCPv6 request.
TEST(Coalesce, Ipv6SegmentsJoinBackIntoTheSuperFrame) {
  auto frame = PacketBuilder()
                   .eth(kVm, kRouter)
                   .ipv6(v6(1), v6(2))
                   .tcp(1000, 2000, TcpHeader::kAck, 99)
                   .payload(pattern(9000, 3))
                   .build();
  Offload o = makePartial(frame, Offload::kGsoTcpv6, 1380);
  Segments s;
  ASSERT_EQ(segment(frame, o, 0, {}, s), DropReason::None);
  TcpCoalescer c;
  for (size_t i = 0; i < s.count; ++i) ASSERT_TRUE(c.add(s.at(i))) << "segment " << i;
  Offload joined_offload;
  auto joined = c.finish(joined_offload);
  EXPECT_EQ(joined_offload.gso_type, Offload::kGsoTcpv6);
  EXPECT_EQ(joined_offload.gso_size, 1380);
  ASSERT_EQ(joined.size(), frame.size());
  std::vector<uint8_t> complete(joined.begin(), joined.end());
  ASSERT_EQ(completeChecksum(complete, joined_offload.csum_start, joined_offload.csum_offset),
            DropReason::None);
  EXPECT_TRUE(checksumsValid(complete));
  Segments again;
  ASSERT_EQ(segment(joined, joined_offload, 0, {}, again), DropReason::None);
  ASSERT_EQ(again.count, s.count);
  for (size_t i = 0; i < s.count; ++i) {
    auto a = s.at(i), b = again.at(i);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end())) << "segment " << i;
  }
  // An IPv4 segment does not join an IPv6 run.
  c.clear();
  ASSERT_TRUE(c.add(s.at(0)));
  auto v4 = tcpFrame(1380, TcpHeader::kAck, 99 + 1380);
  EXPECT_FALSE(c.add(v4));
}

// Segments another host's kernel cut with their checksums left partial
// (through a virtual underlay, nobody finished them) join as complete ones
// do, and the run's checksum comes out right.
TEST(Coalesce, SegmentsWithPartialChecksumsJoinToo) {
  auto frame = tcpFrame(5000, TcpHeader::kAck, 1);
  Offload o = makePartial(frame, Offload::kGsoTcpv4, 1000);
  Segments s;
  ASSERT_EQ(segment(frame, o, 0, {}, s), DropReason::None);
  TcpCoalescer c;
  for (size_t i = 0; i < s.count; ++i) {
    std::vector<uint8_t> partial(s.at(i).begin(), s.at(i).end());
    makePartial(partial);
    ASSERT_TRUE(leftPartial(partial).partial());
    ASSERT_TRUE(c.add(partial)) << "segment " << i;
  }
  Offload joined_offload;
  auto joined = c.finish(joined_offload);
  std::vector<uint8_t> complete(joined.begin(), joined.end());
  ASSERT_EQ(completeChecksum(complete, joined_offload.csum_start, joined_offload.csum_offset),
            DropReason::None);
  EXPECT_TRUE(checksumsValid(complete));
}

TEST(Coalesce, WhatDoesNotContinueTheRunIsLeftOut) {
  auto frame = tcpFrame(6000, TcpHeader::kAck, 1000);
  Offload o = makePartial(frame, Offload::kGsoTcpv4, 1000);
  Segments s;
  ASSERT_EQ(segment(frame, o, 0, {}, s), DropReason::None);
  ASSERT_EQ(s.count, 6u);
  auto copy = [&](size_t i) { return std::vector<uint8_t>(s.at(i).begin(), s.at(i).end()); };

  TcpCoalescer c;
  ASSERT_TRUE(c.add(s.at(0)));
  EXPECT_FALSE(c.add(s.at(2))) << "a gap in the sequence";
  EXPECT_FALSE(c.add(s.at(0))) << "a repeat";
  auto corrupt = copy(1);
  corrupt.back() ^= 1;
  EXPECT_FALSE(c.add(corrupt)) << "a bad checksum";
  auto other_flow = PacketBuilder()
                        .eth(kVm, kRouter)
                        .ipv4(kVmIp, kOtherIp)
                        .dontFragment()
                        .tcp(40001, 5001, TcpHeader::kAck, 2000, 77)
                        .payload(pattern(1000))
                        .build();
  EXPECT_FALSE(c.add(other_flow)) << "another source port, at the next sequence number";
  auto syn = tcpFrame(0, TcpHeader::kSyn, 1999);
  EXPECT_FALSE(c.add(syn));
  EXPECT_EQ(c.segments(), 1u);
  ASSERT_TRUE(c.add(s.at(1)));
  EXPECT_EQ(c.segments(), 2u);

  // A larger payload than the first's cannot join; a smaller one ends it.
  TcpCoalescer d;
  ASSERT_TRUE(d.add(tcpFrame(500, TcpHeader::kAck, 1)));
  EXPECT_FALSE(d.add(tcpFrame(600, TcpHeader::kAck, 501)));
  ASSERT_TRUE(d.add(tcpFrame(300, TcpHeader::kAck, 501)));
  EXPECT_FALSE(d.add(tcpFrame(500, TcpHeader::kAck, 801))) << "ended by the shorter one";

  // PSH ends a run and starts none.
  TcpCoalescer e;
  EXPECT_FALSE(e.add(tcpFrame(500, TcpHeader::kAck | TcpHeader::kPsh, 1)));
  ASSERT_TRUE(e.add(tcpFrame(500, TcpHeader::kAck, 1)));
  ASSERT_TRUE(e.add(tcpFrame(500, TcpHeader::kAck | TcpHeader::kPsh, 501)));
  EXPECT_FALSE(e.add(tcpFrame(500, TcpHeader::kAck, 1001)));

  // A VLAN tag, or a TTL that differs, keeps frames apart.
  TcpCoalescer f;
  EXPECT_FALSE(f.add(tcpFrame(500, TcpHeader::kAck, 1, /*vlan=*/true)));
  ASSERT_TRUE(f.add(tcpFrame(500, TcpHeader::kAck, 1)));
  auto lower_ttl = PacketBuilder()
                       .eth(kVm, kRouter)
                       .ipv4(kVmIp, kOtherIp, 63)
                       .dontFragment()
                       .tcp(40000, 5001, TcpHeader::kAck, 501, 77)
                       .payload(pattern(500))
                       .build();
  EXPECT_FALSE(f.add(lower_ttl));
}

// Behind a tunnel header: segments join while their headers are the same,
// and the joined frame follows the first one's header.
TEST(Coalesce, BehindATunnelHeader) {
  auto frame = tcpFrame(5000, TcpHeader::kAck, 1);
  Offload o = makePartial(frame, Offload::kGsoTcpv4, 1000);
  Segments s;
  ASSERT_EQ(segment(frame, o, 0, {}, s), DropReason::None);
  ASSERT_EQ(s.count, 5u);
  const std::vector<uint8_t> header = {0x00, 0x00, 0x65, 0x58, 0x00, 0x00, 0x2a, 0x00};
  std::vector<uint8_t> other_vni = header;
  other_vni[6] = 0x2b;

  TcpCoalescer c;
  ASSERT_TRUE(c.add(s.at(0), header));
  EXPECT_FALSE(c.add(s.at(1), other_vni)) << "another header";
  EXPECT_FALSE(c.add(s.at(1))) << "no header";
  for (size_t i = 1; i < s.count; ++i) ASSERT_TRUE(c.add(s.at(i), header)) << "segment " << i;
  Offload joined_offload;
  auto joined = c.finish(joined_offload);
  ASSERT_EQ(joined.size(), header.size() + frame.size());
  EXPECT_TRUE(std::equal(header.begin(), header.end(), joined.begin()));
  auto inner = joined.subspan(header.size());
  ParsedPacket p = parsed(inner);
  EXPECT_EQ(joined_offload.csum_start, p.l4_offset) << "counted from the frame";
  EXPECT_EQ(joined_offload.gso_size, 1000);
  std::vector<uint8_t> complete(inner.begin(), inner.end());
  ASSERT_EQ(completeChecksum(complete, joined_offload.csum_start, joined_offload.csum_offset),
            DropReason::None);
  EXPECT_TRUE(checksumsValid(complete));
  EXPECT_TRUE(std::equal(complete.begin() + p.payload_offset, complete.end(),
                         frame.begin() + p.payload_offset));
}

TEST(Coalesce, StopsAt64KiB) {
  TcpCoalescer c;
  uint32_t seq = 1;
  size_t joined = 0;
  while (c.add(tcpFrame(1448, TcpHeader::kAck, seq))) {
    seq += 1448;
    ++joined;
  }
  EXPECT_EQ(joined, (65535 - 40) / 1448);
  Offload o;
  auto frame = c.finish(o);
  ParsedPacket p = parsed(frame);
  EXPECT_LE(p.l3_end - p.l3_offset, 65535);
  EXPECT_EQ(p.l3_end, frame.size());
}

}  // namespace
}  // namespace canopy::datapath::packet
