// Subnet pools, address scopes and RBAC policies, as Neutron has them.

#include <gtest/gtest.h>

#include "api_fixture.h"

namespace canopy::api {
namespace {

using model::Json;

constexpr const char* kAdmin = "";  // no project header: the noauth admin

class SharingTest : public ApiFixture {
 protected:
  std::string create(const std::string& collection, const std::string& member,
                     const std::string& body, const std::string& project = "p1") {
    auto r = call("POST", "/v2.0/" + collection, "{\"" + member + "\": " + body + "}", project);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body[member].value("id", "");
  }
  std::string pool(const std::string& body, const std::string& project = "p1") {
    return create("subnetpools", "subnetpool", body, project);
  }
  Reply subnetFrom(const std::string& net, const std::string& pool, const std::string& extra = "",
                   const std::string& project = "p1") {
    return call("POST", "/v2.0/subnets",
                R"({"subnet": {"network_id": ")" + net +
                    R"(", "ip_version": 4, "subnetpool_id": ")" + pool + "\"" + extra + "}}",
                project);
  }
  Reply share(const std::string& type, const std::string& id, const std::string& target,
              const std::string& action = "access_as_shared", const std::string& project = "p1") {
    return call("POST", "/v2.0/rbac-policies",
                R"({"rbac_policy": {"object_type": ")" + type + R"(", "object_id": ")" + id +
                    R"(", "target_tenant": ")" + target + R"(", "action": ")" + action + "\"}}",
                project);
  }
};

TEST_F(SharingTest, PoolsMergePrefixesAndDefaultTheirBounds) {
  auto r = call("POST", "/v2.0/subnetpools",
                R"({"subnetpool": {"name": "p", "prefixes": ["10.10.10.0/24", "10.10.0.0/16",
                    "20.0.0.0/18"]}})");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  const Json& p = r.body["subnetpool"];
  EXPECT_EQ(p["prefixes"], Json({"10.10.0.0/16", "20.0.0.0/18"}));
  EXPECT_EQ(p["ip_version"], 4);
  EXPECT_EQ(p["min_prefixlen"], "8");  // strings, as Neutron shows them
  EXPECT_EQ(p["max_prefixlen"], "32");
  EXPECT_EQ(p["default_prefixlen"], "8");
  EXPECT_EQ(p["shared"], false);
  EXPECT_TRUE(p["address_scope_id"].is_null());
  expectError(call("POST", "/v2.0/subnetpools",
                   R"({"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8", "2001:db8::/32"]}})"),
              400, "PrefixVersionMismatch");
  expectError(call("POST", "/v2.0/subnetpools", R"({"subnetpool": {"name": "p", "prefixes": []}})"),
              400, "EmptySubnetPoolPrefixList");
  expectError(call("POST", "/v2.0/subnetpools",
                   R"({"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8"],
                       "min_prefixlen": 28, "max_prefixlen": 24}})"),
              400, "IllegalSubnetPoolPrefixBounds",
              "Illegal prefix bounds: min_prefixlen=28, max_prefixlen=24.");
  expectError(call("POST", "/v2.0/subnetpools",
                   R"({"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8"], "shared": true}})"),
              403, "PolicyNotAuthorized");
  // Prefixes may grow, never shrink, through an update.
  std::string id = p["id"];
  auto grown =
      call("PUT", "/v2.0/subnetpools/" + id,
           R"({"subnetpool": {"prefixes": ["10.10.0.0/16", "20.0.0.0/18", "30.0.0.0/18"]}})");
  ASSERT_EQ(grown.status, 200) << grown.body.dump();
  expectError(
      call("PUT", "/v2.0/subnetpools/" + id, R"({"subnetpool": {"prefixes": ["10.10.0.0/16"]}})"),
      400, "IllegalSubnetPoolPrefixUpdate");
}

