// The Neutron API handler over a real store and model (no sockets): CRUD,
// Neutron's errors, policy, pagination links, If-Match, and a restart.

#include "api/neutron_api.h"

#include <gtest/gtest.h>

#include "api_fixture.h"

namespace canopy::api {
namespace {

using model::Json;

using NeutronApiTest = ApiFixture;

TEST_F(NeutronApiTest, CreateShowsNeutronsDefaults) {
  auto r = call("POST", "/v2.0/networks", R"({"network": {"name": "net1"}})");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  const Json& n = r.body["network"];
  EXPECT_EQ(n["name"], "net1");
  EXPECT_EQ(n["admin_state_up"], true);
  EXPECT_EQ(n["shared"], false);
  EXPECT_EQ(n["router:external"], false);
  EXPECT_EQ(n["mtu"], 1418);
  EXPECT_EQ(n["port_security_enabled"], true);
  EXPECT_EQ(n["status"], "ACTIVE");
  EXPECT_EQ(n["subnets"], Json::array());
  EXPECT_EQ(n["tags"], Json::array());
  EXPECT_EQ(n["project_id"], "p1");
  EXPECT_EQ(n["tenant_id"], "p1");
  EXPECT_EQ(n["revision_number"], 1);
  EXPECT_EQ(n["created_at"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(n["description"], "");
  EXPECT_EQ(n["id"].get<std::string>().size(), 36u);
  EXPECT_FALSE(n.contains("provider:network_type"));  // admin-only

  auto shown = call("GET", "/v2.0/networks/" + n["id"].get<std::string>());
  ASSERT_EQ(shown.status, 200);
  EXPECT_EQ(shown.body["network"], n);
}

TEST_F(NeutronApiTest, UpdateBumpsRevisionAndHonoursIfMatch) {
  std::string id = createNetwork("n");
  clock_.advance(std::chrono::seconds(5));
  auto r = call("PUT", "/v2.0/networks/" + id, R"({"network": {"name": "renamed", "mtu": 1400}})");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["network"]["name"], "renamed");
  EXPECT_EQ(r.body["network"]["mtu"], 1400);
  EXPECT_EQ(r.body["network"]["revision_number"], 2);
  EXPECT_EQ(r.body["network"]["updated_at"], "2026-01-01T00:00:05Z");

  auto stale = call("PUT", "/v2.0/networks/" + id, R"({"network": {"name": "x"}})", "p1",
                    {{"if-match", "revision_number=1"}});
  expectError(stale, 412, "RevisionNumberConstraintFailed");
  auto fresh = call("PUT", "/v2.0/networks/" + id, R"({"network": {"name": "x"}})", "p1",
                    {{"if-match", "revision_number=2"}});
  EXPECT_EQ(fresh.status, 200);
  EXPECT_EQ(fresh.body["network"]["revision_number"], 3);
}

TEST_F(NeutronApiTest, DeleteThenNotFound) {
  std::string id = createNetwork("n");
  EXPECT_EQ(call("DELETE", "/v2.0/networks/" + id).status, 204);
  expectError(call("GET", "/v2.0/networks/" + id), 404, "NetworkNotFound",
              "Network " + id + " could not be found.");
  expectError(call("DELETE", "/v2.0/networks/" + id), 404, "NetworkNotFound");
}

TEST_F(NeutronApiTest, BadRequestsGetNeutronErrors) {
  expectError(call("POST", "/v2.0/networks", R"({"network": {"nmae": "x"}})"), 400,
              "HTTPBadRequest", "Unrecognized attribute(s) 'nmae'");
  expectError(call("POST", "/v2.0/networks", R"({"network": {"admin_state_up": "perhaps"}})"), 400,
              "HTTPBadRequest");
  expectError(call("POST", "/v2.0/networks", "{not json"), 400, "MalformedRequestBody");
  expectError(call("POST", "/v2.0/networks", R"({"network": {"tags": ["a,b"]}})"), 400,
              "HTTPBadRequest");
  expectError(call("POST", "/v2.0/networks", R"({"network": {"tags": ["a", "a"]}})"), 400,
              "HTTPBadRequest");
  expectError(call("GET", "/v2.0/networks?colour=red"), 400, "HTTPBadRequest");
  expectError(call("GET", "/v2.0/nothing-here"), 404, "HTTPNotFound");
  EXPECT_EQ(call("PATCH", "/v2.0/networks").status, 405);
  // Nested far deeper than any Neutron body (copying such a value once took
  // the server's stack): refused before it is parsed.
  std::string deep =
      R"({"network": {"name": )" + std::string(60000, '[') + std::string(60000, ']') + "}}";
  expectError(call("POST", "/v2.0/networks", deep), 400, "MalformedRequestBody",
              "Malformed request body: nested deeper than 64 levels");
  std::string fine =
      R"({"network": {"name": "x", "description": ")" + std::string(100, '[') + "\"}}";
  EXPECT_EQ(call("POST", "/v2.0/networks", fine, "p2").status, 201)
      << "brackets in strings count not";
  // Nothing was stored by any of them.
  EXPECT_EQ(call("GET", "/v2.0/networks").body["networks"].size(), 0u);
}

TEST_F(NeutronApiTest, ProjectsSeeTheirOwnAndSharedNetworks) {
  std::string mine = createNetwork("mine", "p1");
  std::string theirs = createNetwork("theirs", "p2");
  std::string shared = createNetwork("shared", "", R"(, "shared": true, "project_id": "p3")");
  auto r = call("GET", "/v2.0/networks?sort_key=name", "", "p1");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body["networks"].size(), 2u);
  EXPECT_EQ(r.body["networks"][0]["name"], "mine");
  EXPECT_EQ(r.body["networks"][1]["name"], "shared");
  expectError(call("GET", "/v2.0/networks/" + theirs, "", "p1"), 404, "NetworkNotFound");
  expectError(call("DELETE", "/v2.0/networks/" + shared, "", "p1"), 403, "PolicyNotAuthorized");
  expectError(call("POST", "/v2.0/networks", R"({"network": {"project_id": "p2"}})", "p1"), 400,
              "HTTPBadRequest",
              "Specifying 'project_id' or 'tenant_id' other than the authenticated project in "
              "request requires admin privileges");
  auto admin = call("GET", "/v2.0/networks", "", "admin", {{"x-roles", "admin"}});
  EXPECT_EQ(admin.body["networks"].size(), 3u);
  EXPECT_TRUE(admin.body["networks"][0].contains("provider:network_type"));
}

TEST_F(NeutronApiTest, PaginationLinksCarryTheQuery) {
  for (const char* n : {"a", "b", "c", "d", "e"}) createNetwork(n);
  auto r = call("GET", "/v2.0/networks?sort_key=name&limit=2");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body["networks"].size(), 2u);
  auto links = r.body["networks_links"];
  ASSERT_EQ(links.size(), 2u);  // Neutron links a full page both ways
  EXPECT_EQ(links[0]["rel"], "next");
  EXPECT_EQ(links[1]["rel"], "previous");
  std::string href = links[0]["href"];
  EXPECT_TRUE(href.starts_with("http://canopy.test:9696/v2.0/networks?limit=2&sort_key=name"))
      << href;
  std::string next = href.substr(href.find("/v2.0/"));
  auto page2 = call("GET", next);
  ASSERT_EQ(page2.status, 200);
  EXPECT_EQ(page2.body["networks"][0]["name"], "c");
  EXPECT_EQ(page2.body["networks_links"].size(), 2u);
}

