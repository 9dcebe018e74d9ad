// Connection tracking on a fake clock: TCP's handshake, close and resets,
// UDP and ICMP echo, related ICMP errors, zones, timeouts and the size limit.

#include "datapath/conntrack/conntrack.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "datapath/packet/builder.h"

namespace canopy::datapath::conntrack {
namespace {

using packet::Ipv4Address;
using packet::MacAddress;
using packet::PacketBuilder;
using packet::TcpHeader;

const MacAddress kA{{0xfa, 0x16, 0x3e, 0, 0, 1}};
const MacAddress kB{{0xfa, 0x16, 0x3e, 0, 0, 2}};
const Ipv4Address kIpA = Ipv4Address::of(10, 0, 0, 1);
const Ipv4Address kIpB = Ipv4Address::of(10, 0, 0, 2);
const Ipv4Address kRouter = Ipv4Address::of(10, 0, 0, 254);

constexpr uint8_t kSyn = TcpHeader::kSyn;
constexpr uint8_t kAck = TcpHeader::kAck;
constexpr uint8_t kFin = TcpHeader::kFin;
constexpr uint8_t kRst = TcpHeader::kRst;

class ConntrackTest : public ::testing::Test {
 protected:
  // A → B (forward) or B → A (back) TCP segment.
  std::vector<uint8_t> tcp(bool forward, uint8_t flags, uint32_t seq, uint32_t ack = 0,
                           std::string_view data = "") {
    PacketBuilder b;
    if (forward) {
      b.eth(kA, kB).ipv4(kIpA, kIpB).tcp(40000, 80, flags, seq, ack);
    } else {
      b.eth(kB, kA).ipv4(kIpB, kIpA).tcp(80, 40000, flags, seq, ack);
    }
    return b.payload(data).build();
  }
  std::vector<uint8_t> udp(bool forward, uint16_t port = 53) {
    PacketBuilder b;
    if (forward) {
      b.eth(kA, kB).ipv4(kIpA, kIpB).udp(5000, port);
    } else {
      b.eth(kB, kA).ipv4(kIpB, kIpA).udp(port, 5000);
    }
    return b.build();
  }
  Lookup see(const std::vector<uint8_t>& frame, uint16_t zone = 1) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return ct.lookup(p, frame, zone);
  }
  DropReason commit(const std::vector<uint8_t>& frame, uint16_t zone = 1) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return ct.commit(p, frame, zone);
  }
  // Sees a packet and commits it if new, as the security groups would.
  CtState pass(const std::vector<uint8_t>& frame, uint16_t zone = 1) {
    Lookup l = see(frame, zone);
    if (l.state == CtState::New) {
      EXPECT_EQ(commit(frame, zone), DropReason::None);
    }
    return l.state;
  }

  FakeClock clock;
  ConnTrack ct{clock, Limits{.max_connections = 4}};
};

TEST_F(ConntrackTest, TcpHandshakeDataAndClose) {
  EXPECT_EQ(pass(tcp(true, kSyn, 1000)), CtState::New);
  Lookup synack = see(tcp(false, kSyn | kAck, 5000, 1001));
  EXPECT_EQ(synack.state, CtState::Established);
  EXPECT_TRUE(synack.reply);
  EXPECT_EQ(see(tcp(true, kAck, 1001, 5001)).state, CtState::Established);
  EXPECT_EQ(see(tcp(true, kAck, 1001, 5001, "GET /")).state, CtState::Established);
  auto key = connKey(
      [&] {
        packet::ParsedPacket p;
        auto f = tcp(true, kAck, 0);
        (void)packet::parse(f, p);
        return p;
      }(),
      1);
  ASSERT_TRUE(ct.find(key));
  EXPECT_EQ(ct.find(key)->tcp, TcpState::Established);
  // (Closing once both sides sent FIN: the kernel fast path lets go.)
  EXPECT_FALSE(see(tcp(true, kFin | kAck, 1006, 5001)).closing);
  EXPECT_EQ(ct.find(key)->tcp, TcpState::FinWait);
  EXPECT_TRUE(see(tcp(false, kFin | kAck, 5001, 1007)).closing);
  EXPECT_EQ(ct.find(key)->tcp, TcpState::Closing);
  EXPECT_TRUE(see(tcp(true, kAck, 1007, 5002)).closing);
  EXPECT_EQ(ct.find(key)->tcp, TcpState::TimeWait);
  // The port is reused: a new SYN starts a new connection.
  EXPECT_EQ(see(tcp(true, kSyn, 9000)).state, CtState::New);
}

