// Stateless security groups (Neutron's stateful=false): each packet by the
// rules alone, replies too; nothing is tracked for their ports.

#include <gtest/gtest.h>

#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using packet::TcpHeader;

constexpr uint32_t kStateless = 9;

class StatelessGroups : public ::testing::Test {
 protected:
  // vm2 (h2) in a stateless group that admits TCP to port 80; with
  // `replies`, it may also send TCP anywhere (its replies need that).
  void SetUp() override { build(false); }
  void build(bool replies, uint64_t version = 2) {
    auto p = TopologyParts::of(**scenario().build(1));
    topology::SecurityGroup g{.key = kStateless, .id = "sg-stateless", .name = "stateless"};
    g.stateful = false;
    g.rules.push_back({.id = "web-in",
                       .direction = topology::Direction::Ingress,
                       .protocol = 6,
                       .port_min = 80,
                       .port_max = 80});
    if (replies) {
      g.rules.push_back({.id = "tcp-out", .direction = topology::Direction::Egress, .protocol = 6});
    }
    p.groups[kStateless] = g;
    p.ports.at(kVm2).groups = {kStateless};
    world_.setTopology(p.builder(), version);
  }
  static std::vector<uint8_t> tcp(uint8_t from, uint8_t to, const char* src, const char* dst,
                                  uint16_t sport, uint16_t dport, uint8_t flags) {
    return PacketBuilder()
        .eth(mac(0, from), mac(0, to))
        .ipv4(v4(src), v4(dst))
        .tcp(sport, dport, flags, 1000)
        .build();
  }
  std::vector<World::Received> toVm2(uint16_t dport, uint8_t flags) {
    return world_.fromPort(kH1, kVm1, tcp(1, 2, "10.0.0.5", "10.0.0.6", 40000, dport, flags));
  }
  std::vector<World::Received> fromVm2(uint8_t flags) {
    return world_.fromPort(kH2, kVm2, tcp(2, 1, "10.0.0.6", "10.0.0.5", 80, 40000, flags));
  }
  static bool reached(const std::vector<World::Received>& r, uint32_t port) {
    return r.size() == 1 && r[0].port == port;
  }

  World world_;
};

TEST_F(StatelessGroups, RepliesNeedTheirOwnRule) {
  ASSERT_TRUE(reached(toVm2(80, TcpHeader::kSyn), kVm2));
  // A stateful group would let the reply out as established; this one
  // has no egress rule for it.
  EXPECT_TRUE(fromVm2(TcpHeader::kSyn | TcpHeader::kAck).empty());
  EXPECT_EQ(world_.host(kH2).counters().dropped(DropReason::SecurityGroupEgress), 1u);
  EXPECT_TRUE(toVm2(22, TcpHeader::kSyn).empty()) << "no rule admits port 22";

  build(true, 3);
  ASSERT_TRUE(reached(toVm2(80, TcpHeader::kSyn), kVm2));
  ASSERT_TRUE(reached(fromVm2(TcpHeader::kSyn | TcpHeader::kAck), kVm1));
  ASSERT_TRUE(reached(toVm2(80, TcpHeader::kAck), kVm2));
  EXPECT_EQ(world_.host(kH2).connections().size(), 0u) << "vm2's packets are not tracked";
  EXPECT_GT(world_.host(kH1).connections().size(), 0u) << "vm1's group is stateful";
}

TEST_F(StatelessGroups, PacketsOfNoKnownConnectionPassByTheRules) {
  // A segment in the middle of a connection vm2 never saw open: conntrack
  // would call it invalid; the rules admit it.
  build(true, 3);
  auto r =
      world_.fromPort(kH2, kVm2, tcp(2, 1, "10.0.0.6", "10.0.0.5", 80, 40000, TcpHeader::kAck));
  EXPECT_TRUE(r.empty()) << "vm1's own stateful group refuses it";
  EXPECT_EQ(world_.host(kH2).counters().dropped(DropReason::ConntrackNotSyn), 0u)
      << "vm2's stateless egress lets it out";
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::ConntrackNotSyn), 1u)
      << "vm1's stateful ingress stops it";
  // From vm1, whose conntrack knows the connection, to vm2: delivered.
  ASSERT_TRUE(reached(toVm2(80, TcpHeader::kSyn), kVm2));
  ASSERT_TRUE(reached(toVm2(80, TcpHeader::kAck | TcpHeader::kFin), kVm2));
}

}  // namespace
}  // namespace canopy::datapath::testing