TEST_F(NeutronApiTest, BulkCreateIsAllOrNothing) {
  auto ok = call("POST", "/v2.0/networks", R"({"networks": [{"name": "x"}, {"name": "y"}]})");
  ASSERT_EQ(ok.status, 201);
  EXPECT_EQ(ok.body["networks"].size(), 2u);
  auto bad = call("POST", "/v2.0/networks", R"({"networks": [{"name": "z"}, {"mtu": 1}]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(call("GET", "/v2.0/networks").body["networks"].size(), 2u);
}

TEST_F(NeutronApiTest, RestartedServerServesTheSameData) {
  std::string id = createNetwork("persist");
  call("PUT", "/v2.0/networks/" + id, R"({"network": {"description": "kept"}})");
  auto before = call("GET", "/v2.0/networks/" + id);
  shutdown();
  boot();
  auto after = call("GET", "/v2.0/networks/" + id);
  ASSERT_EQ(after.status, 200);
  EXPECT_EQ(after.body, before.body);
}

TEST_F(NeutronApiTest, VersionsResourcesAndExtensions) {
  auto v = call("GET", "/");
  ASSERT_EQ(v.status, 200);
  EXPECT_EQ(v.body["versions"][0]["id"], "v2.0");
  auto res = call("GET", "/v2.0/");
  EXPECT_EQ(res.body["resources"][0]["collection"], "networks");
  auto ext = call("GET", "/v2.0/extensions");
  ASSERT_EQ(ext.status, 200);
  bool has_external = false;
  for (auto& e : ext.body["extensions"]) has_external |= e["alias"] == "external-net";
  EXPECT_TRUE(has_external);
  EXPECT_EQ(call("GET", "/v2.0/extensions/external-net").body["extension"]["alias"],
            "external-net");
  // Not implemented, so not advertised: clients probe for these.
  EXPECT_EQ(call("GET", "/v2.0/extensions/external-gateway-multihoming").status, 404);
}

TEST_F(NeutronApiTest, SubnetsBelongToTheirNetwork) {
  std::string net = createNetwork("n");
  auto r = call("POST", "/v2.0/subnets",
                R"({"subnet": {"network_id": ")" + net +
                    R"(", "ip_version": 4, "cidr": "10.0.0.0/24", "name": "s1"}})");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  const Json& s = r.body["subnet"];
  EXPECT_EQ(s["gateway_ip"], "10.0.0.1");
  EXPECT_EQ(s["allocation_pools"][0]["start"], "10.0.0.2");
  EXPECT_EQ(s["project_id"], "p1");
  std::string sid = s["id"];

  auto n = call("GET", "/v2.0/networks/" + net);
  EXPECT_EQ(n.body["network"]["subnets"], Json::array({sid}));
  EXPECT_EQ(n.body["network"]["revision_number"], 2);  // a subnet change bumps its network

  // Overlap within the network is refused; across networks it is fine.
  expectError(call("POST", "/v2.0/subnets",
                   R"({"subnet": {"network_id": ")" + net +
                       R"(", "ip_version": 4, "cidr": "10.0.0.128/25"}})"),
              400, "HTTPBadRequest");
  std::string other = createNetwork("other");
  EXPECT_EQ(call("POST", "/v2.0/subnets",
                 R"({"subnet": {"network_id": ")" + other +
                     R"(", "ip_version": 4, "cidr": "10.0.0.0/24"}})")
                .status,
            201);

  // Another project cannot put a subnet on this network.
  expectError(call("POST", "/v2.0/subnets",
                   R"({"subnet": {"network_id": ")" + net +
                       R"(", "ip_version": 4, "cidr": "10.1.0.0/24"}})",
                   "p2"),
              404, "NetworkNotFound");

  auto upd = call("PUT", "/v2.0/subnets/" + sid,
                  R"({"subnet": {"dns_nameservers": ["10.0.0.53"], "gateway_ip": "10.0.0.1"}})");
  ASSERT_EQ(upd.status, 200) << upd.body.dump();
  EXPECT_EQ(upd.body["subnet"]["dns_nameservers"], Json::array({"10.0.0.53"}));
  expectError(call("PUT", "/v2.0/subnets/" + sid, R"({"subnet": {"cidr": "10.9.0.0/24"}})"), 400,
              "HTTPBadRequest", "Cannot update read-only attribute cidr");
  expectError(call("PUT", "/v2.0/subnets/" + sid, R"({"subnet": {"gateway_ip": "10.0.0.9"}})"), 409,
              "GatewayConflictWithAllocationPools");

  // Deleting the network takes its subnets with it.
  EXPECT_EQ(call("DELETE", "/v2.0/networks/" + net).status, 204);
  expectError(call("GET", "/v2.0/subnets/" + sid), 404, "SubnetNotFound");
}

