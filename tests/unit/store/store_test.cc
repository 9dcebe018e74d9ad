#include <gtest/gtest.h>

#include "store/etcd_store.h"
#include "store_fixture.h"

namespace canopy::store {
namespace {

TEST_P(StoreTest, FreshStoreIsEmpty) {
  EXPECT_EQ(store().revision(), etcd() ? 2 : 0);  // etcd starts at 1; the layout is one put
  EXPECT_EQ(store().compactedRevision(), 0);
  EXPECT_TRUE(must(store().range("/a")).kvs.empty());
  EXPECT_EQ(must(store().range("")).kvs.size(), etcd() ? 1u : 0u);  // /canopy/layout
  EXPECT_FALSE(must(store().get("/a")).has_value());
  EXPECT_EQ(store().revision(), r(0));
}

TEST_P(StoreTest, PutAssignsRevisionsAndVersions) {
  EXPECT_EQ(must(store().put("/a", "1")), r(1));
  EXPECT_EQ(must(store().put("/b", "2")), r(2));
  EXPECT_EQ(must(store().put("/a", "3")), r(3));
  auto a = must(store().get("/a"));
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, (KeyValue{"/a", "3", r(1), r(3), 2}));
  EXPECT_EQ(store().revision(), r(3));
}

TEST_P(StoreTest, DeleteResetsVersionAndRecreateGetsNewCreateRevision) {
  must(store().put("/a", "1"));
  EXPECT_EQ(must(store().del("/a")), 1);
  EXPECT_EQ(store().revision(), r(2));
  EXPECT_FALSE(must(store().get("/a")));
  must(store().put("/a", "again"));
  EXPECT_EQ(*must(store().get("/a")), (KeyValue{"/a", "again", r(3), r(3), 1}));
}

TEST_P(StoreTest, ChangelessTransactionsKeepTheRevision) {
  must(store().put("/a", "1"));
  EXPECT_EQ(must(store().del("/missing")), 0);
  must(store().get("/a"));
  const Op del_none[] = {Op::deletePrefix("/nothing/")};
  EXPECT_EQ(must(store().txn({}, del_none, {})).revision, r(1));
  EXPECT_EQ(store().revision(), r(1));
}

TEST_P(StoreTest, KeysAndValuesAreBytes) {
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

TEST_P(StoreTest, RangeByPrefixIsSortedBytewiseAndExact) {
  for (const char* k : {"/net/b", "/net/a", "/net0", "/ne", "/port/x", "/net/\xff"}) {
    must(store().put(k, "v"));
  }
  auto r = must(store().range("/net/"));
  std::vector<std::string> keys;
  for (auto& kv : r.kvs) keys.push_back(kv.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"/net/a", "/net/b", "/net/\xff"}));
  EXPECT_EQ(r.revision, this->r(6));
  EXPECT_EQ(must(store().range("/")).kvs.size(), etcd() ? 7u : 6u);  // and /canopy/layout
}

TEST_P(StoreTest, CompareSelectsTheBranch) {
  must(store().put("/k", "v1"));
  const Compare holds[] = {Compare::valueIs("/k", Compare::Op::Equal, "v1"),
                           Compare::modRevisionIs("/k", Compare::Op::Equal, this->r(1)),
                           Compare::exists("/k"), Compare::absent("/other"),
                           Compare::versionIs("/k", Compare::Op::Less, 2)};
  const Op then[] = {Op::put("/k", "v2"), Op::get("/k")};
  const Op otherwise[] = {Op::get("/k")};
  auto r = must(store().txn(holds, then, otherwise));
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.revision, this->r(2));
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_EQ(r.results[1].kvs.at(0).value, "v2");  // reads see earlier writes of the branch

  const Compare fails[] = {Compare::modRevisionIs("/k", Compare::Op::Equal, this->r(1))};
  auto r2 = must(store().txn(fails, then, otherwise));
  EXPECT_FALSE(r2.succeeded);
  EXPECT_EQ(r2.revision, this->r(2));
  ASSERT_EQ(r2.results.size(), 1u);
  EXPECT_EQ(r2.results[0].kvs.at(0).value, "v2");
}

TEST_P(StoreTest, ValueCompareOnAbsentKeyIsFalseEvenForNotEqual) {
  const Compare c[] = {Compare::valueIs("/none", Compare::Op::NotEqual, "x")};
  EXPECT_FALSE(must(store().txn(c, {}, {})).succeeded);
  const Compare v0[] = {Compare::versionIs("/none", Compare::Op::Equal, 0),
                        Compare::modRevisionIs("/none", Compare::Op::Equal, 0)};
  EXPECT_TRUE(must(store().txn(v0, {}, {})).succeeded);
}

