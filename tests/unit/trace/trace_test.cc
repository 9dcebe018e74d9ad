// `POST /canopy/v1/trace` over a model the Neutron API wrote: three hosts
// (two computes, one gateway), a router between two tenant networks with a
// gateway to a flat external network, a web security group and a floating
// IP. Each scenario's result is compared with tests/golden/trace/<name>.json
// (ids and MACs replaced by names, so the files stay stable);
// CANOPY_UPDATE_GOLDEN=1 rewrites them. Each test also checks its verdict
// directly, so a wrong golden file cannot hide a wrong answer.

#include "trace/trace.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <regex>
#include <set>

#include "api_fixture.h"
#include "southbound/agents.h"
#include "southbound/keys.h"
#include "testing/golden.h"
#include "trace/operations.h"

namespace canopy::trace {
namespace {

using api::Json;

class TraceTest : public api::ApiFixture {
 protected:
  void SetUp() override {
    // The handler is called only after operations_ exists.
    api::ApiConfig config;
    config.canopy = [this](const http::HttpRequest& r, const model::Caller& c) {
      return operations_->handle(r, c);
    };
    boot(std::move(config));
    operations_ = std::make_unique<Operations>(*state_, nullptr, clock_);
    using southbound::putAgent;
    ASSERT_TRUE(putAgent(
        *state_,
        {.host = "compute-1", .tunnel_ip = "192.0.2.1", .physical_networks = {"physnet1"}}));
    ASSERT_TRUE(putAgent(
        *state_,
        {.host = "compute-2", .tunnel_ip = "192.0.2.2", .physical_networks = {"physnet1"}}));
    ASSERT_TRUE(putAgent(*state_, {.host = "gw-1",
                                   .tunnel_ip = "192.0.2.3",
                                   .gateway_capable = true,
                                   .physical_networks = {"physnet1"}}));
    public_ = createNetwork("public", "",
                            R"(, "router:external": true, "provider:network_type": "flat",
                                 "provider:physical_network": "physnet1")");
    subnet(public_, "public-subnet", "203.0.113.0/24", "");
    net_a_ = createNetwork("net-a");
    subnet(net_a_, "subnet-a", "10.0.0.0/24");
    net_b_ = createNetwork("net-b");
    subnet(net_b_, "subnet-b", "10.0.1.0/24");
    auto iso = createNetwork("isolated");
    subnet(iso, "subnet-iso", "10.0.9.0/24");
    // Made by the admin for p1, to fix the gateway's address.
    auto r = call("POST", "/v2.0/routers",
                  R"({"router": {"name": "r1", "project_id": "p1", "external_gateway_info":
                      {"network_id": ")" +
                      public_ + R"(", "external_fixed_ips": [{"ip_address": "203.0.113.2"}]}}})",
                  "");
    ASSERT_EQ(r.status, 201) << r.body.dump();
    std::string router = r.body["router"]["id"];
    for (const auto& s : {subnets_["subnet-a"], subnets_["subnet-b"]}) {
      auto i = call("PUT", "/v2.0/routers/" + router + "/add_router_interface",
                    R"({"subnet_id": ")" + s + "\"}");
      ASSERT_EQ(i.status, 200) << i.body.dump();
    }
    auto sg = call("POST", "/v2.0/security-groups", R"({"security_group": {"name": "web"}})");
    ASSERT_EQ(sg.status, 201) << sg.body.dump();
    std::string web = sg.body["security_group"]["id"];
    auto rule = call("POST", "/v2.0/security-group-rules",
                     R"({"security_group_rule": {"security_group_id": ")" + web +
                         R"(", "direction": "ingress", "protocol": "tcp",
                            "port_range_min": 80, "port_range_max": 80,
                            "remote_ip_prefix": "0.0.0.0/0"}})");
    ASSERT_EQ(rule.status, 201) << rule.body.dump();
    port("vm1", net_a_, "compute-1", "10.0.0.11");
    port("vm2", net_a_, "compute-2", "10.0.0.12");
    port("vm3", net_b_, "compute-2", "10.0.1.13", web);
    port("vm4", iso, "compute-1", "10.0.9.14");
    port("vm5", net_a_, "", "10.0.0.15");
    auto gw = call("GET", "/v2.0/ports?device_owner=network:router_gateway", "", "");
    ASSERT_EQ(gw.body["ports"].size(), 1u);
    auto bound = call("PUT", "/v2.0/ports/" + gw.body["ports"][0]["id"].get<std::string>(),
                      R"({"port": {"binding:host_id": "gw-1"}})", "");
    ASSERT_EQ(bound.status, 200) << bound.body.dump();
    auto fip = call("POST", "/v2.0/floatingips",
                    R"({"floatingip": {"floating_network_id": ")" + public_ +
                        R"(", "floating_ip_address": "203.0.113.50", "port_id": ")" +
                        ports_["vm3"] + R"(", "project_id": "p1"}})",
                    "");
    ASSERT_EQ(fip.status, 201) << fip.body.dump();
    auto missing = state_->read([](const state::Tables& t) { return southbound::missingKeys(t); });
    ASSERT_TRUE(southbound::assignKeys(*state_, missing));
    learnNames();
  }

  void subnet(const std::string& net, const std::string& name, const std::string& cidr,
              const std::string& project = "p1") {
    auto s = call("POST", "/v2.0/subnets",
                  R"({"subnet": {"network_id": ")" + net + R"(", "name": ")" + name +
                      R"(", "ip_version": 4, "cidr": ")" + cidr + "\"}}",
                  project);
    ASSERT_EQ(s.status, 201) << s.body.dump();
    subnets_[name] = s.body["subnet"]["id"];
  }

  // A VM port with a fixed address, bound by the admin ("" host: unbound).
  void port(const std::string& name, const std::string& net, const std::string& host,
            const std::string& ip, const std::string& group = "") {
    std::string groups = group.empty() ? "" : R"(, "security_groups": [")" + group + "\"]";
    auto p = call("POST", "/v2.0/ports",
                  R"({"port": {"network_id": ")" + net + R"(", "name": ")" + name +
                      R"(", "device_id": "server-)" + name +
                      R"(", "device_owner": "compute:nova", "fixed_ips": [{"ip_address": ")" + ip +
                      "\"}]" + groups + "}}");
    ASSERT_EQ(p.status, 201) << p.body.dump();
    ports_[name] = p.body["port"]["id"];
    if (host.empty()) return;
    auto b = call("PUT", "/v2.0/ports/" + ports_[name],
                  R"({"port": {"binding:host_id": ")" + host + "\"}}", "");
    ASSERT_EQ(b.status, 200) << b.body.dump();
  }

  // Names for every id and MAC, so golden files do not depend on them.
  void learnNames() {
    auto add = [&](const std::string& id, const std::string& name) {
      if (!id.empty()) names_.emplace_back(id, name);
    };
    auto list = [&](const std::string& path) {
      std::string key = path;
      std::replace(key.begin(), key.end(), '-', '_');
      return call("GET", "/v2.0/" + path, "", "").body[key];
    };
    std::map<std::string, std::string> networks;
    for (const auto& n : list("networks")) {
      networks[n["id"]] = n["name"];
      add(n["id"], "<" + n["name"].get<std::string>() + ">");
    }
    for (const auto& s : list("subnets")) {
      add(s["id"], "<" + s["name"].get<std::string>() + ">");
    }
    for (const auto& r : list("routers")) {
      add(r["id"], "<" + r["name"].get<std::string>() + ">");
    }
    std::map<std::string, std::string> groups;
    for (const auto& g : list("security-groups")) {
      groups[g["id"]] = g["name"];
      add(g["id"], "<sg-" + g["name"].get<std::string>() + ">");
    }
    for (const auto& r : list("security-group-rules")) {
      std::string name = "<rule-" + groups[r["security_group_id"]] + "-" +
                         r["direction"].get<std::string>() + "-" +
                         r["ethertype"].get<std::string>();
      if (r["protocol"].is_string()) name += "-" + r["protocol"].get<std::string>();
      if (r["port_range_min"].is_number())
        name += "-" + std::to_string(r["port_range_min"].get<int>());
      if (r["remote_group_id"].is_string()) name += "-from-" + groups[r["remote_group_id"]];
      add(r["id"], name + ">");
    }
    for (const auto& p : list("ports")) {
      std::string name = p["name"].get<std::string>();
      if (name.empty()) {  // "network:router_interface" on net-a: "router_interface-net-a"
        name = p["device_owner"].get<std::string>().substr(8) + "-" + networks[p["network_id"]];
      }
      add(p["id"], "<port-" + name + ">");
      add(p["mac_address"], "<mac-" + name + ">");
    }
    // Longest first, so no name replaces part of a longer one.
    std::sort(names_.begin(), names_.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }

  // The text with names for ids and MACs, and without the numbers the
  // server draws at random or in no fixed order (VNIs, keys).
  std::string named(std::string text) const {
    for (const auto& [from, to] : names_) {
      for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
        text.replace(at, from.size(), to);
        at += to.size();
      }
    }
    text = std::regex_replace(text, std::regex("VNI [0-9]+"), "VNI <n>");
    return std::regex_replace(text, std::regex("logical port [0-9]+"), "logical port <n>");
  }

  // Runs a trace as the admin; expects 200.
  Json trace(const Json& source, const Json& packet, bool reply = false) {
    Json body = {{"trace", {{"source", source}, {"packet", packet}, {"reply", reply}}}};
    auto r = call("POST", "/canopy/v1/trace", body.dump(), "");
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body.value("trace", Json::object());
  }

  // The answer as the API gives it, with names for ids: the CLI's tests
  // render these files (tests/unit/cli), so its output is checked on what
  // the server really answers.
  void golden(const std::string& name, const Json& t) {
    canopy::testing::expectGolden("trace/" + name + ".json", named(t.dump(2)) + "\n");
  }

  Json from(const std::string& vm) const { return {{"port_id", ports_.at(vm)}}; }

  void TearDown() override {
    ApiFixture::TearDown();
    operations_.reset();
  }

  std::unique_ptr<Operations> operations_;
  std::string public_, net_a_, net_b_;
  std::map<std::string, std::string> subnets_, ports_;
  std::vector<std::pair<std::string, std::string>> names_;
};

