// The connection state a restarted agent adopts (persist/state_file.h): the
// file's slots, torn and foreign records, one process at a time, and each
// table's records: a connection, an SNAT mapping, a load balancer's pin, a
// local IP's translation, a port's zone and a neighbour go on in a new
// table made from the file as they did in the old one (which is what a
// process killed -9 leaves: every record is in the file when written).
#include <gtest/gtest.h>

#include <filesystem>

#include "datapath/conntrack/conntrack.h"
#include "datapath/nat/dnat_table.h"
#include "datapath/nat/lb_table.h"
#include "datapath/nat/snat_table.h"
#include "datapath/packet/builder.h"
#include "datapath/persist/state_file.h"
#include "datapath/pipeline/datapath.h"
#include "testing/temp_dir.h"

namespace canopy::datapath::persist {
namespace {

using namespace std::chrono_literals;
using packet::Ipv4Address;
using packet::MacAddress;
using packet::PacketBuilder;
using packet::TcpHeader;

const MacAddress kA{{0xfa, 0x16, 0x3e, 0, 0, 1}};
const MacAddress kB{{0xfa, 0x16, 0x3e, 0, 0, 2}};
const Ipv4Address kIpA = Ipv4Address::of(10, 0, 0, 1);
const Ipv4Address kIpB = Ipv4Address::of(10, 0, 0, 2);
const Ipv4Address kGateway = Ipv4Address::of(203, 0, 113, 1);
const Ipv4Address kRemote = Ipv4Address::of(198, 51, 100, 7);

std::vector<uint8_t> tcp(Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport,
                         uint8_t flags, uint32_t seq = 1000) {
  return PacketBuilder()
      .eth(kA, kB)
      .ipv4(src, dst)
      .tcp(sport, dport, flags, seq, 1)
      .payload("data")
      .build();
}

packet::ParsedPacket parsed(const std::vector<uint8_t>& frame) {
  packet::ParsedPacket p;
  EXPECT_EQ(packet::parse(frame, p), DropReason::None);
  return p;
}

// An IPv4 address as flow keys hold it (in the first four bytes).
std::array<uint8_t, 16> inKey(Ipv4Address a) {
  uint32_t h = a.host();
  return {static_cast<uint8_t>(h >> 24), static_cast<uint8_t>(h >> 16),
          static_cast<uint8_t>(h >> 8), static_cast<uint8_t>(h)};
}

struct Payload {
  uint64_t value = 0;
};

class StateFileTest : public ::testing::Test {
 protected:
  std::unique_ptr<StateFile> open(uint32_t owner = 7, size_t slots = 64) {
    auto f = StateFile::open(path, {.owner = owner, .slots = slots});
    EXPECT_TRUE(f) << (f ? "" : f.error().message());
    return f ? std::move(*f) : nullptr;
  }
  testing::TempDir dir;
  std::string path = dir.file("connections.state");
};

TEST_F(StateFileTest, RecordsWrittenAreThereForTheNextProcess) {
  {
    auto f = open();
    EXPECT_TRUE(f->adopted().empty());
    uint32_t a = f->allocate(), b = f->allocate(), c = f->allocate();
    f->write(a, RecordKind::Connection, 1, Payload{1});
    f->write(b, RecordKind::Snat, 1, Payload{2});
    f->write(c, RecordKind::Zone, 1, Payload{3});
    f->release(b);
    EXPECT_EQ(f->used(), 2u);
  }
  auto f = open();
  ASSERT_EQ(f->adopted().size(), 2u);
  EXPECT_EQ(f->setAside(), "");
  Payload p;
  EXPECT_EQ(f->adopted()[0].kind, RecordKind::Connection);
  ASSERT_TRUE(f->adopted()[0].as(p));
  EXPECT_EQ(p.value, 1u);
  EXPECT_EQ(f->adopted()[1].kind, RecordKind::Zone);
  EXPECT_EQ(f->used(), 2u);
  // The freed slot is used again before the file grows.
  EXPECT_EQ(f->allocate(), 1u);
}

TEST_F(StateFileTest, ARecordTornByTheProcessDyingIsSkipped) {
  {
    auto f = open();
    uint32_t a = f->allocate(), b = f->allocate();
    f->write(a, RecordKind::Connection, 1, Payload{1});
    f->write(b, RecordKind::Connection, 1, Payload{2});
  }
  {
    // The sequence of slot 1 left odd, as a write cut short leaves it.
    std::FILE* raw = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(raw, nullptr);
    uint32_t odd = 3;
    std::fseek(raw, 4096 + 128, SEEK_SET);
    std::fwrite(&odd, sizeof odd, 1, raw);
    std::fclose(raw);
  }
  auto f = open();
  ASSERT_EQ(f->adopted().size(), 1u);
  EXPECT_EQ(f->unreadable(), 1u);
  EXPECT_EQ(f->allocate(), 1u);  // the torn slot is free
}

TEST_F(StateFileTest, OneProcessAtATime) {
  auto f = open();
  auto second = StateFile::open(path, {.owner = 7, .slots = 64});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), Errc::Conflict);
  EXPECT_NE(second.error().message().find("held by another canopy-agent"), std::string::npos);
}