TEST_P(StoreTest, MultiKeyTransactionSharesOneRevision) {
  const Op ops[] = {Op::put("/a", "1"), Op::put("/b", "2"), Op::put("/c", "3")};
  EXPECT_EQ(must(store().txn({}, ops, {})).revision, r(1));
  for (const char* key : {"/a", "/b", "/c"}) EXPECT_EQ(must(store().get(key))->mod_revision, r(1));
}

TEST_P(StoreTest, DeletePrefixRemovesOnlyThatPrefix) {
  for (const char* k : {"/p/1", "/p/2", "/p/3/x", "/q/1", "/p"}) must(store().put(k, "v"));
  const Op ops[] = {Op::deletePrefix("/p/")};
  auto r = must(store().txn({}, ops, {}));
  EXPECT_EQ(r.results[0].deleted, 3);
  EXPECT_EQ(r.revision, this->r(6));
  std::vector<std::string> keys;
  for (auto& kv : must(store().range("/p")).kvs) keys.push_back(kv.key);
  for (auto& kv : must(store().range("/q")).kvs) keys.push_back(kv.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"/p", "/q/1"}));
}

TEST_P(StoreTest, BranchMayNotWriteAKeyTwice) {
  const Op twice[] = {Op::put("/a", "1"), Op::del("/a")};
  auto r = store().txn({}, twice, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::InvalidArgument);
  const Op overlap[] = {Op::put("/p/a", "1"), Op::deletePrefix("/p/")};
  EXPECT_FALSE(store().txn({}, overlap, {}));
  const Op empty_key[] = {Op::put("", "1")};
  EXPECT_FALSE(store().txn({}, empty_key, {}));
  EXPECT_EQ(store().revision(), this->r(0));  // nothing of a refused transaction happened
}

TEST_P(StoreTest, DataAndRevisionSurviveReopen) {
  must(store().put("/a", "1"));
  must(store().put("/a", "2"));
  must(store().del("/a"));
  must(store().put("/b", "x"));
  reopen();
  EXPECT_EQ(store().revision(), r(4));
  EXPECT_FALSE(must(store().get("/a")));
  EXPECT_EQ(*must(store().get("/b")), (KeyValue{"/b", "x", r(4), r(4), 1}));
  EXPECT_EQ(must(store().put("/c", "y")), r(5));
}

TEST(PrefixEnd, IncrementsLastByteAndDropsFF) {
  EXPECT_EQ(prefixEnd("/a"), "/b");
  EXPECT_EQ(prefixEnd(std::string("/a\xff", 3)), "/b");
  EXPECT_EQ(prefixEnd(""), "");
  EXPECT_EQ(prefixEnd(std::string("\xff\xff", 2)), "");
}

TEST(OpenUrl, RejectsUnknownSchemes) {
  auto r = open("zookeeper://127.0.0.1:2181");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::InvalidArgument);
  EXPECT_NE(r.error().message().find("sqlite:PATH"), std::string::npos);
  EXPECT_NE(r.error().message().find("etcd://HOST:PORT"), std::string::npos);
}

TEST(OpenUrl, RejectsMalformedEtcdEndpoints) {
  for (const char* url : {"etcd://", "etcd://host", "etcd://:2379", "etcd://h:0", "etcd://h:99999",
                          "etcd://h:1,", "etcd://h:1,,h:2", "etcd://h:2379x"}) {
    auto r = open(url);
    ASSERT_FALSE(r) << url;
    EXPECT_EQ(r.error().code(), Errc::InvalidArgument) << url;
    EXPECT_NE(r.error().message().find("HOST:PORT"), std::string::npos) << r.error().message();
  }
  auto parsed = EtcdStore::parse("//a:1,b.example:2,[::1]:3");
  ASSERT_TRUE(parsed) << parsed.error().toString();
  EXPECT_EQ(parsed->endpoints, (std::vector<std::string>{"a:1", "b.example:2", "[::1]:3"}));
}

TEST(OpenUrl, EtcdThatDoesNotAnswerIsUnavailable) {
  // Port 1 (tcpmux) has no listener here: every attempt is refused.
  auto r = EtcdStore::open({.endpoints = {"127.0.0.1:1"},
                            .connect_timeout = std::chrono::milliseconds(200),
                            .request_timeout = std::chrono::milliseconds(1000)});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Unavailable);
  EXPECT_NE(r.error().message().find("127.0.0.1:1"), std::string::npos) << r.error().message();
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values(Backend::Sqlite, Backend::Etcd),
                         backendName);

TEST(OpenUrl, AcceptsSqliteScheme) {
  canopy::testing::TempDir dir;
  auto r = open("sqlite:" + dir.file("x.db"));
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ((*r)->revision(), 0);
}

}  // namespace
}  // namespace canopy::store