TEST_F(NeutronApiTest, BulkSubnetsOnOneNetworkAreCheckedAgainstEachOther) {
  std::string net = createNetwork("n");
  auto r = call("POST", "/v2.0/subnets",
                R"({"subnets": [{"network_id": ")" + net +
                    R"(", "ip_version": 4, "cidr": "10.0.0.0/24"},
                                  {"network_id": ")" +
                    net + R"(", "ip_version": 4, "cidr": "10.0.0.0/24"}]})");
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(call("GET", "/v2.0/subnets").body["subnets"].size(), 0u);
  auto ok = call("POST", "/v2.0/subnets",
                 R"({"subnets": [{"network_id": ")" + net +
                     R"(", "ip_version": 4, "cidr": "10.0.0.0/24"},
                                   {"network_id": ")" +
                     net + R"(", "ip_version": 6, "cidr": "fd00::/64"}]})");
  ASSERT_EQ(ok.status, 201) << ok.body.dump();
  EXPECT_EQ(call("GET", "/v2.0/networks/" + net).body["network"]["subnets"].size(), 2u);
}

TEST_F(NeutronApiTest, TagsAreSetAddedFilteredAndRemoved) {
  std::string a = createNetwork("a");
  std::string b = createNetwork("b");
  auto set = call("PUT", "/v2.0/networks/" + a + "/tags", R"({"tags": ["red", "blue", "red"]})");
  ASSERT_EQ(set.status, 200) << set.body.dump();
  EXPECT_EQ(set.body["tags"], Json::array({"red", "blue"}));
  EXPECT_EQ(call("PUT", "/v2.0/networks/" + b + "/tags/red").status, 201);
  EXPECT_EQ(call("GET", "/v2.0/networks/" + a + "/tags/blue").status, 204);
  expectError(call("GET", "/v2.0/networks/" + b + "/tags/blue"), 404, "TagNotFound");
  EXPECT_EQ(call("GET", "/v2.0/networks?tags=red,blue").body["networks"].size(), 1u);
  EXPECT_EQ(call("GET", "/v2.0/networks?tags-any=red").body["networks"].size(), 2u);
  auto shown = call("GET", "/v2.0/networks/" + a);
  EXPECT_EQ(shown.body["network"]["revision_number"], 2);
  EXPECT_EQ(call("DELETE", "/v2.0/networks/" + a + "/tags/red").status, 204);
  expectError(call("DELETE", "/v2.0/networks/" + a + "/tags/red"), 404, "TagNotFound");
  EXPECT_EQ(call("DELETE", "/v2.0/networks/" + a + "/tags").status, 204);
  EXPECT_EQ(call("GET", "/v2.0/networks/" + a + "/tags").body["tags"], Json::array());
  expectError(call("PUT", "/v2.0/networks/" + a + "/tags", R"({"tags": ["a,b"]})"), 400,
              "HTTPBadRequest");
  expectError(call("PUT", "/v2.0/networks/" + a + "/tags/x", "", "p2"), 404, "NetworkNotFound");
}

class PortTest : public NeutronApiTest {
 protected:
  void SetUp() override {
    NeutronApiTest::SetUp();
    net_ = createNetwork("n");
    subnet_ = createSubnet(net_, "10.0.0.0/24");
  }
  std::string createSubnet(const std::string& net, const std::string& cidr,
                           const std::string& extra = "", const std::string& project = "p1") {
    auto r = call("POST", "/v2.0/subnets",
                  R"({"subnet": {"network_id": ")" + net + R"(", "ip_version": )" +
                      (cidr.find(':') == std::string::npos ? "4" : "6") + R"(, "cidr": ")" + cidr +
                      "\"" + extra + "}}",
                  project);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body["subnet"].value("id", "");
  }
  Reply createPort(const std::string& extra = "", const std::string& project = "p1") {
    return call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + net_ + "\"" + extra + "}}",
                project);
  }
  std::string net_, subnet_;
};

TEST_F(PortTest, GetsAnAddressAMacAndNeutronsDefaults) {
  auto r = createPort();
  ASSERT_EQ(r.status, 201) << r.body.dump();
  const Json& p = r.body["port"];
  ASSERT_EQ(p["fixed_ips"].size(), 1u);
  EXPECT_EQ(p["fixed_ips"][0]["subnet_id"], subnet_);
  std::string ip = p["fixed_ips"][0]["ip_address"];
  EXPECT_TRUE(ip.starts_with("10.0.0.")) << ip;
  EXPECT_NE(ip, "10.0.0.1");  // the gateway is reserved
  EXPECT_TRUE(p["mac_address"].get<std::string>().starts_with("fa:16:3e:"));
  EXPECT_EQ(p["status"], "DOWN");
  EXPECT_EQ(p["admin_state_up"], true);
  EXPECT_EQ(p["port_security_enabled"], true);
  EXPECT_EQ(p["device_owner"], "");
  EXPECT_EQ(p["allowed_address_pairs"], Json::array());
  EXPECT_EQ(p["binding:vnic_type"], "normal");
  EXPECT_FALSE(p.contains("binding:host_id"));  // admin only
  auto admin =
      call("GET", "/v2.0/ports/" + p["id"].get<std::string>(), "", "admin", {{"x-roles", "admin"}});
  EXPECT_EQ(admin.body["port"]["binding:vif_type"], "unbound");
  EXPECT_EQ(admin.body["port"]["binding:host_id"], "");
}