TEST_F(StateFileTest, AnotherHostsOrAnotherSizesOrGarbageIsSetAsideNotRead) {
  {
    auto f = open(7);
    f->write(f->allocate(), RecordKind::Connection, 1, Payload{1});
  }
  {
    auto f = open(8);  // another host's key
    EXPECT_TRUE(f->adopted().empty());
    EXPECT_NE(f->setAside().find("host 7"), std::string::npos) << f->setAside();
    EXPECT_TRUE(std::filesystem::exists(path + ".old"));
    f->write(f->allocate(), RecordKind::Connection, 1, Payload{1});
  }
  {
    auto f = open(8, 128);  // another size
    EXPECT_TRUE(f->adopted().empty());
    EXPECT_NE(f->setAside().find("size"), std::string::npos) << f->setAside();
  }
  {
    std::FILE* raw = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(raw, nullptr);
    std::fwrite("not a state file", 16, 1, raw);
    std::fclose(raw);
  }
  auto f = open(8, 128);
  EXPECT_TRUE(f->adopted().empty());
  EXPECT_EQ(f->setAside(), "not a Canopy state file");
}

TEST_F(StateFileTest, FullIsCountedAndRecordsTooLargeAreRefused) {
  auto f = open(7, 2);
  EXPECT_NE(f->allocate(), kNoSlot);
  EXPECT_NE(f->allocate(), kNoSlot);
  EXPECT_EQ(f->allocate(), kNoSlot);
  EXPECT_EQ(f->full(), 1u);
  f->write(kNoSlot, RecordKind::Connection, 1, Payload{1});  // ignored
}

// A table, then a table made after "restarting": the same file reopened.
class AdoptTest : public StateFileTest {
 protected:
  // Reopens the file (as the next process does) for `table`, which adopts
  // each record (the records it does not read are discarded).
  template <typename Table>
  std::unique_ptr<StateFile> restart(Table& table) {
    auto f = open();
    table.persistTo(f.get());
    for (const Record& r : f->adopted()) {
      if (!table.adopt(r)) f->discard(r);
    }
    return f;
  }
  FakeClock clock;
};

