// NAT on frames: checksums after a rewrite equal those computed from
// scratch, and translating back gives the original frame (random packets,
// printed seed), ICMP errors' quotes included; the SNAT port allocator never
// hands out a port twice.

#include "datapath/nat/nat.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <set>

#include "datapath/packet/builder.h"
#include "datapath/packet/checksum.h"

namespace canopy::datapath::nat {
namespace {

using packet::Ipv4Address;
using packet::PacketBuilder;

// A random seed, or CANOPY_TEST_SEED's to replay a printed one.
uint64_t testSeed() {
  const char* fixed = std::getenv("CANOPY_TEST_SEED");
  return fixed != nullptr ? std::strtoull(fixed, nullptr, 10) : std::random_device{}();
}

const packet::MacAddress kA{{0xfa, 0x16, 0x3e, 0, 0, 1}};
const packet::MacAddress kB{{0xfa, 0x16, 0x3e, 0, 0, 2}};

Ipv4Address randomAddress(std::mt19937_64& rng) {
  auto v = static_cast<uint32_t>(rng());
  return {packet::Be32::of(v)};
}

// The frame a builder would make for the same fields: its checksums are
// computed from scratch.
std::vector<uint8_t> rebuilt(const std::vector<uint8_t>& frame, int kind,
                             const std::string& payload) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None);
  Ipv4Address src, dst;
  std::memcpy(&src, p.key.ip_src.data(), 4);
  std::memcpy(&dst, p.key.ip_dst.data(), 4);
  PacketBuilder b;
  b.eth(kA, kB).ipv4(src, dst, p.key.ip_ttl);
  if (kind == 0) b.udp(p.key.tp_src, p.key.tp_dst);
  if (kind == 1) b.tcp(p.key.tp_src, p.key.tp_dst, p.key.tcp_flags, 11, 22);
  if (kind == 2) b.icmp(8, 0, p.key.icmp_id, 5);
  return b.payload(payload).build();
}

TEST(Nat, RewriteKeepsChecksumsRightAndReverses) {
  uint64_t seed = testSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 500; ++round) {
    int kind = static_cast<int>(rng() % 3);
    std::string payload(rng() % 50, 'x');
    for (auto& c : payload) c = static_cast<char>(rng());
    auto src = randomAddress(rng), dst = randomAddress(rng);
    auto sport = static_cast<uint16_t>(rng()), dport = static_cast<uint16_t>(rng());
    PacketBuilder b;
    b.eth(kA, kB).ipv4(src, dst);
    if (kind == 0) b.udp(sport, dport);
    if (kind == 1) b.tcp(sport, dport, packet::TcpHeader::kAck, 11, 22);
    if (kind == 2) b.icmp(8, 0, sport, 5);
    auto original = b.payload(payload).build();
    auto frame = original;
    packet::ParsedPacket p;
    ASSERT_EQ(packet::parse(frame, p), DropReason::None) << b.describe();

    Side side = rng() % 2 ? Side::Source : Side::Destination;
    auto to = randomAddress(rng);
    auto to_port = static_cast<uint16_t>(rng());
    if (kind == 2) side = Side::Source;  // the echo identifier is the source's
    ASSERT_EQ(rewriteIpv4(frame, p, side, to, to_port), DropReason::None);
    ASSERT_EQ(frame, rebuilt(frame, kind, payload)) << "round " << round << ": " << b.describe();

    // And back.
    ASSERT_EQ(packet::parse(frame, p), DropReason::None);
    Ipv4Address back = side == Side::Source ? src : dst;
    uint16_t back_port = kind == 2 ? sport : (side == Side::Source ? sport : dport);
    ASSERT_EQ(rewriteIpv4(frame, p, side, back, back_port), DropReason::None);
    ASSERT_EQ(frame, original) << "round " << round << ": " << b.describe();
  }
}

