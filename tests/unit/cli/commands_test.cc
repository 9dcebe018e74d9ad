// Whole command lines through run() against a scripted server: what each
// command sends, what it prints, and its exit status.

#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "cli/cli.h"
#include "fakes.h"

namespace canopy::cli {
namespace {

using testing::FakeTransport;
using testing::reply;
using testing::SentRequest;

constexpr const char* kBlue = "11111111-1111-4111-8111-111111111111";
constexpr const char* kWeb = "22222222-2222-4222-8222-222222222222";
constexpr const char* kVm = "33333333-3333-4333-8333-333333333333";
constexpr const char* kEdge = "44444444-4444-4444-8444-444444444444";
constexpr const char* kDefault = "55555555-5555-4555-8555-555555555555";

// Answers "METHOD target" from a table; anything else is a Neutron 404.
class Server {
 public:
  Server() {
    Json blue = {{"id", kBlue}, {"name", "blue"}, {"subnets", Json::array()}};
    Json web = {{"id", kWeb}, {"name", "web"}};
    Json vm = {{"id", kVm}, {"name", "vm"}, {"security_groups", {kDefault}}};
    Json edge = {{"id", kEdge},
                 {"name", "edge"},
                 {"external_gateway_info", {{"network_id", kBlue}, {"enable_snat", true}}}};
    on("GET /v2.0/networks?name=blue", 200, {{"networks", {blue}}});
    on(std::string("GET /v2.0/networks/") + kBlue, 200, {{"network", blue}});
    on("GET /v2.0/networks", 200,
       {{"networks", {blue, {{"id", "n2"}, {"name", "green"}, {"subnets", {"s1", "s2"}}}}}});
    on("GET /v2.0/security-groups?name=web", 200, {{"security_groups", {web}}});
    on("GET /v2.0/ports?name=vm", 200, {{"ports", {vm}}});
    on("GET /v2.0/routers?name=edge", 200, {{"routers", {edge}}});
    for (const char* empty : {"networks?name=nope", "ports?name=nope"}) {
      on(std::string("GET /v2.0/") + empty, 200,
         {{std::string(empty).substr(0, std::string(empty).find('?')), Json::array()}});
    }
  }

  void on(const std::string& key, int status, const Json& body) {
    answers_[key] = reply(status, body);
  }

  Transport& transport() { return transport_; }
  const std::vector<SentRequest>& sent() const { return transport_.sent; }
  // The last request with this method.
  const SentRequest& last(const std::string& method) const {
    for (auto it = transport_.sent.rbegin(); it != transport_.sent.rend(); ++it) {
      if (it->method == method) return *it;
    }
    static const SentRequest kNone;
    ADD_FAILURE() << "no " << method << " request";
    return kNone;
  }

