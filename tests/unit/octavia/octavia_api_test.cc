// Octavia's v2 API over a real model: what python-octaviaclient and
// octavia-tempest-plugin rely on (bodies, codes, faultstrings, the status
// tree, cascade delete), called without sockets.

#include "octavia/octavia_api.h"

#include <gtest/gtest.h>

#include "api_fixture.h"
#include "model/json.h"

namespace canopy::octavia {
namespace {

using api::Json;

class OctaviaApiTest : public api::ApiFixture {
 protected:
  void SetUp() override {
    ApiFixture::SetUp();
    lb_api_ = std::make_unique<OctaviaApi>(*state_, OctaviaConfig{}, clock_);
    network_ = createNetwork("n1");
    auto s = call("POST", "/v2.0/subnets",
                  R"({"subnet": {"network_id": ")" + network_ +
                      R"(", "ip_version": 4, "cidr": "10.0.0.0/24"}})");
    ASSERT_EQ(s.status, 201) << s.body.dump();
    subnet_ = s.body["subnet"]["id"];
  }
  void TearDown() override {
    lb_api_.reset();
    ApiFixture::TearDown();
  }

  Reply lb(const std::string& method, const std::string& path, const Json& body = nullptr,
           const std::string& project = "p1", const std::string& roles = "") {
    http::HttpRequest r;
    r.method = method;
    auto q = path.find('?');
    r.path = path.substr(0, q);
    if (q != std::string::npos) r.query = http::parseQuery(path.substr(q + 1));
    if (!body.is_null()) r.body = body.dump();
    if (!project.empty()) r.headers["x-project-id"] = project;
    if (!roles.empty()) r.headers["x-roles"] = roles;
    r.headers["host"] = "canopy.test:9696";
    auto out = lb_api_->handle(r);
    return {out.status, out.body.empty() ? Json() : Json::parse(out.body)};
  }
  static void expectFault(const Reply& r, int status, const std::string& text = "") {
    EXPECT_EQ(r.status, status) << r.body.dump();
    EXPECT_EQ(r.body["faultcode"], status < 500 ? "Client" : "Server") << r.body.dump();
    EXPECT_TRUE(r.body.contains("debuginfo")) << r.body.dump();
    if (!text.empty()) {
      EXPECT_EQ(r.body["faultstring"], text);
    }
  }
  std::string makeLoadBalancer(const std::string& project = "p1") {
    auto r = lb("POST", "/v2/lbaas/loadbalancers",
                {{"loadbalancer", {{"name", "lb"}, {"vip_subnet_id", subnet_}}}}, project);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.status == 201 ? r.body["loadbalancer"].value("id", "") : "";
  }
  std::string make(const std::string& path, const std::string& member, const Json& attrs) {
    auto r = lb("POST", path, {{member, attrs}});
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body[member].value("id", "");
  }

  std::unique_ptr<OctaviaApi> lb_api_;
  std::string network_, subnet_;
};

TEST_F(OctaviaApiTest, TheRootListsVersionsWithoutCredentials) {
  auto r = lb("GET", "/", nullptr, "");
  ASSERT_EQ(r.status, 200);
  const Json& versions = r.body["versions"];
  ASSERT_FALSE(versions.empty());
  EXPECT_EQ(versions.back()["status"], "CURRENT");
  EXPECT_EQ(versions.front()["id"], "v2.0");
  EXPECT_EQ(versions.front()["links"][0]["href"], "http://canopy.test:9696/v2");
}