TEST(Nat, UdpWithoutChecksumStaysWithout) {
  auto frame = PacketBuilder()
                   .eth(kA, kB)
                   .ipv4(Ipv4Address::of(10, 0, 0, 1), Ipv4Address::of(10, 0, 0, 2))
                   .udp(1, 2)
                   .build();
  frame[34 + 6] = frame[34 + 7] = 0;  // "no checksum"
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(frame, p), DropReason::None);
  ASSERT_EQ(rewriteIpv4(frame, p, Side::Source, Ipv4Address::of(203, 0, 113, 5), 4000),
            DropReason::None);
  EXPECT_EQ(frame[34 + 6], 0);
  EXPECT_EQ(frame[34 + 7], 0);
  EXPECT_EQ(packet::checksum(std::span(frame).subspan(14, 20)), 0);  // IP header still right
}

TEST(Nat, RefusesWhatIsNotIpv4) {
  auto arp = PacketBuilder()
                 .eth(kA, kB)
                 .arp(1, kA, Ipv4Address::of(1, 1, 1, 1), {}, Ipv4Address::of(1, 1, 1, 2))
                 .build();
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(arp, p), DropReason::None);
  EXPECT_EQ(rewriteIpv4(arp, p, Side::Source, {}, std::nullopt), DropReason::NatNotIpv4);
}

// ICMP errors (RFC 5508): the quote follows the outer packet's translation.

const Ipv4Address kInternal = Ipv4Address::of(10, 0, 0, 5);
const Ipv4Address kExternal = Ipv4Address::of(203, 0, 113, 1);
const Ipv4Address kRemote = Ipv4Address::of(198, 51, 100, 7);

enum class Quoted { Udp, Tcp, Echo };

// The IP packet an ICMP error quotes, built from scratch (so with its own
// checksums right) and cut to its first `keep` bytes. An echo's identifier
// is `src_port`.
std::vector<uint8_t> quoted(Ipv4Address src, Ipv4Address dst, Quoted kind, uint16_t src_port,
                            uint16_t dst_port, std::string_view payload, size_t keep = SIZE_MAX) {
  PacketBuilder b;
  b.eth(kA, kB).ipv4(src, dst);
  if (kind == Quoted::Udp) b.udp(src_port, dst_port);
  if (kind == Quoted::Tcp) b.tcp(src_port, dst_port, packet::TcpHeader::kSyn, 1000);
  if (kind == Quoted::Echo) b.icmp(8, 0, src_port, 1);
  auto frame = b.payload(payload).build();
  std::vector<uint8_t> ip(frame.begin() + sizeof(packet::EthernetHeader), frame.end());
  if (ip.size() > keep) ip.resize(keep);
  return ip;
}

std::vector<uint8_t> icmpError(Ipv4Address src, Ipv4Address dst, std::span<const uint8_t> quote,
                               uint8_t type = 3, uint8_t code = 3) {
  return PacketBuilder().eth(kA, kB).ipv4(src, dst).icmp(type, code).payload(quote).build();
}

// Every checksum of an ICMP error verified from scratch: outer IPv4, ICMP,
// quoted IPv4, and the quoted UDP when the whole datagram is quoted.
::testing::AssertionResult checksumsHold(const std::vector<uint8_t>& frame) {
  packet::ParsedPacket p;
  if (packet::parse(frame, p) != DropReason::None) return ::testing::AssertionFailure() << "parse";
  std::span<const uint8_t> f(frame);
  if (packet::checksum(f.subspan(p.l3_offset, 20)) != 0) {
    return ::testing::AssertionFailure() << "outer IPv4 checksum";
  }
  if (packet::checksum(f.subspan(p.l4_offset, p.l3_end - p.l4_offset)) != 0) {
    return ::testing::AssertionFailure() << "ICMP checksum";
  }
  auto quote = f.subspan(p.payload_offset, p.l3_end - p.payload_offset);
  if (packet::checksum(quote.first(20)) != 0) {
    return ::testing::AssertionFailure() << "quoted IPv4 checksum";
  }
  packet::Ipv4Header ip;
  packet::UdpHeader udp;
  if (packet::load(quote, 0, ip) && ip.protocol == packet::ipproto::kUdp &&
      packet::load(quote, 20, udp) && udp.checksum.host() != 0 &&
      quote.size() >= 20u + udp.length.host()) {
    auto datagram = quote.subspan(20, udp.length.host());
    uint32_t pseudo =
        packet::pseudoHeaderSum(ip.src, ip.dst, packet::ipproto::kUdp, udp.length.host());
    if (packet::finish(packet::sumWords(datagram, pseudo)) != 0) {
      return ::testing::AssertionFailure() << "quoted UDP checksum";
    }
  }
  return ::testing::AssertionSuccess();
}