TEST_F(SharingTest, SubnetsComeFromThePoolsFreeSpace) {
  std::string p = pool(R"({"name": "p", "prefixes": ["10.11.12.0/24"], "min_prefixlen": 28,
                          "default_prefixlen": 29})");
  std::string net = createNetwork("n");
  auto first = subnetFrom(net, p, R"(, "prefixlen": 30)");
  ASSERT_EQ(first.status, 201) << first.body.dump();
  EXPECT_EQ(first.body["subnet"]["cidr"], "10.11.12.0/30");
  EXPECT_EQ(first.body["subnet"]["subnetpool_id"], p);
  EXPECT_EQ(first.body["subnet"]["gateway_ip"], "10.11.12.1");
  EXPECT_FALSE(first.body["subnet"].contains("prefixlen"));
  // Same pool, same network: the next free block of the default size.
  auto second = subnetFrom(net, p);
  ASSERT_EQ(second.status, 201) << second.body.dump();
  EXPECT_EQ(second.body["subnet"]["cidr"], "10.11.12.8/29");
  expectError(subnetFrom(net, p, R"(, "prefixlen": 27)"), 400, "MinPrefixSubnetAllocationError");
  expectError(subnetFrom(net, p, R"(, "cidr": "10.11.12.64/29", "prefixlen": 29)"), 400,
              "BadRequest",
              "Bad subnets request: cidr and prefixlen must not be supplied together.");
  auto taken = subnetFrom(net, p, R"(, "cidr": "10.11.12.0/29", "prefixlen": null)");
  EXPECT_EQ(taken.status, 409) << taken.body.dump();
  EXPECT_EQ(taken.body["NeutronError"]["type"], "SubnetAllocationError");
  // A pool with subnets stays; without, it goes.
  expectError(call("DELETE", "/v2.0/subnetpools/" + p), 400, "SubnetPoolDeleteError");
  // Another project cannot see it.
  std::string other = createNetwork("o", "p2");
  expectError(subnetFrom(other, p, "", "p2"), 404, "SubnetPoolNotFound");
  // No pool and no CIDR.
  expectError(call("POST", "/v2.0/subnets",
                   R"({"subnet": {"network_id": ")" + net + R"(", "ip_version": 4}})"),
              400, "BadRequest",
              "Bad subnets request: a subnetpool must be specified in the absence of a cidr.");
}

TEST_F(SharingTest, DefaultPoolsAndPrefixOperations) {
  std::string p = pool(R"({"name": "d", "prefixes": ["10.20.0.0/16"], "is_default": true,
                          "default_prefixlen": 24})",
                       kAdmin);
  expectError(call("POST", "/v2.0/subnetpools",
                   R"({"subnetpool": {"name": "d2", "prefixes": ["10.30.0.0/16"],
                       "is_default": true}})",
                   kAdmin),
              400, "HTTPBadRequest");
  // Not shared: the default pool is the admin's own.
  std::string net = createNetwork("n", "admin-project");
  auto r = call("POST", "/v2.0/subnets",
                R"({"subnet": {"network_id": ")" + net +
                    R"(", "ip_version": 4, "use_default_subnetpool": true}})",
                kAdmin);
  ASSERT_EQ(r.status, 201) << r.body.dump();
  EXPECT_EQ(r.body["subnet"]["cidr"], "10.20.0.0/24");
  auto added = call("PUT", "/v2.0/subnetpools/" + p + "/add_prefixes",
                    R"({"prefixes": ["10.21.0.0/16"]})", kAdmin);
  ASSERT_EQ(added.status, 200) << added.body.dump();
  EXPECT_EQ(added.body["prefixes"], Json({"10.20.0.0/15"}));
  expectError(call("PUT", "/v2.0/subnetpools/" + p + "/remove_prefixes",
                   R"({"prefixes": ["10.20.0.0/24"]})", kAdmin),
              400, "IllegalSubnetPoolPrefixUpdate");
  auto removed = call("PUT", "/v2.0/subnetpools/" + p + "/remove_prefixes",
                      R"({"prefixes": ["10.21.0.0/16"]})", kAdmin);
  ASSERT_EQ(removed.status, 200) << removed.body.dump();
  EXPECT_EQ(removed.body["prefixes"], Json({"10.20.0.0/16"}));
  expectError(call("PUT", "/v2.0/subnetpools/" + p + "/add_prefixes", R"({"prefixes": 1})", kAdmin),
              400, "HTTPBadRequest");
}