TEST_F(OctaviaApiTest, ALoadBalancerGetsItsVipPortAndIsActive) {
  auto made = lb("POST", "/v2.0/lbaas/loadbalancers",
                 {{"loadbalancer", {{"name", "web"}, {"vip_subnet_id", subnet_}}}});
  ASSERT_EQ(made.status, 201) << made.body.dump();
  const Json& v = made.body["loadbalancer"];
  EXPECT_EQ(v["provisioning_status"], "PENDING_CREATE");
  EXPECT_EQ(v["operating_status"], "OFFLINE");
  EXPECT_EQ(v["provider"], "canopy");
  EXPECT_EQ(v["vip_subnet_id"], subnet_);
  EXPECT_EQ(v["vip_network_id"], network_);
  EXPECT_EQ(v["tenant_id"], "p1");
  EXPECT_EQ(v["listeners"], Json::array());
  EXPECT_FALSE(v.contains("vip_port_owned"));
  std::string address = v["vip_address"];
  EXPECT_EQ(address.rfind("10.0.0.", 0), 0u) << address;
  auto port = call("GET", "/v2.0/ports/" + v["vip_port_id"].get<std::string>(), "", "");
  ASSERT_EQ(port.status, 200);
  EXPECT_EQ(port.body["port"]["device_owner"], "Octavia");
  EXPECT_EQ(port.body["port"]["fixed_ips"][0]["ip_address"], address);

  auto shown = lb("GET", "/v2/lbaas/loadbalancers/" + v["id"].get<std::string>());
  ASSERT_EQ(shown.status, 200);
  EXPECT_EQ(shown.body["loadbalancer"]["provisioning_status"], "ACTIVE");
  EXPECT_EQ(shown.body["loadbalancer"]["operating_status"], "ONLINE");
  // A chosen address (not the one the first took at random); one that is taken.
  const std::string wanted = address == "10.0.0.77" ? "10.0.0.78" : "10.0.0.77";
  auto chosen = lb("POST", "/v2/lbaas/loadbalancers",
                   {{"loadbalancer", {{"vip_network_id", network_}, {"vip_address", wanted}}}});
  ASSERT_EQ(chosen.status, 201) << chosen.body.dump();
  EXPECT_EQ(chosen.body["loadbalancer"]["vip_address"], wanted);
  EXPECT_EQ(chosen.body["loadbalancer"]["vip_subnet_id"], subnet_);
  auto taken = lb("POST", "/v2/lbaas/loadbalancers",
                  {{"loadbalancer", {{"vip_subnet_id", subnet_}, {"vip_address", wanted}}}});
  expectFault(taken, 409);
}