TEST_F(AdoptTest, AnEstablishedConnectionGoesOnAndAnExpiredOneIsNotAdopted) {
  using conntrack::ConnTrack;
  using conntrack::CtState;
  const uint8_t syn = TcpHeader::kSyn, ack = TcpHeader::kAck;
  {
    auto f = open();
    ConnTrack ct(clock, {});
    ct.persistTo(f.get());
    auto s = tcp(kIpA, 40000, kIpB, 80, syn);
    ASSERT_EQ(ct.lookup(parsed(s), s, 1).state, CtState::New);
    ASSERT_EQ(ct.commit(parsed(s), s, 1), DropReason::None);
    auto sa = tcp(kIpB, 80, kIpA, 40000, syn | ack, 5000);
    EXPECT_EQ(ct.lookup(parsed(sa), sa, 1).state, CtState::Established);
    auto a = tcp(kIpA, 40000, kIpB, 80, ack, 1001);
    EXPECT_EQ(ct.lookup(parsed(a), a, 1).state, CtState::Established);
    // A UDP flow that will have expired by the restart.
    auto u = PacketBuilder().eth(kA, kB).ipv4(kIpA, kIpB).udp(5000, 53).build();
    ASSERT_EQ(ct.commit(parsed(u), u, 1), DropReason::None);
    EXPECT_EQ(f->used(), 2u);
  }
  clock.advance(60s);  // past UDP's 30 s, well within TCP's established timeout
  ConnTrack ct(clock, {});
  auto f = restart(ct);
  EXPECT_EQ(ct.size(), 1u);
  EXPECT_EQ(f->used(), 1u);  // the expired one's record released
  // Mid-stream segments, both ways: established, not conntrack_not_syn.
  auto data = tcp(kIpA, 40000, kIpB, 80, ack, 9999);
  EXPECT_EQ(ct.lookup(parsed(data), data, 1).state, CtState::Established);
  auto back = tcp(kIpB, 80, kIpA, 40000, ack, 7777);
  auto l = ct.lookup(parsed(back), back, 1);
  EXPECT_EQ(l.state, CtState::Established);
  EXPECT_TRUE(l.reply);
  auto found = ct.find(conntrack::connKey(parsed(data), 1));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->tcp, conntrack::TcpState::Established);
  // In another zone, the same tuple is nobody's.
  EXPECT_EQ(ct.lookup(parsed(data), data, 2).state, CtState::Invalid);
}

TEST_F(AdoptTest, WithoutTheFileTheSameSegmentIsDropped) {
  // The control: what a restart did before the state was kept.
  conntrack::ConnTrack ct(clock, {});
  auto data = tcp(kIpA, 40000, kIpB, 80, TcpHeader::kAck, 9999);
  auto l = ct.lookup(parsed(data), data, 1);
  EXPECT_EQ(l.state, conntrack::CtState::Invalid);
  EXPECT_EQ(l.invalid_reason, DropReason::ConntrackNotSyn);
}

TEST_F(AdoptTest, AnSnatMappingTranslatesRepliesAndHoldsItsPort) {
  using nat::SnatTable;
  auto out = tcp(kIpA, 40000, kRemote, 443, TcpHeader::kSyn);
  uint16_t external_port = 0;
  {
    auto f = open();
    SnatTable snat(clock);
    snat.persistTo(f.get());
    ASSERT_EQ(snat.translateOutbound(out, parsed(out), kGateway), DropReason::None);
    external_port = parsed(out).key.tp_src;
  }
  SnatTable snat(clock);
  auto f = restart(snat);
  EXPECT_EQ(snat.size(), 1u);
  // The remote end's reply finds its way back to the internal host.
  auto reply = tcp(kRemote, 443, kGateway, external_port, TcpHeader::kSyn | TcpHeader::kAck);
  ASSERT_EQ(snat.translateInbound(reply, parsed(reply)), DropReason::None);
  EXPECT_EQ(parsed(reply).key.ip_dst, inKey(kIpA));
  EXPECT_EQ(parsed(reply).key.tp_dst, 40000);
  // Another internal host with the same source port gets another port.
  auto other = tcp(kIpB, 40000, kRemote, 443, TcpHeader::kSyn);
  ASSERT_EQ(snat.translateOutbound(other, parsed(other), kGateway), DropReason::None);
  EXPECT_NE(parsed(other).key.tp_src, external_port);
}