// Translates `frame` in place and checks it against `expected`, then
// translates it back and checks it against the original.
void roundTrip(const std::vector<uint8_t>& original, Side side, Ipv4Address to, uint16_t to_port,
               Ipv4Address back, uint16_t back_port, const std::vector<uint8_t>& expected) {
  auto frame = original;
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(frame, p), DropReason::None);
  ASSERT_EQ(rewriteIpv4(frame, p, side, to, to_port), DropReason::None);
  EXPECT_EQ(frame, expected);
  EXPECT_TRUE(checksumsHold(frame));
  ASSERT_EQ(packet::parse(frame, p), DropReason::None);
  ASSERT_EQ(rewriteIpv4(frame, p, side, back, back_port), DropReason::None);
  EXPECT_EQ(frame, original);
}

TEST(NatIcmpError, PortUnreachableQuotingUdpComesBackToTheInternalHost) {
  // 10.0.0.5:5000 left as 203.0.113.1:40000; the remote's answer quotes that.
  auto error =
      icmpError(kRemote, kExternal, quoted(kExternal, kRemote, Quoted::Udp, 40000, 53, "q"));
  ASSERT_TRUE(checksumsHold(error));
  auto expected =
      icmpError(kRemote, kInternal, quoted(kInternal, kRemote, Quoted::Udp, 5000, 53, "q"));
  roundTrip(error, Side::Destination, kInternal, 5000, kExternal, 40000, expected);
}

TEST(NatIcmpError, PortUnreachableQuotingTcpComesBackToTheInternalHost) {
  auto error =
      icmpError(kRemote, kExternal, quoted(kExternal, kRemote, Quoted::Tcp, 40000, 80, "GET /"));
  auto expected =
      icmpError(kRemote, kInternal, quoted(kInternal, kRemote, Quoted::Tcp, 5000, 80, "GET /"));
  roundTrip(error, Side::Destination, kInternal, 5000, kExternal, 40000, expected);
}

TEST(NatIcmpError, ShortTcpQuoteKeepsTheChecksumItDoesNotHold) {
  // 8 bytes of TCP: ports and sequence number, no checksum.
  auto quote = quoted(kExternal, kRemote, Quoted::Tcp, 40000, 80, "", 28);
  auto error = icmpError(kRemote, kExternal, quote, 11, 0);
  auto expected = icmpError(kRemote, kInternal,
                            quoted(kInternal, kRemote, Quoted::Tcp, 5000, 80, "", 28), 11, 0);
  roundTrip(error, Side::Destination, kInternal, 5000, kExternal, 40000, expected);
}

TEST(NatIcmpError, ErrorFromTheInsideTranslatesItsSourceAndTheQuotesDestination) {
  // The internal host refuses the remote's packet to 10.0.0.5:5000, which
  // the remote had sent to 203.0.113.1:40000.
  auto error =
      icmpError(kInternal, kRemote, quoted(kRemote, kInternal, Quoted::Udp, 53, 5000, "a"));
  auto expected =
      icmpError(kExternal, kRemote, quoted(kRemote, kExternal, Quoted::Udp, 53, 40000, "a"));
  roundTrip(error, Side::Source, kExternal, 40000, kInternal, 5000, expected);
}

TEST(NatIcmpError, QuotedUdpWithoutChecksumStaysWithout) {
  auto quote = quoted(kExternal, kRemote, Quoted::Udp, 40000, 53, "q");
  quote[20 + 6] = quote[20 + 7] = 0;
  auto frame = icmpError(kRemote, kExternal, quote);
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(frame, p), DropReason::None);
  ASSERT_EQ(rewriteIpv4(frame, p, Side::Destination, kInternal, 5000), DropReason::None);
  size_t udp_sum = p.payload_offset + 20 + 6;
  EXPECT_EQ(frame[udp_sum], 0);
  EXPECT_EQ(frame[udp_sum + 1], 0);
  EXPECT_TRUE(checksumsHold(frame));
}