TEST_F(OctaviaApiTest, BadInputGetsOctaviasCodesAndFaultstrings) {
  expectFault(lb("POST", "/v2/lbaas/loadbalancers", {{"loadbalancer", {{"name", "x"}}}}), 400,
              "Validation failure: VIP must contain one of: vip_port_id, vip_network_id, "
              "vip_subnet_id.");
  expectFault(lb("POST", "/v2/lbaas/loadbalancers",
                 {{"loadbalancer", {{"vip_subnet_id", "5b2c6e1a-0000-4000-8000-000000000000"}}}}),
              400, "Subnet 5b2c6e1a-0000-4000-8000-000000000000 not found.");
  expectFault(lb("GET", "/v2/lbaas/loadbalancers/5b2c6e1a-0000-4000-8000-000000000000"), 404,
              "Load Balancer 5b2c6e1a-0000-4000-8000-000000000000 not found.");
  std::string lbid = makeLoadBalancer();
  expectFault(
      lb("POST", "/v2/lbaas/listeners",
         {{"listener", {{"loadbalancer_id", lbid}, {"protocol", "FTP"}, {"protocol_port", 21}}}}),
      400);
  expectFault(lb("POST", "/v2/lbaas/listeners",
                 {{"listener",
                   {{"loadbalancer_id", lbid}, {"protocol", "TCP"}, {"protocol_port", 70000}}}}),
              400);
  std::string tcp = make("/v2/lbaas/listeners", "listener",
                         {{"loadbalancer_id", lbid}, {"protocol", "TCP"}, {"protocol_port", 80}});
  // HTTP is TCP's family: the same port conflicts; UDP's does not.
  expectFault(
      lb("POST", "/v2/lbaas/listeners",
         {{"listener", {{"loadbalancer_id", lbid}, {"protocol", "HTTP"}, {"protocol_port", 80}}}}),
      409,
      "Another Listener on this Load Balancer is already using protocol TCP and "
      "protocol_port 80");
  // An allowed CIDR of another family than the VIP's could never match.
  expectFault(lb("POST", "/v2/lbaas/listeners",
                 {{"listener",
                   {{"loadbalancer_id", lbid},
                    {"protocol", "TCP"},
                    {"protocol_port", 81},
                    {"allowed_cidrs", {"10.0.0.0/8", "2001:db8::/64"}}}}}),
              400);
  std::string udp = make("/v2/lbaas/listeners", "listener",
                         {{"loadbalancer_id", lbid}, {"protocol", "UDP"}, {"protocol_port", 80}});
  // What needs a proxy is the provider's 501.
  expectFault(lb("POST", "/v2/lbaas/listeners",
                 {{"listener",
                   {{"loadbalancer_id", lbid},
                    {"protocol", "TERMINATED_HTTPS"},
                    {"protocol_port", 443},
                    {"default_tls_container_ref", "x"}}}}),
              501);
  expectFault(
      lb("POST", "/v2/lbaas/pools",
         {{"pool", {{"listener_id", udp}, {"protocol", "TCP"}, {"lb_algorithm", "ROUND_ROBIN"}}}}),
      400,
      "Validation failure: The pool protocol 'TCP' is invalid while the listener protocol "
      "is 'UDP'.");
  expectFault(lb("POST", "/v2/lbaas/pools",
                 {{"pool", {{"protocol", "TCP"}, {"lb_algorithm", "ROUND_ROBIN"}}}}),
              400,
              "Validation failure: Must provide at least one of: loadbalancer_id, listener_id");
  expectFault(lb("POST", "/v2/lbaas/pools",
                 {{"pool",
                   {{"listener_id", tcp},
                    {"protocol", "HTTP"},
                    {"lb_algorithm", "ROUND_ROBIN"},
                    {"session_persistence", {{"type", "HTTP_COOKIE"}}}}}}),
              501);
  std::string pool =
      make("/v2/lbaas/pools", "pool",
           {{"listener_id", udp}, {"protocol", "UDP"}, {"lb_algorithm", "SOURCE_IP_PORT"}});
  expectFault(
      lb("POST", "/v2/lbaas/pools",
         {{"pool", {{"listener_id", udp}, {"protocol", "UDP"}, {"lb_algorithm", "ROUND_ROBIN"}}}}),
      409, "This listener already has a default pool");
  std::string members = "/v2/lbaas/pools/" + pool + "/members";
  make(members, "member",
       {{"address", "10.0.0.10"}, {"protocol_port", 53}, {"subnet_id", subnet_}});
  expectFault(lb("POST", members, {{"member", {{"address", "10.0.0.10"}, {"protocol_port", 53}}}}),
              409, "Another member on this pool is already using ip 10.0.0.10 on protocol_port 53");
  // Behind the subnet's gateway is reachable; with no gateway, it is not.
  make(members, "member",
       {{"address", "192.168.9.9"}, {"protocol_port", 53}, {"subnet_id", subnet_}});
  auto closed = call("POST", "/v2.0/subnets",
                     R"({"subnet": {"network_id": ")" + createNetwork("isolated") +
                         R"(", "ip_version": 4, "cidr": "10.7.0.0/24", "gateway_ip": null}})");
  ASSERT_EQ(closed.status, 201) << closed.body.dump();
  expectFault(lb("POST", members,
                 {{"member",
                   {{"address", "192.168.9.10"},
                    {"protocol_port", 53},
                    {"subnet_id", closed.body["subnet"]["id"]}}}}),
              400);
  expectFault(lb("POST", members,
                 {{"member", {{"address", "10.0.0.11"}, {"protocol_port", 53}, {"weight", 300}}}}),
              400);
  // A UDP pool takes UDP-CONNECT (not PING) monitors, one of them.
  expectFault(lb("POST", "/v2/lbaas/healthmonitors",
                 {{"healthmonitor",
                   {{"pool_id", pool},
                    {"type", "PING"},
                    {"delay", 5},
                    {"timeout", 3},
                    {"max_retries", 3}}}}),
              400,
              "Validation failure: The associated pool protocol is UDP, so only a "
              "UDP-CONNECT/SCTP/TCP/HTTP health monitor is supported.");
  make("/v2/lbaas/healthmonitors", "healthmonitor",
       {{"pool_id", pool},
        {"type", "UDP-CONNECT"},
        {"delay", 5},
        {"timeout", 3},
        {"max_retries", 3}});
  expectFault(lb("POST", "/v2/lbaas/healthmonitors",
                 {{"healthmonitor",
                   {{"pool_id", pool},
                    {"type", "UDP-CONNECT"},
                    {"delay", 5},
                    {"timeout", 3},
                    {"max_retries", 3}}}}),
              409, "This pool already has a health monitor");
  expectFault(lb("POST", "/v2/lbaas/loadbalancers", "not json"), 400);
}

