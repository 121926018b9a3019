#include "server/npy/npy_writer.h"

#include <string>

#include "gtest/gtest.h"
#include "server/npy/npy_parser.h"
#include "server/testing/numpy_cases_testing.h"

namespace npystream::npy {
namespace {

using testing::NumpyCasesDir;
using testing::NumpyManifest;
using testing::ReadFile;

// For every array numpy.save wrote (every dtype x shape), our header from
// the same dtype and shape equals numpy's bytes exactly.
TEST(NpyWriterTest, HeaderIsByteIdenticalToNumpySave) {
  int compared = 0;
  const auto manifest = NumpyManifest();
  for (const auto& c : manifest["valid"]) {
    if (c["fortran_order"].get<bool>() || c["version"][0].get<int>() != 1) {
      continue;  // numpy.save only writes those for Fortran arrays / on request
    }
    SCOPED_TRACE(c["file"].get<std::string>());
    const std::string bytes = ReadFile(NumpyCasesDir() + "/" + c["file"].get<std::string>());
    ArrayMeta meta;
    meta.dtype = *DTypeFromDescr(c["descr"].get<std::string>());
    meta.shape = c["shape"].get<std::vector<int64_t>>();
    const std::string header = WriteHeader(meta);
    ASSERT_LE(header.size(), bytes.size());
    EXPECT_EQ(header, bytes.substr(0, header.size()));
    EXPECT_EQ(header.size() % 64, 0u);
    if (meta.NumElements() < (1u << 30)) {
      EXPECT_EQ(bytes.size(), header.size() + meta.NumBytes());
    }
    ++compared;
  }
  EXPECT_GE(compared, kNumDTypes * 8);
}

TEST(NpyWriterTest, RoundTripsThroughTheParser) {
  for (int d = 0; d < kNumDTypes; ++d) {
    ArrayMeta meta;
    meta.dtype = static_cast<DType>(d);
    meta.shape = {2, 0, 3};
    const std::string header = WriteHeader(meta);
    absl::StatusOr<ArrayMeta> back = ParseHeader(header);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->dtype, meta.dtype);
    EXPECT_EQ(back->shape, meta.shape);
    EXPECT_FALSE(back->fortran_order);
  }
}

TEST(NpyWriterTest, ThirtyTwoDimensionsFitVersionOne) {
  ArrayMeta meta;
  meta.shape.assign(32, 1);
  meta.shape[0] = 9223372036854775807 / 8;
  meta.shape[1] = 0;
  const std::string header = WriteHeader(meta);
  EXPECT_EQ(header[6], 1);
  EXPECT_TRUE(ParseHeader(header).ok());
}

}  // namespace
}  // namespace npystream::npy
