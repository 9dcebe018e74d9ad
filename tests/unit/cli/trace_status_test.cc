// `canopy trace` and `canopy status` without a server: the request body
// from the options, and the rendering of answers in the server's contract
// against tests/golden/cli/trace_*.txt and status*.txt.

#include "cli/trace_status.h"

#include <gtest/gtest.h>

#include <fstream>

#include "fakes.h"

namespace canopy::cli {
namespace {

using testing::expectGolden;

Result<std::string> resolve(const Collection& c, const std::string& name) {
  if (name.starts_with("missing")) {
    return Error(Errc::NotFound, std::string(c.noun) + " '" + name + "' could not be found.");
  }
  return std::string(c.path) + "/" + name;  // a recognisable "id"
}

TEST(TraceRequest, SourcesAndPackets) {
  struct Case {
    TraceArgs args;
    Json body;
  };
  std::vector<Case> cases = {
      {{.port = "vm1", .tcp = "443", .to = "10.0.0.7", .source_port = "40000", .reply = true},
       {{"source", {{"port_id", "ports/vm1"}}},
        {"packet",
         {{"protocol", "tcp"},
          {"destination_ip", "10.0.0.7"},
          {"destination_port", 443},
          {"source_port", 40000}}},
        {"reply", true}}},
      {{.device_id = "vm-uuid", .udp = "53", .to = "10.0.0.2"},
       {{"source", {{"device_id", "vm-uuid"}}},
        {"packet", {{"protocol", "udp"}, {"destination_ip", "10.0.0.2"}, {"destination_port", 53}}},
        {"reply", false}}},
      {{.ip = "203.0.113.50", .network = "public", .icmp = true, .to = "203.0.113.20", .ttl = "1"},
       {{"source", {{"ip_address", "203.0.113.50"}, {"network_id", "networks/public"}}},
        {"packet", {{"protocol", "icmp"}, {"destination_ip", "203.0.113.20"}, {"ttl", 1}}},
        {"reply", false}}},
      {{.port = "vm1", .arp = true, .to = "10.0.0.1"},
       {{"source", {{"port_id", "ports/vm1"}}},
        {"packet", {{"protocol", "arp"}, {"destination_ip", "10.0.0.1"}}},
        {"reply", false}}},
      {{.port = "vm1", .dhcp = true},
       {{"source", {{"port_id", "ports/vm1"}}},
        {"packet", {{"protocol", "dhcp"}}},
        {"reply", false}}},
  };
  for (const auto& c : cases) {
    auto body = traceRequest(c.args, resolve);
    ASSERT_TRUE(body) << body.error().toString();
    EXPECT_EQ(*body, (Json{{"trace", c.body}}));
  }
}

TEST(TraceRequest, MistakesAreNamed) {
  struct Case {
    TraceArgs args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{.tcp = "80", .to = "10.0.0.1"},
       "give one source: --port PORT, --device-id ID, or --ip IP --network NETWORK"},
      {{.port = "a", .device_id = "b", .icmp = true, .to = "10.0.0.1"},
       "give one source: --port PORT, --device-id ID, or --ip IP --network NETWORK"},
      {{.ip = "10.0.0.5", .icmp = true, .to = "10.0.0.1"}, "--ip and --network go together"},
      {{.port = "a", .to = "10.0.0.1"},
       "give one packet: --tcp PORT, --udp PORT, --icmp, --arp or --dhcp"},
      {{.port = "a", .tcp = "80", .icmp = true, .to = "10.0.0.1"},
       "give one packet: --tcp PORT, --udp PORT, --icmp, --arp or --dhcp"},
      {{.port = "a", .icmp = true}, "--to IP: where the packet goes"},
      {{.port = "a", .tcp = "0", .to = "10.0.0.1"}, "--tcp: 0 is not in 1..65535"},
      {{.port = "a", .udp = "dns", .to = "10.0.0.1"}, "--udp: 'dns' is not a whole number"},
      {{.port = "a", .icmp = true, .to = "10.0.0.1", .source_port = "5"},
       "--source-port goes with --tcp or --udp"},
      {{.port = "a", .icmp = true, .to = "10.0.0.1", .ttl = "256"}, "--ttl: 256 is not in 1..255"},
      {{.port = "missing-vm", .icmp = true, .to = "10.0.0.1"},
       "port 'missing-vm' could not be found."},
  };
  for (const auto& c : cases) {
    auto body = traceRequest(c.args, resolve);
    ASSERT_FALSE(body) << c.message;
    EXPECT_EQ(body.error().message(), c.message);
  }
}

// Answers in the shape of POST /canopy/v1/trace.
Json delivered() {
  return Json::parse(R"json({
    "request": "tcp 10.0.0.5:33000 -> 10.0.1.5:80 from port web1 (p-web1)",
    "steps": [
      {"host": "compute-1", "text": "ingress: port web1 (p-web1) on network app (n-app)"},
      {"host": "compute-1", "text": "security group default (sg-1): rule r-1 (egress IPv4 any protocol) allows tcp 10.0.0.5:33000 -> 10.0.1.5:80, new connection"},
      {"host": "compute-1", "text": "router edge (r-edge): 10.0.1.5 by connected 10.0.1.0/24"},
      {"host": "compute-1", "text": "tunnel to compute-12 (192.0.2.12), vni 18"},
      {"host": "compute-12", "text": "security group db (sg-2): rule r-9 (ingress IPv4 tcp 80) allows tcp 10.0.0.5:33000 -> 10.0.1.5:80, new connection"}
    ],
    "outputs": [
      {"host": "compute-1", "kind": "tunnel", "frame": "geneve vni 18 to 192.0.2.12"},
      {"host": "compute-12", "kind": "port", "port_id": "p-sql", "port_name": "sql", "frame": "fa:16:3e:00:01:02 > fa:16:3e:00:00:03 ip 10.0.0.5 > 10.0.1.5 ttl 63 tcp 33000 > 80 [S]"}
    ],
    "verdict": "delivered",
    "summary": "delivered to port sql (p-sql) on compute-12",
    "reply": {
      "request": "tcp 10.0.1.5:80 -> 10.0.0.5:33000 [S.] from port sql (p-sql)",
      "steps": [
        {"host": "compute-12", "text": "security groups (egress): reply of an established connection, allowed"},
        {"host": "compute-1", "text": "security groups (ingress): reply of an established connection, allowed"}
      ],
      "outputs": [
        {"host": "compute-1", "kind": "port", "port_id": "p-web1", "port_name": "", "frame": "ip 10.0.1.5 > 10.0.0.5 tcp 80 > 33000 [S.]"}
      ],
      "verdict": "answered",
      "summary": "answered on compute-1"
    }
  })json");
}