TEST_F(OctaviaApiTest, TheStatusTreeFollowsMembersHealth) {
  std::string lbid = makeLoadBalancer();
  std::string listener =
      make("/v2/lbaas/listeners", "listener",
           {{"loadbalancer_id", lbid}, {"protocol", "HTTP"}, {"protocol_port", 80}});
  std::string pool =
      make("/v2/lbaas/pools", "pool",
           {{"listener_id", listener}, {"protocol", "HTTP"}, {"lb_algorithm", "ROUND_ROBIN"}});
  std::string member = make("/v2/lbaas/pools/" + pool + "/members", "member",
                            {{"address", "10.0.0.10"}, {"protocol_port", 8080}});
  auto tree = lb("GET", "/v2/lbaas/loadbalancers/" + lbid + "/status");
  ASSERT_EQ(tree.status, 200) << tree.body.dump();
  const Json& l = tree.body["statuses"]["loadbalancer"]["listeners"][0];
  EXPECT_EQ(l["id"], listener);
  EXPECT_EQ(l["pools"][0]["id"], pool);
  EXPECT_FALSE(l["pools"][0].contains("health_monitor"));
  EXPECT_EQ(l["pools"][0]["members"][0]["operating_status"], "NO_MONITOR");
  std::string hm =
      make("/v2/lbaas/healthmonitors", "healthmonitor",
           {{"pool_id", pool}, {"type", "HTTP"}, {"delay", 5}, {"timeout", 3}, {"max_retries", 3}});
  auto shown = lb("GET", "/v2/lbaas/healthmonitors/" + hm);
  EXPECT_EQ(shown.body["healthmonitor"]["url_path"], "/");
  EXPECT_EQ(shown.body["healthmonitor"]["expected_codes"], "200");
  EXPECT_EQ(shown.body["healthmonitor"]["http_method"], "GET");
  // Monitored, not yet checked: OFFLINE.
  tree = lb("GET", "/v2/lbaas/loadbalancers/" + lbid + "/status");
  const Json& p = tree.body["statuses"]["loadbalancer"]["listeners"][0]["pools"][0];
  EXPECT_EQ(p["health_monitor"]["id"], hm);
  EXPECT_EQ(p["members"][0]["operating_status"], "OFFLINE");
  auto m = lb("GET", "/v2/lbaas/pools/" + pool + "/members/" + member);
  EXPECT_EQ(m.body["member"]["operating_status"], "OFFLINE");
  EXPECT_FALSE(m.body["member"].contains("pool_id"));
  auto listed = lb("GET", "/v2/lbaas/pools/" + pool);
  EXPECT_EQ(listed.body["pool"]["healthmonitor_id"], hm);
  EXPECT_EQ(listed.body["pool"]["listeners"][0]["id"], listener);
  EXPECT_EQ(listed.body["pool"]["members"][0]["id"], member);
}

