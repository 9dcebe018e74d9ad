#include <gtest/gtest.h>

#include "store_fixture.h"

namespace canopy::store {
namespace {

TEST_F(StoreTest, FreshStoreIsEmptyAtRevisionZero) {
  EXPECT_EQ(store().revision(), 0);
  EXPECT_EQ(store().compactedRevision(), 0);
  EXPECT_TRUE(must(store().range("")).kvs.empty());
  EXPECT_FALSE(must(store().get("/a")).has_value());
}

TEST_F(StoreTest, PutAssignsRevisionsAndVersions) {
  EXPECT_EQ(must(store().put("/a", "1")), 1);
  EXPECT_EQ(must(store().put("/b", "2")), 2);
  EXPECT_EQ(must(store().put("/a", "3")), 3);
  auto a = must(store().get("/a"));
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, (KeyValue{"/a", "3", 1, 3, 2}));
  EXPECT_EQ(store().revision(), 3);
}

TEST_F(StoreTest, DeleteResetsVersionAndRecreateGetsNewCreateRevision) {
  must(store().put("/a", "1"));
  EXPECT_EQ(must(store().del("/a")), 1);
  EXPECT_EQ(store().revision(), 2);
  EXPECT_FALSE(must(store().get("/a")));
  must(store().put("/a", "again"));
  EXPECT_EQ(*must(store().get("/a")), (KeyValue{"/a", "again", 3, 3, 1}));
}

TEST_F(StoreTest, ChangelessTransactionsKeepTheRevision) {
  must(store().put("/a", "1"));
  EXPECT_EQ(must(store().del("/missing")), 0);
  must(store().get("/a"));
  const Op del_none[] = {Op::deletePrefix("/nothing/")};
  EXPECT_EQ(must(store().txn({}, del_none, {})).revision, 1);
  EXPECT_EQ(store().revision(), 1);
}

TEST_F(StoreTest, KeysAndValuesAreBytes) {
  std::string key("/bin\0\xff\x01", 7);
  std::string value("\0\0\xfe", 3);
  must(store().put(key, value));
  must(store().put("/empty", ""));
  auto kv = must(store().get(key));
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->value, value);
  EXPECT_EQ(must(store().get("/empty"))->value, "");
  reopen();
  EXPECT_EQ(must(store().get(key))->value, value);
}

TEST_F(StoreTest, RangeByPrefixIsSortedBytewiseAndExact) {
  for (const char* k : {"/net/b", "/net/a", "/net0", "/ne", "/port/x", "/net/\xff"}) {
    must(store().put(k, "v"));
  }
  auto r = must(store().range("/net/"));
  std::vector<std::string> keys;
  for (auto& kv : r.kvs) keys.push_back(kv.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"/net/a", "/net/b", "/net/\xff"}));
  EXPECT_EQ(r.revision, 6);
  EXPECT_EQ(must(store().range("")).kvs.size(), 6u);
}

TEST_F(StoreTest, CompareSelectsTheBranch) {
  must(store().put("/k", "v1"));
  const Compare holds[] = {Compare::valueIs("/k", Compare::Op::Equal, "v1"),
                           Compare::modRevisionIs("/k", Compare::Op::Equal, 1),
                           Compare::exists("/k"), Compare::absent("/other"),
                           Compare::versionIs("/k", Compare::Op::Less, 2)};
  const Op then[] = {Op::put("/k", "v2"), Op::get("/k")};
  const Op otherwise[] = {Op::get("/k")};
  auto r = must(store().txn(holds, then, otherwise));
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.revision, 2);
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_EQ(r.results[1].kvs.at(0).value, "v2");  // reads see earlier writes of the branch

  const Compare fails[] = {Compare::modRevisionIs("/k", Compare::Op::Equal, 1)};
  auto r2 = must(store().txn(fails, then, otherwise));
  EXPECT_FALSE(r2.succeeded);
  EXPECT_EQ(r2.revision, 2);
  ASSERT_EQ(r2.results.size(), 1u);
  EXPECT_EQ(r2.results[0].kvs.at(0).value, "v2");
}

TEST_F(StoreTest, ValueCompareOnAbsentKeyIsFalseEvenForNotEqual) {
  const Compare c[] = {Compare::valueIs("/none", Compare::Op::NotEqual, "x")};
  EXPECT_FALSE(must(store().txn(c, {}, {})).succeeded);
  const Compare v0[] = {Compare::versionIs("/none", Compare::Op::Equal, 0),
                        Compare::modRevisionIs("/none", Compare::Op::Equal, 0)};
  EXPECT_TRUE(must(store().txn(v0, {}, {})).succeeded);
}

TEST_F(StoreTest, MultiKeyTransactionSharesOneRevision) {
  const Op ops[] = {Op::put("/a", "1"), Op::put("/b", "2"), Op::put("/c", "3")};
  EXPECT_EQ(must(store().txn({}, ops, {})).revision, 1);
  for (auto& kv : must(store().range("/")).kvs) EXPECT_EQ(kv.mod_revision, 1);
}

TEST_F(StoreTest, DeletePrefixRemovesOnlyThatPrefix) {
  for (const char* k : {"/p/1", "/p/2", "/p/3/x", "/q/1", "/p"}) must(store().put(k, "v"));
  const Op ops[] = {Op::deletePrefix("/p/")};
  auto r = must(store().txn({}, ops, {}));
  EXPECT_EQ(r.results[0].deleted, 3);
  EXPECT_EQ(r.revision, 6);
  std::vector<std::string> keys;
  for (auto& kv : must(store().range("")).kvs) keys.push_back(kv.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"/p", "/q/1"}));
}

TEST_F(StoreTest, BranchMayNotWriteAKeyTwice) {
  const Op twice[] = {Op::put("/a", "1"), Op::del("/a")};
  auto r = store().txn({}, twice, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::InvalidArgument);
  const Op overlap[] = {Op::put("/p/a", "1"), Op::deletePrefix("/p/")};
  EXPECT_FALSE(store().txn({}, overlap, {}));
  const Op empty_key[] = {Op::put("", "1")};
  EXPECT_FALSE(store().txn({}, empty_key, {}));
  EXPECT_EQ(store().revision(), 0);  // nothing of a refused transaction happened
}

TEST_F(StoreTest, DataAndRevisionSurviveReopen) {
  must(store().put("/a", "1"));
  must(store().put("/a", "2"));
  must(store().del("/a"));
  must(store().put("/b", "x"));
  reopen();
  EXPECT_EQ(store().revision(), 4);
  EXPECT_FALSE(must(store().get("/a")));
  EXPECT_EQ(*must(store().get("/b")), (KeyValue{"/b", "x", 4, 4, 1}));
  EXPECT_EQ(must(store().put("/c", "y")), 5);
}

TEST(PrefixEnd, IncrementsLastByteAndDropsFF) {
  EXPECT_EQ(prefixEnd("/a"), "/b");
  EXPECT_EQ(prefixEnd(std::string("/a\xff", 3)), "/b");
  EXPECT_EQ(prefixEnd(""), "");
  EXPECT_EQ(prefixEnd(std::string("\xff\xff", 2)), "");
}

TEST(OpenUrl, RejectsUnknownSchemes) {
  auto r = open("etcd://127.0.0.1:2379");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::InvalidArgument);
  EXPECT_NE(r.error().message().find("sqlite:PATH"), std::string::npos);
}

TEST(OpenUrl, AcceptsSqliteScheme) {
  canopy::testing::TempDir dir;
  auto r = open("sqlite:" + dir.file("x.db"));
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ((*r)->revision(), 0);
}

}  // namespace
}  // namespace canopy::store
