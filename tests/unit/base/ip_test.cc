#include "base/ip.h"

#include <gtest/gtest.h>

namespace canopy {
namespace {

TEST(IpAddress, ParsesAndPrintsBothFamilies) {
  EXPECT_EQ(IpAddress::parse("10.1.2.3")->toString(), "10.1.2.3");
  EXPECT_EQ(IpAddress::parse("10.1.2.3")->version(), 4);
  EXPECT_EQ(IpAddress::parse("FD00:0::1")->toString(), "fd00::1");
  EXPECT_EQ(IpAddress::parse("fd00::1")->version(), 6);
  for (const char* bad :
       {"", "10.1.2", "10.1.2.256", "1.2.3.4/24", "fd00::1::2", "x", " 1.2.3.4"}) {
    EXPECT_FALSE(IpAddress::parse(bad)) << bad;
  }
}

TEST(IpAddress, ArithmeticAndOrder) {
  auto a = *IpAddress::parse("10.0.0.255");
  EXPECT_EQ(a.plus(1).toString(), "10.0.1.0");
  EXPECT_EQ(a.minus(255).toString(), "10.0.0.0");
  EXPECT_LT(*IpAddress::parse("10.0.0.2"), *IpAddress::parse("10.0.0.10"));
  EXPECT_LT(*IpAddress::parse("255.255.255.255"), *IpAddress::parse("::1"));
  EXPECT_EQ(IpAddress::parse("fd00::ffff")->plus(1).toString(), "fd00::1:0");
}

TEST(IpPrefix, ParsesStrictlyAndSuggestsTheNetwork) {
  auto c = IpPrefix::parseNetwork("10.0.0.0/24");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first().toString(), "10.0.0.0");
  EXPECT_EQ(c->last().toString(), "10.0.0.255");
  EXPECT_EQ(static_cast<uint64_t>(c->size()), 256u);
  auto host = IpPrefix::parseNetwork("10.0.0.5/24");
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().message(),
            "'10.0.0.5/24' isn't a recognized IP subnet cidr, '10.0.0.0/24' is recommended");
  for (const char* bad : {"10.0.0.0", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/2x", "fd00::/129"}) {
    EXPECT_FALSE(IpPrefix::parseNetwork(bad)) << bad;
  }
  auto v6 = IpPrefix::parseNetwork("fd00:1::/64");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->last().toString(), "fd00:1::ffff:ffff:ffff:ffff");
  EXPECT_TRUE(IpPrefix::parseNetwork("::/0"));
  EXPECT_TRUE(IpPrefix::parseNetwork("0.0.0.0/0"));
}

TEST(IpPrefix, ContainsAndOverlaps) {
  auto c = *IpPrefix::parseNetwork("10.0.0.0/24");
  EXPECT_TRUE(c.contains(*IpAddress::parse("10.0.0.0")));
  EXPECT_TRUE(c.contains(*IpAddress::parse("10.0.0.255")));
  EXPECT_FALSE(c.contains(*IpAddress::parse("10.0.1.0")));
  EXPECT_FALSE(c.contains(*IpAddress::parse("::a00:1")));
  EXPECT_TRUE(c.overlaps(*IpPrefix::parseNetwork("10.0.0.128/25")));
  EXPECT_TRUE(c.overlaps(*IpPrefix::parseNetwork("10.0.0.0/16")));
  EXPECT_FALSE(c.overlaps(*IpPrefix::parseNetwork("10.0.1.0/24")));
  EXPECT_FALSE(c.overlaps(*IpPrefix::parseNetwork("fd00::/8")));
}

TEST(IpPrefix, TakesAnAddressWithItsSubnetWhereHostBitsAreAllowed) {
  auto p = IpPrefix::parse("10.0.0.5/24");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address.toString(), "10.0.0.5");
  EXPECT_EQ(p->first().toString(), "10.0.0.0");
  EXPECT_TRUE(p->contains(IpAddress::v4(10, 0, 0, 200)));
  EXPECT_FALSE(IpPrefix::parseNetwork("10.0.0.5/24"));
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/"));
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/-1"));
}

TEST(IpAddress, NumbersAndBytesAreTheSameAddress) {
  auto a = IpAddress::v4(192, 168, 1, 2);
  EXPECT_EQ(a.value(), U128{0xc0a80102});
  EXPECT_EQ(IpAddress::fromValue(4, 0xc0a80102), a);
  auto b = *IpAddress::parse("2001:db8::1");
  EXPECT_EQ(IpAddress::fromValue(6, b.value()), b);
  EXPECT_EQ(IpAddress{}.toString(), "-");
}

}  // namespace
}  // namespace canopy
