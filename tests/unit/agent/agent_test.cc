// The agent's control side and workers through fake I/O (fake_io.h): no
// sockets, no namespaces. The host is h1 of the datapath scenario
// (testing/datapath_scenario.h); its view arrives through applyView() as the
// southbound client would hand it over. Frames go into a chosen worker's
// share of an interface and come out of whichever I/O the datapath chose.

#include "agent/agent.h"

#include <gtest/gtest.h>

#include <thread>

#include "datapath/packet/builder.h"
#include "datapath/packet/describe.h"
#include "datapath/packet/parser.h"
#include "fake_io.h"
#include "testing/datapath_scenario.h"

namespace canopy::agent {
namespace {

using namespace datapath::testing::world;
using datapath::packet::MacAddress;
using datapath::packet::PacketBuilder;
using datapath::packet::TcpHeader;
using datapath::testing::ip;
using datapath::testing::mac;
using datapath::testing::TopologyParts;
using datapath::testing::v4;
using testing::FakeIo;

HostView scenarioView() {
  auto parts = TopologyParts::of(**datapath::testing::scenario().build(1));
  HostView v;
  v.local_host = kH1;
  v.switches = parts.switches;
  v.ports = parts.ports;
  v.routers = parts.routers;
  v.groups = parts.groups;
  v.hosts = parts.hosts;
  for (const auto& f : parts.floating_ips) v.floating_ips[f.id] = f;
  return v;
}

std::string describe(const std::vector<uint8_t>& frame) {
  return datapath::packet::describeFrame(frame);
}

class AgentTest : public ::testing::Test {
 protected:
  std::unique_ptr<Agent> start(size_t workers) {
    for (const char* i : {"vm1if", "vm3if", "vm5if"}) io_.addInterface(i);
    AgentConfig config;
    config.host_name = "h1";
    config.tunnel_ip = ip("192.168.100.1");
    config.server = "";
    config.workers = workers;
    config.tick = std::chrono::milliseconds(10);
    auto a = Agent::start(clock_, config, &io_);
    EXPECT_TRUE(a) << a.error().toString();
    return a ? std::move(*a) : nullptr;
  }
  static std::vector<uint8_t> tcp(MacAddress from, MacAddress to, const char* src, const char* dst,
                                  uint16_t sport, uint16_t dport, uint8_t flags) {
    return PacketBuilder().eth(from, to).ipv4(v4(src), v4(dst)).tcp(sport, dport, flags, 1).build();
  }

  // Waits for `pred`, moving the agent's clock a tick at a time: the
  // workers count and sweep on their ticks of that clock.
  template <typename Pred>
  bool waitFor(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      clock_.advance(std::chrono::milliseconds(10));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  FakeClock clock_;
  FakeIo io_;
};

TEST_F(AgentTest, AnArpRequestIsAnsweredAndAPingDeliveredThroughTheWorker) {
  auto agent = start(1);
  ASSERT_TRUE(agent->bind("vm1if", "port-vm1"));
  ASSERT_TRUE(agent->bind("vm5if", "port-vm5"));
  ASSERT_TRUE(agent->applyView(scenarioView(), 1));

  // vm1 asks for vm5's address: answered at the edge, on vm1's interface.
  auto who_has = PacketBuilder()
                     .eth(mac(0, 1), MacAddress::broadcast())
                     .arp(1, mac(0, 1), v4("10.0.0.5"), MacAddress{}, v4("10.0.0.8"))
                     .build();
  io_.port("vm1if", 0)->inject(who_has);
  auto answers = io_.port("vm1if", 0)->waitSent(1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_NE(describe(answers[0].first).find("is-at"), std::string::npos)
      << describe(answers[0].first);

  auto ping = PacketBuilder()
                  .eth(mac(0, 1), mac(0, 5))
                  .ipv4(v4("10.0.0.5"), v4("10.0.0.8"))
                  .icmp(8, 0, 7, 1)
                  .build();
  io_.port("vm1if", 0)->inject(ping);
  auto delivered = io_.port("vm5if", 0)->waitSent(1);
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].first, ping);

  // The status adds up what the worker counted.
  ASSERT_TRUE(waitFor([&] { return agent->status()["datapath"].value("packets", 0) >= 2; }));
  auto status = agent->status();
  EXPECT_EQ(status["workers"], 1);
  bool found = false;
  for (const auto& p : status["datapath"]["ports"]) {
    if (p["interface"] == "vm5if") {
      found = true;
      EXPECT_EQ(p["tx"], 1) << p.dump();
    }
  }
  EXPECT_TRUE(found) << status.dump();
}

// A connection's first packet on worker 0, its reply on worker 1: the
// reply is allowed as established only because conntrack is shared (vm1's
// group admits no new connection from vm3's).
TEST_F(AgentTest, AConnectionsDirectionsMayRunOnDifferentWorkers) {
  auto agent = start(2);
  ASSERT_EQ(agent->workers(), 2u);
  ASSERT_TRUE(agent->bind("vm1if", "port-vm1"));
  ASSERT_TRUE(agent->bind("vm3if", "port-vm3"));
  ASSERT_TRUE(agent->applyView(scenarioView(), 1));

  io_.port("vm1if", 0)
      ->inject(tcp(mac(0, 1), kRouterNet1Mac, "10.0.0.5", "10.0.1.5", 40000, 80, TcpHeader::kSyn));
  auto syn = io_.port("vm3if", 0)->waitSent(1);
  ASSERT_EQ(syn.size(), 1u) << "the SYN reaches vm3 through worker 0's I/O";

  io_.port("vm3if", 1)
      ->inject(tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "10.0.0.5", 80, 40000,
                   TcpHeader::kSyn | TcpHeader::kAck));
  auto syn_ack = io_.port("vm1if", 1)->waitSent(1);
  ASSERT_EQ(syn_ack.size(), 1u) << "the SYN/ACK reaches vm1 through worker 1's I/O";

