#include "model/subnet.h"

#include <gtest/gtest.h>

namespace canopy::model {
namespace {

const Caller kUser{.project_id = "p1", .is_admin = false};

// A subnet as the validator leaves it, then completed.
Result<Json> newSubnet(const std::string& body, const std::vector<std::string>& siblings = {}) {
  auto doc = validateAttributes(subnetSpec(), Json::parse(body), Action::Create, kUser);
  if (!doc) return doc.error();
  std::vector<IpPrefix> cidrs;
  for (auto& s : siblings) cidrs.push_back(*IpPrefix::parseNetwork(s));
  if (auto r = completeNewSubnet(*doc, cidrs); !r) return r.error();
  return doc;
}

const char* kNet = R"("network_id": "3f0a1bd5-2b8c-4f3e-9d6a-0c6a2d0e7b11")";

std::string body(const std::string& extra) { return std::string("{") + kNet + ", " + extra + "}"; }

TEST(Subnet, DefaultsForIpv4) {
  auto s = newSubnet(body(R"("ip_version": 4, "cidr": "10.0.0.0/24")"));
  ASSERT_TRUE(s) << s.error().toString();
  EXPECT_EQ((*s)["gateway_ip"], "10.0.0.1");
  EXPECT_EQ((*s)["allocation_pools"],
            Json::parse(R"([{"start": "10.0.0.2", "end": "10.0.0.254"}])"));
  EXPECT_EQ((*s)["enable_dhcp"], true);
  EXPECT_EQ((*s)["dns_nameservers"], Json::array());
  EXPECT_EQ((*s)["host_routes"], Json::array());
  EXPECT_TRUE((*s)["ipv6_ra_mode"].is_null());
}

TEST(Subnet, GatewayInTheMiddleSplitsThePool) {
  auto s = newSubnet(body(R"("ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.100")"));
  ASSERT_TRUE(s) << s.error().toString();
  EXPECT_EQ((*s)["allocation_pools"], Json::parse(R"([{"start": "10.0.0.1", "end": "10.0.0.99"},
                                                        {"start": "10.0.0.101", "end": "10.0.0.254"}])"));
}

TEST(Subnet, NoGateway) {
  auto s = newSubnet(body(R"("ip_version": 4, "cidr": "192.168.5.0/29", "gateway_ip": null)"));
  ASSERT_TRUE(s) << s.error().toString();
  EXPECT_TRUE((*s)["gateway_ip"].is_null());
  EXPECT_EQ((*s)["allocation_pools"],
            Json::parse(R"([{"start": "192.168.5.1", "end": "192.168.5.6"}])"));
}

TEST(Subnet, Ipv6DefaultsAndModes) {
  auto s = newSubnet(body(
      R"("ip_version": 6, "cidr": "fd00:1::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac")"));
  ASSERT_TRUE(s) << s.error().toString();
  EXPECT_EQ((*s)["gateway_ip"], "fd00:1::1");
  EXPECT_EQ((*s)["allocation_pools"][0]["start"], "fd00:1::2");
  EXPECT_EQ((*s)["allocation_pools"][0]["end"], "fd00:1::ffff:ffff:ffff:ffff");
  auto mixed = newSubnet(body(
      R"("ip_version": 6, "cidr": "fd00:1::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful")"));
  ASSERT_FALSE(mixed);
  EXPECT_NE(mixed.error().message().find("must be the same value"), std::string::npos);
  auto v4mode =
      newSubnet(body(R"("ip_version": 4, "cidr": "10.0.0.0/24", "ipv6_ra_mode": "slaac")"));
  EXPECT_FALSE(v4mode);
}

TEST(Subnet, ExplicitPoolsAreChecked) {
  struct Case {
    const char* extra;
    Errc code;
    const char* reason;
  };
  const Case cases[] = {
      {R"("allocation_pools": [{"start": "10.0.0.20", "end": "10.0.0.10"}])", Errc::InvalidArgument,
       "InvalidAllocationPool"},
      {R"("allocation_pools": [{"start": "10.0.0.10", "end": "10.0.1.10"}])", Errc::InvalidArgument,
       "OutOfBoundsAllocationPool"},
      {R"("allocation_pools": [{"start": "10.0.0.0", "end": "10.0.0.10"}])", Errc::InvalidArgument,
       "OutOfBoundsAllocationPool"},
      {R"("allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.50"}, {"start": "10.0.0.40", "end": "10.0.0.60"}])",
       Errc::Conflict, "OverlappingAllocationPools"},
      {R"("allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.50"}])", Errc::Conflict,
       "GatewayConflictWithAllocationPools"},
      {R"("allocation_pools": [{"start": "10.0.0.x", "end": "10.0.0.50"}])", Errc::InvalidArgument,
       "HTTPBadRequest"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.extra);
    auto s = newSubnet(body(std::string(R"("ip_version": 4, "cidr": "10.0.0.0/24", )") + c.extra));
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), c.code);
    EXPECT_EQ(s.error().reason(), c.reason) << s.error().message();
  }
  auto good = newSubnet(body(
      R"("ip_version": 4, "cidr": "10.0.0.0/24", "allocation_pools": [{"start": "10.0.0.100", "end": "10.0.0.200"}])"));
  ASSERT_TRUE(good) << good.error().toString();
}

TEST(Subnet, CidrVersionAndOverlapRules) {
  auto host_bits = newSubnet(body(R"("ip_version": 4, "cidr": "10.0.0.5/24")"));
  ASSERT_FALSE(host_bits);
  EXPECT_EQ(host_bits.error().message(),
            "Invalid input for cidr. Reason: '10.0.0.5/24' isn't a recognized IP subnet cidr, "
            "'10.0.0.0/24' is recommended.");
  EXPECT_FALSE(newSubnet(body(R"("ip_version": 6, "cidr": "10.0.0.0/24")")));
  EXPECT_FALSE(newSubnet(body(R"("ip_version": 5, "cidr": "10.0.0.0/24")")));
  auto overlap = newSubnet(body(R"("ip_version": 4, "cidr": "10.0.0.0/25")"), {"10.0.0.0/24"});
  ASSERT_FALSE(overlap);
  EXPECT_NE(overlap.error().message().find("overlaps with another subnet"), std::string::npos);
  EXPECT_TRUE(newSubnet(body(R"("ip_version": 4, "cidr": "10.0.1.0/24")"), {"10.0.0.0/24"}));
  EXPECT_FALSE(newSubnet(body(R"("ip_version": 4)")));  // cidr required
}

TEST(Subnet, NameserversAndHostRoutes) {
  EXPECT_TRUE(newSubnet(body(
      R"("ip_version": 4, "cidr": "10.0.0.0/24", "dns_nameservers": ["8.8.8.8", "fd00::53"],
         "host_routes": [{"destination": "10.9.0.0/16", "nexthop": "10.0.0.254"}])")));
  auto dup = newSubnet(
      body(R"("ip_version": 4, "cidr": "10.0.0.0/24", "dns_nameservers": ["1.1.1.1", "1.1.1.1"])"));
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message().find("Duplicate nameserver '1.1.1.1'"), std::string::npos);
  EXPECT_FALSE(newSubnet(body(
      R"("ip_version": 4, "cidr": "10.0.0.0/24", "host_routes": [{"destination": "10.9.0.1/16", "nexthop": "10.0.0.254"}])")));
  EXPECT_FALSE(newSubnet(body(
      R"("ip_version": 4, "cidr": "10.0.0.0/24", "host_routes": [{"destination": "10.9.0.0/16"}])")));
}

}  // namespace
}  // namespace canopy::model
