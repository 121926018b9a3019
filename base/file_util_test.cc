#include "base/file_util.h"

#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace npystream {
namespace {

TEST(FileUtilTest, ReadsEveryByte) {
  const std::string path = ::testing::TempDir() + "/file_util_test.bin";
  std::string bytes(200000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 31);
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
  auto read = ReadFileToString(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
  std::remove(path.c_str());
}

TEST(FileUtilTest, NamesThePathInErrors) {
  auto missing = ReadFileToString("/nonexistent/npystream");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/npystream"), absl::string_view::npos);
  auto folder = ReadFileToString(::testing::TempDir());
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(folder.status().message().find("folder"), absl::string_view::npos);
}

}  // namespace
}  // namespace npystream