TEST(NatIcmpError, TooShortOrNotIpv4QuoteIsRefusedUntouched) {
  auto full = quoted(kExternal, kRemote, Quoted::Udp, 40000, 53, "");
  auto short_quote = full;
  short_quote.resize(20 + 4);  // half the UDP header
  auto not_ipv4 = full;
  not_ipv4[0] = 0x65;
  auto bad_header_length = full;
  bad_header_length[0] = 0x44;
  for (const auto& quote : {short_quote, not_ipv4, bad_header_length}) {
    auto frame = icmpError(kRemote, kExternal, quote);
    auto before = frame;
    packet::ParsedPacket p;
    ASSERT_EQ(packet::parse(frame, p), DropReason::None);
    EXPECT_EQ(rewriteIpv4(frame, p, Side::Destination, kInternal, 5000),
              DropReason::NatBadIcmpQuote);
    EXPECT_EQ(frame, before);
  }
}

TEST(NatIcmpError, RandomErrorsMatchFromScratchAndReverse) {
  uint64_t seed = testSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  constexpr uint8_t kErrorTypes[] = {3, 4, 5, 11, 12};
  for (int round = 0; round < 500; ++round) {
    auto kind = static_cast<Quoted>(rng() % 3);
    std::string payload(rng() % 40, 'x');
    for (auto& c : payload) c = static_cast<char>(rng());
    // The quoted packet went from `qsrc` to `qdst`; the error goes back.
    auto qsrc = randomAddress(rng), qdst = randomAddress(rng);
    auto qsport = static_cast<uint16_t>(rng()), qdport = static_cast<uint16_t>(rng());
    size_t keep = 28 + rng() % 60;
    // A quote that ends inside the TCP checksum keeps its one byte stale:
    // without the other, the checksum cannot be updated.
    if (kind == Quoted::Tcp && keep == 20 + 17) ++keep;
    uint8_t type = kErrorTypes[rng() % 5];
    Side side = rng() % 2 ? Side::Source : Side::Destination;
    // A router on the way reports to the quoted source; translating the
    // error's source means the quoted destination itself reports.
    auto reporter = side == Side::Source ? qdst : randomAddress(rng);
    auto error =
        icmpError(reporter, qsrc, quoted(qsrc, qdst, kind, qsport, qdport, payload, keep), type, 0);

    auto to = randomAddress(rng);
    auto to_port = static_cast<uint16_t>(rng());
    std::vector<uint8_t> expected;
    Ipv4Address back;
    uint16_t back_port;
    if (side == Side::Destination) {  // the quote's source
      expected =
          icmpError(reporter, to, quoted(to, qdst, kind, to_port, qdport, payload, keep), type, 0);
      back = qsrc;
      back_port = qsport;
    } else {  // the quote's destination (an echo's identifier on either side)
      bool echo = kind == Quoted::Echo;
      expected = icmpError(
          to, qsrc,
          quoted(qsrc, to, kind, echo ? to_port : qsport, echo ? qdport : to_port, payload, keep),
          type, 0);
      back = reporter;
      back_port = echo ? qsport : qdport;
    }
    SCOPED_TRACE("round " + std::to_string(round));
    roundTrip(error, side, to, to_port, back, back_port, expected);
    if (::testing::Test::HasFailure()) return;
  }
}

// IPv6 (a load balancer's VIP): no header checksum, but TCP's, UDP's and
// ICMPv6's cover the addresses.

packet::Ipv6Address randomAddress6(std::mt19937_64& rng) {
  packet::Ipv6Address a;
  for (auto& b : a.bytes) b = static_cast<uint8_t>(rng());
  return a;
}

std::vector<uint8_t> packet6(packet::Ipv6Address src, packet::Ipv6Address dst, Quoted kind,
                             uint16_t src_port, uint16_t dst_port, std::string_view payload) {
  PacketBuilder b;
  b.eth(kA, kB).ipv6(src, dst);
  if (kind == Quoted::Udp) b.udp(src_port, dst_port);
  if (kind == Quoted::Tcp) b.tcp(src_port, dst_port, packet::TcpHeader::kAck, 11, 22);
  if (kind == Quoted::Echo) b.icmp(128, 0, src_port, 1);
  return b.payload(payload).build();
}