TEST_F(AdoptTest, ALoadBalancedConnectionStaysOnItsMember) {
  using nat::LbTable;
  const Ipv4Address vip = Ipv4Address::of(10, 0, 0, 100);
  const nat::LbTarget member{IpAddress::v4(10, 0, 0, 20), 8080};
  {
    auto f = open();
    LbTable lb(clock);
    lb.persistTo(f.get());
    auto s = tcp(kIpA, 40000, vip, 80, TcpHeader::kSyn);
    ASSERT_EQ(lb.translate(s, parsed(s), 3, member, false, 42), DropReason::None);
  }
  LbTable lb(clock);
  auto f = restart(lb);
  auto next = tcp(kIpA, 40000, vip, 80, TcpHeader::kAck, 1001);
  auto pinned = lb.pinned(parsed(next), 3);
  ASSERT_TRUE(pinned);
  EXPECT_EQ(*pinned, member);
  EXPECT_EQ(lb.connections(42, member), 1u);
  // The member's reply gets the VIP back as its source.
  auto reply = tcp(Ipv4Address::of(10, 0, 0, 20), 8080, kIpA, 40000, TcpHeader::kAck, 5000);
  ASSERT_TRUE(lb.translateReply(reply, parsed(reply), 3));
  EXPECT_EQ(parsed(reply).key.ip_src, inKey(vip));
  EXPECT_EQ(parsed(reply).key.tp_src, 80);
}

TEST_F(AdoptTest, ALocalIpTranslationTranslatesReplies) {
  using nat::DnatTable;
  const Ipv4Address local_ip = Ipv4Address::of(10, 0, 0, 99);
  {
    auto f = open();
    DnatTable dnat(clock);
    dnat.persistTo(f.get());
    auto s = tcp(kIpA, 40000, local_ip, 80, TcpHeader::kSyn);
    ASSERT_EQ(dnat.translate(s, parsed(s), kIpB), DropReason::None);
  }
  DnatTable dnat(clock);
  auto f = restart(dnat);
  auto reply = tcp(kIpB, 80, kIpA, 40000, TcpHeader::kAck, 5000);
  ASSERT_TRUE(dnat.translateReply(reply, parsed(reply)));
  EXPECT_EQ(parsed(reply).key.ip_src, inKey(local_ip));
}

TEST_F(AdoptTest, SharedStateKeepsZonesNeighboursAndConnections) {
  pipeline::Config config;
  uint16_t zone = 0;
  {
    auto f = std::shared_ptr<StateFile>(open());
    pipeline::SharedState state(clock, config, 2, f);
    state.zoneOf(11);
    zone = state.zoneOf(12);
    state.learnNeighbor(5, IpAddress::v4(203, 0, 113, 1), kB);
    auto s = tcp(kIpA, 40000, kIpB, 80, TcpHeader::kSyn);
    ASSERT_EQ(state.conntrack().commit(parsed(s), s, zone), DropReason::None);
  }
  auto f = std::shared_ptr<StateFile>(open());
  pipeline::SharedState state(clock, config, 2, f);
  EXPECT_EQ(state.adopted().zones, 2u);
  EXPECT_EQ(state.adopted().neighbors, 1u);
  EXPECT_EQ(state.adopted().connections, 1u);
  EXPECT_EQ(state.zoneOf(12), zone);
  EXPECT_NE(state.zoneOf(13), zone);  // a new port's zone is a new one
  EXPECT_EQ(state.neighbors().find(5, IpAddress::v4(203, 0, 113, 1)), kB);
}

TEST_F(AdoptTest, RecordsOfUnknownVersionsOrBadBytesAreDiscardedAndCounted) {
  {
    auto f = open();
    f->write(f->allocate(), RecordKind::Connection, 99, Payload{1});  // a future version
    std::array<uint8_t, 56> junk{};
    junk.fill(0xff);  // family 255, TCP state 255
    f->write(f->allocate(), RecordKind::Connection, 1, junk);
    f->write(f->allocate(), static_cast<RecordKind>(200), 1, Payload{1});
  }
  auto f = std::shared_ptr<StateFile>(open());
  pipeline::SharedState state(clock, pipeline::Config{}, 1, f);
  EXPECT_EQ(state.adopted().connections, 0u);
  EXPECT_EQ(state.adopted().unreadable, 3u);
  EXPECT_EQ(f->used(), 0u);
  EXPECT_EQ(state.conntrack().size(), 0u);
}

}  // namespace
}  // namespace canopy::datapath::persist