TEST_F(OctaviaApiTest, ListsFilterAndProjectsSeeTheirOwn) {
  std::string mine = makeLoadBalancer("p1");
  // Another project's subnet is not there for p2.
  expectFault(
      lb("POST", "/v2/lbaas/loadbalancers", {{"loadbalancer", {{"vip_subnet_id", subnet_}}}}, "p2"),
      400, "Subnet " + subnet_ + " not found.");
  std::string other = createNetwork("n2", "p2");
  ASSERT_EQ(call("POST", "/v2.0/subnets",
                 R"({"subnet": {"network_id": ")" + other +
                     R"(", "ip_version": 4, "cidr": "10.2.0.0/24"}})",
                 "p2")
                .status,
            201);
  auto made =
      lb("POST", "/v2/lbaas/loadbalancers", {{"loadbalancer", {{"vip_network_id", other}}}}, "p2");
  ASSERT_EQ(made.status, 201) << made.body.dump();
  std::string theirs = made.body["loadbalancer"]["id"];
  auto list = lb("GET", "/v2/lbaas/loadbalancers");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["loadbalancers"].size(), 1u);
  EXPECT_EQ(list.body["loadbalancers"][0]["id"], mine);
  EXPECT_EQ(list.body["loadbalancers_links"], Json::array());
  expectFault(lb("GET", "/v2/lbaas/loadbalancers/" + theirs), 403,
              "Policy does not allow this request to be performed.");
  expectFault(lb("DELETE", "/v2/lbaas/loadbalancers/" + theirs), 403);
  // The client finds objects with ?id= and ?name=.
  auto by_id = lb("GET", "/v2/lbaas/loadbalancers?id=" + mine);
  EXPECT_EQ(by_id.body["loadbalancers"].size(), 1u);
  auto by_name = lb("GET", "/v2/lbaas/loadbalancers?name=nope");
  EXPECT_EQ(by_name.body["loadbalancers"].size(), 0u);
  expectFault(lb("GET", "/v2/lbaas/loadbalancers?color=red"), 400);
  auto fields = lb("GET", "/v2/lbaas/loadbalancers?fields=id&fields=name");
  EXPECT_EQ(fields.body["loadbalancers"][0].size(), 2u);
  // Pages.
  makeLoadBalancer("p1");
  auto page = lb("GET", "/v2/lbaas/loadbalancers?limit=1");
  ASSERT_EQ(page.body["loadbalancers"].size(), 1u);
  ASSERT_EQ(page.body["loadbalancers_links"].size(), 1u);
  EXPECT_EQ(page.body["loadbalancers_links"][0]["rel"], "next");
  auto admin = lb("GET", "/v2/lbaas/loadbalancers", nullptr, "");
  (void)admin;
}

TEST_F(OctaviaApiTest, OctaviasAdministratorRoleSeesEveryProject) {
  std::string id = makeLoadBalancer("p1");
  http::HttpRequest r;
  r.method = "GET";
  r.path = "/v2/lbaas/loadbalancers/" + id;
  r.headers["x-project-id"] = "p3";
  r.headers["x-roles"] = "member";
  EXPECT_EQ(lb_api_->handle(r).status, 403);
  r.headers["x-roles"] = "member,load-balancer_admin";
  EXPECT_EQ(lb_api_->handle(r).status, 200);
}