// The kernel fast path carries a connection from its SYN-ACK on: what it
// carried completes the handshake, and its timeout is then the
// established one; before the SYN-ACK, nothing is completed.
TEST_F(ConntrackTest, TouchedAfterItsSynAckAHandshakeIsComplete) {
  auto key = [&] {
    packet::ParsedPacket p;
    auto f = tcp(true, kSyn, 1000);
    (void)packet::parse(f, p);
    return connKey(p, 1);
  }();
  EXPECT_EQ(pass(tcp(true, kSyn, 1000)), CtState::New);
  EXPECT_TRUE(ct.touch(key, clock.now()));
  EXPECT_EQ(ct.find(key)->tcp, TcpState::SynSent);
  see(tcp(false, kSyn | kAck, 5000, 1001));
  EXPECT_EQ(ct.find(key)->tcp, TcpState::SynReceived);
  EXPECT_TRUE(ct.touch(key.reversed(), clock.now()));
  EXPECT_EQ(ct.find(key)->tcp, TcpState::Established);
  clock.advance(std::chrono::minutes(10));  // beyond a handshake's timeout
  EXPECT_TRUE(ct.find(key));
}

TEST_F(ConntrackTest, ASynAfterItsSenderClosedReusesThePortWithoutTheLastAck) {
  pass(tcp(true, kSyn, 1000));
  see(tcp(false, kSyn | kAck, 5000, 1001));
  see(tcp(true, kAck, 1001, 5001));
  see(tcp(false, kFin | kAck, 5001, 1001));  // the server closes first
  // The client's own FIN; the server's last ACK is lost.
  see(tcp(true, kFin | kAck, 1001, 5002));
  Lookup reused = see(tcp(true, kSyn, 70000));
  EXPECT_EQ(reused.state, CtState::New);
  ASSERT_EQ(commit(tcp(true, kSyn, 70000)), DropReason::None);
  // The new server's answer to the new SYN, whatever its sequence.
  EXPECT_EQ(see(tcp(false, kRst | kAck, 0, 70001)).state, CtState::Established);
}

TEST_F(ConntrackTest, ASynWhileOnlyTheServerClosedIsNoNewConnection) {
  pass(tcp(true, kSyn, 1000));
  see(tcp(false, kSyn | kAck, 5000, 1001));
  see(tcp(true, kAck, 1001, 5001));
  see(tcp(false, kFin | kAck, 5001, 1001));
  EXPECT_NE(see(tcp(true, kSyn, 70000)).state, CtState::New);
}

TEST_F(ConntrackTest, TcpWithoutAConnectionMustBeASyn) {
  Lookup l = see(tcp(true, kAck, 1000, 1));
  EXPECT_EQ(l.state, CtState::Invalid);
  EXPECT_EQ(l.invalid_reason, DropReason::ConntrackNotSyn);
  EXPECT_EQ(see(tcp(true, kSyn | kFin, 1)).state, CtState::Invalid);
  EXPECT_EQ(see(tcp(false, kSyn | kAck, 1, 1)).state, CtState::Invalid);
}

TEST_F(ConntrackTest, RstMustLandInTheStream) {
  pass(tcp(true, kSyn, 1000));
  see(tcp(false, kSyn | kAck, 5000, 1001));
  see(tcp(true, kAck, 1001, 5001));
  // A blind reset far from the stream is refused and changes nothing.
  Lookup blind = see(tcp(false, kRst, 5000 + (1u << 30)));
  EXPECT_EQ(blind.state, CtState::Invalid);
  EXPECT_EQ(blind.invalid_reason, DropReason::ConntrackRstOutOfWindow);
  EXPECT_FALSE(blind.closing);
  EXPECT_EQ(see(tcp(true, kAck, 1001, 5001, "x")).state, CtState::Established);
  // A reset in the stream closes the connection.
  Lookup reset = see(tcp(false, kRst, 5001));
  EXPECT_EQ(reset.state, CtState::Established);
  EXPECT_TRUE(reset.closing);
  Lookup after = see(tcp(true, kAck, 1002, 5001, "y"));
  EXPECT_EQ(after.state, CtState::Invalid);
  EXPECT_EQ(after.invalid_reason, DropReason::ConntrackClosed);
}

TEST_F(ConntrackTest, UdpTimesOutUnlessReplied) {
  EXPECT_EQ(pass(udp(true)), CtState::New);
  clock.advance(std::chrono::seconds(29));
  EXPECT_EQ(see(udp(true)).state, CtState::Established);
  clock.advance(std::chrono::seconds(31));
  EXPECT_EQ(see(udp(false)).state, CtState::New);  // expired: the reply is new now
  EXPECT_EQ(pass(udp(true)), CtState::New);
  Lookup reply = see(udp(false));
  EXPECT_EQ(reply.state, CtState::Established);
  EXPECT_TRUE(reply.reply);
  clock.advance(std::chrono::seconds(170));  // replied: 180 s
  EXPECT_EQ(see(udp(true)).state, CtState::Established);
}

