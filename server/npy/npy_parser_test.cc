#include "server/npy/npy_parser.h"

#include <string>

#include "gtest/gtest.h"
#include "server/testing/numpy_cases_testing.h"

namespace npystream::npy {
namespace {

using testing::NumpyCasesDir;
using testing::NumpyManifest;
using testing::ReadFile;

absl::StatusOr<ArrayMeta> ParseFile(const std::string& bytes) {
  absl::StatusOr<size_t> size = PeekHeaderSize(bytes);
  if (!size.ok()) return size.status();
  if (*size == 0) {
    return ParseHeader(bytes);  // reports the truncation
  }
  return ParseHeader(absl::string_view(bytes).substr(0, std::min(*size, bytes.size())));
}

TEST(NpyParserTest, ParsesEveryNumpyReferenceFile) {
  const auto manifest = NumpyManifest();
  ASSERT_GT(manifest["valid"].size(), 100u);
  for (const auto& c : manifest["valid"]) {
    SCOPED_TRACE(c["file"].get<std::string>());
    const std::string bytes = ReadFile(NumpyCasesDir() + "/" + c["file"].get<std::string>());
    absl::StatusOr<ArrayMeta> meta = ParseFile(bytes);
    ASSERT_TRUE(meta.ok()) << meta.status();
    const std::string descr = c["descr"];
    // numpy writes '|' for one-byte types; our table agrees.
    EXPECT_EQ(Descr(meta->dtype), descr);
    EXPECT_EQ(meta->shape, c["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(meta->fortran_order, c["fortran_order"].get<bool>());
    // The payload that follows the header is exactly nbytes long.
    const size_t header = *PeekHeaderSize(bytes);
    if (meta->NumElements() < (1u << 30)) {
      EXPECT_EQ(bytes.size() - header, meta->NumBytes());
    }
  }
}

TEST(NpyParserTest, NamesEveryDefect) {
  const auto manifest = NumpyManifest();
  ASSERT_GT(manifest["invalid"].size(), 20u);
  for (const auto& c : manifest["invalid"]) {
    const std::string file = c["file"];
    SCOPED_TRACE(file);
    const std::string bytes = ReadFile(NumpyCasesDir() + "/" + file);
    absl::StatusOr<ArrayMeta> meta = ParseFile(bytes);
    ASSERT_FALSE(meta.ok());
    EXPECT_EQ(meta.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(meta.status().message().find(c["error"].get<std::string>()), std::string::npos)
        << "message: " << meta.status().message();
  }
}

TEST(NpyParserTest, PeekNeedsOnlyThePreamble) {
  const std::string bytes = ReadFile(NumpyCasesDir() + "/valid_float32_3.npy");
  for (size_t n = 0; n < 10; ++n) {
    EXPECT_EQ(*PeekHeaderSize(bytes.substr(0, n)), 0u) << n;
  }
  EXPECT_EQ(*PeekHeaderSize(bytes.substr(0, 10)), 128u);
  // A wrong first byte is refused as soon as it is seen.
  EXPECT_FALSE(PeekHeaderSize("X").ok());
}

TEST(NpyParserTest, LimitsAreConfigurable) {
  const std::string bytes = ReadFile(NumpyCasesDir() + "/valid_float32_3.npy");
  ParseLimits small;
  small.max_header_bytes = 100;
  absl::StatusOr<size_t> size = PeekHeaderSize(bytes, small);
  ASSERT_FALSE(size.ok());
  EXPECT_NE(size.status().message().find("exceeds the limit of 100"), std::string::npos);
  ParseLimits two_dims;
  two_dims.max_ndim = 2;
  absl::StatusOr<ArrayMeta> meta = ParseHeader(bytes.substr(0, 128), two_dims);
  ASSERT_FALSE(meta.ok());
  EXPECT_NE(meta.status().message().find("ndim exceeds 2"), std::string::npos) << meta.status();
}

TEST(NpyParserTest, AcceptsDoubleQuotesAndSpacing) {
  // What a hand-written header (not numpy's) may look like.
  std::string dict = "{ \"shape\" : ( 2 , 3 ) , \"fortran_order\":True,\"descr\":\"<i8\"}";
  std::string h = std::string("\x93NUMPY\x01\x00", 8);
  const size_t hlen = dict.size() + 1;
  h.push_back(static_cast<char>(hlen & 0xFF));
  h.push_back(static_cast<char>(hlen >> 8));
  h += dict + "\n";
  absl::StatusOr<ArrayMeta> meta = ParseHeader(h);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->dtype, DType::kInt64);
  EXPECT_EQ(meta->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(meta->fortran_order);
}

}  // namespace
}  // namespace npystream::npy