TEST_F(OctaviaApiTest, ABatchMakesThePoolsMembersThoseListed) {
  std::string lbid = makeLoadBalancer();
  std::string pool =
      make("/v2/lbaas/pools", "pool",
           {{"loadbalancer_id", lbid}, {"protocol", "TCP"}, {"lb_algorithm", "ROUND_ROBIN"}});
  std::string members = "/v2/lbaas/pools/" + pool + "/members";
  std::string kept = make(members, "member", {{"address", "10.0.0.1"}, {"protocol_port", 80}});
  make(members, "member", {{"address", "10.0.0.2"}, {"protocol_port", 80}});
  Json batch = {{"members",
                 {{{"address", "10.0.0.1"}, {"protocol_port", 80}, {"weight", 7}},
                  {{"address", "10.0.0.3"}, {"protocol_port", 80}}}}};
  auto r = lb("PUT", members, batch);
  EXPECT_EQ(r.status, 202) << r.body.dump();
  auto listed = lb("GET", members + "?sort=address");
  ASSERT_EQ(listed.body["members"].size(), 2u) << listed.body.dump();
  EXPECT_EQ(listed.body["members"][0]["id"], kept);
  EXPECT_EQ(listed.body["members"][0]["weight"], 7);
  EXPECT_EQ(listed.body["members"][1]["address"], "10.0.0.3");
  // Adding only keeps the others; one member twice is refused.
  r = lb("PUT", members + "?additive_only=true",
         {{"members", {{{"address", "10.0.0.4"}, {"protocol_port", 80}}}}});
  EXPECT_EQ(r.status, 202) << r.body.dump();
  EXPECT_EQ(lb("GET", members).body["members"].size(), 3u);
  expectFault(lb("PUT", members,
                 {{"members",
                   {{{"address", "10.0.0.5"}, {"protocol_port", 80}},
                    {{"address", "10.0.0.5"}, {"protocol_port", 80}}}}}),
              400, "Validation failure: Member must be updated only once in the same request.");
}

TEST_F(OctaviaApiTest, DeletingCascadesOnlyWhenAsked) {
  std::string lbid = makeLoadBalancer();
  auto shown = lb("GET", "/v2/lbaas/loadbalancers/" + lbid);
  std::string vip_port = shown.body["loadbalancer"]["vip_port_id"];
  std::string listener =
      make("/v2/lbaas/listeners", "listener",
           {{"loadbalancer_id", lbid}, {"protocol", "TCP"}, {"protocol_port", 22}});
  std::string pool =
      make("/v2/lbaas/pools", "pool",
           {{"listener_id", listener}, {"protocol", "TCP"}, {"lb_algorithm", "SOURCE_IP"}});
  make("/v2/lbaas/pools/" + pool + "/members", "member",
       {{"address", "10.0.0.5"}, {"protocol_port", 22}});
  expectFault(lb("DELETE", "/v2/lbaas/loadbalancers/" + lbid), 400,
              "Validation failure: Cannot delete Load Balancer " + lbid + " - it has children");
  auto gone = lb("DELETE", "/v2/lbaas/loadbalancers/" + lbid + "?cascade=true");
  EXPECT_EQ(gone.status, 204) << gone.body.dump();
  expectFault(lb("GET", "/v2/lbaas/loadbalancers/" + lbid), 404);
  expectFault(lb("GET", "/v2/lbaas/listeners/" + listener), 404);
  expectFault(lb("GET", "/v2/lbaas/pools/" + pool), 404);
  EXPECT_EQ(call("GET", "/v2.0/ports/" + vip_port, "", "").status, 404);
  state_->read([&](const state::Tables& t) {
    EXPECT_TRUE(t.collection(kMembers).empty());
    return 0;
  });
}

TEST_F(OctaviaApiTest, UpdatesKeepWhatIsNotSent) {
  std::string lbid = makeLoadBalancer();
  std::string listener = make("/v2/lbaas/listeners", "listener",
                              {{"loadbalancer_id", lbid},
                               {"protocol", "TCP"},
                               {"protocol_port", 22},
                               {"connection_limit", 100}});
  auto changed = lb("PUT", "/v2/lbaas/listeners/" + listener, {{"listener", {{"name", "ssh"}}}});
  ASSERT_EQ(changed.status, 200) << changed.body.dump();
  EXPECT_EQ(changed.body["listener"]["provisioning_status"], "PENDING_UPDATE");
  EXPECT_EQ(changed.body["listener"]["connection_limit"], 100);
  EXPECT_EQ(changed.body["listener"]["name"], "ssh");
  auto reset =
      lb("PUT", "/v2/lbaas/listeners/" + listener, {{"listener", {{"connection_limit", nullptr}}}});
  EXPECT_EQ(reset.body["listener"]["connection_limit"], -1);
  expectFault(lb("PUT", "/v2/lbaas/listeners/" + listener, {{"listener", {{"protocol", "UDP"}}}}),
              400);
  auto off =
      lb("PUT", "/v2/lbaas/loadbalancers/" + lbid, {{"loadbalancer", {{"admin_state_up", false}}}});
  ASSERT_EQ(off.status, 200) << off.body.dump();
  EXPECT_EQ(lb("GET", "/v2/lbaas/loadbalancers/" + lbid).body["loadbalancer"]["operating_status"],
            "OFFLINE");
}

