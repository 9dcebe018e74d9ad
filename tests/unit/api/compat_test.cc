// What tempest's Neutron suites check and Canopy once did differently:
// each case is Neutron's behaviour, found by running the suites against
// both servers.

#include <gtest/gtest.h>

#include <set>

#include "api_fixture.h"

namespace canopy::api {
namespace {

using model::Json;

constexpr const char* kAdmin = "";  // no project header: the noauth admin

class CompatTest : public ApiFixture {
 protected:
  std::string subnet(const std::string& net, const std::string& cidr, const std::string& extra = "",
                     const std::string& project = "p1") {
    auto r = call("POST", "/v2.0/subnets",
                  R"({"subnet": {"network_id": ")" + net + R"(", "ip_version": )" +
                      (cidr.find(':') == std::string::npos ? "4" : "6") + R"(, "cidr": ")" + cidr +
                      "\"" + extra + "}}",
                  project);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body["subnet"].value("id", "");
  }
  Reply port(const std::string& net, const std::string& extra = "",
             const std::string& project = "p1") {
    return call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + net + "\"" + extra + "}}",
                project);
  }
};

// Horizon sends admin-only attributes at their defaults; Neutron's policy
// checks them only when they differ.
TEST_F(CompatTest, AMemberMayGiveAdminOnlyAttributesTheirDefaults) {
  auto r = call("POST", "/v2.0/networks",
                R"({"network": {"name": "n", "shared": false, "router:external": false}})");
  EXPECT_EQ(r.status, 201) << r.body.dump();
  expectError(call("POST", "/v2.0/networks", R"({"network": {"name": "n", "shared": true}})"), 403,
              "PolicyNotAuthorized");
  // An update names what it changes: checked whatever the value.
  std::string id = r.body["network"]["id"];
  expectError(call("PUT", "/v2.0/networks/" + id, R"({"network": {"shared": false}})"), 403,
              "PolicyNotAuthorized");
}

TEST_F(CompatTest, NullListsAreEmptyLists) {
  auto router = call("POST", "/v2.0/routers", R"({"router": {"name": "r"}})");
  ASSERT_EQ(router.status, 201) << router.body.dump();
  std::string id = router.body["router"]["id"];
  auto r = call("PUT", "/v2.0/routers/" + id, R"({"router": {"routes": null}})");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["router"]["routes"], Json::array());
  std::string net = createNetwork("n");
  std::string s = subnet(net, "10.0.0.0/24");
  auto sub = call("PUT", "/v2.0/subnets/" + s,
                  R"({"subnet": {"dns_nameservers": null, "host_routes": null}})");
  ASSERT_EQ(sub.status, 200) << sub.body.dump();
  EXPECT_EQ(sub.body["subnet"]["dns_nameservers"], Json::array());
  // A port's explicit null: no security groups (absent: the default group).
  auto p = port(net, R"(, "security_groups": null, "port_security_enabled": false)");
  ASSERT_EQ(p.status, 201) << p.body.dump();
  EXPECT_EQ(p.body["port"]["security_groups"], Json::array());
}

TEST_F(CompatTest, PortsFilterByTheirFixedIps) {
  std::string net = createNetwork("n");
  std::string a = subnet(net, "10.0.0.0/24");
  std::string b = subnet(net, "10.0.1.0/24");
  auto p1 =
      port(net, R"(, "fixed_ips": [{"subnet_id": ")" + a + R"(", "ip_address": "10.0.0.5"}])");
  auto p2 =
      port(net, R"(, "fixed_ips": [{"subnet_id": ")" + b + R"(", "ip_address": "10.0.1.5"}])");
  ASSERT_EQ(p1.status, 201) << p1.body.dump();
  ASSERT_EQ(p2.status, 201) << p2.body.dump();
  auto by_ip = call("GET", "/v2.0/ports?fixed_ips=ip_address%3D10.0.0.5");
  ASSERT_EQ(by_ip.status, 200) << by_ip.body.dump();
  ASSERT_EQ(by_ip.body["ports"].size(), 1u);
  EXPECT_EQ(by_ip.body["ports"][0]["id"], p1.body["port"]["id"]);
  auto by_subnet = call("GET", "/v2.0/ports?fixed_ips=subnet_id%3D" + b);
  ASSERT_EQ(by_subnet.body["ports"].size(), 1u);
  EXPECT_EQ(by_subnet.body["ports"][0]["id"], p2.body["port"]["id"]);
  // Both on one address: the address must be on that subnet.
  auto both =
      call("GET", "/v2.0/ports?fixed_ips=subnet_id%3D" + b + "&fixed_ips=ip_address%3D10.0.0.5");
  EXPECT_EQ(both.body["ports"].size(), 0u);
  auto substring = call("GET", "/v2.0/ports?fixed_ips=ip_address_substr%3D0.1.");
  EXPECT_EQ(substring.body["ports"].size(), 1u);
  expectError(call("GET", "/v2.0/ports?fixed_ips=mac%3Dx"), 400, "HTTPBadRequest");
}

