// Load balancers' health checks: which members a host checks, and how an
// HTTP check reads Octavia's expected codes. The checks themselves run
// against real servers in tests/e2e/load_balancer_test.sh.

#include "agent/health_checker.h"

#include <gtest/gtest.h>

#include "agent/agent.h"
#include "datapath/simulator/simulator.h"

namespace canopy::agent {
namespace {

using datapath::topology::LbListener;
using datapath::topology::LbMonitor;
using datapath::topology::LbMonitorType;

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

TEST(HealthChecker, ExpectedCodesAreOctaviasLists) {
  EXPECT_TRUE(expectedCode("200", 200));
  EXPECT_FALSE(expectedCode("200", 204));
  EXPECT_TRUE(expectedCode("200,202", 202));
  EXPECT_TRUE(expectedCode("200-204", 203));
  EXPECT_FALSE(expectedCode("200-204", 205));
  EXPECT_TRUE(expectedCode("301,200-204", 301));
  EXPECT_FALSE(expectedCode("2x0", 200));
  EXPECT_FALSE(expectedCode("", 200));
  EXPECT_FALSE(expectedCode("200", -1));
}

// h1 checks the members whose ports are bound to it, once each, by the
// address that names the port in the metadata namespace.
TEST(HealthChecker, AHostChecksItsOwnMembersOnce) {
  using namespace datapath::topology;
  TopologyBuilder b;
  b.addHost({.key = 1, .name = "h1", .tunnel_ip = ip("192.168.0.1")});
  b.addHost({.key = 2, .name = "h2", .tunnel_ip = ip("192.168.0.2")});
  b.addSwitch({.key = 1, .id = "net", .vni = 100});
  auto mac = [](uint8_t n) { return datapath::packet::MacAddress{{2, 0, 0, 0, 0, n}}; };
  b.addPort(
      {.key = 10, .id = "a", .switch_key = 1, .mac = mac(1), .ips = {ip("10.0.0.10")}, .host = 1});
  b.addPort(
      {.key = 11, .id = "b", .switch_key = 1, .mac = mac(2), .ips = {ip("10.0.0.11")}, .host = 2});
  LbListener l{.id = "l",
               .port = 80,
               .members = {{.id = "ma", .port_key = 10, .address = ip("10.0.0.10"), .port = 8080},
                           {.id = "mb", .port_key = 11, .address = ip("10.0.0.11"), .port = 8080}},
               .monitor = LbMonitor{.type = LbMonitorType::Http, .url_path = "/healthz"}};
  LbListener again = l;
  again.id = "l2";
  again.port = 81;
  LbListener unmonitored = l;
  unmonitored.id = "l3";
  unmonitored.port = 82;
  unmonitored.monitor.reset();
  unmonitored.members[0].id = "mc";
  b.addPort({.key = 20,
             .id = "vip",
             .switch_key = 1,
             .mac = mac(3),
             .ips = {ip("10.0.0.100")},
             .device_owner = "Octavia",
             .listeners = {l, again, unmonitored}});
  auto t = b.build(1);
  ASSERT_TRUE(t) << t.error().message();
  auto checks = healthChecksOf(**t, 1);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].member_id, "ma");
  EXPECT_EQ(checks[0].port, 8080);
  EXPECT_EQ(checks[0].monitor.url_path, "/healthz");
  EXPECT_EQ(checks[0].target, *datapath::simulator::metadataAddressOf({10, 0}));
  EXPECT_EQ(healthChecksOf(**t, 2).size(), 1u);
  EXPECT_EQ(healthChecksOf(**t, 2)[0].member_id, "mb");
}

}  // namespace
}  // namespace canopy::agent