// Octavia's quotas: unlimited by default, set by an admin per project,
// enforced on create with a 403 naming the resource, reset by DELETE.
TEST_F(OctaviaApiTest, QuotasLimitAProjectsObjects) {
  auto defaults = lb("GET", "/v2/lbaas/quotas/defaults");
  ASSERT_EQ(defaults.status, 200) << defaults.body.dump();
  EXPECT_EQ(defaults.body["quota"]["load_balancer"], -1);
  expectFault(lb("PUT", "/v2/lbaas/quotas/p1", {{"quota", {{"load_balancer", 1}}}}), 403);
  auto set = lb("PUT", "/v2/lbaas/quotas/p1", {{"quota", {{"loadbalancer", 1}, {"member", 1}}}},
                "admin", "admin");
  ASSERT_EQ(set.status, 202) << set.body.dump();
  EXPECT_EQ(set.body["quota"]["load_balancer"], 1);
  EXPECT_EQ(set.body["quota"]["listener"], -1);
  expectFault(lb("PUT", "/v2/lbaas/quotas/p1", {{"quota", {{"pool", -2}}}}, "admin", "admin"), 400);
  expectFault(lb("PUT", "/v2/lbaas/quotas/p1", {{"quota", {{"bogus", 1}}}}, "admin", "admin"), 400);
  EXPECT_EQ(lb("GET", "/v2/lbaas/quotas/p1").body["quota"]["member"], 1);
  expectFault(lb("GET", "/v2/lbaas/quotas/p1", nullptr, "p2"), 403);

  std::string id = makeLoadBalancer();
  expectFault(lb("POST", "/v2/lbaas/loadbalancers",
                 {{"loadbalancer", {{"name", "second"}, {"vip_subnet_id", subnet_}}}}),
              403, "Quota has been met for resources: Load Balancer");
  std::string listener =
      make("/v2/lbaas/listeners", "listener",
           {{"protocol", "TCP"}, {"protocol_port", 80}, {"loadbalancer_id", id}});
  std::string pool =
      make("/v2/lbaas/pools", "pool",
           {{"protocol", "TCP"}, {"lb_algorithm", "ROUND_ROBIN"}, {"listener_id", listener}});
  make("/v2/lbaas/pools/" + pool + "/members", "member",
       {{"address", "10.0.0.11"}, {"protocol_port", 80}});
  expectFault(lb("POST", "/v2/lbaas/pools/" + pool + "/members",
                 {{"member", {{"address", "10.0.0.12"}, {"protocol_port", 80}}}}),
              403, "Quota has been met for resources: Member");

  auto all = lb("GET", "/v2/lbaas/quotas", nullptr, "admin", "admin");
  ASSERT_EQ(all.body["quotas"].size(), 1u) << all.body.dump();
  EXPECT_EQ(all.body["quotas"][0]["project_id"], "p1");
  EXPECT_EQ(lb("DELETE", "/v2/lbaas/quotas/p1", nullptr, "admin", "admin").status, 202);
  EXPECT_EQ(lb("GET", "/v2/lbaas/quotas/p1").body["quota"]["load_balancer"], -1);
  EXPECT_FALSE(makeLoadBalancer().empty());
}

}  // namespace
}  // namespace canopy::octavia
