#include "server/common/byte_size.h"

#include "gtest/gtest.h"

namespace npystream {
namespace {

TEST(ByteSizeTest, ParsesUnits) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("8GiB"), 8ull << 30);
  EXPECT_EQ(*ParseByteSize(" 512 MiB "), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("1gb"), 1000000000ull);
  EXPECT_EQ(*ParseByteSize("3k"), 3072u);
}

TEST(ByteSizeTest, RefusesNonsense) {
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("GiB").ok());
  EXPECT_FALSE(ParseByteSize("12 parsecs").ok());
  EXPECT_FALSE(ParseByteSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseByteSize("20000000000TiB").ok());
  EXPECT_NE(ParseByteSize("5 xb").status().message().find("unknown unit 'xb'"), std::string::npos);
}

TEST(ByteSizeTest, Formats) {
  EXPECT_EQ(FormatByteSize(12), "12 B");
  EXPECT_EQ(FormatByteSize(3ull << 29), "1.5 GiB");
}

}  // namespace
}  // namespace npystream