TEST_F(SharingTest, AddressScopesHoldPoolsWithUniquePrefixes) {
  std::string scope =
      create("address-scopes", "address_scope", R"({"name": "s", "ip_version": 4})");
  auto a = call("POST", "/v2.0/subnetpools",
                R"({"subnetpool": {"name": "a", "prefixes": ["10.0.0.0/16"],
                    "address_scope_id": ")" +
                    scope + "\"}}");
  ASSERT_EQ(a.status, 201) << a.body.dump();
  expectError(call("POST", "/v2.0/subnetpools",
                   R"({"subnetpool": {"name": "b", "prefixes": ["10.0.5.0/24"],
                       "address_scope_id": ")" +
                       scope + "\"}}"),
              409, "AddressScopePrefixConflict");
  expectError(call("POST", "/v2.0/subnetpools",
                   R"({"subnetpool": {"name": "b", "prefixes": ["2001:db8::/32"],
                       "address_scope_id": ")" +
                       scope + "\"}}"),
              400, "IllegalSubnetPoolIpVersionAssociationToAddressScope");
  expectError(call("DELETE", "/v2.0/address-scopes/" + scope), 409, "AddressScopeInUse");
  // A network shows the scope of its subnets' pool.
  std::string net = createNetwork("n");
  ASSERT_EQ(subnetFrom(net, a.body["subnetpool"]["id"], R"(, "prefixlen": 24)").status, 201);
  auto shown = call("GET", "/v2.0/networks/" + net);
  EXPECT_EQ(shown.body["network"]["ipv4_address_scope"], scope);
  EXPECT_TRUE(shown.body["network"]["ipv6_address_scope"].is_null());
  // Another project's scope is not found.
  expectError(call("POST", "/v2.0/subnetpools",
                   R"({"subnetpool": {"name": "c", "prefixes": ["10.9.0.0/16"],
                       "address_scope_id": ")" +
                       scope + "\"}}",
                   "p2"),
              404, "AddressScopeNotFound");
}

TEST_F(SharingTest, ANetworkSharedWithOneProject) {
  std::string net = createNetwork("n");
  EXPECT_EQ(call("GET", "/v2.0/networks/" + net, "", "p2").status, 404);
  auto policy = share("network", net, "p2");
  ASSERT_EQ(policy.status, 201) << policy.body.dump();
  EXPECT_EQ(policy.body["rbac_policy"].size(), 7u);
  auto seen = call("GET", "/v2.0/networks/" + net, "", "p2");
  ASSERT_EQ(seen.status, 200);
  EXPECT_EQ(seen.body["network"]["shared"], true);  // as the target sees it
  EXPECT_EQ(call("GET", "/v2.0/networks/" + net).body["network"]["shared"], false);
  EXPECT_EQ(call("GET", "/v2.0/networks/" + net, "", "p3").status, 404);
  expectError(share("network", net, "p2"), 409, "DuplicateRbacPolicy");
  expectError(share("network", net, "*"), 403, "PolicyNotAuthorized");
  expectError(share("network", net, "p3", "access_as_readonly"), 400, "InvalidActionForType");
  expectError(share("netwrk", net, "p3"), 400, "HTTPBadRequest");
  expectError(share("network", net, "p3", "access_as_shared", "p2"), 400, "HTTPBadRequest");
  // The target does not see the policy; it may use the network.
  EXPECT_EQ(call("GET", "/v2.0/rbac-policies", "", "p2").body["rbac_policies"].size(), 0u);
  ASSERT_EQ(call("POST", "/v2.0/subnets",
                 R"({"subnet": {"network_id": ")" + net +
                     R"(", "ip_version": 4, "cidr": "10.0.0.0/24"}})")
                .status,
            201);
  auto port = call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + net + "\"}}", "p2");
  ASSERT_EQ(port.status, 201) << port.body.dump();
  // While its port is there, the policy stays.
  std::string id = policy.body["rbac_policy"]["id"];
  expectError(call("DELETE", "/v2.0/rbac-policies/" + id), 409, "RbacPolicyInUse");
  ASSERT_EQ(
      call("DELETE", "/v2.0/ports/" + port.body["port"]["id"].get<std::string>(), "", "p2").status,
      204);
  EXPECT_EQ(call("DELETE", "/v2.0/rbac-policies/" + id).status, 204);
  EXPECT_EQ(call("GET", "/v2.0/networks/" + net, "", "p2").status, 404);
}