TEST(TraceRender, DeliveredWithReplyGolden) {
  std::string text = renderTrace(delivered());
  EXPECT_TRUE(
      text.starts_with("trace: tcp 10.0.0.5:33000 -> 10.0.1.5:80 from port web1 (p-web1)\n"
                       "  compute-1   ingress: port web1"));
  EXPECT_NE(text.find("verdict: delivered to port sql (p-sql) on compute-12\n\nreply: tcp"),
            std::string::npos);
  expectGolden("trace_delivered_reply.txt", text);
}

// What the server really answers (tests/golden/trace/*.json, written by
// tests/unit/trace against the Neutron API and the datapath) as the CLI
// shows it, in tests/golden/cli/server_trace_<name>.txt.
TEST(TraceRender, ServerAnswersGolden) {
  for (const char* name : {"same_network_ping", "routed_allowed", "security_group_drop",
                           "floating_ip_from_outside", "router_snat", "no_route", "arp", "dhcp"}) {
    std::ifstream in(std::string(CANOPY_GOLDEN_DIR) + "/trace/" + name + ".json");
    ASSERT_TRUE(in.good()) << name;
    Json answer = Json::parse(in);
    std::string text = renderTrace(answer);
    EXPECT_NE(text.find("verdict: " + answer["summary"].get<std::string>()), std::string::npos)
        << name << "\n"
        << text;
    expectGolden(std::string("server_trace_") + name + ".txt", text);
  }
}

TEST(TraceRender, DroppedGolden) {
  Json dropped = {
      {"request", "icmp 203.0.113.50 -> 203.0.113.20 from 203.0.113.50 on network public"},
      {"steps",
       {{{"host", "gw-1"}, {"text", "floating IP 203.0.113.20 -> 10.0.0.5 (port web1)"}},
        {{"host", "compute-1"},
         {"text",
          "security group web (sg-3): no ingress rule allows icmp 203.0.113.50 -> "
          "10.0.0.5 type 8 code 0"}}}},
      {"outputs", Json::array()},
      {"verdict", "dropped"},
      {"drop_reason", "security_group_ingress"},
      {"summary", "dropped on compute-1: no security group rule allows it in"}};
  expectGolden("trace_dropped.txt", renderTrace(dropped));
  // Without a summary, the verdict and its reason stand in.
  dropped.erase("summary");
  std::string text = renderTrace(dropped);
  EXPECT_TRUE(text.ends_with("verdict: dropped (security_group_ingress)\n")) << text;
}

TEST(StatusRender, AgentsUnboundAndTopDropsGolden) {
  Json status = Json::parse(R"json({
    "agents": [
      {"host": "compute-2", "tunnel_ip": "192.0.2.2", "alive": false, "static": false,
       "connected": false, "applied_version": 10, "latest_version": 12, "ports": 1,
       "gateway_capable": false, "drops": {}},
      {"host": "compute-1", "tunnel_ip": "192.0.2.1", "alive": true, "static": false,
       "connected": true, "applied_version": 12, "latest_version": 12, "ports": 3,
       "gateway_capable": true, "drops": {"security_group_ingress": 4}},
      {"host": "baremetal-gw", "tunnel_ip": "192.0.2.250", "alive": true, "static": true,
       "connected": false, "applied_version": null, "ports": 0}
    ],
    "ports_per_host": {"compute-1": 3, "compute-2": 1, "": 2},
    "drops": [
      {"reason": "security_group_ingress", "count": 40}, {"reason": "port_security", "count": 12},
      {"reason": "no_route", "count": 12}, {"reason": "ttl_exceeded", "count": 9},
      {"reason": "arp_spoof", "count": 8}, {"reason": "conntrack_invalid", "count": 7},
      {"reason": "mtu_exceeded", "count": 6}, {"reason": "no_neighbor", "count": 5},
      {"reason": "admin_down", "count": 4}, {"reason": "dhcp_spoof", "count": 3},
      {"reason": "eleventh", "count": 1}
    ]
  })json");
  std::string text = renderStatus(status);
  EXPECT_EQ(text.find("eleventh"), std::string::npos);
  EXPECT_NE(text.find("unbound ports: 2\n"), std::string::npos);
  EXPECT_NE(text.find("| compute-1    | 192.0.2.1   | yes          | 12/12   | 3     |"),
            std::string::npos)
      << text;
  expectGolden("status.txt", text);
}

}  // namespace
}  // namespace canopy::cli