TEST_F(PortTest, ExplicitAddressesAndTheirConflicts) {
  auto a = createPort(R"(, "fixed_ips": [{"ip_address": "10.0.0.50"}])");
  ASSERT_EQ(a.status, 201) << a.body.dump();
  EXPECT_EQ(a.body["port"]["fixed_ips"][0]["subnet_id"], subnet_);
  expectError(createPort(R"(, "fixed_ips": [{"ip_address": "10.0.0.50"}])"), 409,
              "IpAddressAlreadyAllocated");
  expectError(createPort(R"(, "fixed_ips": [{"ip_address": "10.0.0.1"}])"), 409,
              "IpAddressAlreadyAllocated");
  expectError(createPort(R"(, "fixed_ips": [{"ip_address": "10.9.0.5"}])"), 400,
              "InvalidIpForNetwork");
  expectError(createPort(R"(, "fixed_ips": [{"subnet_id": ")" + subnet_ +
                         R"(", "ip_address": "10.1.0.5"}])"),
              400, "InvalidIpForSubnet");
  expectError(
      createPort(R"(, "fixed_ips": [{"subnet_id": "6a5e2f55-0000-4000-8000-000000000000"}])"), 400,
      "HTTPBadRequest");
  auto mac = createPort(R"(, "mac_address": "FA:16:3E:AA:BB:CC")");
  ASSERT_EQ(mac.status, 201);
  EXPECT_EQ(mac.body["port"]["mac_address"], "fa:16:3e:aa:bb:cc");
  expectError(createPort(R"(, "mac_address": "fa:16:3e:aa:bb:cc")"), 409, "MacAddressInUse");
  expectError(createPort(R"(, "mac_address": "01:00:5e:00:00:01")"), 400, "HTTPBadRequest");
}

TEST_F(PortTest, AddressesComeBackWhenPortsGo) {
  auto a = createPort(R"(, "fixed_ips": [{"ip_address": "10.0.0.77"}])");
  std::string id = a.body["port"]["id"];
  expectError(call("DELETE", "/v2.0/subnets/" + subnet_), 409, "SubnetInUse");
  expectError(call("DELETE", "/v2.0/networks/" + net_), 409, "NetworkInUse");
  // Move the port to another address: the old one is free again.
  auto moved =
      call("PUT", "/v2.0/ports/" + id, R"({"port": {"fixed_ips": [{"ip_address": "10.0.0.78"}]}})");
  ASSERT_EQ(moved.status, 200) << moved.body.dump();
  EXPECT_EQ(moved.body["port"]["fixed_ips"][0]["ip_address"], "10.0.0.78");
  EXPECT_EQ(createPort(R"(, "fixed_ips": [{"ip_address": "10.0.0.77"}])").status, 201);
  EXPECT_EQ(call("DELETE", "/v2.0/ports/" + id).status, 204);
  EXPECT_EQ(createPort(R"(, "fixed_ips": [{"ip_address": "10.0.0.78"}])").status, 201);
}

TEST_F(PortTest, ExhaustionIsIpAddressGenerationFailure) {
  std::string small_net = createNetwork("small");
  createSubnet(small_net, "192.168.9.0/29");  // .2 - .6: five addresses
  for (int i = 0; i < 5; ++i) {
    auto r = call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + small_net + "\"}}");
    ASSERT_EQ(r.status, 201) << r.body.dump();
  }
  expectError(call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + small_net + "\"}}"), 409,
              "IpAddressGenerationFailure",
              "No more IP addresses available on network " + small_net + ".");
}

TEST_F(PortTest, SlaacAddressesAreEui64) {
  createSubnet(net_, "fd00:1::/64", R"(, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac")");
  auto r = createPort(R"(, "mac_address": "fa:16:3e:11:22:33")");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  ASSERT_EQ(r.body["port"]["fixed_ips"].size(), 2u);
  std::vector<std::string> ips;
  for (auto& f : r.body["port"]["fixed_ips"]) ips.push_back(f["ip_address"]);
  EXPECT_NE(std::find(ips.begin(), ips.end(), "fd00:1::f816:3eff:fe11:2233"), ips.end())
      << r.body.dump();
}

TEST_F(PortTest, PortSecurityRules) {
  expectError(createPort(R"(, "security_groups": ["x"])"), 400, "HTTPBadRequest");
  auto groups = call("GET", "/v2.0/security-groups");
  std::string sg = groups.body["security_groups"][0]["id"];
  auto r = createPort(R"(, "port_security_enabled": false, "security_groups": [")" + sg + "\"]");
  expectError(r, 409, "PortSecurityAndIPRequiredForSecurityGroups");
  std::string open_net = createNetwork("open", "p1", R"(, "port_security_enabled": false)");
  auto p = call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + open_net + "\"}}");
  ASSERT_EQ(p.status, 201);
  EXPECT_EQ(p.body["port"]["port_security_enabled"], false);  // inherited from the network
  EXPECT_EQ(p.body["port"]["security_groups"], Json::array());
}

TEST_F(PortTest, OtherProjectsPortsOnASharedNetwork) {
  std::string shared = createNetwork("shared", "", R"(, "shared": true, "project_id": "ops")");
  createSubnet(shared, "172.16.0.0/24", "", /*project=*/"");  // the admin
  auto r = call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + shared + "\"}}", "p2");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  EXPECT_EQ(r.body["port"]["project_id"], "p2");
  expectError(createPort("", "p2"), 404, "NetworkNotFound");  // p1's private network
}