TEST_F(SharingTest, SharedAndExternalFlagsAreWildcardPolicies) {
  expectError(call("POST", "/v2.0/networks", R"({"network": {"name": "n", "shared": true}})"), 403,
              "PolicyNotAuthorized");  // a member may not share with everyone
  std::string net = createNetwork("n", "p1");
  auto policies = [&] {
    return call("GET", "/v2.0/rbac-policies?object_id=" + net, "", kAdmin).body["rbac_policies"];
  };
  ASSERT_EQ(call("PUT", "/v2.0/networks/" + net, R"({"network": {"shared": true}})", kAdmin).status,
            200);
  ASSERT_EQ(policies().size(), 1u);
  EXPECT_EQ(policies()[0]["target_tenant"], "*");
  EXPECT_EQ(call("GET", "/v2.0/networks/" + net, "", "p9").body["network"]["shared"], true);
  // Deleting the wildcard policy unshares the network.
  std::string id = policies()[0]["id"];
  ASSERT_EQ(call("DELETE", "/v2.0/rbac-policies/" + id, "", kAdmin).status, 204);
  EXPECT_EQ(call("GET", "/v2.0/networks/" + net, "", kAdmin).body["network"]["shared"], false);
  // An external policy makes the network external; the last one going reverts it.
  auto ext = share("network", net, "p2", "access_as_external");
  ASSERT_EQ(ext.status, 201) << ext.body.dump();
  EXPECT_EQ(call("GET", "/v2.0/networks/" + net, "", "p2").body["network"]["router:external"],
            true);
  EXPECT_EQ(call("GET", "/v2.0/networks/" + net, "", "p3").status, 404);
  ASSERT_EQ(
      call("DELETE", "/v2.0/rbac-policies/" + ext.body["rbac_policy"]["id"].get<std::string>())
          .status,
      204);
  EXPECT_EQ(call("GET", "/v2.0/networks/" + net).body["network"]["router:external"], false);
  // Policies go with their network.
  ASSERT_EQ(share("network", net, "p2").status, 201);
  ASSERT_EQ(call("DELETE", "/v2.0/networks/" + net).status, 204);
  EXPECT_EQ(policies().size(), 0u);
}

TEST_F(SharingTest, SharedSecurityGroupsAndPools) {
  std::string group = create("security-groups", "security_group", R"({"name": "g"})");
  std::string net = createNetwork("n", "p2");
  auto use = [&] {
    return call(
        "POST", "/v2.0/ports",
        R"({"port": {"network_id": ")" + net + R"(", "security_groups": [")" + group + "\"]}}",
        "p2");
  };
  expectError(use(), 404, "SecurityGroupNotFound");
  ASSERT_EQ(share("security_group", group, "p2").status, 201);
  EXPECT_EQ(
      call("GET", "/v2.0/security-groups/" + group, "", "p2").body["security_group"]["shared"],
      true);
  EXPECT_EQ(use().status, 201);
  std::string p = pool(R"({"name": "p", "prefixes": ["10.50.0.0/16"], "default_prefixlen": 24})");
  std::string net2 = createNetwork("n2", "p2");
  EXPECT_EQ(subnetFrom(net2, p, "", "p2").status, 404);
  ASSERT_EQ(share("subnetpool", p, "p2").status, 201);
  auto made = subnetFrom(net2, p, "", "p2");
  EXPECT_EQ(made.status, 201) << made.body.dump();
}