TEST_F(CompatTest, ThePageAfterTheLastLinksBack) {
  std::string a = createNetwork("a");
  std::string b = createNetwork("b");
  std::string last = std::max(a, b);
  auto r = call("GET", "/v2.0/networks?limit=2&sort_key=id&sort_dir=asc&marker=" + last);
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["networks"].size(), 0u);
  ASSERT_EQ(r.body["networks_links"].size(), 1u) << r.body.dump();
  EXPECT_EQ(r.body["networks_links"][0]["rel"], "previous");
  std::string href = r.body["networks_links"][0]["href"];
  EXPECT_EQ(href.find("marker="), std::string::npos) << href;
  EXPECT_NE(href.find("page_reverse=True"), std::string::npos) << href;
}

TEST_F(CompatTest, TheDefaultGroupsNameIsTaken) {
  expectError(call("POST", "/v2.0/security-groups", R"({"security_group": {"name": "default"}})"),
              409, "SecurityGroupDefaultAlreadyExists");
  expectError(call("POST", "/v2.0/security-groups", R"({"security_group": {"name": "DEFAULT"}})"),
              409, "SecurityGroupDefaultAlreadyExists");
  auto g = call("POST", "/v2.0/security-groups", R"({"security_group": {"name": "web"}})");
  ASSERT_EQ(g.status, 201) << g.body.dump();
  std::string id = g.body["security_group"]["id"];
  expectError(
      call("PUT", "/v2.0/security-groups/" + id, R"({"security_group": {"name": "default"}})"), 409,
      "SecurityGroupDefaultAlreadyExists");
  auto groups = call("GET", "/v2.0/security-groups?name=default");
  EXPECT_EQ(groups.body["security_groups"].size(), 1u) << groups.body.dump();
}

TEST_F(CompatTest, SecurityGroupRulesAndPortsAsNeutronChecksThem) {
  auto g = call("POST", "/v2.0/security-groups", R"({"security_group": {"name": "web"}})");
  std::string id = g.body["security_group"]["id"];
  for (const char* proto : {"icmpv6", "ipv6-icmp", "58", "ipv6-frag"}) {
    expectError(call("POST", "/v2.0/security-group-rules",
                     R"({"security_group_rule": {"security_group_id": ")" + id +
                         R"(", "direction": "ingress", "ethertype": "IPv4", "protocol": ")" +
                         proto + "\"}}"),
                400, "SecurityGroupEthertypeConflictWithProtocol");
  }
  std::string net = createNetwork("n");
  subnet(net, "10.0.0.0/24");
  auto dup = port(net, R"(, "security_groups": [")" + id + R"(", ")" + id + "\"]");
  expectError(dup, 400, "HTTPBadRequest");
}

TEST_F(CompatTest, FloatingIpBodiesWithoutPortIdKeepOrDropTheAssociation) {
  std::string ext = createNetwork("public", kAdmin, R"(, "router:external": true)");
  subnet(ext, "203.0.113.0/24", R"(, "enable_dhcp": false)", kAdmin);
  std::string net = createNetwork("n");
  std::string s = subnet(net, "10.0.0.0/24");
  auto router = call("POST", "/v2.0/routers",
                     R"({"router": {"external_gateway_info": {"network_id": ")" + ext + "\"}}}");
  ASSERT_EQ(router.status, 201) << router.body.dump();
  std::string rid = router.body["router"]["id"];
  ASSERT_EQ(call("PUT", "/v2.0/routers/" + rid + "/add_router_interface",
                 R"({"subnet_id": ")" + s + "\"}")
                .status,
            200);
  auto p = port(net);
  std::string pid = p.body["port"]["id"];
  auto fip = call(
      "POST", "/v2.0/floatingips",
      R"({"floatingip": {"floating_network_id": ")" + ext + R"(", "port_id": ")" + pid + "\"}}");
  ASSERT_EQ(fip.status, 201) << fip.body.dump();
  std::string fid = fip.body["floatingip"]["id"];
  auto described =
      call("PUT", "/v2.0/floatingips/" + fid, R"({"floatingip": {"description": "d2"}})");
  ASSERT_EQ(described.status, 200) << described.body.dump();
  EXPECT_EQ(described.body["floatingip"]["port_id"], pid);
  auto emptied = call("PUT", "/v2.0/floatingips/" + fid, R"({"floatingip": {}})");
  ASSERT_EQ(emptied.status, 200) << emptied.body.dump();
  EXPECT_TRUE(emptied.body["floatingip"]["port_id"].is_null()) << emptied.body.dump();
}

TEST_F(CompatTest, AnAdminChangesAnUnboundPortsMac) {
  std::string net = createNetwork("n");
  subnet(net, "10.0.0.0/24");
  auto p = port(net);
  std::string id = p.body["port"]["id"];
  expectError(call("PUT", "/v2.0/ports/" + id, R"({"port": {"mac_address": "fa:16:3e:00:00:01"}})"),
              403, "PolicyNotAuthorized");
  auto r =
      call("PUT", "/v2.0/ports/" + id, R"({"port": {"mac_address": "FA:16:3E:00:00:01"}})", kAdmin);
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["port"]["mac_address"], "fa:16:3e:00:00:01");
  auto other = port(net, R"(, "mac_address": "fa:16:3e:00:00:01")");
  expectError(other, 409, "MacAddressInUse");
  ASSERT_EQ(
      call("PUT", "/v2.0/ports/" + id, R"({"port": {"binding:host_id": "h1"}})", kAdmin).status,
      200);
  expectError(
      call("PUT", "/v2.0/ports/" + id, R"({"port": {"mac_address": "fa:16:3e:00:00:02"}})", kAdmin),
      409, "PortBound");
}

