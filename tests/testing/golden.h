#pragma once
// Golden files: compares `actual` with tests/golden/<relative_path> and, with
// CANOPY_UPDATE_GOLDEN=1 in the environment, rewrites the file instead (review
// the diff). Tests that use it also check their outcome directly, so a wrong
// golden file cannot hide a wrong answer.
//
//   canopy::testing::expectGolden("trace/routed_allowed.txt", rendered);
//
// CANOPY_GOLDEN_DIR is defined by the test's CMake target.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace canopy::testing {

inline void expectGolden(const std::string& relative_path, const std::string& actual) {
  std::string path = std::string(CANOPY_GOLDEN_DIR) + "/" + relative_path;
  if (std::getenv("CANOPY_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path) << actual;
    return;
  }
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "no golden file " << path << " (CANOPY_UPDATE_GOLDEN=1 writes it)";
  std::stringstream expected;
  expected << in.rdbuf();
  EXPECT_EQ(expected.str(), actual)
      << "golden file " << path << " (CANOPY_UPDATE_GOLDEN=1 rewrites it)";
}

}  // namespace canopy::testing