Json icmp(const std::string& to) { return {{"protocol", "icmp"}, {"destination_ip", to}}; }
Json tcp(const std::string& to, int port) {
  return {{"protocol", "tcp"}, {"destination_ip", to}, {"destination_port", port}};
}

TEST_F(TraceTest, PingOnOneNetworkAcrossHostsAndItsReply) {
  Json t = trace(from("vm1"), icmp("10.0.0.12"), true);
  golden("same_network_ping", t);
  EXPECT_EQ(t["verdict"], "delivered");
  EXPECT_EQ(t["outputs"][0]["host"], "compute-2");
  EXPECT_EQ(t["outputs"][0]["port_id"], ports_["vm2"]);
  EXPECT_EQ(t["reply"]["verdict"], "delivered");
  EXPECT_EQ(t["reply"]["outputs"][0]["port_id"], ports_["vm1"]);
}

// The simulation runs on the copy capture() made under the model's lock:
// the model may change (here, the destination goes away) while it runs.
TEST_F(TraceTest, RunsOnTheCopyMadeUnderTheLock) {
  auto request =
      parseRequest({{"trace", {{"source", from("vm1")}, {"packet", icmp("10.0.0.12")}}}});
  ASSERT_TRUE(request);
  auto captured = state_->read([&](const state::Tables& t) { return capture(t, *request); });
  ASSERT_TRUE(captured);
  // compute-1 reaches compute-2 (vm2) and gw-1 (the router's gateway), and
  // nothing else is copied.
  std::set<std::string> hosts;
  for (const auto& h : captured->hosts) hosts.insert(h.agent.host);
  EXPECT_EQ(hosts, (std::set<std::string>{"compute-1", "compute-2", "gw-1"}));
  ASSERT_EQ(call("DELETE", "/v2.0/ports/" + ports_["vm2"], "", "").status, 204);
  auto t = run(clock_, *captured, *request);
  ASSERT_TRUE(t);
  EXPECT_EQ((*t)["verdict"], "delivered");
  EXPECT_EQ((*t)["outputs"][0]["port_id"], ports_["vm2"]);
  // A trace made now sees the model without vm2.
  EXPECT_EQ(trace(from("vm1"), icmp("10.0.0.12"))["verdict"], "dropped");
}

