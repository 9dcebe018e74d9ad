// The fabric's own behaviour beyond what the World's tests run on it: a
// tunnel to a host it does not have leaves it as an output, the verdict's
// drop comes back with the host it happened on, and a walk is bounded.

#include "datapath/fabric/fabric.h"

#include <gtest/gtest.h>

#include "datapath/packet/builder.h"
#include "testing/datapath_scenario.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using fabric::Fabric;
using packet::PacketBuilder;
using pipeline::Ingress;
using pipeline::Outputs;

std::vector<uint8_t> ping(MacAddress from, MacAddress to, const char* src, const char* dst) {
  return PacketBuilder().eth(from, to).ipv4(v4(src), v4(dst)).icmp(8, 0, 7, 1).build();
}

class FabricTest : public ::testing::Test {
 protected:
  void add(uint32_t host) {
    pipeline::Config c;
    c.host.host = host;
    fabric_.addHost(host, "h" + std::to_string(host), std::move(c), *scenario().build(1));
  }
  const topology::Port& port(uint32_t key) { return *fabric_.topology(kH1)->findPort(key); }

  FakeClock clock_;
  Fabric fabric_{clock_};
};

TEST_F(FabricTest, FollowsATunnelToTheHostItNames) {
  add(kH1);
  add(kH2);
  auto walk = fabric_.send(kH1, Ingress::fromPort(kVm1),
                           ping(port(kVm1).mac, port(kVm2).mac, "10.0.0.5", "10.0.0.6"), true);
  ASSERT_EQ(walk.outputs.size(), 1u);
  EXPECT_EQ(walk.outputs[0].host, kH2);
  EXPECT_EQ(walk.outputs[0].kind, Outputs::Kind::Port);
  EXPECT_EQ(walk.outputs[0].port, kVm2);
  EXPECT_EQ(walk.hops, 2u);
  EXPECT_EQ(walk.drop, DropReason::None);
  ASSERT_FALSE(walk.steps.empty());
  EXPECT_EQ(walk.steps.front().host, kH1);
  EXPECT_EQ(walk.steps.back().host, kH2);
}

TEST_F(FabricTest, ATunnelToAHostItLacksIsAnOutput) {
  add(kH1);  // vm6's host, h3, is not on this fabric
  auto walk = fabric_.send(kH1, Ingress::fromPort(kVm1),
                           ping(port(kVm1).mac, port(kVm6).mac, "10.0.0.5", "10.0.0.9"), true);
  ASSERT_EQ(walk.outputs.size(), 1u);
  EXPECT_EQ(walk.outputs[0].kind, Outputs::Kind::Tunnel);
  EXPECT_EQ(walk.outputs[0].remote_host, kH3);
  EXPECT_EQ(walk.outputs[0].remote.toString(), "192.168.100.3");
  EXPECT_NE(walk.steps.back().text.find("no agent there"), std::string::npos);
}

TEST_F(FabricTest, ReturnsTheDropAndWhereItHappened) {
  add(kH1);
  add(kH2);
  // vm3 (group "web") takes HTTP and ICMP: UDP from vm1 is dropped on h1.
  auto frame = PacketBuilder()
                   .eth(port(kVm1).mac, kRouterNet1Mac)
                   .ipv4(v4("10.0.0.5"), v4("10.0.1.5"))
                   .udp(5000, 53)
                   .build();
  auto walk = fabric_.send(kH1, Ingress::fromPort(kVm1), frame);
  EXPECT_TRUE(walk.outputs.empty());
  EXPECT_EQ(walk.drop_host, kH1);
  EXPECT_EQ(walk.drop, DropReason::SecurityGroupIngress);
}

TEST_F(FabricTest, AWalkIsBoundedByItsHops) {
  Fabric bounded(clock_, 1);
  pipeline::Config c;
  c.host.host = kH1;
  bounded.addHost(kH1, "h1", c, *scenario().build(1));
  c.host.host = kH2;
  bounded.addHost(kH2, "h2", c, *scenario().build(1));
  const auto* topo = bounded.topology(kH1);
  auto walk = bounded.send(
      kH1, Ingress::fromPort(kVm1),
      ping(topo->findPort(kVm1)->mac, topo->findPort(kVm2)->mac, "10.0.0.5", "10.0.0.6"));
  EXPECT_TRUE(walk.hops_exceeded);
  EXPECT_EQ(walk.hops, 1u);
  EXPECT_TRUE(walk.outputs.empty());
}

}  // namespace
}  // namespace canopy::datapath::testing