TEST_F(ConntrackTest, IcmpEchoByIdentifier) {
  auto ping = [](bool forward, uint16_t id) {
    PacketBuilder b;
    if (forward) {
      b.eth(kA, kB).ipv4(kIpA, kIpB).icmp(8, 0, id, 1);
    } else {
      b.eth(kB, kA).ipv4(kIpB, kIpA).icmp(0, 0, id, 1);
    }
    return b.build();
  };
  EXPECT_EQ(pass(ping(true, 7)), CtState::New);
  Lookup reply = see(ping(false, 7));
  EXPECT_EQ(reply.state, CtState::Established);
  EXPECT_TRUE(reply.reply);
  EXPECT_EQ(see(ping(false, 8)).state, CtState::New);
}

TEST_F(ConntrackTest, IcmpErrorsAboutAConnectionAreRelated) {
  auto query = udp(true);
  pass(query);
  // Port unreachable from B, quoting A's datagram (its IP header and 8 bytes).
  auto error = [&](const std::vector<uint8_t>& quoted) {
    return PacketBuilder()
        .eth(kB, kA)
        .ipv4(kRouter, kIpA)
        .icmp(3, 3)
        .payload(std::span(quoted).subspan(14, 28))
        .build();
  };
  EXPECT_EQ(see(error(query)).state, CtState::Related);
  // A TCP quote holds only the first 8 bytes of the TCP header: enough.
  auto syn = tcp(true, kSyn, 1000);
  pass(syn);
  EXPECT_EQ(see(error(syn)).state, CtState::Related);
  Lookup unrelated = see(error(udp(true, 123)));
  EXPECT_EQ(unrelated.state, CtState::Invalid);
  EXPECT_EQ(unrelated.invalid_reason, DropReason::ConntrackUnrelatedIcmpError);
}

TEST_F(ConntrackTest, ZonesAreApart) {
  pass(udp(true), 1);
  EXPECT_EQ(see(udp(false), 1).state, CtState::Established);
  EXPECT_EQ(see(udp(false), 2).state, CtState::New);
}

TEST_F(ConntrackTest, FullTableRefusesNewConnectionsOnly) {
  for (uint16_t port = 1; port <= 4; ++port) EXPECT_EQ(pass(udp(true, port)), CtState::New);
  EXPECT_EQ(ct.size(), 4u);
  auto fifth = udp(true, 5);
  EXPECT_EQ(see(fifth).state, CtState::New);
  EXPECT_EQ(commit(fifth), DropReason::ConntrackFull);
  EXPECT_EQ(see(udp(false, 1)).state, CtState::Established);  // existing ones unaffected
  clock.advance(std::chrono::seconds(31));
  EXPECT_EQ(commit(fifth), DropReason::None);  // expired ones make room
  EXPECT_EQ(ct.size(), 2u);                    // the replied one lives on
}

TEST_F(ConntrackTest, NonIpIsUntracked) {
  auto arp = PacketBuilder().eth(kA, kB).arp(1, kA, kIpA, MacAddress{}, kIpB).build();
  EXPECT_EQ(see(arp).state, CtState::Untracked);
  EXPECT_EQ(commit(arp), DropReason::None);
  EXPECT_EQ(ct.size(), 0u);
}

