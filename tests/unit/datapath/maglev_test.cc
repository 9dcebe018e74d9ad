// Maglev tables: shares follow weights, every host builds the same table,
// and a member that goes moves little more than its own share.

#include "datapath/nat/maglev.h"

#include <gtest/gtest.h>

#include <map>

namespace canopy::datapath::nat {
namespace {

std::vector<MaglevMember> members(int n, uint32_t weight = 1) {
  std::vector<MaglevMember> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({.name = "10.0.0." + std::to_string(10 + i) + ":80", .weight = weight});
  }
  return out;
}

std::map<size_t, size_t> shares(const MaglevTable& t) {
  std::map<size_t, size_t> count;
  for (uint16_t owner : t.entries()) ++count[owner];
  return count;
}

TEST(MaglevTest, SharesFollowWeights) {
  std::vector<MaglevMember> m = members(4);
  for (uint32_t i = 0; i < 4; ++i) m[i].weight = i + 1;  // 10%, 20%, 30%, 40%
  MaglevTable t(m);
  ASSERT_EQ(t.entries().size(), MaglevTable::kDefaultSize);
  auto count = shares(t);
  for (size_t i = 0; i < 4; ++i) {
    double share = static_cast<double>(count[i]) / MaglevTable::kDefaultSize;
    EXPECT_NEAR(share, 0.1 * static_cast<double>(i + 1), 0.01) << "member " << i;
  }
}

TEST(MaglevTest, EveryHostBuildsTheSameTable) {
  MaglevTable a(members(7)), b(members(7));
  EXPECT_TRUE(
      std::equal(a.entries().begin(), a.entries().end(), b.entries().begin(), b.entries().end()));
  // The hash is Canopy's own and fixed: a host of another build agrees.
  EXPECT_EQ(stableHash("10.0.0.10:80", 1), stableHash("10.0.0.10:80", 1));
  EXPECT_EQ(stableHash("", 0), 0xf52a15e9a9b5e89bULL) << std::hex << stableHash("", 0);
}

TEST(MaglevTest, AMemberThatGoesMovesLittleMoreThanItsShare) {
  std::vector<MaglevMember> before = members(10);
  std::vector<MaglevMember> after = before;
  after.erase(after.begin() + 3);
  MaglevTable a(before), b(after);
  // Indices shift after the removed one: compare by name.
  size_t moved = 0, own = 0;
  for (size_t e = 0; e < a.entries().size(); ++e) {
    const std::string& was = before[a.entries()[e]].name;
    const std::string& now = after[b.entries()[e]].name;
    if (was == before[3].name) {
      ++own;
    } else if (was != now) {
      ++moved;
    }
  }
  double size = MaglevTable::kDefaultSize;
  EXPECT_NEAR(static_cast<double>(own) / size, 0.1, 0.01);
  // Flows of members that stay mostly stay where they were.
  EXPECT_LT(static_cast<double>(moved) / size, 0.02) << moved << " entries moved";
}

TEST(MaglevTest, NoMemberTakesFlowsWhenNoneCan) {
  EXPECT_FALSE(MaglevTable({}).pick(42));
  EXPECT_FALSE(MaglevTable(members(3, 0)).pick(42));
  std::vector<MaglevMember> m = members(3, 0);
  m[1].weight = 5;
  MaglevTable t(m, 251);
  for (uint64_t h = 0; h < 1000; ++h) EXPECT_EQ(t.pick(h), 1u);
}

}  // namespace
}  // namespace canopy::datapath::nat
