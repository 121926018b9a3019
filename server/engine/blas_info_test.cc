#include "server/engine/blas_info.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace npystream {
namespace {

std::string Maps() {
  std::ifstream in("/proc/self/maps");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// This test links LibTorch, which loads a libblas.so.3.
TEST(BlasInfoTest, NamesTheLoadedLibraryThatDefinesSgemm) {
  const BlasInfo info = ProbeBlas();
  ASSERT_FALSE(info.library.empty());
  EXPECT_TRUE(absl::StrContains(Maps(), info.library)) << info.library;
  if (!info.openblas.empty()) {
    EXPECT_TRUE(absl::StartsWith(info.openblas, "OpenBLAS")) << info.openblas;
    EXPECT_TRUE(info.threading == "serial" || info.threading == "pthreads" ||
                info.threading == "openmp")
        << info.threading;
    EXPECT_FALSE(info.reference);
    EXPECT_GE(info.threads, 1);
  } else {
    EXPECT_TRUE(info.threading.empty());
    EXPECT_EQ(info.threads, 0);
  }
}

// The serial OpenBLAS has one thread and nothing to limit; a threaded one is
// tested by tests/test_inference.py against the pthreads build.
TEST(BlasInfoTest, LimitingThreadsLeavesTheSerialBuildAlone) {
  const BlasInfo info = LimitBlasThreads(4);
  if (info.threading != "serial") GTEST_SKIP() << "not the serial OpenBLAS: " << info.library;
  EXPECT_EQ(info.threads, 1);
}

// scripts/deps.sh installs the serial OpenBLAS, which the alternatives
// prefer to the reference BLAS.
TEST(BlasInfoTest, TheProjectsDependenciesGiveOpenBlas) {
  const BlasInfo info = ProbeBlas();
  EXPECT_FALSE(info.reference) << info.library;
  EXPECT_TRUE(absl::StartsWith(info.openblas, "OpenBLAS")) << info.library;
}

}  // namespace
}  // namespace npystream
