// The model's one writer path: every write compares what it read, a writer
// that lost a race starts over from a fresh read and keeps the other's
// change, one that keeps losing gets Conflict, and an error from the build
// writes nothing.

#include "state/transaction.h"

#include <gtest/gtest.h>

#include "state/model_state.h"
#include "store/sqlite_store.h"
#include "testing/temp_dir.h"

namespace canopy::state {
namespace {

class TransactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::SqliteStore::open({.path = dir_.file("canopy.db")});
    ASSERT_TRUE(s) << s.error().toString();
    store_ = std::move(*s);
    // Two writers on one store, as two server replicas would be.
    mine_ = std::make_unique<ModelState>(*store_);
    theirs_ = std::make_unique<ModelState>(*store_);
    ASSERT_TRUE(mine_->start());
    ASSERT_TRUE(theirs_->start());
  }
  void TearDown() override {
    mine_.reset();
    theirs_.reset();
    store_.reset();
  }
  static Result<store::Revision> set(ModelState& state, const std::string& id, const Json& doc) {
    return state.write({}, [&](Transaction& txn) -> Result<void> {
      txn.update("ports", id, doc);
      return ok();
    });
  }
  static Json get(ModelState& state, const std::string& id) {
    return state.read([&](const Tables& t) {
      const Document* d = t.find("ports", id);
      return d == nullptr ? Json() : d->doc;
    });
  }

  canopy::testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ModelState> mine_;
  std::unique_ptr<ModelState> theirs_;
};

TEST_F(TransactionTest, ALostRaceIsRetriedFromAFreshRead) {
  ASSERT_TRUE(set(*mine_, "p1", {{"a", 0}, {"b", 0}}));
  int builds = 0;
  auto r = mine_->write({}, [&](Transaction& txn) -> Result<void> {
    if (++builds == 1) {
      // The other replica changes the document between our read and commit.
      EXPECT_TRUE(set(*theirs_, "p1", {{"a", 1}, {"b", 0}}));
    }
    Json doc = txn.find("ports", "p1")->doc;
    doc["b"] = 2;
    txn.update("ports", "p1", doc);
    return ok();
  });
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(builds, 2);
  EXPECT_EQ(get(*mine_, "p1"), (Json{{"a", 1}, {"b", 2}})) << "both changes kept";
}

TEST_F(TransactionTest, CreatingWhatAnotherWriterCreatedMeanwhileConflicts) {
  int builds = 0;
  auto r = mine_->write({.attempts = 1}, [&](Transaction& txn) -> Result<void> {
    if (++builds == 1) {
      EXPECT_TRUE(set(*theirs_, "p2", {{"who", "theirs"}}));
    }
    txn.update("ports", "p2", {{"who", "mine"}});  // read as absent: guarded so
    return ok();
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Conflict);
  EXPECT_EQ(get(*theirs_, "p2"), (Json{{"who", "theirs"}}));
}

TEST_F(TransactionTest, AWriterThatKeepsLosingGetsConflict) {
  ASSERT_TRUE(set(*mine_, "p3", {{"n", 0}}));
  int builds = 0;
  auto r = mine_->write({.attempts = 3}, [&](Transaction& txn) -> Result<void> {
    ++builds;
    EXPECT_TRUE(set(*theirs_, "p3", {{"n", builds}}));
    txn.erase("ports", "p3");
    return ok();
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Conflict);
  EXPECT_EQ(builds, 3);
  EXPECT_EQ(get(*theirs_, "p3"), (Json{{"n", 3}})) << "the loser removed nothing";
}

TEST_F(TransactionTest, AnErrorFromTheBuildWritesNothing) {
  auto r = mine_->write({}, [&](Transaction& txn) -> Result<void> {
    txn.update("ports", "p4", {{"x", 1}});
    return Error(Errc::InvalidArgument, "no");
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::InvalidArgument);
  EXPECT_TRUE(get(*mine_, "p4").is_null());
}

TEST_F(TransactionTest, ClaimsAreCreatedOnlyIfAbsent) {
  auto claim = [&](ModelState& state, const std::string& value) {
    return state.write({.attempts = 1}, [&](Transaction& txn) -> Result<void> {
      txn.claim(std::string(kPrefix) + "claims/mac/n1/fa:16:3e:00:00:01", value);
      return ok();
    });
  };
  ASSERT_TRUE(claim(*mine_, "port-a"));
  auto second = claim(*theirs_, "port-b");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), Errc::Conflict);
}

TEST_F(TransactionTest, AnEmptyTransactionCommitsNothing) {
  auto before = mine_->appliedRevision();
  auto r = mine_->write({}, [](Transaction&) { return ok(); });
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, before);
  EXPECT_EQ(mine_->appliedRevision(), before);
}

}  // namespace
}  // namespace canopy::state