  // A SYN/ACK of no connection is dropped, on either worker.
  io_.port("vm3if", 1)
      ->inject(tcp(mac(0, 3), kRouterNet2Mac, "10.0.1.5", "10.0.0.5", 80, 40001,
                   TcpHeader::kSyn | TcpHeader::kAck));
  ASSERT_TRUE(waitFor([&] {
    auto drops = agent->status()["datapath"]["drops"];
    return drops.value("conntrack_not_syn", 0) >= 1;
  })) << agent->status().dump();
  EXPECT_EQ(io_.port("vm1if", 1)->sentCount(), 1u);
  EXPECT_EQ(agent->status()["datapath"]["connections"], 2);  // one per zone
}

TEST_F(AgentTest, AnInterfaceThatGoesIsLetGoAndOpenedAgainWhenItComesBack) {
  auto agent = start(2);
  ASSERT_TRUE(agent->bind("vm1if", "port-vm1"));
  ASSERT_TRUE(agent->applyView(scenarioView(), 1));
  EXPECT_EQ(io_.opened("vm1if"), 2u) << "one share per worker";
  io_.removeInterface("vm1if");
  ASSERT_TRUE(waitFor([&] { return agent->bindings()[0]["attached"] == false; }));
  EXPECT_EQ(agent->bindings()[0]["exists"], false);
  io_.addInterface("vm1if");
  ASSERT_TRUE(waitFor([&] { return agent->bindings()[0]["attached"] == true; }));
  EXPECT_EQ(io_.opened("vm1if"), 4u);
  // And it forwards again.
  auto ping = PacketBuilder()
                  .eth(mac(0, 1), mac(0, 5))
                  .ipv4(v4("10.0.0.5"), v4("10.0.0.8"))
                  .icmp(8, 0, 7, 1)
                  .build();
  ASSERT_TRUE(agent->bind("vm5if", "port-vm5"));
  io_.port("vm1if", 1)->inject(ping);
  EXPECT_EQ(io_.port("vm5if", 1)->waitSent(1).size(), 1u);
}

TEST_F(AgentTest, BadBindingsAreRefusedWithAReason) {
  auto agent = start(1);
  auto missing = agent->bind("nosuchif", "port-vm1");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::NotFound);
  ASSERT_TRUE(agent->bind("vm1if", "port-vm1"));
  auto twice = agent->bind("vm5if", "port-vm1");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code(), Errc::Conflict);
  EXPECT_FALSE(agent->unbind("vm5if"));
  EXPECT_TRUE(agent->unbind("vm1if"));
  EXPECT_TRUE(agent->bindings().empty());
}

// Nova's libvirt driver creates the tap of a port bound to this host
// ("tap" + the port id's first 11 characters): the agent attaches to it
// when it appears, and lets it go when the port leaves the host.
TEST_F(AgentTest, APortBoundHereIsAttachedWhenItsTapAppearsAndLetGoWhenItLeaves) {
  auto agent = start(1);
  ASSERT_TRUE(agent->applyView(scenarioView(), 1));
  EXPECT_TRUE(agent->bindings().empty());
  const std::string tap = tapNameOf("port-vm1");
  EXPECT_EQ(tap, "tapport-vm1");
  io_.addInterface(tap);
  ASSERT_TRUE(waitFor([&] { return agent->bindings().size() == 1; }));
  model::Json b = agent->bindings()[0];
  EXPECT_EQ(b["interface"], tap);
  EXPECT_EQ(b["port_id"], "port-vm1");
  EXPECT_EQ(b["automatic"], true);
  EXPECT_EQ(b["attached"], true);
  // It forwards: vm1's ping reaches vm5.
  ASSERT_TRUE(agent->bind("vm5if", "port-vm5"));
  io_.port(tap, 0)->inject(PacketBuilder()
                               .eth(mac(0, 1), mac(0, 5))
                               .ipv4(v4("10.0.0.5"), v4("10.0.0.8"))
                               .icmp(8, 0, 7, 1)
                               .build());
  EXPECT_EQ(io_.port("vm5if", 0)->waitSent(1).size(), 1u);

  // vm1's port moves to h2: its tap here is let go; vm5's binding by hand stays.
  HostView moved = scenarioView();
  moved.ports.at(datapath::testing::world::kVm1).host = datapath::testing::world::kH2;
  ASSERT_TRUE(agent->applyView(moved, 2));
  ASSERT_EQ(agent->bindings().size(), 1u);
  EXPECT_EQ(agent->bindings()[0]["interface"], "vm5if");
  // A port bound to another host is refused here, with the host's name.
  auto elsewhere = agent->bind(tap, "port-vm1");
  ASSERT_FALSE(elsewhere);
  EXPECT_EQ(elsewhere.error().code(), Errc::Conflict);
  EXPECT_NE(elsewhere.error().message().find("bound to host h2"), std::string::npos)
      << elsewhere.error().message();
}

}  // namespace
}  // namespace canopy::agent
