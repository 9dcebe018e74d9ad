// extra_dhcp_opts as the DHCP servers send them: DHCPv6 options by
// dnsmasq's names or a number, with their values encoded per option.

#include "model/dhcp_options.h"

#include <gtest/gtest.h>

namespace canopy::model {
namespace {

std::vector<uint8_t> bytes(std::initializer_list<int> list) {
  std::vector<uint8_t> out;
  for (int b : list) out.push_back(static_cast<uint8_t>(b));
  return out;
}

TEST(Dhcpv6Options, NamedOptionsAreEncodedAsTheirRfcsSay) {
  auto dns = encodeDhcpv6Option("dns-server", "fd00::1,fd00::2");
  ASSERT_TRUE(dns);
  EXPECT_EQ(dns->code, 23);
  ASSERT_EQ(dns->value.size(), 32u);
  EXPECT_EQ(dns->value[15], 1);
  EXPECT_EQ(dns->value[31], 2);
  auto search = encodeDhcpv6Option("option6:domain-search", "a.example.,b");
  ASSERT_TRUE(search);
  EXPECT_EQ(search->code, 24);
  EXPECT_EQ(search->value, bytes({1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 1, 'b', 0}));
  auto ntp = encodeDhcpv6Option("ntp-server", "fd00::7b");
  ASSERT_TRUE(ntp);
  EXPECT_EQ(ntp->code, 56);
  ASSERT_EQ(ntp->value.size(), 20u);  // one server-address suboption
  EXPECT_EQ(ntp->value[1], 1);
  auto refresh = encodeDhcpv6Option("information-refresh-time", "3600");
  ASSERT_TRUE(refresh);
  EXPECT_EQ(refresh->value, bytes({0, 0, 0x0e, 0x10}));
  auto raw = encodeDhcpv6Option("1234", "text");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->code, 1234);
  EXPECT_EQ(raw->value, bytes({'t', 'e', 'x', 't'}));
}

TEST(Dhcpv6Options, BadNamesAndValuesAreRefusedWithTheReason) {
  EXPECT_FALSE(encodeDhcpv6Option("tftp-server", "fd00::1"));  // a DHCPv4 name
  EXPECT_FALSE(encodeDhcpv6Option("70000", "x"));
  auto v4 = encodeDhcpv6Option("dns-server", "192.0.2.1");
  ASSERT_FALSE(v4);
  EXPECT_NE(v4.error().message().find("IPv6"), std::string::npos) << v4.error().message();
  EXPECT_FALSE(encodeDhcpv6Option("domain-search", "bad domain"));
  EXPECT_FALSE(encodeDhcpv6Option("information-refresh-time", "soon"));
  EXPECT_FALSE(encodeDhcpv6Option("bootfile-url", ""));
}

}  // namespace
}  // namespace canopy::model