TEST_F(TraceTest, RoutedTcpAllowedByANamedRule) {
  Json t = trace(from("vm1"), tcp("10.0.1.13", 80), true);
  golden("routed_allowed", t);
  EXPECT_EQ(t["verdict"], "delivered");
  EXPECT_EQ(t["outputs"][0]["port_id"], ports_["vm3"]);
  EXPECT_NE(named(t.dump()).find("<rule-web-ingress-IPv4-tcp-80>"), std::string::npos);
  EXPECT_EQ(t["reply"]["verdict"], "delivered");
  EXPECT_NE(named(t["reply"].dump()).find("established"), std::string::npos);
}

TEST_F(TraceTest, SecurityGroupDropNamesTheGroup) {
  Json t = trace(from("vm1"), tcp("10.0.1.13", 22));
  golden("security_group_drop", t);
  EXPECT_EQ(t["verdict"], "dropped");
  EXPECT_EQ(t["drop_reason"], "security_group_ingress");
  EXPECT_NE(named(t["steps"].dump()).find("<sg-web>"), std::string::npos);
}

TEST_F(TraceTest, FloatingIpFromOutsideAndBack) {
  Json t = trace({{"ip_address", "198.51.100.7"}, {"network_id", public_}}, tcp("203.0.113.50", 80),
                 true);
  golden("floating_ip_from_outside", t);
  EXPECT_EQ(t["verdict"], "delivered");
  EXPECT_EQ(t["outputs"][0]["port_id"], ports_["vm3"]);
  EXPECT_EQ(t["reply"]["verdict"], "delivered");
  EXPECT_EQ(t["reply"]["outputs"][0]["kind"], "uplink");
  EXPECT_NE(t["reply"]["outputs"][0]["frame"].get<std::string>().find("ip 203.0.113.50 >"),
            std::string::npos);
}