TEST(Nat6, RewriteKeepsChecksumsRightAndReverses) {
  uint64_t seed = testSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 500; ++round) {
    auto kind = static_cast<Quoted>(rng() % 3);
    std::string payload(rng() % 50, 'x');
    for (auto& c : payload) c = static_cast<char>(rng());
    auto src = randomAddress6(rng), dst = randomAddress6(rng);
    auto sport = static_cast<uint16_t>(rng()), dport = static_cast<uint16_t>(rng());
    auto original = packet6(src, dst, kind, sport, dport, payload);
    auto frame = original;
    packet::ParsedPacket p;
    ASSERT_EQ(packet::parse(frame, p), DropReason::None);
    Side side = kind == Quoted::Echo || rng() % 2 ? Side::Source : Side::Destination;
    auto to = randomAddress6(rng);
    auto to_port = static_cast<uint16_t>(rng());
    ASSERT_EQ(rewriteIp(frame, p, side, to.ip(), to_port), DropReason::None);
    auto expected = side == Side::Source ? packet6(to, dst, kind, to_port, dport, payload)
                                         : packet6(src, to, kind, sport,
                                                   kind == Quoted::Echo ? dport : to_port, payload);
    ASSERT_EQ(frame, expected) << "round " << round;
    ASSERT_EQ(packet::parse(frame, p), DropReason::None);
    ASSERT_EQ(rewriteIp(frame, p, side, (side == Side::Source ? src : dst).ip(),
                        side == Side::Source || kind == Quoted::Echo ? sport : dport),
              DropReason::None);
    ASSERT_EQ(frame, original) << "round " << round;
  }
}

TEST(Nat6, AnAddressOfTheOtherVersionIsRefusedUntouched) {
  auto frame =
      packet6(packet::Ipv6Address::of(IpAddress::parse("fd00::1").value()),
              packet::Ipv6Address::of(IpAddress::parse("fd00::2").value()), Quoted::Tcp, 1, 2, "");
  auto before = frame;
  packet::ParsedPacket p;
  ASSERT_EQ(packet::parse(frame, p), DropReason::None);
  EXPECT_EQ(rewriteIp(frame, p, Side::Source, IpAddress::v4(10, 0, 0, 1), 5),
            DropReason::NatFamilyMismatch);
  EXPECT_EQ(rewriteIpv4(frame, p, Side::Source, kInternal, 5), DropReason::NatNotIpv4);
  EXPECT_EQ(frame, before);
}

TEST(Nat6IcmpError, RandomErrorsMatchFromScratchAndReverse) {
  uint64_t seed = testSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 500; ++round) {
    auto kind = static_cast<Quoted>(rng() % 3);
    std::string payload(rng() % 40, 'x');
    for (auto& c : payload) c = static_cast<char>(rng());
    auto qsrc = randomAddress6(rng), qdst = randomAddress6(rng);
    auto qsport = static_cast<uint16_t>(rng()), qdport = static_cast<uint16_t>(rng());
    auto type = static_cast<uint8_t>(1 + rng() % 4);
    Side side = rng() % 2 ? Side::Source : Side::Destination;
    auto reporter = side == Side::Source ? qdst : randomAddress6(rng);
    auto error6 = [&](packet::Ipv6Address from, packet::Ipv6Address to,
                      const std::vector<uint8_t>& quoted_frame) {
      std::vector<uint8_t> quote(quoted_frame.begin() + sizeof(packet::EthernetHeader),
                                 quoted_frame.end());
      return PacketBuilder().eth(kA, kB).ipv6(from, to).icmp(type, 0).payload(quote).build();
    };
    auto error = error6(reporter, qsrc, packet6(qsrc, qdst, kind, qsport, qdport, payload));
    auto to = randomAddress6(rng);
    auto to_port = static_cast<uint16_t>(rng());
    const bool echo = kind == Quoted::Echo;
    std::vector<uint8_t> expected;
    packet::Ipv6Address back;
    uint16_t back_port;
    if (side == Side::Destination) {
      expected = error6(reporter, to, packet6(to, qdst, kind, to_port, qdport, payload));
      back = qsrc;
      back_port = qsport;
    } else {
      expected = error6(
          to, qsrc,
          packet6(qsrc, to, kind, echo ? to_port : qsport, echo ? qdport : to_port, payload));
      back = reporter;
      back_port = echo ? qsport : qdport;
    }
    SCOPED_TRACE("round " + std::to_string(round));
    auto frame = error;
    packet::ParsedPacket p;
    ASSERT_EQ(packet::parse(frame, p), DropReason::None);
    ASSERT_EQ(rewriteIpv6(frame, p, side, to, to_port), DropReason::None);
    ASSERT_EQ(frame, expected);
    ASSERT_EQ(packet::parse(frame, p), DropReason::None);
    ASSERT_EQ(rewriteIpv6(frame, p, side, back, back_port), DropReason::None);
    ASSERT_EQ(frame, error);
  }
}