class SecurityGroupTest : public PortTest {
 protected:
  Reply rule(const std::string& body, const std::string& project = "p1") {
    return call("POST", "/v2.0/security-group-rules", R"({"security_group_rule": )" + body + "}",
                project);
  }
  std::string group(const std::string& name, const std::string& project = "p1") {
    auto r = call("POST", "/v2.0/security-groups",
                  R"({"security_group": {"name": ")" + name + "\"}}", project);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body["security_group"].value("id", "");
  }
};

TEST_F(SecurityGroupTest, DefaultGroupOnFirstUseWithNeutronsRules) {
  auto r = call("GET", "/v2.0/security-groups");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body["security_groups"].size(), 1u);
  const Json& g = r.body["security_groups"][0];
  EXPECT_EQ(g["name"], "default");
  EXPECT_FALSE(g.contains("canopy:default"));
  ASSERT_EQ(g["security_group_rules"].size(), 4u);
  int ingress_from_self = 0, egress_any = 0;
  for (auto& rl : g["security_group_rules"]) {
    if (rl["direction"] == "ingress" && rl["remote_group_id"] == g["id"]) ++ingress_from_self;
    if (rl["direction"] == "egress" && rl["remote_group_id"].is_null() &&
        rl["protocol"].is_null()) {
      ++egress_any;
    }
  }
  EXPECT_EQ(ingress_from_self, 2);
  EXPECT_EQ(egress_any, 2);
  // Listing again does not make another; a port gets it when none is named.
  EXPECT_EQ(call("GET", "/v2.0/security-groups").body["security_groups"].size(), 1u);
  auto port = createPort();
  EXPECT_EQ(port.body["port"]["security_groups"], Json::array({g["id"]}));
  // Another project has a default of its own, made by its first port.
  std::string shared = createNetwork("shared", "", R"(, "shared": true, "project_id": "ops")");
  auto other = call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + shared + "\"}}", "p2");
  ASSERT_EQ(other.status, 201) << other.body.dump();
  EXPECT_NE(other.body["port"]["security_groups"][0], g["id"]);
  EXPECT_EQ(call("GET", "/v2.0/security-groups", "", "p2").body["security_groups"].size(), 1u);
}

TEST_F(SecurityGroupTest, RulesAreCheckedAndDuplicatesRefused) {
  std::string web = group("web");
  auto created = call("GET", "/v2.0/security-groups/" + web);
  EXPECT_EQ(created.body["security_group"]["security_group_rules"].size(), 2u);  // egress
  std::string base = R"({"security_group_id": ")" + web + R"(", "direction": "ingress", )";
  auto ok = rule(base + R"("protocol": "TCP", "port_range_min": 80, "port_range_max": 80,
                          "remote_ip_prefix": "10.1.2.3/16"})");
  ASSERT_EQ(ok.status, 201) << ok.body.dump();
  EXPECT_EQ(ok.body["security_group_rule"]["protocol"], "tcp");
  EXPECT_EQ(ok.body["security_group_rule"]["remote_ip_prefix"], "10.1.0.0/16");
  expectError(rule(base + R"("protocol": "6", "port_range_min": 80, "port_range_max": 80,
                             "remote_ip_prefix": "10.1.0.0/16"})"),
              409, "SecurityGroupRuleExists");
  expectError(rule(base + R"("protocol": "tcp", "port_range_min": 90, "port_range_max": 80})"), 400,
              "SecurityGroupInvalidPortRange");
  expectError(rule(base + R"("port_range_min": 22, "port_range_max": 22})"), 400,
              "SecurityGroupProtocolRequiredWithPorts");
  expectError(rule(base + R"("protocol": "icmp", "port_range_min": 300})"), 400,
              "SecurityGroupInvalidIcmpValue");
  expectError(rule(base + R"("remote_ip_prefix": "fd00::/64"})"), 400,
              "SecurityGroupConflictingEthertypeAndCidr");
  expectError(
      rule(base + R"("remote_ip_prefix": "10.0.0.0/8", "remote_group_id": ")" + web + "\"}"), 400,
      "SecurityGroupRemoteGroupAndRemoteIpPrefix");
  expectError(rule(base + R"("protocol": "bogus"})"), 400, "HTTPBadRequest");
  expectError(rule(R"({"security_group_id": "6a5e2f55-0000-4000-8000-000000000000",
                       "direction": "ingress"})"),
              404, "SecurityGroupNotFound",
              "Security group 6a5e2f55-0000-4000-8000-000000000000 does not exist");
  expectError(rule(base + R"("protocol": "udp"})", "p2"), 404, "SecurityGroupNotFound");
  auto shown = call("GET", "/v2.0/security-groups/" + web);
  EXPECT_EQ(shown.body["security_group"]["security_group_rules"].size(), 3u);
  EXPECT_EQ(shown.body["security_group"]["revision_number"], 2);
}