TEST_F(TraceTest, SnatThroughTheGatewayHost) {
  Json t = trace(from("vm1"), icmp("198.51.100.7"), true);
  golden("router_snat", t);
  EXPECT_EQ(t["verdict"], "delivered");
  EXPECT_EQ(t["outputs"][0]["host"], "gw-1");
  EXPECT_EQ(t["outputs"][0]["kind"], "uplink");
  EXPECT_EQ(t["reply"]["verdict"], "delivered");
  EXPECT_EQ(t["reply"]["outputs"][0]["port_id"], ports_["vm1"]);
}

TEST_F(TraceTest, SaysWhatTheKernelFastPathRuns) {
  // Without it, not a word.
  EXPECT_EQ(trace(from("vm1"), tcp("10.0.1.13", 80), true).dump().find("fast path"),
            std::string::npos);
  for (auto [host, ip] :
       {std::pair{"compute-1", "192.0.2.1"}, {"compute-2", "192.0.2.2"}, {"gw-1", "192.0.2.3"}}) {
    ASSERT_TRUE(southbound::putAgent(*state_, {.host = host,
                                               .tunnel_ip = ip,
                                               .gateway_capable = std::string(host) == "gw-1",
                                               .physical_networks = {"physnet1"},
                                               .fast_path = true}));
  }
  auto lines = [&](const Json& steps, const std::string& host) {
    std::vector<std::string> out;
    for (const auto& s : steps) {
      std::string text = s["text"];
      if (s["host"] == host && text.starts_with("fast path: ")) out.push_back(text);
    }
    return out;
  };
  using Lines = std::vector<std::string>;
  // Routed TCP to another host: the SYN's flow, as its established
  // segments would go, into the tunnel and out of it; the answer too.
  // Its handshake leaves a template on both hosts: later connections are
  // set up in the kernel.
  Json t = trace(from("vm1"), tcp("10.0.1.13", 80), true);
  const std::string later =
      "fast path: once one such handshake has passed, later connections between these ends to "
      "this port are set up in the kernel";
  EXPECT_EQ(
      lines(t["steps"], "compute-1"),
      (Lines{"fast path: once established, this flow enters the tunnel in the kernel", later}))
      << t.dump(2);
  EXPECT_EQ(
      lines(t["steps"], "compute-2"),
      (Lines{"fast path: once established, this flow leaves the tunnel in the kernel", later}));
  EXPECT_EQ(lines(t["reply"]["steps"], "compute-2"),
            Lines{"fast path: once established, this flow enters the tunnel in the kernel"});
  // SNAT: into the tunnel to the gateway host in the kernel; the
  // translation there is the agent's.
  t = trace(from("vm1"), icmp("198.51.100.7"));
  EXPECT_EQ(lines(t["steps"], "compute-1"),
            Lines{"fast path: once established, this flow enters the tunnel in the kernel"})
      << t.dump(2);
  auto snat = lines(t["steps"], "gw-1");
  ASSERT_EQ(snat.size(), 1u) << t.dump(2);
  EXPECT_TRUE(snat[0].starts_with("fast path: this flow stays in the agent: ")) << snat[0];
  // A dropped one: said so.
  t = trace(from("vm1"), tcp("10.0.1.13", 22));
  EXPECT_EQ(t["verdict"], "dropped");
  EXPECT_EQ(lines(t["steps"], "compute-2"),
            Lines{"fast path: this flow stays in the agent: dropped"})
      << t.dump(2);
  // A floating IP: in through vm3's host's uplink and out again, translated.
  t = trace({{"ip_address", "198.51.100.7"}, {"network_id", public_}}, tcp("203.0.113.50", 80),
            true);
  EXPECT_EQ(lines(t["steps"], "compute-2"),
            Lines{"fast path: once established, this flow goes from the uplink to its port in "
                  "the kernel"})
      << t.dump(2);
  EXPECT_EQ(lines(t["reply"]["steps"], "compute-2"),
            Lines{"fast path: once established, this flow leaves by the uplink in the kernel"})
      << t.dump(2);
  // And the agents' API says who runs it.
  auto a = call("GET", "/v2.0/agents/compute-1", "", "");
  ASSERT_EQ(a.status, 200) << a.body.dump();
  EXPECT_EQ(a.body["agent"]["configurations"]["fast_path"], true);
}

