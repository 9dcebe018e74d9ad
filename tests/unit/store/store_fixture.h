#pragma once
// A store for the store's tests, on each backend: the embedded SQLite file in
// a fresh temp dir, and a real etcd member (tests/testing/etcd_cluster.h)
// started for the test. Reopenable (a new client on the same data), and
// revisions relative to where the fresh store started (etcd starts at 1 and
// records Canopy's layout version), so one test states both backends'
// semantics.

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "store/sqlite_store.h"
#include "store/store.h"
#include "testing/etcd_cluster.h"
#include "testing/temp_dir.h"

namespace canopy::store {

enum class Backend { Sqlite, Etcd };

inline std::string backendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::Sqlite ? "sqlite" : "etcd";
}

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::Etcd) {
      etcd_.emplace(1);
      ASSERT_TRUE(etcd_->ready()) << etcd_->log();
    }
    reopen();
    base_ = store_->revision();
  }

  void reopen() {
    store_.reset();
    auto s = open(url());
    ASSERT_TRUE(s) << s.error().toString();
    store_ = std::move(*s);
  }

  std::string url() const {
    return GetParam() == Backend::Etcd ? etcd_->url() : "sqlite:" + path();
  }
  std::string path() const { return dir_.file("canopy.db"); }
  Store& store() { return *store_; }
  // The store's revision `n` revisions after the test began.
  Revision r(Revision n) const { return base_ + n; }
  bool etcd() const { return GetParam() == Backend::Etcd; }

  canopy::testing::TempDir dir_;
  std::optional<canopy::testing::EtcdCluster> etcd_;
  std::unique_ptr<Store> store_;
  Revision base_ = 0;
};

// The embedded backend alone (its file, its lock).
class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  void reopen() {
    store_.reset();
    auto s = SqliteStore::open({.path = path()});
    ASSERT_TRUE(s) << s.error().toString();
    store_ = std::move(*s);
  }

  std::string path() const { return dir_.file("canopy.db"); }
  Store& store() { return *store_; }

  canopy::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
};

// Unwraps a Result in a test, failing with its message.
template <typename T>
T must(Result<T> r) {
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().toString());
  if (!r) throw std::runtime_error(r.error().toString());
  return std::move(r).value();
}

}  // namespace canopy::store