TEST_F(SharingTest, AddressGroupsNormaliseAndEditTheirAddresses) {
  auto r = call("POST", "/v2.0/address-groups",
                R"({"address_group": {"name": "a", "description": "d",
                    "addresses": ["10.10.10.3/32", "192.168.0.10/24", "2001:db8::f00/64"]}})");
  ASSERT_EQ(r.status, 201) << r.body.dump();
  std::string id = r.body["address_group"]["id"];
  EXPECT_EQ(r.body["address_group"]["addresses"],
            Json({"10.10.10.3/32", "192.168.0.0/24", "2001:db8::/64"}));
  EXPECT_FALSE(r.body["address_group"].contains("shared"));
  for (const char* bad : {R"(["10.20.30.40"])", R"(["this is bad"])"}) {
    expectError(call("POST", "/v2.0/address-groups",
                     std::string(R"({"address_group": {"addresses": )") + bad + "}}"),
                400, "HTTPBadRequest");
  }
  expectError(call("PUT", "/v2.0/address-groups/" + id + "/add_addresses",
                   R"({"addresses": ["10.10.10.3/32"]})"),
              400, "AddressesAlreadyExist");
  expectError(call("PUT", "/v2.0/address-groups/" + id + "/remove_addresses",
                   R"({"addresses": ["10.200.200.200/32"]})"),
              404, "AddressesNotFound");
  auto renamed =
      call("PUT", "/v2.0/address-groups/" + id, R"({"address_group": {"description": "new"}})");
  ASSERT_EQ(renamed.status, 200) << renamed.body.dump();
  EXPECT_EQ(renamed.body["address_group"]["addresses"].size(), 3u);
  // Rules name it; one remote only.
  std::string group = create("security-groups", "security_group", R"({"name": "g"})");
  expectError(call("POST", "/v2.0/security-group-rules",
                   R"({"security_group_rule": {"security_group_id": ")" + group +
                       R"(", "direction": "ingress", "remote_ip_prefix": "10.0.0.0/8",
                       "remote_address_group_id": ")" +
                       id + "\"}}"),
              400, "SecurityGroupMultipleRemoteEntites");
  expectError(call("POST", "/v2.0/security-group-rules",
                   R"({"security_group_rule": {"security_group_id": ")" + group +
                       R"(", "direction": "ingress", "remote_address_group_id": ")" + id + "\"}}",
                   "p2"),
              404, "SecurityGroupNotFound");
  // Shared with p2, p2's rules may name it, and the policy stays while they do.
  auto policy = share("address_group", id, "p2");
  ASSERT_EQ(policy.status, 201) << policy.body.dump();
  std::string theirs = create("security-groups", "security_group", R"({"name": "t"})", "p2");
  auto rule = call("POST", "/v2.0/security-group-rules",
                   R"({"security_group_rule": {"security_group_id": ")" + theirs +
                       R"(", "direction": "ingress", "remote_address_group_id": ")" + id + "\"}}",
                   "p2");
  ASSERT_EQ(rule.status, 201) << rule.body.dump();
  expectError(
      call("DELETE", "/v2.0/rbac-policies/" + policy.body["rbac_policy"]["id"].get<std::string>()),
      409, "RbacPolicyInUse");
  expectError(call("DELETE", "/v2.0/address-groups/" + id), 409, "AddressGroupInUse");
}

}  // namespace
}  // namespace canopy::api