TEST_F(CompatTest, AnAutoAddressedSubnetGoesWithItsAddresses) {
  std::string net = createNetwork("n");
  std::string v4 = subnet(net, "10.0.0.0/24");
  std::string v6 =
      subnet(net, "fd00::/64", R"(, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac")");
  auto p = port(net);
  ASSERT_EQ(p.status, 201) << p.body.dump();
  ASSERT_EQ(p.body["port"]["fixed_ips"].size(), 2u) << p.body.dump();
  EXPECT_EQ(call("DELETE", "/v2.0/subnets/" + v6).status, 204);
  auto after = call("GET", "/v2.0/ports/" + p.body["port"]["id"].get<std::string>());
  ASSERT_EQ(after.body["port"]["fixed_ips"].size(), 1u) << after.body.dump();
  EXPECT_EQ(after.body["port"]["fixed_ips"][0]["subnet_id"], v4);
  expectError(call("DELETE", "/v2.0/subnets/" + v4), 409, "SubnetInUse");
}

TEST_F(CompatTest, AnExternalNetworkGoesWithItsFreeFloatingIps) {
  std::string ext = createNetwork("public", kAdmin, R"(, "router:external": true)");
  subnet(ext, "203.0.113.0/24", R"(, "enable_dhcp": false)", kAdmin);
  auto fip = call("POST", "/v2.0/floatingips",
                  R"({"floatingip": {"floating_network_id": ")" + ext + "\"}}");
  ASSERT_EQ(fip.status, 201) << fip.body.dump();
  EXPECT_EQ(call("DELETE", "/v2.0/networks/" + ext, "", kAdmin).status, 204);
  expectError(call("GET", "/v2.0/floatingips/" + fip.body["floatingip"]["id"].get<std::string>()),
              404, "FloatingIPNotFound");
}

TEST_F(CompatTest, AMembersAgentListIsEmpty) {
  auto r = call("GET", "/v2.0/agents");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["agents"], Json::array());
  expectError(call("GET", "/v2.0/agents/h1"), 404, "AgentNotFound");
}

// Flavors and service profiles: the admin's catalog; everyone reads the
// flavors, only admins the profiles; a profile names one of Canopy's
// drivers or carries metainfo, and is bound to flavors through the
// flavor's sub-collection.
TEST_F(CompatTest, FlavorsAreTheAdminsCatalog) {
  auto made = call("POST", "/v2.0/flavors",
                   R"({"flavor": {"name": "gold", "service_type": "L3_ROUTER_NAT"}})", kAdmin);
  ASSERT_EQ(made.status, 201) << made.body.dump();
  std::string flavor = made.body["flavor"]["id"];
  EXPECT_EQ(made.body["flavor"]["enabled"], true);
  EXPECT_FALSE(made.body["flavor"].contains("project_id"));
  expectError(call("POST", "/v2.0/flavors", R"({"flavor": {"service_type": "QOS"}})", kAdmin), 400,
              "InvalidFlavorServiceType", "Invalid service type QOS.");
  expectError(call("POST", "/v2.0/flavors", R"({"flavor": {"service_type": "FLAVORS"}})"), 403,
              "PolicyNotAuthorized");
  EXPECT_EQ(call("GET", "/v2.0/flavors/" + flavor).status, 200);  // members read it
  expectError(call("PUT", "/v2.0/flavors/" + flavor, R"({"flavor": {"enabled": false}})"), 403,
              "PolicyNotAuthorized");
  expectError(call("POST", "/v2.0/service_profiles", R"({"service_profile": {}})", kAdmin), 400,
              "ServiceProfileEmpty");
  expectError(call("POST", "/v2.0/service_profiles",
                   R"({"service_profile": {"driver": "neutron.SingleNodeDriver"}})", kAdmin),
              404, "ServiceProfileDriverNotFound");
  auto profile = call("POST", "/v2.0/service_profiles",
                      R"({"service_profile": {"driver": "canopy", "metainfo": "{}"}})", kAdmin);
  ASSERT_EQ(profile.status, 201) << profile.body.dump();
  std::string sp = profile.body["service_profile"]["id"];
  EXPECT_EQ(call("GET", "/v2.0/service_profiles").body["service_profiles"].size(), 0u);
  std::string bind = R"({"service_profile": {"id": ")" + sp + "\"}}";
  auto bound = call("POST", "/v2.0/flavors/" + flavor + "/service_profiles", bind, kAdmin);
  ASSERT_EQ(bound.status, 201) << bound.body.dump();
  EXPECT_EQ(bound.body["service_profile"]["id"], sp);
  expectError(call("POST", "/v2.0/flavors/" + flavor + "/service_profiles", bind, kAdmin), 409,
              "FlavorServiceProfileBindingExists");
  EXPECT_EQ(call("GET", "/v2.0/flavors/" + flavor, "", kAdmin).body["flavor"]["service_profiles"],
            Json({sp}));
  expectError(call("DELETE", "/v2.0/service_profiles/" + sp, "", kAdmin), 409,
              "ServiceProfileInUse");
  std::string binding = "/v2.0/flavors/" + flavor + "/service_profiles/" + sp;
  EXPECT_EQ(call("DELETE", binding, "", kAdmin).status, 204);
  expectError(call("DELETE", binding, "", kAdmin), 404, "FlavorServiceProfileBindingNotFound");
  EXPECT_EQ(call("DELETE", "/v2.0/service_profiles/" + sp, "", kAdmin).status, 204);
  EXPECT_EQ(call("DELETE", "/v2.0/flavors/" + flavor, "", kAdmin).status, 204);
}