TEST_F(TraceTest, NoRouteOffAnIsolatedNetwork) {
  Json t = trace(from("vm4"), icmp("10.0.0.11"));
  golden("no_route", t);
  EXPECT_EQ(t["verdict"], "dropped");
  EXPECT_EQ(t["drop_reason"], "no_route");
}

TEST_F(TraceTest, ArpAndDhcpAreAnsweredOnTheHost) {
  Json arp = trace(from("vm1"), {{"protocol", "arp"}, {"destination_ip", "10.0.0.1"}});
  golden("arp", arp);
  EXPECT_EQ(arp["verdict"], "answered");
  Json dhcp = trace({{"device_id", "server-vm2"}}, {{"protocol", "dhcp"}});
  golden("dhcp", dhcp);
  EXPECT_EQ(dhcp["verdict"], "answered");
  EXPECT_NE(dhcp["summary"].get<std::string>().find("OFFER yiaddr 10.0.0.12"), std::string::npos);
}

TEST_F(TraceTest, SourcesByAddressAndUnboundPorts) {
  Json by_ip = trace({{"ip_address", "10.0.0.11"}, {"network_id", net_a_}}, icmp("10.0.0.12"));
  EXPECT_EQ(by_ip["verdict"], "delivered");
  EXPECT_NE(by_ip["request"].get<std::string>().find(ports_["vm1"]), std::string::npos);
  Json unbound = trace(from("vm5"), icmp("10.0.0.11"));
  EXPECT_EQ(unbound["verdict"], "dropped");
  EXPECT_EQ(unbound["drop_reason"], "port_unbound");
}

