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
  } else {
    EXPECT_TRUE(info.threading.empty());
  }
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