// Local IPs: on a port (its address) or on a network (a port of its own
// holds the address); ports associate with it, each answering it on its
// host; what is in use stays.
// l3-conntrack-helper: a router's helpers, those the datapath implements
// only, in its view without their ids; Neutron's errors.
TEST_F(CompatTest, ConntrackHelpersOfARouter) {
  auto router = call("POST", "/v2.0/routers", R"({"router": {"name": "r"}})");
  ASSERT_EQ(router.status, 201) << router.body.dump();
  std::string id = router.body["router"]["id"];
  EXPECT_EQ(router.body["router"]["conntrack_helpers"], Json::array());
  std::string base = "/v2.0/routers/" + id + "/conntrack_helpers";
  auto tftp = call("POST", base,
                   R"({"conntrack_helper": {"helper": "tftp", "protocol": "udp", "port": 69}})");
  ASSERT_EQ(tftp.status, 201) << tftp.body.dump();
  EXPECT_EQ(tftp.body["conntrack_helper"]["helper"], "tftp");
  EXPECT_EQ(tftp.body["conntrack_helper"]["protocol"], "udp");
  EXPECT_EQ(tftp.body["conntrack_helper"]["port"], 69);
  std::string tftp_id = tftp.body["conntrack_helper"]["id"];
  // Protocol by number or in capitals, port as text: converted as Neutron does.
  auto ftp = call("POST", base,
                  R"({"conntrack_helper": {"helper": "ftp", "protocol": "TCP", "port": "21"}})");
  ASSERT_EQ(ftp.status, 201) << ftp.body.dump();
  EXPECT_EQ(ftp.body["conntrack_helper"]["protocol"], "tcp");
  EXPECT_EQ(ftp.body["conntrack_helper"]["port"], 21);

  auto shown = call("GET", "/v2.0/routers/" + id).body["router"]["conntrack_helpers"];
  ASSERT_EQ(shown.size(), 2u);
  EXPECT_EQ(shown[0], Json({{"helper", "tftp"}, {"protocol", "udp"}, {"port", 69}}));
  EXPECT_EQ(call("GET", base).body["conntrack_helpers"].size(), 2u);
  EXPECT_EQ(call("GET", base + "?helper=ftp").body["conntrack_helpers"].size(), 1u);
  EXPECT_EQ(call("GET", base + "/" + tftp_id + "?fields=port").body["conntrack_helper"],
            Json({{"port", 69}}));

  auto moved = call("PUT", base + "/" + tftp_id, R"({"conntrack_helper": {"port": 6969}})");
  ASSERT_EQ(moved.status, 200) << moved.body.dump();
  EXPECT_EQ(moved.body["conntrack_helper"]["port"], 6969);
  EXPECT_EQ(moved.body["conntrack_helper"]["helper"], "tftp");

  // Errors.
  expectError(call("POST", base,
                   R"({"conntrack_helper": {"helper": "sip", "protocol": "udp", "port": 5060}})"),
              400, "ConntrackHelperNotAllowed");
  expectError(call("POST", base,
                   R"({"conntrack_helper": {"helper": "ftp", "protocol": "udp", "port": 21}})"),
              400, "InvalidProtocolForHelper");
  expectError(call("POST", base,
                   R"({"conntrack_helper": {"helper": "ftp", "protocol": "tcp", "port": 21}})"),
              400, "BadRequest");
  expectError(call("POST", base,
                   R"({"conntrack_helper": {"helper": "ftp", "protocol": "tcp", "port": 0}})"),
              400, "HTTPBadRequest");
  expectError(call("POST", base,
                   R"({"conntrack_helper": {"helper": "ftp", "protocol": "bogus", "port": 2}})"),
              400, "HTTPBadRequest");
  expectError(call("POST", base, R"({"conntrack_helper": {"helper": "ftp", "port": 2}})"), 400,
              "HTTPBadRequest");
  expectError(call("POST", base,
                   R"({"conntrack_helper": {"helper": "ftp", "protocol": "tcp", "port": 2,
                       "x": 1}})"),
              400, "HTTPBadRequest");
  expectError(call("POST", base, R"({"conntrack_helper": 7})"), 400, "HTTPBadRequest");
  expectError(call("PUT", base + "/" + tftp_id, R"({"conntrack_helper": {"port": 21,
                   "protocol": "tcp", "helper": "ftp"}})"),
              400, "BadRequest");
  expectError(call("GET", base + "/0b5a6e2c-52f9-4d4e-8f7a-0d3c8c1e9a11"), 404,
              "ConntrackHelperNotFound");
  // Another project sees no router.
  expectError(call("GET", base, "", "p2"), 404, "RouterNotFound");
  expectError(
      call("POST", base,
           R"({"conntrack_helper": {"helper": "ftp", "protocol": "tcp", "port": 2121}})", "p2"),
      404, "RouterNotFound");
  // A router PUT leaves them alone and may not set them.
  ASSERT_EQ(call("PUT", "/v2.0/routers/" + id, R"({"router": {"name": "r2"}})").status, 200);
  EXPECT_EQ(call("GET", base).body["conntrack_helpers"].size(), 2u);
  expectError(call("PUT", "/v2.0/routers/" + id, R"({"router": {"conntrack_helpers": []}})"), 400,
              "HTTPBadRequest");

  ASSERT_EQ(call("DELETE", base + "/" + tftp_id).status, 204);
  expectError(call("DELETE", base + "/" + tftp_id), 404, "ConntrackHelperNotFound");
  EXPECT_EQ(call("GET", "/v2.0/routers/" + id).body["router"]["conntrack_helpers"].size(), 1u);
}