 private:
  std::map<std::string, http::HttpReply> answers_;
  FakeTransport transport_{[this](const SentRequest& r) -> Result<http::HttpReply> {
    auto it = answers_.find(r.method + " " + r.target);
    if (it != answers_.end()) return it->second;
    if (r.method == "POST" || r.method == "PUT") {
      // Echo the member back, as the API does.
      Json body = r.json();
      if (body.is_object() && body.size() == 1) return reply(r.method == "POST" ? 201 : 200, body);
    }
    if (r.method == "DELETE") return reply(204, nullptr);
    return reply(404, {{"NeutronError",
                        {{"type", "HTTPNotFound"},
                         {"message", "The resource could not be found."},
                         {"detail", ""}}}});
  }};
};

struct Ran {
  int code;
  std::string out;
  std::string err;
};

Ran canopy(Server& server, const std::vector<std::string>& args) {
  Runtime runtime{
      .env = {{"OS_AUTH_TYPE", "none"}, {"OS_ENDPOINT", "http://h:9696"}},
      .transport = [&](std::chrono::milliseconds) -> Transport& { return server.transport(); }};
  std::ostringstream out, err;
  int code = run(args, runtime, out, err);
  return {code, out.str(), err.str()};
}

TEST(Commands, ListPrintsTheOpenstackColumns) {
  Server s;
  Ran r = canopy(s, {"network", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "+--------------------------------------+-------+---------+\n"
            "| ID                                   | Name  | Subnets |\n"
            "+--------------------------------------+-------+---------+\n"
            "| 11111111-1111-4111-8111-111111111111 | blue  |         |\n"
            "| n2                                   | green | s1, s2  |\n"
            "+--------------------------------------+-------+---------+\n");
  r = canopy(s, {"network", "list", "-f", "value", "-c", "Name"});
  EXPECT_EQ(r.out, "blue\ngreen\n");
  r = canopy(s, {"network", "list", "--external", "--provider-network-type", "flat"});
  EXPECT_EQ(s.sent().back().target,
            "/v2.0/networks?router%3Aexternal=true&provider%3Anetwork_type=flat");
}

TEST(Commands, CreateSendsWhatTheFlagsSay) {
  Server s;
  Ran r = canopy(s, {"subnet", "create", "s1", "--network", "blue", "--subnet-range", "10.0.0.0/24",
                     "--gateway", "none", "--no-dhcp", "--dns-nameserver", "10.0.0.53",
                     "--host-route", "destination=10.9.0.0/16,gateway=10.0.0.254", "-f", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const SentRequest& post = s.last("POST");
  EXPECT_EQ(post.target, "/v2.0/subnets");
  Json expected = {
      {"subnet",
       {{"name", "s1"},
        {"network_id", kBlue},
        {"cidr", "10.0.0.0/24"},
        {"ip_version", 4},
        {"gateway_ip", nullptr},
        {"enable_dhcp", false},
        {"dns_nameservers", {"10.0.0.53"}},
        {"host_routes", {{{"destination", "10.9.0.0/16"}, {"nexthop", "10.0.0.254"}}}}}}};
  EXPECT_EQ(post.json(), expected);
  EXPECT_EQ(Json::parse(r.out), expected["subnet"]);  // -f json: the server's object

  r = canopy(s, {"port", "create", "p", "--network", kBlue, "--fixed-ip", "ip-address=10.0.0.7",
                 "--security-group", "web", "--disable-port-security", "--host", "compute-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(s.last("POST").json()["port"], (Json{{"name", "p"},
                                                 {"network_id", kBlue},
                                                 {"fixed_ips", {{{"ip_address", "10.0.0.7"}}}},
                                                 {"security_groups", {kWeb}},
                                                 {"binding:host_id", "compute-1"},
                                                 {"port_security_enabled", false}}));
}

TEST(Commands, RuleDefaultsAndInference) {
  Server s;
  Ran r = canopy(s, {"security", "group", "rule", "create", "web", "--protocol", "tcp",
                     "--dst-port", "8000:8080", "--remote-ip", "fd00::/8"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(s.last("POST").json()["security_group_rule"], (Json{{"security_group_id", kWeb},
                                                                {"direction", "ingress"},
                                                                {"protocol", "tcp"},
                                                                {"port_range_min", 8000},
                                                                {"port_range_max", 8080},
                                                                {"ethertype", "IPv6"},
                                                                {"remote_ip_prefix", "fd00::/8"}}));
  r = canopy(s, {"security", "group", "rule", "create", "web", "--egress", "--remote-group", "web",
                 "--protocol", "any"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(
      s.last("POST").json()["security_group_rule"],
      (Json{{"security_group_id", kWeb}, {"direction", "egress"}, {"remote_group_id", kWeb}}));
  r = canopy(s, {"security", "group", "rule", "create", "web", "--dst-port", "http"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "canopy: --dst-port: 'http' is not a whole number\n");
}

TEST(Commands, SetAppendsAndUnsetRemoves) {
  Server s;
  Ran r = canopy(s, {"port", "set", "vm", "--security-group", "web", "--name", "vm-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  const SentRequest& put = s.last("PUT");
  EXPECT_EQ(put.target, std::string("/v2.0/ports/") + kVm);
  EXPECT_EQ(put.json(),
            (Json{{"port", {{"name", "vm-1"}, {"security_groups", {kDefault, kWeb}}}}}));

  r = canopy(s, {"port", "set", "vm", "--no-security-group", "--security-group", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(s.last("PUT").json(), (Json{{"port", {{"security_groups", {kWeb}}}}}));

  r = canopy(s, {"port", "unset", "vm", "--security-group", "web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "canopy: 'web' is not in security_groups\n");

  size_t before = s.sent().size();
  r = canopy(s, {"port", "set", "vm"});  // nothing to change: only the lookup
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(s.sent().size(), before + 1);
}

TEST(Commands, RouterGatewaySnatAndRoutes) {
  Server s;
  Ran r = canopy(s, {"router", "set", "edge", "--disable-snat"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(s.last("PUT").json(),
            (Json{{"router",
                   {{"external_gateway_info", {{"network_id", kBlue}, {"enable_snat", false}}}}}}));
  r = canopy(s, {"router", "unset", "edge", "--external-gateway"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(s.last("PUT").json(), (Json{{"router", {{"external_gateway_info", Json::object()}}}}));
  r = canopy(s, {"router", "add", "route", "edge", "--destination", "172.16.0.0/12", "--gateway",
                 "10.0.0.9"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(s.last("PUT").target, std::string("/v2.0/routers/") + kEdge + "/add_extraroutes");
  EXPECT_EQ(s.last("PUT").json(),
            (Json{{"router",
                   {{"routes", {{{"destination", "172.16.0.0/12"}, {"nexthop", "10.0.0.9"}}}}}}}));
  r = canopy(s, {"router", "remove", "port", "edge", "vm"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(s.last("PUT").target,
            std::string("/v2.0/routers/") + kEdge + "/remove_router_interface");
  EXPECT_EQ(s.last("PUT").json(), (Json{{"port_id", kVm}}));
}

TEST(Commands, ServerErrorsAndUsageErrors) {
  Server s;
  s.on("POST /v2.0/networks", 409,
       {{"NeutronError",
         {{"type", "OverQuota"}, {"message", "Quota exceeded for resources: ['network']."}}}});
  Ran r = canopy(s, {"network", "create", "x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "canopy: Quota exceeded for resources: ['network']. (HTTP 409)\n");

  r = canopy(s, {"network", "show", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "canopy: Network 'nope' could not be found.\n");

  r = canopy(s, {"network", "create"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("NAME is required"), std::string::npos) << r.err;
  r = canopy(s, {"network", "create", "x", "--enable", "--disable"});
  EXPECT_EQ(r.code, 2);
  r = canopy(s, {"network", "list", "-f", "yaml"});
  EXPECT_EQ(r.code, 2);
  r = canopy(s, {"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "canopy 0.1.0\n");
  r = canopy(s, {"network", "list", "-c", "Nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "canopy: no column 'Nope' (columns: ID, Name, Subnets)\n");
}

TEST(Commands, DeleteGoesOnPastFailures) {
  Server s;
  Ran r = canopy(s, {"port", "delete", "nope", "vm"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "canopy: Port 'nope' could not be found.\n"
            "canopy: 1 of 2 ports failed to delete.\n");
  EXPECT_EQ(s.last("DELETE").target, std::string("/v2.0/ports/") + kVm);
  r = canopy(s, {"port", "delete", "nope"});
  EXPECT_EQ(r.err, "canopy: Port 'nope' could not be found.\n");
}

TEST(Commands, QuotasNeedAProjectWithoutAToken) {
  Server s;
  Ran r = canopy(s, {"quota", "show"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "canopy: name the project: these credentials are not scoped to one\n");
  r = canopy(s, {"quota", "set", "p1", "--networks", "5", "--floating-ips", "-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(s.last("PUT").target, "/v2.0/quotas/p1");
  EXPECT_EQ(s.last("PUT").json(), (Json{{"quota", {{"network", 5}, {"floatingip", -1}}}}));
}

TEST(Commands, TraceSendsTheContractAndPrintsSteps) {
  Server s;
  s.on("POST /canopy/v1/trace", 200,
       {{"trace",
         {{"request", "tcp 10.0.0.5:33000 -> 10.0.0.7:80 from port vm"},
          {"steps", {{{"host", "h1"}, {"text", "port security: ok"}}}},
          {"outputs", Json::array()},
          {"verdict", "delivered"},
          {"summary", "delivered to port db on h1"}}}});
  Ran r = canopy(s, {"trace", "--port", "vm", "--tcp", "80", "--to", "10.0.0.7", "--ttl", "9"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(s.last("POST").json(), (Json{{"trace",
                                          {{"source", {{"port_id", kVm}}},
                                           {"packet",
                                            {{"protocol", "tcp"},
                                             {"destination_ip", "10.0.0.7"},
                                             {"destination_port", 80},
                                             {"ttl", 9}}},
                                           {"reply", false}}}}));
  EXPECT_EQ(r.out,
            "trace: tcp 10.0.0.5:33000 -> 10.0.0.7:80 from port vm\n"
            "  h1  port security: ok\n"
            "verdict: delivered to port db on h1\n");
  r = canopy(s, {"trace", "--port", "vm", "--tcp", "80", "--to", "10.0.0.7", "--json"});
  EXPECT_EQ(Json::parse(r.out)["verdict"], "delivered");
  r = canopy(s, {"trace", "--port", "vm", "--dhcp", "--to", "10.0.0.7"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "canopy: --to does not go with --dhcp (it is a broadcast)\n");
}

TEST(Commands, StatusAsJson) {
  Server s;
  Json status = {
      {"agents", Json::array()}, {"ports_per_host", Json::object()}, {"drops", Json::array()}};
  s.on("GET /canopy/v1/status", 200, {{"status", status}});
  Ran r = canopy(s, {"status", "-f", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out), status);
  r = canopy(s, {"status"});
  EXPECT_EQ(r.out, "agents: none\nunbound ports: 0\ntop drop reasons: none\n");
}

TEST(Commands, CompletionNeedsNoServer) {
  Server s;
  Ran r = canopy(s, {"completion", "bash"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(s.sent().empty());
  EXPECT_NE(r.out.find("complete -F _canopy canopy"), std::string::npos);
  EXPECT_NE(r.out.find("\"security group rule\") words=\"create list show delete --help\""),
            std::string::npos);
}

}  // namespace
}  // namespace canopy::cli
