#include "base/ip_set.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace canopy {
namespace {

IpPrefix P(const char* text) { return *IpPrefix::parse(text); }

std::vector<std::string> texts(const IpSet& s) {
  std::vector<std::string> out;
  for (const auto& p : s.cidrs()) out.push_back(p.toString());
  return out;
}

TEST(IpSet, CompactsAdjacentAndOverlappingPrefixes) {
  IpSet s(4);
  s.add(P("10.10.10.0/24"));
  s.add(P("10.10.0.0/16"));
  s.add(P("10.11.0.0/16"));
  s.add(P("20.0.0.0/18"));
  EXPECT_EQ(texts(s), (std::vector<std::string>{"10.10.0.0/15", "20.0.0.0/18"}));
  s.add(P("2001:db8::/64"));  // another version: ignored
  EXPECT_EQ(s.cidrs().size(), 2u);
}

TEST(IpSet, RemovesAndSplitsIntoAlignedBlocks) {
  IpSet s(4);
  s.add(P("10.0.0.0/24"));
  s.remove(P("10.0.0.0/30"));
  EXPECT_EQ(texts(s), (std::vector<std::string>{"10.0.0.4/30", "10.0.0.8/29", "10.0.0.16/28",
                                                "10.0.0.32/27", "10.0.0.64/26", "10.0.0.128/25"}));
  EXPECT_TRUE(s.contains(P("10.0.0.8/29")));
  EXPECT_FALSE(s.contains(P("10.0.0.0/29")));
  EXPECT_TRUE(s.intersects(P("10.0.0.0/29")));
  EXPECT_FALSE(s.intersects(P("10.0.0.0/30")));
  IpSet all(4);
  all.add(P("10.0.0.0/24"));
  EXPECT_TRUE(all.contains(s));
  EXPECT_FALSE(s.contains(all));
}

TEST(IpSet, CoversTheWholeAddressSpace) {
  IpSet v4(4);
  v4.add(P("0.0.0.0/1"));
  v4.add(P("128.0.0.0/1"));
  EXPECT_EQ(texts(v4), (std::vector<std::string>{"0.0.0.0/0"}));
  IpSet v6(6);
  v6.add(P("::/0"));
  EXPECT_EQ(texts(v6), (std::vector<std::string>{"::/0"}));
  v6.remove(P("::/1"));
  EXPECT_EQ(texts(v6), (std::vector<std::string>{"8000::/1"}));
  v6.remove(P("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"));
  EXPECT_EQ(v6.cidrs().size(), 128u - 1);
}

}  // namespace
}  // namespace canopy