TEST_F(CompatTest, LocalIpsAndTheirPortAssociations) {
  std::string net = createNetwork("n");
  subnet(net, "10.30.0.0/24");
  auto on_net = call("POST", "/v2.0/local_ips",
                     R"({"local_ip": {"network_id": ")" + net +
                         R"(", "local_ip_address": "10.30.0.50", "name": "dns"}})");
  ASSERT_EQ(on_net.status, 201) << on_net.body.dump();
  const Json& lip = on_net.body["local_ip"];
  EXPECT_EQ(lip["local_ip_address"], "10.30.0.50");
  EXPECT_EQ(lip["ip_mode"], "translate");
  std::string id = lip["id"], holder = lip["local_port_id"];
  EXPECT_EQ(call("GET", "/v2.0/ports/" + holder).body["port"]["device_owner"], "network:local_ip");
  expectError(call("DELETE", "/v2.0/ports/" + holder), 409, "ServicePortInUse");

  auto vm =
      port(net, R"(, "fixed_ips": [{"ip_address": "10.30.0.8"}, {"ip_address": "10.30.0.9"}])");
  ASSERT_EQ(vm.status, 201) << vm.body.dump();
  std::string vm_id = vm.body["port"]["id"];
  std::string assoc = "/v2.0/local_ips/" + id + "/port_associations";
  expectError(call("POST", assoc, R"({"port_association": {"fixed_port_id": ")" + vm_id + "\"}}"),
              400, "LocalIPNoRequestedIP");
  expectError(call("POST", assoc,
                   R"({"port_association": {"fixed_port_id": ")" + vm_id +
                       R"(", "fixed_ip": "10.30.0.7"}})"),
              400, "LocalIPRequestedIPNotFound");
  auto a = call(
      "POST", assoc,
      R"({"port_association": {"fixed_port_id": ")" + vm_id + R"(", "fixed_ip": "10.30.0.9"}})");
  ASSERT_EQ(a.status, 201) << a.body.dump();
  EXPECT_EQ(a.body["port_association"]["fixed_ip"], "10.30.0.9");
  EXPECT_EQ(a.body["port_association"]["local_ip_address"], "10.30.0.50");
  EXPECT_EQ(a.body["port_association"]["host"], "");
  expectError(call("POST", assoc,
                   R"({"port_association": {"fixed_port_id": ")" + vm_id +
                       R"(", "fixed_ip": "10.30.0.9"}})"),
              409, "LocalIPAssociationExists");
  EXPECT_EQ(call("GET", assoc).body["port_associations"].size(), 1u);
  EXPECT_EQ(call("GET", assoc + "/" + vm_id).body["port_association"]["fixed_port_id"], vm_id);
  expectError(call("GET", assoc, "", "p2"), 404, "LocalIPNotFound");
  expectError(call("DELETE", "/v2.0/local-ips/" + id), 409, "LocalIPInUse");
  // The port goes, and its association with it.
  ASSERT_EQ(call("DELETE", "/v2.0/ports/" + vm_id).status, 204);
  EXPECT_EQ(call("GET", assoc).body["port_associations"].size(), 0u);
  expectError(call("DELETE", assoc + "/" + vm_id), 404, "LocalIPAssociationNotFound");
  ASSERT_EQ(call("DELETE", "/v2.0/local_ips/" + id).status, 204);
  expectError(call("GET", "/v2.0/ports/" + holder), 404, "PortNotFound");

  // On a port: its address, its network.
  auto p1 = port(net);
  std::string p1_id = p1.body["port"]["id"];
  auto on_port =
      call("POST", "/v2.0/local_ips", R"({"local_ip": {"local_port_id": ")" + p1_id + "\"}}");
  ASSERT_EQ(on_port.status, 201) << on_port.body.dump();
  EXPECT_EQ(on_port.body["local_ip"]["network_id"], net);
  EXPECT_EQ(on_port.body["local_ip"]["local_ip_address"],
            p1.body["port"]["fixed_ips"][0]["ip_address"]);
  expectError(call("DELETE", "/v2.0/ports/" + p1_id), 409, "ServicePortInUse");
  expectError(call("POST", "/v2.0/local_ips", R"({"local_ip": {"name": "x"}})"), 400,
              "LocalIPPortOrNetworkRequired");
  expectError(call("POST", "/v2.0/local_ips",
                   R"({"local_ip": {"network_id": ")" + net + R"(", "ip_mode": "passthrough"}})"),
              400, "HTTPBadRequest");
  expectError(
      call("POST", "/v2.0/local_ips", R"({"local_ip": {"local_port_id": ")" + p1_id + "\"}}", "p2"),
      400, "HTTPBadRequest");  // another project's port is not found
}