TEST_F(NeutronApiTest, MeteringLabelsAndRulesAreAdminsWithNeutronsChecks) {
  auto label = call("POST", "/v2.0/metering/metering-labels",
                    R"({"metering_label": {"name": "out", "tenant_id": "p1"}})", "");
  ASSERT_EQ(label.status, 201) << label.body.dump();
  EXPECT_EQ(label.body["metering_label"]["shared"], false);
  std::string id = label.body["metering_label"]["id"];
  auto rule = [&](const std::string& fields, const std::string& project = "") {
    return call(
        "POST", "/v2.0/metering/metering-label-rules",
        R"({"metering_label_rule": {"metering_label_id": ")" + id + R"(", )" + fields + "}}",
        project);
  };
  auto r1 = rule(R"("direction": "egress", "remote_ip_prefix": "0.0.0.0/0")");
  ASSERT_EQ(r1.status, 201) << r1.body.dump();
  EXPECT_EQ(r1.body["metering_label_rule"]["excluded"], false);
  EXPECT_TRUE(r1.body["metering_label_rule"]["source_ip_prefix"].is_null());
  expectError(rule(R"("direction": "egress", "remote_ip_prefix": "10.0.0.0/8")"), 409,
              "MeteringLabelRuleOverlaps",
              "Metering label rule with remote_ip_prefix 10.0.0.0/8 overlaps another.");
  // Excluded, or the other direction: no overlap.
  EXPECT_EQ(
      rule(R"("direction": "egress", "excluded": true, "remote_ip_prefix": "10.0.0.0/8")").status,
      201);
  EXPECT_EQ(rule(R"("direction": "ingress", "source_ip_prefix": "10.0.0.0/8")").status, 201);
  expectError(rule(R"("direction": "ingress")"), 400, "HTTPBadRequest");
  expectError(rule(R"("direction": "ingress", "remote_ip_prefix": "10.1.0.0/16",
                      "destination_ip_prefix": "10.2.0.0/16")"),
              400, "HTTPBadRequest");
  expectError(rule(R"("direction": "in", "remote_ip_prefix": "10.1.0.0/16")"), 400,
              "HTTPBadRequest");
  expectError(rule(R"("direction": "ingress", "remote_ip_prefix": "10.1.0.300/16")"), 400,
              "HTTPBadRequest");
  // Admin only: a project neither sees nor makes them.
  EXPECT_EQ(call("GET", "/v2.0/metering/metering-labels").body["metering_labels"].size(), 0u);
  expectError(call("GET", "/v2.0/metering/metering-labels/" + id), 404, "MeteringLabelNotFound");
  expectError(
      call("POST", "/v2.0/metering/metering-labels", R"({"metering_label": {"name": "mine"}})"),
      403, "PolicyNotAuthorized");
  expectError(rule(R"("direction": "ingress", "remote_ip_prefix": "10.9.0.0/16")", "p1"), 403,
              "PolicyNotAuthorized");
  // Its rules go with it.
  EXPECT_EQ(call("GET", "/v2.0/metering/metering-label-rules", "", "")
                .body["metering_label_rules"]
                .size(),
            3u);
  EXPECT_EQ(call("DELETE", "/v2.0/metering/metering-labels/" + id, "", "").status, 204);
  EXPECT_EQ(call("GET", "/v2.0/metering/metering-label-rules", "", "")
                .body["metering_label_rules"]
                .size(),
            0u);
}

TEST_F(NeutronApiTest, QosPoliciesAndRulesAreAdminsAndProjectsUseThoseSharedWithThem) {
  auto made = call("POST", "/v2.0/qos/policies", R"({"policy": {"name": "gold"}})", "");
  ASSERT_EQ(made.status, 201) << made.body.dump();
  std::string id = made.body["policy"]["id"];
  EXPECT_EQ(made.body["policy"]["rules"], Json::array());
  expectError(call("POST", "/v2.0/qos/policies", R"({"policy": {"name": "mine"}})"), 403,
              "PolicyNotAuthorized");
  auto rules = [&](const std::string& type) { return "/v2.0/qos/policies/" + id + "/" + type; };
  auto limit = call("POST", rules("bandwidth_limit_rules"),
                    R"({"bandwidth_limit_rule": {"max_kbps": 10000}})", "");
  ASSERT_EQ(limit.status, 201) << limit.body.dump();
  EXPECT_EQ(limit.body["bandwidth_limit_rule"]["direction"], "egress");
  EXPECT_EQ(limit.body["bandwidth_limit_rule"]["max_burst_kbps"], 0);
  expectError(call("POST", rules("bandwidth_limit_rules"),
                   R"({"bandwidth_limit_rule": {"max_kbps": 5}})", ""),
              409, "NeutronDbObjectDuplicateEntry");
  EXPECT_EQ(call("POST", rules("bandwidth_limit_rules"),
                 R"({"bandwidth_limit_rule": {"max_kbps": 5, "direction": "ingress"}})", "")
                .status,
            201);
  expectError(call("POST", rules("bandwidth_limit_rules"),
                   R"({"bandwidth_limit_rule": {"max_kbps": -1, "direction": "ingress"}})", ""),
              400, "HTTPBadRequest");
  expectError(
      call("POST", rules("dscp_marking_rules"), R"({"dscp_marking_rule": {"dscp_mark": 58}})", ""),
      400, "HTTPBadRequest");
  expectError(call("POST", rules("minimum_bandwidth_rules"),
                   R"({"minimum_bandwidth_rule": {"min_kbps": 20000}})", ""),
              409, "QoSRuleParameterConflict");
  EXPECT_EQ(
      call("POST", rules("dscp_marking_rules"), R"({"dscp_marking_rule": {"dscp_mark": 26}})", "")
          .status,
      201);
  auto shown = call("GET", "/v2.0/qos/policies/" + id, "", "");
  ASSERT_EQ(shown.body["policy"]["rules"].size(), 3u);
  EXPECT_EQ(shown.body["policy"]["rules"][2]["type"], "dscp_marking");
  EXPECT_EQ(shown.body["policy"]["revision_number"], 4);
  // Not shared: the project neither sees it nor sets it on its ports.
  expectError(call("GET", "/v2.0/qos/policies/" + id), 404, "QosPolicyNotFound");
  auto net = call("POST", "/v2.0/networks", R"({"network": {"name": "n"}})");
  std::string net_id = net.body["network"]["id"];
  expectError(
      call("PUT", "/v2.0/networks/" + net_id, R"({"network": {"qos_policy_id": ")" + id + R"("}})"),
      404, "QosPolicyNotFound");
  // An admin sets it; the project may not take it off until it is shared.
  ASSERT_EQ(call("PUT", "/v2.0/networks/" + net_id,
                 R"({"network": {"qos_policy_id": ")" + id + R"("}})", "")
                .status,
            200);
  expectError(call("PUT", "/v2.0/networks/" + net_id, R"({"network": {"qos_policy_id": null}})"),
              403, "PolicyRemoveAuthorizationError");
  expectError(call("DELETE", "/v2.0/qos/policies/" + id, "", ""), 409, "QosPolicyInUse");
  // Unsharing a policy a project uses through the share is refused.
  ASSERT_EQ(call("PUT", "/v2.0/qos/policies/" + id, R"({"policy": {"shared": true}})", "").status,
            200);
  EXPECT_EQ(call("GET", "/v2.0/qos/policies/" + id).body["policy"]["shared"], true);
  auto port =
      call("POST", "/v2.0/ports",
           R"({"port": {"network_id": ")" + net_id + R"(", "qos_policy_id": ")" + id + R"("}})");
  ASSERT_EQ(port.status, 201) << port.body.dump();
  expectError(call("PUT", "/v2.0/qos/policies/" + id, R"({"policy": {"shared": false}})", ""), 409,
              "RbacPolicyInUse");
  // Rule types: everyone lists them, admins see their parameters.
  auto types = call("GET", "/v2.0/qos/rule-types");
  ASSERT_EQ(types.status, 200);
  EXPECT_EQ(types.body["rule_types"][0], Json({{"type", "bandwidth_limit"}}));
  expectError(call("GET", "/v2.0/qos/rule-types/dscp_marking"), 403, "PolicyNotAuthorized");
  auto dscp = call("GET", "/v2.0/qos/rule-types/dscp_marking", "", "");
  EXPECT_EQ(dscp.body["rule_type"]["drivers"][0]["supported_parameters"][0]["parameter_values"][1],
            8);
}