namespace canopy::api {
namespace {

// Segment ranges: the configured ones are read-only defaults; a project's
// own range gives its networks their ids first, and while a network holds
// one the range may not shrink or go.
TEST_F(SharingTest, SegmentRangesGiveProjectsTheirIds) {
  // As Neutron, the collection answers with underscores too.
  auto list = call("GET", "/v2.0/network_segment_ranges", "", kAdmin);
  EXPECT_EQ(list.status, 200);
  list = call("GET", "/v2.0/network-segment-ranges", "", kAdmin);
  ASSERT_EQ(list.status, 200) << list.body.dump();
  ASSERT_EQ(list.body["network_segment_ranges"].size(), 1u);
  const Json& def = list.body["network_segment_ranges"][0];
  EXPECT_EQ(def["default"], true);
  EXPECT_EQ(def["network_type"], "geneve");
  expectError(
      call("DELETE", "/v2.0/network-segment-ranges/" + def["id"].get<std::string>(), "", kAdmin),
      400, "NetworkSegmentRangeDefaultReadOnly");
  EXPECT_EQ(call("GET", "/v2.0/network-segment-ranges").body["network_segment_ranges"].size(),
            0u);  // a member sees none
  auto r = call("POST", "/v2.0/network-segment-ranges",
                R"({"network_segment_range": {"name": "p7", "network_type": "geneve",
                    "minimum": 5000, "maximum": 5001, "shared": false, "project_id": "p7"}})",
                kAdmin);
  ASSERT_EQ(r.status, 201) << r.body.dump();
  std::string id = r.body["network_segment_range"]["id"];
  expectError(call("POST", "/v2.0/network-segment-ranges",
                   R"({"network_segment_range": {"network_type": "geneve", "minimum": 5001,
                       "maximum": 5010}})",
                   kAdmin),
              409, "NetworkSegmentRangeOverlaps");
  expectError(call("POST", "/v2.0/network-segment-ranges",
                   R"({"network_segment_range": {"network_type": "gre", "minimum": 1,
                       "maximum": 10}})",
                   kAdmin),
              400, "HTTPBadRequest");
  std::string net = createNetwork("n", "p7");
  auto shown = call("GET", "/v2.0/networks/" + net, "", kAdmin);
  int64_t segment = shown.body["network"]["provider:segmentation_id"];
  EXPECT_TRUE(segment == 5000 || segment == 5001) << segment;
  expectError(call("PUT", "/v2.0/network-segment-ranges/" + id,
                   R"({"network_segment_range": {"maximum": 5050, "minimum": )" +
                       std::to_string(segment) + "}}",
                   kAdmin),
              409, "NetworkSegmentRangeReferencedByProject");
  expectError(call("DELETE", "/v2.0/network-segment-ranges/" + id, "", kAdmin), 409,
              "NetworkSegmentRangeReferencedByProject");
  ASSERT_EQ(call("DELETE", "/v2.0/networks/" + net, "", "p7").status, 204);
  EXPECT_EQ(call("DELETE", "/v2.0/network-segment-ranges/" + id, "", kAdmin).status, 204);
}

// Segments: each network's, made and removed with it; an admin names it.
TEST_F(SharingTest, EachNetworkHasItsSegment) {
  std::string net = createNetwork("n", "p1");
  auto list = call("GET", "/v2.0/segments?network_id=" + net, "", kAdmin);
  ASSERT_EQ(list.status, 200) << list.body.dump();
  ASSERT_EQ(list.body["segments"].size(), 1u);
  Json segment = list.body["segments"][0];
  auto network = call("GET", "/v2.0/networks/" + net, "", kAdmin).body["network"];
  EXPECT_EQ(segment["network_type"], network["provider:network_type"]);
  EXPECT_EQ(segment["segmentation_id"], network["provider:segmentation_id"]);
  EXPECT_TRUE(segment["name"].is_null());
  EXPECT_FALSE(segment.contains("project_id"));
  std::string id = segment["id"];
  EXPECT_EQ(call("GET", "/v2.0/segments").body["segments"].size(), 0u);  // admin only
  expectError(call("GET", "/v2.0/segments/" + id), 404, "SegmentNotFound");
  auto named = call("PUT", "/v2.0/segments/" + id, R"({"segment": {"name": "rack-1"}})", kAdmin);
  ASSERT_EQ(named.status, 200) << named.body.dump();
  EXPECT_EQ(named.body["segment"]["name"], "rack-1");
  EXPECT_EQ(named.body["segment"]["revision_number"], 2);
  EXPECT_EQ(named.body["segment"]["created_at"], segment["created_at"]);
  expectError(call("PUT", "/v2.0/segments/" + id, R"({"segment": {"segmentation_id": 7}})", kAdmin),
              400, "HTTPBadRequest");
  expectError(
      call("POST", "/v2.0/segments",
           R"({"segment": {"network_id": ")" + net + R"(", "network_type": "vlan"}})", kAdmin),
      400, "HTTPBadRequest");
  expectError(call("DELETE", "/v2.0/segments/" + id, "", kAdmin), 409, "SegmentInUse");
  ASSERT_EQ(call("DELETE", "/v2.0/networks/" + net, "", "p1").status, 204);
  EXPECT_EQ(call("GET", "/v2.0/segments", "", kAdmin).body["segments"].size(), 0u);
}

}  // namespace
}  // namespace canopy::api