TEST(PortAllocator, NeverTwiceAndExhaustionIsCounted) {
  PortAllocator ports(2000, 2009);
  auto gw = Ipv4Address::of(203, 0, 113, 1);
  std::set<uint16_t> taken;
  for (int i = 0; i < 10; ++i) {
    auto port = ports.allocate(gw, packet::ipproto::kTcp);
    ASSERT_TRUE(port);
    EXPECT_GE(*port, 2000);
    EXPECT_LE(*port, 2009);
    EXPECT_TRUE(taken.insert(*port).second);
  }
  EXPECT_FALSE(ports.allocate(gw, packet::ipproto::kTcp));
  EXPECT_EQ(ports.exhausted(), 1u);
  // Other protocols and addresses have their own ports.
  EXPECT_TRUE(ports.allocate(gw, packet::ipproto::kUdp));
  EXPECT_TRUE(ports.allocate(Ipv4Address::of(203, 0, 113, 2), packet::ipproto::kTcp));
  ports.release(gw, packet::ipproto::kTcp, 2004);
  EXPECT_EQ(ports.allocate(gw, packet::ipproto::kTcp), 2004);
  EXPECT_EQ(ports.inUse(gw, packet::ipproto::kTcp), 10u);
}

TEST(PortAllocator, ARangeTakesOnlyItsOwnPortsAndRunsOutAlone) {
  PortAllocator ports(1024, 65535);
  auto gw = Ipv4Address::of(203, 0, 113, 1);
  const PortRange lease{.first = 3072, .last = 3079};
  std::set<uint16_t> taken;
  for (int i = 0; i < 8; ++i) {
    auto port = ports.allocate(gw, packet::ipproto::kTcp, lease);
    ASSERT_TRUE(port);
    EXPECT_TRUE(lease.contains(*port)) << *port;
    EXPECT_TRUE(taken.insert(*port).second);
  }
  EXPECT_FALSE(ports.allocate(gw, packet::ipproto::kTcp, lease));
  EXPECT_EQ(ports.exhausted(), 1u);
  // The rest of the address's ports are still free, for other ranges.
  auto other = ports.allocate(gw, packet::ipproto::kTcp, {.first = 1024, .last = 3071});
  ASSERT_TRUE(other);
  EXPECT_LT(*other, 3072);
  ports.release(gw, packet::ipproto::kTcp, 3075);
  EXPECT_EQ(ports.allocate(gw, packet::ipproto::kTcp, lease), 3075);
  // A range outside the allocator's, or empty, has nothing.
  PortAllocator narrow(2000, 2009);
  EXPECT_FALSE(narrow.allocate(gw, packet::ipproto::kTcp, {.first = 3000, .last = 3010}));
  EXPECT_FALSE(narrow.allocate(gw, packet::ipproto::kTcp, {.first = 2005, .last = 2004}));
  EXPECT_EQ(narrow.allocate(gw, packet::ipproto::kTcp, {.first = 1500, .last = 2000}), 2000);
}

}  // namespace
}  // namespace canopy::datapath::nat
