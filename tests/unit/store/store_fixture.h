#pragma once
// A SqliteStore in a fresh temp dir, reopenable, for store tests.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "store/sqlite_store.h"
#include "store/store.h"
#include "testing/temp_dir.h"

namespace canopy::store {

class StoreTest : public ::testing::Test {
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