TEST_F(NeutronApiTest, TrunksBindTheirSubportsWhereTheParentIsAndHoldTheirPorts) {
  auto net = [&](const char* name) {
    auto n =
        call("POST", "/v2.0/networks", R"({"network": {"name": ")" + std::string(name) + R"("}})");
    std::string id = n.body["network"]["id"];
    call("POST", "/v2.0/subnets",
         R"({"subnet": {"network_id": ")" + id + R"(", "ip_version": 4, "cidr": "10.)" +
             std::to_string(n.body["network"]["name"] == "a" ? 1 : 2) + R"(.0.0/24"}})");
    return id;
  };
  std::string a = net("a"), b = net("b");
  auto port = [&](const std::string& network) {
    return call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + network + R"("}})")
        .body["port"];
  };
  Json parent = port(a), sub = port(b), other = port(b);
  std::string parent_id = parent["id"], sub_id = sub["id"];
  auto trunk = call("POST", "/v2.0/trunks",
                    R"({"trunk": {"port_id": ")" + parent_id + R"(", "sub_ports": [{"port_id": ")" +
                        sub_id + R"(", "segmentation_type": "vlan", "segmentation_id": 101}]}})");
  ASSERT_EQ(trunk.status, 201) << trunk.body.dump();
  std::string trunk_id = trunk.body["trunk"]["id"];
  EXPECT_EQ(trunk.body["trunk"]["status"], "DOWN");
  auto shown = call("GET", "/v2.0/ports/" + parent_id);
  EXPECT_EQ(shown.body["port"]["trunk_details"]["trunk_id"], trunk_id);
  EXPECT_EQ(shown.body["port"]["trunk_details"]["sub_ports"][0]["mac_address"], sub["mac_address"]);
  auto s = call("GET", "/v2.0/ports/" + sub_id).body["port"];
  EXPECT_EQ(s["device_owner"], "trunk:subport");
  EXPECT_EQ(s["device_id"], trunk_id);
  // Bound with its parent, moved with it.
  call("PUT", "/v2.0/ports/" + parent_id, R"({"port": {"binding:host_id": "h1"}})", "");
  EXPECT_EQ(call("GET", "/v2.0/ports/" + sub_id, "", "").body["port"]["binding:host_id"], "h1");
  call("PUT", "/v2.0/ports/" + parent_id, R"({"port": {"binding:host_id": "h2"}})", "");
  EXPECT_EQ(call("GET", "/v2.0/ports/" + sub_id, "", "").body["port"]["binding:host_id"], "h2");
  // Its ports stay while it holds them; a VLAN once; a port in one trunk.
  expectError(call("DELETE", "/v2.0/ports/" + sub_id), 409, "PortInUseAsSubPort");
  expectError(call("DELETE", "/v2.0/ports/" + parent_id), 409, "PortInUseAsTrunkParent");
  auto add = [&](const std::string& p, int vid) {
    return call("PUT", "/v2.0/trunks/" + trunk_id + "/add_subports",
                R"({"sub_ports": [{"port_id": ")" + p +
                    R"(", "segmentation_type": "vlan", "segmentation_id": )" + std::to_string(vid) +
                    "}]}");
  };
  expectError(add(other["id"], 101), 409, "DuplicateSubPort");
  expectError(add(other["id"], 4095), 400, "HTTPBadRequest");
  expectError(add(sub_id, 102), 409, "PortInUseAsSubPort");
  expectError(call("POST", "/v2.0/trunks", R"({"trunk": {"port_id": ")" + sub_id + R"("}})"), 409,
              "TrunkPortInUse");
  auto added = add(other["id"], 102);
  ASSERT_EQ(added.status, 200) << added.body.dump();
  EXPECT_EQ(added.body["sub_ports"].size(), 2u);
  // A bound trunk stays; unbound, it goes and lets its subports go.
  expectError(call("DELETE", "/v2.0/trunks/" + trunk_id), 409, "TrunkInUse");
  call("PUT", "/v2.0/ports/" + parent_id, R"({"port": {"binding:host_id": ""}})", "");
  EXPECT_EQ(call("DELETE", "/v2.0/trunks/" + trunk_id).status, 204);
  EXPECT_FALSE(call("GET", "/v2.0/ports/" + parent_id).body["port"].contains("trunk_details"));
  EXPECT_EQ(call("GET", "/v2.0/ports/" + sub_id).body["port"]["device_owner"], "");
  EXPECT_EQ(call("DELETE", "/v2.0/ports/" + sub_id).status, 204);
}