// DHCP is answered by the agent of each port's host: a network's DHCP
// agents are those with its ports bound (none here).
TEST_F(CompatTest, ANetworksDhcpAgentsAreItsPortsHosts) {
  std::string net = createNetwork("n");
  auto r = call("GET", "/v2.0/networks/" + net + "/dhcp-agents", "", kAdmin);
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["agents"], Json::array());
  expectError(call("GET", "/v2.0/networks/" + net + "/dhcp-agents"), 403, "PolicyNotAuthorized");
  expectError(
      call("GET", "/v2.0/networks/2f1b8d6c-0000-4000-8000-000000000001/dhcp-agents", "", kAdmin),
      404, "NetworkNotFound");
  EXPECT_EQ(call("GET", "/v2.0/extensions/agent").status, 200);
}

// Neutron's network_vlan_ranges: VLAN ids for networks that name none.
TEST_F(CompatTest, VlanNetworksTakeIdsFromTheirPhysicalNetworksRanges) {
  shutdown();
  ApiConfig config;
  config.network.vlan_ranges = {{"physnet1", {{100, 101}}}, {"public", {}}};
  boot(std::move(config));
  auto vlan = [&](const std::string& physnet) {
    std::string extra = R"({"network": {"name": "v", "provider:network_type": "vlan")";
    if (!physnet.empty()) extra += R"(, "provider:physical_network": ")" + physnet + "\"";
    return call("POST", "/v2.0/networks", extra + "}}", kAdmin);
  };
  auto a = vlan("physnet1");
  ASSERT_EQ(a.status, 201) << a.body.dump();
  auto b = vlan("");  // any physical network with a range
  ASSERT_EQ(b.status, 201) << b.body.dump();
  EXPECT_EQ(b.body["network"]["provider:physical_network"], "physnet1");
  std::set<int64_t> ids = {a.body["network"]["provider:segmentation_id"].get<int64_t>(),
                           b.body["network"]["provider:segmentation_id"].get<int64_t>()};
  EXPECT_EQ(ids, (std::set<int64_t>{100, 101}));
  expectError(vlan("physnet1"), 503, "NoNetworkAvailable");
  expectError(vlan("public"), 503, "NoNetworkAvailable");  // ids must be given there
  expectError(vlan("nowhere"), 400, "HTTPBadRequest");
  auto given = call("POST", "/v2.0/networks",
                    R"({"network": {"provider:network_type": "vlan",
                        "provider:physical_network": "public", "provider:segmentation_id": 7}})",
                    kAdmin);
  EXPECT_EQ(given.status, 201) << given.body.dump();
}

// tenant_network_types = vlan: a project's network, naming no type, gets a
// VLAN of a configured range; the MTU is the physical network's.
TEST_F(CompatTest, TenantNetworksCanBeVlans) {
  shutdown();
  ApiConfig config;
  config.network.vlan_ranges = {{"physnet1", {{200, 200}}}};
  config.network.tenant_network_type = "vlan";
  boot(std::move(config));
  auto a = call("POST", "/v2.0/networks", R"({"network": {"name": "t"}})");
  ASSERT_EQ(a.status, 201) << a.body.dump();
  auto shown =
      call("GET", "/v2.0/networks/" + a.body["network"]["id"].get<std::string>(), "", kAdmin);
  EXPECT_EQ(shown.body["network"]["provider:network_type"], "vlan");
  EXPECT_EQ(shown.body["network"]["provider:physical_network"], "physnet1");
  EXPECT_EQ(shown.body["network"]["provider:segmentation_id"], 200);
  EXPECT_EQ(shown.body["network"]["mtu"], 1500);
  expectError(call("POST", "/v2.0/networks", R"({"network": {"name": "u"}})"), 503,
              "NoNetworkAvailable");
}

