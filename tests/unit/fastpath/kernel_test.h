#pragma once
// What the fast path's tests with the real programs share: the programs
// loaded (the test skipped without root, or when the build has no BPF), and
// the test's thread in a network namespace of its own for the interfaces it
// makes, with the namespaces it names deleted after it.
//
//   class MyTest : public KernelTest {
//     void SetUp() override {
//       KernelTest::SetUp();
//       if (IsSkipped() || HasFatalFailure()) return;
//       ASSERT_TRUE(addNamespace(name));
//       ... fp_->attach(...)
//     }
//   };

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fastpath/fast_path.h"

namespace canopy::fastpath {

// A command, quietly; whether it succeeded.
inline bool sh(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

class KernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    auto fp = FastPath::open();
    if (!fp && fp.error().message().find("built without BPF") != std::string::npos) {
      GTEST_SKIP() << fp.error().message();
    }
    ASSERT_TRUE(fp) << fp.error().message();
    fp_ = std::move(*fp);
    home_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
  }
  void TearDown() override {
    fp_.reset();
    if (home_ >= 0) {
      ::setns(home_, CLONE_NEWNET);  // the test's namespace goes, with its veths
      ::close(home_);
    }
    for (const auto& ns : namespaces_) sh("ip netns del " + ns);
  }

  // A named network namespace of the test's (deleted after it).
  bool addNamespace(const std::string& name) {
    if (!sh("ip netns add " + name)) return false;
    namespaces_.push_back(name);
    return true;
  }

  std::unique_ptr<FastPath> fp_;
  std::vector<std::string> namespaces_;
  int home_ = -1;
};

}  // namespace canopy::fastpath