TEST_F(NeutronApiTest, AProjectsDefaultQosPolicyGoesOnItsNewNetworks) {
  auto made = call("POST", "/v2.0/qos/policies",
                   R"({"policy": {"name": "d", "project_id": "p1", "is_default": true}})", "");
  ASSERT_EQ(made.status, 201) << made.body.dump();
  expectError(call("POST", "/v2.0/qos/policies",
                   R"({"policy": {"name": "e", "project_id": "p1", "is_default": true}})", ""),
              409, "QoSPolicyDefaultAlreadyExists");
  auto net = call("POST", "/v2.0/networks", R"({"network": {"name": "n"}})");
  EXPECT_EQ(net.body["network"]["qos_policy_id"], made.body["policy"]["id"]);
  auto other = call("POST", "/v2.0/networks", R"({"network": {"name": "n"}})", "p2");
  EXPECT_TRUE(other.body["network"]["qos_policy_id"].is_null());
}

TEST_F(SecurityGroupTest, StatelessGroupsKeepTheirKindInUseAndDoNotMixOnAPort) {
  std::string web = group("web");
  auto stateless = call("POST", "/v2.0/security-groups",
                        R"({"security_group": {"name": "sl", "stateful": false}})");
  ASSERT_EQ(stateless.status, 201) << stateless.body.dump();
  EXPECT_EQ(stateless.body["security_group"]["stateful"], false);
  std::string sl = stateless.body["security_group"]["id"];
  EXPECT_EQ(call("GET", "/v2.0/security-groups/" + web).body["security_group"]["stateful"], true);
  expectError(call("POST", "/v2.0/security-groups",
                   R"({"security_group": {"name": "x", "stateful": "maybe"}})"),
              400, "HTTPBadRequest");
  // Unused, a group may change its kind, and back.
  auto flipped =
      call("PUT", "/v2.0/security-groups/" + web, R"({"security_group": {"stateful": false}})");
  ASSERT_EQ(flipped.status, 200) << flipped.body.dump();
  EXPECT_EQ(flipped.body["security_group"]["stateful"], false);
  ASSERT_EQ(call("PUT", "/v2.0/security-groups/" + web, R"({"security_group": {"stateful": true}})")
                .status,
            200);

  auto port = createPort(R"(, "security_groups": [")" + sl + R"("])");
  ASSERT_EQ(port.status, 201) << port.body.dump();
  expectError(
      call("PUT", "/v2.0/security-groups/" + sl, R"({"security_group": {"stateful": true}})"), 409,
      "SecurityGroupInUse", "Security Group " + sl + " in use.");
  // Its name may change; its kind may not.
  EXPECT_EQ(
      call("PUT", "/v2.0/security-groups/" + sl, R"({"security_group": {"name": "sl2"}})").status,
      200);
  expectError(call("PUT", "/v2.0/ports/" + port.body["port"]["id"].get<std::string>(),
                   R"({"port": {"security_groups": [")" + sl + R"(", ")" + web + R"("]}})"),
              409, "SecurityGroupConflict");
  expectError(createPort(R"(, "security_groups": [")" + web + R"(", ")" + sl + R"("])"), 409,
              "SecurityGroupConflict");
}

TEST_F(SecurityGroupTest, InUseAndDefaultGroupsAreProtected) {
  std::string web = group("web");
  std::string db = group("db");
  auto remote = rule(R"({"security_group_id": ")" + db +
                     R"(", "direction": "ingress", "remote_group_id": ")" + web + "\"}");
  ASSERT_EQ(remote.status, 201) << remote.body.dump();
  auto port = createPort(R"(, "security_groups": [")" + web + "\"]");
  ASSERT_EQ(port.status, 201) << port.body.dump();
  expectError(call("DELETE", "/v2.0/security-groups/" + web), 409, "SecurityGroupInUse");
  // Move the port off the group; then it can go, with the rules naming it.
  auto moved = call("PUT", "/v2.0/ports/" + port.body["port"]["id"].get<std::string>(),
                    R"({"port": {"security_groups": []}})");
  ASSERT_EQ(moved.status, 200) << moved.body.dump();
  EXPECT_EQ(call("DELETE", "/v2.0/security-groups/" + web).status, 204);
  auto db_now = call("GET", "/v2.0/security-groups/" + db);
  EXPECT_EQ(db_now.body["security_group"]["security_group_rules"].size(), 2u);  // egress only

  std::string def;
  auto all = call("GET", "/v2.0/security-groups");
  for (auto& g : all.body["security_groups"]) {
    if (g["name"] == "default") def = g["id"];
  }
  ASSERT_FALSE(def.empty()) << all.body.dump();
  expectError(call("DELETE", "/v2.0/security-groups/" + def), 409,
              "SecurityGroupCannotRemoveDefault");
  expectError(
      call("PUT", "/v2.0/security-groups/" + def, R"({"security_group": {"name": "renamed"}})"),
      409, "SecurityGroupCannotUpdateDefault");
  expectError(call("POST", "/v2.0/security-groups", R"({"security_group": {"name": "default"}})"),
              409, "SecurityGroupDefaultAlreadyExists");
}

}  // namespace
}  // namespace canopy::api