// A table shared by two threads (a host's two workers): each commits its
// own UDP connections while answering the other's replies; every reply finds
// its connection, and the count is exact. Run under TSan and ASan as well.
TEST(SharedConntrack, TwoThreadsCommitAndAnswerEachOthersConnections) {
  FakeClock clock;
  ConnTrack ct(clock, {.shared = true});
  constexpr uint16_t kPerThread = 2000;
  auto frame = [](bool forward, int thread, uint16_t n) {
    PacketBuilder b;
    auto src = Ipv4Address::of(10, static_cast<uint8_t>(thread), static_cast<uint8_t>(n >> 8),
                               static_cast<uint8_t>(n));
    if (forward) {
      b.eth(kA, kB).ipv4(src, kIpB).udp(static_cast<uint16_t>(1000 + n), 53);
    } else {
      b.eth(kB, kA).ipv4(kIpB, src).udp(53, static_cast<uint16_t>(1000 + n));
    }
    return b.build();
  };
  std::atomic<int> replies_found{0};
  auto run = [&](int thread) {
    ConnCache cache;  // each worker's own
    for (uint16_t n = 0; n < kPerThread; ++n) {
      auto out = frame(true, thread, n);
      packet::ParsedPacket p;
      ASSERT_EQ(packet::parse(out, p), DropReason::None);
      ASSERT_EQ(ct.commit(p, out, 1), DropReason::None);
      // The other thread's connection of the same number, if it is there yet.
      auto back = frame(false, 1 - thread, n);
      ASSERT_EQ(packet::parse(back, p), DropReason::None);
      ct.lookup(p, back, 1, clock.now(), &cache);
    }
    for (uint16_t n = 0; n < kPerThread; ++n) {
      auto back = frame(false, thread, n);
      packet::ParsedPacket p;
      ASSERT_EQ(packet::parse(back, p), DropReason::None);
      auto l = ct.lookup(p, back, 1, clock.now(), &cache);
      if (l.state == CtState::Established && l.reply) ++replies_found;
      // Again, from this worker's cache.
      l = ct.lookup(p, back, 1, clock.now(), &cache);
      EXPECT_TRUE(l.state == CtState::Established && l.reply);
    }
  };
  std::thread a(run, 0);
  std::thread b(run, 1);
  a.join();
  b.join();
  EXPECT_EQ(replies_found.load(), 2 * kPerThread);
  EXPECT_EQ(ct.size(), size_t{2 * kPerThread});
}

// A worker's cache never answers for a connection the table no longer has:
// expired, swept or finished and reused, each is seen through it as the
// table sees it.
class SharedConntrackCache : public ConntrackTest {
 protected:
  Lookup seeCached(const std::vector<uint8_t>& frame) {
    packet::ParsedPacket p;
    EXPECT_EQ(packet::parse(frame, p), DropReason::None);
    return shared.lookup(p, frame, 1, clock.now(), &cache);
  }
  CtState passCached(const std::vector<uint8_t>& frame) {
    Lookup l = seeCached(frame);
    if (l.state == CtState::New) {
      packet::ParsedPacket p;
      EXPECT_EQ(packet::parse(frame, p), DropReason::None);
      EXPECT_EQ(shared.commit(p, frame, 1, clock.now()), DropReason::None);
    }
    return l.state;
  }
  ConnTrack shared{clock, Limits{.shared = true}};
  ConnCache cache{16};
};

TEST_F(SharedConntrackCache, AnExpiredConnectionIsNewAgain) {
  EXPECT_EQ(passCached(udp(true)), CtState::New);
  EXPECT_EQ(seeCached(udp(true)).state, CtState::Established);  // now in the cache
  EXPECT_EQ(seeCached(udp(true)).state, CtState::Established);  // from it
  clock.advance(std::chrono::seconds(31));                      // unreplied UDP: 30 s
  EXPECT_EQ(seeCached(udp(true)).state, CtState::New);
  EXPECT_EQ(shared.size(), 0u);
}

TEST_F(SharedConntrackCache, ASweptConnectionIsNotAnsweredFromTheCache) {
  EXPECT_EQ(passCached(udp(true)), CtState::New);
  EXPECT_EQ(seeCached(udp(false)).state, CtState::Established);  // replied, cached
  clock.advance(std::chrono::seconds(181));
  EXPECT_EQ(shared.sweep(), 1u);
  EXPECT_EQ(seeCached(udp(false)).state, CtState::New);
}

TEST_F(SharedConntrackCache, AFinishedConnectionsPortIsReusedThroughTheCache) {
  EXPECT_EQ(passCached(tcp(true, kSyn, 1000)), CtState::New);
  EXPECT_EQ(seeCached(tcp(false, kSyn | kAck, 5000, 1001)).state, CtState::Established);
  EXPECT_EQ(seeCached(tcp(true, kAck, 1001, 5001)).state, CtState::Established);
  EXPECT_EQ(seeCached(tcp(true, kRst, 1001)).state, CtState::Established);  // closed
  // A new SYN from the same port: a new connection, the old one gone.
  EXPECT_EQ(passCached(tcp(true, kSyn, 90000)), CtState::New);
  EXPECT_EQ(shared.size(), 1u);
  auto c = shared.find(connKey(
      [&] {
        packet::ParsedPacket p;
        auto f = tcp(true, kSyn, 90000);
        EXPECT_EQ(packet::parse(f, p), DropReason::None);
        return p;
      }(),
      1));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->tcp, TcpState::SynSent);
}

}  // namespace
}  // namespace canopy::datapath::conntrack
