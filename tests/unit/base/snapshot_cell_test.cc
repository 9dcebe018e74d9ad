#include "base/snapshot_cell.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace canopy {
namespace {

struct View {
  int version;
  std::vector<int> data;  // every element equals version: a torn view would show
};

TEST(SnapshotCell, ReadersKeepTheirSnapshotAfterASwap) {
  SnapshotCell<View> cell(std::make_shared<const View>(View{1, {1, 1}}));
  auto held = cell.load();
  cell.store(std::make_shared<const View>(View{2, {2, 2}}));
  EXPECT_EQ(held->version, 1);
  EXPECT_EQ(cell.load()->version, 2);
}

TEST(SnapshotCell, ConcurrentReadersNeverSeeATornView) {
  SnapshotCell<View> cell(std::make_shared<const View>(View{0, std::vector<int>(64, 0)}));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto v = cell.load();
        for (int x : v->data) {
          if (x != v->version) bad.fetch_add(1);
        }
      }
    });
  }
  for (int i = 1; i <= 2000; ++i) {
    cell.store(std::make_shared<const View>(View{i, std::vector<int>(64, i)}));
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(cell.load()->version, 2000);
}

}  // namespace
}  // namespace canopy