TEST_F(CompatTest, NetworkIpAvailabilityCountsPoolsAndPorts) {
  std::string net = createNetwork("n");
  auto empty = call("GET", "/v2.0/network-ip-availabilities/" + net, "", kAdmin);
  ASSERT_EQ(empty.status, 200) << empty.body.dump();
  EXPECT_EQ(empty.body["network_ip_availability"]["total_ips"], 0);
  EXPECT_FALSE(empty.body["network_ip_availability"].contains("id"));
  subnet(net, "10.0.0.0/28", R"(, "enable_dhcp": false)");
  std::string net6 = createNetwork("n6");
  subnet(net6, "2001:db8::/64");
  ASSERT_EQ(port(net).status, 201);
  ASSERT_EQ(port(net6).status, 201);
  auto r = call("GET", "/v2.0/network-ip-availabilities?network_id=" + net, "", kAdmin);
  ASSERT_EQ(r.status, 200) << r.body.dump();
  ASSERT_EQ(r.body["network_ip_availabilities"].size(), 1u);
  const Json& a = r.body["network_ip_availabilities"][0];
  EXPECT_EQ(a["total_ips"], 13);  // 16 less network, broadcast, gateway
  EXPECT_EQ(a["used_ips"], 1);
  EXPECT_EQ(a["subnet_ip_availability"].size(), 1u);
  auto r6 = call("GET", "/v2.0/network-ip-availabilities/" + net6, "", kAdmin);
  // 2^64 less the subnet-router anycast address and the gateway.
  EXPECT_EQ(r6.body["network_ip_availability"]["total_ips"].get<uint64_t>(), ~uint64_t{0} - 1);
  EXPECT_EQ(r6.body["network_ip_availability"]["used_ips"], 1);
  auto v4 = call("GET", "/v2.0/network-ip-availabilities?ip_version=4", "", kAdmin);
  EXPECT_EQ(v4.body["network_ip_availabilities"].size(), 1u);
  auto none = call("GET", "/v2.0/network-ip-availabilities?ip_version=6&network_id=x", "", kAdmin);
  EXPECT_EQ(none.body["network_ip_availabilities"].size(), 0u);
  // Admin only; unknown networks are Neutron's NetworkNotFound.
  EXPECT_EQ(call("GET", "/v2.0/network-ip-availabilities/" + net).status, 404);
  expectError(call("GET", "/v2.0/network-ip-availabilities/" + std::string(36, 'a'), "", kAdmin),
              404, "NetworkNotFound");
  EXPECT_EQ(call("POST", "/v2.0/network-ip-availabilities", "{}", kAdmin).status, 405);
}

TEST_F(CompatTest, ExtraDhcpOptionsMergeAndAreChecked) {
  std::string net = createNetwork("n");
  subnet(net, "10.0.0.0/24");
  auto r = port(net, R"(, "dns_name": "web-1", "extra_dhcp_opts": [
      {"opt_name": "bootfile-name", "opt_value": "pxelinux.0"},
      {"opt_name": "tftp-server", "opt_value": "2015::dead", "ip_version": 6},
      {"opt_name": "server-ip-address", "opt_value": "10.0.0.9"}])");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  const Json& p = r.body["port"];
  EXPECT_EQ(p["extra_dhcp_opts"].size(), 3u);
  EXPECT_EQ(p["extra_dhcp_opts"][0]["ip_version"], 4);
  EXPECT_EQ(p["dns_assignment"][0]["hostname"], "web-1");
  EXPECT_EQ(p["dns_assignment"][0]["fqdn"], "web-1.openstacklocal.");
  std::string id = p["id"];
  // An update replaces the option of that name, removes one given null.
  auto u = call("PUT", "/v2.0/ports/" + id, R"({"port": {"extra_dhcp_opts": [
      {"opt_name": "bootfile-name", "opt_value": "grub.efi"},
      {"opt_name": "server-ip-address", "opt_value": null}]}})");
  ASSERT_EQ(u.status, 200) << u.body.dump();
  const Json& opts = u.body["port"]["extra_dhcp_opts"];
  ASSERT_EQ(opts.size(), 2u);
  EXPECT_EQ(opts[0]["opt_value"], "grub.efi");
  EXPECT_EQ(opts[1]["opt_name"], "tftp-server");
  // Options the server cannot send are refused, not stored.
  expectError(port(net, R"(, "extra_dhcp_opts": [{"opt_name": "router", "opt_value": "x"}])"), 400,
              "HTTPBadRequest");
  expectError(port(net, R"(, "extra_dhcp_opts": [{"opt_name": "no-such", "opt_value": "1"}])"), 400,
              "HTTPBadRequest");
  expectError(port(net, R"(, "dns_name": "-bad-")"), 400, "HTTPBadRequest");
  // An IPv6 value is for DHCPv6 clients, whatever ip_version says.
  EXPECT_EQ(port(net, R"(, "extra_dhcp_opts": [
      {"opt_name": "server-ip-address", "opt_value": "2015::badd"}])")
                .status,
            201);
  auto shown = call("GET", "/v2.0/ports?fields=dns_assignment&id=" + id);
  EXPECT_EQ(shown.body["ports"][0]["dns_assignment"][0]["hostname"], "web-1");
}

// canopy-instance-metadata: what the metadata service answers without
// Nova, checked and kept whole or refused whole.
TEST_F(CompatTest, InstanceMetadataIsCheckedAndKept) {
  std::string net = createNetwork("n");
  subnet(net, "10.0.0.0/24");
  auto r = port(net, R"(, "instance_metadata": {"name": "web-1",
      "public_keys": {"k1": "ssh-ed25519 AAAA a@b"}, "user_data": "aGVsbG8K"})");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  EXPECT_EQ(r.body["port"]["instance_metadata"]["public_keys"]["k1"], "ssh-ed25519 AAAA a@b");
  std::string id = r.body["port"]["id"];
  EXPECT_EQ(port(net, "").body["port"]["instance_metadata"], Json::object());
  for (const char* bad :
       {R"({"user_data": "not base64"})", R"({"user_data": "aGVsbG8"})", R"({"user_data": 5})",
        R"({"colour": "red"})", R"({"public_keys": {"k": "two\nlines"}})",
        R"({"public_keys": ["k"]})", R"({"name": 7})", R"("text")"}) {
    SCOPED_TRACE(bad);
    expectError(call("PUT", "/v2.0/ports/" + id,
                     std::string(R"({"port": {"instance_metadata": )") + bad + "}}"),
                400, "HTTPBadRequest");
  }
  // Nova's limit on user data: 65535 bytes once decoded.
  std::string big(87384, 'A');  // 65538 bytes
  expectError(call("PUT", "/v2.0/ports/" + id,
                   R"({"port": {"instance_metadata": {"user_data": ")" + big + R"("}}})"),
              400, "HTTPBadRequest");
  auto shown = call("GET", "/v2.0/ports/" + id);
  EXPECT_EQ(shown.body["port"]["instance_metadata"]["name"], "web-1");
  EXPECT_EQ(shown.body["port"]["instance_metadata"]["user_data"], "aGVsbG8K");
}