TEST_F(TraceTest, BadRequestsGetNeutronErrors) {
  auto post = [&](const Json& body, const std::string& project = "") {
    return call("POST", "/canopy/v1/trace", body.dump(), project);
  };
  Json ok_packet = icmp("10.0.0.12");
  expectError(post(Json::object()), 400, "HTTPBadRequest");
  expectError(post({{"trace", {{"source", Json::object()}, {"packet", ok_packet}}}}), 400,
              "HTTPBadRequest",
              "trace.source needs exactly one of port_id, device_id, or ip_address with "
              "network_id.");
  expectError(post({{"trace", {{"source", from("vm1")}, {"packet", {{"protocol", "gre"}}}}}}), 400,
              "HTTPBadRequest");
  expectError(post({{"trace", {{"source", from("vm1")}, {"packet", tcp("10.0.0.12", 70000)}}}}),
              400, "HTTPBadRequest",
              "trace.packet.destination_port must be an integer from 1 to 65535.");
  expectError(post({{"trace",
                     {{"source", from("vm1")},
                      {"packet", {{"protocol", "arp"}, {"destination_ip", "10.0.0.1"}}},
                      {"reply", true}}}}),
              400, "HTTPBadRequest");
  expectError(post({{"trace", {{"source", {{"port_id", "nope"}}}, {"packet", ok_packet}}}}), 404,
              "PortNotFound");
  expectError(post({{"trace", {{"source", from("vm1")}, {"packet", ok_packet}}}}, "p1"), 403,
              "AdminRequired");
  auto bad_json = call("POST", "/canopy/v1/trace", "{", "");
  expectError(bad_json, 400, "HTTPBadRequest");
  expectError(call("GET", "/canopy/v1/trace", "", ""), 405, "HTTPMethodNotAllowed");
  expectError(call("GET", "/canopy/v1/nothing", "", ""), 404, "HTTPNotFound");
}

// Random bodies, shaped like requests with wrong types and values
// everywhere: each gets 200 or a Neutron error, never a crash.
TEST_F(TraceTest, RandomBodiesGetAnswersOrErrors) {
  std::mt19937 rng(7);
  auto pick = [&](std::initializer_list<Json> values) {
    std::uniform_int_distribution<size_t> d(0, values.size() - 1);
    return *(values.begin() + static_cast<std::ptrdiff_t>(d(rng)));
  };
  auto value = [&] {
    return pick({Json(), Json(true), Json(-1), Json(0), Json(80), Json(70000), Json(1.5),
                 Json("tcp"), Json("icmp"), Json("arp"), Json("dhcp"), Json("10.0.0.12"),
                 Json("203.0.113.50"), Json("not an address"), Json(ports_["vm1"]), Json(public_),
                 Json("server-vm2"), Json::array(), Json::object()});
  };
  for (int i = 0; i < 400; ++i) {
    Json source = Json::object();
    for (const char* k : {"port_id", "device_id", "ip_address", "network_id"}) {
      if (rng() % 3 == 0) source[k] = value();
    }
    Json packet = Json::object();
    for (const char* k : {"protocol", "destination_ip", "destination_port", "source_port", "ttl"}) {
      if (rng() % 2 == 0) packet[k] = value();
    }
    Json trace = {{"source", rng() % 8 == 0 ? value() : source},
                  {"packet", rng() % 8 == 0 ? value() : packet}};
    if (rng() % 2 == 0) trace["reply"] = value();
    auto r = call("POST", "/canopy/v1/trace", Json{{"trace", trace}}.dump(), "");
    if (r.status == 200) {
      EXPECT_TRUE(r.body["trace"].contains("verdict")) << r.body.dump();
    } else {
      EXPECT_TRUE(r.status == 400 || r.status == 404) << r.status << " " << r.body.dump();
      EXPECT_TRUE(r.body["NeutronError"]["message"].is_string()) << r.body.dump();
    }
  }
}

TEST_F(TraceTest, StatusListsAgentsAndPortsPerHost) {
  auto r = call("GET", "/canopy/v1/status", "", "");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  const Json& s = r.body["status"];
  ASSERT_EQ(s["agents"].size(), 3u);
  EXPECT_EQ(s["agents"][0]["host"], "compute-1");
  EXPECT_EQ(s["agents"][0]["ports"], 2);  // vm1, vm4
  EXPECT_EQ(s["agents"][0]["connected"], false);
  EXPECT_EQ(s["ports_per_host"]["compute-2"], 2);
  EXPECT_EQ(s["ports_per_host"]["gw-1"], 1);  // the router's gateway
  EXPECT_EQ(s["ports_per_host"][""], 1);      // vm5
  EXPECT_TRUE(s["drops"].empty());
  expectError(call("GET", "/canopy/v1/status", "", "p1"), 403, "AdminRequired");
}

}  // namespace
}  // namespace canopy::trace