// On another project's shared network a port's addresses, MAC, pairs and
// port security are the network owner's to set; its owner may delete it.
TEST_F(CompatTest, PortsOnASharedNetwork) {
  std::string net = createNetwork("n", "p1");
  subnet(net, "10.0.0.0/24");
  ASSERT_EQ(call("POST", "/v2.0/rbac-policies",
                 R"({"rbac_policy": {"object_type": "network", "object_id": ")" + net +
                     R"(", "target_tenant": "p2", "action": "access_as_shared"}})")
                .status,
            201);
  expectError(port(net, R"(, "allowed_address_pairs": [{"ip_address": "10.0.0.99"}])", "p2"), 403,
              "PolicyNotAuthorized");
  expectError(port(net, R"(, "fixed_ips": [{"ip_address": "10.0.0.50"}])", "p2"), 403,
              "PolicyNotAuthorized");
  auto theirs = port(net, "", "p2");
  ASSERT_EQ(theirs.status, 201) << theirs.body.dump();
  std::string id = theirs.body["port"]["id"];
  expectError(call("PUT", "/v2.0/ports/" + id,
                   R"({"port": {"allowed_address_pairs": [{"ip_address": "10.0.0.99"}]}})", "p2"),
              403, "PolicyNotAuthorized");
  EXPECT_EQ(call("GET", "/v2.0/ports/" + id, "", "p1").status, 200);
  expectError(call("PUT", "/v2.0/ports/" + id, R"({"port": {"name": "x"}})", "p1"), 403,
              "PolicyNotAuthorized");
  EXPECT_EQ(call("DELETE", "/v2.0/ports/" + id, "", "p1").status, 204);
}

TEST_F(CompatTest, MacRegenerationAndPairsWithoutPortSecurity) {
  std::string net = createNetwork("n");
  subnet(net, "10.0.0.0/24");
  auto p = port(net);
  ASSERT_EQ(p.status, 201);
  std::string id = p.body["port"]["id"], mac = p.body["port"]["mac_address"];
  expectError(call("PUT", "/v2.0/ports/" + id, R"({"port": {"mac_address": null}})"), 403,
              "PolicyNotAuthorized");
  auto regenerated = call("PUT", "/v2.0/ports/" + id, R"({"port": {"mac_address": null}})", kAdmin);
  ASSERT_EQ(regenerated.status, 200) << regenerated.body.dump();
  EXPECT_NE(regenerated.body["port"]["mac_address"], mac);
  auto open = port(net, R"(, "port_security_enabled": false)");
  ASSERT_EQ(open.status, 201);
  expectError(call("PUT", "/v2.0/ports/" + open.body["port"]["id"].get<std::string>(),
                   R"({"port": {"allowed_address_pairs": [{"ip_address": "10.0.0.1"}]}})"),
              409, "AddressPairAndPortSecurityRequired");
}

// subnet-service-types: automatic addresses come from the subnets that
// serve the port's device owner.
TEST_F(CompatTest, SubnetServiceTypesChooseWhereAddressesComeFrom) {
  std::string net = createNetwork("n");
  subnet(net, "192.168.1.0/24", R"(, "service_types": ["test:type_1"])");
  subnet(net, "192.168.2.0/24", R"(, "service_types": ["test:type_2", "compute:nova"])");
  auto one = port(net, R"(, "device_owner": "test:type_1")");
  ASSERT_EQ(one.status, 201) << one.body.dump();
  EXPECT_EQ(one.body["port"]["fixed_ips"].size(), 1u);
  EXPECT_TRUE(
      one.body["port"]["fixed_ips"][0]["ip_address"].get<std::string>().starts_with("192.168.1."));
  auto vm = port(net, R"(, "device_owner": "compute:nova")");
  ASSERT_EQ(vm.status, 201) << vm.body.dump();
  EXPECT_TRUE(
      vm.body["port"]["fixed_ips"][0]["ip_address"].get<std::string>().starts_with("192.168.2."));
  expectError(port(net, R"(, "device_owner": "other:thing")"), 400,
              "IpAddressGenerationFailureNoMatchingSubnet");
  expectError(call("POST", "/v2.0/subnets",
                   R"({"subnet": {"network_id": ")" + net +
                       R"(", "ip_version": 4, "cidr": "192.168.3.0/24", "service_types": ["x"]}})"),
              400, "HTTPBadRequest");
}

}  // namespace
}  // namespace canopy::api
